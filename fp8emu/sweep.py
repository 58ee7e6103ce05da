"""Sweeps: a grid of training runs (recipes x seeds x other options) on Dask distributed.

Each cell of the grid is one :func:`fp8emu.train.train` run in its own directory
(``OUT/[AXES/]RECIPE/seedN``, where ``AXES`` names the other options' values, e.g. ``width16-lr0.05``).
Cells are Dask tasks; the scheduler is a local cluster or an existing one (see
:func:`fp8emu.cluster.connect`).  The file system is the source of truth, which is what makes
sweeps survive lost machines:

* every worker first checks that it sees the data set and the same output directory as the
  client (a token file the client wrote), and the sweep stops with one clear message otherwise;
* every run checkpoints each epoch; a task whose worker dies is retried by Dask and resumes
  from the cell's checkpoint, so final metrics and weights equal an uninterrupted sweep bit for bit
  (the checkpoint holds everything that decides the next step);
* a sweep started again (after the client died, or Ctrl-C) skips finished cells (the checkpoint
  at the last epoch, and the config.json and metrics.jsonl of that checkpoint written) and
  resumes the others from their checkpoints; a checkpoint of another configuration or data set
  (its data fingerprint, as ``train --resume`` checks it) stops it before anything runs.

One progress bar counts finished epochs over all cells (the client reads the cells'
``metrics.jsonl``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .checkpoint import CheckpointError, check_compatible, load_checkpoint
from .cluster import limit_threads

__all__ = ["Cell", "SweepResult", "expand_grid", "cell_progress", "run_cells"]

TOKEN_FILE = ".fp8emu-sweep-token"


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: a display name and its complete training configuration (``out`` included)."""

    name: str
    config: dict


@dataclass
class SweepResult:
    """What :func:`run_cells` returns.

    Attributes:
        cells: the cells, in grid order.
        skipped: names of the cells that were finished before the sweep started.
        started_at: cell name -> the epoch at which the attempt that finished the cell started
            (0 for an uninterrupted run, 1 for a retry that resumed after epoch 1); skipped cells
            are not in it.
    """

    cells: list[Cell]
    skipped: list[str]
    started_at: dict[str, int]


def _axis_text(key: str, value: Any) -> str:
    return f"{key.replace('_', '-')}{value}"


def expand_grid(base: dict, recipes: Sequence[str], seeds: Sequence[int], axes: dict[str, Sequence[Any]],
                out: str) -> list[Cell]:
    """The cells of ``axes`` (outermost, in the order given) x ``recipes`` x ``seeds``.

    Args:
        base: a complete training configuration; grid values replace its entries.
        recipes: recipe names.
        seeds: seeds.
        axes: other configuration entries -> their values (e.g. ``{"width": [8, 16]}``).
        out: the sweep's directory.

    Returns:
        The cells; cell directories are ``out/[AXES/]RECIPE/seedN``.

    Raises:
        ValueError: an empty list, repeated values, or an axis that is not a configuration entry.
    """
    if not recipes or not seeds:
        raise ValueError("a sweep needs at least one recipe and one seed")
    for key, values in axes.items():
        if key not in base or key in ("recipe", "seed", "out"):
            raise ValueError(f"cannot sweep over {key!r}")
        if not values or len(set(map(repr, values))) != len(values):
            raise ValueError(f"{key}: expected distinct values, got {list(values)}")
    points: list[dict] = [{}]
    for key, values in axes.items():
        points = [{**p, key: v} for p in points for v in values]
    cells = []
    for point in points:
        sub = "-".join(_axis_text(k, v) for k, v in point.items())
        where = " ".join(f"{k}={v}" for k, v in point.items())
        for recipe in recipes:
            for seed in seeds:
                cell_out = os.path.join(out, *([sub] if sub else []), recipe, f"seed{seed}")
                name = f"{recipe} seed {seed}" + (f" {where}" if where else "")
                cells.append(Cell(name, {**base, **point, "recipe": recipe, "seed": seed, "out": cell_out}))
    return cells


def _after_failure(cell: Cell) -> str:
    """What a failed cell left behind and how to go on (rerunning resumes only from a checkpoint,
    and an error that is not the worker's death comes back unless its cause is fixed)."""
    out = cell.config["out"]
    if os.path.exists(os.path.join(out, "checkpoint.npz")):
        return (f"its checkpoint in {out} is kept: fix the cause and run the sweep again to resume it (finished "
                "cells are skipped)")
    return f"it wrote no checkpoint in {out}: fix the cause and run the sweep again (finished cells are skipped)"


