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
    assert "| paper-e5m2 | layer1.0.conv1 | 25.000% | 0.000% | 0.000% | 50.000% | 0.100% | 0.000% |" in text
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


@pytest.fixture
def figures(monkeypatch):
    """Every figure the report saves, kept open for inspection."""
    from matplotlib.figure import Figure
    saved, real = {}, Figure.savefig

    def savefig(self, path, *args, **kw):
        saved[os.path.basename(str(path))] = self
        return real(self, path, *args, **kw)
    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def test_plots_are_readable(tmp_path, figures):
    """Integer epoch ticks, legends beside the data, titles naming model/width/data set, loss-scale
    lines told apart, log axes for the fractions, and "no overflow" instead of an empty panel."""
    a = fake_run(tmp_path / "a", "paper-e5m2", [0.4, 0.5, 0.6, 0.65, 0.7])
    b = fake_run(tmp_path / "b", "paper-e5m2-rne", [0.4, 0.5, 0.6, 0.65, 0.7])  # the same scale trace
    write_report([a, b], tmp_path / "out")
    for name in ("loss.png", "accuracy.png", "loss_scale.png"):
        fig = figures[name]
        ax = fig.axes[0]
        fig.canvas.draw()
        assert "ResNet-18 width 8, fashion-mnist" in ax.get_title()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)
        legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= frame.x1, f"{name}: the legend overlaps the axes"
    lines = figures["loss_scale.png"].axes[0].get_lines()
    assert len({(str(line.get_linestyle()), line.get_linewidth()) for line in lines}) == 2
    numerics = figures["numerics.png"]
    assert "ResNet-18 width 8, fashion-mnist" in numerics.texts[0].get_text() or \
        "ResNet-18 width 8, fashion-mnist" in numerics._suptitle.get_text()
    panels = {ax.get_title(): ax for ax in numerics.axes}
    assert panels["errors: flushed"].get_xscale() == "log"  # 25% next to 0: a log axis
    assert panels["weight grads: overflow"].get_xscale() == "log"  # 0.1%
    empty = panels["errors: overflow"]
    assert [t.get_text() for t in empty.texts] == ["no overflow"] and list(empty.get_xticks()) == []


def test_compile_time_on_its_own_line_and_new_stat_names(tmp_path):
    run = fake_run(tmp_path / "r", "mxfp8", [0.5, 0.6], stats=False)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lines[0]["first_step_s"] = 23.5
    lines[1]["stats"] = {"fc": {"errors": {"flushed": 0.125, "overflow": 0.0, "saturated": 0.25, "snr_db": 20.0}}}
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    text = open(write_report([run], tmp_path / "out")).read()
    assert "\nFirst step (kernel compilation included): mxfp8 23.5 s.\n" in text
    assert "| mxfp8 | fc | 12.500% | 0.000% | 25.000% | 0.000% | 0.000% | 0.000% |" in text


@pytest.mark.parametrize("metrics, message", [
    ('{"epoch": 1}\n{"epoch": 2}\n', r"metrics.jsonl:1 is not an epoch record of fp8emu train: it lacks train_loss"),
    ('[1, 2]\n{"epoch": 2}\n', r"metrics.jsonl:1 is not an epoch record of fp8emu train: a JSON list"),
    ('\n{"epoch": 1, "train_loss": 1, "train_acc": 0.5, "test_loss": 1, "test_acc": "high", "images_per_s": 1}\n',
     r"metrics.jsonl:2 is not an epoch record .*test_acc must be numbers"),
])
def test_malformed_metrics_lines_are_precise(tmp_path, capsys, metrics, message):
    from fp8emu.cli import main
    run = fake_run(tmp_path / "r", "fp32", [0.5])
    (run / "metrics.jsonl").write_text(metrics)
    with pytest.raises(ValueError, match=message):
        load_run(run)
    with pytest.raises(SystemExit) as info:
        main(["report", str(run), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and "is not an epoch record" in err


@pytest.mark.parametrize("config, message", [
    ("[1]", r"config.json holds a JSON list, not the object of settings"),
    ("{", r"config.json:1 is not valid JSON"),
])
def test_malformed_config_json_names_the_file(tmp_path, config, message):
    run = fake_run(tmp_path / "r", "fp32", [0.5])
    (run / "config.json").write_text(config)
    with pytest.raises(ValueError, match=message):
        load_run(run)


def test_report_out_that_is_a_file(tmp_path, capsys):
    from fp8emu.cli import main
    run = fake_run(tmp_path / "r", "fp32", [0.5])
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit) as info:
        main(["report", str(run), "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "is a file, not a directory" in err and "Traceback" not in err


def test_a_run_without_epochs_does_not_claim_old_metrics(tmp_path):
    pytest.importorskip("matplotlib")
    done = fake_run(tmp_path / "done", "fp32", [0.5])
    with open(done / "metrics.jsonl") as f:
        rec = json.loads(f.read())
    (done / "metrics.jsonl").write_text(json.dumps(rec | {"first_step_s": 2.0}) + "\n")
    empty = fake_run(tmp_path / "empty", "paper-e5m2", [])
    text = open(write_report([done, empty], tmp_path / "out")).read()
    assert "leaving out the first step of each run" in text and "written before fp8emu timed it apart" not in text
