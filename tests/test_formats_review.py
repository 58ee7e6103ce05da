"""Regression tests of a review of the formats layer: each test failed before its fix.

* ``lowp`` accumulators of formats without mantissa bits break ``nearest_even`` ties by the
  format's tie rule (the fast path's tie bit was float64's exponent bit);
* ``spec.round_scalar`` is exact for NumPy integers and ``np.longdouble`` (no float64 detour);
* ``fp8emu.testing.formats`` draws every kind of field it documents;
* fnuz / signed extended formats without subnormals decode sign-set zero codes as +0;
* ``eps`` and ``min_normal`` say what they are for formats whose values are all subnormal;
* a format name denotes its format, after ``dataclasses.replace`` too;
* formats whose finite values all lie in exponent field 0 (P3109's ``binary2p2ue``) exist.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from fp8emu import Format, _kernels, decode, encode, quantize
from fp8emu.accumulators import lowp
from fp8emu.format import RoundMode, Specials, TieRule
from fp8emu.formats import CATALOGUE, e4m3fn, e4m3fnuz, float32, get_format, p3109
from fp8emu.quantize import _decode_params
from fp8emu.spec import decode_scalar, round_scalar, round_to_format, to_fraction

DETERMINISTIC = [m for m in RoundMode if m is not RoundMode.STOCHASTIC]


def _same(a, b) -> bool:
    """Equal with equal sign, or both NaN."""
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


# ---- lowp with man_bits = 0: nearest_even ties follow the tie rule -----------------------------------
def _lowp_reference(a, b, fmt, chunk, mode, saturate=False):
    """The LowPrecisionAccumulator docstring's loop, exact sums rounded by the spec (finite sums)."""
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            tot = Fraction(0)
            for c0 in range(0, a.shape[1], chunk):
                part = Fraction(0)
                for k in range(c0, min(a.shape[1], c0 + chunk)):
                    x = part + Fraction(float(a[i, k])) * Fraction(float(b[k, j]))
                    part = Fraction(round_to_format(x, fmt, mode, saturate))
                tot = Fraction(round_to_format(tot + part, fmt, mode, saturate))
            out[i, j] = float(tot)
    return out


M0_FORMATS = [Format(5, 0, specials="fn"), get_format("e4m0fn"), p3109(8, 1), p3109(8, 1, extended=False),
              Format(5, 0, bias=14, specials="fn", tie_rule="even_exponent")]


@pytest.mark.parametrize("fmt", M0_FORMATS, ids=str)
def test_lowp_m0_nearest_even_ties_follow_the_tie_rule(fmt):
    # each row sums to a tie between two neighbours: 3 (2|4), 1.5 (1|2), 6 (4|8), 12 (8|16), 0.75, 24
    a = np.array([[1, 2], [1, 0.5], [4, 2], [8, 4], [0.5, 0.25], [16, 8], [-1, -2], [-8, -4]], np.float32)
    b = np.ones((2, 1), np.float32)
    got = lowp(fmt, chunk=64).matmul_2d(a, b)
    np.testing.assert_array_equal(got, _lowp_reference(a, b, fmt, 64, "nearest_even"))
    # ... the rounding layer's own answer for the same ties
    np.testing.assert_array_equal(got[:, 0], quantize(a.sum(axis=1).astype(np.float64), fmt).astype(np.float32))


def test_lowp_m0_ties_named_cases():
    assert lowp(Format(5, 0, specials="fn")).matmul_2d(np.array([[1, 2]], np.float32), np.ones((2, 1)))[0, 0] == 4
    # P3109 binary8p1se, bias 64: 1 is code 64 (even), 2 is code 65: the tie 1.5 goes to 1
    assert lowp(p3109(8, 1)).matmul_2d(np.array([[1, 0.5]], np.float32), np.ones((2, 1)))[0, 0] == 1


@pytest.mark.parametrize("fmt", M0_FORMATS[:3], ids=str)
@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "toward_zero", "up", "odd"])
def test_lowp_m0_random_sums_against_the_spec(fmt, mode):
    rng = np.random.default_rng(0)
    # |sums| <= 8 * 3 * 4 < 128 = max of e4m0fn: no overflow to NaN (which the reference cannot hold)
    a = (2.0 ** rng.integers(-6, 3, (4, 8)) * rng.choice([1, 1.5, -1, -1.5, 3], (4, 8))).astype(np.float32)
    b = np.ones((8, 3), np.float32) * np.array([1, 0.5, 0.75], np.float32)
    np.testing.assert_array_equal(lowp(fmt, 3, mode).matmul_2d(a, b), _lowp_reference(a, b, fmt, 3, mode))


