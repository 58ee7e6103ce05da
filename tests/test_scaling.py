"""Power-of-two scales, amax selection (per tensor / per channel) and delayed scaling."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fp8emu import matmul, quantize
from fp8emu.accumulators import fp32_sequential
from fp8emu.formats import FP8_FORMATS, e4m3fn, e5m2, get_format
from fp8emu.scaling import DelayedScaling, amax, amax_scale, pow2_scale, scaled_quantize

ELEMENT_FP8 = [f for f in FP8_FORMATS if f.has_zero]


@given(a=st.floats(min_value=1e-40, max_value=1e38), fmt=st.sampled_from(ELEMENT_FP8), margin=st.integers(0, 3))
def test_pow2_scale_is_the_smallest_power_of_two_that_fits(a, fmt, margin):
    s = pow2_scale(a, fmt, margin=margin)
    m, _ = math.frexp(s)
    assert m == 0.5                                        # a power of two
    base = s / 2 ** margin
    assert a / base <= fmt.max < a / (base / 2)            # fits, and half of it would not


def test_pow2_scale_edges():
    assert pow2_scale(448.0, e4m3fn) == 1.0 and pow2_scale(448.0001, e4m3fn) == 2.0
    assert pow2_scale(0.0, e4m3fn) == 1.0
    assert pow2_scale(57344.0, e5m2, margin=1) == 2.0
    for bad in (np.nan, np.inf, -1.0):
        with pytest.raises(ValueError, match="amax"):
            pow2_scale(bad, e4m3fn)


@pytest.mark.parametrize("a, fmt, margin, want", [
    (5e-324, "e4m3fn", 0, 2.0**-1023),      # float64's smallest subnormal: 2^-1082 would not be a float64
    (1e-300, "float32", 0, 2.0**-1023),     # 2^-1124
    (1.0, "e4m3fn", -2000, 2.0**-1023),
    (1e308, "e4m3fn", 10, 2.0**1023),       # 2^1025 overflows float64
    (1e308, "e4m3fn", 0, 2.0**1015),
    (2.0**-1000, "e4m3fn", 0, 2.0**-1008),  # exact below float64's normal range of amax / max
])
def test_pow2_scale_is_clamped_to_powers_of_two_with_float64_reciprocals(a, fmt, margin, want):
    s = pow2_scale(a, fmt, margin=margin)
    assert s == want and math.frexp(s)[0] == 0.5 and math.isfinite(1.0 / s)
    if margin >= 0:
        assert a / s <= get_format(fmt).max
    q = scaled_quantize(np.array([a]), fmt, s)           # a usable scale (scaled_quantize refused 0.0)
    assert q.dtype == np.float32


def test_amax_scale_per_tensor_and_per_channel_feed_matmul():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((6, 32)) * np.exp2(np.arange(6))[:, None] * 100).astype(np.float32)
    b = (rng.standard_normal((32, 5)) * 1e-3).astype(np.float32)
    sa = amax_scale(a, e4m3fn, axis=0)
    sb = amax_scale(b, e4m3fn, axis=1)
    assert sa.shape == (6, 1) and sb.shape == (1, 5) and amax_scale(a, e4m3fn).shape == ()
    row_amax = np.abs(a).max(axis=1, keepdims=True) / sa
    assert np.all((224 < row_amax) & (row_amax <= 448))       # each row uses the top binade
    y = matmul(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn, a_scale=sa, b_scale=sb, accumulator=fp32_sequential)
    y_ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.linalg.norm(y - y_ref) < 0.1 * np.linalg.norm(y_ref)
    # without scales the small b underflows e4m3fn badly
    y_plain = matmul(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn, saturate=True, accumulator=fp32_sequential)
    assert np.abs(y_plain - y_ref).max() > 10 * np.abs(y - y_ref).max()


def test_scaled_quantize_is_exact_division():
    x = np.array([1.0, 3.0, 1000.0, -5e-3], dtype=np.float32)
    q = scaled_quantize(x, e4m3fn, 4.0)
    np.testing.assert_array_equal(q, quantize(x.astype(np.float64) / 4.0, e4m3fn).astype(np.float32))
    with pytest.raises(ValueError, match="powers of two"):
        scaled_quantize(x, e4m3fn, 3.0)


def test_amax_shapes_and_nan():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10
    assert amax(x) == 13
    assert amax(x, axis=1).shape == (1, 3, 1)
    x[0, 0, 0] = np.nan
    assert np.isnan(amax(x))
    with pytest.raises(TypeError, match="float"):
        amax(np.arange(3))


def test_amax_of_empty_reductions_is_zero():
    """Channels with no elements have amax 0 (scale 1), shaped like the non-empty case."""
    x = np.zeros((4, 0), np.float32)
    np.testing.assert_array_equal(amax(x, axis=0), np.zeros((4, 1), np.float32))
    np.testing.assert_array_equal(amax_scale(x, e4m3fn, axis=0), np.ones((4, 1)))
    assert amax(x, axis=1).shape == amax_scale(x, e4m3fn, axis=1).shape == (1, 0)
    assert amax(x) == 0 and amax_scale(x, e4m3fn) == 1.0
    y = np.array([[-0.0, np.nan], [3.0, -1.0]], np.float32)          # NaN and signs as before
    np.testing.assert_array_equal(amax(y, axis=0), [[np.nan], [3.0]])
    np.testing.assert_array_equal(amax(y, axis=1), [[3.0, np.nan]])


def test_amax_and_delayed_scaling_take_bfloat16():
    """ml_dtypes' bfloat16 (NumPy kind "V") is a float array here, as everywhere else."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x32 = np.array([[1.0, -3.0], [0.5, 200.0]], np.float32)
    xb = x32.astype(ml_dtypes.bfloat16)
    assert float(amax(xb)) == 200.0
    np.testing.assert_array_equal(amax(xb, axis=0).astype(np.float32), amax(x32, axis=0))
    np.testing.assert_array_equal(amax_scale(xb, e4m3fn, axis=1), amax_scale(x32, e4m3fn, axis=1))
    qb, sb = DelayedScaling(e4m3fn).quantize(xb)
    q32, s32 = DelayedScaling(e4m3fn).quantize(x32)
    assert sb == s32
    np.testing.assert_array_equal(qb, q32)


