"""fp8emu.torch's encode/decode/quantize/fake_quant: the NumPy API's bits on torch tensors,
torch.library.opcheck, torch.compile without graph breaks, and both gradient rules."""

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8emu  # noqa: E402
import fp8emu.torch as ft  # noqa: E402
from fp8emu import QuantSpec  # noqa: E402
from fp8emu.format import RoundMode  # noqa: E402
from fp8emu.formats import ALL_FORMATS, bfloat16, e4m3fn, e5m2, float16  # noqa: E402

from test_exhaustive import ALL_F16, HIGH_F32  # noqa: E402  (the NumPy tests' exhaustive fixtures)

pytestmark = pytest.mark.torch
MODES = list(RoundMode)
SR_BITS = (None, 1, 8, 32)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _same_bits(t: torch.Tensor, a: np.ndarray) -> bool:
    got = ft._ops.as_numpy(t)
    return got.shape == a.shape and got.dtype == a.dtype and np.array_equal(_bits(got), _bits(a))


def _inputs():
    """The exhaustive float16 and upper-half float32 patterns, and float64/bfloat16 samples."""
    rng = np.random.default_rng(7)
    f64 = (rng.standard_normal(4096) * np.exp2(rng.integers(-30, 30, 4096))).astype(np.float64)
    f64[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300]
    bf16 = rng.integers(0, 1 << 16, 1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)
    return {"float16_all": ALL_F16, "float32_high_half": HIGH_F32, "float64": f64, "bfloat16": bf16}


INPUTS = _inputs()


def _tensor(a: np.ndarray) -> torch.Tensor:
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _check_equal_numpy(fmt, x):
    xt = _tensor(x)
    for mode in MODES:
        for saturate in (False, True):
            for sr_bits in (SR_BITS if mode is RoundMode.STOCHASTIC else (None,)):
                kw = dict(rounding=mode, saturate=saturate, seed=12345, sr_bits=sr_bits, stream=9)
                codes = ft.encode(xt, fmt, **kw)
                assert _same_bits(codes, fp8emu.encode(x, fmt, **kw)), (fmt, mode, saturate, sr_bits)
                try:
                    want = fp8emu.quantize(x, fmt, **kw)
                except ValueError:      # the input dtype cannot hold fmt's values: both refuse
                    with pytest.raises(ValueError, match="cannot hold"):
                        ft.quantize(xt, fmt, **kw)
                    continue
                assert _same_bits(ft.quantize(xt, fmt, **kw), want), (fmt, mode, saturate, sr_bits)


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
@pytest.mark.parametrize("inputs", list(INPUTS))
def test_quantize_and_encode_equal_numpy_bit_for_bit(fmt, inputs):
    """Every preset x mode x saturate (x sr_bits for stochastic) on every 13th element of the
    NumPy tests' fixtures (a strided view: the tensor is not contiguous either)."""
    _check_equal_numpy(fmt, INPUTS[inputs][::13])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
