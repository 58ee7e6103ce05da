"""Fourth H200 probe: shapes kept *off* the split table, to measure how well its fallback generalises.

Run on the GPU machine from the repository root::

    OUT=/some/dir python3 tools/probes/h200_probe_holdout.py

* ``holdout_log.txt.gz`` + ``holdout_order.json``: cuBLASLt trace lines (numSplitsK) of every call.
* ``h200_probe_holdout.npz`` + ``.json``: random-code GEMMs (rows built by ``h200_inputs.random_rows``
  so a test rebuilds only the 16 sampled rows and columns), 16 x 16 output samples, both modes.
These shapes are deliberately not read into ``_h200_splits.py``: they test the fallback rule.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h200_inputs as H  # noqa: E402
from h200_probe import OUT, gemm_np, log  # noqa: E402

HOLDOUT = [(16, 16, 262144), (32, 32, 200704), (48, 112, 40960), (112, 48, 40960), (96, 320, 24576),
           (320, 96, 24576), (640, 640, 16384), (1024, 1024, 65536), (1024, 64, 32768), (64, 1024, 32768),
           (768, 768, 8192), (208, 208, 53248), (16, 2048, 16384), (2048, 16, 16384), (144, 144, 36864),
           (64, 64, 81920), (64, 64, 110592), (128, 128, 73728), (256, 256, 12288), (176, 176, 28672),
           (80, 80, 40960), (16, 48, 57344), (112, 112, 131072), (32, 96, 90112), (272, 272, 20480),
           (1536, 32, 16384), (32, 1536, 16384), (352, 352, 49152), (16, 16, 7680), (16, 16, 5248),
           (16, 16, 5120), (48, 48, 12416)]
if os.environ.get("H200_PROBE_SMALL"):  # local dry run on the CPU
    HOLDOUT = [(16, 16, 5120), (32, 16, 1024)]


def run_cases() -> None:
    res, cases = {}, []
    for i, (M, N, K) in enumerate(HOLDOUT):
        c = dict(key=f"h{i:03d}", M=M, N=N, K=K, a_fmt="e4m3fn", b_fmt="e4m3fn", dist="normal", seed=9000 + i)
        a = H.random_rows(c["seed"], range(M), K, "e4m3fn", "normal")
        bt = H.random_rows(c["seed"] + 500_000, range(N), K, "e4m3fn", "normal")
        ri = np.linspace(0, M - 1, min(M, 16)).round().astype(np.int64)
        ci = np.linspace(0, N - 1, min(N, 16)).round().astype(np.int64)
        for fast in (False, True):
            print(f"### {M} {N} {K} {fast}", flush=True)
            out = gemm_np(a, bt, "e4m3fn", "e4m3fn", fast)
            res[f"{c['key']}_{'fast' if fast else 'acc'}"] = out[np.ix_(ri, ci)]
        res[c["key"] + "_ri"], res[c["key"] + "_ci"] = ri, ci
        c["crc"] = H.crc(a[ri], bt[ci])
        cases.append(c)
    np.savez_compressed(os.path.join(OUT, "h200_probe_holdout.npz"), **res)
    with open(os.path.join(OUT, "h200_probe_holdout.json"), "w") as f:
        json.dump({"cases": cases, "torch": torch.__version__}, f, indent=0)
    with open(os.path.join(OUT, "holdout_order.json"), "w") as f:
        json.dump([[M, N, K, "e4m3fn", "e4m3fn", fast] for (M, N, K) in HOLDOUT for fast in (False, True)], f)


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    if len(sys.argv) > 1 and sys.argv[1] == "cases":
        run_cases()
        return
    logfile = os.path.join(OUT, "holdout_log.txt")
    env = dict(os.environ, CUBLASLT_LOG_MASK="2", CUBLASLT_LOG_FILE=logfile)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "cases"], env=env,
                       capture_output=True, text=True, timeout=500)
    log("cases rc", r.returncode, r.stdout[-500:], r.stderr[-1500:])
    if os.path.exists(logfile):
        with open(logfile, "rb") as f, gzip.open(logfile + ".gz", "wb") as g:
            g.write(f.read())
        os.remove(logfile)
    log("done")


if __name__ == "__main__":
    main()
