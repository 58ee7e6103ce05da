"""Before/after benchmark of quantize/encode in one process: another checkout of fp8emu
(``--base``, e.g. a ``git worktree`` of main) against this one, calls interleaved.

Run: ``python -m benchmarks.quantize_ab --base /path/to/other/checkout [--n 4194304] [--repeat 60]
[--dtype float32] [--modes RNE SR]`` (``--dtype``: the input's, float16, bfloat16, float32 or float64;
``quantize`` writes that dtype, and its cases are left out where the format has values it cannot
hold; ``--modes``: what to time: RNE, exact SR, SR8 (stochastic with ``sr_bits=8``), SRin (exact
SR in place), SR8in and RNEin (SR8 and RNE in place), SRdeep (exact SR of an input with one element in 1000 scaled by 2^-100: more than
64 dropped bits), odd (round to odd), and decode (the codes of the input, decoded into
``--dtype``)).

The other checkout's package is copied to a temporary directory as ``fp8emu_base`` (it uses
relative imports) so both import side by side.  Each repetition times every case once, base
and new back to back (base first in even repetitions, new first in odd ones), so both see the
same machine state; process CPU time (summed over the threads with ``--threads`` above 1) (default) is far
less disturbed by other processes on a shared machine than wall time, which ``--wall`` picks.
A slow case leaves a state behind that slows the next one: after 14 ms of the per-element SR
kernels, a 2 ms ``encode`` of float16 took 3.6 ms (measured), so A/Bs whose SR cases differ that
much time RNE alone (``--modes RNE``) as well.
Both versions are first checked to give the same bits on the benchmark input (and, for SR,
on the SRdeep input, in place too), and then in every timed call (into ``out=``).
The last column is the median time over ``np.copyto``'s (higher is slower).
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
                    choices=["RNE", "RNEin", "SR", "SR8", "SR8in", "SRin", "SRdeep", "odd", "decode"],
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
        copy_case = ("np.copyto", lambda: np.copyto(out, x))
        pairs = []          # (case, base's call, new's call): timed back to back
        for name in args.formats:
            codes = np.empty(args.n, fp8emu.get_format(name).code_dtype)
            try:
                fp8emu.quantize(x[:1], name)
                fits = True
            except ValueError as e:              # the format has values the input dtype cannot hold
                print(f"# {name}: quantize cases left out ({e})")
                fits = False
            input_codes = fp8emu.encode(x, name) if "decode" in args.modes else None
            sr = dict(rounding="stochastic", seed=1)

            def in_place(lib, name=name, **kw):
                y = x.copy()            # rounded in place again and again: the same work each time
                return lambda: lib.quantize(y, name, out=y, **(sr | kw))

            # (mode, case, whether quantize: left out where the format does not fit, the call)
            wanted = [
                ("decode", "decode", True, lambda lib, name=name, c=input_codes: lambda: lib.decode(
                    c, name, dtype=dtype, out=out)),
                ("odd", "quantize odd", True, lambda lib, name=name: lambda: lib.quantize(
                    x, name, rounding="odd", out=out)),
                ("odd", "encode odd", False, lambda lib, name=name, codes=codes: lambda: lib.encode(
                    x, name, rounding="odd", out=codes)),
                ("RNE", "quantize RNE", True, lambda lib, name=name: lambda: lib.quantize(x, name, out=out)),
                ("RNE", "encode RNE", False, lambda lib, name=name, codes=codes: lambda: lib.encode(
                    x, name, out=codes)),
                ("SR", "quantize SR", True, lambda lib, name=name: lambda: lib.quantize(x, name, out=out, **sr)),
                ("SR", "encode SR", False, lambda lib, name=name, codes=codes: lambda: lib.encode(
                    x, name, out=codes, **sr)),
                ("SRin", "quantize SR in place", True, in_place),
                ("SRdeep", "quantize SR deep", True, lambda lib, name=name: lambda: lib.quantize(
                    deep, name, out=out, **sr)),
                ("SR8", "quantize SR8", True, lambda lib, name=name: lambda: lib.quantize(
                    x, name, sr_bits=8, out=out, **sr)),
                ("SR8in", "quantize SR8 in place", True, lambda lib: in_place(lib, sr_bits=8)),
                ("RNEin", "quantize RNE in place", True, lambda lib: in_place(lib, rounding="nearest_even")),
                ("SR8", "encode SR8", False, lambda lib, name=name, codes=codes: lambda: lib.encode(
                    x, name, sr_bits=8, out=codes, **sr)),
            ]
            pairs += [(f"{name} {case}", make(base), make(fp8emu))
                      for mode, case, is_quantize, make in wanted if mode in args.modes and (fits or not is_quantize)]
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
        copy_case[1]()
        for case, base_call, new_call in pairs:     # compile, warm up, and the timed calls' own bits
            before = np.array(base_call(), copy=True)
            if not np.array_equal(before.view(np.uint8), np.asarray(new_call()).view(np.uint8)):
                raise SystemExit(f"{case} (as timed, into out=): the two versions give different bits")
        times: dict[str, list[int]] = {copy_case[0]: []}
        for case, _, _ in pairs:
            times[f"{case} base"], times[f"{case} new"] = [], []

        def timed(key, call):
            t = clock()
            call()
            times[key].append(clock() - t)

        for rep in range(args.repeat):
            timed(copy_case[0], copy_case[1])
            for case, base_call, new_call in pairs:
                # back to back, base first in even repetitions and new first in odd ones (ABBA):
                # neither always inherits the state the other leaves
                order = ((f"{case} base", base_call), (f"{case} new", new_call))
                for key, call in (order if rep % 2 == 0 else order[::-1]):
                    timed(key, call)

    print(header())
    threads = numba.get_num_threads()
    print(f"n = {args.n} {dtype.name}, {threads} thread(s), {args.repeat} interleaved repetitions (base and new "
          "in alternating order), " + ("wall time" if args.wall else "process CPU time"
                                       + (f" (summed over the {threads} threads, waiting and spinning included: "
                                          "--wall gives elapsed time)" if threads > 1 else "")))
    copy = float(np.median(times["np.copyto"]))
    # time / copy: higher is slower (elsewhere in benchmarks/ "x np.copyto" is copy / time)
    print(f"{'case':36s} {'median ms':>10s} {'min ms':>8s} {'time / np.copyto':>17s}")
    for k, v in times.items():
        med = float(np.median(v))
        print(f"{k:36s} {med * 1e-6:10.3f} {min(v) * 1e-6:8.3f} {med / copy:17.2f}")


if __name__ == "__main__":
    main()
