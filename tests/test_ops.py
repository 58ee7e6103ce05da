"""One op table, one central-difference gradient check (float64), and the kernels' twins.

Every op and module of the engine appears in OPS or MODULES; ``grad_check`` compares the
analytic gradient of ``sum(f(x) * r)`` (r fixed random) with central differences.
"""

import numpy as np
import pytest

from fp8emu import nn
from fp8emu.autograd import Tensor, no_grad, ops
from fp8emu.autograd import _kernels as K

import oracles_ops as O

RNG = np.random.default_rng(1234)


def away_from_zero(*shape, lo=0.2):
    """Values with |x| >= lo, so kinks (relu, max) are not within eps of the sample."""
    x = RNG.uniform(lo, 1.5, shape) * RNG.choice([-1.0, 1.0], shape)
    return x


def positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """A permutation of well-separated values (no ties for max-pool)."""
    return RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1


def grad_check(name, fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-7, max_points=40):
    """Compare backward() with central differences of sum(fn(*inputs) * r) in float64."""
    tensors = [Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    out = fn(*tensors)
    r = np.random.default_rng(7).standard_normal(out.shape)
    (out * Tensor(r)).sum().backward()
    for k, (t, x0) in enumerate(zip(tensors, inputs)):
        assert t.grad is not None, f"{name}: input {k} got no gradient"
        assert t.grad.shape == np.shape(x0), f"{name}: input {k} gradient shape {t.grad.shape} != {np.shape(x0)}"
        flat = np.array(x0, dtype=np.float64).reshape(-1)
        picks = np.arange(flat.size) if flat.size <= max_points else RNG.choice(flat.size, max_points, replace=False)
        for i in picks:
            vals = []
            for sign in (1, -1):
                xs = [np.array(x, dtype=np.float64) for x in inputs]
                xs[k].reshape(-1)[i] += sign * eps
                vals.append(float(np.sum(fn(*[Tensor(v) for v in xs]).data * r)))
            numeric = (vals[0] - vals[1]) / (2 * eps)
            analytic = float(t.grad.reshape(-1)[i])
            assert abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic)), (
                f"{name}: input {k}, flat index {i}: analytic {analytic!r} vs numeric {numeric!r}")


def _bn_train(x, g, b):
    return ops.batch_norm2d(x, g, b, np.zeros(x.shape[1]), np.ones(x.shape[1]), training=True)


def _bn_train_relu(x, g, b):
    return ops.batch_norm2d(x, g, b, training=True, relu=True)


def _bn_eval(x, g, b):
    return ops.batch_norm2d(x, g, b, np.linspace(-0.5, 0.5, x.shape[1]), np.linspace(0.5, 2, x.shape[1]),
                            training=False)


