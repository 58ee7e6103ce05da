"""The torch backend of ``fp8emu train``/``compare`` (``--backend torch``).

:func:`fp8emu.train.train` runs one loop for both backends; this module supplies the torch
parts: the package's ResNets in PyTorch (:mod:`fp8emu.torch.models`), the recipe through
:func:`~fp8emu.torch.apply_recipe` (its master weights and loss scaler), the five verbs on torch
tensors, evaluation, and checkpoint state as NumPy arrays (``checkpoint.npz`` stores arrays; the
config's ``backend`` keeps a torch checkpoint from being resumed by the NumPy engine and back).
Everything runs on ``config["device"]`` (default ``"cpu"``).  On a CUDA device the run
first switches PyTorch to exact float32 and reproducible kernels (:func:`cuda_numerics`).
"""

from __future__ import annotations

from typing import Any

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..data import BatchLoader
from . import models
from .recipe import apply_recipe

__all__ = ["BACKEND", "build_parts", "cuda_numerics", "NONDETERMINISTIC_ON_CUDA", "train_step", "evaluate", "state", "load_state"]

_INT_KEY = "#int:"   # checkpoint dicts need str keys; torch optimizer states use parameter numbers


def _device(config: dict) -> torch.device:
    return torch.device(config.get("device") or "cpu")


#: Operations of the package's ResNets that PyTorch's documentation of
#: ``torch.use_deterministic_algorithms`` lists without a deterministic CUDA implementation:
#: they warn and stay non-deterministic (atomic adds in the backward pass of the global
#: average pool).  Not measured here.
NONDETERMINISTIC_ON_CUDA = ("AdaptiveAvgPool2d backward (adaptive_avg_pool2d_backward_cuda)",)


