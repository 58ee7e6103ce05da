"""`Tensor`: a NumPy array with a gradient, and the reverse-mode engine (`backward`).

``backward()`` sorts the graph topologically (iteratively, so deep ResNets do not hit the
recursion limit) and walks it in reverse, calling each node's ``Function.backward`` once with
the summed gradient of its output.  Gradients of intermediate tensors are freed as soon as
their node has run, and each node's saved arrays are released with it, so peak memory is the
forward activations plus one layer's gradients.  Only leaves (tensors created by the user
with ``requires_grad=True``, e.g. parameters) keep ``.grad``; it accumulates across calls.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["Tensor", "no_grad", "enable_grad", "is_grad_enabled"]

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops record the graph (False inside :func:`no_grad`)."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    prev = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = prev


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager: ops inside record no graph (evaluation, optimizer updates)."""
    return _grad_mode(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager: re-enable graph recording inside :func:`no_grad`."""
    return _grad_mode(True)


class Node(NamedTuple):
    """The op call that produced a tensor: its Function class, context and tensor inputs."""

    fn: type
    ctx: Any
    inputs: tuple["Tensor | None", ...]  # one per positional input; None for constants


def _as_array(data: Any) -> np.ndarray:
    arr = np.asarray(data)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return arr
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float32)
    raise TypeError(f"Tensor data must be numeric, got dtype {arr.dtype}")


class Tensor:
    """An array (float32, or float64 for gradient checks) that can carry a gradient.

    Args:
        data: array-like; integers and float16 become float32, float32/float64 are kept
            (without a copy).
        requires_grad: whether :meth:`backward` should compute ``.grad`` for this tensor.
        name: optional label (used by error messages and statistics).
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "name", "__weakref__")
    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, name: str = "") -> None:
        self.data: np.ndarray = data.data if isinstance(data, Tensor) else _as_array(data)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._node: Node | None = None
        self.name = name

    # ---- basics -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The array's dtype."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.data.size

    def numpy(self) -> npt.NDArray[Any]:
        """The underlying array (not a copy)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return float(self.data.reshape(-1)[0]) if self.data.size == 1 else float(self.data)

    def detach(self) -> "Tensor":
        """The same array, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad = None``)."""
        self.grad = None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{grad})"

    # ---- the engine ---------------------------------------------------------------------------------
    def backward(self, grad: npt.ArrayLike | None = None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Args:
            grad: gradient of some scalar with respect to ``self``; defaults to 1 for a
                one-element tensor.

        Raises:
            RuntimeError: when ``self`` does not require grad.
            ValueError: when ``grad`` is omitted for a non-scalar, or has the wrong shape.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(was it computed under no_grad(), or from constants only?)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without grad needs a one-element tensor, got shape {self.shape}")
            g = np.ones_like(self.data)
        else:
            g = np.asarray(grad, dtype=self.data.dtype)
            if g.shape != self.shape:
                raise ValueError(f"grad has shape {g.shape}, expected {self.shape}")
        order = _toposort(self)
        grads: dict[int, np.ndarray] = {id(self): g}
        owned: set[int] = set()  # ids whose buffer the engine allocated (safe to add into in place)
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            node = t._node
            if node is None:  # a leaf
                if t.grad is None:
                    t.grad = g if id(t) in owned else g.copy()
                else:
                    t.grad += g
                continue
            in_grads = node.fn.backward(node.ctx, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            node.ctx.saved = ()  # free saved activations now
            for inp, ig in zip(node.inputs, in_grads):
                if ig is None or inp is None or not inp.requires_grad:
                    continue
                if ig.shape != inp.shape:
                    raise RuntimeError(f"{node.fn.__name__}.backward returned a gradient of shape {ig.shape} "
                                       f"for an input of shape {inp.shape}")
                key = id(inp)
                prev = grads.get(key)
                if prev is None:
                    grads[key] = ig
                elif key in owned:
                    prev += ig
                else:
                    grads[key] = prev + ig
                    owned.add(key)
        # release the graph: a second backward() through it is an error, as in PyTorch
        for t in order:
            if t._node is not None:
                t._node = _Released

    # ---- operators (implemented in ops.py) ---------------------------------------------------------
    def __add__(self, other: Any) -> "Tensor":
        return _ops().add(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return _ops().add(other, self)

    def __sub__(self, other: Any) -> "Tensor":
        return _ops().sub(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return _ops().sub(other, self)

    def __mul__(self, other: Any) -> "Tensor":
        return _ops().mul(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return _ops().mul(other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        return _ops().div(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return _ops().div(other, self)

    def __neg__(self) -> "Tensor":
        return _ops().neg(self)

    def __matmul__(self, other: Any) -> "Tensor":
        return _ops().matmul(self, other)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        """:func:`fp8emu.autograd.ops.sum` of this tensor.

        Args:
            axis: axis or axes to reduce (None: all).
            keepdims: keep the reduced axes with extent 1.
        """
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        """:func:`fp8emu.autograd.ops.mean` of this tensor.

        Args:
            axis: axis or axes to reduce (None: all).
            keepdims: keep the reduced axes with extent 1.
        """
        return _ops().mean(self, axis, keepdims)

    def reshape(self, *shape: Any) -> "Tensor":
        """This tensor with a new shape.

        Args:
            *shape: the new shape, as separate ints or one tuple.
        """
        return _ops().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape)

    def transpose(self, *axes: Any) -> "Tensor":
        """Permute the axes (reverse them when none are given), like NumPy's ``transpose``.

        Args:
            *axes: the permutation, as separate ints or one tuple/list (negative axes count
                from the end).
        """
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return _ops().transpose(self, axes or None)

    def flatten(self, start_dim: int = 1) -> "Tensor":
        """Merge dimensions ``start_dim..`` into one.

        Args:
            start_dim: the first merged dimension.
        """
        return _ops().flatten(self, start_dim)

    def relu(self) -> "Tensor":
        """``max(self, 0)``."""
        return _ops().relu(self)

    @property
    def T(self) -> "Tensor":
        """The tensor with its axes reversed."""
        return _ops().transpose(self, None)


class _ReleasedNode:
    """Stands in for the node of a tensor whose graph was consumed by backward()."""

    fn = None

    def __getattr__(self, _name: str) -> Any:
        raise RuntimeError("backward() through a graph a second time: its saved arrays were freed")


_Released: Any = _ReleasedNode()


def _toposort(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` that require grad, inputs before outputs (iterative DFS)."""
    order: list[Tensor] = []
    seen: set[int] = {id(root)}
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        stack.append((t, True))
        node = t._node
        if node is _Released:
            raise RuntimeError("backward() through a graph a second time: its saved arrays were freed")
        if node is not None:
            for inp in node.inputs:
                if inp is not None and inp.requires_grad and id(inp) not in seen:
                    seen.add(id(inp))
                    stack.append((inp, False))
    return order


def _ops() -> Any:
    from . import ops
    return ops