OPS = [
    ("add_broadcast", lambda a, b: a + b, [RNG.standard_normal((3, 4)), RNG.standard_normal((1, 4))]),
    ("sub", lambda a, b: a - b, [RNG.standard_normal((3, 4)), RNG.standard_normal((3, 1))]),
    ("rsub_scalar", lambda a: 2.0 - a, [RNG.standard_normal((5,))]),
    ("mul", lambda a, b: a * b, [RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3))]),
    ("div", lambda a, b: a / b, [RNG.standard_normal((2, 3)), positive(2, 3)]),
    ("neg", lambda a: -a, [RNG.standard_normal((4,))]),
    ("exp", ops.exp, [RNG.standard_normal((4,))]),
    ("log", ops.log, [positive(4)]),
    ("sum_axis", lambda a: a.sum(axis=1), [RNG.standard_normal((3, 4, 2))]),
    ("sum_keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [RNG.standard_normal((3, 4, 2))]),
    ("mean", lambda a: a.mean(axis=0), [RNG.standard_normal((3, 4))]),
    ("reshape", lambda a: a.reshape(6, 2), [RNG.standard_normal((3, 4))]),
    ("transpose", lambda a: a.transpose(2, 0, 1), [RNG.standard_normal((2, 3, 4))]),
    ("flatten", lambda a: a.flatten(1), [RNG.standard_normal((2, 3, 2, 2))]),
    ("matmul", lambda a, b: a @ b, [RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))]),
    ("relu", ops.relu, [away_from_zero(2, 3, 4, 4)]),
    ("add_relu", ops.add_relu, [away_from_zero(2, 3, 4), np.zeros((2, 3, 4)) + 0.05]),
    ("max_pool2d_k2", lambda x: ops.max_pool2d(x, 2), [distinct(2, 2, 4, 6)]),
    ("max_pool2d_k3_s2_p1", lambda x: ops.max_pool2d(x, 3, 2, 1), [distinct(2, 2, 7, 7)]),
    ("avg_pool2d_k3_s2_p1", lambda x: ops.avg_pool2d(x, 3, 2, 1), [RNG.standard_normal((2, 2, 7, 6))]),
    ("global_avg_pool2d", ops.global_avg_pool2d, [RNG.standard_normal((2, 3, 3, 4))]),
    ("batch_norm2d_train", _bn_train, [RNG.standard_normal((3, 4, 3, 2)) * 2 + 1, positive(4),
                                       RNG.standard_normal(4)]),
    ("batch_norm2d_train_relu", _bn_train_relu, [RNG.standard_normal((3, 4, 3, 2)) * 2 + 1, positive(4),
                                                 RNG.standard_normal(4) + 0.3]),
    ("batch_norm2d_eval", _bn_eval, [RNG.standard_normal((3, 4, 3, 2)), positive(4), RNG.standard_normal(4)]),
    ("log_softmax", ops.log_softmax, [RNG.standard_normal((3, 5))]),
    ("cross_entropy", lambda x: ops.cross_entropy(x, [0, 3, 1, 4]), [RNG.standard_normal((4, 5))]),
    ("cross_entropy_smooth", lambda x: ops.cross_entropy(x, [2, 0, 1], label_smoothing=0.1),
     [RNG.standard_normal((3, 4))]),
    ("dropout", lambda x: ops.dropout(x, 0.3, seed=5), [RNG.standard_normal((4, 6))]),
    ("concat", lambda a, b: ops.concat([a, b], axis=1), [RNG.standard_normal((2, 3)), RNG.standard_normal((2, 2))]),
    ("linear", ops.linear, [RNG.standard_normal((3, 4)), RNG.standard_normal((5, 4)), RNG.standard_normal(5)]),
    ("conv2d_s2_p1_g2", lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1, groups=2),
     [RNG.standard_normal((2, 4, 7, 6)), RNG.standard_normal((6, 2, 3, 3)), RNG.standard_normal(6)]),
    ("conv2d_1x1_s2", lambda x, w: ops.conv2d(x, w, stride=2), [RNG.standard_normal((2, 3, 5, 5)),
                                                                 RNG.standard_normal((4, 3, 1, 1))]),
    ("conv2d_dilation_rect_pad", lambda x, w: ops.conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=2),
     [RNG.standard_normal((1, 2, 6, 7)), RNG.standard_normal((3, 2, 3, 2))]),
]


@pytest.mark.parametrize("name,fn,inputs", OPS, ids=[o[0] for o in OPS])
def test_grad_check_ops(name, fn, inputs):
    grad_check(name, fn, inputs)


