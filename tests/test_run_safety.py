"""A run directory is never lost by accident: an earlier run is refused without --resume or
--overwrite, and --overwrite keeps the earlier files until the new run's first checkpoint;
resuming on other data is refused; unusable --out and impossible batch sizes are one-line
errors; orphan temporary files of a killed writer are cleaned up."""

import json
import os

import numpy as np
import pytest

from fp8emu import train as train_mod
from fp8emu.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fp8emu.cli import main
from test_data import write_mnist_like
from test_train_loop import data, interrupt_after, one_kernel_thread, tiny_config  # noqa: F401 (fixtures)

pytest.importorskip("fp8emu.recipes")


def run_files(out):
    return {name: (out / name).read_bytes() for name in train_mod.RUN_FILES}


def cli(capsys, *argv):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_into_an_earlier_run_is_refused_and_touches_nothing(tmp_path, data, capsys):
    out = tmp_path / "r"
    train_mod.train(tiny_config(data, out, "fp32", epochs=1), progress=False)
    before = run_files(out)
    with pytest.raises(train_mod.RunError, match="holds an earlier run .*--resume.*--overwrite"):
        train_mod.train(tiny_config(data, out, "fp32", epochs=1), progress=False)
    assert run_files(out) == before
    status, _, err = cli(capsys, "train", "--recipe", "fp32", "--data", data, "--limit-train", 12, "--limit-test", 6,
                         "--batch-size", 4, "--width", 2, "--no-progress", "--out", out)
    assert status == 1 and "holds an earlier run (checkpoint.npz and metrics.jsonl)" in err and err.count("\n") == 1
    assert run_files(out) == before


def test_overwrite_keeps_the_earlier_run_until_the_first_checkpoint(tmp_path, data, monkeypatch):
    out = tmp_path / "r"
    train_mod.train(tiny_config(data, out, "fp32", epochs=1), progress=False)
    before = run_files(out)

    def killed(*args, **kw):  # the new run dies in its first step (a kill, not a Ctrl-C)
        raise SystemExit("killed")
    monkeypatch.setattr(train_mod, "train_step", killed)
    with pytest.raises(SystemExit):
        train_mod.train(tiny_config(data, out, "fp32", epochs=1, seed=9), overwrite=True, progress=False)
    assert run_files(out) == before
    monkeypatch.undo()
    interrupt_after(monkeypatch, 1)  # Ctrl-C: the first checkpoint replaces the earlier run
    result = train_mod.train(tiny_config(data, out, "fp32", epochs=1, seed=9), overwrite=True, progress=False)
    assert result.interrupted
    assert load_checkpoint(out / "checkpoint.npz")["config"]["seed"] == 9
    assert json.loads((out / "config.json").read_text())["seed"] == 9
    assert (out / "metrics.jsonl").read_text() == ""


def test_resume_without_checkpoint_but_with_metrics_is_refused(tmp_path, data):
    out = tmp_path / "r"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(train_mod.RunError, match="no checkpoint to resume from"):
        train_mod.train(tiny_config(data, out, "fp32"), resume=True, progress=False)
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


def test_resume_on_other_data_is_refused(tmp_path, data, monkeypatch):
    other = tmp_path / "other"
    write_mnist_like(other, n_train=12, n_test=6, size=8, seed=1)  # same sizes, other content
    interrupt_after(monkeypatch, 1)
    train_mod.train(tiny_config(data, tmp_path / "r", "fp32"), progress=False)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="data_fingerprint: checkpoint has '12\\+6x1x8x8:"):
        train_mod.train(tiny_config(other, tmp_path / "r", "fp32"), resume=True, progress=False)
    # The same files elsewhere (another machine) resume fine: the fingerprint ignores the path.
    moved = tmp_path / "moved"
    write_mnist_like(moved, n_train=12, n_test=6, size=8)
    result = train_mod.train(tiny_config(moved, tmp_path / "r", "fp32"), resume=True, progress=False)
    assert len(result.history) == 2


