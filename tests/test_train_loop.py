"""The training loop: interrupted + resumed runs equal uninterrupted ones bit for bit; compare writes
a report; data and checkpoint errors are one line."""

import json
import os
import signal

import numpy as np
import pytest

from fp8emu import train as train_mod
from fp8emu.checkpoint import CheckpointError, load_checkpoint
from test_data import write_mnist_like

pytest.importorskip("fp8emu.recipes")

TIMING = ("images_per_s", "data_time_frac", "epoch_time_s", "first_step_s")


def tiny_config(data, out, recipe="paper-e5m2", **kw):
    config = {"model": "resnet18", "width": 2, "recipe": recipe, "dataset": "fashion-mnist", "data": str(data),
              "limit_train": 12, "limit_test": 6, "augment": True, "epochs": 2, "batch_size": 4, "eval_batch_size": 6,
              "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 0,
              "label_smoothing": 0.0, "seed": 3, "threads": None, "stats_every": 2, "out": str(out)}
    return config | kw


@pytest.fixture(autouse=True, scope="module")
def one_kernel_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine Numba's thread hand-offs
    made these tests ~14x slower (38 s vs 2.7 s for one resume test)."""
    import numba
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    write_mnist_like(root, n_train=12, n_test=6, size=8)
    return root


def interrupt_after(monkeypatch, n_steps):
    """Deliver a real SIGINT during step ``n_steps`` (the loop must finish the step first)."""
    real, calls = train_mod.train_step, []

    def step(*args, **kw):
        calls.append(1)
        if len(calls) == n_steps:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kw)
    monkeypatch.setattr(train_mod, "train_step", step)
    return calls


def without_timing(history):
    """The records minus wall-clock fields, as JSON text (so NaN equals NaN: the test is about resuming)."""
    return json.dumps([{k: v for k, v in rec.items() if k not in TIMING} for rec in history])


def final_state(out):
    return load_checkpoint(os.path.join(out, "checkpoint.npz"))["state"]


def assert_trees_equal(a, b, where="state"):
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_trees_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_trees_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray | np.generic):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    else:
        assert a == b, where


@pytest.mark.parametrize("recipe, stop_at", [("fp32", 2), ("paper-e5m2", 2), ("paper-e5m2", 3)])  # 3: end of epoch 1
def test_resume_is_bit_exact(tmp_path, data, monkeypatch, recipe, stop_at):
    full = train_mod.train(tiny_config(data, tmp_path / "full", recipe), progress=False)
    assert not full.interrupted and len(full.history) == 2

    calls = interrupt_after(monkeypatch, stop_at)
    part = train_mod.train(tiny_config(data, tmp_path / "part", recipe), progress=False)
    assert part.interrupted and len(calls) == stop_at
    ckpt = load_checkpoint(tmp_path / "part" / "checkpoint.npz")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, stop_at, stop_at)
    monkeypatch.undo()
    resumed = train_mod.train(tiny_config(data, tmp_path / "part", recipe), resume=True, progress=False)
    assert not resumed.interrupted

    assert without_timing(resumed.history) == without_timing(full.history)
    assert_trees_equal(final_state(tmp_path / "part"), final_state(tmp_path / "full"))
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_training_changes_weights_and_logs_scale(tmp_path, data, capsys):
    result = train_mod.train(tiny_config(data, tmp_path / "r", epochs=1), progress=True)  # tqdm if installed
    rec = result.history[0]
    assert len(rec["loss_scale_trace"]) == 3 and rec["loss_scale"] == rec["loss_scale_trace"][-1]
    assert 0 <= rec["test_acc"] <= 1 and np.isfinite(rec["train_loss"]) and np.isfinite(rec["test_loss"])
    assert rec["stats"], "paper-e5m2 quantizes: statistics of some layer are expected"
    assert all(0 <= v["flushed"] <= 1 for per in rec["stats"].values() for v in per.values())
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["recipe"] == "paper-e5m2"
    assert "epoch 1/1: train loss" in capsys.readouterr().out


def test_resume_with_other_config_is_refused(tmp_path, data, monkeypatch):
    interrupt_after(monkeypatch, 1)
    train_mod.train(tiny_config(data, tmp_path / "r"), progress=False)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="width: checkpoint has 2, this run 4"):
        train_mod.train(tiny_config(data, tmp_path / "r", width=4), resume=True, progress=False)


def test_resume_of_finished_run_does_nothing(tmp_path, data):
    first = train_mod.train(tiny_config(data, tmp_path / "r", epochs=1), progress=False)
    again = train_mod.train(tiny_config(data, tmp_path / "r", epochs=1), resume=True, progress=False)
    assert without_timing(again.history) == without_timing(first.history)


def test_compare_writes_report_and_plots(tmp_path, data, capsys):
    pytest.importorskip("matplotlib")
    from fp8emu.cli import main
    out = tmp_path / "cmp"
    status = main(["compare", "--recipes", "fp32,paper-e5m2", "--data", str(data), "--limit-train", "8",
                   "--limit-test", "4", "--batch-size", "4", "--width", "2", "--epochs", "2", "--seed", "1",
                   "--stats-every", "1", "--no-progress", "--out", str(out)])
    assert status == 0
    assert f"report written to {out / 'report.md'}" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "| fp32 | 2 |" in text and "| paper-e5m2 | 2 |" in text and "errors flushed" in text
    for png in ("loss.png", "accuracy.png", "loss_scale.png", "numerics.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    fp32 = [json.loads(line) for line in (out / "fp32" / "metrics.jsonl").read_text().splitlines()]
    assert len(fp32) == 2 and fp32[0]["stats"] == {}  # fp32 quantizes nothing


def test_compare_jobs_runs_recipes_in_parallel_with_the_same_results(tmp_path, data, capsys):
    """``compare --jobs 2`` trains each recipe as a task on a 2-worker Dask cluster (fp8emu sweep's path); the
    metrics (minus wall-clock fields) and final weights equal those of the one-after-another compare."""
    from fp8emu.cli import main
    common = ["--recipes", "fp32,paper-e5m2", "--data", str(data), "--limit-train", "8", "--limit-test", "4",
              "--batch-size", "4", "--width", "2", "--epochs", "1", "--seed", "1", "--threads", "1", "--no-progress"]
    assert main(["compare", *common, "--out", str(tmp_path / "seq")]) == 0
    assert main(["compare", *common, "--jobs", "2", "--out", str(tmp_path / "par")]) == 0
    out = capsys.readouterr().out
    assert "paper-e5m2 done, test accuracy" in out and (tmp_path / "par" / "report.md").exists()
    for recipe in ("fp32", "paper-e5m2"):
        seq, par = (tmp_path / d / recipe for d in ("seq", "par"))
        lines = [[json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()] for d in (seq, par)]
        assert without_timing(lines[0]) == without_timing(lines[1])
        assert_trees_equal(final_state(seq), final_state(par))
    # The same command again: refused like train (no --resume/--overwrite); with --resume every run is skipped.
    with pytest.raises(SystemExit):
        main(["compare", *common, "--jobs", "2", "--out", str(tmp_path / "par")])
    assert "holds an earlier run" in capsys.readouterr().err
    assert main(["compare", *common, "--jobs", "2", "--resume", "--out", str(tmp_path / "par")]) == 0
    assert capsys.readouterr().out.count("is finished; skipped") == 2


def test_compare_seeds_trains_one_run_per_recipe_and_seed(tmp_path, data, capsys):
    """``compare --seeds 0-1`` writes OUT/RECIPE/seedN with that seed, and the report the seed statistics;
    the seed-1 run equals a plain ``train --seed 1``."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("scipy")
    from fp8emu.cli import main
    common = ["--data", str(data), "--limit-train", "8", "--limit-test", "4", "--batch-size", "4", "--width", "2",
              "--epochs", "1", "--threads", "1", "--no-progress"]
    out = tmp_path / "cmp"
    assert main(["compare", "--recipes", "fp32,paper-e5m2", "--seeds", "0-1", *common, "--out", str(out)]) == 0
    assert "training paper-e5m2 seed 1 -> " in capsys.readouterr().out
    for recipe in ("fp32", "paper-e5m2"):
        for seed in (0, 1):
            assert json.loads((out / recipe / f"seed{seed}" / "config.json").read_text())["seed"] == seed
    text = (out / "report.md").read_text()
    assert "# fp8emu: fp32 vs paper-e5m2, seeds 0,1" in text and "## Seed statistics" in text
    assert "| paper-e5m2 seed 1 | 1 |" in text and "| paper-e5m2 | 0, 1 | 1 |" in text
    assert main(["train", "--recipe", "paper-e5m2", "--seed", "1", *common, "--out", str(tmp_path / "one")]) == 0
    lines = [[json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
             for d in (out / "paper-e5m2" / "seed1", tmp_path / "one")]
    assert without_timing(lines[0]) == without_timing(lines[1])


def test_cli_data_and_recipe_errors(tmp_path, capsys):
    from fp8emu.cli import main
    status = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "apt-get install dataset-fashion-mnist" in err and "--data DIR" in err
    assert not (tmp_path / "r").exists()  # nothing written before the data loaded
    with pytest.raises(SystemExit) as info:
        main(["train", "--recipe", "e9m9", "--out", str(tmp_path / "r")])
    assert info.value.code == 2 and "unknown recipe 'e9m9'" in capsys.readouterr().err


def test_interrupt_during_evaluation_resumes_exactly(tmp_path, data, monkeypatch):
    full = train_mod.train(tiny_config(data, tmp_path / "full", epochs=2, batch_size=6), progress=False)
    real = train_mod.evaluate

    def interrupted_eval(*args, **kw):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kw)
    monkeypatch.setattr(train_mod, "evaluate", interrupted_eval)
    part = train_mod.train(tiny_config(data, tmp_path / "part", epochs=2, batch_size=6), progress=False)
    assert part.interrupted and part.history == []
    ckpt = load_checkpoint(tmp_path / "part" / "checkpoint.npz")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 2, 2)
    monkeypatch.undo()
    resumed = train_mod.train(tiny_config(data, tmp_path / "part", epochs=2, batch_size=6), resume=True,
                              progress=False)
    assert without_timing(resumed.history) == without_timing(full.history)
    assert_trees_equal(final_state(tmp_path / "part"), final_state(tmp_path / "full"))


