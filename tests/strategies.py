"""Shared hypothesis strategies (append-only; keep the simple choice first in ``one_of``)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from fp8emu.format import Format, RoundMode, Specials, TieRule
from fp8emu.formats import ALL_FORMATS

__all__ = ["formats", "custom_formats", "any_format", "float_bits", "floats_of", "near_ties", "round_modes",
           "deterministic_modes", "FLOAT_DTYPES", "UINT_OF"]

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
UINT_OF = {np.dtype(np.float16): np.uint16, np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}

round_modes = st.sampled_from(list(RoundMode))
deterministic_modes = st.sampled_from([m for m in RoundMode if m is not RoundMode.STOCHASTIC])


def formats() -> st.SearchStrategy[Format]:
    """One of the presets of at most 16 bits (the value-set oracle tabulates every code)."""
    return st.sampled_from([f for f in ALL_FORMATS if f.bits <= 16])


@st.composite
def custom_formats(draw) -> Format:
    """A random valid Format (any width <= 16 bits, bias, specials, subnormals on/off, sign,
    zero, tie rule; exponent widths from 0)."""
    while True:
        w = draw(st.integers(0, 8))
        m = draw(st.integers(0, 15 - w))
        specials = draw(st.sampled_from(list(Specials)))
        subnormals = draw(st.booleans())
        signed = draw(st.booleans())
        has_zero = draw(st.booleans()) if not subnormals else True
        tie = draw(st.sampled_from(list(TieRule))) if m == 0 else TieRule.UP
        default_bias = (1 << (w - 1)) - 1 if w else 0
        bias = draw(st.one_of(st.just(default_bias), st.integers(default_bias - 4, default_bias + 4)))
        try:
            return Format(w, m, bias=bias, subnormals=subnormals, specials=specials, signed=signed,
                          has_zero=has_zero, tie_rule=tie)
        except ValueError:
            continue


def any_format() -> st.SearchStrategy[Format]:
    return st.one_of(formats(), custom_formats())


@st.composite
def float_bits(draw, dtype=np.float32) -> np.generic:
    """Any bit pattern of ``dtype`` (NaN payloads, subnormals, Inf, -0 included), as a float scalar."""
    dt = np.dtype(dtype)
    nbits = dt.itemsize * 8
    special = draw(st.one_of(st.integers(0, (1 << nbits) - 1),
                             st.sampled_from([0, 1, (1 << (nbits - 1)), (1 << (nbits - 1)) + 1])))
    return np.array(special, dtype=UINT_OF[dt]).view(dt)[()]


@st.composite
def floats_of(draw, fmt: Format, dtype=np.float64) -> np.generic:
    """A value of ``dtype`` near ``fmt``'s range: format values, midpoints, and small offsets of them."""
    vals = fmt.finite_values()
    i = draw(st.integers(0, len(vals) - 1))
    lo = vals[i]
    hi = vals[i + 1] if i + 1 < len(vals) else lo + (lo - vals[i - 1] if i else 1.0)
    kind = draw(st.sampled_from(["value", "mid", "between"]))
    if kind == "value":
        x = lo
    elif kind == "mid":
        x = (lo + hi) / 2
    else:
        x = lo + (hi - lo) * draw(st.floats(0, 1))
    x = np.array(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        bits = x.astype(dtype)
    nudge = draw(st.integers(-3, 3))
    u = bits.view(UINT_OF[np.dtype(dtype)])
    if nudge and np.isfinite(bits) and bits != 0:
        u = u + np.array(nudge, dtype=np.int64).astype(u.dtype) if nudge > 0 else u - np.array(-nudge).astype(u.dtype)
    out = np.array(u, dtype=UINT_OF[np.dtype(dtype)]).view(dtype)[()]
    return -out if draw(st.booleans()) else out


@st.composite
def near_ties(draw, fmt: Format) -> float:
    """A float64 at a midpoint between neighbours of ``fmt``, or within 2^-40 relative of one."""
    vals = fmt.finite_values()
    vals = vals[vals >= 0]
    i = draw(st.integers(0, len(vals) - 2))
    mid = (vals[i] + vals[i + 1]) / 2
    off = draw(st.sampled_from([0.0, 2.0**-40, -(2.0**-40)]))
    x = mid * (1 + off) if mid else off * vals[1]
    return -x if draw(st.booleans()) else x
