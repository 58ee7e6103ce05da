"""Recipes really quantize: GEMM operands exact in their formats, exempt layers untouched,
reproducible stochastic rounding, 16-bit master weights, statistics."""

import numpy as np
import pytest

import fp8emu.conv as conv_mod
import fp8emu.gemm as gemm_mod
from fp8emu import nn
from fp8emu.accumulators import Accumulator
from fp8emu.autograd import QuantSpec, Tensor, ops
from fp8emu.formats import e4m3b11fnuz, e4m3fn, e5m2, float16
from fp8emu.quantize import quantize
from fp8emu.recipes import RECIPES, Recipe, get_recipe
from fp8emu.stats import QuantStats


def exact_in(a, fmt):
    a = np.asarray(a, dtype=np.float32)
    return np.array_equal(quantize(a, fmt), a, equal_nan=True)


def tiny_resnet():
    nn.manual_seed(0)
    return nn.resnet18(num_classes=4, width=4, cifar_stem=True)


def batch(n=4, hw=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, hw, hw)).astype(np.float32), rng.integers(0, 4, n)


def train_steps(model, recipe, steps=2, seed=None):
    recipe.apply(model, seed=seed)
    opt = recipe.make_optimizer(model.parameters(), lr=0.05, momentum=0.9, seed=seed)
    scaler = recipe.make_scaler()
    losses = []
    for s in range(steps):
        x, y = batch(seed=s)
        loss = ops.cross_entropy(model(Tensor(x)), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        opt.zero_grad()
        losses.append(loss.item())
    return opt, scaler, losses


@pytest.fixture
def gemm_calls(monkeypatch):
    """Record every call into the GEMM/conv layer: (function, operand arrays, announced formats)."""
    calls = []

    def wrap(mod, fname, operand_keys):
        orig = getattr(mod, fname)

        def recorder(*args, **kw):
            ops_ = [np.array(a, copy=True) for a in args[:2]]
            calls.append((fname, ops_, tuple(kw.get(k) for k in operand_keys)))
            return orig(*args, **kw)
        monkeypatch.setattr(mod, fname, recorder)

    wrap(conv_mod, "conv2d", ("x_fmt", "w_fmt"))
    wrap(conv_mod, "conv2d_grad_input", ("gy_fmt", "w_fmt"))
    wrap(conv_mod, "conv2d_grad_weight", ("x_fmt", "gy_fmt"))
    wrap(gemm_mod, "matmul", ("a_fmt", "b_fmt"))
    return calls


@pytest.mark.parametrize("recipe_name,fwd_fmt,bwd_fmt", [("paper-e5m2", e5m2, e5m2), ("hfp8", e4m3b11fnuz, e5m2),
                                                         ("ocp-fp8", e4m3fn, e5m2)])
def test_gemm_operands_are_exact_in_the_recipe_formats(gemm_calls, recipe_name, fwd_fmt, bwd_fmt):
    model = tiny_resnet()
    train_steps(model, get_recipe(recipe_name), steps=1)

    def formats(fname):
        fa = {"conv2d": fwd_fmt, "conv2d_grad_input": bwd_fmt, "conv2d_grad_weight": fwd_fmt}[fname]
        fb = {"conv2d": fwd_fmt, "conv2d_grad_input": fwd_fmt, "conv2d_grad_weight": bwd_fmt}[fname]
        return fa, fb

    def exact(call):
        (fa, fb), (a, b) = formats(call[0]), call[1]
        return exact_in(a, fa) and exact_in(b, fb)
    quantized = [c for c in gemm_calls if exact(c)]
    plain = [c for c in gemm_calls if not exact(c)]
    # 19 quantized convs x (forward, grad-input, grad-weight): every operand exact
    assert len(quantized) == 19 * 3
    assert all(c[2] == (None, None) for c in gemm_calls)  # float32 accumulator: no formats announced
    # only the exempt first conv (forward + grad-weight) sees raw float32 operands; the exempt
    # fc runs in plain float32 NumPy (no accumulator to emulate), so it makes no GEMM-layer call
    assert sorted(c[0] for c in plain) == ["conv2d", "conv2d_grad_weight"]


class _Hardware(Accumulator):
    """A stand-in for a hardware model: any accumulator outside the float32 software family."""

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None):
        return np.ascontiguousarray(np.matmul(a, b))


