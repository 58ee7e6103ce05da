"""Hypothesis strategies for property tests of your own kernels against fp8emu.

Importing this module imports ``hypothesis`` (the rest of fp8emu does not need it)::

    import numpy as np
    from hypothesis import given, settings
    from fp8emu import encode
    from fp8emu.formats import e4m3fn
    from fp8emu.testing import values_near_rounding_boundaries

    def my_kernel(x):  # your kernel (here: fp8emu itself, so the property holds)
        return encode(x, e4m3fn)

    # deadline=None: the first call compiles fp8emu's kernels (seconds on a cold cache), far
    # past hypothesis's default 200 ms deadline; derandomize=True: the same examples every run
    @settings(deadline=None, max_examples=300, derandomize=True, database=None)
    @given(values_near_rounding_boundaries(e4m3fn, "float32"))
    def test_my_kernel(x):
        assert my_kernel(np.array([x]))[0] == encode(np.array([x]), e4m3fn)[0]

The strategies shrink toward simple cases: the first format of the catalogue, code 0, the
first rounding boundary, zero ulps away from it, positive sign.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from .format import Format, Specials, TieRule
from .formats import CATALOGUE
from .verify.vectors import SOURCES as SOURCE_DTYPES
from .verify.vectors import rounding_boundaries, source_dtype

__all__ = ["formats", "codes", "source_dtype", "source_values", "rounding_boundaries",
           "values_near_rounding_boundaries", "arrays", "SOURCE_DTYPES"]

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@st.composite
def formats(draw, *, presets: bool = True, custom: bool = True, max_bits: int = 16) -> Format:
    """A :class:`Format`: a catalogue preset or a random valid ExMy format of at most ``max_bits``.

    Args:
        presets: include the presets of :mod:`fp8emu.formats` (P3109 ones included).
        custom: include randomly built formats: exponent width 0..8 (0: no exponent field),
            mantissa width 0..23, a bias near the default, any specials, with or without
            subnormals, sign bit and zero, either tie rule when ``man_bits == 0``.  Field
            combinations that describe no format fall back to the default bias, then to a
            zero with subnormals and other specials, then to ``e2m1fn``'s fields.
        max_bits: upper bound on ``Format.bits`` (4..32).

    Raises:
        ValueError: when both ``presets`` and ``custom`` are False, or ``max_bits`` is outside 4..32.
    """
    if not (presets or custom):
        raise ValueError("formats(): at least one of presets=True, custom=True is needed")
    if isinstance(max_bits, bool) or not isinstance(max_bits, int) or not 4 <= max_bits <= 32:
        raise ValueError(f"formats(): max_bits={max_bits!r} is not an int in 4..32")
    pool = [f for f in CATALOGUE if f.bits <= max_bits]
    if presets and (not custom or not draw(st.booleans())):  # False (the shrink target) = a preset
        return draw(st.sampled_from(pool))
    # Each draw shrinks toward the plain case: signed, a zero, the default bias, IEEE specials.
    signed = not draw(st.booleans())
    exp_bits = draw(st.integers(0, min(8, max_bits - int(signed))))
    man_bits = draw(st.integers(0, min(23, max_bits - int(signed) - exp_bits)))
    default_bias = (1 << (exp_bits - 1)) - 1 if exp_bits else 0
    bias = default_bias + draw(st.integers(-2, 4))
    specials = draw(st.sampled_from(list(Specials)))
    has_zero = not draw(st.booleans())
    subnormals = has_zero and draw(st.booleans())       # no zero needs no subnormals
    tie_rule = draw(st.sampled_from(list(TieRule))) if man_bits == 0 else TieRule.UP
    drawn = dict(bias=bias, subnormals=subnormals, specials=specials, signed=signed, has_zero=has_zero,
                 tie_rule=tie_rule)
    plain = dict(drawn, bias=None, subnormals=True, has_zero=True)
    # Many draws describe no format (no NaN code without mantissa bits, values outside
    # float32's range, fewer than two magnitudes): fall back step by step, same widths.
    for kw in (drawn, dict(drawn, bias=None), plain, dict(plain, specials=Specials.NONE),
               dict(plain, specials=Specials.FN)):
        try:
            return Format(exp_bits, man_bits, **kw)
        except ValueError:
            continue
    # no format at all has these widths (e0m0, one code); e2m1fn fits any max_bits >= 4
    return Format(2, 1, specials=Specials.NONE)


def codes(fmt: Format, *, allow_nan: bool = True) -> st.SearchStrategy[int]:
    """Any code (bit pattern) of ``fmt`` as an ``int``; ``allow_nan=False`` leaves out the NaN codes.

    Args:
        fmt: the format.
        allow_nan: include the NaN codes.
    """
    strat = st.integers(0, fmt.num_codes - 1)
    return strat if allow_nan or not fmt.has_nan else strat.filter(lambda c: not fmt.is_nan_code(c))


@st.composite
def values_near_rounding_boundaries(draw, fmt: Format, source: str | np.dtype = "float32", *,
                                    max_ulps: int = 2):
    """A scalar of ``source`` dtype within ``max_ulps`` source ulps of a rounding boundary of ``fmt``.

    Shrinks toward zero ulps of the smallest boundary with a positive sign.

    Args:
        fmt: the target format.
        source: the source dtype name (float16, bfloat16, float32, float64) or dtype.
        max_ulps: how far from the boundary, in units in the last place of the source.
    """
    dt = source_dtype(source)
    bits = rounding_boundaries(fmt, dt).view(_UINT[dt.itemsize])
    b = int(bits[draw(st.integers(0, len(bits) - 1))])
    b += draw(st.integers(-max_ulps, max_ulps))
    negative = draw(st.booleans())
    width = dt.itemsize * 8
    b = min(max(b, 0), (1 << (width - 1)) - 1)
    v = np.array(b | ((1 << (width - 1)) if negative else 0), dtype=_UINT[dt.itemsize]).view(dt)[()]
    if not np.isfinite(v):  # stepped past the largest finite source value
        v = np.array(np.finfo(dt).max if dt.name != "bfloat16" else 3.3895313892515355e38).astype(dt)[()]
    return v


def source_values(source: str | np.dtype = "float32") -> st.SearchStrategy:
    """Any value of the source dtype, from its bit patterns: zeros, subnormals, Inf, every NaN payload.

    Args:
        source: the source dtype or its name.
    """
    dt = source_dtype(source)
    width = dt.itemsize * 8
    return st.integers(0, (1 << width) - 1).map(lambda b: np.array(b, dtype=_UINT[dt.itemsize]).view(dt)[()])


@st.composite
def arrays(draw, fmt: Format, source: str | np.dtype = "float32", *, shape: tuple[int, ...] | None = None,
           max_side: int = 8):
    """A NumPy array of ``source`` dtype that mixes values near ``fmt``'s rounding boundaries with
    arbitrary source bit patterns (NaN payloads, Inf, subnormals).

    Args:
        fmt: the target format.
        source: the source dtype name or dtype.
        shape: a fixed shape, or None for a random shape of 0..3 dimensions, sides 0..``max_side``.
        max_side: the largest side of a random shape.
    """
    dt = source_dtype(source)
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, max_side), max_size=3)))
    n = math.prod(shape)
    elem = st.one_of(values_near_rounding_boundaries(fmt, dt), source_values(dt))
    vals = draw(st.lists(elem, min_size=n, max_size=n))
    return np.array(vals, dtype=dt).reshape(shape)