# ---- spec: NumPy integers and longdouble are exact -------------------------------------------------------
def test_round_scalar_is_exact_for_numpy_integers():
    x = 2 ** 54 + 2 ** 30 + 1                  # float64 would round it to 2^54 + 2^30, a float32 tie
    assert to_fraction(np.int64(x)) == x and to_fraction(np.uint64(x)) == x
    want = round_scalar(Fraction(x), float32)
    assert want == 0x5A800001
    for v in (x, np.int64(x), np.uint64(x)):
        assert round_scalar(v, float32) == want, type(v)
    assert round_scalar(-np.int64(x), float32) == want | float32.sign_mask


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="np.longdouble is float64 here")
def test_round_scalar_is_exact_for_longdouble():
    ld = np.longdouble(1) + np.longdouble(2.0 ** -24) + np.longdouble(2.0 ** -60)   # just above a float32 tie
    assert to_fraction(ld) == 1 + Fraction(1, 2 ** 24) + Fraction(1, 2 ** 60)
    assert round_scalar(ld, float32) == 0x3F800001
    huge = np.longdouble(2) ** 2000          # finite, though float(huge) is inf
    assert round_scalar(huge, float32, "toward_zero") == float32.max_code
    assert round_scalar(huge, float32) == float32.inf_code
    assert round_scalar(-np.longdouble(2) ** -2000, float32) == float32.sign_mask     # -0, its sign kept


# ---- fp8emu.testing.formats draws what it documents -------------------------------------------------------
@pytest.mark.parametrize("what, pred", [
    ("no exponent field", lambda f: f.exp_bits == 0),
    ("one exponent bit", lambda f: f.exp_bits == 1),
    ("no mantissa bits", lambda f: f.man_bits == 0),
    ("no zero", lambda f: not f.has_zero),
    ("even-exponent ties", lambda f: f.tie_rule is TieRule.EVEN_EXPONENT),
    ("no subnormals", lambda f: f.has_zero and not f.subnormals),
    ("unsigned", lambda f: not f.signed),
    ("fnuz", lambda f: f.specials is Specials.FNUZ),
    ("extended", lambda f: f.specials is Specials.EXTENDED),
    ("wider than 16 bits", lambda f: f.bits > 16),
])
def test_testing_formats_draws_every_documented_kind(what, pred):
    from fp8emu.testing import formats
    fmt = find(formats(presets=False, max_bits=32), pred,
               settings=settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck)))
    assert pred(fmt) and fmt.bits <= 32, what


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_testing_formats_are_consistent(data):
    """Every drawn format: its name parses back, decode agrees with decode_code, and encode with
    the spec at the strategy's own rounding boundaries."""
    from fp8emu.testing import codes, formats, values_near_rounding_boundaries
    fmt = data.draw(formats(max_bits=12))
    assert fmt.bits <= 12 and get_format(fmt.name) == fmt
    c = data.draw(codes(fmt))
    assert _same(decode(np.array([c], fmt.code_dtype), fmt, dtype=np.float64)[0], fmt.decode_code(c))
    x = data.draw(values_near_rounding_boundaries(fmt, "float32"))
    mode = data.draw(st.sampled_from(DETERMINISTIC))
    assert int(encode(np.array([x]), fmt, rounding=mode)[0]) == round_scalar(float(x), fmt, mode)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_testing_formats_rejects_a_bad_max_bits():
    from fp8emu.testing import formats
    with pytest.raises(ValueError, match="max_bits=3"):
        formats(max_bits=3).example()


# ---- sign-set zero codes of formats without -0 decode to +0 -------------------------------------------
NO_NEG_ZERO_NOSUB = [Format(4, 3, bias=8, specials="fnuz", subnormals=False),
                     Format(4, 3, bias=8, specials="extended", subnormals=False),
                     Format(5, 13, specials="fnuz", subnormals=False),          # wide: decoded without a table
                     Format(8, 10, bias=128, specials="extended", subnormals=False)]


@pytest.mark.parametrize("fmt", NO_NEG_ZERO_NOSUB, ids=str)
def test_sign_set_zero_codes_decode_to_positive_zero(fmt):
    assert not fmt.has_negative_zero
    zeros = [fmt.sign_mask | t for t in (1, 2, (1 << fmt.man_bits) - 1)]     # 0x80 itself is the NaN
    codes = np.array(zeros, fmt.code_dtype)
    for v in [fmt.decode_code(c) for c in zeros] + [decode_scalar(c, fmt) for c in zeros]:
        assert _same(v, 0.0)
    for dtype in (np.float32, np.float64):
        got = decode(codes, fmt, dtype=dtype)
        assert np.all(got == 0) and not np.any(np.signbit(got)), (dtype, got)
        # the table-free kernel (formats wider than 16 bits) and its parameters
        out = np.empty(codes.size, {4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize])
        _kernels._decode_wide(codes.astype(np.int64), out, _decode_params(fmt, np.dtype(dtype)))
        assert np.array_equal(out, np.zeros_like(out)), out
    assert math.isnan(fmt.decode_code(fmt.sign_mask))
    if fmt.bits <= 16:
        assert not np.any(np.signbit(fmt.values()[np.array(zeros)]))


