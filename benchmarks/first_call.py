"""First-call cost of fp8emu's kernels: compile on a cold Numba cache, then load from it.

Each measurement runs in a fresh interpreter whose ``NUMBA_CACHE_DIR`` is a new empty
directory (cold), then once more with that directory filled (cached).  Prints the seconds of
the import, the first ``quantize`` (nearest), the first stochastic ``quantize`` and the first
``matmul`` with a ``lowp`` accumulator, as a user meets them.

    python benchmarks/first_call.py [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fp8emu
from fp8emu.accumulators import lowp
t1 = time.perf_counter()
x = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
fp8emu.quantize(x, "e5m2"); t2 = time.perf_counter()
fp8emu.quantize(x, "e5m2", rounding="stochastic", seed=0); t3 = time.perf_counter()
fp8emu.matmul(x[:2048].reshape(32, 64), x[2048:].reshape(64, 32), accumulator=lowp("float16", 16))
t4 = time.perf_counter()
print(f"import {t1 - t0:6.2f} s   quantize {t2 - t1:6.2f} s   stochastic {t3 - t2:6.2f} s   lowp matmul {t4 - t3:6.2f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="cold/cached pairs (default 2)")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)            # also run as a plain script, not only with -m
    from benchmarks.timing import header
    print(header(), flush=True)
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": root}
            for label in ("cold  ", "cached"):
                out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
                print(f"{label} {out.stdout.strip()}", flush=True)


if __name__ == "__main__":
    main()
