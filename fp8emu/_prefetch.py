"""Software prefetch for the element-wise kernels: ask for the input ahead of its use.

The rounding kernels do some 20-130 vector instructions per 16 elements.  On the hosts this
project runs on, such loops streaming an array from DRAM ran up to 4x slower than on the same
data in cache, although they need a small part of the memory bandwidth (a plain copy of the
array ran several times faster): the hardware prefetchers did not keep a slowly consumed
stream ahead.  Prefetching each block's input a few KB ahead brought them back near their
in-cache time (``tools/probes/prefetch.py`` shows it on a synthetic loop; the kernels that use
it, and the figures, are in ``fp8emu/_kernels.py`` at ``_PREFETCH_BLOCK``; issue 19).

:func:`prefetch` is LLVM's ``llvm.prefetch`` intrinsic (read, keep in every cache level, data
cache): on x86 one ``prefetcht0`` instruction.  A prefetch is a hint: it never faults, never
changes a result or memory, and the CPU drops it when its resources are busy.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch", "prefetch_lines", "CACHE_LINE"]

#: Bytes per cache line on the x86 and Arm server CPUs this targets; a prefetch brings one line.
CACHE_LINE = 64


@intrinsic
def prefetch(typingctx, array, index):
    """Prefetch the cache line holding ``array[index]`` (a 1-D array, an index within it) into
    every cache level, for reading.  Emits one prefetch instruction and nothing else."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type = signature.args
        ary = context.make_array(array_type)(context, builder, args[0])
        idx = context.cast(builder, args[1], index_type, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, array_type, ary, [idx], wraparound=False)
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # (address, rw = 0: read, locality = 3: keep in every level, cache type = 1: data)
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(array, index), codegen


@njit(cache=True, inline="always")
def prefetch_lines(array, lo, hi):
    """Prefetch the lines of ``array[lo:hi]`` (clipped to the array): one prefetch per cache
    line.  A kernel calls it with a range ahead of the one it computes."""
    step = max(CACHE_LINE // array.itemsize, 1)
    end = min(hi, array.shape[0])
    for j in range(lo, end, step):
        prefetch(array, j)