@pytest.mark.parametrize("fmt", NO_NEG_ZERO_NOSUB, ids=str)
def test_sign_set_zero_codes_decode_to_positive_zero_on_the_gpu(fmt):
    """fp8emu.cuda.decode (Numba's CUDA simulator without a GPU: tests/conftest.py): its table
    is the CPU's decode, its wide kernel the CPU's ``_value_bits``."""
    pytest.importorskip("numba_cuda", reason="numba-cuda not installed")
    from numba import cuda
    from fp8emu import cuda as fc
    codes = np.array([fmt.sign_mask | 1, fmt.sign_mask | ((1 << fmt.man_bits) - 1), 0], fmt.code_dtype)
    got = fc.decode(cuda.to_device(codes), fmt, dtype=np.float32).copy_to_host()
    assert np.all(got == 0) and not np.any(np.signbit(got)), got


def test_formats_with_negative_zero_keep_it_on_non_canonical_zeros():
    fmt = Format(4, 3, specials="fn", subnormals=False)
    for c in (0x80, 0x81, 0x87):
        assert _same(fmt.decode_code(c), -0.0) and _same(decode_scalar(c, fmt), -0.0)
    assert np.all(np.signbit(decode(np.array([0x80, 0x81, 0x87], np.uint8), fmt)))


# ---- eps and min_normal say what they are ---------------------------------------------------------------
def _small_formats():
    out = [f for f in CATALOGUE if f.bits <= 12]
    for e in range(0, 5):
        for m in range(0, 5):
            for bias in (-2, -1, 0, 1, 3, 6):
                for specials in Specials:
                    try:
                        out.append(Format(e, m, bias=bias, specials=specials))
                    except ValueError:
                        pass
    return out


def test_eps_is_the_gap_above_one_exactly_where_documented():
    """``eps`` is 2^-man_bits; it is the gap above 1.0 when ``emin <= 0`` and ``1 + eps <= max``."""
    seen_other = 0
    for fmt in _small_formats():
        assert fmt.eps == 2.0 ** -fmt.man_bits
        v = fmt.finite_values()
        above = v[v > 1.0]
        gap = above.min() - 1.0 if (v == 1.0).any() and above.size else None
        documented = fmt.emin <= 0 and 1 + fmt.eps <= fmt.max
        assert (gap == fmt.eps) == documented, fmt
        seen_other += gap is not None and not documented
    assert seen_other > 0          # e.g. binary8p8se: 1.0 is subnormal, the gap above it 2 * eps
    doc = " ".join(Format.eps.__doc__.split())
    assert "emin <= 0" in doc and "1 + eps <= max" in doc


def test_min_normal_of_all_subnormal_formats_is_documented():
    fmt = get_format("binary8p8se")
    assert fmt.min_normal == 2.0 and fmt.max < fmt.min_normal and fmt.eps == 2.0 ** -7
    for f in _small_formats():
        normals = f.finite_values()[f.finite_values() >= f.min_normal]
        assert (normals.size == 0) == (f.max < f.min_normal), f
    assert "larger than :attr:`max`" in " ".join(Format.min_normal.__doc__.split())


# ---- a format name denotes its format --------------------------------------------------------------------
def test_replace_gives_the_new_fields_their_own_name():
    f = dataclasses.replace(e4m3fn, bias=9)
    assert f.name == "e4m3b9fn" and get_format(f.name) == f
    assert dataclasses.replace(e4m3fnuz, bias=7).name == "e4m3b7fnuz"
    same = dataclasses.replace(e4m3fn, bias=7)
    assert same == e4m3fn and same.name == "e4m3fn"
    g = pickle.loads(pickle.dumps(f))
    assert g == f and hash(g) == hash(f) and g.name == f.name and {f: 1}[g] == 1


def test_a_format_name_of_other_fields_is_replaced_a_display_name_is_kept():
    assert Format(4, 3, bias=9, specials="fn", name="e4m3fn").name == "e4m3b9fn"
    assert Format(4, 3, name="fp8_e4m3").name == "e4m3"                  # an alias of e4m3fn
    assert Format(4, 3, name="binary8p4se").name == "e4m3"               # a P3109 name
    assert Format(4, 3, name="e9m3").name == "e4m3"                      # a grammar name of no format
    assert Format(4, 3, specials="fn", name=" E4M3FN ").name == " E4M3FN "   # denotes these fields
    assert Format(1, 6, bias=1, specials="none", name="mxint8").name == "mxint8"
    assert p3109(10, 3).name == "binary10p3se" and get_format("binary10p3se") == p3109(10, 3)
    with pytest.raises(TypeError, match="Format.name must be a str"):
        Format(4, 3, name=7)
    for preset in CATALOGUE:
        assert get_format(preset.name) is preset
        assert Format(**{fld.name: getattr(preset, fld.name) for fld in dataclasses.fields(preset)}).name == preset.name


