"""One statistics observer (fp8emu.stats): saturation against the scaled format maximum (per
tensor, delayed and MX block scales), flushed-to-zero named apart from the IEEE underflow flag,
error_stats for plain arrays, and training samples the last step of every epoch."""

import math

import numpy as np
import pytest

from fp8emu import quantize
from fp8emu.autograd import LayerQuant, QuantSpec
from fp8emu.formats import e4m3fn, e5m2
from fp8emu.stats import QuantStats, error_stats


def test_error_stats_counts_known_values():
    x = np.array([1.0, 2.0 ** -20, -2.0 ** -20, 0.0, 1e6, -1e6, 3.0, 500.0], np.float32)
    q = quantize(x, e4m3fn, saturate=True)
    s = error_stats(x, q, e4m3fn)
    assert s["elements"] == 8 and s["flushed"] == 2 / 7 and s["overflow"] == 0
    assert s["saturated"] == 3 / 8  # 1e6, -1e6 and 500 clamp to +-448
    plain = error_stats(x, quantize(x, e4m3fn), "e4m3fn")  # not saturating: NaN (fn has no Inf)
    assert plain["overflow"] == 3 / 8 and plain["saturated"] == 0
    exact = error_stats(x[:1], x[:1], e4m3fn)
    assert exact["snr_db"] == math.inf and exact["rel_error"] == 0
    noise = (1e6 - 448) ** 2 * 2 + (500 - 448) ** 2
    signal = float(np.sum(x.astype(np.float64) ** 2))
    assert s["snr_db"] == pytest.approx(10 * math.log10(signal / noise), rel=1e-9)
    assert s["rel_error"] == pytest.approx(math.sqrt(noise / signal), rel=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        error_stats(x, q[:3], e4m3fn)


def test_overflow_and_saturated_are_fractions_of_the_finite_inputs():
    """NaN and Inf inputs are neither overflows nor saturations, and are not counted in the
    denominators either: one finite input that overflows is an overflow fraction of 1."""
    x = np.array([1000.0, np.nan, np.inf, np.nan], np.float32)
    s = error_stats(x, quantize(x, e4m3fn), e4m3fn)
    assert (s["elements"], s["finite"], s["overflow"], s["saturated"]) == (4, 1, 1.0, 0.0)
    s = error_stats(x, quantize(x, e4m3fn, saturate=True), e4m3fn)
    assert (s["overflow"], s["saturated"]) == (0.0, 1.0)
    nothing_finite = error_stats(x[1:], quantize(x[1:], e4m3fn), e4m3fn)
    assert (nothing_finite["finite"], nothing_finite["overflow"], nothing_finite["saturated"]) == (0, 0.0, 0.0)
    stats = QuantStats()
    with stats:
        LayerQuant("l", specs={"weights": QuantSpec(e4m3fn)}).quantize(
            np.array([1000.0, np.nan, np.inf, 1.0], np.float32), "weights", 0)
    row = stats.get("l", "weights")
    assert row["elements"] == 4 and row["overflow"] == 0.5  # 1000 of the two finite inputs
    assert stats.state_dict()["l"]["weights"]["finite"] == 2


def test_sums_saved_without_a_finite_count_load():
    """Sums from before ``finite`` was counted take every element as finite (their old denominator)."""
    old = {"l": {"weights": {"elements": 10, "nonzero": 8, "flushed": 2, "overflow": 1, "saturated": 3,
                             "signal": 1.0, "noise": 0.5}}}
    stats = QuantStats()
    stats.load_state_dict(old)
    row = stats.get("l", "weights")
    assert (row["overflow"], row["saturated"], row["flushed"]) == (0.1, 0.3, 0.25)
    assert stats.state_dict()["l"]["weights"]["finite"] == 10
    with pytest.raises(KeyError):
        QuantStats().load_state_dict({"l": {"weights": {"finite": 1}}})


def test_error_stats_with_a_scale():
    x = np.array([1000.0, 2000.0, 10.0], np.float32)
    scale = 4.0  # q = format value * 4: the largest magnitude is 448 * 4 = 1792
    q = quantize(x / scale, e4m3fn, saturate=True) * scale
    assert error_stats(x, q, e4m3fn, scale)["saturated"] == 1 / 3   # only 2000
    assert error_stats(x, q, e4m3fn)["saturated"] == 0              # against the unscaled max: nothing > 448 clamps to 448


def test_delayed_scaling_saturation_is_counted_against_the_scaled_max():
    """ocp-fp8-like: delayed scaling from a history of small amaxes, then a larger tensor saturates."""
    layer = LayerQuant("fc", specs={"errors": QuantSpec(e4m3fn, saturate=True, scaling="delayed")})
    stats = QuantStats()
    with stats:
        layer.quantize(np.full(64, 1.0, np.float32), "errors", 0)         # amax 1: scale for |x| <= 1
        x = np.linspace(-8, 8, 64).astype(np.float32)
        layer.quantize(x, "errors", 1)
    top = e4m3fn.max * layer.last_scale
    assert top < 8
    expect = int(np.count_nonzero(np.abs(x) > top))
    assert expect > 0
    assert stats.get("fc", "errors")["saturated"] == expect / 128


def test_mx_saturation_is_measured_with_the_block_scales():
    """MX scale 2^(floor(log2 amax) - emax): a block whose amax has a mantissa above 1.75 clamps."""
    x = np.ones((2, 64), np.float32)
    x[0, 5] = 1.9 * 2 ** 3   # block 0 of row 0: 15.2 / 2^(3-8) = 486 > 448: saturates
    x[1, 40] = 1.5 * 2 ** 3  # block 1 of row 1: 384, exact
    layer = LayerQuant("fc", specs={"errors": QuantSpec(e4m3fn, scaling="mx", block=32)})
    stats = QuantStats()
    with stats:
        q, _ = layer.quantize(x, "errors", 0)
    assert layer.last_scale.shape == x.shape and layer.last_scale[0, 5] == 2.0 ** -5
    assert q[0, 5] == 448 * 2.0 ** -5
    assert stats.get("fc", "errors")["saturated"] == 1 / 128


def test_flushed_is_not_called_underflow():
    stats = QuantStats()
    with stats:
        LayerQuant("l", specs={"weights": QuantSpec(e5m2)}).quantize(np.array([2.0 ** -30, 1.0], np.float32),
                                                                     "weights", 0)
    row = stats.get("l", "weights")
    assert row["flushed"] == 0.5 and "underflow" not in row
    assert "flushed" in stats.table().splitlines()[0]
    assert stats.summary() == {"l": {"weights": {"flushed": 0.5, "overflow": 0.0, "saturated": 0.0,
                                                 "snr_db": pytest.approx(10 * math.log10(1 / 2.0 ** -60))}}}


def test_state_dict_round_trip_and_merge():
    a, b = QuantStats(), QuantStats()
    with a:
        LayerQuant("l", specs={"weights": QuantSpec(e5m2)}).quantize(np.arange(5, dtype=np.float32), "weights", 0)
    b.load_state_dict(a.state_dict())
    assert b.report() == a.report()
    b.merge(a)
    assert b.get("l", "weights")["elements"] == 10 and b.get("l", "weights")["flushed"] == 0


def test_every_epoch_samples_its_last_step(tmp_path):
    """2 epochs x 3 steps at --stats-every 50: only step 0 was sampled before, epoch 2 had no numerics."""
    from fp8emu import train as train_mod
    from test_data import write_mnist_like
    from test_train_loop import tiny_config
    write_mnist_like(tmp_path / "d", n_train=12, n_test=6, size=8)
    result = train_mod.train(tiny_config(tmp_path / "d", tmp_path / "r", stats_every=50), progress=False)
    assert [bool(rec["stats"]) for rec in result.history] == [True, True]
    assert result.history[1]["first_step_s"] is None and result.history[0]["first_step_s"] > 0


def test_checkpointed_sums_of_the_old_observer_convert():
    from fp8emu.train import _epoch_stats
    stats = _epoch_stats({"fc": {"errors": [2, 1, 8, 10]}})  # [flushed, overflow, nonzero, elements]
    row = stats.get("fc", "errors")
    assert (row["flushed"], row["overflow"], row["elements"]) == (0.25, 0.1, 10)


def test_nvfp4_saturation_is_measured_with_block_and_tensor_scales():
    """NVFP4: element scale = E4M3 block scale x float32 tensor decode scale; values that the
    rounded block scale cannot reach clamp to 6 x that scale and are counted."""
    from fp8emu.formats import e2m1fn
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    layer = LayerQuant("fc", specs={"errors": QuantSpec(e2m1fn, scaling="nvfp4")})
    stats = QuantStats()
    with stats:
        q, _ = layer.quantize(x, "errors", 0)
    scale = layer.last_scale
    assert scale.shape == x.shape and np.all(scale > 0)
    top = (6.0 * scale).astype(np.float32)
    expect = int(np.count_nonzero((np.abs(x) > 6.0 * scale) & (np.abs(q) == top)))
    assert np.all(np.abs(q) <= top)  # nothing beyond the scaled maximum
    assert stats.get("fc", "errors")["saturated"] == expect / x.size
    # the block maximum whose scale rounded down in E4M3 is beyond reach: some element saturates
    assert expect > 0