def cell_progress(cell: Cell) -> int:
    """Epochs the cell has finished, as its ``metrics.jsonl`` says (0 when it has none).

    Args:
        cell: a cell of the sweep (its ``config["out"]`` is the run directory).
    """
    try:
        with open(os.path.join(cell.config["out"], "metrics.jsonl"), encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def _data_fingerprint(config: dict, known: dict[tuple, str]) -> str:
    """The data fingerprint that ``train`` records for ``config`` (its data set, directory and
    limits), computed once per distinct combination (``known`` keeps them: loading a data set
    costs seconds)."""
    from . import train

    key = (config["dataset"], config.get("data"), config.get("limit_train"), config.get("limit_test"))
    if key not in known:
        known[key] = train.load_data(config).fingerprint()
    return known[key]


def _run_files_match(out: str, ckpt: dict) -> bool:
    """Whether ``config.json`` and ``metrics.jsonl`` in ``out`` are those of the checkpoint ``ckpt``.

    ``train`` writes them after the checkpoint, so a worker lost in between leaves them missing,
    an epoch short, or from an earlier run that this one replaces; the report would then show
    stale epochs (or fail).  ``config.json`` must hold the checkpoint's configuration (the backend
    aside: the checkpoint names the default backend, config.json may leave it out), and
    ``metrics.jsonl`` exactly the checkpoint's epochs.
    """
    try:
        with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
            epochs = [json.loads(line)["epoch"] for line in f if line.strip()]
    except (OSError, ValueError, KeyError, TypeError):  # missing, torn, or not fp8emu train's files
        return False
    if not isinstance(config, dict):
        return False
    if any(config.get(k) != v for k, v in ckpt["config"].items() if k != "backend"):
        return False
    return epochs == [record.get("epoch") if isinstance(record, dict) else None for record in ckpt["history"]]


def _finished(cell: Cell, fingerprints: dict[tuple, str] | None = None) -> bool:
    """True when the cell's checkpoint is at the end of its last epoch and its ``config.json`` and
    ``metrics.jsonl`` are written (a cell whose worker was lost before it wrote them is not: its
    task resumes the checkpoint, which rewrites them).

    Args:
        cell: a cell of the sweep.
        fingerprints: data fingerprints computed so far (see :func:`_data_fingerprint`), shared
            by the cells of a sweep; None: a new cache.

    Raises:
        CheckpointError: the checkpoint is damaged or belongs to a different configuration, data
            set included (``train`` would refuse to resume it: ``train.check_fingerprint``'s rule).
        DatasetError: the data set cannot be read here, on the client.
    """
    from .train import CONFIG_KEYS, check_fingerprint

    path = os.path.join(cell.config["out"], "checkpoint.npz")
    if not os.path.exists(path):
        return False
    ckpt = load_checkpoint(path)
    wanted = {k: cell.config.get(k) for k in CONFIG_KEYS if k != "backend"}
    wanted["data_fingerprint"] = _data_fingerprint(cell.config, {} if fingerprints is None else fingerprints)
    check_compatible({k: v for k, v in ckpt["config"].items() if k != "backend"},
                     check_fingerprint(ckpt["config"], wanted, path), path)
    written_by = ckpt["config"].get("backend") or "numpy"   # as train() reads it
    backend = cell.config.get("backend") or "numpy"
    if written_by != backend:
        raise CheckpointError(f"{path} was written by the {written_by} backend, this sweep uses "
                              f"{backend}: use a new --out directory")
    return (ckpt["epoch"] >= cell.config["epochs"] and ckpt["batch"] == 0
            and _run_files_match(cell.config["out"], ckpt))


def _finished_cells(cells: Sequence[Cell]) -> list[str]:
    """The names of the finished ``cells`` (each data set's fingerprint computed once).

    Raises:
        CheckpointError: as :func:`_finished`, for the first cell of a different configuration.
        DatasetError: as :func:`_finished`.
    """
    fingerprints: dict[tuple, str] = {}
    return [c.name for c in cells if _finished(c, fingerprints)]


def _check_worker(config: dict, out_root: str, token: str) -> str:
    """On a worker: the data set loads and ``out_root`` is the client's directory and writable.

    Returns:
        ``host:pid`` of the worker.

    Raises:
        RuntimeError: one precise sentence naming the host and what it does not see.
    """
    import socket

    from .data import DatasetError, load_dataset

    host = f"{socket.gethostname()}:{os.getpid()}"
    try:
        load_dataset(config["dataset"], config.get("data"))
    except DatasetError as exc:
        raise RuntimeError(f"worker {host} cannot read the data set: {exc} (every worker needs the data set "
                           "at the same path: a shared file system, or --data DIR present on every machine)") from None
    try:
        with open(os.path.join(out_root, TOKEN_FILE), encoding="ascii") as f:
            seen = f.read().strip()
    except OSError as exc:
        raise RuntimeError(f"worker {host} does not see the output directory {out_root} ({exc.strerror}); it must "
                           "be on a file system shared by the client and all workers") from None
    if seen != token:
        raise RuntimeError(f"worker {host} sees a different {out_root} than the client (another sweep's token); "
                           "the output directory must be on a file system shared by the client and all workers")
    probe = os.path.join(out_root, f".probe-{socket.gethostname()}-{os.getpid()}")
    try:
        with open(probe, "w", encoding="ascii") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise RuntimeError(f"worker {host} cannot write to {out_root}: {exc.strerror}") from None
    return host


def _run_cell(config: dict, out_root: str, token: str, kill_after: tuple[str, int, str] | None) -> dict:
    """The Dask task of one cell: check the worker, then train (resuming from any checkpoint).

    ``kill_after = (out, epoch, marker)`` is a test hook: the first attempt of the cell ``out``
    to finish ``epoch`` kills its worker process (after the checkpoint is written), as a lost
    machine would; ``marker`` records that it happened, so the retry runs through.
    """
    from .train import train

    _check_worker(config, out_root, token)
    limit_threads(config.get("threads") or 1)
    ckpt = os.path.join(config["out"], "checkpoint.npz")
    start = load_checkpoint(ckpt)["epoch"] if os.path.exists(ckpt) else 0

    def on_epoch(record: dict) -> None:
        if kill_after is not None and kill_after[0] == config["out"] and record["epoch"] == kill_after[1] \
                and not os.path.exists(kill_after[2]):
            with open(kill_after[2], "w", encoding="ascii") as f:
                f.write(f"killed after epoch {record['epoch']}\n")
            os._exit(1)   # no clean-up, no exception: the process is gone, like a lost machine

    result = train(config, resume=True, progress=False, on_epoch=on_epoch)
    final = result.history[-1] if result.history else {}
    return {"out": config["out"], "start_epoch": start, "interrupted": result.interrupted,
            "test_acc": final.get("test_acc")}


def _write_token(out: str) -> str:
    os.makedirs(out, exist_ok=True)
    token = secrets.token_hex(16)
    tmp = os.path.join(out, TOKEN_FILE + ".tmp")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(token + "\n")
    os.replace(tmp, os.path.join(out, TOKEN_FILE))
    return token


def run_cells(client: Any, cells: Sequence[Cell], out: str, *, progress: bool = True, prog: str = "fp8emu sweep",
              log: Callable[[str], None] = print, kill_after: tuple[str, int, str] | None = None) -> SweepResult:
    """Train ``cells`` on the Dask ``client``'s cluster; finished cells are skipped, others resume.

    Args:
        client: a ``distributed.Client`` (see :func:`fp8emu.cluster.connect`).
        cells: the cells (e.g. from :func:`expand_grid`); their directories must be distinct.
        out: the sweep's directory, shared by the client and every worker.
        progress: one tqdm bar over finished epochs of all cells (when tqdm is installed).
        prog: the program name in messages.
        log: where one-line messages go.
        kill_after: test hook, see :func:`_run_cell`.

    Returns:
        A :class:`SweepResult`.

    Raises:
        CheckpointError: a cell's checkpoint is damaged or of a different configuration or data
            set (before anything runs).
        DatasetError: the client cannot read a data set that a cell's checkpoint was trained on
            (to compare their fingerprints).
        RuntimeError: a worker cannot see the data or the output directory, or a cell failed
            (the message names it); the other cells are cancelled and keep their checkpoints.
    """
    from distributed import wait

    outs = [c.config["out"] for c in cells]
    if len(set(map(os.path.normpath, outs))) != len(outs):
        raise ValueError("two cells share an output directory")
    skipped = _finished_cells(cells)
    todo = [c for c in cells if c.name not in skipped]
    for name in skipped:
        log(f"{prog}: {name} is finished; skipped")
    started_at: dict[str, int] = {}
    if not todo:
        return SweepResult(list(cells), skipped, started_at)
    token = _write_token(out)
    # Every worker present now checks its view before anything trains; tasks repeat the check
    # on workers that join later.
    try:
        client.run(_check_worker, todo[0].config, out, token)
    except RuntimeError as exc:
        raise RuntimeError(str(exc)) from None
    futures = {}
    for c in todo:
        log(f"{prog}: {c.name} -> {c.config['out']}")
        futures[client.submit(_run_cell, c.config, out, token, kill_after, pure=False,
                              key=f"fp8emu-cell-{secrets.token_hex(4)}-{c.name.replace(' ', '_')}")] = c
    bar = _bar(sum(c.config["epochs"] for c in cells), sum(cell_progress(c) for c in cells), progress)
    try:
        pending = set(futures)
        while pending:
            try:
                wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            if bar is not None:
                bar.n = sum(cell_progress(c) for c in cells)
                bar.refresh()
            for fut in [f for f in pending if f.done()]:
                pending.discard(fut)
                cell = futures[fut]
                if fut.status != "finished":
                    exc = fut.exception()
                    for other in pending:
                        other.cancel()
                    raise RuntimeError(f"{cell.name} failed: {type(exc).__name__}: {exc}; "
                                       f"{_after_failure(cell)}") from None
                res = fut.result()
                started_at[cell.name] = res["start_epoch"]
                acc = "" if res["test_acc"] is None else f", test accuracy {res['test_acc']:.4f}"
                log(f"{prog}: {cell.name} done{acc}")
    finally:
        if bar is not None:
            bar.close()
    return SweepResult(list(cells), skipped, started_at)


def _bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc="epochs", unit="epoch", dynamic_ncols=True)
