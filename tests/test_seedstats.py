"""Seed statistics: grouping by everything but the seed, mean ± sd, Welch's t-test, medians over
seeds -- checked on fake metrics whose statistics are computed by hand below."""

import json
import math
import os

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from fp8emu.report import load_run, write_report  # noqa: E402
from fp8emu.seedstats import group_runs, mean_sd, welch_t_test  # noqa: E402

# Final epoch (2) per seed 0, 1, 2.  By hand:
#   fp32 accuracy 0.90, 0.91, 0.92: mean 0.91, sd 0.01;  paper-e5m2 0.92, 0.93, 0.94: mean 0.93, sd 0.01
#     Welch: se^2 = 0.01^2/3 + 0.01^2/3, t = 0.02 / sqrt(2e-4/3) = sqrt(6) = 2.449490,
#     df = (2v)^2 / (2 v^2 / 2) = 4 (v = 1e-4/3); with 4 degrees of freedom the t distribution has the
#     closed form F(t) = 1/2 + 3/8 u (1 - t^2 / (12 (1 + t^2/4))), u = t / sqrt(1 + t^2/4):
#     t^2 = 6 -> u = sqrt(6/2.5) = 1.549193, F - 1/2 = 0.375 * 1.549193 * 0.8 = 0.464758, p = 1 - 2 * 0.464758
#   fp32 loss 0.1, 0.2, 0.3: mean 0.2, sd 0.1;  paper-e5m2 0.2, 0.4, 0.6: mean 0.4, sd 0.2
#     Welch: se^2 = 0.01/3 + 0.04/3 = 0.05/3, t = 0.2 / sqrt(0.05/3) = sqrt(2.4) = 1.549193,
#     df = (0.05/3)^2 / ((0.01/3)^2/2 + (0.04/3)^2/2) = 25 / (1/2 + 16/2) = 50/17 = 2.941176
# Epoch 1: fp32 accuracy 0.80, 0.82, 0.84 (mean 0.82, sd 0.02).
ACC = {"fp32": [0.90, 0.91, 0.92], "paper-e5m2": [0.92, 0.93, 0.94]}
LOSS = {"fp32": [0.1, 0.2, 0.3], "paper-e5m2": [0.2, 0.4, 0.6]}
ACC1 = {"fp32": [0.80, 0.82, 0.84], "paper-e5m2": [0.81, 0.82, 0.83]}
# per seed, errors / weight-gradient underflow of one layer: medians 0.2 and 0.3
UNDERFLOW = {"errors": [0.1, 0.5, 0.2], "weight_grads": [0.3, 0.3, 0.9]}
P_ACC = 1 - 2 * 0.375 * math.sqrt(6 / 2.5) * (1 - 6 / (12 * 2.5))


def fake_seed_run(root, recipe, seed, width=8, out_name=None):
    os.makedirs(root, exist_ok=True)
    config = {"recipe": recipe, "model": "resnet18", "width": width, "dataset": "fashion-mnist", "seed": seed,
              "epochs": 2, "out": str(out_name or root), "threads": seed + 1}  # out/threads never split groups
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(root, "metrics.jsonl"), "w") as f:
        for epoch, acc in ((1, ACC1[recipe][seed]), (2, ACC[recipe][seed])):
            rec = {"epoch": epoch, "train_loss": LOSS[recipe][seed] * (3 - epoch), "train_acc": acc,
                   "test_loss": 1.0, "test_acc": acc, "images_per_s": 100.0, "skipped_steps": seed,
                   "loss_scale": 2.0 ** (10 + seed), "loss_scale_trace": [2.0 ** 9, 2.0 ** (10 + seed)]}
            if recipe != "fp32":
                rec["stats"] = {"layer1.0.conv1": {c: {"underflow": UNDERFLOW[c][seed], "overflow": 0.0}
                                                   for c in UNDERFLOW}}
            f.write(json.dumps(rec) + "\n")
    return root


@pytest.fixture
def seed_runs(tmp_path):
    return [fake_seed_run(tmp_path / r / f"seed{s}", r, s) for r in ("fp32", "paper-e5m2") for s in (0, 1, 2)]


