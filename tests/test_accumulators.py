"""Accumulators vs naive plain-Python oracles (same order, same roundings), reproducibility,
exactness of FP8 products in float32, and the float32 error bound of fp32_blas."""

import itertools
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fp8emu import quantize
from fp8emu._random import words
from fp8emu.accumulators import (Accumulator, LowPrecisionAccumulator, fp32_blas, fp32_blocked, fp32_pairwise,
                                 fp32_sequential, lowp)
from fp8emu.formats import ALL_FORMATS, FP8_FORMATS, bfloat16, e4m3fn, e5m2, float16
from fp8emu.spec import round_to_format

from oracles_gemm import dot_blocked, dot_pairwise, dot_sequential, gamma, matmul_by

SHAPES = [(1, 1, 1), (3, 7, 5), (4, 16, 3), (2, 37, 9), (5, 64, 17), (2, 0, 3)]


def _operands(shape, seed, kind):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((m, k)) * np.exp2(rng.integers(-8, 8, (m, k)))).astype(np.float32)
    b = (rng.standard_normal((k, n)) * np.exp2(rng.integers(-8, 8, (k, n)))).astype(np.float32)
    if kind == "fp8":
        a, b = quantize(a, e4m3fn, saturate=True), quantize(b, e5m2, saturate=True)
    return a, b


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["float32", "fp8"])
@pytest.mark.parametrize("acc, dot, args", [
    (fp32_sequential, dot_sequential, ()),
    (fp32_pairwise, dot_pairwise, ()),
    (fp32_blocked(4), dot_blocked, (4,)),
    (fp32_blocked(5), dot_blocked, (5,)),
    (fp32_blocked(1000), dot_blocked, (1000,)),
])
def test_fp32_accumulators_bit_equal_to_oracle(acc, dot, args, shape, kind):
    a, b = _operands(shape, sum(shape) + len(args), kind)
    np.testing.assert_array_equal(acc.matmul_2d(a, b), matmul_by(dot, a, b, *args))


def test_pairwise_tree_shape():
    """K = 6 is ((p0+p1)+(p2+p3)) + (p4+p5); a split-in-halves tree or a sequential sum gives other bits."""
    a = np.array([[2.0 ** 24, 1.0, 1.0, -2.0 ** 24, 1.0, 1.0]], dtype=np.float32)
    b = np.ones((6, 1), dtype=np.float32)
    # ((2^24 + 1) -> 2^24) + (1 - 2^24) = 1; (1 + 1) = 2; total 3.
    assert fp32_pairwise.matmul_2d(a, b)[0, 0] == 3.0
    # halves: ((2^24 + 1) + 1) -> 2^24, ((-2^24 + 1) + 1) = -2^24 + 2: total 2; sequential likewise 2.
    assert fp32_sequential.matmul_2d(a, b)[0, 0] == 2.0
    assert fp32_blocked(3).matmul_2d(a, b)[0, 0] == 2.0


@pytest.mark.parametrize("acc, dot, args", [(fp32_sequential, dot_sequential, ()),
                                             (fp32_pairwise, dot_pairwise, ()), (fp32_blocked(3), dot_blocked, (3,))])
def test_special_values_propagate_like_the_oracle(acc, dot, args):
    a, b = _operands((4, 6, 5), 3, "float32")
    a[0, 1], a[1, 2], a[2, 0] = np.nan, np.inf, -np.inf
    b[3, 4] = np.inf
    b[2, 1] = 0.0  # Inf * 0 = NaN
    got = acc.matmul_2d(a, b)
    np.testing.assert_array_equal(got, matmul_by(dot, a, b, *args))
    assert np.isnan(got[0]).all() and np.isnan(got[1, 1])


def test_all_negative_zero_products_sum_to_plus_zero():
    a = -np.zeros((2, 3), dtype=np.float32)
    b = np.ones((3, 2), dtype=np.float32)
    for acc in (fp32_sequential, fp32_pairwise, fp32_blocked(2), lowp(float16, 2)):
        assert not np.signbit(acc.matmul_2d(a, b)).any(), acc.name


