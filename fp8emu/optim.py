"""Optimizers and learning-rate schedules ("sorted in order of increasing complexity").

The update is computed in float32.  The parameters themselves are the *master weights*:
with ``master_format`` (e.g. ``float16``, as in Mellempudi et al. 2019) every step writes the
new value back rounded into that format, with RNE or stochastic rounding (the paper's
toolkit: FP16 with SR), so the parameters stay exactly representable in it.
Stochastic write-back is reproducible: parameter ``i`` at step ``t`` uses
``quantize(..., seed=seed, stream=(t << 20) | i)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._checks import check_int, check_real
from .autograd import Tensor, threads_for
from .format import Format, RoundMode
from .formats import get_format
from .quantize import quantize

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "CosineLR", "master_stream"]


def master_stream(step: int, index: int) -> int:
    """The SR stream of parameter ``index``'s write-back at optimizer step ``step`` (1, 2, ...).

    Args:
        step: the optimizer step (1 for the first).
        index: the parameter's position in the optimizer's list (below ``2**20``).

    Returns:
        ``step << 20 | index``.
    """
    return (int(step) << 20) | int(index)


class Optimizer:
    """Base class: parameter list, master-weight write-back, zero_grad and state dicts.

    The learning rate lives in ``param_groups[0]["lr"]`` (also reachable as ``lr``), so a
    training loop can set ``group["lr"]`` the PyTorch way.

    Args:
        params: the parameters (tensors with ``requires_grad``).
        lr: learning rate.
        master_format: keep the parameters exactly representable in this format (None: float32).
        master_rounding: rounding of the write-back (``"nearest_even"`` or ``"stochastic"``).
        seed: seed of the stochastic write-back.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, *, master_format: Format | str | None = None,
                 master_rounding: RoundMode | str = RoundMode.NEAREST_EVEN, seed: int = 0) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if not all(isinstance(p, Tensor) and p.requires_grad for p in self.params):
            raise TypeError("optimizer params must be tensors with requires_grad=True")
        self.param_groups: list[dict[str, Any]] = [{"params": self.params, "lr": check_real("lr", lr, low=0)}]
        self.master_format = None if master_format is None else get_format(master_format)
        self.master_rounding = RoundMode.parse(master_rounding)
        self.seed = int(seed)
        self.steps = 0
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        if self.master_format is not None:  # start from representable master weights
            for p in self.params:
                quantize(p.data, self.master_format, out=p.data)

    @property
    def lr(self) -> float:
        """The learning rate (``param_groups[0]["lr"]``); settable, checked non-negative."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = check_real("lr", value, low=0)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (``grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        self.steps += 1
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad if p.grad.dtype == p.data.dtype else p.grad.astype(p.data.dtype)
            self._update(p.data, g, self.state[i])
            if self.master_format is not None:
                with threads_for(p.size):
                    quantize(p.data, self.master_format, rounding=self.master_rounding, out=p.data,
                             seed=self.seed if self.master_rounding is RoundMode.STOCHASTIC else None,
                             stream=master_stream(self.steps, i))

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``lr``, the step count and copies of the per-parameter buffers (for checkpoints).

        Returns:
            ``{"lr", "steps", "state"}`` with ``state`` one dict of arrays per parameter.
        """
        return {"lr": self.lr, "steps": self.steps,
                "state": [{k: v.copy() for k, v in s.items()} for s in self.state]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``lr``, the step count and the per-parameter buffers.

        Args:
            state: what :meth:`state_dict` returned (the buffers are copied).

        Raises:
            ValueError: when the number of parameters or a buffer's shape does not match.
        """
        if len(state["state"]) != len(self.params):
            raise ValueError(f"optimizer state has {len(state['state'])} parameters, this optimizer "
                             f"{len(self.params)}")
        for i, (p, s) in enumerate(zip(self.params, state["state"])):
            for k, v in s.items():
                if np.shape(v) != p.shape and np.ndim(v) != 0:
                    raise ValueError(f"optimizer state of parameter {i}, {k!r}: shape {np.shape(v)} != {p.shape}")
        self.lr, self.steps = float(state["lr"]), int(state["steps"])
        self.state = [{k: np.array(v, copy=True) for k, v in s.items()} for s in state["state"]]


class SGD(Optimizer):
    """SGD with momentum, Nesterov and L2 weight decay, exactly as ``torch.optim.SGD``.

    Args:
        params: the parameters.
        lr: the learning rate.
        momentum: the momentum factor (0: none).
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
        weight_decay: L2 penalty added to the gradient.
        dampening: damping of the momentum's gradient term, in [0, 1].
        **kw: ``master_format``, ``master_rounding``, ``seed`` of :class:`Optimizer`.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, *, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0, **kw: Any) -> None:
        super().__init__(params, lr, **kw)
        momentum, weight_decay = check_real("momentum", momentum, low=0), check_real("weight_decay", weight_decay, low=0)
        dampening = check_real("dampening", dampening, low=0, high=1)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0")
        self.momentum, self.nesterov, self.weight_decay, self.dampening = momentum, nesterov, weight_decay, dampening

    def _update(self, w, g, state):
        if self.weight_decay:
            g = g + np.float32(self.weight_decay) * w
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = np.array(g, dtype=w.dtype, copy=True)
            else:
                buf *= np.float32(self.momentum)
                buf += np.float32(1.0 - self.dampening) * g
            g = g + np.float32(self.momentum) * buf if self.nesterov else buf
        w -= np.float32(self.lr) * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as ``torch.optim.Adam``.

    Args:
        params: the parameters.
        lr: the learning rate.
        betas: the decay rates of the first and second moment estimates, each in [0, 1).
        eps: added to the denominator (> 0).
        weight_decay: L2 penalty added to the gradient.
        **kw: ``master_format``, ``master_rounding``, ``seed`` of :class:`Optimizer`.
    """

    decoupled = False

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, **kw: Any) -> None:
        super().__init__(params, lr, **kw)
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair of numbers, got {betas!r}")
        betas = tuple(check_real(f"betas[{i}]", b, low=0, high=1, high_open=True) for i, b in enumerate(betas))
        eps = check_real("eps", eps, low=0, low_open=True)
        self.betas, self.eps, self.weight_decay = betas, eps, check_real("weight_decay", weight_decay, low=0)

    def _update(self, w, g, state):
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                w *= np.float32(1.0 - self.lr * self.weight_decay)
            else:
                g = g + np.float32(self.weight_decay) * w
        if "m" not in state:
            state["m"], state["v"], state["t"] = np.zeros_like(w), np.zeros_like(w), np.zeros((), np.int64)
        m, v = state["m"], state["v"]
        state["t"] += 1
        t = int(state["t"])
        m *= np.float32(b1)
        m += np.float32(1 - b1) * g
        v *= np.float32(b2)
        v += np.float32(1 - b2) * (g * g)
        step = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v) / np.float32(math.sqrt(1 - b2 ** t))
        denom += np.float32(self.eps)
        w -= np.float32(step) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW`` (default 0.01).

    Args:
        params, lr, betas, eps: as :class:`Adam`.
        weight_decay: the decoupled decay: each step multiplies the weights by ``1 - lr * weight_decay``.
        **kw: ``master_format``, ``master_rounding``, ``seed`` of :class:`Optimizer`.
    """

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, **kw: Any) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, **kw)