def test_checkpoint_without_fingerprint_resumes_with_a_warning(tmp_path, data, monkeypatch, capsys):
    out = tmp_path / "r"
    interrupt_after(monkeypatch, 1)
    train_mod.train(tiny_config(data, out, "fp32"), progress=False)
    monkeypatch.undo()
    ckpt = load_checkpoint(out / "checkpoint.npz")
    del ckpt["config"]["data_fingerprint"]  # as written before fingerprints existed
    save_checkpoint(out / "checkpoint.npz", ckpt)
    capsys.readouterr()
    result = train_mod.train(tiny_config(data, out, "fp32"), resume=True, progress=False)
    assert len(result.history) == 2
    err = capsys.readouterr().err
    assert "warning" in err and "before checkpoints recorded a fingerprint of the data" in err


def test_fingerprint_depends_on_content_not_path(tmp_path):
    from fp8emu.data import load_dataset
    write_mnist_like(tmp_path / "a", n_train=12, n_test=6, size=8)
    write_mnist_like(tmp_path / "b", n_train=12, n_test=6, size=8, gz=False)
    a = load_dataset("fashion-mnist", tmp_path / "a")
    assert a.fingerprint() == load_dataset("fashion-mnist", tmp_path / "b").fingerprint()
    assert a.fingerprint() != a.limit(11).fingerprint()
    labels = a.train_labels.copy()
    labels[5] = (labels[5] + 1) % 10
    changed = type(a)(a.name, a.train_images, labels, a.test_images, a.test_labels, a.mean, a.std, a.flip, a.pad)
    assert changed.fingerprint() != a.fingerprint()


def test_batch_size_larger_than_the_data_is_one_line(tmp_path, data, capsys):
    status, _, err = cli(capsys, "train", "--data", data, "--limit-train", 8, "--batch-size", 64,
                         "--out", tmp_path / "r")
    assert status == 1 and err.count("\n") == 1
    assert "--batch-size 64 is larger than the 8 training images (--limit-train)" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value, expect", [("-1", "expected a finite number >= 0, got -1"),
                                           ("nan", "expected a finite number >= 0, got nan"),
                                           ("inf", "expected a finite number >= 0, got inf"),
                                           ("x", "expected a number >= 0, got 'x'")])
def test_weight_decay_is_validated(capsys, value, expect):
    status, _, err = cli(capsys, "train", "--weight-decay", value, "--out", "x")
    assert status == 2 and f"--weight-decay: {expect}" in err


@pytest.mark.parametrize("where", ["file", "under_file", "unwritable"])
def test_unusable_out_is_one_line(tmp_path, data, capsys, monkeypatch, where):
    (tmp_path / "f").write_text("not a directory")
    out = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "run", "unwritable": tmp_path / "ro"}[where]
    if where == "unwritable":
        out.mkdir()
        import tempfile

        def refuse(*args, **kw):  # root may write anywhere: stand in for a read-only directory
            raise PermissionError(13, "Permission denied", str(out))
        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    status, _, err = cli(capsys, "train", "--recipe", "fp32", "--data", data, "--limit-train", 8, "--batch-size", 4,
                         "--width", 2, "--no-progress", "--out", out)
    assert status == 1 and err.count("\n") == 1, err
    expect = {"file": "is a file, not a directory", "under_file": "Not a directory",
              "unwritable": "Permission denied"}[where]
    assert expect in err and str(out) in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_out_directory_is_one_line(tmp_path, data, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        status, _, err = cli(capsys, "train", "--recipe", "fp32", "--data", data, "--limit-train", 8,
                             "--batch-size", 4, "--width", 2, "--no-progress", "--out", out)
    finally:
        out.chmod(0o700)
    assert status == 1 and "Permission denied" in err


def test_orphan_temporaries_are_removed(tmp_path, data):
    out = tmp_path / "r"
    out.mkdir()
    orphans = [out / ".checkpoint.npz.abc123.tmp", out / "metrics.jsonl.tmp", out / "config.json.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"torn by a kill")
    keep = out / "notes.tmp"
    keep.write_text("mine")
    train_mod.train(tiny_config(data, out, "fp32", epochs=1), progress=False)
    assert not any(o.exists() for o in orphans) and keep.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.tmp", *train_mod.RUN_FILES])
