"""fp8emu sweep on a Dask LocalCluster of 2 single-threaded worker processes (started here).

Tiny runs (``--limit-train 256 --epochs 2 --width 8`` on a synthetic 8x8 MNIST-like set):
the cluster's results equal the same runs trained one after another bit for bit; a worker
killed after a cell's first epoch (a hook in the task, not a timing race) makes Dask retry the
task, which resumes from the checkpoint and ends bit-identical; a restarted sweep skips
finished cells.
"""

import contextlib
import os

import pytest

pytest.importorskip("distributed")

from fp8emu import train as train_mod  # noqa: E402
from fp8emu.sweep import cell_progress, expand_grid, run_cells  # noqa: E402
from test_data import write_mnist_like  # noqa: E402
from test_train_loop import assert_trees_equal, final_state, without_timing  # noqa: E402

RECIPES = ("fp32", "paper-e5m2")
SEEDS = (0, 1)


def base_config(data):
    return {"model": "resnet18", "width": 8, "recipe": "fp32", "dataset": "fashion-mnist", "data": str(data),
            "limit_train": 256, "limit_test": 32, "augment": True, "epochs": 2, "batch_size": 64,
            "eval_batch_size": 32, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine",
            "warmup_epochs": 0, "label_smoothing": 0.0, "seed": 0, "threads": 1, "stats_every": 2,
            "backend": "numpy", "device": "cpu", "out": None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    write_mnist_like(root, n_train=256, n_test=32, size=8)
    return root


@pytest.fixture
def client(dask_client):
    return dask_client


@contextlib.contextmanager
def one_thread():
    """One Numba and one BLAS thread, as the workers have, for training in this process (on
    OpenBLAS's Haswell kernel the BLAS thread split changes the fp32 runs' bits)."""
    import numba
    from fp8emu.cluster import blas_threads, limit_threads
    previous, previous_blas = numba.get_num_threads(), blas_threads()
    limit_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
        blas_threads(previous_blas)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, data):
    """The grid's runs trained one after another in this process (the reference)."""
    with one_thread():
        out = tmp_path_factory.mktemp("sequential")
        cells = expand_grid(base_config(data), RECIPES, SEEDS, {}, str(out))
        for c in cells:
            train_mod.train(c.config, progress=False)
    return cells


def history(out):
    return train_mod.load_checkpoint(os.path.join(out, "checkpoint.npz"))["history"]


def assert_cells_equal(cells, reference):
    assert [c.name for c in cells] == [c.name for c in reference]
    for c, r in zip(cells, reference):
        assert without_timing(history(c.config["out"])) == without_timing(history(r.config["out"])), c.name
        assert_trees_equal(final_state(c.config["out"]), final_state(r.config["out"]), c.name)


def test_grid_layout(tmp_path, data):
    cells = expand_grid(base_config(data), ["fp32"], [0, 2], {"width": [8, 16], "lr": [0.1]}, str(tmp_path))
    assert [os.path.relpath(c.config["out"], tmp_path) for c in cells] == [
        os.path.join("width8-lr0.1", "fp32", "seed0"), os.path.join("width8-lr0.1", "fp32", "seed2"),
        os.path.join("width16-lr0.1", "fp32", "seed0"), os.path.join("width16-lr0.1", "fp32", "seed2")]
    assert [(c.config["width"], c.config["lr"], c.config["seed"]) for c in cells] == [
        (8, 0.1, 0), (8, 0.1, 2), (16, 0.1, 0), (16, 0.1, 2)]
    with pytest.raises(ValueError, match="cannot sweep over 'colour'"):
        expand_grid(base_config(data), ["fp32"], [0], {"colour": [1]}, str(tmp_path))