def test_delayed_scaling_uses_previous_amaxes():
    ds = DelayedScaling(e4m3fn, history_len=3)
    assert ds.history == ()
    q, s = ds.quantize(np.array([1000.0], dtype=np.float32))   # first step: its own amax, 1000 / 4 = 250 -> 256
    assert s == 4.0 and q[0] == 256.0 and ds.history == (1000.0,)
    q, s = ds.quantize(np.array([10.0], dtype=np.float32))     # max of the history (1000)
    assert s == 4.0 and q[0] == 2.5
    assert ds.scale_for(5.0) == 4.0                             # history (1000, 10): 1000 still in the window
    assert ds.scale_for(5.0) == 4.0                             # history (1000, 10, 5)
    assert ds.history == (10.0, 5.0, 5.0)                      # the window of 3 dropped 1000
    assert ds.scale_for(1.0) == 2.0 ** -5                       # 10 / 2^-5 = 320 <= 448
    assert ds.scale_for(np.nan) == 2.0 ** -6 and ds.scale_for(np.inf) == 2.0 ** -6   # max 5: 5 / 2^-6 = 320
    assert ds.history == (5.0, 5.0, 1.0)                       # NaN/Inf are not recorded
    for _ in range(3):
        ds.record(0.0)
    assert ds.scale_for(0.0) == 1.0                             # an all-zero window: scale 1


def test_delayed_scaling_first_step_non_finite():
    ds = DelayedScaling(e5m2, history_len=2)
    assert ds.scale_for(np.inf) == 1.0 and ds.history == ()    # nothing to go on: scale 1, nothing recorded
    assert ds.scale_for(2.0 ** 20) == pow2_scale(2.0 ** 20, e5m2)


def test_delayed_scaling_most_recent_and_margin():
    ds = DelayedScaling(e5m2, history_len=4, amax_compute_algo="most_recent", margin=1)
    ds.record(1e5)
    ds.record(1.0)
    assert ds.scale_for(7.0) == pow2_scale(1.0, e5m2) * 2 == 2.0 ** -15 * 2


def test_delayed_scaling_state_round_trip():
    ds = DelayedScaling(e4m3fn, history_len=2)
    for a in (3.0, 500.0, 7.0):
        ds.record(a)
    twin = DelayedScaling(e4m3fn, history_len=2)
    twin.load_state_dict(ds.state_dict())
    assert twin.history == ds.history == (500.0, 7.0)
    assert twin.scale_for(1.0) == ds.scale_for(1.0) == 2.0


@pytest.mark.parametrize("kwargs, match", [(dict(history_len=0), "history_len"),
                                           (dict(amax_compute_algo="mean"), "amax_compute_algo")])
def test_delayed_scaling_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DelayedScaling(e4m3fn, **kwargs)
    with pytest.raises(TypeError, match="margin"):
        DelayedScaling(e4m3fn, margin=0.5)
