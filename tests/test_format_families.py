"""Formats of issue 13: up to 32 bits (no value table), no exponent field, IEEE P3109's
formats and rules, the naming grammar, round-to-odd, and the NaN policy."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import fp8emu
from fp8emu import _kernels, spec
from fp8emu.format import Format, NanPolicy, RoundMode, Specials, TieRule
from fp8emu.formats import (ALL_FORMATS, CATALOGUE, P3109_FORMATS, PRESETS, WIDE_FORMATS, bfloat16, e2m1fn,
                            e3m2fn, e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0fnu, e8m13, float16, float32,
                            get_format, p3109, tf32)
from fp8emu.quantize import _decode_params

from oracles import round_by_value_set

DETERMINISTIC = [m for m in RoundMode if m is not RoundMode.STOCHASTIC]
ALL_F16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
ALL_BF16 = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)


# ---- a random valid Format of up to 32 bits, every field varied -----------------------------------
@st.composite
def any_fields(draw, max_bits: int = 32) -> Format:
    while True:      # simplest (first) choices make a valid format: e4m3
        w = draw(st.sampled_from([4, 5, 3, 2, 1, 6, 7, 8, 0]))
        m = draw(st.sampled_from([3] + [v for v in range(min(23, max_bits - 1 - w) + 1) if v != 3]))
        specials = draw(st.sampled_from(list(Specials)))
        subnormals = draw(st.booleans())
        has_zero = True if subnormals else draw(st.booleans())
        tie = draw(st.sampled_from(list(TieRule))) if m == 0 else TieRule.UP
        default = (1 << (w - 1)) - 1 if w else 0
        bias = draw(st.one_of(st.just(default), st.integers(default - 6, default + 6)))
        try:
            return Format(w, m, bias=bias, subnormals=subnormals, specials=specials,
                          signed=draw(st.booleans()), has_zero=has_zero, tie_rule=tie)
        except ValueError:
            continue


# ---- naming ---------------------------------------------------------------------------------------
@settings(max_examples=500)
@given(any_fields())
@example(Format(4, 3, specials="none"))
@example(Format(4, 3, specials="fnuz"))
@example(Format(3, 2, specials="fn"))
@example(Format(8, 0, specials="fn", signed=False))
@example(Format(2, 1, specials="fn"))
def test_name_round_trips(fmt):
    """get_format(f.name) == f for every valid Format; equality is by fields."""
    assert get_format(fmt.name) == fmt
    assert get_format(fmt.grammar_name()) == fmt
    assert Format(fmt.exp_bits, fmt.man_bits, bias=fmt.bias, subnormals=fmt.subnormals, specials=fmt.specials,
                  signed=fmt.signed, has_zero=fmt.has_zero, tie_rule=fmt.tie_rule, name="other") == fmt


def test_issue_name_collisions_are_gone():
    assert Format(4, 3, specials="none").name == "e4m3fnnone" != e4m3fn.name
    assert Format(3, 2, specials="fn").name != Format(3, 2, specials="none").name
    assert Format(3, 2, specials="none") == e3m2fn and Format(3, 2, specials="none").name == "e3m2fn"
    assert Format(4, 3, specials="fnuz").name == "e4m3b7fnuz"       # e4m3fnuz is the bias-8 preset
    assert Format(4, 3, bias=8, specials="fnuz").name == "e4m3fnuz"
    assert get_format("e8m0fnu") is e8m0fnu and get_format("e8m0fnu_nozero") == e8m0fnu
    assert get_format("e8m0b127fnu").has_zero and Format(8, 0, specials="fn", signed=False).name == "e8m0b127fnu"
    # every field appears in the name
    assert Format(4, 3, specials="fn", subnormals=False).name == "e4m3fn_nosub"
    assert Format(5, 0, specials="fn", tie_rule="even_exponent").name == "e5m0fn_evenexp"
    assert Format(4, 3, specials="extended", signed=False).name == "e4m3extu"
    assert Format(0, 5, specials="fnuz").name == "e0m5fnuz"


def test_presets_keep_their_names_and_first_preset_wins():
    for fmt in CATALOGUE:
        assert get_format(fmt.name) is fmt
        first = next(f for f in CATALOGUE if f == fmt)
        assert Format(fmt.exp_bits, fmt.man_bits, bias=fmt.bias, subnormals=fmt.subnormals, specials=fmt.specials,
                      signed=fmt.signed, has_zero=fmt.has_zero, tie_rule=fmt.tie_rule).name == first.name
    assert get_format("binary8p4sf") is e4m3fnuz and get_format("binary8p3sf") is e5m2fnuz
    assert len(PRESETS) == len(ALL_FORMATS) + len(WIDE_FORMATS) + 32
    assert get_format("tf32") == Format(8, 10) and get_format("e8m13").man_bits == 13
    assert get_format("float32") == Format(8, 23)


# ---- P3109 ---------------------------------------------------------------------------------------
def test_p3109_layouts():
    se, sf, ue, uf = (p3109(8, 3, s, e) for s, e in ((True, True), (True, False), (False, True), (False, False)))
    assert se.name == "binary8p3se" and ue.name == "binary8p3ue" and sf is e5m2fnuz
    assert (se.inf_code, se.inf_code | se.sign_mask, se.nan_code, se.max_code) == (0x7F, 0xFF, 0x80, 0x7E)
    assert (ue.inf_code, ue.nan_code, ue.max_code) == (0xFE, 0xFF, 0xFD)
    assert (uf.nan_code, uf.max_code, uf.inf_code) == (0xFF, 0xFE, None)
    assert (sf.nan_code, sf.max_code) == (0x80, 0x7F)
    assert [se.bias, ue.bias] == [16, 32]
    vals = se.values()
    assert vals[0x7F] == math.inf and vals[0xFF] == -math.inf and math.isnan(vals[0x80]) and vals[0] == 0
    assert np.isnan(ue.values()).sum() == 1 and ue.values()[0xFE] == math.inf
    # signed P = K: no exponent field; every value is a multiple of 2^(1 - (p - 1))
    s8 = p3109(8, 8, True, False)
    assert s8.exp_bits == 0 and s8.bias == 0 and s8.max == 127 / 64 and s8.min_subnormal == 1 / 64
    assert len(P3109_FORMATS) == 32 and all(f.bits == 8 for f in P3109_FORMATS)


def test_p3109_p1_ties_to_even_exponent():
    """gfloat / P3109: 1.5 -> 1 and 6 -> 4 (the even exponent); fp8emu's 'up' rule gives 2, 8."""
    x = np.array([1.5, 6.0, 3.0, -1.5, 0.75], np.float32)
    assert list(fp8emu.quantize(x, "binary8p1se")) == [1.0, 4.0, 4.0, -1.0, 1.0]
    assert list(fp8emu.quantize(x[[0, 1, 2, 4]], "binary8p1ue")) == [1.0, 4.0, 4.0, 1.0]
    assert list(fp8emu.quantize(x[:3], e8m0fnu)) == [2.0, 8.0, 4.0]
    # the even *code* (biased exponent field): with bias 127, 2 (code 128) and 8 (code 130)
    assert list(fp8emu.quantize(x[:3], Format(8, 0, bias=127, subnormals=False, specials="fn", signed=False,
                                              has_zero=False, tie_rule="even_exponent"))) == [2.0, 8.0, 2.0]


