"""Loss scalers: back-off, growth, the enhanced floor, skipped steps; an E5M2 network whose
errors underflow without scaling trains with the enhanced scaler; injected Inf recovery."""

import functools

import numpy as np
import pytest

from fp8emu import nn
from fp8emu.autograd import Tensor, ops
from fp8emu.loss_scale import DynamicScaler, EnhancedScaler, StaticScaler
from fp8emu.recipes import get_recipe
from fp8emu.stats import QuantStats


def param(value):
    p = nn.Parameter(np.full(3, value, np.float32))
    p.grad = np.ones(3, np.float32)
    return p


def test_unscale_divides_and_detects_inf_and_nan():
    s = StaticScaler(8.0)
    p = param(1.0)
    p.grad[:] = 16.0
    assert not s.unscale_([p])
    np.testing.assert_array_equal(p.grad, 2.0)
    for bad in (np.inf, -np.inf, np.nan):
        q = param(1.0)
        q.grad[1] = bad
        assert s.unscale_([q, param(0.0)])


def test_dynamic_backs_off_grows_and_caps():
    s = DynamicScaler(2.0 ** 10, window=3, max_scale=2.0 ** 11, min_scale=2.0 ** 8)
    s.update(True)
    assert s.scale_value == 2.0 ** 9 and s.skipped_steps == 1
    for _ in range(3):
        s.update(False)
    assert s.scale_value == 2.0 ** 10
    for _ in range(9):
        s.update(False)
    assert s.scale_value == 2.0 ** 11  # capped
    for _ in range(10):
        s.update(True)
    assert s.scale_value == 2.0 ** 8  # min_scale
    assert s.steps == 23 and s.skipped_steps == 11


def test_enhanced_floor_schedule_and_state():
    s = EnhancedScaler(2.0 ** 6, floor=[(0, 2.0 ** 4), (5, 2.0 ** 12)], window=1000)
    assert s.scale_value == 2.0 ** 6
    for _ in range(4):
        s.update(True)
    assert s.scale_value == 2.0 ** 4  # never below the floor
    s.update(False)
    assert s.steps == 5 and s.scale_value == 2.0 ** 12  # the floor rose at step 5 and lifts the scale
    s.update(True)
    assert s.scale_value == 2.0 ** 12
    state = s.state_dict()
    t = EnhancedScaler(2.0 ** 6, floor=[(0, 2.0 ** 4), (5, 2.0 ** 12)], window=1000)
    t.load_state_dict(state)
    assert t.state_dict() == state and t.skipped_steps == 5
    with pytest.raises(KeyError, match="unknown key"):
        t.load_state_dict({"nope": 1})


def test_scaler_argument_errors():
    with pytest.raises(ValueError, match="power of two"):
        StaticScaler(3.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        EnhancedScaler(floor=[(0, 8.0), (3, 2.0)])
    with pytest.raises(ValueError, match="power of two"):
        DynamicScaler(backoff=0.3)


# ---- training: a network whose E5M2 errors underflow unless the loss is scaled --------------------------
def _mlp():
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def _data(n=256):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    w = rng.standard_normal((16, 4))
    return x, (x @ w).argmax(axis=1)


TINY = 2.0 ** -20  # the loss is multiplied by this: its gradients are tiny, as in a deep net's early layers


def _train(recipe, steps=60, inject_inf_at=None):
    model = _mlp()
    recipe.apply(model)
    opt = recipe.make_optimizer(model.parameters(), lr=0.1 / TINY, momentum=0.9)
    scaler = recipe.make_scaler()
    x, y = _data()
    stats, log = QuantStats(), []
    for step in range(steps):
        idx = np.arange(step * 32, step * 32 + 32) % len(x)
        with stats:
            loss = ops.cross_entropy(model(Tensor(x[idx])), y[idx])
            scaler.scale(ops.mul(loss, TINY)).backward()
        if step == inject_inf_at:
            model[2].weight.grad[0, 0] = np.inf
        before = model[2].weight.data.copy()
        applied = scaler.step(opt)
        opt.zero_grad()
        log.append((loss.item(), applied, scaler.scale_value, np.array_equal(before, model[2].weight.data)))
    logits = model(Tensor(x)).data
    return float(np.mean(logits.argmax(axis=1) == y)), stats, log, scaler


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the unscaled run may diverge to Inf logits
def test_e5m2_errors_underflow_without_scaling_and_train_with_the_enhanced_scaler():
    paper = get_recipe("paper-e5m2").replace(exempt=())  # every layer quantized
    acc_none, stats_none, _, _ = _train(paper.replace(scaler=functools.partial(StaticScaler, 1.0)))
    scaled = paper.replace(scaler=functools.partial(EnhancedScaler, 2.0 ** 20, floor=2.0 ** 16))
    acc_enh, stats_enh, log, scaler = _train(scaled)
    under_none = stats_none.get("4", "errors")["flushed"]  # the last layer's incoming errors
    under_enh = stats_enh.get("4", "errors")["flushed"]
    assert under_none > 0.99  # the errors vanish: (almost) nothing to learn from
    assert under_enh < 0.25  # what still flushes are the tiny softmax probabilities of wrong classes
    assert acc_none < 0.5 and acc_enh > 0.8, (acc_none, acc_enh)
    assert scaler.scale_value >= 2.0 ** 16 and all(applied for _, applied, _, _ in log)


def test_injected_inf_skips_the_step_backs_off_to_the_floor_and_training_continues():
    recipe = get_recipe("paper-e5m2").replace(
        exempt=(), scaler=functools.partial(EnhancedScaler, 2.0 ** 17, floor=2.0 ** 16))
    acc, _, log, scaler = _train(recipe, steps=60, inject_inf_at=10)
    loss, applied, scale, unchanged = log[10]
    assert not applied and unchanged  # skipped: the weights did not move
    assert scale == 2.0 ** 16 and log[9][2] == 2.0 ** 17  # halved ...
    assert scaler.skipped_steps >= 1 and all(s >= 2.0 ** 16 for _, _, s, _ in log)  # ... never below the floor
    assert log[11][1] and not log[11][3]  # the next step applies an update
    assert np.mean([entry[0] for entry in log[-10:]]) < log[10][0] and acc > 0.8
