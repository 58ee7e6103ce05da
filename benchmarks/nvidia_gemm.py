"""GFLOP/s of the H200 FP8 GEMM model (fp8emu.accumulators.nvidia) at 512^3, next to np.matmul.

    python -m benchmarks.nvidia_gemm [--n 512] [--repeat 7]

Prints, from one run, the median (and min) time of the model for 1 and 2 Numba threads in both
modes, and of float32 ``np.matmul`` on the same operands (OpenBLAS, its own threads).  Target
(issue #7): >= 5 GFLOP/s on 2 threads; a straightforward Numba version of the instruction model
ran at about 1.2 GFLOP/s.  On a shared machine the min is the run least disturbed by other work.
"""

from __future__ import annotations

import argparse

import numba
import numpy as np

from benchmarks.timing import header, measure
from fp8emu.accumulators.nvidia import nvidia_hopper_fp8
from fp8emu.formats import e4m3fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n = args.n
    flop = 2 * n ** 3
    vals = e4m3fn.values()
    vals = vals[np.isfinite(vals)]
    rng = np.random.default_rng(0)
    a = rng.choice(vals, (n, n)).astype(np.float32)
    b = rng.choice(vals, (n, n)).astype(np.float32)
    print(header())
    print(f"n = {n}: GFLOP/s = 2 n^3 / median time")
    ref = measure("np.matmul float32 (BLAS threads)", lambda: np.matmul(a, b), flop, repeat=args.repeat, unit="FLOP")
    for fast in (False, True):
        model = nvidia_hopper_fp8(fast)
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            t = measure(f"H200 model fast_accum={fast} threads={threads}",
                        lambda: model.matmul_2d(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn), flop, repeat=args.repeat,
                        unit="FLOP")
            print(f"{t.line(ref)}  -> {t.g_elements_per_s:.2f} GFLOP/s (best {flop / t.min_s / 1e9:.2f})")
    print(f"{ref.line()}  -> {ref.g_elements_per_s:.2f} GFLOP/s")


if __name__ == "__main__":
    main()
