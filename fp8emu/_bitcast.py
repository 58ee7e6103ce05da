"""Bit casts between int32 and float32 scalars inside Numba kernels (LLVM ``bitcast``: no
instruction, the same register read as the other type)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["f32_from_bits", "bits_from_f32"]


@intrinsic
def f32_from_bits(typingctx, v):
    """The float32 whose bits are the int32 or uint32 ``v``."""
    if not isinstance(v, types.Integer) or v.bitwidth != 32:
        return None
    sig = types.float32(v)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


@intrinsic
def bits_from_f32(typingctx, v):
    """The bits of float32 ``v`` as an int32."""
    if v != types.float32:
        return None
    sig = types.int32(v)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return sig, codegen