def test_formats_are_announced_to_accumulators_that_model_hardware(gemm_calls):
    recipe = get_recipe("paper-e5m2").replace(accumulator=_Hardware())
    train_steps(tiny_resnet(), recipe, steps=1)
    announced = {c[2] for c in gemm_calls}
    assert announced == {(e5m2, e5m2), (None, None)}  # (None, None): the exempt first conv and fc
    from fp8emu.accumulators import fp32_sequential
    from fp8emu.formats import bfloat16
    bf = QuantSpec(bfloat16)  # bfloat16 x bfloat16 products reach 2^-266: not exact in float32
    with pytest.raises(ValueError, match="cannot represent"):
        get_recipe("fp32").replace(accumulator=fp32_sequential, weights=bf, activations=bf).apply(tiny_resnet())


class _FormatBlind(_Hardware):
    """A custom accumulator that declares it never uses the operands' formats."""

    uses_operand_formats = False


def test_accumulator_capabilities_decide_what_it_is_told(gemm_calls):
    from fp8emu.accumulators import fp32_blas, fp32_sequential, lowp, nvidia_hopper_fp8
    assert not fp32_blas.uses_operand_formats and not fp32_sequential.uses_operand_formats
    assert lowp("float16").uses_operand_formats and nvidia_hopper_fp8().uses_operand_formats
    assert lowp("float16").accepts_rng and not fp32_blas.accepts_rng and fp32_blas.accepts_out
    assert not _Hardware.accepts_out and not _Hardware.accepts_rng     # the base class's defaults
    train_steps(tiny_resnet(), get_recipe("paper-e5m2").replace(accumulator=_FormatBlind()), steps=1)
    assert {c[2] for c in gemm_calls} == {(None, None)}


def test_exempt_layers_by_name_and_position():
    model = tiny_resnet()
    attached = get_recipe("paper-e5m2").replace(exempt=("layer1.0.conv2", -1, 0)).apply(model)
    assert attached["layer1.0.conv2"] is None and attached["fc"] is None and attached["conv1"] is None
    assert model.layer1[0].conv2.quant is None
    assert attached["layer1.0.conv1"].quantized and model.layer1[0].conv1.quant is attached["layer1.0.conv1"]
    everything = get_recipe("paper-e5m2-all").apply(tiny_resnet())
    assert all(lq.quantized for lq in everything.values())
    with pytest.raises(ValueError, match="not a Conv2d/Linear"):
        get_recipe("paper-e5m2").replace(exempt=("nope",)).apply(model)
    with pytest.raises(ValueError, match="out of range"):
        get_recipe("paper-e5m2").replace(exempt=(99,)).apply(model)


def test_fp32_recipe_attaches_nothing():
    model = tiny_resnet()
    assert all(v is None for v in get_recipe("fp32").apply(model).values())