def test_zero_exponent_bit_formats_round_like_the_oracle():
    for fmt in (Format(0, 5, specials="fnuz"), Format(0, 7, specials="extended"), Format(0, 3, specials="none"),
                Format(0, 4, specials="fn", bias=3)):
        for mode in DETERMINISTIC:
            for sat in (False, True):
                got = fp8emu.encode(ALL_F16, fmt, rounding=mode, saturate=sat).astype(np.int64)
                np.testing.assert_array_equal(got, round_by_value_set(ALL_F16, fmt, mode, sat), err_msg=str(fmt))


@pytest.mark.parametrize("fmt", P3109_FORMATS, ids=str)
@pytest.mark.parametrize("source", [ALL_F16, ALL_BF16], ids=["float16", "bfloat16"])
def test_p3109_presets_exhaustive(fmt, source):
    """Every float16 and bfloat16 input, every deterministic mode, both saturation settings."""
    for mode in DETERMINISTIC:
        for sat in (False, True):
            got = fp8emu.encode(source, fmt, rounding=mode, saturate=sat).astype(np.int64)
            with np.errstate(invalid="ignore"):
                want = round_by_value_set(source.astype(np.float64), fmt, mode, sat)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, f"{fmt} {mode.value} sat={sat}: x={source[bad[0]]!r} {got[bad[0]]:#x} != {want[bad[0]]:#x}"