def test_cluster_equals_sequential_and_survives_a_killed_worker(tmp_path, data, client, sequential):
    cells = expand_grid(base_config(data), RECIPES, SEEDS, {}, str(tmp_path))
    victim = cells[3]            # paper-e5m2 seed 1: its worker dies right after epoch 1's checkpoint
    marker = tmp_path / "killed"
    workers_before = set(client.scheduler_info()["workers"])
    result = run_cells(client, cells, str(tmp_path), progress=False, log=lambda _: None,
                       kill_after=(victim.config["out"], 1, str(marker)))
    assert marker.read_text() == "killed after epoch 1\n"           # the hook did kill a worker ...
    assert set(client.scheduler_info()["workers"]) != workers_before  # ... and the nanny replaced it
    assert result.started_at[victim.name] == 1                        # the retry resumed from the checkpoint
    assert all(result.started_at[c.name] == 0 for c in cells if c is not victim)
    assert result.skipped == []
    assert_cells_equal(cells, sequential)
    assert all(cell_progress(c) == 2 for c in cells)


def test_restart_skips_finished_cells(tmp_path, data, client, sequential):
    cells = expand_grid(base_config(data), RECIPES, SEEDS, {}, str(tmp_path))
    first = run_cells(client, cells[:1], str(tmp_path), progress=False, log=lambda _: None)
    assert first.started_at == {cells[0].name: 0}
    # A client that died during the sweep: one cell finished, one checkpointed after epoch 1.
    with pytest.raises(_Stop), one_thread():
        train_mod.train(cells[1].config, progress=False, on_epoch=_stop_after_first)
    stamp = os.stat(os.path.join(cells[0].config["out"], "checkpoint.npz")).st_mtime_ns
    messages = []
    again = run_cells(client, cells, str(tmp_path), progress=False, log=messages.append)
    assert again.skipped == [cells[0].name]
    assert f"fp8emu sweep: {cells[0].name} is finished; skipped" in messages
    assert again.started_at == {cells[1].name: 1, cells[2].name: 0, cells[3].name: 0}
    assert os.stat(os.path.join(cells[0].config["out"], "checkpoint.npz")).st_mtime_ns == stamp
    assert_cells_equal(cells, sequential)


class _Stop(Exception):
    pass


def _stop_after_first(record):
    raise _Stop


def test_worker_that_cannot_see_the_output_directory(tmp_path, data, client):
    cells = expand_grid(base_config(data), ["fp32"], [0], {}, str(tmp_path / "sweep"))
    import fp8emu.sweep as sweep_mod
    real = sweep_mod._write_token
    try:   # a client-side token the workers do not see: as with a directory that is not shared
        sweep_mod._write_token = lambda out: (real(out), "not-the-token")[1]
        with pytest.raises(RuntimeError, match="sees a different .* than the client"):
            run_cells(client, cells, str(tmp_path / "sweep"), progress=False, log=lambda _: None)
    finally:
        sweep_mod._write_token = real


def test_worker_that_cannot_read_the_data(tmp_path, data, client):
    cells = expand_grid({**base_config(data), "data": str(tmp_path / "nowhere")}, ["fp32"], [0], {},
                        str(tmp_path / "sweep"))
    with pytest.raises(RuntimeError, match="cannot read the data set"):
        run_cells(client, cells, str(tmp_path / "sweep"), progress=False, log=lambda _: None)


