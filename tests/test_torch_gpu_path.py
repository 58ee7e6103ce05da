"""The CUDA branch of fp8emu.torch's array operations gives the CPU branch's bits (apply_recipe on a GPU).

PyTorch has no CUDA here, so CPU tensors are sent down the CUDA branch of
``fp8emu/torch/_arrays.py`` with the two device primitives of ``fp8emu/torch/_cuda.py``
replaced by Numba's CUDA simulator: a device view of a tensor (a simulator array over the
tensor's own memory, as ``cuda.as_cuda_array`` is on a GPU) and the launch (no stream).
Everything else runs as on a GPU: ``quantize_into`` (contiguity, ``out``), ``fp8emu.cuda.quantize``
with the arguments LayerQuant passes and its kernels, the amax and rescales in torch, the
host fallback of block scaling.  The real GPU check is ``tools/cuda_step_check.py``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba_cuda", reason="numba-cuda not installed (pip install fp8emu[cuda])")

from numba import cuda  # noqa: E402
from torch import nn as tnn  # noqa: E402

import fp8emu  # noqa: E402
import fp8emu.cuda as fc  # noqa: E402
import fp8emu.torch as ft  # noqa: E402
from fp8emu.autograd import QuantSpec, add_observer, remove_observer  # noqa: E402
from fp8emu.autograd.arrays import NUMPY_OPS, array_ops, register_array_ops, ArrayOps  # noqa: E402
from fp8emu.formats import e5m2  # noqa: E402
from fp8emu.recipes import get_recipe  # noqa: E402
from fp8emu.torch import _arrays, _cuda  # noqa: E402
from fp8emu.torch._ops import as_numpy  # noqa: E402

pytestmark = pytest.mark.torch

# every branch of LayerQuant._round: per-tensor scaling (weights), plain RNE (activations), in-place outputs,
# delayed scaling with SR (errors), in-place SR (input_grads), MX on the host (weight_grads)
_MIXED = get_recipe("paper-e5m2").replace(
    name="mixed", exempt=(), weights=QuantSpec("e4m3fn", saturate=True, scaling="tensor"),
    errors=QuantSpec("e5m2", "stochastic", scaling="delayed", history=2),
    weight_grads=QuantSpec("e5m2", scaling="mx", block=4))


@pytest.fixture
def simulated_gpu(monkeypatch):
    """CPU tensors take the CUDA branch; its device views and launches are the simulator's."""
    if not fc.simulated():
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (on a GPU machine tools/cuda_step_check.py checks the real path)")
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    calls = []

    def view(t, _cuda_module):
        assert t.is_contiguous()
        return FakeCUDAArray(as_numpy(t))

    def launch(t, fn):
        calls.append(t.numel())
        fn(cuda, fc, None)

    monkeypatch.setattr(_arrays, "_on_cpu", lambda t: False)
    monkeypatch.setattr(_cuda, "_view", view)
    monkeypatch.setattr(_cuda, "_launch", launch)
    return calls


def _model():
    torch.manual_seed(0)
    return tnn.Sequential(tnn.Conv2d(2, 3, 3, padding=1), tnn.ReLU(), tnn.Flatten(), tnn.Linear(3 * 4 * 4, 5))