# ---- wide formats: no table ---------------------------------------------------------------------
def test_value_tables_are_refused_beyond_16_bits():
    with pytest.raises(ValueError, match="wider than 16 bits"):
        tf32.values()
    assert tf32.code_dtype == np.uint32 and Format(5, 11).code_dtype == np.uint32
    assert Format(5, 10).code_dtype == np.uint16 and e5m2.code_dtype == np.uint8


def _decode_twin(fmt, codes, dtype):
    out = np.empty(codes.size, {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize])
    _kernels._decode_wide(codes.astype(np.int64), out, _decode_params(fmt, np.dtype(dtype)))
    return out.view(dtype)


@pytest.mark.parametrize("fmt", [e5m2, e4m3fn, e4m3fnuz, e2m1fn, e8m0fnu, float16, bfloat16, *P3109_FORMATS[:8],
                                 Format(0, 6, specials="extended"), Format(6, 6, subnormals=False)], ids=str)
def test_arithmetic_decode_equals_table(fmt):
    """The table-free decode (used beyond 16 bits) against the value table, every code."""
    codes = np.arange(fmt.num_codes)
    for dtype in (np.float32, np.float64):
        got, want = _decode_twin(fmt, codes, dtype), fmt.values().astype(dtype)
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want))
        assert np.all(got[np.isnan(got)].view({4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize])
                      == np.array(np.nan, dtype).view({4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]))


@pytest.mark.parametrize("fmt", [*WIDE_FORMATS, Format(5, 13, specials="fn"), Format(6, 20, specials="extended",
                                                                                     signed=False)], ids=str)
def test_wide_decode_against_decode_code(fmt):
    rng = np.random.default_rng(5)
    codes = np.concatenate([np.arange(64), fmt.num_codes - 1 - np.arange(64), rng.integers(0, fmt.num_codes, 3000),
                            [fmt.max_code, fmt.max_code | fmt.sign_mask, fmt.sign_mask]])
    got = fp8emu.decode(codes.astype(fmt.code_dtype), fmt, dtype=np.float64)
    want = np.array([fmt.decode_code(int(c)) for c in codes])
    assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want))
    assert np.array_equal(fp8emu.decode(codes.astype(fmt.code_dtype), fmt), want.astype(np.float32), equal_nan=True)


@pytest.mark.parametrize("fmt", WIDE_FORMATS, ids=str)
@pytest.mark.parametrize("source", [ALL_F16, ALL_BF16], ids=["float16", "bfloat16"])
def test_wide_presets_exhaustive_float16_bfloat16(fmt, source):
    """Every float16/bfloat16 value is a value of tf32, e8m13 and float32: every mode returns
    it exactly (the codes decode back to it; NaN canonical)."""
    finite = np.isfinite(source.astype(np.float32))
    for mode in RoundMode:
        for sat in (False, True):
            codes = fp8emu.encode(source, fmt, rounding=mode, saturate=sat, seed=3)
            back = fp8emu.decode(codes, fmt)
            x32 = source.astype(np.float32)
            assert np.array_equal(back[finite], x32[finite])
            assert np.array_equal(np.signbit(back[finite]), np.signbit(x32[finite]))
            assert np.all(codes[np.isnan(x32)] == fmt.nan_code)
            inf = np.isinf(x32)
            assert np.all(back[inf] == (np.sign(x32[inf]) * (fmt.max if sat else np.inf)))
            with pytest.raises(ValueError, match="cannot hold exactly"):     # a 16-bit dtype cannot hold fmt
                fp8emu.quantize(source, fmt, rounding=mode)
            q = fp8emu.quantize(x32, fmt, rounding=mode, saturate=sat, seed=3)
            assert np.array_equal(q[finite], x32[finite])


def _near_midpoints_f32(fmt, n, rng):
    """float32 values within a few ulps of midpoints of ``fmt`` (random exponents, both signs)."""
    m = fmt.man_bits
    e = rng.integers(fmt.emin - m - 2, fmt.emax + 2, n)
    k = rng.integers(1 << m, 1 << (m + 1), n)
    mid = np.ldexp((2 * k + 1).astype(np.float64), e - m - 1)            # odd multiples of half a quantum
    with np.errstate(over="ignore"):
        x = mid.astype(np.float32)
    off = rng.integers(-3, 4, n).astype(np.int32)
    bits = x.view(np.int32) + off
    x = np.where(np.isfinite(bits.view(np.float32)), bits.view(np.float32), x)
    return x * rng.choice(np.array([-1, 1], np.float32), n)