def _float64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def module_grad_check(name, module, x, eps=1e-6, rtol=1e-5, atol=1e-7, max_points=8, max_params=None):
    """grad_check for a module: its input and its parameters (a sample of max_params), in float64."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    xt = Tensor(np.array(x, dtype=np.float64), requires_grad=True)
    out = module(xt)
    r = np.random.default_rng(7).standard_normal(out.shape)
    (out * Tensor(r)).sum().backward()
    params = list(module.named_parameters())
    if max_params is not None and len(params) > max_params:
        params = [params[i] for i in sorted(RNG.choice(len(params), max_params, replace=False))]
    targets = [("input", xt)] + params
    for label, t in targets:
        assert t.grad is not None, f"{name}: {label} got no gradient"
        flat = t.data.reshape(-1)
        picks = np.arange(flat.size) if flat.size <= max_points else RNG.choice(flat.size, max_points, replace=False)
        for i in picks:
            vals = []
            for sign in (1, -1):
                old = flat[i]
                flat[i] = old + sign * eps
                with no_grad():
                    vals.append(float(np.sum(module(Tensor(xt.data)).data * r)))
                flat[i] = old
            numeric = (vals[0] - vals[1]) / (2 * eps)
            analytic = float(t.grad.reshape(-1)[i])
            assert abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic)), (
                f"{name}: {label}, flat index {i}: analytic {analytic!r} vs numeric {numeric!r}")


def _module_case(name, make, x, train=True, **kw):
    def run():
        nn.manual_seed(3)
        m = make().train(train)
        module_grad_check(name, m, x, **kw)
    return name, run


MODULES = [
    _module_case("Linear", lambda: nn.Linear(4, 3), RNG.standard_normal((2, 4))),
    _module_case("Conv2d", lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), RNG.standard_normal((2, 4, 5, 5))),
    _module_case("BatchNorm2d_train", lambda: nn.BatchNorm2d(3), RNG.standard_normal((4, 3, 2, 2))),
    _module_case("BatchNorm2d_eval", lambda: nn.BatchNorm2d(3), RNG.standard_normal((4, 3, 2, 2)), train=False),
    _module_case("Sequential_MLP", lambda: nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)),
                 RNG.standard_normal((3, 2, 2, 2))),
    _module_case("MaxPool_AvgPool_Adaptive", lambda: nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2, 1),
                                                                   nn.AdaptiveAvgPool2d(1)), distinct(2, 2, 6, 6)),
    _module_case("BasicBlock_downsample", lambda: nn.BasicBlock(2, 4, stride=2), RNG.standard_normal((2, 2, 6, 6))),
    _module_case("Bottleneck_downsample", lambda: nn.Bottleneck(4, 2, stride=2), RNG.standard_normal((2, 4, 4, 4))),
    _module_case("ResNet18_tiny", lambda: nn.resnet18(num_classes=3, width=2, cifar_stem=True),
                 RNG.standard_normal((2, 3, 8, 8)), max_points=3, max_params=16),
    _module_case("ResNet50_tiny_imagenet_stem", lambda: nn.resnet50(num_classes=3, width=1, in_channels=1),
                 RNG.standard_normal((2, 1, 16, 16)), max_points=2, max_params=8),
]


@pytest.mark.parametrize("name,run", MODULES, ids=[m[0] for m in MODULES])
def test_grad_check_modules(name, run):
    run()


def test_batch_norm_train_updates_running_stats_like_pytorch():
    x = RNG.standard_normal((4, 3, 5, 5)).astype(np.float32) * 3 + 2
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    ops.batch_norm2d(Tensor(x), Tensor(np.ones(3, np.float32)), Tensor(np.zeros(3, np.float32)), rm, rv,
                     training=True, momentum=0.1)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(rm, 0.1 * mean, rtol=1e-6)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * var, rtol=1e-6)


def test_forward_values_against_numpy():
    x = RNG.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(ops.max_pool2d(Tensor(x), 2).data, x.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5)))
    np.testing.assert_allclose(ops.avg_pool2d(Tensor(x), 2).data, x.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5)))
    logits = RNG.standard_normal((4, 6))
    t = np.array([0, 5, 2, 2])
    lse = np.log(np.exp(logits).sum(1))
    np.testing.assert_allclose(ops.cross_entropy(Tensor(logits), t).item(), np.mean(lse - logits[np.arange(4), t]))
    y = ops.batch_norm2d(Tensor(x), Tensor(np.ones(3)), Tensor(np.zeros(3)), training=True).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1 / (1 + 1e-5 / x.var(axis=(0, 2, 3))), rtol=1e-9)


def test_dropout_is_seeded_and_scaled():
    x = Tensor(np.ones((100, 100), np.float32))
    a, b = ops.dropout(x, 0.25, seed=1).data, ops.dropout(x, 0.25, seed=1).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, ops.dropout(x, 0.25, seed=2).data)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert 0.2 < np.mean(a == 0) < 0.3
    assert ops.dropout(x, 0.25, training=False) is x


@pytest.mark.parametrize("bad", [
    lambda: ops.conv2d(Tensor(np.zeros((1, 3, 4, 4))), Tensor(np.zeros((4, 2, 3, 3))), groups=2),
    lambda: ops.max_pool2d(Tensor(np.zeros((1, 1, 2, 2))), 3),
    lambda: ops.cross_entropy(Tensor(np.zeros((2, 3))), [0, 3]),
    lambda: ops.linear(Tensor(np.zeros((2, 3))), Tensor(np.zeros((4, 2)))),
    lambda: ops.dropout(Tensor(np.zeros(3)), 1.0),
    lambda: ops.batch_norm2d(Tensor(np.zeros((1, 2, 2, 2))), Tensor(np.ones(3)), Tensor(np.ones(3))),
])
def test_bad_arguments_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad()


# ---- fast kernels vs independent NumPy oracles (tests/oracles_ops.py) -----------------------------------
def _close(fast, oracle, dtype, what):
    """float64 kernels and oracles differ only in summation order; float32 results by at most an ulp."""
    rtol, atol = (1e-12, 1e-12) if dtype == np.float64 else (2e-7, 1e-7)
    np.testing.assert_allclose(fast, oracle, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_kernels_match_the_textbook_formulas(dtype):
    x = (RNG.standard_normal((3, 4, 10)) * 5 + 1).astype(dtype)
    gy = RNG.standard_normal((3, 4, 10)).astype(dtype)
    gamma, beta = RNG.standard_normal(4).astype(dtype), RNG.standard_normal(4).astype(dtype)
    for relu in (False, True):
        y, mean, var, inv = np.empty_like(x), np.empty(4), np.empty(4), np.empty(4)
        K._bn_train_forward(x, gamma, beta, 1e-5, relu, y, mean, var, inv)
        y_o, mean_o, var_o, inv_o = O.bn_train_forward(x, gamma, beta, 1e-5, relu)
        for got, want, what in ((y, y_o, "y"), (mean, mean_o, "mean"), (var, var_o, "var"), (inv, inv_o, "invstd")):
            _close(got, want, dtype if what == "y" else np.float64, f"bn forward {what} (relu={relu})")
        for train in (True, False):
            gx, gg, gb = np.empty_like(x), np.empty(4), np.empty(4)
            K._bn_backward(x, gy, gamma, mean, inv, train, y, relu, gx, gg, gb)
            gx_o, gg_o, gb_o = O.bn_backward(x, gy, gamma, mean, inv, train, y, relu)
            _close(gx, gx_o, dtype, f"bn backward gx (train={train}, relu={relu})")
            _close(gg, gg_o, np.float64, "bn backward dgamma")
            _close(gb, gb_o, np.float64, "bn backward dbeta")
        y = np.empty_like(x)
        K._affine_channels(x, gamma, beta, relu, y)
        np.testing.assert_array_equal(y, O.affine_channels(x, gamma, beta, relu))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernels_equal_numpy(dtype):
    flat = np.concatenate([(RNG.standard_normal(120) * 5).astype(dtype), [0.0, -0.0, np.nan, np.inf, -np.inf]])
    flat = flat.astype(dtype)
    other = flat[::-1].copy()
    for kernel, args, want in ((K._relu_forward, (flat,), O.relu(flat)),
                               (K._relu_backward, (flat, other), O.relu_backward(flat, other)),
                               (K._add_relu_forward, (flat, other), O.add_relu(flat, other))):
        out = np.empty_like(flat)
        kernel(*args, out)
        np.testing.assert_array_equal(out, want, err_msg=kernel.__name__)
        if kernel is not K._relu_backward:   # a ReLU output is never negative, not even -0
            assert not np.signbit(out[~np.isnan(out)]).any(), f"{kernel.__name__} returned a negative"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_pooling_kernels_match_window_views(dtype, k, s, p):
    planes = RNG.standard_normal((3, 7, 6)).astype(dtype)
    planes[0, 1, 1] = planes[0, 1, 2]  # a tie: the first maximum wins
    planes[1, 3, 3] = np.nan           # a NaN wins its windows
    ho, wo = (7 + 2 * p - k) // s + 1, (6 + 2 * p - k) // s + 1
    y, idx = np.empty((3, ho, wo), dtype), np.empty((3, ho, wo), np.int32)
    K._maxpool_forward(planes, k, s, p, y, idx)
    y_o, idx_o = O.maxpool(planes, k, s, p)
    np.testing.assert_array_equal(y, y_o)
    np.testing.assert_array_equal(idx, idx_o)
    g = RNG.standard_normal((3, ho * wo)).astype(dtype)
    gx = np.empty((3, 42), dtype)
    K._maxpool_backward(g, idx.reshape(3, -1), gx)
    np.testing.assert_array_equal(gx, O.maxpool_backward(g, idx.reshape(3, -1), 42))
    K._avgpool_forward(planes, k, s, p, y)
    if dtype == np.float32:   # at most k*k float32 values: float64 sums are exact, in any order
        np.testing.assert_array_equal(y, O.avgpool(planes, k, s, p))
    else:
        _close(y, O.avgpool(planes, k, s, p), dtype, "avgpool")
    gxa = np.empty_like(planes)
    K._avgpool_backward(g.reshape(3, ho, wo), k, s, p, gxa)
    _close(gxa, O.avgpool_backward(g.reshape(3, ho, wo), k, s, p, planes.shape), dtype, "avgpool backward")


def test_every_kernel_is_checked_against_an_oracle():
    import inspect
    import pathlib
    import re
    kernels = re.findall(r"@numba\.njit[^\n]*\ndef (_\w+)", inspect.getsource(K))
    tests = pathlib.Path(__file__).read_text()
    unchecked = [name for name in kernels if not re.search(rf"K\.{name}\b", tests.split("def test_every_kernel")[0])]
    assert kernels and not unchecked, unchecked
