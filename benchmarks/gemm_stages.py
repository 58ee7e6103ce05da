"""Where the time of ``fp8emu.matmul`` (``fp32_blas``, e5m2 operands) goes at one ResNet-18 shape:
its stages alone and together, with per-thread CPU time, run-queue wait and minor page faults.

    python -m benchmarks.gemm_stages                   # 131072 x 576 x 64, 7 rounds
    python -m benchmarks.gemm_stages --shape 1 --rounds 9
    OPENBLAS_THREAD_TIMEOUT=28 python -m benchmarks.gemm_stages   # OpenBLAS's own spinning

Every round times each stage once, so changes of the machine's load hit all stages alike;
medians over the rounds.  Stages: ``np.matmul`` into ``out=`` and into a fresh array; rounding
all of ``a`` into an ``a``-sized buffer; ``np.matmul`` of that buffer; the two in sequence;
the rounding alone a block at a time into a reused buffer; ``fp8emu.matmul`` with 64 MiB row
blocks (the rule before issue #19's third pass), with its own blocks, and with ``out=``; a fresh
(M, N) float32 array written once (its page faults).  Per-thread CPU time and run-queue wait
(time a thread was runnable but not running: another thread had its core) come from
``/proc/self/task/*/schedstat`` (Linux; empty elsewhere).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

import fp8emu.gemm as gemm
from fp8emu import matmul, quantize

from .gemm import SHAPES
from .timing import header


def _threads() -> dict[str, tuple[int, int]]:
    """Thread id -> (ns on a CPU, ns waiting on a run queue)."""
    stats = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return stats
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                run, wait = f.read().split()[:2]
        except (OSError, ValueError):
            continue
        stats[tid] = (int(run), int(wait))
    return stats


def _with_block_rule(cache_bytes: int, min_rows: int, fn):
    """``fn()`` with the fused path's block rule changed for the call."""
    saved = gemm.CACHE_BLOCK_BYTES, gemm._MIN_BLOCK_ROWS
    gemm.CACHE_BLOCK_BYTES, gemm._MIN_BLOCK_ROWS = cache_bytes, min_rows
    try:
        return fn()
    finally:
        gemm.CACHE_BLOCK_BYTES, gemm._MIN_BLOCK_ROWS = saved


def stages(m: int, k: int, n: int) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    qa = np.empty_like(a)
    qb = quantize(b, "e5m2")
    rows = gemm.block_rows(m, k)
    buf = np.empty((rows, k), dtype=np.float32)

    def round_blocks():
        for r0 in range(0, m, rows):
            r1 = min(m, r0 + rows)
            quantize(a[r0:r1], "e5m2", out=buf[:r1 - r0])

    def fp8(**kw):
        return matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", **kw)

    return {
        "np.matmul out=": lambda: np.matmul(a, b, out=out),
        "np.matmul fresh": lambda: np.matmul(a, b),
        "round all of a into an a-sized buffer": lambda: quantize(a, "e5m2", out=qa),
        "np.matmul of that buffer, out=": lambda: np.matmul(qa, qb, out=out),
        "the two in sequence": lambda: (quantize(a, "e5m2", out=qa), np.matmul(qa, qb, out=out)),
        f"round a in {rows}-row blocks, reused buffer": round_blocks,
        "fp8emu.matmul, 64 MiB blocks": lambda: _with_block_rule(64 << 20, 1, fp8),
        "fp8emu.matmul": fp8,
        "fp8emu.matmul out=": lambda: fp8(out=out),
        "fresh (M, N) array written once": lambda: np.empty((m, n), dtype=np.float32).fill(0),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, default=0, choices=range(len(SHAPES)), help="index into SHAPES")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    m, k, n = SHAPES[args.shape]
    print(header())
    print(f"# {m} x {k} x {n}, e5m2, {args.rounds} rounds; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}; block rows "
          f"{gemm.block_rows(m, k)}")
    cases = stages(m, k, n)
    for fn in cases.values():
        fn()
    rows: dict = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            t0, f0 = _threads(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            c1, w1 = time.process_time(), time.perf_counter()
            f1, t1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, _threads()
            delta = {t: (t1[t][0] - t0.get(t, (0, 0))[0], t1[t][1] - t0.get(t, (0, 0))[1]) for t in t1}
            busy = sorted((d[0] / 1e6 for d in delta.values() if d[0] > 50_000), reverse=True)
            rows[name].append((w1 - w0, c1 - c0, f1 - f0, sum(d[1] for d in delta.values()) / 1e6, busy))
    print(f"{'stage':44s} {'wall ms':>14s} {'CPU ms':>8s} {'minflt':>7s} {'runq ms':>8s}  threads' CPU ms")
    for name, rs in rows.items():
        walls, cpus = [r[0] for r in rs], [r[1] for r in rs]
        mid = rs[int(np.argsort(cpus)[len(cpus) // 2])]
        print(f"{name:44s} {np.median(walls) * 1e3:6.1f} (min {min(walls) * 1e3:5.1f}) {np.median(cpus) * 1e3:6.1f} "
              f"{int(np.median([r[2] for r in rs])):7d} {np.median([r[3] for r in rs]):8.1f}  "
              f"{', '.join(f'{x:.1f}' for x in mid[4])}")


if __name__ == "__main__":
    main()
