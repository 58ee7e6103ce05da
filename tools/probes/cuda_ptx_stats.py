"""Static PTX statistics of the float32 rounding kernels (no GPU needed): instructions, 64-bit
integer operations, branches, global loads, local memory, for the default kernels and the
kernels before them (the steps of ``benchmarks.cuda_check --only variants``).

    NUMBA_ENABLE_CUDASIM=0 python tools/probes/cuda_ptx_stats.py [--cc 9.0] [--dump DIR]

Counts are of the whole kernel (the unrolled loop, its tail and the inlined exact-SR fallback),
not of the instructions one element executes.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import types as pytypes

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", default="9.0", help="compute capability to compile for (default 9.0: H100/H200)")
    ap.add_argument("--dump", default="", help="write each kernel's PTX into this directory")
    args = ap.parse_args(argv)
    try:
        cc = tuple(int(v) for v in args.cc.split("."))
        assert len(cc) == 2
    except (ValueError, AssertionError):
        ap.error(f"--cc {args.cc!r}: expected MAJOR.MINOR")
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        ap.error("run with NUMBA_ENABLE_CUDASIM=0 (the simulator compiles nothing)")
    import numpy as np
    from numba import cuda
    from numba.cuda import types
    import numba.cuda.dispatcher as dispatcher

    import fp8emu.cuda as fc
    from fp8emu.formats import e4m3fn
    from fp8emu.quantize import kernel_arguments

    # Device functions ask the current device for its compute capability; without a GPU, say it.
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    # the kernel choice without a GPU: no table upload, an H200's 132 multiprocessors
    fc._lut_on_device = lambda fmt, name: None
    fc._sm_count = lambda: 132

    first = dict(specialize=0, unsigned=0, value_kernels=0, fixed_block=0)
    per_mode = dict(specialize=1, unsigned=1, value_kernels=0, fixed_block=0)
    cases = {
        "RNE, the first kernels (signed, mode per element)": (first, "nearest_even", None),
        "RNE, per-mode _round_f32_k, unsigned": (per_mode, "nearest_even", None),
        "RNE, default (value routine, constant block)": ({}, "nearest_even", None),
        "SR exact, the first kernels": (first, "stochastic", None),
        "SR exact, per-mode _round_f32_k": (per_mode, "stochastic", None),
        "SR exact, default (value routine, high half)": ({}, "stochastic", None),
        "SR sr_bits=8, the first kernels": (first, "stochastic", 8),
        "SR sr_bits=8, default": ({}, "stochastic", 8),
    }
    arr = types.Array(types.uint32, 1, "C")
    print(f"float32 -> e4m3fn quantize kernels, PTX for compute capability {cc[0]}.{cc[1]}")
    print(f"{'kernel':<50} {'instr':>6} {'64-bit':>6} {'mul64':>6} {'branch':>6} {'ld.gl':>6} {'local':>6}")
    for name, (tuning, rounding, sr_bits) in cases.items():
        a = kernel_arguments(e4m3fn, np.float32, rounding=rounding, seed=1, sr_bits=sr_bits, values=True)
        with fc._tuned(**tuning):
            kern, _, p32, lim = fc._kernel_and_constants(e4m3fn, "float32", a, rounding == "stochastic", sr_bits,
                                                         True)
        sig = (arr, arr, arr, kern.typeof_pyval(p32), kern.typeof_pyval(a.params), types.uint64, types.uint64,
               types.uint32)
        ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=cc)
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            with open(os.path.join(args.dump, re.sub(r"\W+", "_", name) + ".ptx"), "w") as f:
                f.write(ptx)
        ops = re.findall(r"^\s+(?:@!?%p\d+\s+)?([a-z]+[a-z0-9.]*)", ptx, re.M)
        wide = collections.Counter(o.split(".")[0] for o in ops if re.search(r"\.[sub]64", o))
        n64 = sum(v for k, v in wide.items() if k not in ("ld", "st", "cvt", "mov"))
        mul64 = len(re.findall(r"mul\.lo\.[su]64|mul\.wide", ptx))
        branches = sum(1 for o in ops if o.startswith("bra"))
        print(f"{name:<50} {len(ops):>6} {n64:>6} {mul64:>6} {branches:>6} {ptx.count('ld.global'):>6} "
              f"{ptx.count('.local'):>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
