"""Ask LLVM for 512-bit vectors in one Numba kernel, whatever its CPU tuning prefers.

LLVM tunes the Intel AVX-512 CPUs (Skylake-SP through Sapphire Rapids, and the client parts
such as Rocket Lake) with ``prefer-256-bit``: its loop vectoriser then emits ``ymm`` code,
because on the first AVX-512 parts 512-bit instructions lowered the clock for everything that
followed.  AMD's Zen 4 and Zen 5 have no such tuning and get ``zmm`` code.  For the rounding
kernels, integer bit manipulation in 32- and 64-bit lanes, the 256-bit choice is measurably
slower on the Intel Xeons this project runs on (issue 19, ``docs/results/benchmarks.md``): with
512-bit code, exact stochastic rounding of float32 takes 0.67-0.70x the time, ``encode`` of
float32 0.66-0.70x, ``quantize`` of float64 0.58-0.76x.  Kernels with a 16-bit array (float16
and bfloat16 inputs, bfloat16 codes) measured 1-8 % slower in 512-bit code there, so they keep
the CPU's preference, except loops that convert 16-bit elements to float32 bits and compute in
32- and 64-bit lanes (the float32 kernels on float16 and bfloat16 arrays,
:func:`prefer_512_bit_vectors_converting`): float16 exact SR took 0.63-0.71x the time with
512-bit code there.

:func:`prefer_512_bit_vectors`, called in a kernel's loop body with the kernel's input and
output arrays, sets the LLVM function attribute ``"prefer-vector-width"="512"`` on the function
being compiled (for a ``prange`` loop: Numba's outlined loop function) unless one of the two
has 16-bit elements.  X86's backend reads the attribute per function, so it overrides the CPU's
tuning for that function alone; other Numba code in the process keeps its own settings (unlike
``NUMBA_CPU_FEATURES``, which is global).  It emits no instruction and changes no result: the
lanes compute the same operations whatever the vector width (integer arithmetic, and float32
additions that are never reassociated: no fast-math flags).  On CPUs without 512-bit vectors
(AVX2) the widest legal vector stays the limit, so the attribute changes nothing there.

llvmlite checks function attributes against a fixed list of flag names, which has no key-value
string attributes; the attribute goes into the set directly.  Should a later llvmlite store
attributes differently, the call does nothing and the kernel compiles as before.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["prefer_512_bit_vectors", "prefer_512_bit_vectors_converting", "VECTOR_WIDTH_ATTRIBUTE"]

#: The LLVM function attribute, as it appears in the function's IR.
VECTOR_WIDTH_ATTRIBUTE = '"prefer-vector-width"="512"'


def _mark(function) -> bool:
    """Add :data:`VECTOR_WIDTH_ATTRIBUTE` to an llvmlite ``ir.Function``; False where llvmlite's
    attribute set is not the plain ``set`` subclass this relies on."""
    attributes = getattr(function, "attributes", None)
    if not isinstance(attributes, set):
        return False
    set.add(attributes, VECTOR_WIDTH_ATTRIBUTE)      # past llvmlite's list of flag names
    return True


def _wants_512(array_types) -> bool:
    """Whether the kernel of these array argument types gets 512-bit vectors: unless one has
    16-bit elements (see the module docstring)."""
    return all(getattr(getattr(t, "dtype", None), "bitwidth", 0) != 16 for t in array_types)


@intrinsic
def prefer_512_bit_vectors(typingctx, source, target):
    """Mark the calling function for 512-bit vectors unless ``source`` or ``target`` (the
    kernel's input and output arrays) has 16-bit elements; emits no code."""
    if not (isinstance(source, types.Array) and isinstance(target, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        if _wants_512(signature.args):
            _mark(builder.function)
        return context.get_dummy_value()
    return types.void(source, target), codegen


@intrinsic
def prefer_512_bit_vectors_converting(typingctx, source, target):
    """:func:`prefer_512_bit_vectors` for a loop that converts 16-bit elements to float32 bits
    and computes in 32- and 64-bit lanes: marks the calling function whatever the arrays'
    element widths; emits no code."""
    if not (isinstance(source, types.Array) and isinstance(target, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        _mark(builder.function)
        return context.get_dummy_value()
    return types.void(source, target), codegen
