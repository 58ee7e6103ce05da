"""The high half of SR's random word taken by a shuffle instead of shifts, same bits (issue 19).

    python tools/probes/hash_extract.py

The exact SR loop spends, per 8 words, two 64-bit shifts, a xor and a ``vpmovqd`` (2 uops) on
``hi32(mix64(z)) = (z2 >> 32) ^ (z2 >> 63)`` (``z2``: the word before its last xor-shift); LLVM
does that in 64-bit lanes whichever way the Python is written.  Here a Numba intrinsic emits the
hash of 16 counters as explicit LLVM vector code that takes the odd 32-bit halves with one
``vpermt2d`` and does the last xor-shift in 32-bit lanes (19 instructions per 16 words), into a
256-word scratch that the element loop then reads.  Checks the bits against the fused loop
(several lengths), then times both on one thread (thread time, medians of 15, two rounds) and
prints the compiled loops.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from benchmarks.timing import header  # noqa: E402

print(header())
import time  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange, types
import numba
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir
from fp8emu._random import GAMMA, mix64, _M1, _M2
from fp8emu._vector_width import prefer_512_bit_vectors
CH = 4096; BL = 256; L = 16
M64 = (1 << 64) - 1
def s64(v):
    v &= M64
    return v - (1 << 64) if v >> 63 else v

@intrinsic
def hi_words(typingctx, z, arr, start):
    def codegen(context, builder, sig, args):
        zv, av, sv = args
        aty = sig.args[1]
        ary = context.make_array(aty)(context, builder, av)
        idx = context.cast(builder, sv, sig.args[2], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [idx], wraparound=False)
        i64 = ir.IntType(64); i32 = ir.IntType(32)
        v64 = ir.VectorType(i64, L); v32 = ir.VectorType(i32, L)
        splat = builder.insert_element(ir.Constant(v64, ir.Undefined), zv, ir.Constant(i32, 0))
        splat = builder.shuffle_vector(splat, ir.Constant(v64, ir.Undefined), ir.Constant(ir.VectorType(i32, L), [0] * L))
        steps = ir.Constant(v64, [ir.Constant(i64, s64(GAMMA * (j + 1))) for j in range(L)])
        zz = builder.add(splat, steps)
        def vc(c): return ir.Constant(v64, [ir.Constant(i64, s64(c))] * L)
        x = builder.xor(zz, builder.lshr(zz, vc(30)))
        x = builder.mul(x, vc(_M1))
        y = builder.xor(x, builder.lshr(x, vc(27)))
        y = builder.mul(y, vc(_M2))
        halves = builder.bitcast(y, ir.VectorType(i32, 2 * L))
        h = builder.shuffle_vector(halves, ir.Constant(ir.VectorType(i32, 2 * L), ir.Undefined),
                                   ir.Constant(ir.VectorType(i32, L), [2 * j + 1 for j in range(L)]))
        w = builder.xor(h, builder.lshr(h, ir.Constant(v32, [ir.Constant(i32, 31)] * L)))
        vptr = builder.bitcast(ptr, v32.as_pointer())
        builder.store(w, vptr, align=4)
        return builder.add(zv, ir.Constant(i64, s64(GAMMA * L)))
    return types.uint64(types.uint64, arr, start), codegen

@njit(parallel=True)
def fused(bits, out, key0):
    n = bits.shape[0]
    for t in prange((n + CH - 1) // CH):
        prefer_512_bit_vectors(bits, out)
        lo = np.uint64(t * CH); hi = np.uint64(min(n, t * CH + CH))
        z = key0 + lo * np.uint64(GAMMA)
        for i in range(lo, hi):
            z += np.uint64(GAMMA)
            wh = np.uint32(mix64(z) >> np.uint64(32))
            out[i] = np.uint32(bits[i] ^ wh)

@njit(parallel=True)
def vsplit(bits, out, key0):
    n = bits.shape[0]
    for t in prange((n + CH - 1) // CH):
        prefer_512_bit_vectors(bits, out)
        scr = np.empty(BL + L, np.uint32)
        lo = np.uint64(t * CH); hi = np.uint64(min(n, t * CH + CH))
        z = key0 + lo * np.uint64(GAMMA)
        for b0 in range(lo, hi, BL):
            m = min(b0 + BL, hi) - b0
            for g in range(np.uint64(0), np.uint64(m), np.uint64(L)):
                z = hi_words(z, scr, g)
            for k in range(np.uint64(0), np.uint64(m)):
                out[b0 + k] = np.uint32(bits[b0 + k] ^ scr[k])
            # (z ran past the block end by the last group's spare words; rewind)
            z -= np.uint64((-m) % L) * np.uint64(GAMMA)

n = 1 << 22
bits = np.random.default_rng(0).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
o1 = np.empty_like(bits); o2 = np.empty_like(bits)
key0 = np.uint64(0x1234567)
fused(bits, o1, key0); vsplit(bits, o2, key0)
for nn in (n, n - 5, 4097, 17, 3):
    fused(bits[:nn], o1[:nn], key0); vsplit(bits[:nn], o2[:nn], key0)
    assert np.array_equal(o1[:nn], o2[:nn]), ("bits differ", nn)
print("bits equal")
numba.set_num_threads(1)
for rnd in range(2):
    for name, f in (("fused", fused), ("vsplit", vsplit)):
        ts = []
        for r in range(15):
            t0 = time.thread_time(); f(bits, o1, key0); ts.append(time.thread_time() - t0)
        print(name, f"{np.median(ts)*1e3:.3f} ms")
from benchmarks.kernel_asm import loops
asm = next(iter(vsplit.inspect_asm().values()))
for lp in loops(asm):
    if lp["width"] in ("ymm", "zmm"):
        print("vsplit", lp)
