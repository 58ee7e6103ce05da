"""IEEE 754-style exception flags for conversions into a small float format.

Five flag bits, numbered as in Berkeley SoftFloat / TestFloat (``softfloat_flag_*``), so a
flags column means the same thing in both tools::

    bit   4         3          2          1           0
        invalid | (infinite) | overflow | underflow | inexact
         0x10      0x08        0x04       0x02        0x01

``infinite`` (division by zero) never arises in a conversion and is never set.

Definitions (x = the exact input value, R(x) = x rounded to the format's precision *with an
unbounded exponent range above* -- the grid continues past ``max`` with the top binade's
spacing -- and honouring subnormals below):

* **inexact**: the delivered result differs from x (always with overflow).
* **overflow**: x is finite and ``|R(x)| > max``.  Raised whether the result then saturates to
  ``+-max`` or becomes Inf/NaN, and under every rounding mode (so ``toward_zero`` raises it for
  ``|x| >= max + ulp(max)``, as IEEE 754 does).  For ``fn`` formats the grid past ``max`` contains
  the NaN code's value (``e4m3fn``: 480), so 464 rounds to 448 (no overflow) and 465 overflows.
* **underflow**: x is *tiny* and the result is inexact (IEEE 754 default handling).  Tiny means
  ``0 < |R_p(x)| < 2^emin`` after rounding (``tininess="after"``, the default, as on x86 / Arm /
  RISC-V), where ``R_p`` rounds to ``p = man_bits + 1`` bits with an unbounded exponent range,
  or ``0 < |x| < 2^emin`` before rounding (``tininess="before"``).  With stochastic rounding
  tininess is always detected before rounding (``R_p`` would need a second random draw).
* **invalid**: (1) a signaling NaN input (quiet bit clear), into any format -- IEEE 754 §7.2;
  (2) any NaN input into a format without NaN (``e2m1fn``, ``e2m3fn``, ``e3m2fn``); (3) +-Inf
  into a format without Inf (the value has no representation; like float-to-integer
  conversion) -- saturating or not, and not also overflow, since Inf is not a rounding
  result; (4) a negative non-zero number (or -Inf) into an unsigned format (``e8m0fnu``);
  (5) zero into a format without zero (``e8m0fnu``).  Quiet NaNs into a format with NaN
  raise nothing.
* Zeros, and values exactly representable, raise nothing.  ``-0`` into an ``fnuz`` format
  becomes ``+0`` and raises nothing (the value is zero either way).
"""

from __future__ import annotations

import math

from fractions import Fraction

import numpy as np
from numba import njit, prange

from .._kernels import MODE_CODES  # the rounding layer's mode numbers (one table)
from ..format import Format, RoundMode, TieRule

__all__ = ["INEXACT", "UNDERFLOW", "OVERFLOW", "INFINITE", "INVALID", "FLAG_NAMES",
           "exception_flags", "encode_with_flags", "flag_counts", "flag_names", "signaling_nan_mask"]

INEXACT, UNDERFLOW, OVERFLOW, INFINITE, INVALID = 0x01, 0x02, 0x04, 0x08, 0x10
FLAG_NAMES = {INEXACT: "inexact", UNDERFLOW: "underflow", OVERFLOW: "overflow", INFINITE: "infinite",
              INVALID: "invalid"}
_TININESS = ("after", "before")


@njit(cache=True)
def _round_sig(sig, shift, negative, mode, code_lsb=-1, tie_by_code=False):
    r"""Round the integer significand ``sig`` right by ``shift > 0`` bits; return ``(k, inexact)``.

    Bits of ``sig`` (a float64 significand, at most 53 bits)::

        | kept: k = sig >> shift | R | T T T ... T |
                                   \______________/ rem = sig mod 2^shift, half = R000...0

    Nearest-even rounds up when ``rem > half`` or (``rem == half`` and ``k`` is odd); odd
    (mode 6) when ``rem != 0`` and the truncated code is even.  The code's lowest bit is
    ``k``'s, except for ``man_bits == 0`` formats, where the caller passes it as ``code_lsb``
    (0 or 1, the biased exponent's; ``k == 0`` is code 0) and ``tie_by_code`` makes
    nearest-even use it too (``TieRule.EVEN_EXPONENT``).
    Stochastic rounding (mode 5) returns the round-down ``k``; the caller handles the draw.
    """
    if shift >= 60:  # everything is below half of one unit (sig < 2^53)
        k, rem, gt_half, eq_half = 0, sig, False, False
    else:
        k = sig >> shift
        rem = sig & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        gt_half, eq_half = rem > half, rem == half
    if rem == 0:
        return k, False
    lsb = k & 1
    if code_lsb >= 0:
        lsb = code_lsb if k != 0 else 0
    up = False
    if mode == 0:
        up = gt_half or (eq_half and ((lsb if tie_by_code else k & 1) == 1))
    elif mode == 1:
        up = gt_half or eq_half
    elif mode == 3:
        up = not negative
    elif mode == 4:
        up = negative
    elif mode == 6:
        up = lsb == 0
    return k + 1 if up else k, True


