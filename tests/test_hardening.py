"""Regression tests of issue 11's library defects: no silent NaN from bad arguments, bit-exact
in-place stochastic rounding of float64, precise errors instead of tracebacks."""

import math
import sys
import warnings

import numpy as np
import pytest

from fp8emu import Format, conv2d, decode, encode, get_format, matmul, quantize
from fp8emu._random import words
from fp8emu.autograd import Tensor, ops
from fp8emu.formats import e4m3fn, e5m2
from fp8emu.loss_scale import DynamicScaler, EnhancedScaler, StaticScaler


# ---- quantize ---------------------------------------------------------------------------------------

def sr_tie_input(seed):
    """A float64 array whose element ``i`` is an exact-SR "tie" for e5m2: its first 64 dropped
    bits equal element i's first random word, so the decision needs a second word.

    For |x| = sig * 2^(e - 52) with e = -28 - d, e5m2 (emin -14, 2 mantissa bits) drops
    50 + (-14 - e) = 64 + d bits, and the first 64 of them are ``sig >> d``.
    """
    w = words(seed, 0, np.arange(1 << 16), 0)
    i = int(np.flatnonzero((w >= np.uint64(1 << 40)) & (w < np.uint64(1 << 52)))[0])
    wi = int(w[i])
    d = 53 - wi.bit_length()
    sig = (wi << d) | ((1 << d) - 1)   # the bits after the first 64 are all ones: likely rounds up
    x = np.full(i + 3, 0.3)
    x[i] = math.ldexp(sig, -28 - d - 52)
    return x, i


@pytest.mark.parametrize("seed", [7, 11, 21, 28])
def test_in_place_exact_sr_of_float64_at_a_tie(seed):
    """Seeds 21 and 28 put the tie in a call below ``_SMALL_LANE_BELOW`` elements (the
    small-call lane), 7 and 11 in larger ones (4954 and 7713 elements)."""
    x, i = sr_tie_input(seed)
    expect = quantize(x, e5m2, rounding="stochastic", seed=seed)
    assert expect[i] != quantize(x[i:i + 1], e5m2, rounding="toward_zero")[0]  # the second word decided "up"
    y = x.copy()
    assert quantize(y, e5m2, rounding="stochastic", seed=seed, out=y) is y
    assert y.tobytes() == expect.tobytes()


def test_in_place_quantize_of_a_big_endian_array():
    rng = np.random.default_rng(0)
    for dtype in (">f4", ">f8"):
        x = (rng.standard_normal(1000) * 100).astype(dtype)
        expect = quantize(x.astype(np.dtype(dtype).newbyteorder("=")), e4m3fn, rounding="stochastic", seed=3)
        y = x.copy()
        assert quantize(y, e4m3fn, rounding="stochastic", seed=3, out=y) is y
        assert y.dtype == np.dtype(dtype) and np.array_equal(y, expect)
    with pytest.raises(TypeError, match=r"out has dtype >f8; expected float32 \(any byte order\)"):
        quantize(np.zeros(3, np.float32), e4m3fn, out=np.zeros(3, ">f8"))


