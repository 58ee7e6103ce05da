"""Loss scaling: static, dynamic (apex-style back-off) and the paper's enhanced dynamic scaling.

Use (one training step)::

    loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    applied = scaler.step(optimizer)        # unscale_, skip on Inf/NaN, update the scale
    optimizer.zero_grad()

or the three verbs separately: ``found = scaler.unscale_(params)``; ``if not found:
optimizer.step()``; ``scaler.update(found)``.  Scales are powers of two, so scaling and
unscaling are exact.  A step whose gradients hold Inf/NaN is skipped; when ``warn_after``
consecutive steps are skipped at a scale that cannot go lower (a static scale, or a dynamic one
at its floor), a ``RuntimeWarning`` says that training has stopped making progress.  Every
scaler exposes ``scale_value``, ``skipped_steps``,
``steps`` and ``state_dict()``/``load_state_dict()`` for logging and checkpoints.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ._checks import check_int
from .autograd import Tensor, ops
from .scaling import all_powers_of_two

__all__ = ["LossScaler", "StaticScaler", "DynamicScaler", "EnhancedScaler"]


def _check_pow2(value: float, name: str) -> float:
    if not all_powers_of_two(value):
        raise ValueError(f"{name}={value!r} must be a positive power of two (exact scaling)")
    return float(value)


class LossScaler:
    """Base class: a constant scale (subclasses change it in :meth:`_adjust`).

    Args:
        scale: the loss scale, a power of two.
        warn_after: warn after this many consecutive skipped steps at a scale that cannot
            go lower (0: never).
    """

    def __init__(self, scale: float = 1.0, *, warn_after: int = 10) -> None:
        self.scale_value = _check_pow2(scale, "scale")
        self.warn_after = check_int("warn_after", warn_after)
        self.steps = 0
        self.skipped_steps = 0
        self.stuck_steps = 0  # consecutive skips that could not lower the scale

    def scale(self, loss: Tensor) -> Tensor:
        """``loss * scale_value`` (call ``.backward()`` on the result).

        Args:
            loss: the scalar loss tensor.

        Returns:
            The scaled loss (exact: the scale is a power of two).
        """
        return ops.mul(loss, self.scale_value)

    def unscale_(self, params: Iterable[Tensor]) -> bool:
        """Divide every gradient by the scale in place; return True if any is Inf or NaN.

        Args:
            params: the parameters whose ``.grad`` to unscale (those without a gradient are skipped).

        Returns:
            Whether some gradient holds Inf or NaN (the step should be skipped).
        """
        found_inf = False
        inv = np.float32(1.0 / self.scale_value)
        for p in params:
            if p.grad is None:
                continue
            if not math.isfinite(float(p.grad.sum(dtype=np.float64))):
                found_inf = True
            if inv != 1:
                p.grad *= inv
        return found_inf

    def update(self, found_inf: bool) -> None:
        """Record the step's outcome, adjust the scale, warn when skipping cannot help any more.

        Args:
            found_inf: whether the step's gradients held Inf/NaN (it was skipped).

        Warns:
            RuntimeWarning: ``warn_after`` consecutive skipped steps at a scale that cannot go lower.
        """
        before = self.scale_value
        self.steps += 1
        if found_inf:
            self.skipped_steps += 1
        self._adjust(found_inf)
        if not found_inf or self.scale_value < before:
            self.stuck_steps = 0
            return
        self.stuck_steps += 1
        if self.stuck_steps == self.warn_after:
            warnings.warn(f"{type(self).__name__}: {self.stuck_steps} consecutive steps skipped for Inf/NaN "
                          f"gradients at loss scale {self.scale_value:g}, which cannot go lower (a static scale "
                          "or the floor); training makes no progress: lower the scale or its floor, or look "
                          "for NaN in the model or the data", RuntimeWarning, stacklevel=2)

    def _adjust(self, found_inf: bool) -> None:
        """Change the scale after a step (a constant scale here)."""

    def step(self, optimizer: Any) -> bool:
        """unscale_ the optimizer's gradients, step unless Inf/NaN, update; return whether it stepped.

        Args:
            optimizer: an :class:`fp8emu.optim.Optimizer` (anything with ``params`` and ``step()``).

        Returns:
            True when the optimizer stepped, False when the step was skipped.
        """
        found = self.unscale_(optimizer.params)
        if not found:
            optimizer.step()
        self.update(found)
        return not found

    def state_dict(self) -> dict[str, Any]:
        """The scaler's numeric state (scale, counters, settings) for checkpoints.

        Returns:
            ``{attribute: number}`` of every int/float attribute.
        """
        return {k: v for k, v in vars(self).items() if isinstance(v, int | float) and not isinstance(v, bool)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (each value keeps the attribute's type).

        Args:
            state: what :meth:`state_dict` returned.

        Raises:
            KeyError: a key that is not an attribute of this scaler.
        """
        for k, v in state.items():
            if k not in vars(self):
                raise KeyError(f"{type(self).__name__}.load_state_dict: unknown key {k!r}")
            setattr(self, k, type(getattr(self, k))(v))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale_value:g}, steps={self.steps}, skipped={self.skipped_steps})"


class StaticScaler(LossScaler):
    """A constant scale; steps with Inf/NaN gradients are still skipped."""


