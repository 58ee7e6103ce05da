"""Regression tests of a review of the autograd ops, the quantized GEMM layers, batch norm,
the enhanced loss scaler and the master-weight seed of the training engine."""

from types import SimpleNamespace

import numpy as np
import pytest

from fp8emu import gemm, nn, quantize
from fp8emu.accumulators import lowp
from fp8emu.autograd import LayerQuant, QuantSpec, Tensor, ops
from fp8emu.autograd.qgemm import ACCUMULATOR_STREAM_IDS, accumulator_stream
from fp8emu.autograd.quant import TENSOR_CLASSES
from fp8emu.loss_scale import EnhancedScaler

RNG = np.random.default_rng(0)


# ---- ReLU and the residual join on arrays that are not C-contiguous ---------------------------------------
def _layouts():
    """The same (4, 3) values as a C-ordered, an F-ordered and a strided (non-contiguous) array."""
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    wide = np.zeros((4, 6), np.float32)
    wide[:, ::2] = x
    return x, [np.ascontiguousarray(x), np.asfortranarray(x), wide[:, ::2]]


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_relu_forward_and_backward_of_any_layout(layout):
    x, arrays = _layouts()
    a = arrays["C F strided".split().index(layout)]
    t = Tensor(a, requires_grad=True)
    y = ops.relu(t)
    assert np.array_equal(y.data, np.maximum(x, 0))
    g = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3) + 1)   # an F-ordered gradient too
    y.backward(g)
    assert np.array_equal(t.grad, np.where(x > 0, g, 0))


def test_relu_and_add_relu_keep_the_shape_of_a_scalar():
    t = Tensor(np.array(-2.0, np.float32), requires_grad=True)
    y = ops.relu(t)
    assert y.shape == () and y.item() == 0.0
    y.backward(np.array(1.0, np.float32))
    assert t.grad.shape == () and t.grad == 0.0
    z = ops.add_relu(Tensor(np.array(1.0)), Tensor(np.array(2.0)))
    assert z.shape == () and z.item() == 3.0


def test_relu_and_add_relu_after_a_transpose():
    """The realistic case: a permuted (F-ordered) view reaches the kernels, forward and backward."""
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    t = Tensor(x, requires_grad=True)
    y = ops.relu(ops.transpose(t))
    assert np.array_equal(y.data, np.maximum(x.T, 0))
    y.backward(np.ones((4, 3), np.float32))
    assert np.array_equal(t.grad, (x > 0).astype(np.float32))

    a, b = Tensor(x.T, requires_grad=True), Tensor(np.ascontiguousarray(x.T), requires_grad=True)
    z = ops.add_relu(ops.transpose(Tensor(x, requires_grad=True)), b)
    assert np.array_equal(z.data, np.maximum(x.T + x.T, 0))
    z = ops.add_relu(a, b)
    z.backward(np.ones((4, 3), np.float32))
    assert np.array_equal(z.data, np.maximum(x.T + x.T, 0))
    assert np.array_equal(a.grad, (x.T > 0).astype(np.float32)) and np.array_equal(b.grad, a.grad)

    x4 = RNG.standard_normal((2, 3, 3, 2)).astype(np.float32)
    y4 = ops.relu(Tensor(x4).transpose(0, 3, 1, 2))   # NHWC -> NCHW
    assert np.array_equal(y4.data, np.maximum(x4.transpose(0, 3, 1, 2), 0))


# ---- transpose: negative axes, validation, one tuple --------------------------------------------------------
@pytest.mark.parametrize("axes", [(0, 2, 1), (0, -1, -2), (2, 0, 1), (-1, 0, 1), (-3, -1, 1)])
def test_transpose_gradient_with_negative_axes(axes):
    x = RNG.standard_normal((2, 3, 4))
    w = RNG.standard_normal(np.transpose(x, axes).shape)
    t = Tensor(x, requires_grad=True)
    y = ops.transpose(t, axes)
    assert np.array_equal(y.data, np.transpose(x, axes))
    (y * Tensor(w)).sum().backward()
    assert np.array_equal(t.grad, np.transpose(w, np.argsort(np.array(axes) % 3)))


