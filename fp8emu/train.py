"""Train a model under a recipe: one readable loop, checkpoints, metrics, exact resume.

``train(config)`` builds the data, model, optimizer and loss scaler from a plain ``dict``
(the CLI's arguments, see :data:`fp8emu.cli.DEFAULTS`), then runs the five verbs per batch::

    logits = model(x)                      # predict
    loss = cross_entropy(logits, y)        # loss
    scaler.scale(loss).backward()          # backward (the recipe quantizes inside the GEMMs)
    scaler.step(optimizer)                 # step (skipped on Inf/NaN gradients)
    optimizer.zero_grad()                  # zero_grad

Everything that decides the next step lives in the checkpoint (parameters, buffers, optimizer
and master weights with the seed of their stochastic write-back, loss scaler, the recipe's
per-layer state such as the step counters of stochastic rounding, the data position and the
partial epoch's sums), so ``resume=True`` continues bit for bit like an uninterrupted run.  Ctrl-C is deferred to the end of the
current step; then a checkpoint is written and :class:`TrainResult` says ``interrupted``
(a second Ctrl-C aborts at once).

The run directory holds ``config.json``, ``checkpoint.npz`` and ``metrics.jsonl`` (one JSON
object per finished epoch, rewritten atomically from the checkpoint's history).  A directory
that already holds a run is never overwritten by accident: ``train`` refuses it unless told to
``resume`` or to ``overwrite``, and even then the earlier run's files stay untouched until the
new run has written its first checkpoint (end of epoch 1 or Ctrl-C), so a crash or a kill
before that loses nothing.  The checkpoint records a fingerprint of the data
(:meth:`fp8emu.data.Dataset.fingerprint`), and resuming on different data is refused, as is a
checkpoint whose contents do not fit the run (missing or misshapen arrays, a data position past
the epoch) or whose weights hold NaN/Inf.

Divergence stops the run with :class:`TrainingDiverged`: a step whose forward loss is not finite
(the loss is computed before loss scaling, so an overflow of the *scaled gradients* never makes it
so: those steps are skipped by the loss scaler and training goes on), or weights, optimizer
buffers or a test loss that are no longer finite at the end of an epoch.  Nothing is written
then: the checkpoint keeps the last finished epoch, and metrics.jsonl only finite numbers (it is
strict JSON; a non-finite number in a record would be written as ``null``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np

from .checkpoint import CheckpointError, check_compatible, load_checkpoint, remove_stale_temporaries, save_checkpoint
from .data import BatchLoader, Dataset, load_dataset

__all__ = ["TrainResult", "RunError", "TrainingDiverged", "train", "evaluate", "build", "CONFIG_KEYS", "RUN_FILES"]

# The configuration that must match for --resume (everything that changes the numbers).
CONFIG_KEYS = ("model", "width", "recipe", "dataset", "limit_train", "limit_test", "augment", "epochs",
               "batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "label_smoothing",
               "seed", "backend")


# The files of a run directory (the report adds its own beside them in compare's parent directory).
RUN_FILES = ("checkpoint.npz", "metrics.jsonl", "config.json")


class RunError(RuntimeError):
    """A run cannot start or go on: its directory is unusable or holds another run, the
    configuration does not fit the data, or training diverged.  The message is one line saying
    what to do."""


class TrainingDiverged(RunError):
    """Training produced a non-finite loss or non-finite weights (see the module docstring);
    the run's checkpoint, if any, still holds its last finished epoch."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the per-epoch records and whether Ctrl-C stopped it."""

    history: list[dict] = field(default_factory=list)
    interrupted: bool = False
    out: str = ""


