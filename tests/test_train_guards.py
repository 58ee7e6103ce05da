"""Training stops on divergence (non-finite loss or weights) with one line and its last good
checkpoint; malformed or non-finite checkpoints are refused with a CheckpointError, never a
traceback; metrics.jsonl is strict JSON."""

import copy
import json
import os

import numpy as np
import pytest

from fp8emu import train as train_mod
from fp8emu.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fp8emu.cli import main
from test_train_loop import data, one_kernel_thread, tiny_config  # noqa: F401  (fixtures)

pytest.importorskip("fp8emu.recipes")


def _strict_json(line):
    def refuse(token):
        raise AssertionError(f"non-JSON token {token} in metrics.jsonl")
    return json.loads(line, parse_constant=refuse)


def _nan_loss_at(monkeypatch, step_no):
    """Make the ``step_no``-th training step (1-based) report a NaN forward loss."""
    real, calls = train_mod.train_step, []

    def step(*args, **kw):
        calls.append(1)
        loss, correct, skipped = real(*args, **kw)
        return (float("nan") if len(calls) == step_no else loss), correct, skipped
    monkeypatch.setattr(train_mod, "train_step", step)


@pytest.mark.parametrize("recipe", ["fp32", "paper-e5m2"])
def test_a_diverging_run_exits_1_and_writes_no_checkpoint(tmp_path, data, capsys, recipe):  # noqa: F811
    out = tmp_path / "r"
    status = main(["train", "--recipe", recipe, "--lr", "1e30", "--data", str(data), "--width", "2",
                   "--limit-train", "12", "--limit-test", "6", "--batch-size", "4", "--epochs", "1",
                   "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and "fp8emu train: error: training diverged in epoch 1" in err, err
    assert "no checkpoint of this run was written" in err and "lower --lr (now 1e+30)" in err
    assert "Traceback" not in err and not (out / "checkpoint.npz").exists()


def test_divergence_keeps_the_last_finished_epoch(tmp_path, data, monkeypatch):  # noqa: F811
    _nan_loss_at(monkeypatch, 5)  # epoch 2 (3 steps per epoch), batch 2
    with pytest.raises(train_mod.TrainingDiverged, match=r"epoch 2: the loss of batch 2 is nan \(before loss "
                       r"scaling\)\. .*checkpoint.npz keeps the last finished epoch \(1\)"):
        train_mod.train(tiny_config(data, tmp_path / "r"), progress=False)
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint.npz")
    assert (ckpt["epoch"], ckpt["batch"]) == (1, 0)
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [_strict_json(line)["epoch"] for line in lines] == [1]


def test_nonfinite_weights_are_never_checkpointed(tmp_path, data, monkeypatch):  # noqa: F811
    """An update that writes Inf into a weight with a finite loss (a huge step): caught at the
    epoch's end, before the checkpoint."""
    real = train_mod.train_step

    def step(parts, *args, **kw):
        result = real(parts, *args, **kw)
        parts.model.fc.weight.data[0, 0] = np.inf
        return result
    monkeypatch.setattr(train_mod, "train_step", step)
    with pytest.raises(train_mod.TrainingDiverged, match="training diverged in epoch 1: .*(fc.weight holds NaN or "
                       "Inf|the loss of batch 2 is|the test loss is)"):
        train_mod.train(tiny_config(data, tmp_path / "r", epochs=1), progress=False)
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def test_metrics_are_strict_json(tmp_path):
    train_mod._write_metrics(str(tmp_path), [{"epoch": 1, "train_loss": float("nan"), "trace": [1.0, float("inf")],
                                              "stats": {"a": {"snr_db": float("-inf")}}}])
    rec = _strict_json((tmp_path / "metrics.jsonl").read_text())
    assert rec == {"epoch": 1, "train_loss": None, "trace": [1.0, None], "stats": {"a": {"snr_db": None}}}


# ---- malformed checkpoints ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, data):  # noqa: F811
    out = tmp_path_factory.mktemp("base") / "r"
    train_mod.train(tiny_config(data, out, epochs=2, stats_every=0), progress=False)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    ckpt["epoch"], ckpt["batch"], ckpt["step"], ckpt["history"] = 1, 0, 3, ckpt["history"][:1]
    return ckpt


def _first(ckpt):
    return next(iter(ckpt["state"]["model"]))


def _set(path, value):
    def edit(ckpt):
        node = ckpt
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(ckpt) if callable(value) else value
    return edit


def _pop(path):
    def edit(ckpt):
        node = ckpt
        for key in path[:-1]:
            node = node[key]
        del node[path[-1] if not callable(path[-1]) else path[-1](ckpt)]
    return edit


def _model_array(change):
    def edit(ckpt):
        k = _first(ckpt)
        ckpt["state"]["model"][k] = change(ckpt["state"]["model"][k])
    return edit


def _nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


@pytest.mark.parametrize("edit, message", [
    (_pop(["state"]), "it has no 'state' entry"),
    (_pop(["config"]), "it has no 'config' entry"),
    (_set(["config"], "hello"), "its 'config' entry is a str, expected a dict"),
    (_set(["batch"], 999), r"its position \(epoch 1, batch 999, step 3, 1 finished epochs\) does not fit 2 epochs "
                           "of 3 batches"),
    (_set(["epoch"], 7), "its position"),
    (_model_array(lambda a: a[:1]), r"model/conv1.weight is float32\[1, 1, 3, 3\], this run's model has float32"),
    (_model_array(lambda a: a.astype(np.float64)), "model/conv1.weight is float64"),
    (_pop(["state", "model", _first]), r"model lacks \['conv1.weight'\]"),
    (_set(["state", "optimizer"], {}), "optimizer lacks"),
    (_set(["state", "optimizer", "state"], [{}]), "its state does not fit this run .*optimizer state has 1 parameters"),
    (_set(["state", "scaler", "bogus"], 1), r"scaler has unknown keys \['bogus'\]"),
    (_set(["state", "scaler", "scale_value"], "big"), "scaler/scale_value is 'big', expected a number"),
    (_model_array(_nan), "model/conv1.weight holds NaN or Inf; the run that wrote it diverged"),
])
def test_malformed_checkpoints_are_a_checkpoint_error(tmp_path, data, one_epoch, capsys, edit, message):  # noqa: F811
    ckpt = copy.deepcopy(one_epoch)
    edit(ckpt)
    out = tmp_path / "r"
    os.makedirs(out)
    save_checkpoint(out / "checkpoint.npz", ckpt)
    with pytest.raises(CheckpointError, match=message) as info:
        train_mod.train(tiny_config(data, out), resume=True, progress=False)
    assert "--overwrite" in str(info.value) and "\n" not in str(info.value)


def test_the_untouched_checkpoint_resumes(tmp_path, data, one_epoch):  # noqa: F811
    out = tmp_path / "r"
    os.makedirs(out)
    save_checkpoint(out / "checkpoint.npz", copy.deepcopy(one_epoch))
    result = train_mod.train(tiny_config(data, out, stats_every=0), resume=True, progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2]


def test_a_damaged_checkpoint_points_to_overwrite(tmp_path, data, capsys):  # noqa: F811
    """--resume on a damaged file used to say 'start without --resume', which then says 'use --resume'."""
    out = tmp_path / "r"
    os.makedirs(out)
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    args = ["train", "--data", str(data), "--width", "2", "--limit-train", "12", "--limit-test", "6",
            "--batch-size", "4", "--no-progress", "--out", str(out)]
    assert main(args + ["--resume"]) == 1
    err = capsys.readouterr().err
    assert "is damaged or not an fp8emu checkpoint" in err and "start the run again with --overwrite" in err, err
    assert "start without --resume" not in err
