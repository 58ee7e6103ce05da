"""float16 <-> float32 bit conversions inside Numba kernels, exact both ways.

The float32 kernels round float16 inputs by converting each element to float32 bits in the
loop (every float16 value is a float32 value, so the element's rounding and random word are
the float32 kernel's) and, for ``quantize``, the rounded value back (it is a value of a format
that float16 holds, so nothing rounds there).  Two implementations of each direction:

* the F16C instructions (``vcvtph2ps`` / ``vcvtps2ph``), through LLVM's ``fpext`` /
  ``fptrunc`` of ``half``, where the code being compiled may use F16C (every AVX2 CPU has it);
* integer bit manipulation (:func:`f32_bits_of_f16_int`, :func:`f16_bits_of_f32_int`)
  elsewhere: without F16C, LLVM would call ``__extendhfsf2``, which Numba's JIT cannot link.

Tests hold the two equal on every pattern, except that the instruction quiets a signalling
NaN (sets fraction bit 22) where the integer version keeps its payload as it is: the kernels
map every NaN alike.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._bitcast import bits_from_f32, f32_from_bits

__all__ = ["f32_bits_of_f16", "f16_bits_of_f32", "f32_bits_of_f16_int", "f16_bits_of_f32_int"]

_I32 = np.int32


def f32_bits_of_f16_int(h):
    """The float32 bits (uint32) of float16 bits ``h`` (exact; NaN payloads kept)::

        float16 | s | E (5)       | T (10)           |
        float32 | s | E + 112 (8) | T | 13 zero bits |      0 < E < 31
                | s | 255         | T | 13 zero bits |      E = 31 (Inf, NaN)

    E = 0 (zero, subnormal: T * 2^-24) by one exact float32 subtraction, branch-free:
    ``(2^-14 + T * 2^-24) - 2^-14``, the first term having exponent field 113 and fraction T.
    """
    hv = _I32(np.uint32(h) & np.uint32(0xFFFF))
    a = _I32(_I32(hv & _I32(0x7FFF)) << _I32(13))
    e = _I32(a & _I32(0x0F800000))                   # float16's exponent field, in place
    r = _I32(a + _I32(112 << 23))
    r = _I32(r + _I32(112 << 23)) if e == _I32(0x0F800000) else r
    sub = bits_from_f32(f32_from_bits(_I32(r + _I32(1 << 23))) - f32_from_bits(_I32(113 << 23)))
    r = sub if e == _I32(0) else r
    return np.uint32(_I32(r | _I32(_I32(hv & _I32(0x8000)) << _I32(16))))


def f16_bits_of_f32_int(r):
    """The float16 bits (uint16) of float32 bits ``r`` (int32 or uint32) whose value float16
    holds exactly (NaN -> a quiet NaN, the payload's top 9 bits kept).  Normal: rebias and
    shift (the 13 low fraction bits are 0); below 2^-14 (subnormal or zero, a multiple of
    2^-24): ``bits(|x| + 0.5) - bits(0.5)``, exact because 0.5's quantum is 2^-24."""
    ri = _I32(r)
    a = _I32(ri & _I32(0x7FFFFFFF))
    s = _I32(_I32(ri >> _I32(16)) & _I32(0x8000))
    normal = _I32(_I32(a - _I32(112 << 23)) >> _I32(13))
    sub = _I32(bits_from_f32(f32_from_bits(a) + np.float32(0.5)) - _I32(0x3F000000))
    quiet = _I32(0x200) if a > _I32(0x7F800000) else _I32(0)
    special = _I32(_I32(0x7C00) | _I32(_I32(a >> _I32(13)) & _I32(0x3FF)) | quiet)
    h = special if a >= _I32(0x7F800000) else (normal if a >= _I32(0x38800000) else sub)
    return np.uint16(_I32(h | s))


def _target_has_f16c(context) -> bool:
    """Whether the code being compiled may use F16C: the feature string of Numba's codegen
    (host or ``NUMBA_CPU_FEATURES``), the one its cache is keyed by."""
    try:
        features = context.codegen().magic_tuple()[2]
    except Exception:       # another codegen: the integer version is always valid
        return False
    return "+f16c" in str(features).split(",")


@intrinsic
def f32_bits_of_f16(typingctx, h):
    """:func:`f32_bits_of_f16_int` by ``vcvtph2ps`` where the target has F16C."""
    if not isinstance(h, types.Integer):
        return None
    sig = types.uint32(h)

    def codegen(context, builder, signature, args):
        if not _target_has_f16c(context):
            return context.compile_internal(builder, f32_bits_of_f16_int, signature, args)
        v = args[0]
        h16 = builder.trunc(v, ir.IntType(16)) if v.type.width > 16 else builder.zext(v, ir.IntType(16)) \
            if v.type.width < 16 else v
        f = builder.fpext(builder.bitcast(h16, ir.HalfType()), ir.FloatType())
        return builder.bitcast(f, ir.IntType(32))
    return sig, codegen


@intrinsic
def f16_bits_of_f32(typingctx, r):
    """:func:`f16_bits_of_f32_int` by ``vcvtps2ph`` where the target has F16C (the value is
    exact in float16, so the instruction's rounding never acts)."""
    if not (isinstance(r, types.Integer) and r.bitwidth == 32):
        return None
    sig = types.uint16(r)

    def codegen(context, builder, signature, args):
        if not _target_has_f16c(context):
            return context.compile_internal(builder, f16_bits_of_f32_int, signature, args)
        f = builder.fptrunc(builder.bitcast(args[0], ir.FloatType()), ir.HalfType())
        return builder.bitcast(f, ir.IntType(16))
    return sig, codegen


#: Jitted integer versions, for tests.
f32_bits_of_f16_int_jit = njit(cache=True)(f32_bits_of_f16_int)
f16_bits_of_f32_int_jit = njit(cache=True)(f16_bits_of_f32_int)