class _DeferredInterrupt:
    """Turn the first SIGINT into a flag checked between steps; a second one raises at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C cannot reach us anyway
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nfp8emu: Ctrl-C: finishing this step, then writing a checkpoint (Ctrl-C again to abort)",
              flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress(total: int, desc: str, enabled: bool, initial: int = 0) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------- pieces

def load_data(config: dict) -> Dataset:
    ds = load_dataset(config["dataset"], config.get("data"))
    return ds.limit(config.get("limit_train"), config.get("limit_test"))


def _write_json_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_safe(node: Any) -> Any:
    """``node`` with every non-finite float replaced by None: ``json.dumps`` would write the bare
    tokens ``NaN``/``Infinity``, which are not JSON."""
    if isinstance(node, float) and not math.isfinite(node):
        return None
    if isinstance(node, dict):
        return {k: _json_safe(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_json_safe(v) for v in node]
    return node


def _write_metrics(out: str, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the history (atomic: never a half-written file; strict JSON)."""
    _write_json_atomic(os.path.join(out, "metrics.jsonl"),
                       "".join(json.dumps(_json_safe(r), allow_nan=False) + "\n" for r in history))


def _new_epoch_sums() -> dict:
    # timed_*: the steps after the run's first, whose time includes compiling the kernels
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "skipped": 0, "train_time": 0.0, "data_time": 0.0,
            "timed_seen": 0, "timed_time": 0.0, "first_step_s": None, "scale_trace": [], "stats": {}}


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray, *, batch_size: int, mean: tuple, std: tuple,
             interrupt: Any = None) -> tuple[float, float] | None:
    """Mean cross-entropy and top-1 accuracy of ``model`` (eval mode, no graph) on a split.

    Returns None when ``interrupt.requested`` became true during the pass.

    Args:
        model: the model (its ``eval()``/``train()`` modes are switched; training mode on return).
        images: the split's images, uint8 (N, C, H, W).
        labels: the split's labels (N,).
        batch_size: images per forward pass.
        mean: the per-channel normalisation mean.
        std: the per-channel normalisation standard deviation.
        interrupt: an object whose ``requested`` attribute becomes true to stop early (None: never).
    """
    from .autograd import Tensor, no_grad, ops

    loader = BatchLoader(images, labels, batch_size, mean=mean, std=std, shuffle=False)
    model.eval()
    loss_sum, correct = 0.0, 0
    with no_grad():
        for x, y in loader.batches(0):
            logits = model(Tensor(x))
            loss_sum += float(ops.cross_entropy(logits, y).item()) * len(y)
            correct += int((logits.data.argmax(axis=1) == y).sum())
            if interrupt is not None and interrupt.requested:
                model.train()
                return None
    model.train()
    return loss_sum / len(labels), correct / len(labels)


# ------------------------------------------------------------------------------------------ statistics

def _epoch_stats(state: dict) -> Any:
    """The epoch's :class:`fp8emu.stats.QuantStats` from its checkpointed sums.

    Checkpoints written before the statistics moved to :mod:`fp8emu.stats` hold
    ``[flushed, overflow, nonzero, elements]`` lists; they convert (saturation and SNR of the
    steps sampled before the interruption are then missing from that epoch).
    """
    from .stats import QuantStats

    def current(c: Any) -> dict:
        if not isinstance(c, list):
            return c
        return dict(zip(("flushed", "overflow", "nonzero", "elements"), c)) | {"saturated": 0, "signal": 0.0,
                                                                                "noise": 0.0}
    stats = QuantStats()
    stats.load_state_dict({layer: {tclass: current(c) for tclass, c in per_class.items()}
                           for layer, per_class in state.items()})
    return stats


# ------------------------------------------------------------------------------------------ the engine

@dataclass
class Parts:
    """What one training run is made of (built by :func:`build`)."""

    model: Any
    recipe: Any
    optimizer: Any
    scaler: Any
    lr_at: Any  # step -> learning rate
    backend: Any = None  # train_step/evaluate/state/load_state of the backend (None: the NumPy engine's)