@pytest.mark.parametrize("axes, match", [
    ((0, 1), r"not a permutation of the 3 axes"),
    ((0, 1, 3), r"not a permutation of the 3 axes"),
    ((0, 1, -4), r"not a permutation of the 3 axes"),
    ((0, 1, 1), r"repeat an axis"),
    ((0, 2, -1), r"repeat an axis .*\(0, 2, 2\)"),
])
def test_transpose_refuses_axes_that_are_not_a_permutation(axes, match):
    with pytest.raises(ValueError, match=match):
        ops.transpose(Tensor(np.zeros((2, 3, 4))), axes)


def test_transpose_refuses_non_integer_axes():
    with pytest.raises(TypeError, match="transpose axes must be ints"):
        ops.transpose(Tensor(np.zeros((2, 3))), (0.0, 1.0))


def test_tensor_transpose_takes_one_tuple_like_reshape():
    x = np.arange(6.0).reshape(2, 3)
    for args in [((1, 0),), ([1, 0],), (1, 0), ((-1, 0),), ()]:
        assert np.array_equal(Tensor(x).transpose(*args).data, x.T), args
    x3 = np.arange(24.0).reshape(2, 3, 4)
    assert np.array_equal(Tensor(x3).transpose((0, 2, 1)).data, x3.transpose(0, 2, 1))


# ---- batch norm: empty batch, one value per channel, running-stat shapes ------------------------------------
def test_batch_norm_empty_training_batch_leaves_running_stats_alone():
    """PyTorch: an empty batch gives an empty output and does not touch the running statistics
    (batch statistics of nothing would be 0/0 = NaN, and would poison every later eval)."""
    bn = nn.BatchNorm2d(2)
    x = Tensor(np.zeros((0, 2, 3, 3), np.float32), requires_grad=True)
    y = bn(x, relu=True)
    assert y.shape == (0, 2, 3, 3)
    assert np.array_equal(bn.running_mean, [0, 0]) and np.array_equal(bn.running_var, [1, 1])
    y.backward(np.zeros((0, 2, 3, 3), np.float32))
    assert x.grad.shape == (0, 2, 3, 3)
    assert np.array_equal(bn.weight.grad, [0, 0]) and np.array_equal(bn.bias.grad, [0, 0])
    bn(Tensor(np.ones((2, 2, 0, 0), np.float32)))       # H*W = 0 is an empty batch too
    assert np.array_equal(bn.running_mean, [0, 0]) and np.array_equal(bn.running_var, [1, 1])
    bn(Tensor(np.ones((4, 2, 3, 3), np.float32)))
    bn.eval()
    out = bn(Tensor(np.ones((1, 2, 1, 1), np.float32))).data.ravel()
    assert np.isfinite(out).all() and np.isfinite(bn.running_var).all()


def test_batch_norm_training_with_one_value_per_channel_is_refused():
    bn = nn.BatchNorm2d(2)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 2, 1, 1\) \(N\*H\*W = 1\)"):
        bn(Tensor(np.array([[[[1.0]], [[2.0]]]], np.float32)))
    assert np.array_equal(bn.running_var, [1, 1])
    bn(Tensor(np.array([[[[1.0]], [[2.0]]]] * 2, np.float32)))          # N*H*W = 2 trains
    bn(Tensor(np.ones((1, 2, 1, 2), np.float32)))                      # a batch of one with H*W = 2 too
    bn.eval()
    bn(Tensor(np.ones((1, 2, 1, 1), np.float32)))                      # eval takes a single value


def test_batch_norm_running_stats_must_match_the_channels():
    x = Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2))
    g, b = Tensor(np.ones(3, np.float32)), Tensor(np.zeros(3, np.float32))
    for training in (False, True):
        for n in (1, 5):
            with pytest.raises(ValueError, match=rf"running_mean and running_var must have shape \(3,\) .* "
                                                 rf"got \({n},\) and \({n},\)"):
                ops.batch_norm2d(x, g, b, np.zeros(n, np.float32), np.ones(n, np.float32), training=training)
    with pytest.raises(ValueError, match=r"must have shape \(3,\) .* got \(3,\) and \(3, 1\)"):
        ops.batch_norm2d(x, g, b, np.zeros(3, np.float32), np.ones((3, 1), np.float32), training=False)
    with pytest.raises(ValueError, match="both running_mean and running_var, or neither"):
        ops.batch_norm2d(x, g, b, np.zeros(3, np.float32), None, training=True)
    y = ops.batch_norm2d(x, g, b, np.zeros(3, np.float32), np.ones(3, np.float32), training=False)
    assert y.shape == x.shape


