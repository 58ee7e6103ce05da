"""The `Function` base class and its `Context`: one class per op, forward above backward.

A ``Function`` subclass implements two static methods on plain NumPy arrays::

    forward(ctx, *arrays, **options) -> array
    backward(ctx, grad_out) -> one array per positional input (None where no gradient is needed)

``Function.apply(*tensors, **options)`` unwraps the tensors, runs ``forward`` and, when
gradients are enabled and some input requires one, records the context on the output so
that :meth:`Tensor.backward` can call ``backward`` later (teenygrad/minitorch style).

Contract for ``backward``: it must not modify ``grad_out`` in place (it may return it, or a
view of it, as a result: the engine copies before accumulating into a shared buffer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import tensor as _tensor

__all__ = ["Context", "Function"]


class Context:
    """What one op call keeps for its backward pass.

    Attributes:
        needs_input_grad: one bool per positional input (False for constants).
        saved: the arrays given to :meth:`save_for_backward`.
    """

    __slots__ = ("needs_input_grad", "saved", "__dict__")

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved: tuple[Any, ...] = ()

    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays (or anything) for ``backward`` in :attr:`saved`.

        Args:
            *values: what ``backward`` will need, in order.
        """
        self.saved = values


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad_out: np.ndarray) -> tuple[np.ndarray | None, ...]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> "_tensor.Tensor":
        """Run ``forward`` on the inputs' arrays; record the graph node when gradients are needed.

        Non-tensor positional inputs (arrays, scalars, None) are passed through as constants;
        ``backward`` returns one entry per positional input (None for constants).
        """
        Tensor = _tensor.Tensor
        tensors = tuple(x if isinstance(x, Tensor) else None for x in inputs)
        needs = tuple(t is not None and t.requires_grad for t in tensors)
        track = _tensor.is_grad_enabled() and any(needs)
        ctx = Context(needs)
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        out = cls.forward(ctx, *arrays, **kwargs)
        result = Tensor(out, requires_grad=track)
        if track:
            result._node = _tensor.Node(cls, ctx, tensors)
        return result