def build(config: dict, ds: Dataset, steps_per_epoch: int) -> Parts:
    """Model, recipe, optimizer, loss scaler and LR schedule from ``config`` (seeded).

    Args:
        config: the run configuration (model, width, recipe, seed, lr, epochs, ...; see
            :data:`CONFIG_KEYS`).
        ds: the data set (image shape and number of classes size the model).
        steps_per_epoch: optimizer steps per epoch (for the LR schedule).
    """
    from . import nn
    from .recipes import get_recipe

    total = config["epochs"] * steps_per_epoch
    if _backend_name(config) == "torch":
        from .torch.train import BACKEND, build_parts

        model, recipe, optimizer, scaler = build_parts(config, ds)
        return Parts(model, recipe, optimizer, scaler, _schedule(config, optimizer, total, steps_per_epoch), BACKEND)
    if (config.get("device") or "cpu") != "cpu":
        raise ValueError(f"device {config['device']!r} needs backend 'torch' (the NumPy engine runs on the CPU)")
    nn.manual_seed(config["seed"])
    builder = {"resnet18": nn.resnet18, "resnet34": nn.resnet34, "resnet50": nn.resnet50}[config["model"]]
    channels, height, _ = ds.image_shape
    model = builder(num_classes=ds.num_classes, in_channels=channels, width=config["width"],
                    cifar_stem=height <= 64)  # small images: 3x3 stem, no max-pool
    recipe = get_recipe(config["recipe"])
    recipe.apply(model, seed=config["seed"])
    # the run's seed for the master write-back too (seed 2*seed+1): each seed of a sweep its own rounding noise
    optimizer = recipe.make_optimizer(model.parameters(), seed=config["seed"], lr=config["lr"],
                                      momentum=config["momentum"], weight_decay=config["weight_decay"])
    scaler = recipe.make_scaler()
    return Parts(model, recipe, optimizer, scaler, _schedule(config, optimizer, total, steps_per_epoch))