@pytest.mark.parametrize("fmt", [tf32, e8m13, Format(5, 17), Format(8, 16, bias=128, specials="fn")], ids=str)
def test_wide_float32_near_midpoints_against_spec(fmt):
    rng = np.random.default_rng(13)
    x = _near_midpoints_f32(fmt, 400, rng)
    for mode in DETERMINISTIC:
        for sat in (False, True):
            got = fp8emu.encode(x, fmt, rounding=mode, saturate=sat)
            want = [spec.round_scalar(v, fmt, mode, sat) for v in x]
            np.testing.assert_array_equal(got, want, err_msg=f"{fmt} {mode.value} sat={sat}")
            q = fp8emu.quantize(x, fmt, rounding=mode, saturate=sat).astype(np.float64)
            assert np.array_equal(q, [spec.decode_scalar(c, fmt) for c in want], equal_nan=True)


def test_wide_float32_near_midpoints_against_gfloat():
    gfloat = pytest.importorskip("gfloat")
    rng = np.random.default_rng(17)
    modes = {RoundMode.NEAREST_EVEN: gfloat.RoundMode.TiesToEven, RoundMode.NEAREST_AWAY: gfloat.RoundMode.TiesToAway,
             RoundMode.TOWARD_ZERO: gfloat.RoundMode.TowardZero, RoundMode.UP: gfloat.RoundMode.TowardPositive,
             RoundMode.DOWN: gfloat.RoundMode.TowardNegative}
    for fmt in (tf32, e8m13):
        fi = gfloat.FormatInfo(fmt.name, k=fmt.bits, precision=fmt.precision, bias=fmt.bias, has_nz=True,
                               domain=gfloat.Domain.Extended, num_high_nans=(1 << fmt.man_bits) - 1,
                               has_subnormals=True, is_signed=True, is_twos_complement=False)
        x = _near_midpoints_f32(fmt, 200_000, rng)
        for mode, gmode in modes.items():
            for sat in (False, True):
                want = gfloat.round_ndarray(fi, x.astype(np.float64), gmode, sat)
                got = fp8emu.quantize(x, fmt, rounding=mode, saturate=sat).astype(np.float64)
                assert np.array_equal(got, want), f"{fmt} {mode.value} sat={sat}"