@pytest.mark.parametrize("inputs", list(INPUTS))
def test_quantize_and_encode_equal_numpy_bit_for_bit_all(fmt, inputs):
    """The same on all of each fixture (every float16 and upper-half float32 pattern)."""
    _check_equal_numpy(fmt, INPUTS[inputs])


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_decode_every_code_equals_numpy(fmt, dtype):
    codes = torch.from_numpy(np.arange(fmt.num_codes, dtype=fmt.code_dtype))  # torch has no uint16 arange
    np_dtype = ft._ops.as_numpy(torch.empty(0, dtype=dtype)).dtype
    try:
        want = fp8emu.decode(codes.numpy(), fmt, dtype=np_dtype)
    except ValueError:
        with pytest.raises(ValueError, match="cannot hold"):
            ft.decode(codes, fmt, dtype=dtype)
        return
    assert _same_bits(ft.decode(codes, fmt, dtype=dtype), want)
    assert _same_bits(ft.decode(codes.to(torch.int64), fmt, dtype=dtype), want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_strides_0d_empty_and_out(dtype):
    x = (torch.randn(6, 8, generator=torch.Generator().manual_seed(0)) * 100).to(dtype)
    ref = ft.quantize(x, e5m2, rounding="stochastic", seed=3)
    # C-order element index, whatever the tensor's strides: the transposed view's bits are ref.T's
    xt = x.t().contiguous()
    assert torch.equal(ft.quantize(x.t(), e5m2), ft.quantize(xt, e5m2))
    assert torch.equal(ft.quantize(x[::2, 1::3], e5m2), ft.quantize(x, e5m2)[::2, 1::3])
    assert torch.equal(ft.quantize(x.t(), e5m2, rounding="stochastic", seed=3),
                       ft.quantize(xt, e5m2, rounding="stochastic", seed=3))
    assert ft.quantize(x[1, 2], e5m2).shape == () and ft.encode(torch.empty(0, 3, dtype=dtype), e5m2).shape == (0, 3)
    out = torch.empty_like(x)
    assert ft.quantize(x, e5m2, rounding="stochastic", seed=3, out=out) is out and torch.equal(out, ref)
    codes = torch.empty(6, 8, dtype=torch.uint8)
    assert ft.encode(x, e5m2, out=codes) is codes
    assert torch.equal(ft.decode(codes, e5m2, dtype=dtype), ft.quantize(x, e5m2))
    assert ft.encode(x, float16).dtype == torch.uint16 and ft.encode(x, bfloat16).dtype == torch.uint16


def test_unseeded_stochastic_rounding_draws_from_numpy_like_the_numpy_api():
    x = torch.linspace(-3, 3, 1000)
    np.random.seed(5)
    a = ft.quantize(x, e5m2, rounding="stochastic")
    np.random.seed(5)
    assert _same_bits(a, fp8emu.quantize(x.numpy(), e5m2, rounding="stochastic"))


def test_errors_match_the_numpy_api():
    x = torch.ones(3)
    with pytest.raises(TypeError, match="dtype torch.int32"):
        ft.quantize(torch.ones(3, dtype=torch.int32), e5m2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ft.encode(np.ones(3, np.float32), e5m2)
    with pytest.raises(ValueError, match="sr_bits=40"):
        ft.quantize(x, e5m2, rounding="stochastic", sr_bits=40)
    with pytest.raises(ValueError, match="needs rounding='stochastic'"):
        ft.encode(x, e5m2, sr_bits=4)
    with pytest.raises(ValueError, match="unknown format"):
        ft.quantize(x, "bogus")
    with pytest.raises(TypeError, match="saturate must be a bool"):
        ft.quantize(x, e5m2, saturate="yes")
    with pytest.raises(ValueError, match="out of range"):
        ft.decode(torch.tensor([300]), e5m2)
    with pytest.raises(TypeError, match="integer tensor"):
        ft.decode(x, e5m2)
    with pytest.raises(ValueError, match="shape"):
        ft.quantize(x, e5m2, out=torch.empty(4))
    with pytest.raises(ValueError, match="scaling='delayed'"):
        ft.fake_quant(x, QuantSpec(e4m3fn, scaling="delayed"))


def _opcheck_cases():
    x = torch.randn(5, 7, dtype=torch.float32) * 50
    h = torch.randn(4, 3, dtype=torch.float64).t()       # non-contiguous float64
    b = torch.randn(9).to(torch.bfloat16)
    key = ft._ops.format_key
    e5, e4, f16 = key(e5m2), key(e4m3fn), key(float16)
    return [
        ("encode", (x, e4, "nearest_even", True, 0, 0, 0)),
        ("encode", (h, e5, "stochastic", False, -3, 8, 2**40)),
        ("encode", (b, f16, "toward_zero", False, 0, 0, 0)),
        # opcheck compares outputs with NaN != NaN: no NaN codes here (the bit tests have them)
        ("decode", (torch.arange(0x7D, dtype=torch.uint8).reshape(5, 25), e5, torch.float32)),
        ("decode", (torch.arange(0x7F, dtype=torch.int64), e4, torch.bfloat16)),
        ("quantize", (x.clone().requires_grad_(), e5, "stochastic", False, 11, 0, 5)),
        ("quantize", (h.clone().requires_grad_(), e4, "nearest_even", True, 0, 0, 0)),
        ("quantize", (b, e5, "nearest_even", False, 0, 0, 0)),
        ("fake_quant", (x.clone().requires_grad_(), e4, "nearest_even", True, 1, 0, 0,
                        e5, "stochastic", False, 1, 0, 1)),
        ("fake_quant", (x.clone().requires_grad_(), e5, "stochastic", False, 1, 4, 0,
                        "", "nearest_even", False, 0, 0, 0)),
    ]


@pytest.mark.parametrize("case", range(len(_opcheck_cases())))
def test_opcheck(case):
    name, args = _opcheck_cases()[case]
    torch.library.opcheck(ft.OPS[name], args)


def test_fake_quant_straight_through_gradient():
    x = (torch.randn(64, dtype=torch.float64) * 10).requires_grad_()
    g = torch.randn(64, dtype=torch.float64) * 1e-3
    y = ft.fake_quant(x, QuantSpec(e4m3fn, saturate=True))
    assert _same_bits(y.detach(), fp8emu.quantize(x.detach().numpy(), e4m3fn, saturate=True))
    y.backward(g)
    assert torch.equal(x.grad, g)                    # the incoming gradient, unchanged
    x.grad = None
    ft.quantize(x, e5m2).backward(g)                 # quantize has the same rule
    assert torch.equal(x.grad, g)


def test_fake_quant_quantized_gradient():
    x = (torch.randn(4, 50) * 10).requires_grad_()
    g = torch.randn(4, 50) * 1e-5                    # many errors underflow e5m2's normals: SR matters
    spec, gspec = QuantSpec(e4m3fn), QuantSpec(e5m2, "stochastic", sr_bits=16)
    y = ft.fake_quant(x, spec, gspec, seed=21, stream=4, grad_stream=77)
    y.backward(g)
    want = fp8emu.quantize(g.numpy(), e5m2, rounding="stochastic", sr_bits=16, seed=21, stream=77)
    assert _same_bits(x.grad, want)
    assert not torch.equal(x.grad, g)
    # the default gradient stream differs from the forward one, and is reproducible
    x.grad = None
    ft.fake_quant(x, spec, gspec, seed=21, stream=4).backward(g)
    assert _same_bits(x.grad, fp8emu.quantize(g.numpy(), e5m2, rounding="stochastic", sr_bits=16, seed=21,
                                              stream=4 ^ (1 << 63)))


def _compiled_fn(x):
    y = ft.quantize(x * 2, "e5m2", rounding="stochastic", seed=1, stream=3)
    z = ft.fake_quant(y + 1, QuantSpec(e4m3fn, saturate=True), QuantSpec(e5m2, "stochastic"), seed=5)
    codes = ft.encode(z, e4m3fn)
    return (z * ft.decode(codes, e4m3fn)).sum()


def _check_compiled(backend):
    assert torch._dynamo.explain(_compiled_fn)(torch.randn(64)).graph_break_count == 0
    torch._dynamo.reset()
    x = torch.randn(64, requires_grad=True)
    compiled = torch.compile(_compiled_fn, fullgraph=True, backend=backend)
    out = compiled(x)
    out.backward()
    x2 = x.detach().clone().requires_grad_()
    ref = _compiled_fn(x2)
    ref.backward()
    assert torch.equal(out, ref) and torch.equal(x.grad, x2.grad)


def test_torch_compile_traces_without_graph_breaks():
    _check_compiled("aot_eager")


@pytest.mark.slow
def test_torch_compile_inductor():
    """The inductor backend (it needs the C++ compiler that CI installs)."""
    _check_compiled("inductor")


def test_compile_needs_an_explicit_seed_for_stochastic_rounding():
    torch._dynamo.reset()
    f = torch.compile(lambda x: ft.quantize(x, e5m2, rounding="stochastic"), fullgraph=True, backend="eager")
    with pytest.raises(Exception, match="explicit seed"):
        f(torch.ones(3))
