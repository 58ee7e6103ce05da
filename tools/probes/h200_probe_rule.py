"""Second H200 probe: map cuBLASLt's split-K choice densely, and check new shapes on random data.

Run on the GPU machine from the repository root::

    OUT=/some/dir python3 tools/probes/h200_probe_rule.py

* ``rule_log.txt.gz``: cuBLASLt's trace lines (``CUBLASLT_LOG_MASK=2``: one line per
  ``cublasLtMatmul`` with the algorithm, tile and ``numSplitsK``) for every shape of ``RULE_GRID``,
  both modes, e4m3fn x e4m3fn, plus ``FMT_GRID`` for the e4m3fn x e5m2 and e5m2 x e4m3fn pairs.
  ``rule_order.json`` lists the calls in log order.
* ``h200_probe_check.npz`` + ``.json``: random-code GEMMs (16 x 16 output samples) at shapes outside
  the first probe's grid, to test that the model generalises.
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
from h200_probe import DEV, OUT, TORCH_FMT, gemm_np, log, scaled_mm  # noqa: E402

MN = (16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512)
KS = (1024, 2048, 3072, 4096, 4608, 5120, 6144, 7168, 8192, 8208, 10240, 12288, 14336, 16384,
      16400, 20480, 24576, 32768, 49152, 65536, 98304, 131072)
RULE_GRID = [(m, n, k) for m in MN for n in MN for k in KS]
FMT_GRID = [(m, n, k) for m in (16, 64, 256) for n in (16, 64, 256) for k in (4096, 8192, 16384, 65536)]
CHECK = [(16, 16, 12288), (16, 16, 20480), (16, 16, 6144), (16, 16, 16400), (32, 32, 24576), (48, 48, 65536),
         (48, 16, 16384), (80, 80, 32768), (96, 96, 16384), (16, 16, 131072), (64, 64, 49152),
         (160, 160, 16384), (384, 384, 16384), (16, 512, 32768), (512, 16, 32768), (64, 64, 8208),
         (32, 32, 5120), (32, 32, 7168), (128, 128, 98304)]


if os.environ.get("H200_PROBE_SMALL"):  # local dry run on the CPU
    RULE_GRID, FMT_GRID, CHECK = RULE_GRID[:3], FMT_GRID[:2], CHECK[:2]


def run_names() -> None:
    order = []
    for pairs, grid in ((("e4m3fn", "e4m3fn"),), RULE_GRID), (
            (("e4m3fn", "e5m2"), ("e5m2", "e4m3fn")), FMT_GRID):
        for a_fmt, b_fmt in pairs:
            for (M, N, K) in grid:
                a = torch.zeros((M, K), dtype=torch.uint8, device=DEV).view(TORCH_FMT[a_fmt])
                bt = torch.zeros((N, K), dtype=torch.uint8, device=DEV).view(TORCH_FMT[b_fmt])
                for fast in (False, True):
                    scaled_mm(a, bt, fast)
                    order.append([M, N, K, a_fmt, b_fmt, fast])
    if DEV == "cuda":
        torch.cuda.synchronize()
    with open(os.path.join(OUT, "rule_order.json"), "w") as f:
        json.dump(order, f)


def run_check() -> None:
    res, cases = {}, []
    for i, (M, N, K) in enumerate(CHECK):
        for a_fmt, b_fmt, dist in (("e4m3fn", "e4m3fn", "normal"), ("e4m3fn", "e5m2", "wide")):
            c = dict(key=f"v{len(cases):03d}", M=M, N=N, K=K, a_fmt=a_fmt, b_fmt=b_fmt, dist=dist,
                     seed=5000 + len(cases))
            a = H.random_codes(c["seed"], (M, K), a_fmt, dist)
            bt = H.random_codes(c["seed"] + 500_000, (N, K), b_fmt, dist)
            ri = np.linspace(0, M - 1, min(M, 16)).round().astype(np.int64)
            ci = np.linspace(0, N - 1, min(N, 16)).round().astype(np.int64)
            for fast in (False, True):
                out = gemm_np(a, bt, a_fmt, b_fmt, fast)
                res[f"{c['key']}_{'fast' if fast else 'acc'}"] = out[np.ix_(ri, ci)]
            res[c["key"] + "_ri"], res[c["key"] + "_ci"] = ri, ci
            c["crc"] = H.crc(a, bt)
            cases.append(c)
    np.savez_compressed(os.path.join(OUT, "h200_probe_check.npz"), **res)
    with open(os.path.join(OUT, "h200_probe_check.json"), "w") as f:
        json.dump({"cases": cases, "torch": torch.__version__}, f, indent=0)
    log("check cases", len(cases))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    if len(sys.argv) > 1 and sys.argv[1] == "names":
        run_names()
        return
    logfile = os.path.join(OUT, "rule_log.txt")
    env = dict(os.environ, CUBLASLT_LOG_MASK="2", CUBLASLT_LOG_FILE=logfile)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "names"], env=env,
                       capture_output=True, text=True, timeout=400)
    log("names rc", r.returncode, r.stderr[-2000:])
    if os.path.exists(logfile):
        with open(logfile, "rb") as f, gzip.open(logfile + ".gz", "wb") as g:
            g.write(f.read())
        os.remove(logfile)
    run_check()
    log("done")


if __name__ == "__main__":
    main()
