"""The executable spec (fp8emu.spec): SPEC.md §6.10's vectors, the double-rounding trap,
float64 near-midpoints, and agreement with the independent value-set oracle."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import fp8emu
from fp8emu import spec
from fp8emu.format import RoundMode
from fp8emu.formats import ALL_FORMATS, e4m3fn, e4m3fnuz, e5m2, e5m2fnuz

from oracles import round_by_value_set
from strategies import any_format, deterministic_modes, near_ties

# SPEC.md §6.10: x -> (E5M2 nonsat, E5M2 sat, E4M3FN nonsat, E4M3FN sat, E4M3FNUZ nonsat, E5M2FNUZ nonsat)
TABLE_6_10 = [
    (1.0, "3C 3C 38 38 40 40"),
    (-0.0, "80 80 80 80 00 00"),
    (1.125, "3C 3C 39 39 41 40"),
    (1.0625, "3C 3C 38 38 40 40"),
    (1.0625 * (1 + 2**-20), "3C 3C 39 39 41 40"),
    (240.0, "5C 5C 77 77 7F 60"),
    (248.0, "5C 5C 78 78 80 60"),
    (448.0, "5F 5F 7E 7E 80 63"),
    (464.0, "5F 5F 7E 7E 80 63"),
    (465.0, "5F 5F 7F 7E 80 63"),
    (57344.0, "7B 7B 7F 7E 80 7F"),
    (61439.0, "7B 7B 7F 7E 80 7F"),
    (61440.0, "7C 7B 7F 7E 80 80"),
    (2.0**-9, "18 18 01 01 02 1C"),
    (2.0**-10, "14 14 00 00 01 18"),
    (2.0**-10 * (1 + 1e-4), "14 14 01 01 01 18"),
    (2.0**-16, "01 01 00 00 00 02"),
    (2.0**-17, "00 00 00 00 00 01"),
    (2.0**-17 * (1 + 1e-4), "01 01 00 00 00 01"),
    (math.inf, "7C 7B 7F 7E 80 80"),
    (math.nan, "7E 7E 7F 7F 80 80"),
]
COLUMNS = [(e5m2, False), (e5m2, True), (e4m3fn, False), (e4m3fn, True), (e4m3fnuz, False), (e5m2fnuz, False)]


@pytest.mark.parametrize("x,row", TABLE_6_10, ids=[f"{x!r}" for x, _ in TABLE_6_10])
def test_spec_table_6_10(x, row):
    want = [int(h, 16) for h in row.split()]
    assert [spec.round_scalar(x, f, "nearest_even", s) for f, s in COLUMNS] == want
    # the public API, from float64 (one rounding), gives the same codes
    assert [int(fp8emu.encode(np.float64(x), f, saturate=s)) for f, s in COLUMNS] == want


@pytest.mark.parametrize("x,exact,via_fp16", [
    (1.3748779296875, 1.25, 1.5), (1.1251220703125, 1.25, 1.0), (61439.0, 57344.0, math.inf),
    (2.0**-17 * 1.0001, 2.0**-16, 0.0)])
def test_double_rounding_via_fp16_is_avoided(x, exact, via_fp16):
    """SPEC §6.1: E5M2 through an FP16 intermediate rounds twice; fp8emu rounds once."""
    for dtype in (np.float64, np.float32):
        assert float(fp8emu.quantize(np.array(x, dtype), e5m2)) == exact
    assert spec.round_to_format(x, e5m2) == exact
    # the trap itself: rounding the float16 value gives the double-rounded result
    assert float(fp8emu.quantize(np.array(x, np.float16), e5m2)) == via_fp16


def test_double_rounding_float64_not_through_float32():
    x = 1.0625 + 2.0**-30         # float32(x) is exactly the 1.0625 tie
    assert np.float32(x) == 1.0625
    assert float(fp8emu.quantize(np.float64(x), e4m3fn)) == 1.125
    assert float(fp8emu.quantize(np.float32(x), e4m3fn)) == 1.0
    # SPEC §6.1's 1.0625 * (1 + 2^-20) lands on the tie through float16/bfloat16 (not float32)
    y = 1.0625 * (1 + 2**-20)
    assert np.float16(y) == 1.0625 and np.float32(y) != 1.0625
    assert float(fp8emu.quantize(np.float64(y), e4m3fn)) == 1.125
    assert float(fp8emu.quantize(np.float16(y), e4m3fn)) == 1.0


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_float64_near_midpoints_every_preset(fmt):
    """Midpoints and midpoints +- 2^-40 relative, float64 in: spec, kernels and oracle agree, and
    the offsets go to the right side."""
    vals = fmt.finite_values()
    vals = vals[vals >= 0]
    pick = np.unique(np.linspace(0, len(vals) - 2, 300).astype(int))    # neighbours (lo, hi)
    lo, hi = vals[pick], vals[pick + 1]
    mid = (lo + hi) / 2
    for off, side in ((2.0**-40, hi), (-(2.0**-40), lo)):
        signs = (1, -1) if fmt.signed else (1,)
        x = np.concatenate([s * mid * (1 + off) for s in signs])
        got = fp8emu.quantize(x, fmt, rounding="nearest_even", saturate=True).astype(np.float64)
        want_mag = np.concatenate([side for _ in signs])
        np.testing.assert_array_equal(np.abs(got), want_mag, err_msg=f"{fmt} offset {off}")
        codes = fp8emu.encode(x, fmt, saturate=True)
        np.testing.assert_array_equal(codes, round_by_value_set(x, fmt, "nearest_even", True))
        idx = np.linspace(0, len(x) - 1, 20).astype(int)
        assert [spec.round_scalar(x[i], fmt, "nearest_even", True) for i in idx] == list(codes[idx])


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_decode_scalar_matches_format_decode(fmt):
    for code in range(0, fmt.num_codes, max(1, fmt.num_codes // 512)):
        a, b = spec.decode_scalar(code, fmt), fmt.decode_code(code)
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    with pytest.raises(ValueError, match="out of range"):
        spec.decode_scalar(fmt.num_codes, fmt)


@given(fmt=any_format(), mode=deterministic_modes, saturate=st.booleans(), data=st.data())
@example(fmt=e5m2, mode=RoundMode.NEAREST_EVEN, saturate=False, data=None)
def test_spec_agrees_with_value_set_oracle(fmt, mode, saturate, data):
    x = 61440.0 if data is None else data.draw(near_ties(fmt))
    assert spec.round_scalar(x, fmt, mode, saturate) == int(round_by_value_set([x], fmt, mode, saturate)[0])


def test_spec_accepts_fractions_and_rejects_missing_sr_words():
    third = Fraction(1, 3)
    assert spec.round_to_format(third, e5m2) == 0.3125          # 1/3 = 1.333 * 2^-2 -> 1.25 * 2^-2
    with pytest.raises(ValueError, match="sr_words"):
        spec.round_scalar(0.3, e5m2, "stochastic")


def test_spec_stochastic_exact_word_comparison():
    """f = 1/3 of an ulp: U = 0.w0 w1 ... < f decides; equal first words look at the next."""
    x = Fraction(4, 3)                      # e5m2: between 1.25 and 1.5, f = 1/3
    c0 = ((1 << 64) // 3)                   # first 64 bits of 1/3 = 0x5555...
    assert spec.round_scalar(x, e5m2, "stochastic", sr_words=[c0 - 1]) == 0x3D + 1   # U < f: away
    assert spec.round_scalar(x, e5m2, "stochastic", sr_words=[c0 + 1]) == 0x3D       # U > f
    assert spec.round_scalar(x, e5m2, "stochastic", sr_words=[c0, c0 - 1]) == 0x3E   # tie, then below
    assert spec.round_scalar(x, e5m2, "stochastic", sr_words=[c0, c0 + 1]) == 0x3D
    # sr_bits=2: floor(f * 4) = 1, so away iff the top 2 random bits are 3
    assert spec.round_scalar(x, e5m2, "stochastic", sr_words=[3 << 62], sr_bits=2) == 0x3E
    assert spec.round_scalar(x, e5m2, "stochastic", sr_words=[(3 << 62) - 1], sr_bits=2) == 0x3D