def test_resnet18_trains_with_a_batch_of_one_on_28_pixel_images():
    """The built-in data sets have 28x28 or 32x32 images: ResNet-18's last stage is then 4x4, so
    a batch of 1 still has 16 values per channel and is not refused (PyTorch refuses exactly
    where N*H*W = 1)."""
    nn.manual_seed(0)
    model = nn.resnet18(num_classes=10, in_channels=1, width=2, cifar_stem=True)
    loss = ops.cross_entropy(model(Tensor(RNG.standard_normal((1, 1, 28, 28)).astype(np.float32))), np.array([3]))
    loss.backward()
    assert np.isfinite(loss.item())


# ---- stochastic-rounding accumulator: the layer's seed and one stream per GEMM ------------------------------
_RNE = QuantSpec("e5m2")
_X = RNG.standard_normal((16, 64)).astype(np.float32)
_W = RNG.standard_normal((8, 64)).astype(np.float32)


def _layer(acc, seed=0, index=0):
    return LayerQuant(name="l", index=index, specs=dict(activations=_RNE, weights=_RNE), accumulator=acc, seed=seed)


def _linear_step(lq, x=_X, w=_W):
    """One training step of a quantized linear layer: (y, dx, dw)."""
    tx, tw = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    y = ops.linear(tx, tw, None, lq)
    y.backward(np.ones(y.shape, np.float32))
    return y.data, tx.grad, tw.grad


def test_accumulator_streams_are_distinct_from_every_tensor_class_stream():
    lq = _layer(None, index=5)
    for step in (1, 2, 1000):
        tensor_streams = {lq.stream(s, c) for s in (step - 1, step, step + 1) for c in TENSOR_CLASSES}
        ours = {accumulator_stream(lq, step, g) for g in ACCUMULATOR_STREAM_IDS}
        assert len(ours) == 3 and not ours & tensor_streams
        assert all(s >> 24 == step and (s >> 4) & 0xFFFFF == 5 for s in ours)


def test_sr_accumulator_is_reproducible_from_the_layer_seed():
    acc = lowp("float16", 8, "stochastic")           # no seed of its own: fresh bits per call before the fix
    first, second = _linear_step(_layer(acc, seed=3)), _linear_step(_layer(acc, seed=3))
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    other_seed = _linear_step(_layer(acc, seed=4))
    assert not np.array_equal(first[0], other_seed[0])


def test_sr_accumulator_draws_new_bits_per_layer_step_and_gemm():
    """With its own seed the accumulator used to reuse the same random words in every GEMM."""
    acc = lowp("float16", 8, "stochastic", seed=5)
    lq = _layer(acc, seed=11, index=1)
    step1, step2 = _linear_step(lq), _linear_step(lq)
    assert not np.array_equal(step1[0], step2[0])                                  # steps differ
    assert not np.array_equal(step1[0], _linear_step(_layer(acc, seed=11, index=7))[0])   # layers differ
    # each GEMM uses its own stream: the layer's results equal the GEMM layer's called with the layer's
    # seed and that stream (fp8emu.matmul gives the accumulator stream + 3)
    xq, wq = quantize(_X, "e5m2"), quantize(_W, "e5m2")      # the operands as the layer rounds them
    fresh = _layer(acc, seed=11, index=1)
    y, dx, dw = _linear_step(fresh)
    gy = np.ones((16, 8), np.float32)                          # the errors class is not quantized here

    def product(a, b, a_fmt, gemm_name):
        return gemm.matmul(a, b, a_fmt=a_fmt, b_fmt="e5m2", accumulator=acc, quantized=True, seed=11,
                           stream=accumulator_stream(fresh, 1, gemm_name) - 3)
    assert np.array_equal(y, product(xq, wq.T, "e5m2", "forward"))
    assert np.array_equal(dx, product(gy, wq, None, "grad_input"))
    assert np.array_equal(dw, product(gy.T, xq, None, "grad_weight"))