# ---- formats whose finite values are all subnormal, with an exponent field ----------------------------
def test_p3109_binary2p2ue_exists():
    fmt = p3109(2, 2, signed=False, extended=True)
    assert (fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.name) == (1, 1, 1, "binary2p2ue")
    vals = fmt.values()
    assert list(vals[:3]) == [0.0, 0.5, math.inf] and math.isnan(vals[3])
    assert fmt.max == 0.5 and fmt.max_code == 1 and fmt.inf_code == 2 and fmt.nan_code == 3
    assert fmt.emax == fmt.emin - 1 and fmt.min_normal > fmt.max
    assert get_format("binary2p2ue") == fmt


# built in the test (a refused format then fails its test, not the module's collection)
ALL_SUBNORMAL = {"binary2p2ue": lambda: p3109(2, 2, False, True),
                 "e1m1b3extu": lambda: Format(1, 1, bias=3, specials="extended", signed=False),
                 "e1m2": lambda: Format(1, 2), "e1m3b-4u": lambda: Format(1, 3, bias=-4, signed=False),
                 "e1m4b5": lambda: Format(1, 4, bias=5), "e1m20b1": lambda: Format(1, 20, bias=1)}


@pytest.mark.parametrize("make", ALL_SUBNORMAL.values(), ids=ALL_SUBNORMAL.keys())
def test_all_subnormal_formats_against_the_spec(make):
    fmt = make()
    n = min(fmt.num_codes, 1024)
    around_max = fmt.max_code + np.arange(-n, 8)
    codes = np.concatenate([np.arange(n), fmt.num_codes - 1 - np.arange(n), around_max, around_max | fmt.sign_mask])
    codes = np.unique(codes[(codes >= 0) & (codes < fmt.num_codes)]).astype(fmt.code_dtype)
    for dtype in (np.float32, np.float64):
        got = decode(codes, fmt, dtype=dtype)
        assert all(_same(g, fmt.decode_code(int(c))) and _same(g, decode_scalar(int(c), fmt))
                   for c, g in zip(codes, got))
    fin = np.array([fmt.decode_code(int(c)) for c in codes])
    fin = np.unique(np.abs(fin[np.isfinite(fin)]))
    assert fin.max() == fmt.max and fmt.max < fmt.min_normal
    mids = (fin[1:] + fin[:-1]) / 2
    q = math.ldexp(1, fmt.emin - fmt.man_bits)
    pts = np.concatenate([fin, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf),
                          [fmt.max + q / 4, fmt.max + q / 2, fmt.max + q, 4 * fmt.max, q / 2, q / 4, np.inf, np.nan]])
    x = np.concatenate([pts, -pts])
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        for mode in DETERMINISTIC:
            for sat in (False, True):
                got = encode(xd, fmt, rounding=mode, saturate=sat)
                want = [round_scalar(float(v), fmt, mode, sat) for v in xd]
                assert got.astype(np.int64).tolist() == want, (dtype, mode, sat)
                back = quantize(xd, fmt, rounding=mode, saturate=sat)
                assert np.array_equal(back, decode(got, fmt, dtype=dtype), equal_nan=True)


def test_all_subnormal_format_still_needs_subnormals_and_a_zero():
    with pytest.raises(ValueError, match="no finite normal binade"):
        Format(1, 2, subnormals=False)
    with pytest.raises(ValueError, match="fewer than two finite magnitudes"):
        p3109(2, 2, signed=True, extended=True)       # 0, +Inf, NaN, -Inf: no non-zero finite value


def test_lowp_accumulates_in_an_all_subnormal_format():
    fmt = Format(1, 3, bias=1)        # +-{0, 1/8, ..., 7/8}, Inf, NaN
    rng = np.random.default_rng(2)
    a = (rng.integers(-3, 4, (3, 6)) / 8).astype(np.float32)
    b = (rng.integers(-2, 3, (6, 2)) / 2).astype(np.float32)
    for mode in ("nearest_even", "toward_zero", "up"):
        got = lowp(fmt, 2, mode, saturate=True).matmul_2d(a, b)
        np.testing.assert_array_equal(got, _lowp_reference(a, b, fmt, 2, mode, saturate=True))

