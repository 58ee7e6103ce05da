"""Public encode/decode/quantize: API behaviour, hypothesis properties, stochastic rounding."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fp8emu
from fp8emu.format import RoundMode
from fp8emu.formats import ALL_FORMATS, bfloat16, e2m1fn, e4m3fn, e4m3fnuz, e5m2, e8m0fnu, float16

from strategies import FLOAT_DTYPES, any_format, deterministic_modes, floats_of, formats

SIGNED = [f for f in ALL_FORMATS if f.signed]


# ---- API behaviour -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_shapes_strides_byteorder_and_0d(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 6)) * 100).astype(dtype)
    ref = fp8emu.quantize(x, e5m2)
    assert ref.dtype == x.dtype and ref.shape == x.shape
    assert np.array_equal(fp8emu.quantize(x.T, e5m2), ref.T)
    assert np.array_equal(fp8emu.quantize(x[::2, 1::3], e5m2), ref[::2, 1::3])
    swapped = x.astype(x.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))
    assert np.array_equal(fp8emu.quantize(swapped, e5m2), ref)
    assert np.array_equal(fp8emu.encode(swapped, e5m2), fp8emu.encode(x, e5m2))
    zero_d = fp8emu.quantize(x[1, 2], e5m2)
    assert np.shape(zero_d) == () and zero_d == ref[1, 2]
    assert fp8emu.encode(np.empty((0, 3), dtype), e5m2).shape == (0, 3)
    assert fp8emu.quantize(np.empty(0, dtype), e5m2).dtype == dtype


def test_bfloat16_inputs():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([1.0, 1.125, 3.0e38, -2.0**-130, np.nan, -np.inf, 448.0, 464.0], dtype=ml_dtypes.bfloat16)
    codes = fp8emu.encode(x, e4m3fn)
    assert codes.tolist() == fp8emu.encode(x.astype(np.float32), e4m3fn).tolist()
    q = fp8emu.quantize(x, e5m2)
    assert q.dtype == x.dtype
    np.testing.assert_array_equal(q.astype(np.float32), fp8emu.quantize(x.astype(np.float32), e5m2))
    with pytest.raises(ValueError, match="encode"):
        fp8emu.quantize(x, float16)         # float16 values do not fit bfloat16
    with pytest.raises(ValueError, match="cannot hold"):
        fp8emu.quantize(np.ones(3, np.float16), bfloat16)
    with pytest.raises(ValueError, match="cannot hold"):
        fp8emu.quantize(np.ones(3, np.float16), e8m0fnu)


def test_out_and_in_place():
    x = np.linspace(-500, 500, 1001, dtype=np.float32)
    want = fp8emu.quantize(x, e4m3fn, saturate=True)
    out = np.empty_like(x)
    assert fp8emu.quantize(x, e4m3fn, saturate=True, out=out) is out
    assert np.array_equal(out, want)
    y = x.copy()
    fp8emu.quantize(y, e4m3fn, saturate=True, out=y)
    assert np.array_equal(y, want)
    z = np.zeros((2, 1001), np.float32)[:, ::1][0]
    fp8emu.quantize(x, e4m3fn, saturate=True, out=z)
    assert np.array_equal(z, want)
    strided = np.zeros(2002, np.float32)[::2]
    fp8emu.quantize(x, e4m3fn, saturate=True, out=strided)
    assert np.array_equal(strided, want)
    codes = np.empty(x.shape, np.uint8)
    assert fp8emu.encode(x, e4m3fn, out=codes) is codes
    vals = np.empty(x.shape, np.float64)
    assert fp8emu.decode(codes, e4m3fn, dtype=np.float64, out=vals) is vals
    assert np.array_equal(vals, fp8emu.quantize(x.astype(np.float64), e4m3fn), equal_nan=True)
    # overlapping but not identical views go through a temporary
    w = x.copy()
    fp8emu.quantize(w[:-1], e4m3fn, saturate=True, out=w[1:])
    assert np.array_equal(w[1:], want[:-1])


@pytest.mark.parametrize("n", [16, 1 << 17])          # the serial twin and the parallel kernel
@pytest.mark.parametrize("fmt,dtype", [("e5m2", np.float16), ("e4m3fn", np.float32), ("e8m15", np.float64),
                                       ("float16", np.float16), ("e8m15", np.float32)])
def test_decode_into_an_out_over_its_own_codes(n, fmt, dtype):
    """decode's ``out`` over the codes' bytes: a wider dtype from the same start (each value
    would overwrite codes not read yet) goes through a temporary; the same itemsize element
    for element (in place) is written directly.  Both equal decoding a copy."""
    fmt = fp8emu.get_format(fmt)
    codes = np.random.default_rng(3).integers(0, fmt.num_codes, n).astype(fmt.code_dtype)
    want = fp8emu.decode(codes, fmt, dtype=dtype)
    buf = np.zeros(n * np.dtype(dtype).itemsize, np.uint8)
    shared = buf.view(fmt.code_dtype)[:n]
    shared[:] = codes
    out = buf.view(dtype)
    assert fp8emu.decode(shared, fmt, dtype=dtype, out=out) is out
    assert np.array_equal(out, want, equal_nan=True)
    if np.dtype(fmt.code_dtype).itemsize == np.dtype(dtype).itemsize:
        same = codes.copy()
        fp8emu.decode(same, fmt, dtype=dtype, out=same.view(dtype))
        assert np.array_equal(same.view(dtype), want, equal_nan=True)


def test_errors_name_the_argument():
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="float16, bfloat16"):
        fp8emu.encode(np.ones(4, np.int32), e5m2)
    with pytest.raises(TypeError, match="allowed"):
        fp8emu.quantize(np.ones(4, np.complex64), e5m2)
    with pytest.raises(ValueError, match="rounding="):
        fp8emu.encode(x, e5m2, rounding="sideways")
    with pytest.raises(ValueError, match="unknown format"):
        fp8emu.encode(x, "e4m3x")
    with pytest.raises(ValueError, match="sr_bits"):
        fp8emu.encode(x, e5m2, rounding="stochastic", sr_bits=0)
    with pytest.raises(ValueError, match="needs rounding='stochastic'"):
        fp8emu.encode(x, e5m2, sr_bits=8)
    with pytest.raises(TypeError, match="seed"):
        fp8emu.encode(x, e5m2, rounding="stochastic", seed=1.5)
    with pytest.raises(TypeError, match="saturate"):
        fp8emu.encode(x, e5m2, saturate="yes")
    with pytest.raises(ValueError, match="shape"):
        fp8emu.encode(x, e5m2, out=np.empty(3, np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        fp8emu.encode(x, e5m2, out=np.empty(4, np.uint16))
    with pytest.raises(ValueError, match=r"out of range for e2m1fn \(0\.\.15\)"):
        fp8emu.decode(np.array([3, 16], np.uint8), e2m1fn)
    with pytest.raises(ValueError, match="-1"):
        fp8emu.decode(np.array([-1]), e5m2)
    with pytest.raises(TypeError, match="integer"):
        fp8emu.decode(np.array([1.0]), e5m2)
    with pytest.raises(TypeError, match="dtype="):
        fp8emu.decode(np.array([1]), e5m2, dtype=np.int32)


def test_special_values():
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e9, -1e9], dtype=np.float32)
    assert fp8emu.encode(x, e5m2).tolist() == [0x7E, 0x7E, 0x7C, 0xFC, 0x80, 0, 0x7C, 0xFC]
    assert fp8emu.encode(x, e5m2, saturate=True).tolist() == [0x7E, 0x7E, 0x7B, 0xFB, 0x80, 0, 0x7B, 0xFB]
    assert fp8emu.encode(x, e4m3fn).tolist() == [0x7F, 0x7F, 0x7F, 0x7F, 0x80, 0, 0x7F, 0x7F]
    assert fp8emu.encode(x, e4m3fnuz).tolist() == [0x80, 0x80, 0x80, 0x80, 0, 0, 0x80, 0x80]
    # no Inf/NaN (MX FP4): always saturate, NaN -> the sign-bit code (ml_dtypes)
    assert fp8emu.encode(x, e2m1fn).tolist() == [0x8, 0x8, 0x7, 0xF, 0x8, 0, 0x7, 0xF]
    # unsigned, no zero (E8M0): 0 and negatives -> NaN, tiny -> smallest value
    y = np.array([0.0, -0.0, -1.0, 2.0**-140, 1.0, np.inf], dtype=np.float32)
    assert fp8emu.encode(y, e8m0fnu).tolist() == [0xFF, 0xFF, 0xFF, 0x00, 0x7F, 0xFF]
    assert fp8emu.encode(y, e8m0fnu, saturate=True).tolist() == [0xFF, 0xFF, 0xFF, 0x00, 0x7F, 0xFE]
    # fnuz: negatives that round to zero give +0
    assert fp8emu.encode(np.array([-1e-30]), e4m3fnuz).tolist() == [0]
    assert fp8emu.encode(np.array([-1e-30]), e4m3fn).tolist() == [0x80]
    q = fp8emu.quantize(np.array([np.nan, 1e9], np.float32), e4m3fn)
    assert np.isnan(q).all() and not np.signbit(q).any()


@pytest.mark.parametrize("mode,pos,neg", [
    ("nearest_even", 0x7C, 0xFC), ("nearest_away", 0x7C, 0xFC), ("toward_zero", 0x7B, 0xFB),
    ("up", 0x7C, 0xFB), ("down", 0x7B, 0xFC)])
def test_directed_overflow_ieee_754_7_4(mode, pos, neg):
    """Above max: modes that round toward zero for that sign give +-max, the others overflow."""
    x = np.array([62000.0, -62000.0, 1e30, -1e30])
    assert fp8emu.encode(x, e5m2, rounding=mode).tolist() == [pos, neg, pos, neg]
    # Inf is exact: never becomes max unless saturating
    assert fp8emu.encode(np.array([np.inf, -np.inf]), e5m2, rounding=mode).tolist() == [0x7C, 0xFC]


# ---- hypothesis properties ------------------------------------------------------------------------
@st.composite
def format_and_values(draw, signed_only=False, n=12):
    fmt = draw(formats() if not signed_only else st.sampled_from(SIGNED))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    if dtype is np.float32 and fmt.emin < -126:
        dtype = np.float64
    xs = draw(st.lists(floats_of(fmt, dtype), min_size=1, max_size=n))
    return fmt, np.array(xs, dtype=dtype)


@given(format_and_values(), deterministic_modes)
def test_monotone(fv, mode):
    fmt, x = fv
    x = np.sort(x[np.isfinite(x)])
    q = fp8emu.quantize(x.astype(np.float64), fmt, rounding=mode, saturate=True)
    q = q[~np.isnan(q)]          # unsigned formats: negatives are NaN
    assert np.all(np.diff(q) >= 0), (x, q)


@given(format_and_values(signed_only=True), st.sampled_from(["nearest_even", "nearest_away", "toward_zero"]),
       st.booleans())
def test_sign_symmetry(fv, mode, saturate):
    fmt, x = fv
    a = fp8emu.quantize(x, fmt, rounding=mode, saturate=saturate)
    b = fp8emu.quantize(-x, fmt, rounding=mode, saturate=saturate)
    assert np.array_equal(a, -b, equal_nan=True)
    up = fp8emu.quantize(x, fmt, rounding="up", saturate=saturate)
    down = fp8emu.quantize(-x, fmt, rounding="down", saturate=saturate)
    assert np.array_equal(up, -down, equal_nan=True)


@given(format_and_values(), st.sampled_from(list(RoundMode)), st.booleans(), st.integers(0, 2**64 - 1))
def test_idempotent(fv, mode, saturate, seed):
    fmt, x = fv
    once = fp8emu.quantize(x, fmt, rounding=mode, saturate=saturate, seed=seed)
    twice = fp8emu.quantize(once, fmt, rounding=mode, saturate=saturate, seed=seed + 1)
    assert np.array_equal(once, twice, equal_nan=True)


@given(format_and_values(), st.integers(0, 2**32), st.sampled_from([None, 1, 4, 13]))
def test_directed_bracket_and_sr_picks_a_neighbour(fv, seed, sr_bits):
    fmt, x = fv
    x = x[np.isfinite(x) & (np.abs(x) <= fmt.max)]
    if not fmt.signed:
        x = np.abs(x)
    if not fmt.has_zero:        # below the smallest value there is nothing to bracket with
        x = x[np.abs(x) >= fmt.min_normal]
    lo = fp8emu.quantize(x, fmt, rounding="down")
    hi = fp8emu.quantize(x, fmt, rounding="up")
    assert np.all(lo <= x) and np.all(x <= hi)
    tz = fp8emu.quantize(x, fmt, rounding="toward_zero")
    assert np.all(np.abs(tz) <= np.abs(x))
    sr = fp8emu.quantize(x, fmt, rounding="stochastic", seed=seed, sr_bits=sr_bits)
    assert np.all((sr == lo) | (sr == hi))
    exact = lo == hi
    assert np.array_equal(sr[exact], x[exact])


# ---- stochastic rounding statistics (seeded: deterministic, not flaky) ----------------------------
def _fraction_up(x, fmt, n, **kw):
    xs = np.full(n, x)
    q = fp8emu.quantize(xs, fmt, rounding="stochastic", **kw)
    lo = fp8emu.quantize(np.array([x]), fmt, rounding="toward_zero")[0]
    return np.mean(q != lo), q


@pytest.mark.parametrize("x", [1.0 + 0.3 * 0.25, -(1.0 + 0.7 * 0.25), 2.0**-16 * 0.1, 49152 + 0.9 * 8192])
def test_sr_exact_mode_unbiased(x):
    """P(away) = f exactly; 400k draws: the count is within 6 sigma of n*f and the mean of the
    rounded values within 6 sigma of x (E5M2, float64 inputs, saturating)."""
    n = 400_000
    lo = abs(float(fp8emu.quantize(np.array([x]), e5m2, rounding="toward_zero")[0]))
    hi = abs(float(fp8emu.quantize(np.array([x]), e5m2, rounding="up" if x > 0 else "down")[0]))
    f = (abs(x) - lo) / (hi - lo)
    p, q = _fraction_up(x, e5m2, n, seed=12345, saturate=True)
    sigma = np.sqrt(f * (1 - f) / n)
    assert abs(p - f) < 6 * sigma, (p, f)
    assert abs(q.mean() - x) < 6 * sigma * (hi - lo)


def test_sr_can_overflow():
    """Between max and the next (virtual) value SR overflows with probability f (SPEC §6.7)."""
    x = 57344 + 0.25 * 8192
    q = fp8emu.quantize(np.full(100_000, x), e5m2, rounding="stochastic", seed=5)
    assert set(np.unique(q).tolist()) == {57344.0, np.inf}
    assert abs(np.mean(np.isinf(q)) - 0.25) < 6 * np.sqrt(0.25 * 0.75 / 100_000)
    qs = fp8emu.quantize(np.full(1000, x), e5m2, rounding="stochastic", seed=5, saturate=True)
    assert np.all(qs == 57344.0)
    qn = fp8emu.quantize(np.full(1000, x / 128), e4m3fn, rounding="stochastic", seed=5)   # 448 < x/128 < 480
    assert np.isnan(qn).any() and (qn == 448).any()


@pytest.mark.parametrize("r", [1, 2, 3])
def test_sr_bits_biased_toward_zero(r):
    """sr_bits=r rounds away with probability floor(f * 2^r) / 2^r <= f: a bias toward zero."""
    n = 200_000
    f = 0.7
    for sign in (1, -1):
        x = sign * (1.0 + f * 0.25)
        p, q = _fraction_up(x, e5m2, n, seed=99, sr_bits=r)
        expect = np.floor(f * 2**r) / 2**r
        sigma = np.sqrt(0.25 / n)
        assert abs(p - expect) < 6 * sigma, (r, p, expect)
        assert sign * (q.mean() - x) < -0.5 * (f - expect) * 0.25     # |mean| < |x|


def test_sr_reproducible_and_streams_differ():
    x = np.random.default_rng(3).standard_normal(10_000).astype(np.float32)
    a = fp8emu.encode(x, e5m2, rounding="stochastic", seed=7)
    assert np.array_equal(a, fp8emu.encode(x, e5m2, rounding="stochastic", seed=7))
    assert np.array_equal(a, fp8emu.encode(x, e5m2, rounding="stochastic", seed=7, stream=0))
    b = fp8emu.encode(x, e5m2, rounding="stochastic", seed=7, stream=1)
    c = fp8emu.encode(x, e5m2, rounding="stochastic", seed=8)
    assert np.mean(a != b) > 0.2 and np.mean(a != c) > 0.2
    # the bits depend on the C-order index of the logical array, not the memory layout
    m = x.reshape(100, 100)
    assert np.array_equal(fp8emu.encode(np.asfortranarray(m), e5m2, rounding="stochastic", seed=7), a.reshape(100, 100))
    # streams are ints mod 2^64: hash() values (possibly negative) are fine
    assert np.array_equal(fp8emu.encode(x, e5m2, rounding="stochastic", seed=7, stream=-1),
                          fp8emu.encode(x, e5m2, rounding="stochastic", seed=7, stream=2**64 - 1))
    # seed=None: fresh bits
    d1 = fp8emu.encode(x, e5m2, rounding="stochastic")
    d2 = fp8emu.encode(x, e5m2, rounding="stochastic")
    assert np.mean(d1 != d2) > 0.2


_THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, numpy as np, fp8emu
    x = np.random.default_rng(5).standard_normal(300_001)
    h = hashlib.sha256()
    for dt in (np.float64, np.float32, np.float16):
        for r in (None, 3):
            h.update(fp8emu.encode(x.astype(dt) * 1e-3, "e4m3fn", rounding="stochastic", seed=11, stream=4,
                                   sr_bits=r).tobytes())
            h.update(fp8emu.quantize(x.astype(dt), "e5m2fnuz", rounding="stochastic", seed=11).tobytes())
    print(h.hexdigest())
""")


def test_sr_same_bits_on_1_and_2_threads():
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        digests.append(res.stdout.strip())
    assert digests[0] == digests[1] and len(digests[0]) == 64


@given(any_format(), st.integers(0, 2**16))
def test_custom_formats_decode_encode_round_trip(fmt, start):
    codes = (np.arange(start, start + 64) % fmt.num_codes).astype(fmt.code_dtype)
    vals = fp8emu.decode(codes, fmt, dtype=np.float64)
    back = fp8emu.encode(vals, fmt)
    for c, b in zip(codes.tolist(), back.tolist()):
        if fmt.is_nan_code(c):
            assert b == (fmt.nan_code if fmt.nan_code is not None else fmt.sign_mask)
        elif fmt.decode_code(c) == 0:
            assert fmt.decode_code(b) == 0
        else:
            assert b == c