def test_sequential_layout_independent():
    a, b = _operands((33, 70, 19), 7, "float32")
    ref = fp32_sequential.matmul_2d(a, b)
    for aa, bb in [(np.asfortranarray(a), b), (a, np.asfortranarray(b)), (np.asfortranarray(a), np.asfortranarray(b)),
                   (a.T.copy().T, b.T.copy().T)]:
        np.testing.assert_array_equal(fp32_sequential.matmul_2d(aa, bb), ref)


_THREAD_SCRIPT = """
import numpy as np, sys
from fp8emu.accumulators import fp32_sequential, fp32_pairwise, fp32_blocked, lowp
rng = np.random.default_rng(11)
a = rng.standard_normal((301, 129)).astype(np.float32)
b = rng.standard_normal((129, 67)).astype(np.float32)
outs = [acc.matmul_2d(a, b) for acc in (fp32_sequential, fp32_pairwise, fp32_blocked(16), lowp('bfloat16', 8))]
sys.stdout.write(b''.join(o.tobytes() for o in outs).hex())
"""


def test_reproducible_across_thread_counts():
    outs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        outs.append(res.stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 1000


def test_empty_reduction_gives_zeros():
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    for acc in (fp32_blas, fp32_sequential, fp32_pairwise, fp32_blocked(2), lowp(float16)):
        out = acc.matmul_2d(a, b)
        assert out.shape == (3, 4) and not out.any() and out.dtype == np.float32


@pytest.mark.parametrize("acc", [fp32_blas, fp32_sequential, fp32_pairwise, fp32_blocked(4), lowp(float16, 4),
                                 lowp(e5m2, 4, rounding="stochastic", seed=2)], ids=lambda a: a.name)
def test_out_over_an_operand_gives_the_product(acc):
    """``out`` may be an operand itself or share its memory (as with ``np.matmul``): the
    kernels write rows of the result while still reading the operands, so they compute into a
    temporary there and copy it into ``out``; ``out`` apart from both is written directly."""
    rng = np.random.default_rng(6)
    a = quantize(rng.standard_normal((24, 24)).astype(np.float32), e5m2)
    b = quantize(rng.standard_normal((24, 24)).astype(np.float32), e5m2)
    want = acc.matmul_2d(a, b, a_fmt=e5m2, b_fmt=e5m2)
    for which in ("a", "b"):
        x, y = a.copy(), b.copy()
        out = x if which == "a" else y
        assert acc.matmul_2d(x, y, a_fmt=e5m2, b_fmt=e5m2, out=out) is out
        np.testing.assert_array_equal(out, want, err_msg=which)
    apart = np.empty_like(want)
    assert acc.matmul_2d(a, b, a_fmt=e5m2, b_fmt=e5m2, out=apart) is apart
    np.testing.assert_array_equal(apart, want)


# ---- products of 8-bit formats are exact in float32 -----------------------------------------------
def _values32(fmt):
    codes = np.arange(fmt.num_codes, dtype=fmt.code_dtype)
    from fp8emu import decode
    v = decode(codes, fmt).astype(np.float32)
    return v[np.isfinite(v)]


def _products_exact(fa, fb) -> bool:
    va, vb = _values32(fa), _values32(fb)
    with np.errstate(over="ignore", under="ignore"):
        p32 = np.multiply.outer(va, vb)                                        # float32, one rounding each
    p64 = np.multiply.outer(va.astype(np.float64), vb.astype(np.float64))     # exact: <= 16 + 16 bits
    return bool(np.array_equal(p32.astype(np.float64), p64))


_ELEMENT_FP8 = [f for f in FP8_FORMATS if f.has_zero]   # e8m0fnu is a scale, not an operand format


@pytest.mark.parametrize("fa, fb", list(itertools.product(_ELEMENT_FP8, _ELEMENT_FP8)), ids=lambda f: f.name)
def test_fp8_products_exact_in_float32(fa, fb):
    """Every pair of finite codes (65,536 pairs minus NaN/Inf codes): float32 product == exact product."""
    assert _products_exact(fa, fb)
    fp32_sequential.check_operands(fa, fb)  # and the float32 accumulators accept them


@pytest.mark.parametrize("fa, fb", [(f, g) for f in ALL_FORMATS for g in ALL_FORMATS if f.bits < 16 and g.bits < 16],
                         ids=lambda f: f.name)
def test_check_operands_agrees_with_exhaustive_exactness(fa, fb):
    """The float32 accumulators accept exactly the pairs whose products are all exact in float32
    (e.g. e8m0fnu x e5m2 overflows: rejected)."""
    try:
        fp32_sequential.check_operands(fa, fb)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == _products_exact(fa, fb)


def test_check_operands_rejects_products_float32_cannot_hold():
    for acc in (fp32_blas, fp32_sequential, fp32_pairwise, fp32_blocked(8)):
        with pytest.raises(ValueError, match="cannot represent the operands' products.*bfloat16"):
            acc.check_operands(bfloat16, bfloat16)
    fp32_blas.check_operands(float16, float16)          # 22 bits, 2^-48 .. 2^32: fine
    lowp(float16).check_operands(bfloat16, bfloat16)     # exact float64 products: fine


# ---- fp32_blas: within the float32 accumulation bound ----------------------------------------------
@pytest.mark.parametrize("shape", [(7, 300, 5), (16, 1024, 8), (3, 4608, 2)])
def test_blas_within_float32_bound(shape):
    a, b = _operands(shape, 5, "fp8")
    got = fp32_blas.matmul_2d(a, b).astype(np.float64)
    exact = np.array([[math.fsum(float(x) * float(y) for x, y in zip(a[i], b[:, j])) for j in range(shape[2])]
                      for i in range(shape[0])])
    bound = gamma(shape[1]) * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert np.all(np.abs(got - exact) <= bound)
    assert not fp32_blas.reproducible and fp32_sequential.reproducible


# ---- low-precision chunked accumulation -------------------------------------------------------------
def _lowp_oracle(a, b, acc: LowPrecisionAccumulator, seed=None, stream=0):
    """Exact-rational sums, one spec rounding per add, chunk sums added the same way."""
    fmt, mode, chunk = acc.fmt, acc.rounding, acc.chunk
    m, k = a.shape
    n = b.shape[1]
    nchunks = -(-k // chunk)
    events = k + nchunks

    def add(q, p, idx):
        kw = {}
        if mode.value == "stochastic":
            kw = dict(sr_words=lambda j: int(words(seed, stream, [idx], j)[0]), sr_bits=acc.sr_bits)
        if math.isnan(q) or math.isnan(p) or math.isinf(q) or math.isinf(p):
            return round_to_format(q + p, fmt, mode, acc.saturate, **kw)
        exact = Fraction(q) + Fraction(p)
        x = (q + p) if exact == 0 else exact          # IEEE sign of an exact zero sum
        return round_to_format(x, fmt, mode, acc.saturate, **kw)

    out = np.empty((m, n), dtype=np.float32)
    for i in range(m):
        for j in range(n):
            e = i * n + j
            tot = 0.0
            for c in range(nchunks):
                part = 0.0
                for kk in range(c * chunk, min(k, (c + 1) * chunk)):
                    part = add(part, float(a[i, kk]) * float(b[kk, j]), e * events + kk)
                tot = add(tot, part, e * events + k + c)
            out[i, j] = tot
    return out


@pytest.mark.parametrize("fmt", [float16, bfloat16, e5m2, "e6m9"], ids=str)
@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_away", "toward_zero", "up", "down"])
@pytest.mark.parametrize("kind", ["fp8", "float32"])
def test_lowp_bit_equal_to_oracle(fmt, rounding, kind):
    a, b = _operands((3, 37, 4), 9, kind)
    acc = lowp(fmt, 8, rounding)
    fa, fb = (e4m3fn, e5m2) if kind == "fp8" else (None, None)
    got = acc.matmul_2d(a, b, a_fmt=fa, b_fmt=fb)
    np.testing.assert_array_equal(got, _lowp_oracle(a, b, acc))


@pytest.mark.parametrize("sr_bits", [None, 4])
def test_lowp_stochastic_bit_equal_to_oracle(sr_bits):
    a, b = _operands((2, 20, 3), 4, "fp8")
    acc = lowp(bfloat16, 6, "stochastic", seed=1234, stream=7, sr_bits=sr_bits)
    got = acc.matmul_2d(a, b)
    np.testing.assert_array_equal(got, _lowp_oracle(a, b, acc, seed=1234, stream=7))
    other = lowp(bfloat16, 6, "stochastic", seed=1235, stream=7, sr_bits=sr_bits).matmul_2d(a, b)
    assert not np.array_equal(got, other)  # the bits depend on the seed


def test_lowp_double_rounding_case_needs_the_exact_sum():
    """bf16 midpoint product 1 + 2^-8 plus a tiny partial: the exact sum rounds up, fl64 would tie to even."""
    a = np.array([[2.0 ** -60, 1.0 + 2.0 ** -8]], dtype=np.float32)
    b = np.ones((2, 1), dtype=np.float32)
    got = lowp(bfloat16, 8).matmul_2d(a, b)
    assert got[0, 0] == 1.0 + 2.0 ** -7


def test_lowp_overflow_and_saturation():
    a = np.full((1, 4), 256.0, dtype=np.float32)
    b = np.full((4, 1), 128.0, dtype=np.float32)   # products 32768; float16 max 65504
    assert np.isinf(lowp(float16, 4).matmul_2d(a, b)[0, 0])
    assert lowp(float16, 4, saturate=True).matmul_2d(a, b)[0, 0] == 65504.0


def test_lowp_chunking_reduces_swamping():
    """Wang et al.: sequential fp16 accumulation of many small terms stalls; chunks of 64 do not."""
    a = np.full((1, 4096), 1.0, dtype=np.float32)
    b = np.full((4096, 1), 1.0, dtype=np.float32)
    assert lowp(float16, 4096).matmul_2d(a, b)[0, 0] == 2048.0   # 2048 + 1 rounds back to 2048
    assert lowp(float16, 64).matmul_2d(a, b)[0, 0] == 4096.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(fmt=float16, chunk=0), "chunk"),
    (dict(fmt=float16, rounding="nearest"), "ambiguous"),
    (dict(fmt="e8m0fnu"), "signed"),
    (dict(fmt="nope"), "unknown format"),
])
def test_lowp_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowPrecisionAccumulator(**kwargs)