def test_mean_sd_by_hand():
    assert mean_sd([0.90, 0.91, 0.92]) == pytest.approx((0.91, 0.01), rel=1e-12)
    assert mean_sd([1.0, 2.0, 3.0, 6.0]) == pytest.approx((3.0, math.sqrt(14 / 3)), rel=1e-15)  # (4+1+0+9)/3
    assert mean_sd([5.0]) == (5.0, None)
    with pytest.raises(ValueError, match="at least one value"):
        mean_sd([])


def test_welch_by_hand():
    acc = welch_t_test(ACC["paper-e5m2"], ACC["fp32"])
    assert acc.diff == pytest.approx(0.02, rel=1e-12)
    assert acc.t == pytest.approx(math.sqrt(6), rel=1e-12) and acc.df == pytest.approx(4, rel=1e-12)
    assert acc.p == pytest.approx(P_ACC, rel=1e-10) and P_ACC == pytest.approx(0.070484, abs=1e-6)
    loss = welch_t_test(LOSS["fp32"], LOSS["paper-e5m2"])
    assert loss.diff == pytest.approx(-0.2, rel=1e-12)
    assert loss.t == pytest.approx(-math.sqrt(2.4), rel=1e-12) and loss.df == pytest.approx(50 / 17, rel=1e-12)
    # the p value at a non-integer df against SciPy's own Welch test (another implementation of the same test)
    from scipy.stats import ttest_ind
    ref = ttest_ind(LOSS["fp32"], LOSS["paper-e5m2"], equal_var=False)
    assert loss.p == pytest.approx(ref.pvalue, rel=1e-12) and 0.2 < loss.p < 0.25
    assert welch_t_test([1.0], [1.0, 2.0]) is None           # no spread from one value
    assert welch_t_test([1.0, 1.0], [2.0, 2.0]) is None      # t undefined: both spreads zero
    assert welch_t_test([1.0, 1.0], [2.0, 3.0]).df == pytest.approx(1.0)  # one spread zero: df = n_b - 1


def test_grouping_ignores_seed_out_and_threads_but_not_width(tmp_path, seed_runs):
    wide = fake_seed_run(tmp_path / "w16" / "fp32", "fp32", 0, width=16)
    runs = [load_run(p) for p in seed_runs + [wide]]
    groups = group_runs(runs)
    assert [(g.label, g.seeds) for g in groups] == [("fp32 (width=8)", [0, 1, 2]), ("paper-e5m2 (width=8)", [0, 1, 2]),
                                                    ("fp32 (width=16)", [0])]
    assert [g.label for g in group_runs(runs[:6])] == ["fp32", "paper-e5m2"]  # nothing varies but the recipe
    with pytest.raises(ValueError, match="same configuration and seed 1"):
        group_runs(runs[:3] + [load_run(fake_seed_run(tmp_path / "copy", "fp32", 1))])


def test_grouping_ignores_the_data_fingerprint(tmp_path, seed_runs):
    # runs written before fingerprints existed have none; they must still meet the newer runs' groups
    for path in seed_runs[3:]:
        cfg = json.load(open(os.path.join(path, "config.json")))
        json.dump(dict(cfg, data_fingerprint="60000+10000x1x28x28:48b5bf7186a7e78c"),
                  open(os.path.join(path, "config.json"), "w"))
    groups = group_runs([load_run(p) for p in seed_runs])
    assert [(g.label, g.seeds) for g in groups] == [("fp32", [0, 1, 2]), ("paper-e5m2", [0, 1, 2])]
    text = open(write_report(seed_runs, tmp_path / "out")).read()
    assert "| paper-e5m2 | 0, 1, 2 | 2 | 93.00 ± 1.00 | 92.00, 93.00, 94.00 | +2.00 | +2.45 (4.0) | 0.07 |" in text


