"""Test-only oracles, independent of both fp8emu.spec and the kernels.

:func:`round_by_value_set` rounds by *searching the sorted set of representable values*
(exact float64 comparisons; every value involved has at most 24 significant bits, and
midpoints of format values are exact in float64), not by bit manipulation (kernels) or
division into quanta (spec).  Vectorised with NumPy, so the exhaustive tests can afford it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fp8emu.format import Format, RoundMode, Specials, TieRule

__all__ = ["round_by_value_set", "ML_DTYPES_NAMES", "ml_dtype", "ml_dtypes_double_rounds_float64"]

ML_DTYPES_NAMES = {
    "e5m2": "float8_e5m2", "e4m3fn": "float8_e4m3fn", "e4m3fnuz": "float8_e4m3fnuz",
    "e5m2fnuz": "float8_e5m2fnuz", "e4m3b11fnuz": "float8_e4m3b11fnuz", "e4m3": "float8_e4m3",
    "e3m4": "float8_e3m4", "e2m3fn": "float6_e2m3fn", "e3m2fn": "float6_e3m2fn", "e2m1fn": "float4_e2m1fn",
    "e8m0fnu": "float8_e8m0fnu", "bfloat16": "bfloat16",
}


def ml_dtype(fmt: Format):
    """The ml_dtypes (or numpy) dtype of a preset, or None."""
    import ml_dtypes
    if fmt.name == "float16":
        return np.dtype(np.float16)
    name = ML_DTYPES_NAMES.get(fmt.name)
    return None if name is None or not hasattr(ml_dtypes, name) else np.dtype(getattr(ml_dtypes, name))


@lru_cache(maxsize=None)
def ml_dtypes_double_rounds_float64() -> bool:
    """Whether the installed ml_dtypes narrows float64 to float32 before rounding to FP8 (its
    releases up to 0.6 did: PR #401; 0.7.0 rounds float64 once).  Probe: -431.99999999999994
    is -416 in e4m3fn, but its float32 neighbour -432 is a tie that goes to -448."""
    import ml_dtypes
    got = np.array([-431.99999999999994]).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)[0]
    assert got in (-416.0, -448.0), got
    return bool(got == -448.0)


def _table(fmt: Format):
    """Sorted non-negative magnitudes, their codes and significand parity, plus the virtual
    value above max (what max rounds up to with an unbounded exponent)."""
    vals = fmt.values()
    codes = np.arange(fmt.num_codes)
    keep = np.isfinite(vals) & (vals >= 0) & ~((vals == 0) & (np.signbit(vals)))
    mags, mcodes = vals[keep], codes[keep]
    order = np.argsort(mags, kind="stable")
    mags, mcodes = mags[order], mcodes[order]
    # drop duplicate zeros (non-canonical zero codes of formats without subnormals)
    uniq = np.concatenate([[True], np.diff(mags) > 0])
    mags, mcodes = mags[uniq], mcodes[uniq]
    top_quantum = np.ldexp(1.0, fmt.max_ulp_exp)
    mags = np.append(mags, fmt.max + top_quantum)
    mcodes = np.append(mcodes, -1)              # -1 = overflow
    # parity of each code: the next code above max (what an unbounded exponent would give) too
    code_odd = np.append(mcodes[:-1] & 1, (fmt.max_code + 1) & 1).astype(bool)
    # parity of the integer significand k = v / quantum(v)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(mags > 0, mags, 1.0))).astype(np.int64)
    qexp = np.maximum(e, fmt.emin) - fmt.man_bits
    if not fmt.subnormals:
        qexp = np.where(e < fmt.emin, fmt.emin, qexp)
    k = np.ldexp(mags, -qexp)
    assert np.all(k == np.floor(k))
    odd = (k.astype(np.int64) & 1).astype(bool)
    odd[mags == 0] = False
    if fmt.man_bits == 0 and fmt.tie_rule is TieRule.EVEN_EXPONENT:
        odd = code_odd.copy()
    return mags, mcodes, odd, code_odd


def round_by_value_set(x, fmt: Format, mode: RoundMode | str, saturate: bool) -> np.ndarray:
    """Codes of float64-representable inputs ``x`` (deterministic modes), as int64."""
    mode = RoundMode.parse(mode)
    with np.errstate(invalid="ignore"):
        x = np.asarray(x, dtype=np.float64).reshape(-1)
    mags, mcodes, odd, code_odd = _table(fmt)
    neg = np.signbit(x)
    a = np.abs(x)
    finite = np.isfinite(a)
    af = np.where(finite, a, 0.0)
    idx = np.clip(np.searchsorted(mags, af, side="right") - 1, 0, len(mags) - 1)
    below_all = af < mags[0]                       # only for formats without zero
    lo_i = idx
    hi_i = np.minimum(idx + 1, len(mags) - 1)
    lo, hi = mags[lo_i], mags[hi_i]
    exact = af == lo
    mid = (lo + hi) / 2
    if mode is RoundMode.NEAREST_EVEN:
        pick_hi = (af > mid) | ((af == mid) & odd[lo_i])
    elif mode is RoundMode.NEAREST_AWAY:
        pick_hi = af >= mid
    elif mode is RoundMode.TOWARD_ZERO:
        pick_hi = np.zeros_like(exact)
    elif mode is RoundMode.UP:
        pick_hi = ~neg
    elif mode is RoundMode.DOWN:
        pick_hi = neg
    elif mode is RoundMode.ODD:                    # keep an odd lower neighbour, else go up
        pick_hi = ~code_odd[lo_i]
    else:
        raise ValueError("the value-set oracle covers the deterministic modes only")
    pick_hi = pick_hi & ~exact
    beyond = af > mags[-1]                          # above the virtual value: overflow anyway
    res_i = np.where(pick_hi, hi_i, lo_i)
    code = mcodes[res_i]
    code = np.where(beyond, -1, code)
    code = np.where(below_all, mcodes[0], code)     # no zero: tiny values -> smallest value
    sign = fmt.sign_mask
    is_zero_result = (code >= 0) & (mags[res_i] == 0) & ~below_all
    # overflow
    toward_max = (mode in (RoundMode.TOWARD_ZERO, RoundMode.ODD)) | ((mode is RoundMode.UP) & neg) | ((mode is RoundMode.DOWN) & ~neg)
    nan = fmt.nan_code if fmt.nan_code is not None else sign
    inf_pos = fmt.inf_code if fmt.has_inf else nan
    always_sat = saturate or fmt.specials is Specials.NONE
    ovf_code = np.where(always_sat | toward_max, fmt.max_code, -2)   # -2: Inf/NaN below
    signed_code = np.where(code == -1, ovf_code, code)
    out = np.where(neg & (signed_code >= 0), signed_code | sign, signed_code)
    out = np.where(is_zero_result & neg & ~fmt.has_negative_zero, 0, out)
    inf_res = np.where(neg, (inf_pos | sign) if fmt.has_inf else nan, inf_pos)
    out = np.where(out == -2, inf_res, out)
    # specials of the input
    isinf = np.isinf(x)
    out = np.where(isinf, np.where(always_sat, np.where(neg, fmt.max_code | sign, fmt.max_code), inf_res), out)
    if not fmt.has_zero:        # NaN; without NaN either: the smallest magnitude, zero's sign
        out = np.where(a == 0, nan if fmt.has_nan else np.where(neg, sign, 0), out)
    if not fmt.signed:
        out = np.where(neg & (a != 0), nan if fmt.has_nan else 0, out)
        out = np.where(neg & (a == 0) & fmt.has_zero, 0, out)
    out = np.where(np.isnan(x), nan, out)
    return out.astype(np.int64)