def test_accumulators_are_frozen_data():
    assert isinstance(lowp("fp16"), Accumulator) and lowp("fp16") == lowp(float16, 64)
    assert fp32_blocked(8) == fp32_blocked(8) and hash(fp32_blocked(8)) == hash(fp32_blocked(8))
    with pytest.raises(Exception):
        fp32_blocked(8).block = 4
    with pytest.raises(ValueError, match="block"):
        fp32_blocked(0)


@st.composite
def _lowp_case(draw):
    """Small operands spanning many binades (zeros, tiny, huge) and an accumulator around them."""
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(0, 12)), draw(st.integers(1, 3))
    exps = st.integers(-30, 20)
    vals = st.builds(lambda s, mant, e: s * mant * 2.0 ** e, st.sampled_from([-1.0, 1.0]),
                     st.sampled_from([0.0, 1.0, 1.125, 1.5, 1.75, 1.875]), exps)
    a = np.array(draw(st.lists(vals, min_size=m * k, max_size=m * k)), dtype=np.float32).reshape(m, k)
    b = np.array(draw(st.lists(vals, min_size=k * n, max_size=k * n)), dtype=np.float32).reshape(k, n)
    acc = LowPrecisionAccumulator(draw(st.sampled_from([float16, bfloat16, e5m2, e4m3fn, "e3m4", "e6m9"])),
                                  draw(st.integers(1, 5)),
                                  draw(st.sampled_from(["nearest_even", "nearest_away", "toward_zero", "up", "down"])),
                                  saturate=draw(st.booleans()))
    return a, b, acc


@given(case=_lowp_case())
def test_lowp_matches_oracle_across_binades(case):
    """Zeros, subnormal and overflowing partial sums: the fast path and the rounding layer's path agree
    with the exact-rational oracle, with and without operand formats (which pick the plain float64 sum)."""
    a, b, acc = case
    want = _lowp_oracle(a, b, acc)
    np.testing.assert_array_equal(acc.matmul_2d(a, b), want)
    # Significands have at most 4 bits, which is all the plain-sum proof uses (not the range).
    np.testing.assert_array_equal(acc.matmul_2d(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn), want)