def test_cli_sweep_writes_cells_and_seed_statistics(tmp_path, data, capsys):
    """``fp8emu sweep`` end to end on its own local cluster: the --vary axis and the seeds lay out
    the cells, the report has the seed statistics, and the same command again skips every cell."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("scipy")
    from fp8emu.cli import main
    args = ["sweep", "--recipes", "fp32", "--seeds", "0-1", "--vary", "width=2,4", "--data", str(data),
            "--limit-train", "8", "--limit-test", "4", "--batch-size", "4", "--epochs", "1", "--workers", "2",
            "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fp8emu sweep: Dask on a local cluster, 2 worker(s)" in out
    for width in (2, 4):
        for seed in (0, 1):
            assert cell_progress(_cell(tmp_path / f"width{width}" / "fp32" / f"seed{seed}")) == 1
    report = (tmp_path / "report.md").read_text()
    assert "width=2" in report and "width=4" in report and "±" in report
    assert main(args) == 0
    assert capsys.readouterr().out.count("is finished; skipped") == 4


def _cell(out):
    from fp8emu.sweep import Cell
    return Cell(str(out), {"out": str(out)})


@pytest.mark.parametrize("bad, message", [
    (["--vary", "colour=1,2"], "expected KEY=V1,V2"),
    (["--vary", "width=8,8"], "distinct values"),
    (["--vary", "width=8", "--width", "8"], "give --width or --vary width"),
    (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
    # every cell is checked up front with train's rules (these used to fail in a worker, or wrongly)
    (["--vary", "warmup-epochs=0,5", "--epochs", "2"], "cell 'fp32 seed 0 warmup_epochs=5': --warmup-epochs (5) "
                                                       "must be < --epochs (2)"),
    (["--vary", "weight-decay=-1"], "--vary weight_decay: expected a finite number >= 0, got -1"),
    (["--vary", "weight-decay=nan"], "--vary weight_decay: expected a finite number >= 0, got nan"),
    (["--vary", "schedule=cosine,step", "--warmup-epochs", "1", "--epochs", "2"],
     "cell 'fp32 seed 0 schedule=step': --warmup-epochs 1 needs --schedule cosine"),
])
def test_cli_sweep_refuses(tmp_path, data, capsys, bad, message):
    import dask
    from fp8emu.cli import main
    args = ["sweep", "--recipes", "fp32", "--data", str(data), "--limit-train", "8", "--epochs", "1",
            "--no-progress", "--out", str(tmp_path), *bad]
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            status = main(args)
    except SystemExit as exc:
        status = exc.code
    assert status in (1, 2)
    assert message in capsys.readouterr().err
    if "Dask" not in message:
        assert not any(p.is_dir() for p in tmp_path.iterdir()), "refused before any cell trained"


def test_cli_sweep_checks_warmup_against_each_cells_epochs(tmp_path, data, capsys):
    """--warmup-epochs 1 with --vary epochs=2,3: valid in every cell (it was checked against the
    default --epochs 1)."""
    import fp8emu.cli as cli_mod
    seen = []
    real = cli_mod._run_on_dask
    cli_mod._run_on_dask = lambda cells, *a, **kw: seen.extend(cells) or 3  # validation only: nothing trains
    try:
        status = cli_mod.main(["sweep", "--recipes", "fp32", "--data", str(data), "--warmup-epochs", "1",
                               "--vary", "epochs=2,3", "--no-progress", "--out", str(tmp_path)])
    finally:
        cli_mod._run_on_dask = real
    assert status == 3 and [c.config["epochs"] for c in seen] == [2, 3], capsys.readouterr().err


def test_failed_cell_without_checkpoint_says_so(tmp_path, data, client):
    """A cell that diverges in its first epoch has no checkpoint: the message must not promise one."""
    cells = expand_grid({**base_config(data), "lr": 1e30}, ["fp32"], [0], {}, str(tmp_path / "sweep"))
    with pytest.raises(RuntimeError) as info:
        run_cells(client, cells, str(tmp_path / "sweep"), progress=False, log=lambda _: None)
    assert "TrainingDiverged" in str(info.value) and "it wrote no checkpoint in" in str(info.value)
    assert "is kept" not in str(info.value)


def test_limit_threads_caps_blas_without_threadpoolctl(monkeypatch):
    """limit_threads caps NumPy's OpenBLAS even when threadpoolctl is missing (then by OpenBLAS's
    own setter), since the BLAS thread split changes fp32 bits on some kernels."""
    import sys
    from fp8emu.cluster import blas_threads, limit_threads
    before = blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS found in this process")
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)      # import fails
    import numba
    numba_before = numba.get_num_threads()
    try:
        limit_threads(1)
        assert blas_threads() == 1 and numba.get_num_threads() == 1
    finally:
        blas_threads(before)
        numba.set_num_threads(numba_before)
    assert blas_threads() == before


# ------------------------------------------------------------------ finished means all run files, same data

def _tiny_config(data, out):
    return {**base_config(data), "width": 4, "limit_train": 64, "limit_test": 16, "batch_size": 32,
            "eval_batch_size": 16, "augment": False, "stats_every": 0, "out": str(out)}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data):
    """One cell trained to its end (2 epochs), to be copied into each test's own directory."""
    out = tmp_path_factory.mktemp("finished") / "fp32" / "seed0"
    train_mod.train(_tiny_config(data, out), progress=False)
    return out


