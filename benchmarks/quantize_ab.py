"""Before/after benchmark of quantize/encode in one process: another checkout of fp8emu
(``--base``, e.g. a ``git worktree`` of main) against this one, calls interleaved.

Run: ``python -m benchmarks.quantize_ab --base /path/to/other/checkout [--n 4194304] [--repeat 60]
[--dtype float32] [--modes RNE SR]`` (``--dtype``: the input's, float16, bfloat16, float32 or float64;
``quantize`` writes that dtype, and its cases are left out where the format has values it cannot
hold; ``--modes``: what to time: RNE, exact SR, SR8 (stochastic with ``sr_bits=8``), SRin (exact
SR in place), SRdeep (exact SR of an input with one element in 1000 scaled by 2^-100: more than
64 dropped bits), odd (round to odd), and decode (the codes of the input, decoded into
``--dtype``)).

The other checkout's package is copied to a temporary directory as ``fp8emu_base`` (it uses
relative imports) so both import side by side.  Each repetition times every case once, base
and new back to back, so both see the same machine state; process CPU time (default) is far
less disturbed by other processes on a shared machine than wall time, which ``--wall`` picks.
A slow case leaves a state behind that slows the next one: after 14 ms of the per-element SR
kernels, a 2 ms ``encode`` of float16 took 3.6 ms (measured), so A/Bs whose SR cases differ that
much time RNE alone (``--modes RNE``) as well.
Both versions are first checked to give the same bits on the benchmark input (and, for SR,
on the SRdeep input, in place too).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import shutil
import sys
import tempfile
import time

import numba
import numpy as np

import fp8emu

from .timing import header


def _import_base(checkout: pathlib.Path, tmp: pathlib.Path):
    src = checkout / "fp8emu"
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"--base {checkout}: no fp8emu package there")
    shutil.copytree(src, tmp / "fp8emu_base", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("fp8emu_base")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=pathlib.Path, required=True, help="root of the other checkout")
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--formats", nargs="+", default=["e5m2", "e4m3fn"])
    ap.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"],
                    help="the input's dtype (default float32)")
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    ap.add_argument("--modes", nargs="+", default=["RNE", "SR"],
                    choices=["RNE", "SR", "SR8", "SRin", "SRdeep", "odd", "decode"],
                    help="what to time: nearest_even (RNE), exact stochastic (SR), stochastic with "
                         "sr_bits=8 (SR8), round to odd (odd), decode of the input's codes into "
                         "the input's dtype (decode), exact SR in place (SRin: quantize(y, out=y)), exact "
                         "SR of an input with one element in 1000 below 2^-100 (SRdeep)")
    args = ap.parse_args(argv)
    if args.dtype == "bfloat16":
        import ml_dtypes
        dtype = np.dtype(ml_dtypes.bfloat16)
    else:
        dtype = np.dtype(args.dtype)
    bits_view = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    clock = time.perf_counter_ns if args.wall else time.process_time_ns
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    with tempfile.TemporaryDirectory() as tmp:
        base = _import_base(args.base.resolve(), pathlib.Path(tmp))
        x = (np.random.default_rng(0).standard_normal(args.n) * 100).astype(np.float32).astype(dtype)
        out = np.empty_like(x)
        # SRdeep: elements that drop more than 64 bits into every preset format (float32 and
        # float64 inputs; 16-bit ones have no such values)
        deep = x.copy()
        if dtype.itemsize >= 4:
            deep[::1000] *= dtype.type(2.0**-100)
        cases = [("np.copyto", lambda: np.copyto(out, x))]
        for name in args.formats:
            codes = np.empty(args.n, fp8emu.get_format(name).code_dtype)
            try:
                fp8emu.quantize(x[:1], name)
                fits = True
            except ValueError as e:              # the format has values the input dtype cannot hold
                print(f"# {name}: quantize cases left out ({e})")
                fits = False
            input_codes = fp8emu.encode(x, name) if "decode" in args.modes else None
            for tag, lib in (("base", base), ("new", fp8emu)):
                if fits and "decode" in args.modes:
                    cases += [(f"{name} decode {tag}", lambda lib=lib, name=name, c=input_codes: lib.decode(
                        c, name, dtype=dtype, out=out))]
                if fits and "odd" in args.modes:
                    cases += [(f"{name} quantize odd {tag}", lambda lib=lib, name=name: lib.quantize(
                        x, name, rounding="odd", out=out))]
                if "odd" in args.modes:
                    cases += [(f"{name} encode odd {tag}", lambda lib=lib, name=name, codes=codes: lib.encode(
                        x, name, rounding="odd", out=codes))]
                if fits and "RNE" in args.modes:
                    cases += [(f"{name} quantize RNE {tag}", lambda lib=lib, name=name: lib.quantize(x, name, out=out))]
                if "RNE" in args.modes:
                    cases += [(f"{name} encode RNE {tag}",
                               lambda lib=lib, name=name, codes=codes: lib.encode(x, name, out=codes))]
                if fits and "SR" in args.modes:
                    cases += [(f"{name} quantize SR {tag}", lambda lib=lib, name=name: lib.quantize(
                        x, name, rounding="stochastic", seed=1, out=out))]
                if "SR" in args.modes:
                    cases += [(f"{name} encode SR {tag}", lambda lib=lib, name=name, codes=codes: lib.encode(
                        x, name, rounding="stochastic", seed=1, out=codes))]
                if fits and "SRin" in args.modes:
                    y = x.copy()            # rounded in place again and again: the same work each time
                    cases += [(f"{name} quantize SR in place {tag}", lambda lib=lib, name=name, y=y: lib.quantize(
                        y, name, rounding="stochastic", seed=1, out=y))]
                if fits and "SRdeep" in args.modes:
                    cases += [(f"{name} quantize SR deep {tag}", lambda lib=lib, name=name: lib.quantize(
                        deep, name, rounding="stochastic", seed=1, out=out))]
                if fits and "SR8" in args.modes:
                    cases += [(f"{name} quantize SR8 {tag}", lambda lib=lib, name=name: lib.quantize(
                        x, name, rounding="stochastic", seed=1, sr_bits=8, out=out))]
                if "SR8" in args.modes:
                    cases += [(f"{name} encode SR8 {tag}", lambda lib=lib, name=name, codes=codes: lib.encode(
                        x, name, rounding="stochastic", seed=1, sr_bits=8, out=codes))]
            if fits and input_codes is not None and not np.array_equal(base.decode(input_codes, name, dtype=dtype).view(bits_view),
                                           fp8emu.decode(input_codes, name, dtype=dtype).view(bits_view)):
                raise SystemExit(f"{name} decode: the two versions give different bits")
            for rounding, sr_bits in (("nearest_even", None), ("stochastic", None), ("stochastic", 8), ("odd", None)):
                kw = dict(rounding=rounding, seed=1, sr_bits=sr_bits)
                same = np.array_equal(base.encode(x, name, **kw), fp8emu.encode(x, name, **kw))
                if fits:
                    same &= np.array_equal(base.quantize(x, name, **kw).view(bits_view),
                                           fp8emu.quantize(x, name, **kw).view(bits_view))
                if fits and rounding == "stochastic":       # in place, and elements beyond 64 dropped bits
                    ya, yb = deep.copy(), deep.copy()
                    base.quantize(ya, name, out=ya, **kw)
                    fp8emu.quantize(yb, name, out=yb, **kw)
                    same &= np.array_equal(ya.view(bits_view), yb.view(bits_view))
                    same &= np.array_equal(base.quantize(deep, name, **kw).view(bits_view),
                                           fp8emu.quantize(deep, name, **kw).view(bits_view))
                if not same:
                    raise SystemExit(f"{name} {rounding} sr_bits={sr_bits}: the two versions give different bits")
        for _, f in cases:
            f()                                   # compile and warm up
        times: dict[str, list[int]] = {k: [] for k, _ in cases}
        for _ in range(args.repeat):
            for k, f in cases:
                t = clock()
                f()
                times[k].append(clock() - t)

    print(header())
    print(f"n = {args.n} {dtype.name}, {numba.get_num_threads()} thread(s), {args.repeat} interleaved repetitions, "
          f"{'wall' if args.wall else 'process CPU'} time")
    copy = float(np.median(times["np.copyto"]))
    print(f"{'case':30s} {'median ms':>10s} {'min ms':>8s} {'x np.copyto':>12s}")
    for k, v in times.items():
        med = float(np.median(v))
        print(f"{k:30s} {med * 1e-6:10.2f} {min(v) * 1e-6:8.2f} {med / copy:12.2f}")


if __name__ == "__main__":
    main()
