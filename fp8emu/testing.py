"""Hypothesis strategies for property tests of your own kernels against fp8emu.

Importing this module imports ``hypothesis`` (the rest of fp8emu does not need it)::

    from hypothesis import given
    from fp8emu import encode
    from fp8emu.formats import e4m3fn
    from fp8emu.testing import values_near_rounding_boundaries

    @given(values_near_rounding_boundaries(e4m3fn, "float32"))
    def test_my_kernel(x):
        assert my_kernel(x) == encode(x, e4m3fn)

The strategies shrink toward simple cases: the first format of the catalogue, code 0, the
first rounding boundary, zero ulps away from it, positive sign.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from .format import Format, Specials
from .formats import ALL_FORMATS

__all__ = ["formats", "codes", "source_dtype", "source_values", "rounding_boundaries",
           "values_near_rounding_boundaries", "arrays", "SOURCE_DTYPES"]

SOURCE_DTYPES = ("float16", "bfloat16", "float32", "float64")
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def source_dtype(name: str | np.dtype | type) -> np.dtype:
    """The NumPy dtype for a source name (``float16``, ``bfloat16``, ``float32``, ``float64``).

    Raises:
        ValueError: for any other dtype.
    """
    if isinstance(name, str) and name.strip().lower() in ("bfloat16", "bf16"):
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    try:
        dt = np.dtype(name)
    except TypeError:
        dt = None
    if dt is not None and (dt.name in SOURCE_DTYPES):
        return dt
    raise ValueError(f"source_dtype={name!r} is not supported; allowed: {', '.join(SOURCE_DTYPES)}")


@st.composite
def formats(draw, *, presets: bool = True, custom: bool = True, max_bits: int = 16) -> Format:
    """A :class:`Format`: a catalogue preset or a random valid ExMy format of at most ``max_bits``.

    Args:
        presets: include the presets of :mod:`fp8emu.formats`.
        custom: include randomly built formats (any widths, bias, specials, subnormals, sign).
        max_bits: upper bound on ``Format.bits`` (4..16).

    Raises:
        ValueError: when both ``presets`` and ``custom`` are False.
    """
    if not (presets or custom):
        raise ValueError("formats(): at least one of presets=True, custom=True is needed")
    pool = [f for f in ALL_FORMATS if f.bits <= max_bits]
    if presets and (not custom or draw(st.booleans())):
        return draw(st.sampled_from(pool))
    exp_bits = draw(st.integers(2, min(8, max_bits - 2)))
    man_bits = draw(st.integers(1, max_bits - 1 - exp_bits))
    default_bias = (1 << (exp_bits - 1)) - 1
    bias = draw(st.integers(default_bias - 2, default_bias + 4))
    specials = draw(st.sampled_from(list(Specials)))
    subnormals = draw(st.booleans())
    try:
        return Format(exp_bits, man_bits, bias=bias, subnormals=subnormals, specials=specials)
    except ValueError:  # e.g. values outside float32's range: fall back to the IEEE bias
        return Format(exp_bits, man_bits, subnormals=subnormals, specials=specials)


def codes(fmt: Format, *, allow_nan: bool = True) -> st.SearchStrategy[int]:
    """Any code (bit pattern) of ``fmt`` as an ``int``; ``allow_nan=False`` leaves out the NaN codes."""
    strat = st.integers(0, fmt.num_codes - 1)
    return strat if allow_nan or not fmt.has_nan else strat.filter(lambda c: not fmt.is_nan_code(c))


def _to_bits(dt: np.dtype, values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=dt).view(_UINT[dt.itemsize])


@functools.lru_cache(maxsize=64)
def _boundaries(fmt: Format, dt_name: str) -> np.ndarray:
    """Bit patterns (in the source dtype) of the positive values where rounding to ``fmt`` changes."""
    dt = source_dtype(dt_name)
    finite = [Fraction(v) for v in fmt.finite_values() if v >= 0]
    ulp_top = Fraction(2) ** (fmt.emax - fmt.man_bits)
    points = set(finite)
    points.update((a + b) / 2 for a, b in zip(finite, finite[1:]))  # ties
    points.add(Fraction(fmt.max) + ulp_top / 2)  # overflow threshold under round-to-nearest
    points.add(Fraction(fmt.max) + ulp_top)  # first value past max on the unbounded grid
    points.add(Fraction(fmt.min_subnormal) / 2)  # ties to zero
    info = np.finfo(np.float64)
    out = []
    for p in sorted(points):
        if p > Fraction(float(info.max)):
            continue
        f64 = float(p)  # exact: every point has at most man_bits + 2 significant bits
        v = np.asarray(f64).astype(dt)  # nearest source value (ties in the source resolve by RNE)
        if np.isfinite(v):
            out.append(_to_bits(dt, v).item())
    return np.unique(np.array(out, dtype=np.uint64))


def rounding_boundaries(fmt: Format, source: str | np.dtype = "float32") -> np.ndarray:
    """The positive source values at which rounding to ``fmt`` changes, sorted.

    These are the representable values of ``fmt``, the midpoints between neighbours (the ties),
    the overflow threshold ``max + ulp/2`` and ``max + ulp``, and half the smallest subnormal,
    each converted to the nearest value of ``source`` (a tie that the source cannot hold becomes
    its nearest source neighbour).
    """
    dt = source_dtype(source)
    return _boundaries(fmt, dt.name).astype(_UINT[dt.itemsize]).view(dt)


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
    bits = _boundaries(fmt, dt.name)
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
    """Any value of the source dtype, from its bit patterns: zeros, subnormals, Inf, every NaN payload."""
    dt = source_dtype(source)
    width = dt.itemsize * 8
    return st.integers(0, (1 << width) - 1).map(lambda b: np.array(b, dtype=_UINT[dt.itemsize]).view(dt)[()])


@st.composite
def arrays(draw, fmt: Format, source: str | np.dtype = "float32", *, shape=None, max_side: int = 8):
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