def test_float32_format_is_identity_on_float32_and_rounds_float64():
    rng = np.random.default_rng(2)
    bits = np.concatenate([rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32),
                           np.arange(1 << 16, dtype=np.uint32) << np.uint32(16), np.arange(1 << 12, dtype=np.uint32)])
    x = bits.view(np.float32)
    q = fp8emu.quantize(x, float32)
    nan = np.isnan(x)
    assert np.array_equal(q.view(np.uint32)[~nan], bits[~nan])
    assert np.all(q.view(np.uint32)[nan] == 0x7FC00000)
    assert np.array_equal(fp8emu.decode(fp8emu.encode(x, float32), float32).view(np.uint32)[~nan], bits[~nan])
    # float64 -> float32 format: NumPy's cast is round-to-nearest-even (with subnormals and Inf)
    with np.errstate(over="ignore", invalid="ignore"):
        y = rng.standard_normal(1 << 16) * np.exp2(rng.integers(-160, 140, 1 << 16))
        y[::7] = (x[: y[::7].size].astype(np.float64) * (1 + 2.0**-24))   # ties and near ties
        y = y[np.isfinite(y)]
        assert np.array_equal(fp8emu.quantize(y, float32), y.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("n", [16, 1 << 17])       # the serial twin and the parallel kernel
def test_float32_into_float32_is_a_copy_in_every_mode(n):
    """float32 inputs into the float32 format take the copy of finite patterns
    (``_kernels._copy_f32_finite``, from the call's plan): every mode and ``saturate`` against
    what they must give -- finite patterns unchanged, +-Inf kept (+-max when saturating), every
    NaN the quiet NaN -- for encode and quantize, fresh and in place."""
    rng = np.random.default_rng(8)
    bits = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    bits[:6] = [0x7F800000, 0xFF800000, 0x7FC00001, 0xFFFFFFFF, 0x80000000, 0x00000001]
    x = bits.view(np.float32)
    mag = bits & np.uint32(0x7FFFFFFF)
    for sat in (False, True):
        want = bits.copy()
        want[mag > 0x7F800000] = 0x7FC00000
        if sat:
            want[mag == 0x7F800000] -= np.uint32(1)                 # +-Inf -> +-max
        for mode in ("nearest_even", "toward_zero", "down", "up", "odd", "stochastic"):
            for sr_bits in ((None, 8) if mode == "stochastic" else (None,)):
                kw = dict(rounding=mode, saturate=sat, seed=3, sr_bits=sr_bits)
                label = f"{mode} sr_bits={sr_bits} saturate={sat}"
                assert np.array_equal(fp8emu.encode(x, float32, **kw), want), label
                assert np.array_equal(fp8emu.quantize(x, float32, **kw).view(np.uint32), want), label
                y = x.copy()
                assert fp8emu.quantize(y, float32, out=y, **kw) is y
                assert np.array_equal(y.view(np.uint32), want), label


@pytest.mark.slow
def test_tf32_every_float32_input():
    """All 2^32 float32 patterns into tf32, against a bit-mask oracle: tf32 has float32's exponent
    layout, so rounding is integer arithmetic on the low 13 bits of the float32 pattern."""
    fmt = tf32
    for mode in (RoundMode.NEAREST_EVEN, RoundMode.TOWARD_ZERO, RoundMode.ODD):
        for lo in range(0, 1 << 32, 1 << 26):
            b = np.arange(lo, lo + (1 << 26), dtype=np.uint64).astype(np.uint32)
            got = fp8emu.encode(b.view(np.float32), fmt, rounding=mode)
            mag = b & np.uint32(0x7FFFFFFF)
            low = mag & np.uint32(0x1FFF)
            t = mag >> np.uint32(13)
            if mode is RoundMode.NEAREST_EVEN:
                t = t + ((low > 0x1000) | ((low == 0x1000) & ((t & 1) == 1)))
            elif mode is RoundMode.ODD:
                t = np.where((low != 0) & ((t & 1) == 0), t + 1, t)    # max is odd: never overflows
            want = (t.astype(np.uint32) | ((b >> np.uint32(31)) << np.uint32(18))).astype(np.uint32)
            nan = mag > np.uint32(0x7F800000)
            want[nan] = fmt.nan_code
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, f"{mode.value}: pattern {b[bad[0]]:#010x} got {got[bad[0]]:#x} want {want[bad[0]]:#x}"


def test_lowp_accepts_wide_accumulators():
    from fp8emu.accumulators import lowp
    rng = np.random.default_rng(0)
    a = fp8emu.quantize(rng.standard_normal((5, 70)).astype(np.float32), "e4m3fn")
    b = fp8emu.quantize(rng.standard_normal((70, 4)).astype(np.float32), "e4m3fn")
    for fmt in (Format(5, 13), tf32, e8m13, float32):
        for mode in ("nearest_even", "toward_zero", "odd", "up"):
            acc = lowp(fmt, 16, mode)
            got = acc.matmul_2d(a, b)
            # reference: sequential exact sums, each rounded once with the scalar spec
            want = np.zeros((5, 4))
            for i in range(5):
                for j in range(4):
                    tot = Fraction(0)
                    for c in range(0, 70, 16):
                        part = Fraction(0)
                        for k in range(c, min(70, c + 16)):
                            part = Fraction(spec.round_to_format(part + Fraction(float(a[i, k])) *
                                                                 Fraction(float(b[k, j])), fmt, mode))
                        tot = Fraction(spec.round_to_format(tot + part, fmt, mode))
                    want[i, j] = float(tot)
            np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=f"{fmt} {mode}")


# ---- round-to-odd ----------------------------------------------------------------------------------
def test_round_to_odd_examples():
    # e4m3fn: 1.0 = 0x38, 1.125 = 0x39: anything strictly between goes to the odd code 0x39
    x = np.array([1.0, 1.01, 1.124, 1.126, 1.25, -1.01, 460.0, 1e9, np.inf], np.float64)
    codes = fp8emu.encode(x, e4m3fn, rounding="odd")
    assert list(codes[:6]) == [0x38, 0x39, 0x39, 0x39, 0x3A, 0xB9]
    assert list(codes[6:8]) == [0x7E, 0x7E] and codes[8] == 0x7F    # odd never overflows; Inf input -> NaN
    assert RoundMode.parse("rodd") is RoundMode.ODD
    assert spec.round_scalar(1.01, e4m3fn, "odd") == 0x39