@njit(cache=True)
def _flags_finite(xbits, man_bits, emin, emax, max_sig, subnormals, signed, has_zero, has_inf, mode, tininess_after,
                  bias, tie_by_code):
    """Flags of one non-NaN input, given as float64 bits (see the module docstring for the rules).

    The input is ``sig * 2^e2`` exactly; rounding to multiples of ``2^qe`` is the integer shift
    of :func:`_round_sig` by ``qe - e2`` bits.
    """
    negative = (xbits >> 63) != 0
    mag = xbits & 0x7FFFFFFFFFFFFFFF
    exp_field = mag >> 52
    if exp_field == 0x7FF:  # +-Inf (NaN is handled by the caller)
        if (negative and not signed) or not has_inf:
            return 0x10
        return 0
    if mag == 0:
        return 0 if has_zero else 0x10
    if negative and not signed:
        return 0x10
    if exp_field == 0:  # float64 subnormal: sig * 2^-1074
        sig = mag
        e2 = -1074
        lg = e2
        t = sig
        while t > 1:
            t >>= 1
            lg += 1
    else:
        sig = (mag & 0xFFFFFFFFFFFFF) | (1 << 52)
        e2 = exp_field - 1075
        lg = exp_field - 1023  # floor(log2 |x|)
    if lg >= emin:
        qe = lg - man_bits
    elif subnormals:
        qe = emin - man_bits
    else:
        qe = emin  # the grid below 2^emin is {0, 2^emin}
    if qe <= e2:
        return 0  # a multiple of the quantum: exact (and below max: |x| is a format value or beyond emax)
    code_lsb = (lg + bias) & 1 if man_bits == 0 else -1      # the exponent field is the code
    k, inexact = _round_sig(sig, qe - e2, negative, mode, code_lsb, tie_by_code)
    flags = 0x01 if inexact else 0
    if mode != 5 and (lg > emax or (lg == emax and k > max_sig)):
        # |R(x)| > max on the unbounded grid (k and max_sig in units of the spacing below max:
        # 2^qe is that spacing at lg = emax, also where every value is subnormal).  Such an
        # input is never also tiny, even in a format without normal values
        return flags | 0x05
    if inexact and lg < emin:
        tiny = True
        if tininess_after and mode != 5 and lg == emin - 1:
            # R_p(x) < 2^emin unless rounding to p bits carries up to 2^emin
            kp, _ = _round_sig(sig, lg - man_bits - e2, negative, mode, code_lsb, tie_by_code) \
                if lg - man_bits > e2 else (sig, False)
            tiny = kp < (1 << (man_bits + 1))
        if tiny:
            flags |= 0x02
    return flags