def _schedule(config: dict, optimizer: Any, total: int, steps_per_epoch: int) -> Any:
    """step -> learning rate: a pure function of the step, so resuming needs no schedule state."""
    from .optim import CosineLR, StepLR

    kind, lr = config["schedule"], config["lr"]
    if config["warmup_epochs"] and kind != "cosine":  # train() refuses this before writing anything
        raise ValueError(f"warmup_epochs needs schedule='cosine', not {kind!r}")
    if kind == "cosine":
        return CosineLR(optimizer, total, warmup=config["warmup_epochs"] * steps_per_epoch).lr_at
    if kind == "step":  # /10 after each third of training
        return StepLR(optimizer, step_size=max(1, -(-total // 3))).lr_at
    return lambda step: lr


def train_step(parts: Parts, x: np.ndarray, y: np.ndarray, *, label_smoothing: float = 0.0) -> tuple[float, int, bool]:
    """One training step; returns (loss, correct predictions, whether the update was skipped)."""
    from .autograd import Tensor, ops

    with np.errstate(over="ignore", invalid="ignore"):  # overflowing scaled gradients are expected
        logits = parts.model(Tensor(x))                                # predict
        loss = ops.cross_entropy(logits, y, label_smoothing)           # loss
        parts.scaler.scale(loss).backward()                            # backward
        applied = parts.scaler.step(parts.optimizer)                   # step (unscale, skip on Inf/NaN)
        parts.optimizer.zero_grad()                                    # zero_grad
    correct = int((logits.data.argmax(axis=1) == y).sum())
    return float(loss.item()), correct, not applied


def _backend_name(config: dict) -> str:
    return config.get("backend") or "numpy"


#: Entries of a checkpoint's state that checkpoints of earlier versions lack (resuming one
#: supplies them, see :func:`_keep_legacy_master_seed`).
_NEWER_STATE_KEYS = ("master_seed",)


def _state(parts: Parts) -> dict:
    # master_seed: the optimizer's state dict lacks the write-back seed, which must not change on resume
    return {"model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
            "scaler": parts.scaler.state_dict(), "recipe": parts.recipe.state_dict(parts.model),
            "master_seed": int(parts.optimizer.seed)}


def _load_state(parts: Parts, state: dict) -> None:
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scaler.load_state_dict(state["scaler"])
    parts.recipe.load_state_dict(parts.model, state["recipe"])
    if "master_seed" in state:
        parts.optimizer.seed = int(state["master_seed"])


def _keep_legacy_master_seed(parts: Parts, config: dict, path: str) -> None:
    """Resuming a checkpoint written before the master write-back seed followed the run's seed.

    Such a run wrote its master weights back with the recipe's own seed (``2 * recipe.seed + 1``,
    whatever ``--seed`` said).  The resumed run keeps that seed, so it continues the interrupted
    run bit for bit instead of switching its rounding noise mid-run; a note says so when a new
    run of this configuration would use another seed.  (Works for both backends: their
    optimizers carry the seed as ``seed``.)
    """
    from .recipes import get_recipe

    legacy = get_recipe(config["recipe"]).master_seed()
    if legacy != parts.optimizer.seed:
        print(f"fp8emu: note: {path} was written before the master-weight write-back seed followed --seed; the "
              f"resumed run keeps the write-back seed it used ({legacy}) instead of {parts.optimizer.seed} "
              f"(2 * {config['seed']} + 1, what a new run with --seed {config['seed']} uses), so it continues "
              "the interrupted run exactly", file=sys.stderr, flush=True)
        parts.optimizer.seed = legacy


class _NumpyBackend:
    """The NumPy engine's side of the loop (``Parts.backend`` of the torch backend has the same set)."""

    # the module's functions looked up at call time (tests replace them)
    name = "numpy"
    train_step = staticmethod(lambda *args, **kw: train_step(*args, **kw))
    evaluate = staticmethod(lambda *args, **kw: evaluate(*args, **kw))
    state = staticmethod(lambda parts: _state(parts))
    load_state = staticmethod(lambda parts, state: _load_state(parts, state))


# --------------------------------------------------------------------------------------------- the loop

def _prepare_run_dir(out: str) -> None:
    """Create ``out`` (and its parents) and check that files can be written there.

    Raises:
        RunError: ``out`` is a file, lies under a file, or cannot be created or written.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"--out {out} is a file, not a directory; choose a directory for the run")
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # the checkpoint's temporary file goes here too
            pass
    except OSError as exc:
        raise RunError(f"cannot use {out} as the run directory: {exc.strerror or exc} "
                       f"({exc.filename or out}); choose another --out") from None


def _earlier_run(out: str) -> str | None:
    """What of an earlier run ``out`` holds (None: nothing that a new run could destroy)."""
    found = [name for name in RUN_FILES[:2] if os.path.exists(os.path.join(out, name))
             and os.path.getsize(os.path.join(out, name)) > 0]
    return " and ".join(found) or None


def _check_batch_size(config: dict, ds: Dataset) -> None:
    n, batch = len(ds.train_labels), config["batch_size"]
    if n < batch:
        where = " (--limit-train)" if config.get("limit_train") else ""
        raise RunError(f"--batch-size {batch} is larger than the {n} training images{where}: no full batch to "
                       "train on; lower --batch-size or use more images")


def check_fingerprint(saved: dict, expected: dict, path: str) -> dict:
    """``expected`` minus the data fingerprint when ``saved`` predates fingerprints (with a warning)."""
    if "data_fingerprint" in saved:
        return expected
    print(f"fp8emu: warning: {path} was written before checkpoints recorded a fingerprint of the data; "
          "resuming without checking that the data set is the same", file=sys.stderr, flush=True)
    return {k: v for k, v in expected.items() if k != "data_fingerprint"}


def _nonfinite_array(state: dict) -> str | None:
    """The name of the first model or optimizer array of ``state`` holding NaN/Inf (None: all finite)."""
    def walk(node: Any, where: str) -> str | None:
        if isinstance(node, dict):
            return next((w for k, v in node.items() if (w := walk(v, f"{where}/{k}"))), None)
        if isinstance(node, list | tuple):
            return next((w for i, v in enumerate(node) if (w := walk(v, f"{where}[{i}]"))), None)
        if isinstance(node, np.ndarray | np.generic | float) and np.asarray(node).dtype.kind in "fc":
            return None if np.isfinite(node).all() else where.lstrip("/")
        return None
    return walk({"model": state.get("model"), "optimizer": state.get("optimizer")}, "")


def _structure_mismatch(saved: Any, fresh: Any, where: str) -> str | None:
    """How ``saved`` differs from ``fresh`` in keys, array shapes and dtypes, or types (None: it fits)."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return f"{where} is a {type(saved).__name__}, expected a dict"
        missing, extra = sorted(set(fresh) - set(saved)), sorted(set(saved) - set(fresh))
        if missing or extra:
            return f"{where} lacks {missing[:3]} / has unknown {extra[:3]}" if missing and extra else \
                f"{where} lacks {missing[:3]}" if missing else f"{where} has unknown keys {extra[:3]}"
        return next((m for k in fresh if (m := _structure_mismatch(saved[k], fresh[k], f"{where}/{k}"))), None)
    if isinstance(fresh, np.ndarray):
        if not isinstance(saved, np.ndarray):
            return f"{where} is a {type(saved).__name__}, expected an array"
        if saved.shape != fresh.shape or saved.dtype != fresh.dtype:
            return f"{where} is {saved.dtype}{list(saved.shape)}, this run's model has {fresh.dtype}{list(fresh.shape)}"
        return None
    if isinstance(fresh, int | float) and not isinstance(fresh, bool):
        ok = isinstance(saved, int | float | np.integer | np.floating) and not isinstance(saved, bool)
        return None if ok else f"{where} is {saved!r}, expected a number"
    return None


def _unresumable(path: str, what: str, why: str = "it is damaged or was not written by fp8emu train"
                 ) -> CheckpointError:
    return CheckpointError(f"{path} cannot be resumed: {what}; {why}. Start the run again with --overwrite "
                           "(which replaces it) or choose another --out")


def _check_checkpoint_entries(ckpt: Any, path: str) -> None:
    """Refuse a checkpoint without the entries of a training state, or with entries of the wrong type
    (before its configuration is compared).

    Raises:
        CheckpointError: one line naming the checkpoint, what is wrong, and what to do.
    """
    def bad(what: str) -> CheckpointError:
        return _unresumable(path, what)

    kinds = {"config": dict, "state": dict, "epoch": int, "batch": int, "step": int, "history": list, "sums": dict}
    if not isinstance(ckpt, dict):
        raise bad(f"it holds a {type(ckpt).__name__}, not a training state")
    for key, kind in kinds.items():
        if key not in ckpt:
            raise bad(f"it has no {key!r} entry")
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise bad(f"its {key!r} entry is a {type(ckpt[key]).__name__}, expected a {kind.__name__}")


def _check_checkpoint_state(ckpt: dict, path: str, config: dict, steps_per_epoch: int, fresh: dict) -> None:
    """Refuse a checkpoint (of this run's configuration) whose contents cannot be this run's: the data
    position, the model's arrays (against the freshly built model's ``fresh`` state), the loss
    scaler's and the optimizer's keys, and finite weights.

    Raises:
        CheckpointError: one line naming the checkpoint, what is wrong, and what to do.
    """
    def bad(what: str, *why: str) -> CheckpointError:
        return _unresumable(path, what, *why)

    epoch, batch, step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
    # batch == steps_per_epoch: interrupted between the epoch's last step and its evaluation
    if not (0 <= epoch <= config["epochs"] and 0 <= batch <= steps_per_epoch and (epoch < config["epochs"] or not batch)
            and step == epoch * steps_per_epoch + batch and len(ckpt["history"]) == epoch):
        raise bad(f"its position (epoch {epoch}, batch {batch}, step {step}, {len(ckpt['history'])} finished epochs) "
                  f"does not fit {config['epochs']} epochs of {steps_per_epoch} batches")
    if not all(isinstance(r, dict) for r in ckpt["history"]):
        raise bad("its history holds entries that are not epoch records")
    state = ckpt["state"]
    missing = [k for k in fresh if k not in state and k not in _NEWER_STATE_KEYS]
    if missing:
        raise bad(f"its state lacks {', '.join(map(repr, missing))}")
    seed = state.get("master_seed", 0)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise bad(f"its state's 'master_seed' is {seed!r}, expected an int")
    for part in ("model", "scaler", "optimizer"):
        # the optimizer's per-parameter buffers appear with its first step: only its own keys are compared
        template = fresh[part] if part != "optimizer" else {k: None for k in fresh[part]}
        saved = state[part] if part != "optimizer" or not isinstance(state[part], dict) else \
            {k: None for k in state[part]}
        mismatch = _structure_mismatch(saved, template, part)
        if mismatch:
            raise bad(mismatch)
    where = _nonfinite_array(state)
    if where:
        raise bad(f"{where} holds NaN or Inf", "the run that wrote it diverged (or the file was altered), and "
                  "training on from it cannot recover")


def train(config: dict, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train per ``config`` into ``config["out"]``; see the module docstring.

    Args:
        config: the run's configuration (keys of :data:`fp8emu.cli.DEFAULTS` plus ``out``).
        resume: continue from the checkpoint in ``out`` (a fresh start when there is none).
        overwrite: replace an earlier run in ``out`` (its files are replaced when this run
            writes its first checkpoint, not before).
        progress: show tqdm progress bars when tqdm is installed.
        on_epoch: called with each epoch's record once its checkpoint and metrics are on disk
            (the sweep's fault-injection tests hook in there).

    Raises:
        DatasetError: the data set is missing or corrupt.
        CheckpointError: ``resume`` with a damaged checkpoint, one of a different configuration
            or data set, one whose contents do not fit the model, or one with non-finite weights.
        RunError: ``out`` is unusable, or holds an earlier run and neither ``resume`` nor
            ``overwrite`` was given, or the batch size exceeds the training images.
        TrainingDiverged: (a RunError) a non-finite loss or weights; the checkpoint keeps the
            last finished epoch.
    """
    out = config["out"]
    if config["warmup_epochs"] and config["schedule"] != "cosine":
        raise RunError(f"--warmup-epochs {config['warmup_epochs']} needs --schedule cosine: the {config['schedule']} "
                       "schedule has no warm-up")
    ds = load_data(config)  # data errors before anything is written
    _check_batch_size(config, ds)
    _prepare_run_dir(out)
    ckpt_path = os.path.join(out, "checkpoint.npz")
    loader = BatchLoader(ds.train_images, ds.train_labels, config["batch_size"], mean=ds.mean, std=ds.std,
                         augment=config["augment"], pad=ds.pad, flip=ds.flip, drop_last=True, seed=config["seed"])
    saved_config = {k: config.get(k) for k in CONFIG_KEYS} | {"data_fingerprint": ds.fingerprint()}
    saved_config["backend"] = _backend_name(config)
    resuming = resume and os.path.exists(ckpt_path)
    earlier = _earlier_run(out)
    if earlier and not resuming and not overwrite:
        how = ("it has no checkpoint to resume from; " if resume else "continue it with --resume, ")
        raise RunError(f"{out} holds an earlier run ({earlier}); {how}replace it with --overwrite, "
                       "or choose another --out")
    parts = build(config, ds, len(loader))
    be = parts.backend or _NumpyBackend
    epoch, batch, step, history, sums = 0, 0, 0, [], _new_epoch_sums()
    if resuming:
        ckpt = load_checkpoint(ckpt_path)
        _check_checkpoint_entries(ckpt, ckpt_path)
        written_by = ckpt["config"].get("backend") or "numpy"   # checkpoints before backends: the NumPy engine
        if written_by != saved_config["backend"]:
            raise CheckpointError(f"{ckpt_path} was written by the {written_by} backend and this run uses --backend "
                                  f"{saved_config['backend']}; checkpoints do not move between backends: resume "
                                  f"with --backend {written_by} or start a new --out directory")
        check_compatible({**ckpt["config"], "backend": written_by},
                         check_fingerprint(ckpt["config"], saved_config, ckpt_path), ckpt_path)
        _check_checkpoint_state(ckpt, ckpt_path, config, len(loader), be.state(parts))
        try:
            be.load_state(parts, ckpt["state"])
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            text = f"no entry {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else " ".join(str(exc).split())
            raise CheckpointError(f"{ckpt_path} cannot be resumed: its state does not fit this run ({text}); it is "
                                  "damaged or was not written by fp8emu train. Start the run again with --overwrite "
                                  "(which replaces it) or choose another --out") from None
        if "master_seed" not in ckpt["state"]:
            _keep_legacy_master_seed(parts, config, ckpt_path)
        epoch, batch, step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        history, sums = ckpt["history"], ckpt["sums"]
        print(f"fp8emu: resuming {out} at epoch {epoch + 1}, batch {batch} (step {step})", flush=True)
    elif earlier:
        print(f"fp8emu: {out} holds an earlier run; it is replaced when this run writes its first checkpoint",
              flush=True)
    elif resume:
        print(f"fp8emu: no checkpoint in {out}; starting from scratch", flush=True)
    remove_stale_temporaries(ckpt_path)
    for name in RUN_FILES[1:]:  # torn by a kill during _write_json_atomic
        remove_stale_temporaries(os.path.join(out, name))

    def diverged(what: str) -> TrainingDiverged:
        kept = (f"{ckpt_path} keeps the last finished epoch ({len(history)})" if history else
                "no checkpoint of this run was written")
        return TrainingDiverged(f"training diverged in epoch {epoch + 1}: {what}. {kept}; lower --lr "
                                f"(now {config['lr']:g}) or choose another recipe, and start again with --overwrite "
                                "(resuming would repeat the same steps)")

    def checkpoint(state: dict | None = None) -> None:
        state = state or be.state(parts)
        where = _nonfinite_array(state)
        if where:  # never replace the last good checkpoint with a diverged state
            raise diverged(f"{where} holds NaN or Inf")
        save_checkpoint(ckpt_path, {"config": saved_config, "state": state, "epoch": epoch,
                                    "batch": batch, "step": step, "history": history, "sums": sums})
        # Only now may an earlier run's config and metrics go: this run has a checkpoint of its own.
        write_run_files()

    def write_run_files() -> None:
        """config.json and metrics.jsonl from the configuration and the history (each atomic)."""
        _write_json_atomic(os.path.join(out, "config.json"),
                           json.dumps(config | {"data_fingerprint": saved_config["data_fingerprint"]},
                                      indent=1, sort_keys=True))
        _write_metrics(out, history)

    result = TrainResult(history, out=out)

    def stop(state: dict | None = None) -> TrainResult:
        checkpoint(state)
        result.interrupted = True
        print(f"fp8emu: checkpoint written to {ckpt_path}; continue with --resume", flush=True)
        return result

    if resuming:
        # a run killed between its checkpoint and these files (or a sweep worker lost there) left
        # them an epoch short; at the last epoch the loop below writes nothing, so write them now
        write_run_files()
    stats_every = int(config.get("stats_every") or 0)
    first_step = True  # of this call: it compiles the kernels it is the first to use (or loads them from the cache)
    with _DeferredInterrupt() as interrupt:
        while epoch < config["epochs"]:
            bar = _progress(len(loader), f"{config['recipe']} epoch {epoch + 1}/{config['epochs']}", progress, batch)
            t_data = time.perf_counter()
            epoch_stats = _epoch_stats(sums["stats"])
            sums = _new_epoch_sums() | sums  # checkpoints of older versions lack the newer keys
            for x, y in loader.batches(epoch, batch):
                if first_step:
                    print(f"fp8emu {config['recipe']}: the first step compiles the kernels (up to a minute on a "
                          "fresh installation; seconds once Numba has cached them)", flush=True)
                t_step = time.perf_counter()
                parts.optimizer.lr = parts.lr_at(step)
                # every stats_every-th step, and the last of each epoch (no epoch without numerics)
                collect = stats_every and (step % stats_every == 0 or batch == len(loader) - 1)
                with (epoch_stats if collect else contextlib.nullcontext()):
                    loss, correct, skipped = be.train_step(parts, x, y, label_smoothing=config["label_smoothing"])
                if not math.isfinite(loss):  # see the module docstring: this is not a loss-scale overflow
                    if bar is not None:
                        bar.close()
                    raise diverged(f"the loss of batch {batch + 1} is {loss} (before loss scaling)")
                if collect:
                    sums["stats"] = epoch_stats.state_dict()
                t_end = time.perf_counter()
                step, batch = step + 1, batch + 1
                sums["loss_sum"] += loss * len(y)
                sums["correct"] += correct
                sums["seen"] += len(y)
                sums["skipped"] += int(skipped)
                sums["scale_trace"].append(float(parts.scaler.scale_value))
                sums["data_time"] += t_step - t_data
                sums["train_time"] += t_end - t_data
                if first_step:
                    sums["first_step_s"], first_step = t_end - t_data, False
                else:
                    sums["timed_seen"] += len(y)
                    sums["timed_time"] += t_end - t_data
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sums['loss_sum'] / sums['seen']:.3f}",
                                    acc=f"{sums['correct'] / sums['seen']:.3f}",
                                    scale=f"{parts.scaler.scale_value:g}", img_s=f"{_images_per_s(sums):.1f}")
                t_data = time.perf_counter()
                if interrupt.requested:
                    break
            if bar is not None:
                bar.close()
            if interrupt.requested:
                return stop()
            before_eval = be.state(parts)  # evaluation may touch recipe state (amax histories)
            test = be.evaluate(parts.model, ds.test_images, ds.test_labels, batch_size=config["eval_batch_size"],
                            mean=ds.mean, std=ds.std, interrupt=interrupt)
            if test is None:  # interrupted during evaluation: save the end of the epoch's training
                return stop(before_eval)
            if not all(math.isfinite(v) for v in test):
                raise diverged(f"the test loss is {test[0]}")
            record = _epoch_record(epoch, step, sums, test, parts)
            history.append(record)
            epoch, batch, sums = epoch + 1, 0, _new_epoch_sums()
            checkpoint()
            if on_epoch is not None:
                on_epoch(record)
            print(f"fp8emu {config['recipe']} epoch {record['epoch']}/{config['epochs']}: "
                  f"train loss {record['train_loss']:.4f} acc {100 * record['train_acc']:.2f}%  "
                  f"test loss {record['test_loss']:.4f} acc {100 * record['test_acc']:.2f}%  "
                  f"scale {record['loss_scale']:g}  skipped {record['skipped_steps']}  "
                  f"{record['images_per_s']:.1f} img/s", flush=True)
    return result


def _images_per_s(sums: dict) -> float:
    """Training throughput without the run's first step (kernel compilation), unless that step
    was the epoch's only one."""
    if sums["timed_seen"]:
        return sums["timed_seen"] / max(sums["timed_time"], 1e-9)
    return sums["seen"] / max(sums["train_time"], 1e-9)


def _epoch_record(epoch: int, step: int, sums: dict, test: tuple[float, float], parts: Parts) -> dict:
    n = max(sums["seen"], 1)
    return {"epoch": epoch + 1, "step": step, "train_loss": sums["loss_sum"] / n, "train_acc": sums["correct"] / n,
            "test_loss": test[0], "test_acc": test[1], "lr": parts.optimizer.lr,
            "loss_scale": float(parts.scaler.scale_value), "skipped_steps": sums["skipped"],
            "images_per_s": _images_per_s(sums), "first_step_s": sums["first_step_s"],
            "data_time_frac": sums["data_time"] / max(sums["train_time"], 1e-9),
            "epoch_time_s": sums["train_time"], "loss_scale_trace": sums["scale_trace"],
            "stats": _epoch_stats(sums["stats"]).summary()}
