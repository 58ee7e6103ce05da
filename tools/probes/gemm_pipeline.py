"""Probe (issue #19): would a two-worker pipeline lift ``fp8emu.matmul`` at the small-N shapes?

    python tools/probes/gemm_pipeline.py --shape 0          # 131072 x 576 x 64
    env -u OPENBLAS_CORETYPE python tools/probes/gemm_pipeline.py --shape 1

``fp8emu.matmul`` (``fp32_blas``) rounds a block of ``a``'s rows with every core, then hands the
block to sgemm on every core: the rounding streams ``a`` from memory while sgemm waits, so the
two costs add up.  The design probed here gives each of two Python threads its own row blocks:
it rounds a block (one Numba thread) and multiplies it (single-threaded sgemm) while the other
worker does the same, so one core's memory stream overlaps the other's arithmetic.  sgemm must
then run on one thread per call, and OpenBLAS's thread count is process-wide: the probe times
the pipeline with OpenBLAS set to one thread for the call and back afterwards (what a library
function would have to do) and with OpenBLAS left at one thread throughout.

Each round times ``np.matmul(a, b, out=)`` (OpenBLAS's threads as set at start),
``fp8emu.matmul(..., out=)`` and both pipelines once; medians over the rounds.  The pipeline's
product is compared with ``fp8emu.matmul``'s bit for bit (OpenBLAS's Haswell kernel rounds some
sums differently when the row split changes, as its thread split does).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

# fp8emu first: it sets OPENBLAS_THREAD_TIMEOUT=4 before NumPy loads OpenBLAS.  With NumPy first
# OpenBLAS's workers spin for about 2^28 cycles after each call and take the cores the pipeline's
# single-threaded calls need (measured: 0.39-0.71x np.matmul instead of 0.82-1.03x).
import fp8emu  # noqa: E402  (isort: skip)
import numba  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.gemm import SHAPES  # noqa: E402
from benchmarks.timing import header  # noqa: E402
from fp8emu.cluster import blas_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, default=0, choices=range(len(SHAPES)), help="index into benchmarks.gemm.SHAPES")
    parser.add_argument("--rows", type=int, default=1024, help="rows per block of each worker (default 1024)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    m, k, n = SHAPES[args.shape]
    rows = args.rows
    print(header())
    print(f"# {m} x {k} x {n}, e5m2, {args.rounds} rounds, blocks of {rows} rows per worker, 2 workers")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    qb = fp8emu.quantize(b, "e5m2")
    y_np, y_ref, y_pipe = (np.empty((m, n), np.float32) for _ in range(3))
    bufs = [np.empty(rows * k, np.float32) for _ in range(2)]
    pool = ThreadPoolExecutor(2)
    start_threads = blas_threads()

    def worker(t: int) -> None:
        numba.set_num_threads(1)               # per calling thread in Numba
        for r0 in range(t * rows, m, 2 * rows):
            r1 = min(r0 + rows, m)
            blk = bufs[t][:(r1 - r0) * k].reshape(r1 - r0, k)
            fp8emu.quantize(a[r0:r1], "e5m2", out=blk)
            np.matmul(blk, qb, out=y_pipe[r0:r1])

    def pipeline_switching() -> None:
        blas_threads(1)
        try:
            list(pool.map(worker, range(2)))
        finally:
            blas_threads(start_threads)

    def pipeline_fixed() -> None:
        list(pool.map(worker, range(2)))

    cases = {
        "np.matmul out=": lambda: np.matmul(a, b, out=y_np),
        "fp8emu.matmul out=": lambda: fp8emu.matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", out=y_ref),
        "pipeline, OpenBLAS 1 thread per call": pipeline_switching,
    }
    times: dict[str, list[float]] = {name: [] for name in [*cases, "pipeline, OpenBLAS at 1 thread throughout"]}
    for fn in cases.values():
        fn()                                   # compile, fault the buffers in
    for _ in range(args.rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    same = np.array_equal(y_ref, y_pipe)
    blas_threads(1)
    pipeline_fixed()
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        pipeline_fixed()
        times["pipeline, OpenBLAS at 1 thread throughout"].append(time.perf_counter() - t0)
    blas_threads(start_threads)

    base = float(np.median(times["np.matmul out="]))
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"{name:44s} {med * 1e3:8.1f} ms (min {min(ts) * 1e3:6.1f})   np.matmul / this {base / med:5.2f}")
    print("pipeline product equals fp8emu.matmul's bit for bit" if same
          else f"pipeline product differs from fp8emu.matmul's in {np.count_nonzero(y_ref != y_pipe)} elements")


if __name__ == "__main__":
    main()
