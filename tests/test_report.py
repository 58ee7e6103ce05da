"""The report: tables and plots from saved metrics only."""

import json
import os

import pytest

pytest.importorskip("matplotlib")

from fp8emu.report import load_run, write_report  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(root, recipe, accs, stats=True, scale=True):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump({"recipe": recipe, "model": "resnet18", "width": 8, "dataset": "fashion-mnist", "seed": 0}, f)
    with open(os.path.join(root, "metrics.jsonl"), "w") as f:
        for i, acc in enumerate(accs, 1):
            rec = {"epoch": i, "train_loss": 1.0 / i, "train_acc": acc - 0.01, "test_loss": 1.1 / i, "test_acc": acc,
                   "images_per_s": 100.0 + i, "skipped_steps": 1}
            if scale:
                rec |= {"loss_scale": 2.0 ** (10 + i), "loss_scale_trace": [2.0 ** (9 + i), 2.0 ** (10 + i)]}
            if stats:
                rec["stats"] = {"layer1.0.conv1": {"errors": {"underflow": 0.25, "overflow": 0.0},
                                                   "weight_grads": {"underflow": 0.5, "overflow": 0.001}},
                                "fc": {"errors": {"underflow": 0.0, "overflow": 0.0}}}
            f.write(json.dumps(rec) + "\n")
    return root


def test_report_has_table_and_plots(tmp_path):
    a = fake_run(tmp_path / "fp32", "fp32", [0.5, 0.7, 0.6], stats=False, scale=False)
    b = fake_run(tmp_path / "e5m2", "paper-e5m2", [0.4, 0.65])
    path = write_report([a, b], tmp_path / "out", notes="hello notes")
    text = open(path).read()
    assert "| fp32 | 3 | 60.00% | 70.00% (2) | 0.3333 | 102.0 | 3 | – |" in text
    assert "| paper-e5m2 | 2 | 65.00% | 65.00% (2) | 0.5000 | 101.5 | 2 | 4096 |" in text
    assert "| paper-e5m2 | layer1.0.conv1 | 25.000% | 0.000% | 50.000% | 0.100% |" in text
    assert "hello notes" in text and "width=8" in text
    for png in ("loss.png", "accuracy.png", "loss_scale.png", "numerics.png"):
        assert f"]({png})" in text
        assert (tmp_path / "out" / png).read_bytes()[:8] == PNG


def test_report_without_scale_or_stats_skips_those_plots(tmp_path):
    a = fake_run(tmp_path / "fp32", "fp32", [0.5], stats=False, scale=False)
    write_report([a], tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["accuracy.png", "loss.png", "report.md"]


def test_torn_last_line_is_ignored_but_others_raise(tmp_path):
    run = fake_run(tmp_path / "r", "fp32", [0.5, 0.6])
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_lo')
    assert [e["epoch"] for e in load_run(run).epochs] == [1, 2]
    with open(run / "metrics.jsonl", "a") as f:
        f.write('\n{"epoch": 4}\n')
    with pytest.raises(ValueError, match="metrics.jsonl:3 is not valid JSON"):
        load_run(run)


def test_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        write_report([tmp_path], tmp_path / "out")
    with pytest.raises(ValueError, match="at least one"):
        write_report([], tmp_path / "out")