def test_sr_accumulator_in_a_conv_layer_is_reproducible_and_per_step():
    acc = lowp("float16", 4, "stochastic")
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    w = RNG.standard_normal((3, 4, 3, 3)).astype(np.float32)

    def step(lq):
        tx, tw = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        y = ops.conv2d(tx, tw, padding=1, quant=lq)
        y.backward(np.ones(y.shape, np.float32))
        return y.data, tx.grad, tw.grad
    lq_a, lq_b = _layer(acc, seed=2), _layer(acc, seed=2)
    a1, b1 = step(lq_a), step(lq_b)
    for u, v in zip(a1, b1):
        assert np.array_equal(u, v)
    a2 = step(lq_a)
    assert not np.array_equal(a1[0], a2[0])


def test_deterministic_accumulators_keep_their_bits():
    """A round-to-nearest low-precision accumulator (which accepts the seed) and float32 BLAS: the
    layer's output equals the GEMM layer called without any seed."""
    xq, wq = quantize(_X, "e5m2"), quantize(_W, "e5m2")
    for acc in (lowp("float16", 8), lowp("bfloat16", 4, "toward_zero"), None):
        y = _linear_step(_layer(acc, seed=9))[0]
        assert np.array_equal(y, gemm.matmul(xq, wq.T, a_fmt="e5m2", b_fmt="e5m2", accumulator=acc, quantized=True))


def test_recipe_with_sr_accumulator_trains_reproducibly():
    from fp8emu import get_recipe

    def run(seed):
        nn.manual_seed(0)
        m = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
        get_recipe("hfp8").replace(accumulator=lowp("float16", 8, "stochastic"), exempt=()).apply(m, seed=seed)
        ops.cross_entropy(m(Tensor(_X)), np.arange(16) % 4).backward()
        return m[0].weight.grad
    assert np.array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


# ---- enhanced loss scaler: a callable floor is checked like the others --------------------------------------
@pytest.mark.parametrize("floor, match", [
    (lambda t: 1000.0, r"returned 1000.0 at step 0; a floor must be a positive power of two"),
    (lambda t: 2.0 ** 10, r"returned 1024 at step 0, which exceeds max_scale 512"),
    (lambda t: None, r"returned None at step 0; a floor must be a positive power of two"),
    (lambda t: 0.0, r"returned 0.0 at step 0; a floor must be a positive power of two"),
])
def test_callable_floor_is_validated_at_construction(floor, match):
    with pytest.raises(ValueError, match=match):
        EnhancedScaler(2.0 ** 8, floor=floor, max_scale=2.0 ** 9)


def test_callable_floor_is_validated_when_the_step_reaches_a_bad_value():
    s = EnhancedScaler(2.0 ** 8, floor=lambda t: 2.0 ** 4 if t < 2 else 48.0)
    s.update(False)
    assert s.scale_value == 2.0 ** 8
    with pytest.raises(ValueError, match=r"returned 48.0 at step 2; a floor must be a positive power of two"):
        s.update(True)
    good = EnhancedScaler(2.0 ** 8, floor=lambda t: 2.0 ** 4 if t < 1 else 2.0 ** 9, max_scale=2.0 ** 10)
    good.update(True)
    assert good.scale_value == 2.0 ** 9 and good.floor() == 2.0 ** 9


# ---- the training engine's master write-back seed ------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 5])
def test_master_write_back_seed_follows_the_run_seed(seed):
    from fp8emu import train

    ds = SimpleNamespace(image_shape=(1, 8, 8), num_classes=4)
    config = dict(model="resnet18", width=2, seed=seed, recipe="paper-e5m2", lr=0.1, momentum=0.9, weight_decay=0.0,
                  epochs=1, schedule="constant", warmup_epochs=0)
    parts = train.build(config, ds, steps_per_epoch=10)
    layer_seeds = {m.quant.seed for _, m in parts.model.named_modules() if getattr(m, "quant", None) is not None}
    assert layer_seeds == {seed}
    assert parts.optimizer.seed == 2 * seed + 1 == parts.recipe.master_seed(seed)
    assert train._state(parts)["master_seed"] == 2 * seed + 1