def _copy_cell(finished_run, out, config):
    import shutil
    from fp8emu.sweep import Cell
    shutil.copytree(finished_run, out)
    return Cell("fp32 seed 0", {**config, "out": str(out)})


def _metrics_epochs(out):
    import json
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["epoch"] for line in f if line.strip()]


def _drop_last_metrics_line(out):
    path = os.path.join(out, "metrics.jsonl")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines[:-1])


def _config_of_another_run(out):
    import json
    path = os.path.join(out, "config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({**config, "lr": config["lr"] * 2}, f)


def _add_an_epoch(out):
    with open(os.path.join(out, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"epoch": 3}\n')


_DAMAGE = {
    # a worker lost between the final checkpoint and its metrics.jsonl rewrite (train writes the
    # checkpoint, then config.json, then metrics.jsonl)
    "metrics.jsonl an epoch short": _drop_last_metrics_line,
    "no metrics.jsonl": lambda out: os.remove(os.path.join(out, "metrics.jsonl")),
    # ... lost before config.json (a first run, or an --overwrite of another run's directory)
    "no config.json": lambda out: os.remove(os.path.join(out, "config.json")),
    "config.json of another run": _config_of_another_run,
    "metrics.jsonl with an epoch the checkpoint lacks": _add_an_epoch,
}


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_cell_with_incomplete_run_files_is_not_finished(tmp_path, data, finished_run, damage):
    """The report reads config.json and metrics.jsonl: a cell whose final checkpoint lacks them
    is not finished (it was skipped, and the report showed a stale last epoch or failed)."""
    from fp8emu.sweep import _finished
    cell = _copy_cell(finished_run, tmp_path / "fp32" / "seed0", _tiny_config(data, "unused"))
    assert _finished(cell)
    _DAMAGE[damage](cell.config["out"])
    assert not _finished(cell)


@pytest.fixture(scope="module")
def other_data(tmp_path_factory):
    """Another data set of the same name and sizes (other images and labels)."""
    root = tmp_path_factory.mktemp("other-fmnist")
    write_mnist_like(root, n_train=256, n_test=32, size=8, seed=1)
    return root


def test_checkpoint_of_other_data_stops_the_sweep_before_anything_runs(tmp_path, data, other_data, finished_run):
    """The same sweep with --data pointing at other files: a finished cell was skipped (and
    reported as if trained on these), an unfinished one failed only on its worker; both are
    refused up front now, with train --resume's message."""
    from fp8emu.checkpoint import CheckpointError
    from fp8emu.sweep import Cell, run_cells
    finished = _copy_cell(finished_run, tmp_path / "fp32" / "seed0", _tiny_config(other_data, "unused"))
    with pytest.raises(CheckpointError, match=r"belongs to a different run \(data_fingerprint: checkpoint has"):
        run_cells(None, [finished], str(tmp_path), progress=False, log=lambda _: None)
    half = tmp_path / "half"
    with pytest.raises(_Stop):
        train_mod.train(_tiny_config(data, half), progress=False, on_epoch=_stop_after_first)
    with pytest.raises(CheckpointError, match="data_fingerprint"):
        run_cells(None, [Cell("half", _tiny_config(other_data, half))], str(tmp_path), progress=False,
                  log=lambda _: None)
    with pytest.raises(CheckpointError, match="data_fingerprint"):       # what train says of it
        train_mod.train(_tiny_config(other_data, half), resume=True, progress=False)


def test_data_fingerprint_is_computed_once_per_data_and_limits(tmp_path, data, finished_run, monkeypatch):
    from fp8emu.sweep import Cell, _data_fingerprint, _finished_cells
    loads = []
    real = train_mod.load_data
    monkeypatch.setattr(train_mod, "load_data", lambda config: loads.append(config["out"]) or real(config))
    config = _tiny_config(data, "unused")
    cells = [_copy_cell(finished_run, tmp_path / f"copy{i}", config) for i in range(3)]
    cells.append(Cell("not started", {**config, "out": str(tmp_path / "fresh")}))   # no checkpoint: no load
    assert _finished_cells(cells) == [c.name for c in cells[:3]]
    assert len(loads) == 1
    known = {}
    for limit in (64, 32, 64):
        _data_fingerprint({**config, "limit_train": limit}, known)
    assert len(loads) == 3 and len(known) == 2


def test_checkpoint_before_fingerprints_is_finished_with_trains_warning(tmp_path, data, finished_run, capsys):
    """A checkpoint written before fingerprints were recorded: as train --resume, a warning and no check."""
    from fp8emu.checkpoint import save_checkpoint
    from fp8emu.sweep import _finished
    cell = _copy_cell(finished_run, tmp_path / "old", _tiny_config(data, "unused"))
    path = os.path.join(cell.config["out"], "checkpoint.npz")
    ckpt = train_mod.load_checkpoint(path)
    del ckpt["config"]["data_fingerprint"]
    save_checkpoint(path, ckpt)
    assert _finished(cell)
    assert "written before checkpoints recorded a fingerprint of the data" in capsys.readouterr().err


def test_cli_sweep_without_a_cells_metrics_says_what_to_do(tmp_path, data, capsys, monkeypatch):
    """The report of a cell without metrics.jsonl was a FileNotFoundError traceback."""
    import fp8emu.cli as cli_mod
    monkeypatch.setattr(cli_mod, "_run_on_dask", lambda *a, **kw: 0)    # the cells' runs ended without metrics
    status = cli_mod.main(["sweep", "--recipes", "fp32", "--data", str(data), "--no-progress", "--out",
                           str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"fp8emu sweep: error: cannot write the report: no metrics.jsonl in {tmp_path / 'fp32' / 'seed0'}; " \
           "run the same command again" in err
    assert "Traceback" not in err


def test_sweep_completes_a_cell_lost_before_its_run_files(tmp_path, data, finished_run, client):
    """Cells whose final checkpoint is written but whose worker died before metrics.jsonl (an
    epoch short) or config.json (missing): the sweep runs them again, resuming the final
    checkpoint, which writes both from it."""
    from fp8emu.sweep import _finished
    config = _tiny_config(data, "unused")
    short = _copy_cell(finished_run, tmp_path / "short", config)
    _drop_last_metrics_line(short.config["out"])
    unconfigured = _copy_cell(finished_run, tmp_path / "unconfigured", config)
    unconfigured = type(unconfigured)("fp32 seed 0 (no config.json)", unconfigured.config)
    os.remove(os.path.join(unconfigured.config["out"], "config.json"))
    result = run_cells(client, [short, unconfigured], str(tmp_path), progress=False, log=lambda _: None)
    assert result.skipped == []
    assert result.started_at == {short.name: 2, unconfigured.name: 2}          # resumed at the end: no training
    for cell in (short, unconfigured):
        assert _metrics_epochs(cell.config["out"]) == [1, 2]
        assert os.path.exists(os.path.join(cell.config["out"], "config.json"))
        assert _finished(cell)