@njit(cache=True, parallel=True)
def _flags_kernel(xbits, snan, out, man_bits, emin, emax, max_sig, subnormals, signed, has_zero, has_inf, has_nan,
                  mode, tininess_after, bias, tie_by_code):
    """Fill ``out[i]`` with the flags of the float64 bit pattern ``xbits[i]``; ``snan[i]`` marks
    signaling NaNs of the source."""
    for i in prange(xbits.shape[0]):
        b = xbits[i]
        if (b & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000:  # NaN
            out[i] = 0x10 if (snan[i] or not has_nan) else 0
        else:
            out[i] = _flags_finite(b, man_bits, emin, emax, max_sig, subnormals, signed, has_zero, has_inf, mode,
                                   tininess_after, bias, tie_by_code)


_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_NO_NAN = np.zeros(1, dtype=bool)


def _check_source(x: np.ndarray, name: str = "x") -> None:
    if x.dtype.kind != "f" and x.dtype.name != "bfloat16":
        raise TypeError(f"{name} must be a float16, bfloat16, float32 or float64 array, got dtype {x.dtype}")
    if x.dtype.itemsize not in _UINT:
        raise TypeError(f"{name} dtype {x.dtype} is not supported: float16, bfloat16, float32 or float64")


def signaling_nan_mask(x: np.ndarray) -> np.ndarray:
    """True where ``x`` is a signaling NaN (exponent all ones, mantissa non-zero, quiet bit clear).

    Read from the source bits: NumPy's float conversions quiet signaling NaNs, so this must be
    decided before any cast.

    Args:
        x: a float array.
    """
    x = np.asarray(x)
    _check_source(x)
    nbits = x.dtype.itemsize * 8
    man = np.finfo(x.dtype).nmant if x.dtype.kind == "f" else 7
    u = x.view(_UINT[x.dtype.itemsize])
    quiet = np.array(1 << (man - 1), dtype=u.dtype)
    exp_mask = np.array(((1 << (nbits - 1 - man)) - 1) << man, dtype=u.dtype)
    man_mask = np.array((1 << man) - 1, dtype=u.dtype)
    return ((u & exp_mask) == exp_mask) & ((u & man_mask) != 0) & ((u & quiet) == 0)


def exception_flags(x: np.ndarray, fmt: Format, *, rounding: RoundMode | str = "nearest_even",
                    tininess: str = "after", out: np.ndarray | None = None) -> np.ndarray:
    """Per-element exception flags (uint8 bit masks) of converting ``x`` into ``fmt``.

    The flags depend only on the input, the format, the rounding mode and the tininess rule,
    not on ``saturate`` (a saturated overflow still raises overflow and inexact).  With
    ``rounding="stochastic"`` the overflow flag depends on the random draw and is left out
    here; :func:`encode_with_flags` adds it.

    Args:
        x: float16, bfloat16, float32 or float64 array (any shape).
        fmt: target format.
        rounding: a :class:`~fp8emu.format.RoundMode` or its name.
        tininess: ``"after"`` (default) or ``"before"`` rounding.
        out: optional uint8 array of ``x``'s shape to write into.

    Returns:
        uint8 array of ``x``'s shape; bits :data:`INEXACT`, :data:`UNDERFLOW`, :data:`OVERFLOW`,
        :data:`INVALID`.

    Raises:
        TypeError: ``x`` is not a supported float array, or ``fmt`` is not a Format.
        ValueError: unknown ``rounding`` or ``tininess``, or ``out`` of the wrong shape/dtype.
    """
    x = np.asarray(x)
    _check_source(x)
    if not isinstance(fmt, Format):
        raise TypeError(f"fmt must be a Format, got {type(fmt).__name__}")
    mode = RoundMode.parse(rounding)
    if tininess not in _TININESS:
        raise ValueError(f"tininess={tininess!r}; allowed: 'after', 'before'")
    if out is None:
        out = np.empty(x.shape, dtype=np.uint8)
    elif out.shape != x.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {x.shape}, got {out.dtype} {out.shape}")
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)  # flat_out is a view (out is contiguous)
    chunk = 1 << 20  # bounded float64 temporaries for large inputs
    for lo in range(0, flat_x.size, chunk):
        part = flat_x[lo:lo + chunk]
        with np.errstate(invalid="ignore"):  # casting NaN payloads is fine here
            wide = part.astype(np.float64)
        # the kernel reads snan[i] only where x[i] is NaN: skip the mask when there is none
        snan = signaling_nan_mask(part) if np.isnan(wide).any() else _NO_NAN
        _flags_kernel(wide.view(np.uint64), snan, flat_out[lo:lo + chunk], fmt.man_bits, fmt.emin, fmt.emax,
                      _max_in_top_spacing(fmt), fmt.subnormals, fmt.signed, fmt.has_zero, fmt.has_inf,
                      fmt.has_nan, MODE_CODES[mode.value], tininess == "after", fmt.bias,
                      fmt.man_bits == 0 and fmt.tie_rule is TieRule.EVEN_EXPONENT)
    return out


def _max_in_top_spacing(fmt: Format) -> int:
    """``max`` in units of the spacing just below it (``2^max_ulp_exp``): ``2^m + max_mantissa``
    with normal values, ``max_mantissa`` where every finite value is subnormal (then the top
    spacing is the subnormal quantum, and ``2^m | max_mantissa`` over-counted max twice)."""
    return int(Fraction(fmt.max) / Fraction(2) ** fmt.max_ulp_exp)


