"""The command line: argument errors exit 2 with a message, data errors exit 1 in one line,
subcommand registration, ``python -m fp8emu``."""

import argparse
import subprocess
import sys
import types

import pytest

from fp8emu import cli


def run_main(capsys, *argv):
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("argv, expect", [
    (["train", "--epochs", "0", "--out", "x"], "--epochs: expected a positive integer, got 0"),
    (["train", "--epochs", "two", "--out", "x"], "expected a positive integer, got 'two'"),
    (["train", "--lr", "-0.1", "--out", "x"], "--lr: expected a finite positive number"),
    (["train", "--lr", "nan", "--out", "x"], "--lr: expected a finite positive number"),
    (["train", "--momentum", "1.5", "--out", "x"], "--momentum: expected a number in [0, 1)"),
    (["train", "--dataset", "imagenet", "--out", "x"], "invalid choice: 'imagenet'"),
    (["train", "--model", "vgg", "--out", "x"], "invalid choice: 'vgg'"),
    (["train", "--epochs", "1"], "the following arguments are required: --out"),
    (["train", "--preset", "huge", "--out", "x"], "invalid choice: 'huge'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
    (["compare", "--recipes", "fp32,fp32", "--out", "x"], "--recipes must list distinct recipe names"),
    (["compare", "--recipes", ",", "--out", "x"], "--recipes must list distinct recipe names"),
    (["compare", "--recipes", "fp32"], "--out DIR is required"),
    (["report"], "the following arguments are required: RUN_DIR"),
    (["compare", "--seeds", "0,1,1", "--out", "x"], "--seeds: seeds must be distinct, got '0,1,1'"),
    (["compare", "--seeds", "2-1", "--out", "x"], "ranges LOW-HIGH with LOW <= HIGH, got '2-1'"),
    (["compare", "--seeds", "0,x", "--out", "x"], "expected seeds like 0,1,2 or 0-2, got '0,x'"),
    (["compare", "--seeds", "0-2", "--seed", "1", "--out", "x"], "give --seed or --seeds, not both"),
])
def test_bad_arguments_exit_2(capsys, argv, expect):
    status, out, err = run_main(capsys, *argv)
    assert status == 2
    assert expect in err and "usage: fp8emu" in err


@pytest.mark.parametrize("argv, expect", [
    (["--recipe", ""], "--recipe: empty recipe name; name one of fp32, paper-e5m2"),  # not the default recipe
    (["--recipe", " "], "--recipe: empty recipe name"),
    (["--schedule", "step", "--warmup-epochs", "1", "--epochs", "3"],
     "--warmup-epochs 1 needs --schedule cosine: the step schedule has no warm-up"),  # was ignored
    (["--schedule", "constant", "--warmup-epochs", "1", "--epochs", "3"],
     "--warmup-epochs 1 needs --schedule cosine: the constant schedule has no warm-up"),  # was a traceback
    (["--warmup-epochs", "2", "--epochs", "2"], "--warmup-epochs (2) must be < --epochs (2)"),
])
def test_train_refuses_before_creating_out(capsys, tmp_path, argv, expect):
    # no data: without the check a run would fail later (status 1), not train the full data set
    status, _, err = run_main(capsys, "train", *argv, "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert status == 2 and expect in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_train_api_refuses_warmup_without_cosine_before_writing(tmp_path):
    from fp8emu.cli import DEFAULTS
    from fp8emu.train import RunError, train
    config = {**DEFAULTS, "schedule": "step", "warmup_epochs": 1, "epochs": 3, "data": str(tmp_path),
              "out": str(tmp_path / "run")}
    with pytest.raises(RunError, match="--warmup-epochs 1 needs --schedule cosine"):
        train(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_report_of_a_non_run_exits_2(capsys, tmp_path):
    status, _, err = run_main(capsys, "report", str(tmp_path), "--out", str(tmp_path / "r"))
    assert status == 2 and "no metrics.jsonl" in err and "usage: fp8emu report" in err


def test_report_command_writes_report(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from test_report import fake_run
    runs = [str(fake_run(tmp_path / "cmp" / r, r, [0.5, 0.6])) for r in ("fp32", "paper-e5m2")]
    status, out, _ = run_main(capsys, "report", *runs)
    assert status == 0 and f"written to {tmp_path / 'cmp' / 'report.md'}" in out
    assert "| paper-e5m2 | 2 |" in (tmp_path / "cmp" / "report.md").read_text()


def test_preset_then_command_line_then_defaults():
    parser = cli.build_parser()
    args = parser.parse_args(["compare", "--preset", "quick", "--epochs", "7"])
    opts = cli._resolve(args)
    assert opts["epochs"] == 7 and opts["width"] == cli.PRESETS["quick"]["width"]
    assert opts["momentum"] == cli.DEFAULTS["momentum"]
    assert cli._resolve(parser.parse_args(["train", "--out", "x"]))["width"] == cli.DEFAULTS["width"]


def test_registered_subcommand_module(capsys, monkeypatch):
    mod = types.ModuleType("fake_fp8emu_plugin")

    def register(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--name", required=True)

        def handler(args):
            if args.name == "bad":
                raise argparse.ArgumentTypeError("--name must not be bad")
            print(f"hello {args.name}")
            return 3
        p.set_defaults(func=handler, _parser=p)
    mod.register = register
    monkeypatch.setitem(sys.modules, "fake_fp8emu_plugin", mod)
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ["fake_fp8emu_plugin"])
    assert run_main(capsys, "hello", "--name", "you")[:2] == (3, "hello you\n")
    status, _, err = run_main(capsys, "hello", "--name", "bad")
    assert status == 2 and "usage: fp8emu hello" in err and "--name must not be bad" in err
    assert "hello" in run_main(capsys, "--help")[1]


def test_python_dash_m_version():
    res = subprocess.run([sys.executable, "-m", "fp8emu", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("fp8emu ")


def test_train_help_lists_recipes_defaults_and_only_the_preset_keys_train_uses(capsys):
    from fp8emu.recipes import RECIPES
    for command, hidden, shown in (("train", "recipes=", "width=8"), ("compare", "recipe=paper", "recipes=fp32")):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert hidden not in text and shown in text
        assert all(name in text for name in RECIPES)
        assert f"(default {cli.DEFAULTS['recipes' if command == 'compare' else 'recipe']})" in text
        assert "first training step compiles" in text and "(default 0.0005)" in text