def _two_steps(recipe, observe):
    """Two training steps (SR streams and delayed-scaling history advance): every rounded array the
    observers saw (if ``observe``), the gradients and the parameters after each master write-back."""
    seen = []

    def observer(layer, tclass, x, q, spec):
        assert isinstance(x, np.ndarray) and isinstance(q, np.ndarray)
        seen.append((layer.name, tclass, np.array(x, copy=True), np.array(q, copy=True), layer.last_scale))

    model = _model()
    rec = ft.apply_recipe(model, recipe, exempt=[], seed=7)
    opt = rec.make_optimizer(lr=0.125)       # FP16 master weights: the stochastic write-back
    g = torch.Generator().manual_seed(2)
    if observe:
        add_observer(observer)
    grads = []
    try:
        for _ in range(2):
            x = torch.randn(2, 2, 4, 4, generator=g)
            loss = (model(x) * torch.randn(2, 5, generator=g) * 1e-4).sum()   # small errors: SR matters
            loss.backward()
            grads += [p.grad.clone() for p in model.parameters()]
            opt.step()
            grads += [p.detach().clone() for p in model.parameters()]
            opt.zero_grad()
    finally:
        remove_observer(observer)
    return seen, grads


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("recipe", ["paper-e5m2", _MIXED], ids=["paper-e5m2", "mixed-scalings"])
@pytest.mark.parametrize("observe", [True, False], ids=["observed", "in-place"])
def test_cuda_branch_gives_the_cpu_branchs_bits(request, recipe, observe):
    seen_cpu, grads_cpu = _two_steps(recipe, observe)
    calls = request.getfixturevalue("simulated_gpu")
    seen_gpu, grads_gpu = _two_steps(recipe, observe)
    assert calls, "the CUDA branch was not taken"
    assert len(grads_cpu) == len(grads_gpu) == 16
    for a, b in zip(grads_cpu, grads_gpu):
        assert np.array_equal(_bits(a), _bits(b))
    assert len(seen_cpu) == len(seen_gpu) == (22 if observe else 0)   # conv1 has no input gradient
    for (ln, tc, x, q, s), (ln2, tc2, x2, q2, s2) in zip(seen_cpu, seen_gpu):
        assert (ln, tc) == (ln2, tc2)
        assert np.array_equal(_bits(x), _bits(x2)) and np.array_equal(_bits(q), _bits(q2)), (ln, tc)
        assert np.array_equal(np.asarray(s), np.asarray(s2)), (ln, tc)


def test_quantize_into_strided_and_out(simulated_gpu):
    """A strided input is rounded by its C-order index; a strided ``out`` gets the result; ``out=x`` in place."""
    x = torch.randn(6, 5).t()                          # not contiguous
    kw = dict(rounding="stochastic", seed=3, stream=(9 << 24) | 21)
    want = torch.from_numpy(fp8emu.quantize(x.contiguous().numpy(), e5m2, **kw))
    got = _cuda.quantize_into(x, e5m2, **kw)
    assert got.is_contiguous() and torch.equal(got, want)
    out = torch.empty(6, 5).t()
    assert _cuda.quantize_into(x, e5m2, out, **kw) is out and torch.equal(out, want)
    y = x.contiguous()
    assert _cuda.quantize_into(y, e5m2, y, **kw) is y and torch.equal(y, want)


def test_cuda_branch_amax_and_scales_match_numpy(simulated_gpu):
    ops = array_ops(torch.zeros(1))
    assert ops is _arrays.TORCH_OPS
    x = torch.tensor([1.0, -3.5, 2.0])
    assert ops.amax(x) == NUMPY_OPS.amax(x.numpy()) == 3.5
    assert ops.amax(torch.zeros(0)) == 0.0
    assert np.isnan(ops.amax(torch.tensor([1.0, float("nan"), -9.0])))   # NaN wins, as np.max
    for factor in (2.0 ** -130, 2.0 ** -160, 2.0 ** 100, 2.0 ** 130, 0.5):   # subnormal, underflow, overflow
        a = torch.tensor([1.5, -3.0, 2.0 ** -10, 7.0])
        with np.errstate(over="ignore", under="ignore"):
            want = a.numpy() * np.asarray(factor, dtype=np.float32)
            assert np.array_equal(_bits(ops.scale_(a.clone(), factor)), _bits(want))
            assert np.array_equal(_bits(ops.quantize_scaled(a, factor, e5m2)), _bits(fp8emu.quantize(want, e5m2)))
    for dtype in (torch.float16, torch.bfloat16):       # rescaled in float32, as the CPU branch does
        a = torch.tensor([1.5, -3.0, 2.0 ** -10, 6e-5]).to(dtype)
        for factor in (2.0 ** 16, 2.0 ** -20, 0.5):
            cpu = NUMPY_OPS.scale_(as_numpy(a.clone()), factor)
            assert np.array_equal(_bits(as_numpy(ops.scale_(a.clone(), factor))), _bits(cpu))
            cpu = NUMPY_OPS.quantize_scaled(as_numpy(a), factor, e5m2, rounding="stochastic", seed=3, stream=1)
            got = ops.quantize_scaled(a, factor, e5m2, rounding="stochastic", seed=3, stream=1)
            assert got.dtype == dtype and np.array_equal(_bits(as_numpy(got)), _bits(cpu))