def cuda_numerics() -> None:
    """Process-wide PyTorch settings of a CUDA run: float32 GEMMs and convolutions in float32
    (TF32 off: by default cuDNN convolutions run in TF32, so "fp32" would silently round their
    operands to 10-bit mantissas) and deterministic algorithms where PyTorch has them.

    ``torch.use_deterministic_algorithms(True, warn_only=True)``: the operations in
    :data:`NONDETERMINISTIC_ON_CUDA` warn instead of failing.  cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` set before its first call to be deterministic; it is set here
    unless you set it (``setdefault``).  fp8emu's own roundings are deterministic on any device.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_parts(config: dict, ds: Any) -> tuple[Any, Any, Any, Any]:
    """``(model, recipe, optimizer, scaler)`` of a torch run (seeded with ``config["seed"]``).

    Args:
        config: the run configuration (model, width, recipe, seed, lr, momentum,
            weight_decay, device, threads; see :data:`fp8emu.train.CONFIG_KEYS`).
        ds: the data set (image shape and number of classes size the model).

    Raises:
        ValueError: a recipe PyTorch cannot run (see :func:`apply_recipe`).
    """
    torch.manual_seed(config["seed"])
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    depth = int(config["model"].removeprefix("resnet"))
    channels, height, width = ds.image_shape
    device = _device(config)
    if device.type == "cuda":
        cuda_numerics()
    model = models.resnet(depth, num_classes=ds.num_classes, in_channels=channels, width=config["width"],
                          cifar_stem=height <= 64).to(device)
    rec = apply_recipe(model, config["recipe"], sample=torch.zeros(1, channels, height, width, device=device),
                       seed=config["seed"])
    # the run's seed for the master write-back too (seed 2*seed+1), as the NumPy engine
    optimizer = rec.make_optimizer(seed=config["seed"], lr=config["lr"], momentum=config["momentum"],
                                   weight_decay=config["weight_decay"])
    return model, rec, optimizer, rec.make_scaler()


def train_step(parts: Any, x: np.ndarray, y: np.ndarray, *, label_smoothing: float = 0.0) -> tuple[float, int, bool]:
    """One training step; returns (loss, correct predictions, whether the update was skipped).

    Args:
        parts: the run's parts (model, optimizer, scaler of :func:`build_parts`).
        x: the input batch, float32 NCHW.
        y: the labels.
        label_smoothing: as ``torch.nn.functional.cross_entropy``.
    """
    device = next(parts.model.parameters()).device
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    logits = parts.model(xt)                                               # predict
    loss = F.cross_entropy(logits, yt, label_smoothing=label_smoothing)   # loss
    parts.scaler.scale(loss).backward()                                    # backward
    applied = parts.scaler.step(parts.optimizer)                           # step (unscale, skip on Inf/NaN)
    parts.optimizer.zero_grad()                                            # zero_grad
    return float(loss.item()), int((logits.argmax(dim=1) == yt).sum()), not applied


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray, *, batch_size: int, mean: tuple, std: tuple,
             interrupt: Any = None) -> tuple[float, float] | None:
    """Mean cross-entropy and top-1 accuracy (eval mode, no gradients); None when interrupted.

    Args:
        model: the torch model (training mode again on return).
        images, labels, batch_size, mean, std, interrupt: as for :func:`fp8emu.train.evaluate`.
    """
    device = next(model.parameters()).device
    loader = BatchLoader(images, labels, batch_size, mean=mean, std=std, shuffle=False)
    model.eval()
    loss_sum, correct = 0.0, 0
    try:
        with torch.no_grad():
            for x, y in loader.batches(0):
                yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
                logits = model(torch.from_numpy(x).to(device))
                loss_sum += float(F.cross_entropy(logits, yt, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yt).sum())
                if interrupt is not None and interrupt.requested:
                    return None
    finally:
        model.train()
    return loss_sum / len(labels), correct / len(labels)


def _to_arrays(node: Any) -> Any:
    """Torch state -> checkpoint state: tensors to NumPy arrays, int dict keys to tagged str."""
    if isinstance(node, torch.Tensor):
        return node.detach().cpu().numpy().copy()
    if isinstance(node, dict):
        return {(f"{_INT_KEY}{k}" if isinstance(k, int) else k): _to_arrays(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_to_arrays(v) for v in node)
    return node


def _to_tensors(node: Any) -> Any:
    if isinstance(node, np.ndarray):
        return torch.from_numpy(np.array(node))
    if isinstance(node, dict):
        return {(int(k[len(_INT_KEY):]) if isinstance(k, str) and k.startswith(_INT_KEY) else k): _to_tensors(v)
                for k, v in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_to_tensors(v) for v in node)
    return node


def state(parts: Any) -> dict:
    """Everything that decides the next step, as checkpoint-storable arrays.

    Args:
        parts: the run's parts (model, optimizer, scaler, recipe).
    """
    # master_seed: MasterWeights' state dict lacks the write-back seed, which must not change on resume
    return {"model": _to_arrays(parts.model.state_dict()), "optimizer": _to_arrays(parts.optimizer.state_dict()),
            "scaler": parts.scaler.state_dict(), "recipe": parts.recipe.state_dict(),
            "master_seed": int(parts.optimizer.seed)}


def load_state(parts: Any, saved: dict) -> None:
    """Restore :func:`state` into the run's parts.

    Args:
        parts: the run's parts (model, optimizer, scaler, recipe).
        saved: what :func:`state` returned (read back from a checkpoint).
    """
    parts.model.load_state_dict(_to_tensors(saved["model"]))
    parts.optimizer.load_state_dict(_to_tensors(saved["optimizer"]))
    parts.scaler.load_state_dict(saved["scaler"])
    parts.recipe.load_state_dict(saved["recipe"])
    if "master_seed" in saved:   # checkpoints of earlier versions lack it: fp8emu.train keeps their seed
        parts.optimizer.seed = int(saved["master_seed"])


class _Backend:
    """The functions :func:`fp8emu.train.train` calls (the NumPy engine has the same set)."""

    name = "torch"
    train_step = staticmethod(train_step)
    evaluate = staticmethod(evaluate)
    state = staticmethod(state)
    load_state = staticmethod(load_state)


BACKEND = _Backend()