def _unsaturated_twin(fmt: Format) -> Format:
    """A format with ``fmt``'s grid up to ``max`` and one step past it, that does not saturate.

    Encoding into it with ``saturate=False``, the same rounding mode, seed and stream draws the
    same random bits for the same elements (the draw depends on the seed, the stream and the
    element's index, not on the format), so a stochastic draw that went past ``max`` shows there
    as a value past ``max`` (or Inf/NaN):

    * ``fmt`` itself where it has Inf or NaN: an overflow without saturation is Inf or NaN;
    * otherwise (``Specials.NONE``: such formats always saturate) ``fmt`` with its bias lowered
      by one and Inf/NaN in the top exponent field: the same top binade (``emax`` and spacing;
      the bottom moves up one binade, inside float32's range whenever ``fmt`` is), Inf/NaN above;
    * with a single exponent bit that top field would be the only normal binade, so there
      ``fmt`` with one more exponent bit and the same bias: the same grid, continued past ``max``.
    """
    if fmt.has_inf or fmt.has_nan:
        return fmt
    specials = "ieee" if fmt.man_bits else "fn"  # "ieee" needs a mantissa bit for its NaN codes
    if fmt.exp_bits >= 2:
        return Format(fmt.exp_bits, fmt.man_bits, bias=fmt.bias - 1, subnormals=fmt.subnormals,
                      specials=specials, signed=fmt.signed, has_zero=fmt.has_zero)
    return Format(fmt.exp_bits + 1, fmt.man_bits, bias=fmt.bias, subnormals=fmt.subnormals,
                  specials=specials, signed=fmt.signed, has_zero=fmt.has_zero)


def encode_with_flags(x: np.ndarray, fmt: Format, *, rounding: RoundMode | str = "nearest_even",
                      saturate: bool = False, seed: int | None = None, stream: int = 0,
                      tininess: str = "after") -> tuple[np.ndarray, np.ndarray]:
    """:func:`fp8emu.encode` plus the exception flags of every element.

    Args:
        x: float16, bfloat16, float32 or float64 array.
        fmt: target format.
        rounding: rounding mode (name or :class:`~fp8emu.format.RoundMode`).
        saturate: clamp overflow to ``+-max`` (flags are unchanged by it).
        seed: seed of the stochastic-rounding bits.
        stream: stochastic-rounding stream (see :func:`fp8emu.encode`).
        tininess: ``"after"`` (default) or ``"before"`` rounding.

    Returns:
        ``(codes, flags)``: the codes exactly as :func:`fp8emu.encode` returns them, and a uint8
        flags array of the same shape.
    """
    from ..quantize import encode

    x = np.asarray(x)
    mode = RoundMode.parse(rounding)
    kw = dict(rounding=mode, saturate=saturate)
    if mode is RoundMode.STOCHASTIC:
        kw.update(seed=seed, stream=stream)
    codes = encode(x, fmt, **kw)
    flags = exception_flags(x, fmt, rounding=mode, tininess=tininess)
    if mode is RoundMode.STOCHASTIC:
        flags |= _stochastic_overflow(x, fmt, codes, kw)
    return codes, flags


def _stochastic_overflow(x: np.ndarray, fmt: Format, codes: np.ndarray, kw: dict) -> np.ndarray:
    """OVERFLOW|INEXACT where the stochastic draw went past ``max``.

    Values at or above ``max + ulp`` overflow whatever the draw.  For ``max < |x| < max + ulp``
    the draw is recovered by encoding ``x`` again without saturation, with the same seed and
    stream, into :func:`_unsaturated_twin` (``fmt`` itself where it has Inf or NaN): the draw went
    up where that result is not a finite value within ``max``.
    """
    xf = np.asarray(x, dtype=np.float64)
    # the spacing at max: its binade's, or the subnormal quantum where every value is subnormal
    # (no exponent bits: emax < emin)
    ulp = math.ldexp(1.0, fmt.max_ulp_exp)
    ax = np.abs(xf)
    over = np.isfinite(ax) & (ax >= fmt.max + ulp)
    maybe = np.isfinite(ax) & (ax > fmt.max) & ~over
    if maybe.any():
        from ..quantize import decode, encode
        twin = _unsaturated_twin(fmt)
        again = decode(encode(x, twin, **{**kw, "saturate": False}), twin, dtype=np.float64)
        with np.errstate(invalid="ignore"):  # NaN compares False: it went past max
            over |= maybe & ~(np.abs(again) <= fmt.max)
    return np.where(over, np.uint8(OVERFLOW | INEXACT), np.uint8(0))


def flag_counts(flags: np.ndarray) -> dict[str, int]:
    """How many elements raised each flag: ``{"inexact": n, "underflow": n, "overflow": n, "invalid": n}``.

    Args:
        flags: uint8 flags per element.
    """
    flags = np.asarray(flags)
    return {name: int(np.count_nonzero(flags & bit)) for bit, name in FLAG_NAMES.items() if bit != INFINITE}


def flag_names(flags: int) -> str:
    """``"inexact|underflow"`` style text for one flags value (``"-"`` for none).

    Args:
        flags: one flags value.
    """
    names = [name for bit, name in FLAG_NAMES.items() if flags & bit]
    return "|".join(names) if names else "-"
