"""Per-call time of small encode/quantize/decode calls, where the fixed cost of a call is most of it.

    python -m benchmarks.small_calls [--sizes 16 1024 16384] [--calls 2000] [--repeat 15]
                                     [--base /path/to/other/checkout] [--routes float32|other]

Times fp8emu (e5m2: quantize RNE fresh and with ``out=``, exact stochastic with a seed,
encode, decode of uint8 codes) against ml_dtypes (``astype``: the round trip, encode and
decode) and PyTorch's CPU casts (``Tensor.to``) where installed, and ``x.copy()``, on float32
inputs of each size; each fp8emu line gives its ratio to ml_dtypes' call of the same operation.
Each figure is the median over ``--repeat`` rounds of the mean time of ``--calls`` calls, in
microseconds per call, wall clock, on the current Numba thread count.  With ``--base`` another
checkout's fp8emu (imported beside this one, as ``benchmarks.quantize_ab`` does) is timed in the
same rounds, case by case back to back (in alternating order), after a check that both give
the same bits in every case, and the ratio base / this is printed.  A training step
of the paper's recipe makes about 180 such calls on ResNet-18 at width 8 (batch 32).

``--routes other`` times instead calls that the float32 kernels do not take (float64 inputs,
round-to-odd, stochastic rounding into a format without subnormals, 16-bit inputs by their
tables, a copy into float32, encode into formats whose codes are float32's top bits, decode of a
format wider than 16 bits), and a float32 quantize in place, against ``x.copy()`` only: below 2^16 elements they run the
per-element kernels (a table is built by a call of at least its size, then kept).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
from typing import Callable

import numpy as np

import fp8emu

from .quantize_ab import _import_base
from .timing import header


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def cases(lib, x: np.ndarray) -> dict[str, Callable[[], object]]:
    """The fp8emu calls of one version (``lib``: the package)."""
    out = np.empty_like(x)
    codes = lib.encode(x, "e5m2")
    return {
        "quantize RNE": lambda: lib.quantize(x, "e5m2"),
        "quantize RNE out=": lambda: lib.quantize(x, "e5m2", out=out),
        "quantize exact SR": lambda: lib.quantize(x, "e5m2", rounding="stochastic", seed=1),
        "quantize SR, 8 random bits": lambda: lib.quantize(x, "e5m2", rounding="stochastic", seed=1, sr_bits=8),
        "encode RNE": lambda: lib.encode(x, "e5m2"),
        "encode exact SR": lambda: lib.encode(x, "e5m2", rounding="stochastic", seed=1),
        "decode": lambda: lib.decode(codes, "e5m2"),
    }


def other_cases(lib, x: np.ndarray) -> dict[str, Callable[[], object]]:
    """Calls of one version that the float32 kernels do not take (``--routes other``)."""
    x64, x16 = x.astype(np.float64), x.astype(np.float16)
    wide, y = lib.encode(x, "e8m13"), lib.quantize(x, "e5m2")    # y: its own rounding, each call
    return {
        "float64 quantize e5m2 RNE": lambda: lib.quantize(x64, "e5m2"),
        "float64 quantize e5m2 exact SR": lambda: lib.quantize(x64, "e5m2", rounding="stochastic", seed=1),
        "float32 quantize e4m3fn odd": lambda: lib.quantize(x, "e4m3fn", rounding="odd"),
        "float16 quantize e4m3fn odd": lambda: lib.quantize(x16, "e4m3fn", rounding="odd"),
        "float32 quantize e4m3_nosub SR": lambda: lib.quantize(x, "e4m3_nosub", rounding="stochastic", seed=1),
        "float16 encode e4m3_nosub SR": lambda: lib.encode(x16, "e4m3_nosub", rounding="stochastic", seed=1),
        "float32 quantize float32": lambda: lib.quantize(x, "float32"),
        "float32 encode bfloat16": lambda: lib.encode(x, "bfloat16"),
        "float32 encode tf32": lambda: lib.encode(x, "tf32"),
        "decode e8m13 (uint32 codes)": lambda: lib.decode(wide, "e8m13"),
        "quantize in place": lambda: lib.quantize(y, "e5m2", out=y),
    }


def peers(x: np.ndarray) -> dict[str, Callable[[], object]]:
    found: dict[str, Callable[[], object]] = {"x.copy()": x.copy}
    try:
        import ml_dtypes
        e5m2 = ml_dtypes.float8_e5m2
        x8 = x.astype(e5m2)
        found["ml_dtypes round trip"] = lambda: x.astype(e5m2).astype(np.float32)
        found["ml_dtypes encode"] = lambda: x.astype(e5m2)
        found["ml_dtypes decode"] = lambda: x8.astype(np.float32)
    except ImportError:
        pass
    try:
        import torch
        t = torch.from_numpy(x)
        t8 = t.to(torch.float8_e5m2)
        found["torch round trip"] = lambda: t.to(torch.float8_e5m2).to(torch.float32)
        found["torch encode"] = lambda: t.to(torch.float8_e5m2)
        found["torch decode"] = lambda: t8.to(torch.float32)
    except ImportError:
        pass
    return found


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 1024, 16384])
    ap.add_argument("--calls", type=int, default=2000, help="calls per round (timed together)")
    ap.add_argument("--repeat", type=int, default=15, help="rounds (the median is reported)")
    ap.add_argument("--base", type=pathlib.Path, help="root of another checkout to time beside this one")
    ap.add_argument("--routes", choices=["float32", "other"], default="float32",
                    help="float32: the float32 kernels' calls against peers; other: calls they do not take")
    args = ap.parse_args(argv)
    make = cases if args.routes == "float32" else other_cases
    print(header())
    with tempfile.TemporaryDirectory() as tmp:
        base = _import_base(args.base, pathlib.Path(tmp)) if args.base else None
        for n in args.sizes:
            x = (np.random.default_rng(0).standard_normal(n) * 100).astype(np.float32)
            timed = {name: [fn] for name, fn in make(fp8emu, x).items()}
            cases_names = set(timed)
            if base is not None:
                for name, fn in make(base, x).items():
                    timed[name].insert(0, fn)
                    a, b = timed[name][0](), timed[name][1]()
                    # every case, stochastic ones too: their seed is fixed, so their bits are
                    if not np.array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8)):
                        raise SystemExit(f"{name}: base and this checkout differ")
            for name, fn in (peers(x) if args.routes == "float32" else {"x.copy()": x.copy}).items():
                timed[name] = [fn]
            rounds: dict[str, list[list[float]]] = {name: [[] for _ in fns] for name, fns in timed.items()}
            for fns in timed.values():                  # warm-up (compiles)
                for fn in fns:
                    fn()
            for rnd in range(args.repeat):
                for name, fns in timed.items():
                    # base and this checkout take turns going first (ABBA): neither always
                    # inherits the other's caches and clock state
                    order = range(len(fns)) if rnd % 2 == 0 else reversed(range(len(fns)))
                    for i in order:
                        rounds[name][i].append(per_call_us(fns[i], args.calls))
            print(f"\nn = {n} float32, us per call (median of {args.repeat} rounds of {args.calls} calls)"
                  + ("; base | this | base / this" if base is not None else ""))
            meds = {name: [statistics.median(r) for r in per] for name, per in rounds.items()}
            for name, m in meds.items():
                cols = " | ".join(f"{v:8.2f}" for v in m)
                extra = f"  {m[0] / m[1]:5.2f}x" if len(m) == 2 else ""
                # fp8emu's calls against ml_dtypes' call of the same operation, this checkout's time
                peer = "ml_dtypes " + ("round trip" if name.startswith("quantize") else name.split()[0])
                vs = f"  ({meds[peer][0] / m[-1]:6.2f}x vs {peer})" if name in cases_names and peer in meds else ""
                print(f"  {name:<30s} {cols}{extra}{vs}")


if __name__ == "__main__":
    main()