def test_registry_lookup_and_errors():
    class Mine(ArrayOps):
        pass

    class Arr(np.ndarray):
        pass

    assert array_ops(np.zeros(2)) is NUMPY_OPS and array_ops(tnn.Parameter(torch.zeros(1))) is _arrays.TORCH_OPS
    mine = Mine()
    register_array_ops(Arr, mine)
    try:
        assert array_ops(np.zeros(2).view(Arr)) is mine and array_ops(np.zeros(2)) is NUMPY_OPS
    finally:
        from fp8emu.autograd import arrays
        del arrays._registered[Arr]
        arrays._by_type.clear()
    with pytest.raises(TypeError, match="cls must be a type"):
        register_array_ops("torch.Tensor", mine)
    with pytest.raises(TypeError, match="ArrayOps"):
        register_array_ops(Arr, object())


@pytest.fixture
def pointer_launches(simulated_gpu, monkeypatch):
    """The fast path of ``_cuda._round`` taken (as on a GPU once a plan is bound), with a pointer
    launch that records its ``(src, dst, n)`` and declines, so the simulator computes the result."""
    import types
    launches = []

    def launch(src_ptr, dst_ptr, n, name, fmt, values, stream_handle, device, **kw):
        launches.append((src_ptr, dst_ptr, n * torch.empty(0, dtype=_DTYPES[name]).element_size()))
        return False

    monkeypatch.setattr(fc, "_plans_enabled", lambda: True)
    monkeypatch.setattr(fc, "_round_ptr", launch)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: None)          # a CPU tensor's device index
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=0))
    return launches


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64, "bfloat16": torch.bfloat16}


@pytest.mark.parametrize("at_x, at_out", [(0, 1), (1, 0), (0, 3)])
def test_quantize_into_out_overlapping_x(pointer_launches, at_x, at_out):
    """``out`` over ``x``'s buffer shifted by some elements: the kernel (pointer launch or Numba's)
    must never write memory it has yet to read, so the result goes through a temporary; the
    identical tensor stays in place."""
    n = 40
    buf = torch.randn(n + 3, generator=torch.Generator().manual_seed(0)) * 10
    x, out = buf[at_x:at_x + n], buf[at_out:at_out + n]
    want = torch.from_numpy(fp8emu.quantize(x.numpy().copy(), e5m2))
    assert _cuda.quantize_into(x, e5m2, out) is out
    assert torch.equal(out, want)
    assert pointer_launches
    for src, dst, nbytes in pointer_launches:
        assert dst >= src + nbytes or src >= dst + nbytes, "the kernel was given an out overlapping its input"
    pointer_launches.clear()
    y = buf.clone()
    assert _cuda.quantize_into(y, e5m2, y) is y
    assert [(s == d) for s, d, _ in pointer_launches] == [True]                      # in place: no temporary


def test_quantize_into_refuses_out_of_another_shape_or_dtype(simulated_gpu):
    """A strided ``out`` receives the result by ``copy_``, which would broadcast another shape or
    convert another dtype; refused as the CPU branch refuses them."""
    x = torch.randn(3)
    with pytest.raises(ValueError, match=r"out has shape \(2, 3\); expected \(3,\)"):
        _cuda.quantize_into(x, e5m2, torch.empty(3, 2).t())
    with pytest.raises(TypeError, match="out has dtype torch.float64; expected torch.float32"):
        _cuda.quantize_into(x, e5m2, torch.empty(3, 2, dtype=torch.float64)[:, 0])
