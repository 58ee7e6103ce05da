"""ml_dtypes as an independent oracle: bit-identical codes for the shared formats on float32 and
float16 inputs (non-saturating RNE), and where it is *wrong* on float64 inputs (double rounding)."""

import numpy as np
import pytest

import fp8emu
from fp8emu.formats import ALL_FORMATS, e4m3fn, e5m2

from oracles import ml_dtype, ml_dtypes_double_rounds_float64

ml_dtypes = pytest.importorskip("ml_dtypes")
SHARED = [f for f in ALL_FORMATS if ml_dtype(f) is not None and f.name not in ("float16",)]


def _ml_codes(x, fmt):
    dt = ml_dtype(fmt)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(dt)
    codes = y.view(np.uint8 if dt.itemsize == 1 else np.uint16).astype(np.int64)
    if fmt.bits < 8:
        codes &= fmt.num_codes - 1
    return codes, np.isnan(y.astype(np.float32))


def _compare(x, fmt):
    ours = fp8emu.encode(x, fmt).astype(np.int64)
    theirs, their_nan = _ml_codes(x, fmt)
    ours_nan = np.isnan(fp8emu.decode(ours.astype(fmt.code_dtype), fmt))
    if not fmt.has_nan:            # ml_dtypes maps NaN to +-0 with the NaN's sign, we to the sign-bit code
        keep = ~np.isnan(x)
        ours, theirs, ours_nan, their_nan = ours[keep], theirs[keep], ours_nan[keep], their_nan[keep]
    assert np.array_equal(ours_nan, their_nan)
    same = (ours == theirs) | ours_nan
    bad = np.flatnonzero(~same)
    assert bad.size == 0, f"{fmt}: {bad.size} differ, e.g. x={x[bad[0]]!r}: ours {ours[bad[0]]:#x} ml {theirs[bad[0]]:#x}"


@pytest.mark.parametrize("fmt", SHARED, ids=str)
def test_all_float16_inputs(fmt):
    with np.errstate(invalid="ignore"):
        _compare(np.arange(1 << 16, dtype=np.uint16).view(np.float16), fmt)


@pytest.mark.parametrize("fmt", SHARED, ids=str)
def test_random_float32_inputs(fmt):
    rng = np.random.default_rng(42)
    x = rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32).view(np.float32)
    scale = np.float32(fmt.max) / np.float32(1 << 10)
    x = np.concatenate([x, rng.standard_normal(1 << 16).astype(np.float32) * scale])
    if fmt.name == "e8m0fnu":      # see test_e8m0_float32_subnormal_inputs
        x = x[~(np.abs(x) < 2.0**-126)]
    _compare(x, fmt)


def test_e8m0_float32_subnormal_inputs():
    """ml_dtypes 0.6 rounds some float32 *subnormal* inputs into E8M0 up although they are below
    the midpoint 1.5 * 2^-127 (e.g. 1.4 * 2^-127 -> 2^-126); the exact answer is 2^-127."""
    x = np.array([1.4 * 2.0**-127, 1.6 * 2.0**-127, 1.5 * 2.0**-127], dtype=np.float32)
    assert fp8emu.encode(x, "e8m0fnu").tolist() == [0x00, 0x01, 0x01]
    assert fp8emu.encode(x.astype(np.float64), "e8m0fnu").tolist() == [0x00, 0x01, 0x01]


@pytest.mark.parametrize("fmt", [e4m3fn, e5m2], ids=str)
def test_float64_near_midpoints_ml_dtypes_is_wrong_we_are_not(fmt):
    """SPEC.md: for midpoint +- 2^-40 relative, ml_dtypes up to 0.6 (which goes through float32)
    returns the wrong neighbour in half the cases; fp8emu in none; ml_dtypes 0.7.0 in none."""
    vals = fmt.finite_values()
    vals = vals[vals > 0]
    lo, hi = vals[:-1], vals[1:]
    mid = (lo + hi) / 2
    x = np.concatenate([mid * (1 + 2.0**-40), mid * (1 - 2.0**-40)])
    want = np.concatenate([hi, lo])
    ours = fp8emu.quantize(x, fmt)
    assert np.array_equal(ours, want)
    with np.errstate(over="ignore"):
        theirs = x.astype(ml_dtype(fmt)).astype(np.float64)
    wrong = np.count_nonzero(theirs != want)
    if ml_dtypes_double_rounds_float64():
        # documented, not asserted equal to SPEC's counts: it is about half of the cases
        assert 0.3 * len(x) < wrong < 0.7 * len(x), wrong
    else:           # ml_dtypes >= 0.7.0 rounds float64 once: an independent check of ours
        assert wrong == 0, wrong
