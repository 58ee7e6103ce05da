"""When does one Numba thread beat all of them?  The float32 e5m2 quantize kernels (nearest-even,
exact stochastic) called directly, per array size and thread count, and the cost of switching
the thread count from Python (``_kernels.one_thread_below`` switches to one thread below
``SERIAL_BELOW`` elements).

    python tools/probes/serial_threshold.py [--threads 1 2] [--min-exp 4] [--max-exp 20]

Medians of consecutive calls of one configuration (wall clock, steady state: the workers
of the parallel launch are still spinning from the call before); prints the threading layer, which sets the cost of a
parallel launch (``omp``, ``tbb`` or ``workqueue``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numba
import numpy as np

import fp8emu
from fp8emu import _kernels as K
from fp8emu.format import RoundMode
from benchmarks.timing import header

Q = sys.modules["fp8emu.quantize"]


def _median_us(f, repeat: int) -> float:
    f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        f()
        ts.append(time.perf_counter_ns() - t)
    return float(np.median(ts)) / 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, numba.config.NUMBA_NUM_THREADS])
    ap.add_argument("--min-exp", type=int, default=4)
    ap.add_argument("--max-exp", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args(argv)
    fmt = fp8emu.get_format("e5m2")
    p_rne = Q._params_f32(fmt, RoundMode.NEAREST_EVEN, False, 0, True, True)
    p_sr = Q._params_f32(fmt, RoundMode.STOCHASTIC, False, 0, True, True)
    rne = K._F32_VAL_FADD[True, True, K.SRC_F32]
    sr = K._F32_VAL_SR["hi32", True, True, K.SRC_F32]
    full = max(args.threads)
    numba.set_num_threads(full)
    print(header())
    switch = _median_us(lambda: (numba.get_num_threads(), numba.set_num_threads(1), numba.set_num_threads(full)),
                        args.repeat * 4)
    print(f"threading layer: {numba.threading_layer()}; SERIAL_BELOW = {K.SERIAL_BELOW}")
    print(f"get_num_threads + set_num_threads(1) + set_num_threads({full}) from Python: {switch:.2f} us")
    cols = [f"{k} {t}thr" for k in ("RNE", "SR") for t in args.threads]
    print(f"{'n':>8s} " + " ".join(f"{c:>10s}" for c in cols) + "   (us per kernel call, medians)")
    rng = np.random.default_rng(0)
    for e in range(args.min_exp, args.max_exp + 1):
        n = 1 << e
        b = (rng.standard_normal(n) * 100).astype(np.float32).view(np.uint32)
        o = np.empty_like(b)
        row = {}
        for kind, kern, p, extra in (("RNE", rne, p_rne, ()), ("SR", sr, p_sr, (np.uint32(0), False))):
            for t in args.threads:
                numba.set_num_threads(t)
                row[f"{kind} {t}thr"] = _median_us(lambda: kern(b, o, p, np.uint64(5), *extra),
                                                    max(20, min(args.repeat, (args.repeat << 16) // n)))
        numba.set_num_threads(full)
        print(f"  2^{e:<4d} " + " ".join(f"{row[c]:10.2f}" for c in cols))


if __name__ == "__main__":
    main()