# ---- schedules: call .step() once per optimizer step (or per epoch, as you count) --------------------
class StepLR:
    """lr = base_lr * gamma ** (t // step_size).

    Args:
        optimizer: the optimizer whose ``lr`` to set (its current ``lr`` is ``base_lr``).
        step_size: the number of :meth:`step` calls between decays (>= 1).
        gamma: the decay factor (>= 0).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        step_size, gamma = check_int("step_size", step_size, low=1), check_real("gamma", gamma, low=0)
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.base_lr, self.t = optimizer.lr, 0

    def lr_at(self, t: int) -> float:
        """The schedule's learning rate after ``t`` steps.

        Args:
            t: the number of :meth:`step` calls.

        Returns:
            The learning rate.
        """
        return self.base_lr * self.gamma ** (t // self.step_size)

    def step(self) -> float:
        """Advance the schedule by one and set the optimizer's ``lr``.

        Returns:
            The new learning rate.
        """
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        """The step count and base learning rate (for checkpoints).

        Returns:
            ``{"t", "base_lr"}``.
        """
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and set the optimizer's ``lr`` to the schedule's value there.

        Args:
            state: what :meth:`state_dict` returned.
        """
        self.t, self.base_lr = int(state["t"]), float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.t)


class CosineLR(StepLR):
    """Linear warm-up from 0 over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``.

    Args:
        optimizer: the optimizer whose ``lr`` to set (its current ``lr`` is the peak, ``base_lr``).
        total: the step at which the decay reaches ``min_lr`` (>= 1; it stays there after).
        warmup: the warm-up steps, ``0 <= warmup < total``.
        min_lr: the final learning rate.
    """

    def __init__(self, optimizer: Optimizer, total: int, warmup: int = 0, min_lr: float = 0.0) -> None:
        total, warmup, min_lr = check_int("total", total, low=1), check_int("warmup", warmup), check_real("min_lr", min_lr)
        if not warmup < total:
            raise ValueError(f"CosineLR needs total >= 1 and 0 <= warmup < total, got total={total}, warmup={warmup}")
        self.optimizer, self.total, self.warmup, self.min_lr = optimizer, total, warmup, min_lr
        self.base_lr, self.t = optimizer.lr, 0
        if warmup:
            optimizer.lr = 0.0

    def lr_at(self, t: int) -> float:
        """The schedule's learning rate after ``t`` steps.

        Args:
            t: the number of :meth:`step` calls.

        Returns:
            The learning rate.
        """
        if t < self.warmup:
            return self.base_lr * t / self.warmup
        frac = min(1.0, (t - self.warmup) / (self.total - self.warmup))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
