"""Third H200 probe: cuBLASLt's numSplitsK at every K = 128 t (t = 1..1024) for a few small outputs,
and its dependence on the workspace PyTorch gives cuBLASLt.

Run on the GPU machine from the repository root::

    OUT=/some/dir python3 tools/probes/h200_probe_sweep.py

* ``sweep_log.txt.gz`` + ``sweep_order.json``: trace lines (``CUBLASLT_LOG_MASK=2``) of every call of
  ``SWEEP`` (both modes, e4m3fn x e4m3fn), in order.
* ``ws_log.txt.gz`` + ``ws_order.json``: the same for ``WS_GRID`` run with
  ``CUBLASLT_WORKSPACE_SIZE`` = 32 MiB (PyTorch's variable, in KiB) instead of the default here.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h200_probe import DEV, OUT, TORCH_FMT, log, scaled_mm  # noqa: E402

SWEEP = [(m, n, 128 * t) for (m, n) in ((16, 16), (32, 32), (64, 64), (16, 64), (64, 16), (128, 128))
         for t in range(1, 1025)]
WS_GRID = [(m, n, k) for m in (16, 64, 128, 256, 512) for n in (16, 64, 128, 256, 512)
           for k in (8192, 16384, 65536)]
if os.environ.get("H200_PROBE_SMALL"):  # local dry run on the CPU
    SWEEP, WS_GRID = SWEEP[:4], WS_GRID[:2]


def run_calls(grid, order_file) -> None:
    order = []
    for (M, N, K) in grid:
        a = torch.zeros((M, K), dtype=torch.uint8, device=DEV).view(TORCH_FMT["e4m3fn"])
        bt = torch.zeros((N, K), dtype=torch.uint8, device=DEV).view(TORCH_FMT["e4m3fn"])
        for fast in (False, True):
            scaled_mm(a, bt, fast)
            order.append([M, N, K, "e4m3fn", "e4m3fn", fast])
    if DEV == "cuda":
        torch.cuda.synchronize()
    with open(os.path.join(OUT, order_file), "w") as f:
        json.dump(order, f)


def logged_run(part: str, logname: str, extra_env: dict) -> None:
    logfile = os.path.join(OUT, logname)
    env = dict(os.environ, CUBLASLT_LOG_MASK="2", CUBLASLT_LOG_FILE=logfile, **extra_env)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), part], env=env,
                       capture_output=True, text=True, timeout=500)
    log(part, "rc", r.returncode, r.stderr[-1500:])
    if os.path.exists(logfile):
        with open(logfile, "rb") as f, gzip.open(logfile + ".gz", "wb") as g:
            g.write(f.read())
        os.remove(logfile)


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if part == "sweep":
        run_calls(SWEEP, "sweep_order.json")
    elif part == "ws":
        run_calls(WS_GRID, "ws_order.json")
    else:
        logged_run("sweep", "sweep_log.txt", {})
        logged_run("ws", "ws_log.txt", {"CUBLASLT_WORKSPACE_SIZE": "32768"})
        log("done")


if __name__ == "__main__":
    main()
