"""GFLOP/s of the H200 FP8 GEMM model (fp8emu.accumulators.nvidia) at 512^3, next to np.matmul.

    python benchmarks/nvidia_gemm.py [--n 512] [--repeat 7]

Prints the median and the best of ``repeat`` runs for 1 and 2 Numba threads, both modes, and
float32 ``np.matmul`` on the same operands (OpenBLAS, its own threads).  The machine may be
shared: the best run is the one least disturbed by other work.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from fp8emu.accumulators.nvidia import nvidia_hopper_fp8
from fp8emu.formats import e4m3fn


def _times(fn, repeat: int) -> np.ndarray:
    fn()  # warm-up (JIT compile / caches)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n = args.n
    flop = 2.0 * n ** 3
    vals = e4m3fn.values()
    vals = vals[np.isfinite(vals)]
    rng = np.random.default_rng(0)
    a = rng.choice(vals, (n, n)).astype(np.float32)
    b = rng.choice(vals, (n, n)).astype(np.float32)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__}, "
          f"n = {n}, GFLOP/s = 2 n^3 / time")
    rows = []
    for fast in (False, True):
        model = nvidia_hopper_fp8(fast)
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            t = _times(lambda: model.matmul_2d(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn), args.repeat)
            rows.append((f"model fast_accum={fast}", threads, t))
    t = _times(lambda: np.matmul(a, b), args.repeat)
    rows.append(("np.matmul float32", "blas", t))
    base = np.median(rows[-1][2])
    for name, threads, t in rows:
        print(f"{name:28s} threads={threads!s:4s} median {np.median(t) * 1e3:8.1f} ms "
              f"({flop / np.median(t) / 1e9:6.2f} GFLOP/s)  best {t.min() * 1e3:8.1f} ms "
              f"({flop / t.min() / 1e9:6.2f} GFLOP/s)  x{np.median(t) / base:7.1f} np.matmul")


if __name__ == "__main__":
    main()
