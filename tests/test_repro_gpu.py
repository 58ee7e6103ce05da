"""tools/repro_gpu.py, the resumable driver of the reproduction grid: priority order, epoch
counting, and (slow) two calls that finish a small grid with the NumPy engine on a CPU."""

import importlib.util
import json
import pathlib
import tarfile

import pytest

from test_data import write_mnist_like

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("repro_gpu", ROOT / "tools" / "repro_gpu.py")
repro = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(repro)


def test_priority_order_paper_width_and_comparison_first():
    grid = repro.run_grid([64, 8], list(repro.RECIPES), [0, 1, 2])
    assert len(grid) == 30
    assert grid[:6] == [(64, "fp32", 0), (64, "fp32", 1), (64, "fp32", 2),
                        (64, "paper-e5m2", 0), (64, "paper-e5m2", 1), (64, "paper-e5m2", 2)]
    assert {r for _, r, _ in grid[6:15]} == set(repro.RECIPES[2:]) and {w for w, _, _ in grid[15:]} == {8}


def test_epochs_done_ignores_a_torn_line(tmp_path):
    assert repro.epochs_done(tmp_path) == 0
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert repro.epochs_done(tmp_path) == 2


@pytest.mark.slow
def test_two_calls_finish_the_grid_and_pack_no_checkpoint(tmp_path):
    pytest.importorskip("fp8emu.recipes")
    write_mnist_like(tmp_path / "data", n_train=16, n_test=8)
    common = ["--out", str(tmp_path / "runs"), "--data", str(tmp_path / "data"), "--widths", "2",
              "--recipes", "fp32,paper-e5m2", "--seeds", "0,1", "--epochs", "2", "--batch-size", "4",
              "--train-args=", "--max-procs", "2", "--pack", str(tmp_path / "out" / "results.tar.gz")]
    assert repro.main(common + ["--first", "2", "--budget", "0"]) == 3   # stopped at once: unfinished
    assert repro.main(common + ["--first", "2"]) == 0   # fp32 seeds 0 and 1 only
    assert repro.main(common) == 0                       # the other two; the first two stay as they are
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        names = tar.getnames()
        status = json.load(tar.extractfile("status.json"))
    assert not [n for n in names if "checkpoint" in n]
    for recipe in ("fp32", "paper-e5m2"):
        for seed in (0, 1):
            assert f"w2/{recipe}/seed{seed}/metrics.jsonl" in names and f"w2/{recipe}/seed{seed}/config.json" in names
    assert [r["epochs_done"] for r in status] == [2, 2, 2, 2]
    # finished runs are not started again: fp32's logs hold two calls, paper-e5m2's one
    logs = {r: (tmp_path / "runs" / "w2" / r / "seed0" / "train.log").read_text() for r in ("fp32", "paper-e5m2")}
    assert logs["fp32"].count("=== repro call") == 2 and logs["paper-e5m2"].count("=== repro call") == 1
