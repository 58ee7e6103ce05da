"""The executable spec: a slow, exact scalar quantizer in Python ints/Fractions (docs/spec.md states the rule).

Nothing here shares code with the Numba kernels (``_kernels.py``); tests hold the two to
bit equality.  Every value is handled as an exact rational, so there is exactly one
rounding, whatever the source type.

Algorithm of :func:`round_scalar` (magnitude rounding, sign applied last):

1. NaN -> the canonical NaN code (formats without NaN: the negative-zero code, like
   ml_dtypes).  Unsigned formats: negative non-zero inputs -> NaN.
2. +-Inf -> +-Inf (IEEE formats) or NaN (fn/fnuz); +-max when saturating or for formats
   without Inf and NaN.
3. 0 -> signed zero (+0 in fnuz and unsigned formats; NaN for formats without zero).
4. ``e = floor(log2 |x|)``; the quantum is ``2^(e - m)`` for normals, ``2^(emin - m)`` in
   the subnormal range, ``2^emin`` below ``min_normal`` when the format has no subnormals.
5. ``|x| / quantum = k + f`` with integer ``k`` and ``0 <= f < 1``; the mode decides
   whether ``k`` becomes ``k + 1`` (away from zero).  ``nearest_even`` ties look at the
   parity of ``k`` -- or, for ``man_bits == 0`` with ``TieRule.EVEN_EXPONENT``, at the
   parity of the code of ``k * quantum`` (its exponent field); ``odd`` rounds away when
   ``f > 0`` and the code of ``k * quantum`` is even.
6. Overflow is decided after rounding: a result above ``max`` gives ``+-max`` when
   saturating, for formats without Inf/NaN, or when the mode rounds toward zero for that
   sign (``toward_zero``; ``down`` for positives; ``up`` for negatives; ``odd``), as in
   IEEE 754 §7.4; otherwise +-Inf (IEEE formats) or NaN.
7. A zero result keeps the input's sign (+0 in fnuz); formats without zero give their
   smallest magnitude instead, with the input's sign (ml_dtypes' E8M0 behaviour).
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from .format import Format, RoundMode, Specials, TieRule

__all__ = ["to_fraction", "decode_scalar", "round_scalar", "round_to_format"]


def to_fraction(x) -> Fraction:
    """The exact value of a finite number (Python/NumPy float of any width, int, Fraction).

    Args:
        x: a finite Python/NumPy float (``np.longdouble`` included), a Python or NumPy
            integer, a Fraction, or a float scalar of another library no wider than float64
            (``ml_dtypes.bfloat16``).
    """
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))  # not through float(): np.int64(2^54 + 1) is no float64 value
    if isinstance(x, (float, np.floating)):
        # as_integer_ratio is exact at the scalar's own width: float(np.longdouble) would
        # round an 64-bit-significand value to 53 bits first (a second rounding)
        return Fraction(*x.as_integer_ratio())
    return Fraction(float(x))  # exact: the other float scalars (ml_dtypes') are float64 values


def decode_scalar(code: int, fmt: Format) -> float:
    """Exact value of ``code`` (as a float: every format value fits float64 exactly).

    Args:
        code: an integer code ``0 .. fmt.num_codes - 1``.
        fmt: the format.

    Raises:
        ValueError: ``code`` is out of range.
    """
    if not 0 <= code < fmt.num_codes:
        raise ValueError(f"code {code} is out of range for {fmt.name} (0..{fmt.num_codes - 1})")
    if fmt.is_nan_code(code):
        return math.nan
    negative = bool(code & fmt.sign_mask)
    mag = code & ~fmt.sign_mask
    e_field, t = mag >> fmt.man_bits, mag & ((1 << fmt.man_bits) - 1)
    if fmt.is_inf_code(code):
        value = math.inf
    elif e_field == 0 and fmt.has_zero:
        value = float(Fraction(t, 1 << fmt.man_bits) * Fraction(2) ** fmt.emin) if fmt.subnormals else 0.0
    else:
        value = float((1 + Fraction(t, 1 << fmt.man_bits)) * Fraction(2) ** (e_field - fmt.bias))
    if value == 0 and not fmt.has_negative_zero:
        return 0.0              # fnuz/extended without subnormals: sign-set zero codes are +0
    return -value if negative else value


def _floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    return e if Fraction(2) ** e <= a else e - 1


def _sr_up_exact(f: Fraction, word: Callable[[int], int]) -> bool:
    """True with probability exactly ``f``: compare U = 0.w0 w1 w2 ... (64-bit words) with f."""
    j = 0
    while True:
        f *= 1 << 64
        chunk = math.floor(f)
        f -= chunk
        w = word(j)
        if w != chunk:
            return w < chunk
        if f == 0:              # U >= f: the remaining bits of f are all zero
            return False
        j += 1


def _code_of_value(v: Fraction, fmt: Format) -> int:
    """Magnitude code of a positive representable value ``v``."""
    e = max(_floor_log2(v), fmt.emin)
    if e == fmt.emin and v < Fraction(2) ** fmt.emin:      # subnormal
        return int(v / Fraction(2) ** (fmt.emin - fmt.man_bits))
    t = v / Fraction(2) ** (e - fmt.man_bits) - (1 << fmt.man_bits)
    return ((e + fmt.bias) << fmt.man_bits) | int(t)


def _nan_or(fmt: Format, fallback: int) -> int:
    return fmt.nan_code if fmt.nan_code is not None else fallback


def round_scalar(x, fmt: Format, mode: RoundMode | str = RoundMode.NEAREST_EVEN, saturate: bool = False,
                 *, sr_words: Sequence[int] | Callable[[int], int] | None = None, sr_bits: int | None = None) -> int:
    """Round one number into ``fmt`` and return its code (the spec of ``encode``).

    Args:
        x: a Python/NumPy float of any width (``np.longdouble`` included; NaN/Inf allowed),
            a Python/NumPy integer or a Fraction, taken at its exact value.
        fmt: target format.
        mode: rounding mode.
        saturate: clamp overflow (and Inf) to +-max.
        sr_words: for ``stochastic``: the element's random 64-bit words ``w_0, w_1, ...``
            (a sequence or a function of ``j``).  ``sr_bits=None``: round away from zero iff
            ``0.w_0 w_1 ... < f`` (probability exactly ``f``).  ``sr_bits=r``: add the top
            ``r`` bits of ``w_0`` to ``floor(f * 2^r)`` and carry (probability
            ``floor(f * 2^r) / 2^r``, biased toward zero by less than ``2^-r`` ulp).
        sr_bits: see ``sr_words``.
    """
    mode = RoundMode.parse(mode)
    sign = fmt.sign_mask
    exact = isinstance(x, (Fraction, int, np.integer))     # no NaN, Inf or -0
    if not exact and math.isnan(x):
        return _nan_or(fmt, sign)
    # float(x) keeps the sign of -0.0 and of a longdouble too small for float64
    negative = (x < 0) if exact else math.copysign(1.0, float(x)) < 0
    max_code = fmt.max_code | (sign if negative else 0)
    if negative and not fmt.signed and x != 0:
        return _nan_or(fmt, 0)
    # np.isinf, not math.isinf, for NumPy floats: math.isinf(np.longdouble(1e400)) converts to
    # float64 first and calls that finite value infinite
    if not exact and (bool(np.isinf(x)) if isinstance(x, np.floating) else math.isinf(x)):
        if saturate or fmt.specials is Specials.NONE:
            return max_code
        return (fmt.inf_code | (sign if negative else 0)) if fmt.has_inf else fmt.nan_code
    a = abs(to_fraction(x))
    signed_zero = sign if negative and fmt.has_negative_zero else 0
    if a == 0:
        return signed_zero if fmt.has_zero else _nan_or(fmt, sign if negative else 0)

    e = _floor_log2(a)
    if e >= fmt.emin:
        quantum_exp = e - fmt.man_bits
    else:
        quantum_exp = fmt.emin - fmt.man_bits if fmt.subnormals else fmt.emin
    q = a / Fraction(2) ** quantum_exp
    k = math.floor(q)
    f = q - k

    def code_is_odd() -> bool:       # the truncated value's code (beyond max: as if unbounded)
        return k != 0 and _code_of_value(k * Fraction(2) ** quantum_exp, fmt) % 2 == 1

    if mode is RoundMode.NEAREST_EVEN:
        by_code = fmt.man_bits == 0 and fmt.tie_rule is TieRule.EVEN_EXPONENT
        odd = code_is_odd() if by_code else k % 2 == 1
        away = f > Fraction(1, 2) or (f == Fraction(1, 2) and odd)
    elif mode is RoundMode.NEAREST_AWAY:
        away = f >= Fraction(1, 2)
    elif mode is RoundMode.TOWARD_ZERO:
        away = False
    elif mode is RoundMode.UP:
        away = f > 0 and not negative
    elif mode is RoundMode.DOWN:
        away = f > 0 and negative
    elif mode is RoundMode.ODD:
        away = f > 0 and not code_is_odd()
    else:
        if sr_words is None:
            raise ValueError("stochastic rounding needs sr_words")
        word = sr_words if callable(sr_words) else (lambda j: sr_words[j])
        if f == 0:
            away = False
        elif sr_bits is None:
            away = _sr_up_exact(f, word)
        else:
            away = math.floor(f * (1 << sr_bits)) + (word(0) >> (64 - sr_bits)) >= (1 << sr_bits)
    k += int(away)

    v = k * Fraction(2) ** quantum_exp
    if v > Fraction(fmt.max):
        toward_max = mode in (RoundMode.TOWARD_ZERO, RoundMode.ODD) or (mode is RoundMode.UP and negative) or \
            (mode is RoundMode.DOWN and not negative)
        if saturate or fmt.specials is Specials.NONE or toward_max:
            return max_code
        return (fmt.inf_code | (sign if negative else 0)) if fmt.has_inf else fmt.nan_code
    if v == 0:
        if fmt.has_zero:
            return signed_zero
        return sign if negative else 0               # no zero: the smallest magnitude, code 0, signed
    return _code_of_value(v, fmt) | (sign if negative else 0)


def __getattr__(name: str):
    # encode_scalar was an alias of round_scalar; kept, with a warning, for old callers
    if name == "encode_scalar":
        warnings.warn("fp8emu.spec.encode_scalar is deprecated; use fp8emu.spec.round_scalar (the same function)",
                      DeprecationWarning, stacklevel=2)
        return round_scalar
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def round_to_format(x, fmt: Format, mode: RoundMode | str = RoundMode.NEAREST_EVEN, saturate: bool = False,
                    **sr) -> float:
    """``decode_scalar(round_scalar(x, ...))``: the rounded value as a float.

    Args:
        x: as :func:`round_scalar`.
        fmt: as :func:`round_scalar`.
        mode: as :func:`round_scalar`.
        saturate: as :func:`round_scalar`.
        **sr: ``sr_words`` and ``sr_bits`` of :func:`round_scalar`.
    """
    return decode_scalar(round_scalar(x, fmt, mode, saturate, **sr), fmt)