def _double_rounding_inputs():
    rng = np.random.default_rng(11)
    with np.errstate(invalid="ignore"):
        hi = (np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    wide = rng.standard_normal(1 << 16) * np.exp2(rng.integers(-30, 20, 1 << 16))
    return np.concatenate([hi[np.isfinite(hi)], wide, ALL_F16[np.isfinite(ALL_F16)].astype(np.float64) * (1 + 2.0**-30)])


@pytest.mark.parametrize("target", [e5m2, e4m3fn, e4m3fnuz, e2m1fn, e3m2fn, float16, bfloat16,
                                    get_format("binary8p4se")], ids=str)
def test_round_to_odd_avoids_double_rounding(target):
    """RNE to p bits of round-to-odd to >= p + 2 bits (8 exponent bits: no intermediate
    subnormals where the target has normals) equals RNE to p bits; p + 1 bits is not enough."""
    x = _double_rounding_inputs()
    direct = fp8emu.encode(x, target, saturate=True)
    for extra in (2, 3, 6):
        mid = Format(8, target.man_bits + extra, bias=127)
        y = fp8emu.quantize(x, mid, rounding="odd")
        assert np.array_equal(fp8emu.encode(y, target, saturate=True), direct), f"{mid}"
    y1 = fp8emu.quantize(x, Format(8, target.man_bits + 1, bias=127), rounding="odd")
    assert np.any(fp8emu.encode(y1, target, saturate=True) != direct)   # the property is sharp


# ---- NaN policy -------------------------------------------------------------------------------------
def test_nan_policy():
    x = np.array([1.0, np.nan], np.float32)
    assert list(fp8emu.encode(x, e2m1fn)) == [0x2, 0x8]             # the NaN becomes -0 silently
    with pytest.raises(ValueError, match="1 NaN input"):
        fp8emu.encode(x, e2m1fn, nan_policy="raise")
    with pytest.raises(ValueError, match="1 NaN input"):
        fp8emu.quantize(x.astype(np.float16), "e3m2fn", nan_policy=NanPolicy.RAISE)
    assert fp8emu.encode(x, e4m3fn, nan_policy="raise")[1] == 0x7F   # formats with NaN: unaffected
    assert list(fp8emu.encode(np.array([1.0, np.inf]), e2m1fn, nan_policy="raise")) == [0x2, 0x7]
    with pytest.raises(ValueError, match="nan_policy='sometimes'"):
        fp8emu.encode(x, e2m1fn, nan_policy="sometimes")


# ---- the verification toolkit and the public strategies with the new formats ------------------------
@pytest.mark.parametrize("fmt, mode", [(e4m3fn, "odd"), (tf32, "nearest_even"), (e8m13, "odd"),
                                       (get_format("binary8p1se"), "nearest_even"),
                                       (Format(0, 7, specials="extended"), "odd")], ids=str)
@pytest.mark.parametrize("suffix", [".txt", ".npz"])
def test_conversion_vectors_round_trip_and_pass(tmp_path, fmt, mode, suffix):
    from fp8emu.verify.check import check
    from fp8emu.verify.vectors import generate, read_vectors, write_vectors
    vs = generate(fmt, "float32", rounding=mode, level=2, count=500)
    back = read_vectors(write_vectors(vs, tmp_path / f"v{suffix}"))
    assert back.fmt == fmt and back.fmt.tie_rule is fmt.tie_rule and back.rounding == vs.rounding
    for col in ("inputs", "expected", "flags"):
        assert np.array_equal(getattr(back, col), getattr(vs, col)), col
    x = vs.values()
    assert check(back, vs.inputs, fp8emu.encode(x, fmt, rounding=mode)).ok
    wrong = fp8emu.encode(x, fmt, rounding="toward_zero")
    assert not check(back, vs.inputs, wrong).ok


def test_dot_vectors_with_tf32_operands_and_a_wide_accumulator():
    from fp8emu.verify.dot import _finite_codes, check_dot, generate_dot
    codes = _finite_codes(tf32)
    vals = fp8emu.decode(codes, tf32, dtype=np.float64)
    assert codes.dtype == np.uint32 and np.all(np.isfinite(vals)) and vals.max() == tf32.max
    assert np.any(vals == -tf32.min_subnormal) and np.any(vals == 0)
    vs = generate_dot("tf32", "tf32", accumulator="lowp:e8m13:4", k=8, count=50, level=2)
    assert check_dot(vs, vs.expected.view(np.uint32)).ok


@settings(max_examples=50)
@given(st.data())
def test_public_strategies_cover_wide_formats(data):
    from fp8emu.testing import codes, formats
    fmt = data.draw(formats(max_bits=32))
    assert fmt.bits <= 32 and get_format(fmt.name) == fmt
    c = data.draw(codes(tf32, allow_nan=False))
    assert math.isfinite(fp8emu.decode(np.array([c], np.uint32), tf32)[0]) or tf32.is_inf_code(c)