def test_cli_ctrl_c_exits_130_and_resume_finishes(tmp_path, data, monkeypatch, capsys):
    from fp8emu.cli import main
    argv = ["train", "--recipe", "fp32", "--data", str(data), "--limit-train", "8", "--limit-test", "4",
            "--batch-size", "4", "--width", "2", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")]
    interrupt_after(monkeypatch, 1)
    assert main(argv) == 130
    assert "continue with --resume" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 1


def test_cifar10_trains(tmp_path):
    from test_data import write_cifar
    write_cifar(tmp_path / "c", n_per_batch=2)
    config = tiny_config(tmp_path / "c", tmp_path / "r", dataset="cifar10", limit_train=None, limit_test=None,
                         epochs=1, batch_size=5)
    result = train_mod.train(config, progress=False)
    assert len(result.history) == 1 and result.history[0]["step"] == 2 and np.isfinite(result.history[0]["train_loss"])


def test_images_per_second_leave_out_the_first_step(tmp_path, data, monkeypatch):
    """The first step compiles the kernels: a quick run once showed FP8 "faster" than FP32."""
    import time
    real, calls = train_mod.train_step, []

    def slow_first(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(2.0)  # stands in for the JIT compile
        return real(*args, **kw)
    monkeypatch.setattr(train_mod, "train_step", slow_first)
    rec = train_mod.train(tiny_config(data, tmp_path / "r", "fp32", epochs=1), progress=False).history[0]
    assert rec["first_step_s"] >= 2.0 and rec["epoch_time_s"] >= 2.0
    # 12 images in 3 steps of 4: the last two steps' 8 images over their time
    assert rec["images_per_s"] == pytest.approx(8 / (rec["epoch_time_s"] - rec["first_step_s"]), rel=1e-6)


def written_by_the_version_before_run_seeded_master_weights(monkeypatch):
    """Make train() behave as before the master write-back followed --seed: the optimizer's seed is the
    recipe's own (2 * recipe.seed + 1) and the checkpoint's state has no 'master_seed'."""
    from fp8emu.recipes import get_recipe
    real_build, real_state = train_mod.build, train_mod._state

    def build(config, ds, steps_per_epoch):
        parts = real_build(config, ds, steps_per_epoch)
        parts.optimizer.seed = get_recipe(config["recipe"]).master_seed()
        return parts
    monkeypatch.setattr(train_mod, "build", build)
    monkeypatch.setattr(train_mod, "_state", lambda parts: {k: v for k, v in real_state(parts).items()
                                                            if k != "master_seed"})


def test_master_seed_is_the_run_seed_and_in_the_checkpoint(tmp_path, data):
    train_mod.train(tiny_config(data, tmp_path / "r", epochs=1), progress=False)
    assert final_state(tmp_path / "r")["master_seed"] == 2 * 3 + 1      # tiny_config's seed is 3


def test_resume_of_a_checkpoint_without_master_seed_keeps_its_seed(tmp_path, data, monkeypatch, capsys):
    """A run interrupted by the earlier version (write-back seed 1 whatever --seed) and resumed by this one
    continues bit for bit with seed 1, and says so, rather than switching to 2 * seed + 1 mid-run."""
    written_by_the_version_before_run_seeded_master_weights(monkeypatch)
    full = train_mod.train(tiny_config(data, tmp_path / "full"), progress=False)
    interrupt_after(monkeypatch, 2)
    train_mod.train(tiny_config(data, tmp_path / "part"), progress=False)
    assert "master_seed" not in final_state(tmp_path / "part")
    monkeypatch.undo()
    capsys.readouterr()
    resumed = train_mod.train(tiny_config(data, tmp_path / "part"), resume=True, progress=False)
    assert "keeps the write-back seed it used (1) instead of 7" in capsys.readouterr().err
    assert without_timing(resumed.history) == without_timing(full.history)
    state, full_state = final_state(tmp_path / "part"), final_state(tmp_path / "full")
    assert state.pop("master_seed") == 1          # later checkpoints record it, so the next resume keeps it too
    assert_trees_equal(state, full_state)


def test_checkpoint_with_a_bad_master_seed_is_refused(tmp_path, data, monkeypatch):
    from fp8emu.checkpoint import save_checkpoint
    interrupt_after(monkeypatch, 1)
    train_mod.train(tiny_config(data, tmp_path / "r"), progress=False)
    monkeypatch.undo()
    path = tmp_path / "r" / "checkpoint.npz"
    ckpt = load_checkpoint(path)
    ckpt["state"]["master_seed"] = "seven"
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="its state's 'master_seed' is 'seven', expected an int"):
        train_mod.train(tiny_config(data, tmp_path / "r"), resume=True, progress=False)
