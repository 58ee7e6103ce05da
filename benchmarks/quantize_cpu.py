"""Quantize throughput on one thread in CPU time: ratios that survive a shared, oversubscribed host.

    python -m benchmarks.quantize_cpu [--n 4194304] [--repeat 15] [--formats e5m2 e4m3fn ... | --all]

Times ``np.copyto``, ``x.copy()`` and ``fp8emu.quantize`` (RNE with and without ``out=``,
exact stochastic) by ``time.thread_time()`` medians on 1 Numba thread, for formats of every
kind by default: fn, fnuz, with Inf, the MX element formats (no Inf/NaN), bfloat16 (whose
smallest subnormal is a float32 subnormal), e8m0fnu and binary8p1se (which the float32 kernels
leave to the table of input classes) and float32 itself (a copy); ``--all``: every preset.
``np.copyto`` and ``x.copy()`` are timed again before each format, so that each ratio compares
times taken within a second of each other (the copy's own rate drifts between runs and within
one on a shared host).  CPU time leaves out
the time the thread waits for a core, which dominates wall-clock medians when other jobs share
the cores (short calls such as ``np.copyto`` often fit in one time slice, long ones do not); it
still includes cache and frequency effects of the neighbours.  ``benchmarks/quantize.py`` is the
wall-clock benchmark for an idle host.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numba
import numpy as np

import fp8emu

from .timing import header, measure


def cpu_median(fn: Callable[[], object], repeat: int) -> float:
    """Median ``time.thread_time()`` of ``repeat`` calls after one warm-up call."""
    return measure("", fn, 1, repeat=repeat, clock=time.thread_time).median_s


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--formats", nargs="+",
                    default=["e5m2", "e4m3fn", "e4m3fnuz", "e5m2fnuz", "e3m2fn", "e2m3fn", "e2m1fn", "bfloat16",
                             "e8m0fnu", "binary8p1se", "float32"])
    ap.add_argument("--all", action="store_true", help="every preset format (fp8emu.formats.PRESETS)")
    args = ap.parse_args(argv)
    if args.all:
        from fp8emu.formats import PRESETS
        args.formats = list(PRESETS)
    print(header())
    numba.set_num_threads(1)
    n = args.n
    x = (np.random.default_rng(0).standard_normal(n) * 100).astype(np.float32)
    out = np.empty_like(x)
    t_copyto = cpu_median(lambda: np.copyto(out, x), args.repeat)
    t_copy = cpu_median(lambda: x.copy(), args.repeat)
    print(f"n = {n}, 1 thread, CPU-time medians of {args.repeat}: np.copyto {n / t_copyto / 1e9:.3f} G el/s, "
          f"x.copy() {n / t_copy / 1e9:.3f} G el/s")
    for name in args.formats:
        t_copyto = cpu_median(lambda: np.copyto(out, x), args.repeat)
        t_copy = cpu_median(lambda: x.copy(), args.repeat)
        rne = cpu_median(lambda: fp8emu.quantize(x, name, out=out), args.repeat)
        fresh = cpu_median(lambda: fp8emu.quantize(x, name), args.repeat)
        sr = cpu_median(lambda: fp8emu.quantize(x, name, rounding="stochastic", seed=1, out=out), args.repeat)
        print(f"{name:<11s} RNE out= {n / rne / 1e9:.3f} G el/s ratio vs np.copyto {t_copyto / rne:.2f}; "
              f"RNE fresh ratio vs x.copy() {t_copy / fresh:.2f}; exact SR {n / sr / 1e9:.3f} G el/s, "
              f"SR / RNE speed {rne / sr:.2f}")


if __name__ == "__main__":
    main()