def test_stochastic_rounding_is_reproducible_from_the_seed():
    runs = []
    for seed in (5, 5, 6):
        model = tiny_resnet()
        train_steps(model, get_recipe("paper-e5m2"), steps=1, seed=seed)
        runs.append(np.concatenate([p.data.ravel() for p in model.parameters()]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_errors_and_weight_grads_use_stochastic_rounding_in_the_paper_recipe():
    seen = {}

    def observer(layer, tclass, x, q, spec):
        seen.setdefault(tclass, set()).add(spec.rounding.value)
    from fp8emu.autograd import add_observer, remove_observer
    add_observer(observer)
    try:
        train_steps(tiny_resnet(), get_recipe("paper-e5m2"), steps=1)
    finally:
        remove_observer(observer)
    assert seen == {"activations": {"nearest_even"}, "weights": {"nearest_even"}, "outputs": {"nearest_even"},
                    "errors": {"stochastic"}, "input_grads": {"stochastic"}, "weight_grads": {"stochastic"}}


def test_sr_and_rne_backward_differ():
    a, b = tiny_resnet(), tiny_resnet()
    train_steps(a, get_recipe("paper-e5m2"), steps=1)
    train_steps(b, get_recipe("paper-e5m2-rne"), steps=1)
    assert not np.array_equal(a.layer1[0].conv1.weight.data, b.layer1[0].conv1.weight.data)


@pytest.mark.parametrize("name", ["paper-e5m2", "paper-e5m2-fp32master"])
def test_master_weights_stay_in_float16_after_every_step(name):
    model = tiny_resnet()
    recipe = get_recipe(name)
    recipe.apply(model)
    opt = recipe.make_optimizer(model.parameters(), lr=0.05, momentum=0.9)
    scaler = recipe.make_scaler()
    in_fp16, applied = [], 0
    for s in range(4):
        x, y = batch(seed=s)
        scaler.scale(ops.cross_entropy(model(Tensor(x)), y)).backward()
        applied += scaler.step(opt)  # (a step may be skipped while the scaler backs off)
        opt.zero_grad()
        in_fp16.append(all(exact_in(p.data, float16) for p in model.parameters()))
    assert applied >= 2
    assert in_fp16 == ([True] * 4 if recipe.master_format is float16 else [False] * 4)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_named_recipe_trains_a_step_without_nan(name):
    model = tiny_resnet()
    _, scaler, losses = train_steps(model, get_recipe(name), steps=1)
    assert all(np.isfinite(losses))
    assert all(np.all(np.isfinite(p.data)) for p in model.parameters())
    assert get_recipe(name).describe().startswith(f"recipe {name}")


def test_mx_operands_are_block_scaled_fp8(gemm_calls):
    from fp8emu.scaling import mx_dequantize, mx_quantize
    train_steps(tiny_resnet(), get_recipe("mxfp8"), steps=1)
    fwd = [c for c in gemm_calls if c[0] == "conv2d"][1:]  # skip the exempt first conv
    assert fwd
    for _, (x, w), _ in fwd:
        for arr in (x, w):
            again = mx_dequantize(mx_quantize(arr, e4m3fn, axis=1))
            np.testing.assert_array_equal(again, arr)


def test_statistics_measure_underflow_and_snr():
    import functools

    from fp8emu.loss_scale import StaticScaler
    tiny_scale = get_recipe("paper-e5m2").replace(scaler=functools.partial(StaticScaler, 2.0 ** -20))
    underflow = {}
    for name, recipe in [("nols", get_recipe("paper-e5m2-nols")), ("tiny", tiny_scale)]:
        stats = QuantStats()
        with stats:
            train_steps(tiny_resnet(), recipe, steps=1)
        underflow[name] = stats.get("layer4.1.conv2", "errors")["flushed"]
    # errors of this net are ~1e-3: E5M2 keeps them; scaled by 2^-20 they fall below 2^-17 and flush
    assert underflow["nols"] < 0.05 and underflow["tiny"] > 0.9
    w = stats.get("layer1.0.conv1", "weights")
    assert w["flushed"] < 0.05 and 10 < w["snr_db"] < 40  # E5M2 RNE: about 6 dB per bit, 2-3 bits
    assert "layer1.0.conv1" in stats.table()
    assert not stats.enabled
    with pytest.raises(KeyError, match="no statistics"):
        stats.get("conv1", "weights")  # exempt: never quantized


def test_recipe_errors_and_registry():
    with pytest.raises(ValueError, match="available: fp32"):
        get_recipe("nope")
    with pytest.raises(TypeError):
        get_recipe(3)
    with pytest.raises(ValueError, match="scaling"):
        QuantSpec(e5m2, scaling="per-row")
    with pytest.raises(ValueError, match="sr_bits"):
        QuantSpec(e5m2, sr_bits=8)
    with pytest.raises(ValueError, match="optimizer"):
        get_recipe("fp32").make_optimizer(tiny_resnet().parameters(), lr=0.1, optimizer="lion")
    r = Recipe("custom", weights=QuantSpec("e4m3fn"))
    assert r.weights.fmt is e4m3fn and r.quantizes and not get_recipe("fp32").quantizes


def test_recipe_state_round_trip():
    model = tiny_resnet()
    recipe = get_recipe("ocp-fp8")
    train_steps(model, recipe, steps=2)
    state = recipe.state_dict(model)
    assert state["layer1.0.conv1"]["step"] == 2 and len(state["layer1.0.conv1"]["amax"]["weights"]) == 2
    other = tiny_resnet()
    recipe.apply(other)
    recipe.load_state_dict(other, state)
    assert recipe.state_dict(other) == state


def test_statistics_count_exact_fractions_on_known_values():
    from fp8emu.autograd import LayerQuant
    x = np.array([1.0, 2.0 ** -20, -2.0 ** -20, 0.0, 1e6, -1e6, 3.0, 57344.0], np.float32)
    stats = QuantStats()
    with stats:
        LayerQuant("plain", specs={"errors": QuantSpec(e5m2)}).quantize(x, "errors", 1)
        LayerQuant("sat", specs={"errors": QuantSpec(e5m2, saturate=True)}).quantize(x, "errors", 1)
    plain, sat = stats.get("plain", "errors"), stats.get("sat", "errors")
    assert plain["flushed"] == 2 / 7  # 2 of the 7 nonzero inputs flushed to zero
    assert plain["overflow"] == 2 / 8 and plain["saturated"] == 0.0  # +-1e6 -> +-Inf
    assert sat["overflow"] == 0.0 and sat["saturated"] == 2 / 8  # +-1e6 -> +-57344
    assert sat["snr_db"] < plain["snr_db"]  # clamping 1e6 to 57344 is a large error; Inf outputs are left out


def test_layer_delayed_scaling_follows_the_documented_rule():
    """The engine's delayed scaling: own amax on the first step, then the max of the last
    ``history`` finite amaxes; NaN/Inf tensors are rounded but their amax is not recorded."""
    from fp8emu.autograd import LayerQuant
    from fp8emu.scaling import pow2_scale
    lq = LayerQuant("fc", specs={"weights": QuantSpec(e4m3fn, saturate=True, scaling="delayed", history=2)})
    amaxes = [1000.0, 3.0, np.inf, 0.5, 0.25, 0.125]
    # reference by hand: (1000 first step), max(1000), max(1000, 3), max(1000, 3), max(3, 0.5), max(0.5, 0.25)
    refs = [1000.0, 1000.0, 1000.0, 1000.0, 3.0, 0.5]
    for step, (a, ref) in enumerate(zip(amaxes, refs)):
        x = np.array([a, -a / 2], dtype=np.float32)
        q, inv = lq.quantize(x, "weights", step)
        assert inv == pow2_scale(ref, e4m3fn), (step, inv)
        if np.isfinite(a):
            np.testing.assert_array_equal(q, quantize(x / np.float32(inv), e4m3fn, saturate=True))
    assert lq.state_dict()["amax"]["weights"] == [0.25, 0.125]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("scaling", ["tensor", "delayed"])
def test_narrow_float_tensors_scale_as_their_float32_values(dtype, scaling):
    """Per-tensor and delayed scaling of a float16/bfloat16 array: the scale and the format values
    of the float32 array of the same values (the power-of-two factor, 2^16 here, does not fit
    float16; 0.001 * 2^-10 is below its subnormals), returned in the array's dtype; the GEMM
    rules' rescale of a narrow array is the float32 one, rounded once."""
    from fp8emu.autograd import LayerQuant
    from fp8emu.autograd.arrays import NUMPY_OPS
    np_dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    for x32, fmt in [(np.array([0.5, -0.25, 0.0, 0.001, -3e-5], np.float32), e5m2),
                     (np.array([40000.0, -1.0, 0.001, 6e-5], np.float32), e4m3fn)]:
        x32 = x32.astype(np_dtype).astype(np.float32)
        specs = {"errors": QuantSpec(fmt, "stochastic", scaling=scaling, saturate=True)}
        q, inv = LayerQuant("l", 0, specs, seed=3).quantize(x32.astype(np_dtype), "errors", 1)
        q32, inv32 = LayerQuant("l", 0, specs, seed=3).quantize(x32, "errors", 1)
        assert q.dtype == np_dtype and inv == inv32
        np.testing.assert_array_equal(q.astype(np.float32), q32)
    y32 = np.array([3.0, -65504.0, 2.0**-14, 1.5 * 2.0**-14], np.float32)
    for factor in (2.0**16, 2.0**-12, 2.0**-30):
        y = NUMPY_OPS.scale_(y32.astype(np_dtype), factor)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(y, (y32 * np.float32(factor)).astype(np_dtype))


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_quantized_gemm_helper_gives_the_ops_bits(kind):
    """A caller outside the engine (a framework bridge) gets the ops' bits from the public helper."""
    from fp8emu.autograd import LINEAR_PRODUCTS, ConvProducts, LayerQuant, quantized_backward, quantized_forward
    rng = np.random.default_rng(3)
    specs = {c: QuantSpec(e5m2, "stochastic") for c in ("activations", "weights", "errors", "weight_grads")}
    if kind == "linear":
        x, w, products = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), LINEAR_PRODUCTS
        b = rng.standard_normal(3).astype(np.float32)
        bias = b
    else:
        x, w = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((6, 2, 3, 3))
        products = ConvProducts((1, 2), (1, 1), (1, 1), 2)
        b = rng.standard_normal(6).astype(np.float32)
        bias = b.reshape(1, -1, 1, 1)
    x, w = x.astype(np.float32), w.astype(np.float32)
    lq_ops, lq_fn = (LayerQuant("l", index=2, specs=specs, seed=9) for _ in range(2))
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    if kind == "linear":
        y = ops.linear(xt, wt, Tensor(b), quant=lq_ops)
    else:
        y = ops.conv2d(xt, wt, Tensor(b), stride=(1, 2), padding=1, groups=2, quant=lq_ops)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    y2, saved = quantized_forward(lq_fn, products, x, w, bias, training=True)
    gx, gw = quantized_backward(lq_fn, products, saved, gy)
    assert saved.step == lq_fn.step == lq_ops.step == 1
    np.testing.assert_array_equal(y2, y.data)
    np.testing.assert_array_equal(gx, np.asarray(xt.grad))
    np.testing.assert_array_equal(gw, np.asarray(wt.grad))
    quantized_forward(lq_fn, products, x, w, training=False)
    assert lq_fn.step == 1


def test_scaled_result_classes_flow_on_dequantized():
    """Delayed scaling of weight gradients (ocp-fp8): the gradient the optimizer sees is the rounded
    gradient times its scale, not the format values (a 2^k-times too large step)."""
    from fp8emu import nn
    from fp8emu.autograd import Tensor, ops
    nn.manual_seed(0)
    layer = nn.Linear(16, 4)
    get_recipe("ocp-fp8").replace(exempt=()).apply(layer)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32))
    ops.sum(layer(x)).backward()
    want = np.broadcast_to(x.data.sum(axis=0), (4, 16))        # d sum(x @ w.T) / dw, exact in float32 here
    assert np.max(np.abs(layer.weight.grad - want)) <= 2.0**-2 * np.max(np.abs(want))   # within e5m2's spacing


