"""Probe (issue #19): ``fp8emu.matmul``'s two-worker pipeline against its serial row-block loop.

    python tools/probes/gemm_pipeline.py --shape 0          # 131072 x 576 x 64
    env -u OPENBLAS_CORETYPE python tools/probes/gemm_pipeline.py --shape 1

``fp8emu.matmul`` (``fp32_blas``, a float32 ``a`` rounded deterministically) rounds ``a`` a block
of rows at a time into a reused buffer and multiplies each block at once.  The serial loop runs
each stage on every core in turn, so the rounding's stream of ``a`` from memory adds to sgemm's
arithmetic; the pipeline gives each of two worker threads its own blocks, each rounding on one
Numba thread and multiplying with OpenBLAS at one thread, so the two overlap
(:func:`fp8emu.gemm._run_pipeline`).  The probe switches ``FP8EMU_GEMM_PIPELINE`` between 1 and
0 (the default: the serial loop) around each call.

Each round times every case once (``np.matmul`` and both loops, into ``out=`` and into a fresh
array); medians over the rounds; the two loops' products are compared bit for bit.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

# fp8emu first: it sets OPENBLAS_THREAD_TIMEOUT=4 before NumPy loads OpenBLAS (NumPy first, the
# import restarts OpenBLAS's workers with it).  Spinning for 2^28 cycles after each call, they took
# the cores the pipeline's single-threaded calls need (measured: 0.39-0.71x np.matmul instead of 0.82-1.03x).
import fp8emu  # noqa: E402  (isort: skip)
import numba  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.gemm import SHAPES  # noqa: E402
from benchmarks.timing import header  # noqa: E402
from fp8emu.cluster import blas_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, default=0, choices=range(len(SHAPES)), help="index into benchmarks.gemm.SHAPES")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    m, k, n = SHAPES[args.shape]
    print(header())
    print(f"# {m} x {k} x {n}, e5m2, {args.rounds} rounds; OpenBLAS threads {blas_threads()}, Numba threads "
          f"{numba.get_num_threads()}; OpenBLAS's spin timeout set before it loaded: {fp8emu._OPENBLAS_SPIN_SET}")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    y_np, y_serial, y_pipe = (np.empty((m, n), np.float32) for _ in range(3))

    def fp8(pipeline: bool, out):
        def run():
            os.environ["FP8EMU_GEMM_PIPELINE"] = "1" if pipeline else "0"
            try:
                return fp8emu.matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", out=out)
            finally:
                os.environ["FP8EMU_GEMM_PIPELINE"] = "0"
        return run

    cases = {
        "np.matmul out=": lambda: np.matmul(a, b, out=y_np),
        "np.matmul fresh": lambda: np.matmul(a, b),
        "fp8emu.matmul serial loop, out=": fp8(False, y_serial),
        "fp8emu.matmul pipeline, out=": fp8(True, y_pipe),
        "fp8emu.matmul serial loop, fresh": fp8(False, None),
        "fp8emu.matmul pipeline, fresh": fp8(True, None),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()                                   # compile, fault the buffers in
    for _ in range(args.rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = {"out=": float(np.median(times["np.matmul out="])), "fresh": float(np.median(times["np.matmul fresh"]))}
    for name, ts in times.items():
        med = float(np.median(ts))
        kind = "out=" if name.endswith("out=") else "fresh"
        print(f"{name:36s} {med * 1e3:8.1f} ms (min {min(ts) * 1e3:6.1f})   np.matmul {kind} / this {base[kind] / med:5.2f}")
    print("pipeline product equals the serial loop's bit for bit" if np.array_equal(y_serial, y_pipe)
          else f"pipeline product differs from the serial loop's in {np.count_nonzero(y_serial != y_pipe)} elements")


if __name__ == "__main__":
    main()
