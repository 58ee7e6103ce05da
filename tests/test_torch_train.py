"""``fp8emu train/compare --backend torch``: the same loop, data, recipes, metrics and reports as the
NumPy engine; exact resume; checkpoints refused across backends."""

import json
import os
import signal

import pytest

torch = pytest.importorskip("torch")

import fp8emu.torch.train as torch_train  # noqa: E402
import fp8emu.train as train_mod  # noqa: E402
from fp8emu.checkpoint import CheckpointError  # noqa: E402
from fp8emu.cli import main  # noqa: E402

from test_train_loop import data, final_state, assert_trees_equal, tiny_config, without_timing  # noqa: E402,F401

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)       # tiny tensors; and one thread keeps the float32 sums in one order
    yield
    torch.set_num_threads(previous)


def torch_config(data, out, recipe="paper-e5m2", **kw):
    return tiny_config(data, out, recipe, backend="torch", device="cpu", **kw)


def interrupt_torch_after(monkeypatch, n_steps):
    real, calls = torch_train.BACKEND.train_step, []

    def step(*args, **kw):
        calls.append(1)
        if len(calls) == n_steps:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kw)
    monkeypatch.setattr(type(torch_train.BACKEND), "train_step", staticmethod(step))
    return calls


@pytest.mark.parametrize("recipe", ["paper-e5m2", pytest.param("ocp-fp8", marks=pytest.mark.slow)])
def test_torch_backend_resume_is_bit_exact(tmp_path, data, monkeypatch, recipe):
    full = train_mod.train(torch_config(data, tmp_path / "full", recipe), progress=False)
    assert not full.interrupted and len(full.history) == 2
    rec = full.history[0]
    assert rec["stats"] and rec["loss_scale"] > 0 and rec["test_acc"] >= 0      # statistics work with torch too
    calls = interrupt_torch_after(monkeypatch, 2)
    part = train_mod.train(torch_config(data, tmp_path / "part", recipe), progress=False)
    assert part.interrupted and len(calls) == 2
    monkeypatch.undo()
    resumed = train_mod.train(torch_config(data, tmp_path / "part", recipe), resume=True, progress=False)
    assert without_timing(resumed.history) == without_timing(full.history)
    assert_trees_equal(final_state(tmp_path / "part"), final_state(tmp_path / "full"))


def test_checkpoints_do_not_cross_backends(tmp_path, data):
    train_mod.train(torch_config(data, tmp_path / "t", epochs=1), progress=False)
    with pytest.raises(CheckpointError, match="written by the torch backend .* --backend numpy"):
        train_mod.train(tiny_config(data, tmp_path / "t", epochs=1), resume=True, progress=False)
    train_mod.train(tiny_config(data, tmp_path / "n", epochs=1), progress=False)
    with pytest.raises(CheckpointError, match="written by the numpy backend .* --backend torch"):
        train_mod.train(torch_config(data, tmp_path / "n", epochs=1), resume=True, progress=False)


def test_cli_compare_backend_torch_writes_the_same_report(tmp_path, data, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--backend", "torch", "--recipes", "fp32,paper-e5m2", "--data", str(data), "--width", "2",
            "--limit-train", "12", "--limit-test", "6", "--epochs", "1", "--batch-size", "4", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    text = (out / "report.md").read_text()
    assert "torch backend on cpu" in text
    for r in ("fp32", "paper-e5m2"):
        rec = json.loads((out / r / "metrics.jsonl").read_text().splitlines()[0])
        assert {"train_loss", "test_acc", "loss_scale", "images_per_s"} <= rec.keys()
        assert json.loads((out / r / "config.json").read_text())["backend"] == "torch"
    assert main(args[:1] + ["--resume"] + args[1:]) == 0            # finished runs: nothing to do


def test_cli_backend_errors(tmp_path, data, capsys):
    base = ["train", "--data", str(data), "--out", str(tmp_path / "x"), "--no-progress"]
    with pytest.raises(SystemExit) as exc:
        main(base + ["--device", "cuda"])
    assert exc.value.code == 2 and "--device cuda needs --backend torch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--backend", "torch", "--device", "nonsense"])
    assert "--device" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 5])
def test_torch_master_write_back_seed_follows_the_run_seed(tmp_path, data, seed):
    """As the NumPy engine: seed 2 * seed + 1 (it was 1 for every --seed), recorded in the state and
    restored from it."""
    from types import SimpleNamespace
    config = torch_config(data, tmp_path / "r", seed=seed)
    parts = torch_train.build_parts(config, SimpleNamespace(image_shape=(1, 8, 8), num_classes=10))
    optimizer = parts[2]
    assert optimizer.seed == 2 * seed + 1
    assert {lq.seed for lq in parts[1].layers.values() if lq is not None} == {seed}
    state = torch_train.state(SimpleNamespace(model=parts[0], recipe=parts[1], optimizer=optimizer, scaler=parts[3]))
    assert state["master_seed"] == 2 * seed + 1
    optimizer.seed = 99
    torch_train.load_state(SimpleNamespace(model=parts[0], recipe=parts[1], optimizer=optimizer, scaler=parts[3]),
                           state)
    assert optimizer.seed == 2 * seed + 1