def test_report_with_seeds_by_hand(tmp_path, seed_runs):
    text = open(write_report(seed_runs, tmp_path / "out")).read()
    assert "seeds=0,1,2" in text and "width=8" in text
    # per-run table labelled with the seed; the seed tables with the hand-computed numbers
    assert "| paper-e5m2 seed 1 | 2 | 93.00% |" in text
    assert "| fp32 | 0, 1, 2 | 2 | 91.00 ± 1.00 | 90.00, 91.00, 92.00 | – | – | – |" in text
    assert "| paper-e5m2 | 0, 1, 2 | 2 | 93.00 ± 1.00 | 92.00, 93.00, 94.00 | +2.00 | +2.45 (4.0) | 0.07 |" in text
    assert "| paper-e5m2 | 0, 1, 2 | 2 | 0.4000 ± 0.2000 | 0.2000, 0.4000, 0.6000 | +0.2000 | +1.55 (2.9) | 0.22 |" in text
    assert "| fp32 | 82.00 ± 2.00 | 91.00 ± 1.00 |" in text          # accuracy per epoch
    assert "| fp32 | 0.4000 ± 0.2000 | 0.2000 ± 0.1000 |" in text    # training loss per epoch (2x at epoch 1)
    assert "Low power" in text and "3 seeds" in text and "2.78 standard errors (4 degrees of freedom)" in text
    assert "| layer1.0.conv1 | 20.000% |" in text and "| layer1.0.conv1 | 30.000% |" in text  # medians
    assert "| paper-e5m2 | 1024, 2048, 4096 | 512 – 4096 | 0, 2, 4 |" in text  # loss scale per seed
    for png in ("loss.png", "accuracy.png", "loss_scale.png", "numerics.png"):
        assert f"]({png})" in text and (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"


def test_a_group_that_stopped_early_is_compared_at_its_own_last_epoch(tmp_path, seed_runs):
    for seed in (0, 1, 2):  # paper-e5m2 stopped after epoch 1: compared with fp32's epoch 1, not its epoch 2
        path = tmp_path / "paper-e5m2" / f"seed{seed}" / "metrics.jsonl"
        path.write_text(path.read_text().splitlines()[0] + "\n")
    text = open(write_report(seed_runs, tmp_path / "out")).read()
    # epoch 1 accuracy: fp32 0.80, 0.82, 0.84 (sd 0.02); paper-e5m2 0.81, 0.82, 0.83 (sd 0.01): diff 0, t 0,
    # df = 50/17 as for the losses above (variances in the ratio 1:4)
    assert "| paper-e5m2 | 0, 1, 2 | 1 | 82.00 ± 1.00 | 81.00, 82.00, 83.00 | +0.00 | +0.00 (2.9) | 1 |" in text


def test_report_without_replicates_has_no_seed_section(tmp_path, seed_runs):
    text = open(write_report([seed_runs[0], seed_runs[3]], tmp_path / "out")).read()
    assert "Seed statistics" not in text and "| fp32 | 2 | 90.00% |" in text and "seed=0" in text


@pytest.mark.parametrize("token, key", [("NaN", "train_loss"), ("Infinity", "test_acc"), ("-Infinity", "test_loss")])
def test_non_finite_metric_is_refused_with_file_and_line(tmp_path, seed_runs, token, key):
    """``json.loads`` reads the tokens NaN/Infinity as floats, so they passed the record check
    and crashed deep in the statistics (AttributeError from statistics.stdev)."""
    metrics = os.path.join(seed_runs[4], "metrics.jsonl")
    with open(metrics) as f:
        first, second = f.read().splitlines()
    with open(metrics, "w") as f:  # a blank line first: the message counts file lines, not records
        f.write(first + "\n\n" + json.dumps({**json.loads(second), key: 0.5}).replace("0.5", token, 1) + "\n")
    assert token in open(metrics).read().splitlines()[2]
    with pytest.raises(ValueError, match=rf"{metrics}:3 is not an epoch record of fp8emu train: "
                                         rf"{key} is {token} \(the metrics must be finite numbers\)"):
        write_report(seed_runs, tmp_path / "report")
    with pytest.raises(ValueError, match=rf"{metrics}:3 "):
        group_runs([load_run(d) for d in seed_runs])
    with pytest.raises(ValueError, match=rf"{metrics}:3 "):  # one run alone: no seed statistics, same check
        write_report([seed_runs[4]], tmp_path / "alone")
