"""Per-element time of each kernel's serial twin against the parallel kernel on one thread.

    python -m benchmarks.serial_twins [--sizes 512 4096 16384 65536] [--repeat 21]

Below ``_kernels.SERIAL_BELOW`` elements a call runs its kernels' serial twins (the same loop
without ``prange``, so without the 3-6 us launch through Numba's threading layer).  That limit
holds only where a twin's loop is about as fast per element as its parallel kernel's on one
thread; this prints both.

The calls are those of ``benchmarks.small_calls`` (``cases`` and ``other_cases``, e5m2 and the
routes the float32 kernels do not take).  Each is made once on 65539 elements with
``_kernels.sized`` wrapped, which records every kernel the call runs and its arguments; the
other routes are made twice, with their tables (kept by an earlier large call) and without
(``quantize._table_worth`` false: the per-element kernels).  Each kernel found is then timed on
the first ``n`` elements of its recorded input and output: the parallel kernel on one Numba
thread and its twin, round by round, back to back; each figure is the median over ``--repeat``
rounds of the mean of calls that take about 2 ms together, in ns per element; ``par / twin``
above 1 means the twin is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import time

import numba
import numpy as np

import fp8emu
from fp8emu import _kernels

from .small_calls import cases, other_cases
from .timing import header

Q = importlib.import_module("fp8emu.quantize")

CAPTURE = 65539         # odd: no table has this many entries, so the arrays to slice are known


@contextlib.contextmanager
def recording(found: dict, tables: bool):
    """Record the kernels passed to ``_kernels.sized`` (and their first call's arguments)."""
    orig_sized, orig_worth = _kernels.sized, Q._table_worth

    def sized(kernel, n):
        def run(*args):
            found.setdefault(kernel, args)
            return kernel(*args)
        return run
    _kernels.sized = sized
    if not tables:
        Q._table_worth = lambda *a: False
    try:
        yield
    finally:
        _kernels.sized, Q._table_worth = orig_sized, orig_worth


def sliced(args: tuple, n: int) -> tuple:
    return tuple(a[:n] if isinstance(a, np.ndarray) and a.size == CAPTURE else a for a in args)


def per_element_ns(fn, n: int, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls / n * 1e9


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 4096, 16384, 65536])
    ap.add_argument("--repeat", type=int, default=21, help="rounds (the median is reported)")
    args = ap.parse_args(argv)
    if max(args.sizes) > CAPTURE:
        raise SystemExit(f"sizes up to {CAPTURE}")
    print(header())
    x = (np.random.default_rng(0).standard_normal(CAPTURE) * 100).astype(np.float32)
    warm = (np.random.default_rng(1).standard_normal(1 << 18) * 100).astype(np.float32)
    kernels: dict = {}
    names: dict = {}
    for make, modes in ((cases, (True,)), (other_cases, (True, False))):
        for fn in make(fp8emu, warm).values():
            fn()                                # builds and keeps the tables of the large call
        for tables in modes:
            for name, fn in make(fp8emu, x).items():
                found: dict = {}
                with recording(found, tables):
                    fn()
                for k, a in found.items():
                    key = (k, tuple(getattr(v, "dtype", type(v)) for v in a))     # one per signature
                    if key not in kernels:
                        kernels[key] = a
                        names[key] = f"{name}{'' if tables else ' (per element)'}: {k.py_func.__name__}"
    prev = numba.get_num_threads()
    for n in args.sizes:
        print(f"\nn = {n}: ns per element, median of {args.repeat} rounds; parallel kernel on 1 thread | "
              "serial twin | par / twin")
        for key, a in kernels.items():
            k = key[0]
            twin = _kernels.serial_twin(k)
            if twin is k:
                continue
            call_args = sliced(a, n)
            calls = max(1, int(2e-3 / (n * 3e-9)))
            par, ser = [], []
            twin(*call_args)
            for _ in range(args.repeat):
                numba.set_num_threads(1)
                try:
                    par.append(per_element_ns(lambda: k(*call_args), n, calls))
                finally:
                    numba.set_num_threads(prev)
                ser.append(per_element_ns(lambda: twin(*call_args), n, calls))
            p, s = statistics.median(par), statistics.median(ser)
            print(f"  {names[key]:<70s} {p:7.2f} | {s:7.2f} | {p / s:5.2f}x")


if __name__ == "__main__":
    main()
