"""Optimizers (update rules, 16-bit master weights with RNE or SR write-back), LR schedules."""

import numpy as np
import pytest

from fp8emu import nn, optim
from fp8emu.formats import bfloat16, float16
from fp8emu.quantize import quantize


def param(values, grad=None):
    p = nn.Parameter(np.asarray(values, np.float32))
    if grad is not None:
        p.grad = np.asarray(grad, np.float32)
    return p


def test_sgd_momentum_nesterov_weight_decay_by_hand():
    p = param([1.0, -2.0], [0.5, 0.5])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    opt.step()  # g = 0.5 + 0.1 w; buf = g; update = g + 0.9 buf = 1.9 g
    g = np.array([0.6, 0.3], np.float32)
    np.testing.assert_allclose(p.data, [1.0, -2.0] - 0.1 * 1.9 * g, rtol=1e-6)
    w1 = p.data.copy()
    opt.step()
    g2 = 0.5 + 0.1 * w1
    buf = 0.9 * g + g2
    np.testing.assert_allclose(p.data, w1 - 0.1 * (g2 + 0.9 * buf), rtol=1e-6)


def test_params_without_grad_are_left_alone_and_zero_grad():
    a, b = param([1.0], [1.0]), param([2.0])
    opt = optim.SGD([a, b], lr=0.5)
    opt.step()
    assert a.data[0] == 0.5 and b.data[0] == 2.0
    opt.zero_grad()
    assert a.grad is None


def test_small_updates_vanish_with_rne_but_survive_in_expectation_with_sr():
    """FP16 master weights: an update of 1e-4 at w = 1 is below half an ulp (2^-11 = 4.9e-4)."""
    results = {}
    for rounding in ("nearest_even", "stochastic"):
        p = param(np.ones(1000))
        opt = optim.SGD([p], lr=1e-4, master_format=float16, master_rounding=rounding, seed=1)
        for _ in range(50):
            p.grad = np.ones(1000, np.float32)
            opt.step()
            assert np.array_equal(quantize(p.data, float16), p.data)
        results[rounding] = float(p.data.mean())
    assert results["nearest_even"] == 1.0
    assert abs(results["stochastic"] - (1.0 - 50e-4)) < 5e-4  # unbiased: about 50 * 1e-4 lost on average


def test_sr_write_back_is_reproducible_from_the_seed():
    runs = []
    for seed in (3, 3, 4):
        p = param(np.linspace(0.9, 1.1, 100))
        opt = optim.SGD([p], lr=1e-4, master_format=bfloat16, master_rounding="stochastic", seed=seed)
        for _ in range(3):
            p.grad = np.ones(100, np.float32)
            opt.step()
        runs.append(p.data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_master_weights_start_representable():
    p = param([1.0 + 2 ** -20])
    optim.SGD([p], lr=0.1, master_format=float16)
    assert p.data[0] == 1.0


def test_adam_first_step_is_lr_times_sign():
    p = param([1.0, 1.0], [3.0, -0.01])
    optim.Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, [0.99, 1.01], rtol=1e-5)


def test_adamw_decays_decoupled():
    p = param([2.0], [0.0])
    optim.AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.05)], rtol=1e-6)


def test_state_dict_round_trip_continues_identically():
    def run(split):
        p = param([1.0, 2.0])
        opt = optim.Adam([p], lr=0.1)
        for i in range(4):
            if i == split:
                state = opt.state_dict()
                p2 = param(p.data.copy())
                opt = optim.Adam([p2], lr=0.5)
                opt.load_state_dict(state)
                p = p2
            p.grad = np.array([0.3 * i, -1.0], np.float32)
            opt.step()
        return p.data
    np.testing.assert_array_equal(run(None), run(2))


def test_param_groups_lr_is_the_lr():
    opt = optim.SGD([param([1.0])], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5
    assert opt.lr == 0.5


def test_schedules():
    opt = optim.SGD([param([1.0])], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([param([1.0])], lr=1.0)
    cos = optim.CosineLR(opt, total=10, warmup=2, min_lr=0.1)
    assert opt.lr == 0.0
    lrs = [cos.step() for _ in range(10)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] == pytest.approx(0.1)
    cos2 = optim.CosineLR(optim.SGD([param([1.0])], lr=1.0), total=10, warmup=2, min_lr=0.1)
    cos2.load_state_dict(cos.state_dict())
    assert cos2.optimizer.lr == opt.lr


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([param([1.0])], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([param([1.0])], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="warmup"):
        optim.CosineLR(optim.SGD([param([1.0])], lr=0.1), total=5, warmup=5)
    with pytest.raises(TypeError):
        optim.SGD([np.zeros(2)], lr=0.1)