def test_nvfp4_recipe_quantizes_with_the_public_function():
    """The recipe's operands are exactly scaling.nvfp4_quantize's (activations 1x16 along channels,
    weights 16x16 tiles, errors 1x16 with the layer's SR stream); nothing else is quantized."""
    from fp8emu.scaling import nvfp4_quantize
    recipe = get_recipe("nvfp4")
    model = tiny_resnet()
    lq = recipe.apply(model)["layer1.0.conv1"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(lq.quantize(x, "activations", 3)[0], nvfp4_quantize(x, axis=1).dequantize())
    np.testing.assert_array_equal(lq.quantize(w, "weights", 3)[0], nvfp4_quantize(w, axis=(0, 1)).dequantize())
    want = nvfp4_quantize(x, axis=1, rounding="stochastic", seed=recipe.seed, stream=lq.stream(3, "errors"))
    np.testing.assert_array_equal(lq.quantize(x, "errors", 3)[0], want.dequantize())
    assert lq.quantize(x, "weight_grads", 3)[0] is x and lq.quantize(x, "input_grads", 3)[0] is x
    assert lq.fmt_for_gemm("weights") is None
    attached = recipe.apply(model)
    assert attached["conv1"] is None and attached["fc"] is None         # exempt: float32


def test_mx_scale_rule_is_selectable_in_recipes():
    from fp8emu.scaling import mx_quantize
    lq = get_recipe("mxfp8-rceil").apply(tiny_resnet())["layer1.0.conv1"]
    x = np.full((1, 32, 1, 1), 300.0, np.float32)
    got = lq.quantize(x, "activations", 0)[0]
    np.testing.assert_array_equal(got, mx_quantize(x, "e4m3fn", axis=1, scale_rule="rceil").dequantize())
    assert "rceil scales" in str(lq.spec("activations"))
    with pytest.raises(ValueError, match="e2m1fn"):
        QuantSpec("e4m3fn", scaling="nvfp4")
    with pytest.raises(ValueError, match="tile_2d"):
        QuantSpec("e2m1fn", scaling="mx", tile_2d=True)
    with pytest.raises(ValueError, match="scale_rule"):
        QuantSpec("e4m3fn", scaling="mx", scale_rule="round")


def test_a_forward_that_is_not_a_training_step_leaves_the_delayed_histories():
    """Evaluation (a forward without gradients) scales by the delayed-scaling histories without
    adding its amaxes to them: before, the test set's amaxes entered the training layers'
    histories, so evaluating changed later training steps (and the evaluation batch size
    changed the run).  A training forward still records them."""
    from fp8emu.autograd import LINEAR_PRODUCTS, LayerQuant, no_grad, quantized_forward
    spec = QuantSpec(e4m3fn, saturate=True, scaling="delayed")
    lq = LayerQuant("fc", 0, {"activations": spec, "weights": spec, "outputs": spec})
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((8, 16)).astype(np.float32), rng.standard_normal((4, 16)).astype(np.float32)
    y_train, _ = quantized_forward(lq, LINEAR_PRODUCTS, x, w, training=True)
    before = lq.state_dict()
    assert all(len(h) == 1 for h in before["amax"].values())
    y_eval, _ = quantized_forward(lq, LINEAR_PRODUCTS, 1000 * x, w, training=False)
    with no_grad():
        quantized_forward(lq, LINEAR_PRODUCTS, 1000 * x, w)
    assert lq.state_dict() == before
    # the evaluation used the histories' scales: x's scale, so 1000 x saturates at e4m3fn's max
    assert np.all(np.isfinite(y_eval))
    quantized_forward(lq, LINEAR_PRODUCTS, x, w, training=True)
    assert all(len(h) == 2 for h in lq.state_dict()["amax"].values())