class DynamicScaler(LossScaler):
    """apex-style dynamic scaling (the baseline of the enhanced scaler).

    On Inf/NaN: skip the step and multiply the scale by ``backoff`` (not below ``min_scale``);
    after ``window`` consecutive clean steps: multiply it by ``growth`` (not above ``max_scale``).

    Args:
        init_scale: the starting scale, in ``[min_scale, max_scale]``.
        growth: the factor after ``window`` clean steps (a power of two, >= 1).
        backoff: the factor after an Inf/NaN step (a power of two, <= 1).
        window: the number of consecutive clean steps before growing (>= 1).
        min_scale: the lowest scale (a power of two).
        max_scale: the highest scale (a power of two).
        warn_after: as :class:`LossScaler`.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, *, growth: float = 2.0, backoff: float = 0.5,
                 window: int = 2000, min_scale: float = 1.0, max_scale: float = 2.0 ** 24, warn_after: int = 10) -> None:
        super().__init__(init_scale, warn_after=warn_after)
        _check_pow2(growth, "growth")
        _check_pow2(backoff, "backoff")
        _check_pow2(min_scale, "min_scale")
        _check_pow2(max_scale, "max_scale")
        window = check_int("window", window, low=1)
        if not (growth >= 1 and backoff <= 1 and min_scale <= max_scale):
            raise ValueError(f"need growth >= 1, backoff <= 1, min_scale <= max_scale; got "
                             f"{growth}, {backoff}, {min_scale}, {max_scale}")
        if not min_scale <= init_scale <= max_scale:
            raise ValueError(f"init_scale={init_scale:g} must lie in [min_scale, max_scale] = "
                             f"[{min_scale:g}, {max_scale:g}]")
        self.growth, self.backoff, self.window = float(growth), float(backoff), window
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.good_steps = 0

    def floor(self) -> float:
        """The lowest scale a back-off may reach now (``min_scale``).

        Returns:
            The floor, a power of two.
        """
        return self.min_scale

    def _adjust(self, found_inf: bool) -> None:
        if found_inf:
            self.scale_value = max(self.scale_value * self.backoff, self.floor())
            self.good_steps = 0
        else:
            self.good_steps += 1
            if self.good_steps >= self.window:
                self.scale_value = min(self.scale_value * self.growth, self.max_scale)
                self.good_steps = 0
        self.scale_value = max(self.scale_value, self.floor())


class EnhancedScaler(DynamicScaler):
    """Mellempudi et al.'s enhanced loss scaling: dynamic scaling with a rising minimum (as docs/recipes.md reconstructs it).

    The floor is a non-decreasing piecewise-constant function of the step count: ``floor``
    is a number, a sequence of ``(first_step, floor)`` pairs, or a callable ``step -> floor``
    (whose values are checked when they are used: each must be a power of two, at most
    ``max_scale``, like the floors of a number or a schedule).
    A back-off never goes below the floor, so spurious overflows cannot push the scale into
    the range where E5M2 errors underflow, and raising the floor raises the scale at once.
    Steps whose gradients hold Inf/NaN are still skipped (they cannot be applied).

    Args:
        init_scale: starting scale (raised to the floor if below it).
        floor: the schedule described above.
        **kw: growth, backoff, window, max_scale as in :class:`DynamicScaler`.

    Raises:
        ValueError: a floor that is not a power of two or exceeds ``max_scale`` (a callable's
            value: at construction for step 0, later at the step that returns it), or a
            decreasing schedule.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, *, floor: float | Sequence[tuple[int, float]] |
                 Callable[[int], float] = 2.0 ** 10, **kw: Any) -> None:
        if callable(floor):
            self._floor_fn = floor
        else:
            sched = [(0, float(floor))] if isinstance(floor, int | float) else sorted((int(s), float(f)) for s, f in floor)
            if any(b[1] < a[1] for a, b in zip(sched, sched[1:])):
                raise ValueError(f"EnhancedScaler floor schedule must be non-decreasing, got {sched}")
            for _, f in sched:
                _check_pow2(f, "floor")
            if sched and sched[-1][1] > kw.get("max_scale", 2.0 ** 24):
                raise ValueError(f"EnhancedScaler floor {sched[-1][1]:g} exceeds max_scale "
                                 f"{kw.get('max_scale', 2.0 ** 24):g}")
            self._floor_fn = lambda t: max([f for s, f in sched if s <= t], default=1.0)
        super().__init__(init_scale, min_scale=1.0, **kw)
        self.scale_value = max(self.scale_value, self.floor())

    def floor(self) -> float:
        """The lowest scale at the current step count (the ``floor`` schedule at ``steps``).

        Returns:
            The floor.

        Raises:
            ValueError: a callable floor returned a value that is not a power of two or
                exceeds ``max_scale`` (a number or schedule was checked at construction).
        """
        value = self._floor_fn(self.steps)
        # a callable's values cannot be checked in advance; a bad one would make the scale inexact
        # (not a power of two) or push it above max_scale
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not all_powers_of_two(value):
            raise ValueError(f"EnhancedScaler floor callable returned {value!r} at step {self.steps}; a floor must "
                             "be a positive power of two (exact scaling)")
        if value > self.max_scale:
            raise ValueError(f"EnhancedScaler floor callable returned {float(value):g} at step {self.steps}, which "
                             f"exceeds max_scale {self.max_scale:g}")
        return float(value)
