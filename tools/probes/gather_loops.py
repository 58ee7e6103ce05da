"""Table lookups with LLVM's vector gathers against the same loop kept scalar, on one thread
(issue 19, the rule of ``fp8emu._vector_width.keep_gathers_scalar``).

    python tools/probes/gather_loops.py [--sizes 16384 65536 4194304] [--rounds 15]

For each lookup the package runs (``out[i] = table[index(bits[i])]``: the float64 and float32
class lookups, ``_decode`` from 8-, 16- and 32-bit indices into 8-, 16-, 32- and 64-bit
elements), two ``prange`` kernels of the same body: one that LLVM vectorises as it chooses
(``prefer_512_bit_vectors``, as the package's kernels), one kept scalar by the ``noimplicitfloat``
function attribute, which the rule sets.  Prints ns per element (median of the rounds, each
about 2 M elements of calls) and vector / scalar time: above 1, the scalar loop is faster.
Inputs: standard normal float64 for the class lookup (its 512 KiB table), random codes over
the whole table for the others.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numba                                                    # noqa: E402
import numpy as np                                              # noqa: E402
from numba import njit, prange, types                           # noqa: E402
from numba.extending import intrinsic                           # noqa: E402

from benchmarks.timing import header                            # noqa: E402
from fp8emu._vector_width import prefer_512_bit_vectors         # noqa: E402


@intrinsic
def _scalar(typingctx):
    """``noimplicitfloat`` on the calling function, whatever the arrays (the probe's own)."""
    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, "noimplicitfloat")
        return context.get_dummy_value()
    return types.void(), codegen


def class_lookup(shift: int, scalar: bool):
    """``lookup_f64_sticky``'s body (``fp8emu._kernels._lookup_sticky_kernel``)."""
    low, sh = np.uint64((1 << shift) - 1), np.uint64(shift)
    if scalar:
        @njit(parallel=True)
        def kernel(bits, out, table):
            for i in prange(bits.shape[0]):
                _scalar()
                b = np.uint64(bits[i])
                c = np.uint64(np.uint64(b >> sh) << np.uint64(1))
                out[i] = table[c | np.uint64(np.uint64(b & low) != np.uint64(0))]
        return kernel

    @njit(parallel=True)
    def kernel(bits, out, table):
        for i in prange(bits.shape[0]):
            prefer_512_bit_vectors(bits, out)
            b = np.uint64(bits[i])
            c = np.uint64(np.uint64(b >> sh) << np.uint64(1))
            out[i] = table[c | np.uint64(np.uint64(b & low) != np.uint64(0))]
    return kernel


@njit(parallel=True)
def decode_vector(codes, out, lut):
    for i in prange(codes.shape[0]):
        prefer_512_bit_vectors(codes, out)
        out[i] = lut[codes[i]]


@njit(parallel=True)
def decode_scalar(codes, out, lut):
    for i in prange(codes.shape[0]):
        _scalar()
        out[i] = lut[codes[i]]


def per_element_ns(fn, args, n: int, rounds: int) -> float:
    fn(*args)
    calls = max(1, 2_000_000 // n)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        times.append((time.perf_counter() - t0) / calls / n * 1e9)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16384, 65536, 1 << 22])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    numba.set_num_threads(1)
    print(header())
    n_max = max(args.sizes)
    rng = np.random.default_rng(0)
    cases = [("float64 class lookup, 2^16 classes (u64 -> f64)", rng.standard_normal(n_max).view(np.uint64),
              np.empty(n_max), rng.standard_normal(1 << 16), class_lookup(49, False), class_lookup(49, True))]
    for index, element, size in ((np.uint8, np.float32, 256), (np.uint8, np.float64, 256), (np.uint8, np.uint16, 256),
                                 (np.uint8, np.uint8, 256), (np.uint16, np.uint16, 1 << 16),
                                 (np.uint16, np.uint8, 1 << 16), (np.uint16, np.float32, 1 << 16),
                                 (np.uint16, np.float64, 1 << 16), (np.uint32, np.float32, 1 << 14),
                                 (np.uint32, np.uint16, 1 << 14), (np.uint32, np.uint8, 1 << 14)):
        lut = rng.integers(0, 200, size).astype(element)
        cases.append((f"decode {np.dtype(index).name} -> {np.dtype(element).name}, {size} entries",
                      rng.integers(0, size, n_max).astype(index), np.empty(n_max, element), lut,
                      decode_vector, decode_scalar))
    print(f"ns per element on 1 thread, median of {args.rounds} rounds; vector | scalar | vector / scalar")
    for name, indices, out, table, vector, scalar in cases:
        for n in args.sizes:
            call = (indices[:n], out[:n], table)
            v, s = per_element_ns(vector, call, n, args.rounds), per_element_ns(scalar, call, n, args.rounds)
            print(f"  {name:52s} n={n:8d}  {v:6.3f} | {s:6.3f} | {v / s:5.2f}")


if __name__ == "__main__":
    main()
