"""OCP MX v1.0 block scaling: hypothesis properties against an independent scalar oracle, and
hand-checked vectors."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fp8emu import decode, matmul
from fp8emu.accumulators import fp32_sequential
from fp8emu.formats import e8m0fnu
from fp8emu.scaling import MX_ELEMENT_FORMATS, MXINT8, MXTensor, mx_dequantize, mx_quantize
from fp8emu.spec import round_to_format

ELEMS = list(MX_ELEMENT_FORMATS)


def _oracle_block(vals, fmt):
    """(scale exponent or None for NaN, element values) of one block, scalar by scalar."""
    finite = [float(v) for v in vals]
    if any(math.isnan(v) or math.isinf(v) for v in finite):
        return None, None
    am = max((abs(v) for v in finite), default=0.0)
    if am == 0:
        e = -127
    else:
        e = max(math.frexp(am)[1] - 1 - fmt.emax, -127)
        if e > 127:
            return None, None
    return e, [round_to_format(v / 2.0 ** e, fmt, "nearest_even", saturate=True) for v in finite]


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
blocks = st.lists(st.one_of(finite32, st.floats(-8, 8, width=32), st.just(0.0)), min_size=1, max_size=70)


@given(vals=blocks, elem=st.sampled_from(ELEMS))
@example(vals=[0.0] * 32, elem="e4m3fn")
@example(vals=[1.9999999] + [0.0] * 31, elem="e2m1fn")
@example(vals=[3.4e38, -1e-45], elem="e5m2")
@example(vals=[1e-45] * 3, elem="int8")
def test_matches_scalar_oracle(vals, elem):
    x = np.array(vals, dtype=np.float32)
    mx = mx_quantize(x, elem)
    fmt = mx.elem_fmt
    got = mx_dequantize(mx, dtype=np.float64)
    for bi in range(mx.scales.shape[0]):
        e, elems = _oracle_block(x[bi * 32:(bi + 1) * 32], fmt)
        assert mx.scales[bi] == (0xFF if e is None else e + 127)
        if e is not None:
            np.testing.assert_array_equal(got[bi * 32:(bi + 1) * 32], np.array(elems) * 2.0 ** e)


@given(vals=blocks, elem=st.sampled_from(ELEMS))
def test_scale_choice_and_clamping(vals, elem):
    """Each block's largest element lands in the element's top binade or saturates; nothing exceeds max * X."""
    x = np.array(vals, dtype=np.float32)
    mx = mx_quantize(x, elem)
    fmt = mx.elem_fmt
    d = mx_dequantize(mx, dtype=np.float64)
    for bi, code in enumerate(mx.scales):
        blk, dq = np.abs(x[bi * 32:(bi + 1) * 32].astype(np.float64)), np.abs(d[bi * 32:(bi + 1) * 32])
        scale = float(decode(np.array([code], np.uint8), e8m0fnu, dtype=np.float64)[0])
        assert scale == 2.0 ** (int(code) - 127)      # scale codes are E8M0
        assert np.all(dq <= fmt.max * scale)           # clamped
        am = blk.max()
        if am > 0 and code > 0:                        # not clamped at 2^-127: amax / X in [2^emax, 2^(emax+1))
            assert 2.0 ** fmt.emax <= am / scale < 2.0 ** (fmt.emax + 1)
        if am == 0:
            assert code == 0 and not dq.any()


@given(elem=st.sampled_from(ELEMS), e=st.integers(-127, 120), seed=st.integers(0, 2 ** 32 - 1))
def test_representable_blocks_round_trip(elem, e, seed):
    """Blocks whose values are element values times X (with the max element present) come back exactly."""
    fmt = MX_ELEMENT_FORMATS[elem]
    rng = np.random.default_rng(seed)
    if fmt is MXINT8:
        grid = np.arange(-127, 128) / 64.0
    else:
        grid = decode(np.arange(fmt.num_codes, dtype=np.uint8), fmt, dtype=np.float64)
        grid = grid[np.isfinite(grid)]
    vals = rng.choice(grid, 32)
    vals[rng.integers(32)] = fmt.max * rng.choice([-1.0, 1.0])
    x = vals * 2.0 ** e                                  # float64: exact
    mx = mx_quantize(x, elem)
    assert mx.scales[0] == e + 127
    np.testing.assert_array_equal(mx_dequantize(mx, dtype=np.float64), x)


@pytest.mark.parametrize("elem", ELEMS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_blocks_become_nan(elem, bad):
    x = np.linspace(-3, 3, 96).astype(np.float32)
    x[40] = bad
    mx = mx_quantize(x, elem)
    assert list(mx.scales) == [mx.scales[0], 0xFF, mx.scales[2]] and mx.scales[0] != 0xFF
    d = mx.dequantize()
    assert np.isnan(d[32:64]).all() and np.isfinite(d[:32]).all() and np.isfinite(d[64:]).all()


def test_scale_overflow_is_nan():
    x = np.array([2.0 ** 140, 1.0])                   # floor(log2) - emax = 132 > 127
    assert mx_quantize(x, "e4m3fn").scales[0] == 0xFF
    assert mx_quantize(np.array([2.0 ** 127]), "e4m3fn").scales[0] == 127 - 8 + 127


# (element format, block values, expected scale code, expected element codes, expected dequantized)
HAND = [
    ("e4m3fn", [1.0], 119, [0x78], [1.0]),                         # X = 2^-8, 256 = 0 1111 000
    ("e4m3fn", [1.9602584, -0.5], 119, [0x7E, 0xF0], [1.75, -0.5]),  # 501.8 saturates to 448; -128
    ("e2m1fn", [6.0, 1.0, -0.75, 0.2], 127, [0x7, 0x2, 0xA, 0x0], [6.0, 1.0, -1.0, 0.0]),  # -0.75 ties to 1.0
    ("e2m1fn", [7.9], 127, [0x7], [6.0]),                           # clamp 7.9 -> 6
    ("e5m2", [2.0 ** -140], 0, [0x08], [2.0 ** -140]),              # scale clamped at 2^-127; 2^-13
    ("e3m2fn", [-28.0, 3.0], 127, [0x3F, 0x12], [-28.0, 3.0]),      # emax 4: X = 1; 1 111 11, 0 100 10
    ("e2m3fn", [0.1], 121, [0x1D], [0.1015625]),                    # X = 2^-6: 6.4 -> 6.5 = 0 11 101
    ("int8", [1.0, -0.5, 0.01], 127, [64, -32, 1], [1.0, -0.5, 0.015625]),
    ("int8", [1.99, -1.999], 127, [127, -127], [127 / 64, -127 / 64]),   # saturate, never -128
    ("int8", [0.0, 0.0], 0, [0, 0], [0.0, 0.0]),
]


@pytest.mark.parametrize("elem, vals, scale, codes, deq", HAND)
def test_hand_checked_vectors(elem, vals, scale, codes, deq):
    mx = mx_quantize(np.array(vals, dtype=np.float64), elem)
    assert int(mx.scales[0]) == scale
    assert mx.elements.tolist() == codes
    assert mx_dequantize(mx, dtype=np.float64).tolist() == deq


def test_axis_and_partial_blocks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    mx = mx_quantize(x, "e4m3fn", axis=0)
    assert mx.scales.shape == (2, 3) and mx.elements.shape == (40, 3)
    np.testing.assert_array_equal(mx.dequantize(), mx_quantize(x.T.copy(), "e4m3fn").dequantize().T)


def test_matmul_accepts_mx_operands_blocked_along_k():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 64)).astype(np.float32)
    b = rng.standard_normal((64, 5)).astype(np.float32)
    ma, mb = mx_quantize(a, "e4m3fn"), mx_quantize(b, "e5m2", axis=0)
    want = matmul(ma.dequantize(), mb.dequantize(), accumulator=fp32_sequential)
    np.testing.assert_array_equal(matmul(ma, mb, accumulator=fp32_sequential), want)
    with pytest.raises(ValueError, match="contraction axis"):
        matmul(mx_quantize(a, "e4m3fn", axis=0), b)
    with pytest.raises(ValueError, match="MXTensor"):
        matmul(ma, b, a_fmt="e4m3fn")


def test_stochastic_elements_are_reproducible():
    x = np.linspace(-1, 1, 64).astype(np.float32) / 3
    m1 = mx_quantize(x, "e2m1fn", rounding="stochastic", seed=5)
    m2 = mx_quantize(x, "e2m1fn", rounding="stochastic", seed=5)
    m3 = mx_quantize(x, "e2m1fn", rounding="stochastic", seed=6)
    assert np.array_equal(m1.elements, m2.elements) and not np.array_equal(m1.elements, m3.elements)


@pytest.mark.parametrize("call, err, match", [
    (lambda: mx_quantize(np.ones(4), "e4m3"), ValueError, "not one of OCP MX"),
    (lambda: mx_quantize(np.ones(4), "float16"), ValueError, "not one of OCP MX"),
    (lambda: mx_quantize(np.ones(4, dtype=np.int32), "e4m3fn"), TypeError, "float array"),
    (lambda: mx_quantize(np.ones(4), "e4m3fn", axis=1), ValueError, "axis"),
    (lambda: mx_quantize(np.ones(4), "e4m3fn", block=0), ValueError, "block"),
    (lambda: mx_dequantize(np.ones(4)), TypeError, "MXTensor"),
    (lambda: mx_dequantize(MXTensor(np.zeros(64, np.uint8), np.zeros(1, np.uint8), MX_ELEMENT_FORMATS["e4m3fn"], 0)),
     ValueError, "blocks"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