@pytest.mark.parametrize("fmt", ["e4m3fn", "bfloat16", "e8m13", "float32"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decode_into_a_non_native_dtype(fmt, dtype):
    """decode(dtype=...) and out= in the other byte order give the same values as the native
    dtype, for table formats (8, 16 bits) and for those built code by code (> 16 bits)."""
    swapped = np.dtype(dtype).newbyteorder(">" if sys.byteorder == "little" else "<")
    fmt = get_format(fmt)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(3000) * 8).astype(np.float32)
    x[:4] = [0.0, -0.0, np.inf, np.nan]
    codes = encode(x, fmt).reshape(50, 60)
    expect = decode(codes, fmt, dtype=dtype)
    for n in (codes[:2, :3], codes):           # the small-call lane and a larger call
        want = expect[:n.shape[0], :n.shape[1]]
        got = decode(n, fmt, dtype=swapped)
        assert got.dtype == swapped and got.shape == n.shape
        assert np.array_equal(got, want, equal_nan=True)
        for out_dtype in (swapped, np.dtype(dtype)):
            out = np.empty(n.shape, out_dtype)
            assert decode(n, fmt, dtype=swapped, out=out) is out
            assert np.array_equal(out, want, equal_nan=True)
        out = np.empty(n.shape, swapped)
        assert decode(n, fmt, dtype=dtype, out=out) is out and np.array_equal(out, want, equal_nan=True)


def test_array_subclasses_are_plain_arrays_in_and_out():
    """Masked arrays and matrices as inputs, codes and ``out=`` give the plain arrays'
    results (a masked array's data; its mask is left as it is).  Before, Numba refused a masked
    array, and a matrix ``out`` stayed 2-d when flattened, so decode's kernel wrote past its end."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 5)) * 10).astype(np.float32)
    codes = encode(x, e4m3fn)
    want_q, want_d = quantize(x, e4m3fn), decode(codes, e4m3fn)
    masked = np.ma.array(x, mask=x > 5)
    assert np.array_equal(quantize(masked, e4m3fn), want_q) and np.array_equal(encode(masked, e4m3fn), codes)
    assert np.array_equal(decode(np.ma.array(codes, mask=codes > 9), e4m3fn), want_d)
    assert np.array_equal(quantize(np.matrix(x), e4m3fn), want_q)
    for make in (np.ma.zeros, lambda shape, dt: np.matrix(np.zeros(shape, dt))):
        out = make(x.shape, np.float32)
        assert quantize(x, e4m3fn, out=out) is out and np.array_equal(np.asarray(out), want_q)
        out = make(x.shape, np.float32)
        assert decode(codes, e4m3fn, out=out) is out and np.array_equal(np.asarray(out), want_d)
        out = make(x.shape, np.uint8)
        assert encode(x, e4m3fn, out=out) is out and np.array_equal(np.asarray(out), codes)
        out = make((4, 4), np.float32)
        assert matmul(x, x.T, a_fmt=e4m3fn, out=out) is out
        assert np.array_equal(np.asarray(out), matmul(x, x.T, a_fmt=e4m3fn))
    y = masked.copy()
    assert quantize(y, e4m3fn, out=y) is y and np.array_equal(y.data, want_q) and np.array_equal(y.mask, x > 5)


@pytest.mark.parametrize("fn", [quantize, encode])
def test_stream_none_is_a_precise_error(fn):
    with pytest.raises(TypeError, match="stream must be an int, got NoneType"):
        fn(np.ones(3, np.float32), e5m2, rounding="stochastic", seed=1, stream=None)


@pytest.mark.parametrize("field", ["subnormals", "signed", "has_zero"])
@pytest.mark.parametrize("value", ["no", 0, 1, None, 1.0])
def test_format_bool_fields_must_be_bools(field, value):
    with pytest.raises(TypeError, match=f"Format.{field} must be a bool"):
        Format(5, 2, **{field: value})
    assert Format(5, 2, subnormals=np.bool_(False)).subnormals is False


# ---- NaN from arguments ----------------------------------------------------------------------------

def test_cross_entropy_with_minus_inf_logits_is_finite():
    logits = np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, -1.0]], np.float32)
    targets = np.array([2, 0])
    x = Tensor(logits, requires_grad=True)
    loss = ops.cross_entropy(x, targets)
    with np.errstate(divide="ignore"):
        finite = logits.astype(np.float64)
        logp = finite - np.log(np.exp(finite).sum(axis=1, keepdims=True))
    assert loss.item() == pytest.approx(-logp[[0, 1], targets].mean(), rel=1e-6)
    loss.backward()
    assert np.all(np.isfinite(x.grad)) and x.grad[0, 0] == 0 and x.grad[1, 1] == 0
    assert ops.cross_entropy(Tensor(logits), targets, 0.1).item() == np.inf  # smoothing puts mass on -inf


def _params():
    return [Tensor(np.ones(3, np.float32), requires_grad=True)]


@pytest.mark.parametrize("make, match", [
    (lambda: __import__("fp8emu").optim.SGD(_params(), lr=math.nan), "lr=nan"),
    (lambda: __import__("fp8emu").optim.SGD(_params(), lr=math.inf), "lr=inf"),
    (lambda: __import__("fp8emu").optim.SGD(_params(), lr=0.1, momentum=math.nan), "momentum=nan"),
    (lambda: __import__("fp8emu").optim.SGD(_params(), lr=0.1, weight_decay=math.inf), "weight_decay=inf"),
    (lambda: __import__("fp8emu").optim.SGD(_params(), lr=0.1, weight_decay=-1), "weight_decay=-1"),
    (lambda: __import__("fp8emu").optim.Adam(_params(), eps=math.nan), "eps=nan"),
    (lambda: __import__("fp8emu").optim.Adam(_params(), betas=(math.nan, 0.9)), r"betas\[0\]=nan"),
    (lambda: __import__("fp8emu").optim.StepLR(__import__("fp8emu").optim.SGD(_params(), lr=0.1), 2, gamma=math.nan),
     "gamma=nan"),
    (lambda: __import__("fp8emu").optim.CosineLR(__import__("fp8emu").optim.SGD(_params(), lr=0.1), 10,
                                                 min_lr=math.nan), "min_lr=nan"),
    (lambda: __import__("fp8emu").nn.Linear(0, 3), "in_features=0"),
    (lambda: __import__("fp8emu").nn.Conv2d(3, 4, 3, stride=0), "stride=0"),
    (lambda: __import__("fp8emu").nn.BatchNorm2d(4, eps=math.nan), "eps=nan"),
    (lambda: __import__("fp8emu").nn.BatchNorm2d(4, momentum=2.0), "momentum=2.0"),
    (lambda: __import__("fp8emu").nn.MaxPool2d(0), "kernel_size=0"),
    (lambda: DynamicScaler(2.0 ** 30), r"init_scale=1.07374e\+09 must lie in \[min_scale, max_scale\]"),
    (lambda: DynamicScaler(window=0), "window=0"),
    (lambda: EnhancedScaler(floor=2.0 ** 30), "floor 1.07374e"),
    (lambda: StaticScaler(math.nan), "scale=nan"),
])
def test_bad_constructor_arguments_are_refused(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_optimizer_lr_setter_refuses_nan():
    from fp8emu.optim import SGD
    opt = SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match="lr=nan"):
        opt.lr = math.nan


@pytest.mark.parametrize("scaler, lowering_skips", [(StaticScaler(1024.0), 0),
                                                     (DynamicScaler(4.0, min_scale=1.0), 2),
                                                     (EnhancedScaler(2.0 ** 12, floor=2.0 ** 10), 2)])
def test_warning_after_consecutive_skips_that_cannot_lower_the_scale(scaler, lowering_skips):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(lowering_skips + 9):
            scaler.update(True)
        assert not caught
        scaler.update(True)
        assert len(caught) == 1 and caught[0].category is RuntimeWarning
        assert "10 consecutive steps skipped" in str(caught[0].message)
        for _ in range(15):   # once per streak
            scaler.update(True)
        scaler.update(False)  # a clean step ends the streak
        for _ in range(10):
            scaler.update(True)
    assert len(caught) == 2 and scaler.stuck_steps == 10


def test_skip_warning_can_be_turned_off():
    scaler = StaticScaler(8.0, warn_after=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(30):
            scaler.update(True)


# ---- shapes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, what", [((1, 0, 4, 4), (2, 0, 3, 3), "C = 0"),
                                                     ((1, 2, 4, 4), (0, 2, 3, 3), "O = 0"),
                                                     ((1, 2, 4, 4), (2, 2, 0, 3), "KH x KW = 0 x 3")])
def test_conv2d_without_channels_is_a_precise_error(x_shape, w_shape, what):
    with pytest.raises(ValueError, match=f"conv2d needs at least one input channel.*{what}"):
        conv2d(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32))


@pytest.mark.parametrize("fast_accum", [False, True])
def test_nvidia_model_with_k_zero_is_the_empty_sum(fast_accum):
    from fp8emu.accumulators.nvidia import nvidia_hopper_fp8, split_ranges
    assert split_ranges(0, 3) == [(0, 0)]
    out = nvidia_hopper_fp8(fast_accum, M=2, N=3, K=0).matmul_2d(
        np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32), a_fmt=e4m3fn, b_fmt=e4m3fn)
    assert out.shape == (2, 3) and not out.any() and not np.signbit(out).any()


# ---- import side effects, documented where a library user sees them -------------------------------

def test_import_sets_thread_defaults_only_when_unset_and_the_readme_says_so():
    """Your own values win; the GNU OpenMP spin count comes only with fp8emu's own wait policy
    (it overrides the spin a policy implies: with your ACTIVE it would cut it short)."""
    import os
    import pathlib
    import subprocess
    import sys
    code = "import os, fp8emu; print(os.environ['OMP_WAIT_POLICY'], sorted(fp8emu.THREAD_ENV_DEFAULTS))"
    # (this process imported fp8emu: its defaults are in os.environ, which the children must not see)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    root = pathlib.Path(__file__).resolve().parents[1]
    mine = subprocess.run([sys.executable, "-c", code], env=env | {"OMP_WAIT_POLICY": "ACTIVE"}, cwd=root,
                          capture_output=True, text=True, check=True).stdout
    assert mine.strip() == "ACTIVE ['OPENBLAS_THREAD_TIMEOUT']"     # no spin count under your own policy
    code = "import os, fp8emu; print(os.environ.get('GOMP_SPINCOUNT'), sorted(fp8emu.THREAD_ENV_DEFAULTS))"
    ours = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                          check=True).stdout
    assert ours.strip() == "5000 ['GOMP_SPINCOUNT', 'OMP_WAIT_POLICY', 'OPENBLAS_THREAD_TIMEOUT']"
    spin = subprocess.run([sys.executable, "-c", code], env=env | {"GOMP_SPINCOUNT": "7"}, cwd=root,
                          capture_output=True, text=True, check=True).stdout
    assert spin.strip() == "7 ['OMP_WAIT_POLICY', 'OPENBLAS_THREAD_TIMEOUT']"
    readme = (root / "README.md").read_text()
    section = readme[readme.index("### What importing fp8emu changes"):readme.index("## Layout")]
    for needed in ("OMP_WAIT_POLICY=PASSIVE", "GOMP_SPINCOUNT=5000", "OPENBLAS_THREAD_TIMEOUT=4",
                   "only those you have not set",
                   "Why:", "To opt out", "THREAD_ENV_DEFAULTS"):
        assert needed in section, needed


def test_numbas_gnu_openmp_pool_reads_the_spin_count():
    """The spin count reaches GNU OpenMP: it loads with Numba's first parallel kernel, after the
    import (its environment display lists what it read)."""
    import os
    import pathlib
    import subprocess
    import sys
    code = ("import fp8emu, numba, numpy; fp8emu.quantize(numpy.ones(1 << 18, numpy.float32), 'e5m2'); "
            "print(numba.threading_layer())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="VERBOSE", NUMBA_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=pathlib.Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, check=True)
    if run.stdout.strip() != "omp" or "OPENMP DISPLAY ENVIRONMENT" not in run.stderr \
            or "GOMP_" not in run.stderr:
        pytest.skip("Numba's threading layer here is not GNU OpenMP")
    assert "GOMP_SPINCOUNT = '5000'" in run.stderr
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in run.stderr


@pytest.mark.parametrize("kw, match", [(dict(margin=math.nan), "QuantSpec.margin must be an int"),
                                       (dict(history=math.nan), "QuantSpec.history must be an int"),
                                       (dict(block=0), "QuantSpec.block=0 must be >= 1"),
                                       (dict(rounding="sr", sr_bits=math.nan), "QuantSpec.sr_bits must be an int")])
def test_quant_spec_arguments_are_checked(kw, match):
    from fp8emu.autograd import QuantSpec
    with pytest.raises((TypeError, ValueError), match=match):
        QuantSpec("e5m2", **kw)
