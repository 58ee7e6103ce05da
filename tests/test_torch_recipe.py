"""fp8emu.torch.apply_recipe: the NumPy engine's recipes on torch models, checked against the
NumPy engine (same codes) and by training a small model under every recipe."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn as tnn  # noqa: E402

import fp8emu.torch as ft  # noqa: E402
from fp8emu import nn  # noqa: E402
from fp8emu.autograd import Tensor, add_observer, ops, remove_observer  # noqa: E402
from fp8emu.recipes import get_recipe  # noqa: E402
from fp8emu.torch import models  # noqa: E402

pytestmark = pytest.mark.torch

# every recipe that makes sense with PyTorch's float32 GEMMs; the ablations and variants run with -m slow
_ABLATIONS = ["paper-e5m2-nols", "paper-e5m2-dynls", "paper-e5m2-rne", "paper-e5m2-nols-rne", "paper-e5m2-fp32master",
              "paper-e5m2-all", "mxfp8-rceil"]
TORCH_RECIPES = ["fp32", "paper-e5m2", "hfp8", "ocp-fp8", "mxfp8", "nvfp4"] + [pytest.param(r, marks=pytest.mark.slow)
                                                                      for r in _ABLATIONS]


class _Recorder:
    """An fp8emu observer: (layer name, class) -> (unrounded input, rounded result) of each quantization."""

    def __init__(self):
        self.seen = {}

    def __call__(self, layer, tclass, x, q, spec):
        self.seen.setdefault((layer.name, tclass), []).append((np.array(x, copy=True), np.array(q, copy=True),
                                                                 layer.stream(layer.step, tclass)))

    def __enter__(self):
        add_observer(self)
        return self

    def __exit__(self, *exc):
        remove_observer(self)


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _small_model():
    torch.manual_seed(0)
    return tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1), tnn.ReLU(), tnn.Conv2d(8, 8, 3, padding=1, bias=False),
                          tnn.BatchNorm2d(8), tnn.ReLU(), tnn.AdaptiveAvgPool2d(2), tnn.Flatten(), tnn.Linear(32, 16),
                          tnn.ReLU(), tnn.Linear(16, 4))


def _task(n=256):
    """Label = the brightest quadrant of an 8x8 image (learnable through the model's 2x2 pooling)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = x[:, 0].reshape(n, 2, 4, 2, 4).mean(dim=(2, 4)).reshape(n, 4).argmax(dim=1)
    return x, y


@pytest.mark.parametrize("name", TORCH_RECIPES)
def test_apply_recipe_trains_a_small_model_under_every_recipe(name):
    x, y = _task()
    model = _small_model()
    rec = ft.apply_recipe(model, name, sample=x[:2])
    opt, scaler = rec.make_optimizer(lr=0.1, momentum=0.9), rec.make_scaler()
    losses = []
    for step in range(40):
        i = (step * 32) % len(x)
        loss = tnn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        scaler.scale(loss).backward()
        scaler.step(opt)
        opt.zero_grad()
        losses.append(loss.item())
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert np.isfinite(losses).all() and last < 0.8 * first, (name, first, last)
    if get_recipe(name).master_format is not None:    # the parameters stay FP16 values
        for p in model.parameters():
            assert torch.equal(p, p.half().float())


def test_first_and_last_mean_execution_order():
    class Backwards(tnn.Module):          # defined in one order, run in the other
        def __init__(self):
            super().__init__()
            self.head = tnn.Linear(8, 2)
            self.stem = tnn.Linear(4, 8)

        def forward(self, x):
            return self.head(torch.relu(self.stem(x)))

    m = Backwards()
    rec = ft.apply_recipe(m, "paper-e5m2", sample=torch.randn(2, 4))
    assert rec.order == ["stem", "head"] and rec.exempt == {"stem", "head"}
    rec.remove()
    rec = ft.apply_recipe(m, "paper-e5m2", exempt=["head"])
    assert rec.exempt == {"head"} and rec.layers["stem"].quantized and rec.layers["head"] is None
    rec.remove()
    with pytest.raises(ValueError, match="sample="):
        ft.apply_recipe(m, "paper-e5m2")
    with pytest.raises(ValueError, match="'nope' is not a Conv2d/Linear"):
        ft.apply_recipe(m, "paper-e5m2", exempt=["nope"])
    ft.apply_recipe(m, "hfp8", exempt=[])
    with pytest.raises(ValueError, match="already carries a recipe"):
        ft.apply_recipe(m, "fp32")


def _same_layer_pair(kind):
    """A NumPy-engine layer and a torch layer with the same weights, both under paper-e5m2 at index 3."""
    rng = np.random.default_rng(3)
    if kind == "linear":
        ours, theirs = nn.Linear(40, 24), tnn.Linear(40, 24)
        x = rng.standard_normal((16, 40)).astype(np.float32)
        g = (rng.standard_normal((16, 24)) * 1e-6).astype(np.float32)       # errors that underflow: SR matters
    else:
        ours, theirs = nn.Conv2d(6, 8, 3, stride=2, padding=1), tnn.Conv2d(6, 8, 3, stride=2, padding=1)
        x = rng.standard_normal((4, 6, 9, 9)).astype(np.float32)
        g = (rng.standard_normal((4, 8, 5, 5)) * 1e-6).astype(np.float32)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    recipe = get_recipe("paper-e5m2").replace(exempt=())
    lq = recipe.layer_quant("layer", 3, seed=11)
    ours.quant = lq
    rec = ft.apply_recipe(theirs, recipe, seed=11)
    rec.layers[""].index, rec.layers[""].name = 3, "layer"
    return ours, theirs, x, g


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_a_quantized_layer_gives_the_numpy_engines_codes(kind):
    """Same float32 input and incoming gradient: identical activation, weight, output and error codes
    (same SR seed, stream and index); the products agree within float32's reduction-order bound; the
    same float32 weight gradient gives the same codes."""
    ours, theirs, x, g = _same_layer_pair(kind)
    with _Recorder() as rn:
        xt = Tensor(x, requires_grad=True)
        y = ours(xt)
        y.backward(g)
    with _Recorder() as rt:
        xt2 = torch.from_numpy(x).requires_grad_()
        y2 = theirs(xt2)
        y2.backward(torch.from_numpy(g))
    for tclass in ("activations", "weights", "errors"):
        (xn, qn, sn), = rn.seen[("layer", tclass)]
        (xm, qm, sm), = rt.seen[("layer", tclass)]
        assert sn == sm and np.array_equal(_bits(xn), _bits(xm)) and np.array_equal(_bits(qn), _bits(qm)), tclass
    # outputs: the raw products differ only by summation order (|diff| <= K u sum|x||w|); rounded to e5m2 they
    # agree except where a product sits within that bound of a rounding boundary (then one e5m2 step apart).
    (pn, qn, _), = rn.seen[("layer", "outputs")]
    (pm, qm, _), = rt.seen[("layer", "outputs")]
    k = x.shape[1] * (9 if kind == "conv" else 1)
    xq, wq = rn.seen[("layer", "activations")][0][1], rn.seen[("layer", "weights")][0][1]
    absprod = ops.linear(Tensor(np.abs(xq)), Tensor(np.abs(wq))).data if kind == "linear" else \
        ops.conv2d(Tensor(np.abs(xq)), Tensor(np.abs(wq)), stride=2, padding=1).data
    bound = k * 2.0**-24 * (absprod + np.abs(ours.bias.data).reshape((1, -1) + (1,) * (x.ndim - 2)))
    assert np.all(np.abs(pn - pm) <= bound)
    assert np.mean(qn != qm) < 0.01 and np.allclose(y.data, y2.detach().numpy(), rtol=0.25, atol=0)
    # the weight gradient: the torch layer's rounding of the NumPy engine's float32 gradient gives its codes
    (gw_in, gw_q, gw_stream), = rn.seen[("layer", "weight_grads")]
    (_, _, gw_stream_t), = rt.seen[("layer", "weight_grads")]
    assert gw_stream == gw_stream_t
    q, inv = theirs.fp8emu_quant.quantize(gw_in.copy(), "weight_grads", theirs.fp8emu_quant.step)
    assert inv == 1.0 and np.array_equal(_bits(q), _bits(gw_q))
    # ... and so does fp8emu.torch.quantize with the documented stream (step 1 << 24 | index 3 << 4 | class 5)
    stream = (1 << 24) | (3 << 4) | 5
    assert gw_stream == stream
    assert np.array_equal(_bits(ft.quantize(torch.from_numpy(gw_in), "e5m2", rounding="stochastic", seed=11,
                                            stream=stream).numpy()), _bits(gw_q))


def test_resnet18_one_step_both_backends():
    """ResNet-18 width 8 under paper-e5m2, same weights and batch: identical FP16 master weights and
    identical quantized weights (every layer's E5M2 weight codes); logits and loss within the float32
    reduction-order tolerance (stated in docs/torch.md)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    nn.manual_seed(0)
    ours = nn.resnet18(num_classes=10, in_channels=1, width=8, cifar_stem=True)
    recipe = get_recipe("paper-e5m2")
    recipe.apply(ours, seed=5)
    opt_n = recipe.make_optimizer(ours.parameters(), lr=0.1, momentum=0.9, seed=5)
    theirs = models.resnet18(num_classes=10, in_channels=1, width=8, cifar_stem=True)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    rec = ft.apply_recipe(theirs, recipe, sample=torch.from_numpy(x[:1]), seed=5)
    opt_t = rec.make_optimizer(lr=0.1, momentum=0.9, seed=5)
    assert rec.exempt == {"conv1", "fc"}
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert np.array_equal(_bits(p.data), _bits(q.detach().numpy())), name    # FP16 master, RNE
    sc_n, sc_t = recipe.make_scaler(), rec.make_scaler()
    with _Recorder() as rn:
        logits_n = ours(Tensor(x))
        loss_n = ops.cross_entropy(logits_n, y)
        sc_n.scale(loss_n).backward()
        sc_n.step(opt_n)
    with _Recorder() as rt:
        logits_t = theirs(torch.from_numpy(x))
        loss_t = tnn.functional.cross_entropy(logits_t, torch.from_numpy(y))
        sc_t.scale(loss_t).backward()
        sc_t.step(opt_t)
    weights = [k for k in rn.seen if k[1] == "weights"]
    assert len(weights) == 19 and set(weights) == {k for k in rt.seen if k[1] == "weights"}
    for key in weights:
        (_, qn, sn), = rn.seen[key]
        (_, qm, sm), = rt.seen[key]
        assert sn == sm and np.array_equal(_bits(qn), _bits(qm)), key
    # the first quantized layer's input comes from exempt float32 layers: equal up to reduction order
    ln, lt = float(loss_n.item()), float(loss_t.item())
    assert abs(ln - lt) <= 1e-3 * abs(ln), (ln, lt)
    assert np.allclose(logits_n.data, logits_t.detach().numpy(), rtol=0, atol=2e-2 * np.abs(logits_n.data).max())
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert np.array_equal(_bits(p.data), _bits(np.float16(p.data).astype(np.float32)))
        assert np.array_equal(_bits(q.detach().numpy()), _bits(q.detach().half().float().numpy())), name


def test_observers_see_torch_layers_and_state_round_trips():
    x, _ = _task(16)
    model = _small_model()
    rec = ft.apply_recipe(model, "ocp-fp8", sample=x[:2])
    model(x).sum().backward()
    state = rec.state_dict()
    assert state["2"]["step"] == 1
    model2 = _small_model()
    rec2 = ft.apply_recipe(model2, "ocp-fp8", sample=x[:2])
    rec2.load_state_dict(state)
    assert rec2.state_dict() == state
    with pytest.raises(ValueError, match="accumulator"):
        from fp8emu.accumulators import Fp32Sequential
        ft.apply_recipe(_small_model(), get_recipe("paper-e5m2").replace(accumulator=Fp32Sequential()), exempt=[])


def test_unscale_finds_inf_and_nan_anywhere_with_one_host_sync(monkeypatch):
    """Inf/NaN in any gradient -> True (+Inf and -Inf in two tensors too); float32's largest values
    everywhere are finite; every gradient is divided by the scale; the verdict is one bool() per device."""
    from fp8emu.loss_scale import StaticScaler
    big = torch.finfo(torch.float32).max
    cases = [([[1.0, 2.0], [3.0]], False), ([[big] * 4, [-big] * 3, [big]], False),
             ([[1.0, float("inf")], [3.0]], True), ([[float("inf")], [-float("inf")]], True),
             ([[1.0], [float("nan"), 2.0]], True), ([[-float("inf")]], True)]
    syncs = []
    real_bool = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: syncs.append(1) or real_bool(t))
    for values, found in cases:
        params = [tnn.Parameter(torch.zeros(len(v))) for v in values] + [tnn.Parameter(torch.zeros(2))]
        for p, v in zip(params, values):
            p.grad = torch.tensor(v)
        syncs.clear()
        assert ft.TorchLossScaler(StaticScaler(4.0)).unscale_(params) is found, values
        assert len(syncs) == 1
        for p, v in zip(params, values):
            assert torch.equal(p.grad.nan_to_num(), (torch.tensor(v) / 4.0).nan_to_num())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_and_bfloat16_models_give_the_float32_models_values(dtype):
    """ocp-fp8 (delayed per-tensor scaling) on a float16/bfloat16 Linear: the scales and format values
    of the float32 model holding the same values, float32 GEMMs, and the output and gradients
    rounded once to the model's dtype (float16 cannot hold the scale 2^16, nor the scaled products)."""
    torch.manual_seed(0)
    ref = tnn.Linear(8, 4).to(dtype).float()
    narrow = tnn.Linear(8, 4).to(dtype)
    narrow.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    for m in (ref, narrow):
        ft.apply_recipe(m, "ocp-fp8", exempt=[], seed=5)
    g = torch.Generator().manual_seed(1)
    for _ in range(2):                                      # the second step uses the amax history
        x = (torch.randn(3, 8, generator=g) * 0.1).to(dtype)
        gy = (torch.randn(3, 4, generator=g) * 1e-3).to(dtype)
        x32, xn = x.float().requires_grad_(), x.clone().requires_grad_()
        y32, yn = ref(x32), narrow(xn)
        y32.backward(gy.float())
        yn.backward(gy)
        assert yn.dtype == dtype and torch.equal(yn, y32.to(dtype))
        assert torch.equal(xn.grad, x32.grad.to(dtype))
        assert torch.equal(narrow.weight.grad, ref.weight.grad.to(dtype))
        assert torch.isfinite(narrow.bias.grad).all()
        for m in (ref, narrow):
            m.zero_grad()


def _identity_recipe():
    """A recipe whose only rounding is float32 into float32: the quantized layer path, PyTorch's values."""
    from fp8emu.autograd import QuantSpec
    return get_recipe("fp32").replace(name="identity", activations=QuantSpec("float32"))


def _same_as_plain_torch(layer, x):
    """The layer under the identity recipe gives plain torch's output, input and weight gradients bit
    for bit (the bias gradient, a sum in another order, within float32 rounding)."""
    import copy
    quantized = copy.deepcopy(layer)
    assert ft.apply_recipe(quantized, _identity_recipe(), exempt=[]).layers[""] is not None
    outs = []
    for m in (layer, quantized):
        xg = x.clone().requires_grad_()
        y = m(xg)
        y.backward(torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape).sin())
        outs.append((y.detach(), xg.grad, m.weight.grad, m.bias))
    (y, gx, gw, b), (yq, gxq, gwq, bq) = outs
    for a, q in ((y, yq), (gx, gxq), (gw, gwq)):
        assert a.shape == q.shape and torch.equal(a, q)
    if b is not None:
        torch.testing.assert_close(bq.grad, b.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel, dilation, padding", [
    (3, 1, "same"), (3, 1, "valid"), (4, 1, "same"), ((4, 3), (1, 2), "same"), ((2, 5), (3, 1), "same"),
    (3, 2, "valid")])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_padding_strings_match_torch(kernel, dilation, padding, groups):
    """padding="same"/"valid" as PyTorch resolves them, the asymmetric "same" of even kernels included."""
    torch.manual_seed(0)
    conv = tnn.Conv2d(2 * groups, 3 * groups, kernel, padding=padding, dilation=dilation, groups=groups)
    _same_as_plain_torch(conv, torch.randn(2, 2 * groups, 9, 8))
    ft.apply_recipe(conv, "paper-e5m2", exempt=[])
    x = torch.randn(2, 2 * groups, 9, 8, requires_grad=True)
    conv(x).sum().backward()
    assert x.grad.shape == x.shape and torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("bias", [True, False])
def test_unbatched_conv_input(bias):
    """A (C, H, W) input, which torch's Conv2d takes as a batch of one, with or without bias."""
    torch.manual_seed(0)
    conv = tnn.Conv2d(2, 3, 3, bias=bias)
    _same_as_plain_torch(conv, torch.randn(2, 5, 5))
    ft.apply_recipe(conv, "paper-e5m2", exempt=[])
    x = torch.randn(2, 5, 5)
    y = conv(x)
    assert y.shape == (3, 3, 3)
    with torch.no_grad():
        assert torch.equal(conv(x), conv(x[None])[0])
