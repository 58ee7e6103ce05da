"""The differentiable ops: one `Function` per op, forward above backward, plus thin wrappers.

Arrays stay in the inputs' dtype (float32 in training; float64 is accepted everywhere for
gradient checks).  Heavy element-wise passes (batch norm, ReLU, pooling) are fused Numba
kernels from :mod:`._kernels`; GEMMs and convolutions go through the layer below
(:func:`fp8emu.gemm.matmul`, :mod:`fp8emu.conv`), quantized by a :class:`LayerQuant`
policy when one is given (the rules are in :mod:`.qgemm`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import conv as _conv
from .. import gemm as _gemm
from . import _kernels as _k
from .function import Context, Function
from .qgemm import LINEAR_PRODUCTS, ConvProducts, SavedOperands, quantized_backward, quantized_forward
from .quant import LayerQuant
from .tensor import Tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "exp", "log", "sum", "mean", "reshape", "transpose", "flatten",
    "matmul", "relu", "add_relu", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm2d",
    "log_softmax", "cross_entropy", "dropout", "concat", "linear", "conv2d",
]


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` down to ``shape`` (the inverse of NumPy broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _const(x: Any, like: Tensor) -> Any:
    """A non-tensor operand as an array of ``like``'s dtype (keeps float32 graphs float32)."""
    return x if isinstance(x, Tensor) else np.asarray(x, dtype=like.dtype)


def _operands(a: Any, b: Any) -> tuple[Any, Any]:
    if not isinstance(a, Tensor):
        a = _const(a, b)
    if not isinstance(b, Tensor):
        b = _const(b, a)
    return a, b


# ---- element-wise -------------------------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a + b

    @staticmethod
    def backward(ctx: Context, g):
        return _unbroadcast(g, ctx.shapes[0]), _unbroadcast(g, ctx.shapes[1])


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a - b

    @staticmethod
    def backward(ctx: Context, g):
        gb = -_unbroadcast(g, ctx.shapes[1]) if ctx.needs_input_grad[1] else None
        return _unbroadcast(g, ctx.shapes[0]), gb


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        ga = _unbroadcast(g * b, np.shape(a)) if ctx.needs_input_grad[0] else None
        gb = _unbroadcast(g * a, np.shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        ga = _unbroadcast(g / b, np.shape(a)) if ctx.needs_input_grad[0] else None
        gb = _unbroadcast(-g * a / (b * b), np.shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a):
        y = np.exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        return (g * ctx.saved[0],)


class Log(Function):
    @staticmethod
    def forward(ctx: Context, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx: Context, g):
        return (g / ctx.saved[0],)


def add(a: Any, b: Any) -> Tensor:
    """``a + b`` with NumPy broadcasting.

    Args:
        a: a Tensor (or a number/array, taken as a constant).
        b: likewise.
    """
    return Add.apply(*_operands(a, b))


def sub(a: Any, b: Any) -> Tensor:
    """``a - b`` with NumPy broadcasting.

    Args:
        a: a Tensor (or a number/array, taken as a constant).
        b: likewise.
    """
    return Sub.apply(*_operands(a, b))


def mul(a: Any, b: Any) -> Tensor:
    """``a * b`` with NumPy broadcasting.

    Args:
        a: a Tensor (or a number/array, taken as a constant).
        b: likewise.
    """
    return Mul.apply(*_operands(a, b))


def div(a: Any, b: Any) -> Tensor:
    """``a / b`` with NumPy broadcasting.

    Args:
        a: a Tensor (or a number/array, taken as a constant).
        b: likewise.
    """
    return Div.apply(*_operands(a, b))


def neg(a: Tensor) -> Tensor:
    """``-a``.

    Args:
        a: a Tensor.
    """
    return mul(a, -1.0)


def exp(a: Tensor) -> Tensor:
    """Element-wise ``exp(a)``.

    Args:
        a: a Tensor.
    """
    return Exp.apply(a)


def log(a: Tensor) -> Tensor:
    """Element-wise natural logarithm.

    Args:
        a: a Tensor.
    """
    return Log.apply(a)


# ---- reductions and shapes ---------------------------------------------------------------------------
class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, g):
        if not ctx.keepdims and ctx.axis is not None:
            g = np.expand_dims(g, ctx.axis)
        return (np.broadcast_to(g, ctx.shape),)


class Reshape(Function):
    @staticmethod
    def forward(ctx: Context, a, shape=()):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g):
        return (g.reshape(ctx.shape),)


class Transpose(Function):
    """``axes`` is None (reverse) or a permutation of ``range(ndim)`` (:func:`transpose` normalises it)."""

    @staticmethod
    def forward(ctx: Context, a, axes=None):
        ctx.axes = axes
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx: Context, g):
        return (np.transpose(g, None if ctx.axes is None else np.argsort(ctx.axes)),)


def sum(a: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes when None).

    Args:
        a: a Tensor.
        axis: axis or axes to reduce.
        keepdims: keep the reduced axes with extent 1.
    """
    return Sum.apply(a, axis=axis, keepdims=keepdims)


def mean(a: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (all axes when None); NaN for an empty tensor.

    Args:
        a: a Tensor.
        axis: axis or axes to reduce.
        keepdims: keep the reduced axes with extent 1.
    """
    s = sum(a, axis, keepdims)
    return mul(s, s.size / a.size if a.size else math.nan)


def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``a`` with a new shape (same elements, C order).

    Args:
        a: a Tensor.
        shape: the new shape (one entry may be -1).
    """
    return Reshape.apply(a, shape=tuple(shape))


def _permutation(axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` with negative entries counted from the end, checked to be a permutation of ``range(ndim)``.

    The backward pass inverts the permutation with ``argsort``, which is only right for
    non-negative axes: ``(0, -1, -2)`` must become ``(0, 2, 1)`` first.
    """
    try:
        given = tuple(axes)
    except TypeError:
        raise TypeError(f"transpose axes must be a sequence of ints, got {type(axes).__name__}") from None
    if not all(isinstance(ax, int | np.integer) and not isinstance(ax, bool) for ax in given):
        raise TypeError(f"transpose axes must be ints, got {given!r}")
    if len(given) != ndim or not all(-ndim <= ax < ndim for ax in given):
        raise ValueError(f"transpose axes {given} are not a permutation of the {ndim} axes of the tensor "
                         f"(each of 0..{ndim - 1}, or -{ndim}..-1 from the end, exactly once)")
    normalised = tuple(int(ax) % ndim for ax in given)
    if len(set(normalised)) != ndim:
        raise ValueError(f"transpose axes {given} repeat an axis (as non-negative axes: {normalised}); "
                         f"they must be a permutation of the {ndim} axes of the tensor")
    return normalised


def transpose(a: Tensor, axes: tuple[int, ...] | None = None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None).

    Args:
        a: a Tensor.
        axes: the permutation: each axis once, negative ones counted from the end.

    Raises:
        ValueError: ``axes`` is not a permutation of the tensor's axes.
        TypeError: ``axes`` is not a sequence of ints.
    """
    return Transpose.apply(a, axes=None if axes is None else _permutation(axes, a.ndim))


def flatten(a: Tensor, start_dim: int = 1) -> Tensor:
    """Merge dimensions ``start_dim..`` into one (``Flatten`` before a classifier).

    Args:
        a: a Tensor.
        start_dim: the first merged dimension.
    """
    return reshape(a, a.shape[:start_dim] + (-1,))


class MatMul(Function):
    """Plain float matrix product (np.matmul, broadcasting batches); quantized GEMMs are `linear`."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        ga = _unbroadcast(np.matmul(g, np.swapaxes(b, -1, -2)), a.shape) if ctx.needs_input_grad[0] else None
        gb = _unbroadcast(np.matmul(np.swapaxes(a, -1, -2), g), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Plain float matrix product (``np.matmul`` semantics, batches broadcast).

    Args:
        a: (..., M, K) Tensor.
        b: (..., K, N) Tensor.
    """
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul needs operands of at least 2 dimensions, got {a.shape} and {b.shape}")
    return MatMul.apply(*_operands(a, b))


# ---- activations and pooling ---------------------------------------------------------------------------
def _c_order(a: np.ndarray) -> np.ndarray:
    """``a`` itself when C-contiguous, else a C-ordered copy (0-d arrays stay 0-d, unlike
    ``np.ascontiguousarray``, which would give ReLU of a scalar the shape (1,))."""
    return np.asarray(a, order="C")


def _flat(a: np.ndarray) -> np.ndarray:
    """A flat view of the C-contiguous ``a``, for the kernels that work on flat arrays.

    Outputs must be allocated C-contiguous (``np.empty(shape, dtype)``, not ``np.empty_like``,
    which keeps an F-ordered or permuted input's layout): ``reshape(-1)`` of any other layout
    is a copy, and a kernel writing into that copy would leave the real output uninitialised.
    """
    if not a.flags.c_contiguous:
        raise AssertionError("ops._flat got a non-C-contiguous array")   # a bug of the caller, not bad input
    return a.reshape(-1)


class Relu(Function):
    @staticmethod
    def forward(ctx: Context, a):
        a = _c_order(a)
        y = np.empty(a.shape, a.dtype)
        with _k.threads_for(a.size):
            _k._relu_forward(_flat(a), _flat(y))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        gx = np.empty(y.shape, y.dtype)
        with _k.threads_for(y.size):
            _k._relu_backward(_flat(y), _flat(_c_order(g)), _flat(gx))
        return (gx,)


class AddRelu(Function):
    """relu(a + b) in one pass: the residual join of a ResNet block."""

    @staticmethod
    def forward(ctx: Context, a, b):
        a, b = _c_order(a), _c_order(b)
        y = np.empty(a.shape, a.dtype)
        with _k.threads_for(a.size):
            _k._add_relu_forward(_flat(a), _flat(b), _flat(y))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        gx = Relu.backward(ctx, g)[0]
        return gx, gx


def relu(a: Tensor) -> Tensor:
    """``max(a, 0)`` (NaN propagates).

    Args:
        a: a Tensor.
    """
    return Relu.apply(a)


def add_relu(a: Tensor, b: Tensor) -> Tensor:
    """``relu(a + b)`` in one pass (the residual join of a ResNet block).

    Args:
        a: a Tensor.
        b: a Tensor of the same shape.
    """
    if a.shape != b.shape:
        raise ValueError(f"add_relu needs equal shapes, got {a.shape} and {b.shape}")
    return AddRelu.apply(a, b)


def _pool_out(n: int, k: int, s: int, p: int, name: str) -> int:
    if k < 1 or s < 1 or p < 0 or 2 * p > k:
        raise ValueError(f"{name}: kernel_size={k} and stride={s} must be >= 1 and 0 <= padding={p} <= kernel_size/2")
    out = (n + 2 * p - k) // s + 1
    if out < 1:
        raise ValueError(f"{name}: input size {n} is smaller than the kernel {k} (padding {p})")
    return out


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x, k=2, s=2, p=0):
        n, c, h, w = x.shape
        ho, wo = _pool_out(h, k, s, p, "max_pool2d"), _pool_out(w, k, s, p, "max_pool2d")
        y = np.empty((n, c, ho, wo), x.dtype)
        idx = np.empty((n * c, ho, wo), np.int32)
        with _k.threads_for(x.size):
            _k._maxpool_forward(np.ascontiguousarray(x).reshape(n * c, h, w), k, s, p, y.reshape(n * c, ho, wo), idx)
        ctx.save_for_backward(idx)
        ctx.shape, ctx.dtype = x.shape, x.dtype
        return y

    @staticmethod
    def backward(ctx: Context, g):
        (idx,) = ctx.saved
        n, c, h, w = ctx.shape
        gx = np.empty(ctx.shape, ctx.dtype)
        with _k.threads_for(gx.size):
            _k._maxpool_backward(np.ascontiguousarray(g).reshape(n * c, -1), idx.reshape(n * c, -1),
                                 gx.reshape(n * c, h * w))
        return (gx,)


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x, k=2, s=2, p=0):
        n, c, h, w = x.shape
        ho, wo = _pool_out(h, k, s, p, "avg_pool2d"), _pool_out(w, k, s, p, "avg_pool2d")
        y = np.empty((n, c, ho, wo), x.dtype)
        with _k.threads_for(x.size):
            _k._avgpool_forward(np.ascontiguousarray(x).reshape(n * c, h, w), k, s, p, y.reshape(n * c, ho, wo))
        ctx.shape, ctx.dtype, ctx.ksp = x.shape, x.dtype, (k, s, p)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        n, c, h, w = ctx.shape
        gx = np.empty(ctx.shape, ctx.dtype)
        with _k.threads_for(gx.size):
            _k._avgpool_backward(np.ascontiguousarray(g).reshape(n * c, g.shape[2], g.shape[3]), *ctx.ksp,
                                 gx.reshape(n * c, h, w))
        return (gx,)


class GlobalAvgPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.shape = x.shape
        return x.mean(axis=(2, 3), dtype=np.float64).astype(x.dtype)

    @staticmethod
    def backward(ctx: Context, g):
        n, c, h, w = ctx.shape
        return (np.broadcast_to((g * np.asarray(1.0 / (h * w), g.dtype))[:, :, None, None], ctx.shape),)


def _check_nchw(x: Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} expects an NCHW tensor (4 dimensions), got shape {x.shape}")


def max_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """Max pooling of an NCHW tensor (implicit -inf padding; ties keep the first maximum, NaN wins).

    Args:
        x: (N, C, H, W) Tensor.
        kernel_size: window size k (k x k).
        stride: stride (default: ``kernel_size``).
        padding: padding on each side (at most k/2).
    """
    _check_nchw(x, "max_pool2d")
    return MaxPool2d.apply(x, k=int(kernel_size), s=int(stride or kernel_size), p=int(padding))


def avg_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """Average pooling with zero padding counted in the divisor (PyTorch's count_include_pad=True).

    Args:
        x: (N, C, H, W) Tensor.
        kernel_size: window size k (k x k).
        stride: stride (default: ``kernel_size``).
        padding: zero padding on each side (at most k/2).
    """
    _check_nchw(x, "avg_pool2d")
    return AvgPool2d.apply(x, k=int(kernel_size), s=int(stride or kernel_size), p=int(padding))


def global_avg_pool2d(x: Tensor) -> Tensor:
    """Mean over H and W: (N, C, H, W) -> (N, C).

    Args:
        x: (N, C, H, W) Tensor.
    """
    _check_nchw(x, "global_avg_pool2d")
    return GlobalAvgPool2d.apply(x)


# ---- batch norm -------------------------------------------------------------------------------------
class BatchNorm2d(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per channel of NCHW ``x``.

    Training: batch statistics (biased variance), and ``running_mean``/``running_var`` are
    updated in place with ``momentum`` (unbiased variance, as PyTorch).  Eval: the running
    statistics are constants.  An empty batch (N*H*W = 0) gives an empty output and leaves the
    running statistics alone, as PyTorch does (its batch statistics would be 0/0 = NaN).
    """

    @staticmethod
    def forward(ctx: Context, x, gamma, beta, *, running_mean, running_var, training, momentum, eps, relu=False):
        n, c, h, w = x.shape
        x3 = np.ascontiguousarray(x).reshape(n, c, h * w)
        y = np.empty((n, c, h, w), x.dtype)
        if training and n * h * w == 0:
            ctx.save_for_backward(x3, gamma, None, None, None)
            ctx.training, ctx.relu = True, bool(relu)
            return y
        if training:
            mean, var, invstd = np.empty(c), np.empty(c), np.empty(c)
            with _k.threads_for(x.size):
                _k._bn_train_forward(x3, gamma, beta, float(eps), relu, y.reshape(n, c, h * w), mean, var, invstd)
            if running_mean is not None:
                m = n * h * w
                unbiased = var * (m / max(m - 1, 1))
                running_mean *= 1.0 - momentum
                running_mean += momentum * mean
                running_var *= 1.0 - momentum
                running_var += momentum * unbiased
        else:
            mean = running_mean.astype(np.float64)
            invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
            scale = gamma * invstd
            with _k.threads_for(x.size):
                _k._affine_channels(x3, scale, beta - mean * scale, relu, y.reshape(n, c, h * w))
        ctx.save_for_backward(x3, gamma, mean, invstd, y.reshape(n, c, h * w) if relu else x3)
        ctx.training, ctx.relu = bool(training), bool(relu)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        x3, gamma, mean, invstd, y3 = ctx.saved
        n, c, hw = x3.shape
        if x3.size == 0:   # an empty batch: nothing flows back, and the kernel's 1/(N*H*W) would divide by 0
            return np.empty(g.shape, x3.dtype), np.zeros(c, gamma.dtype), np.zeros(c, gamma.dtype)
        gx = np.empty(x3.shape, x3.dtype)
        gg, gb = np.empty(c), np.empty(c)
        with _k.threads_for(x3.size):
            _k._bn_backward(x3, np.ascontiguousarray(g).reshape(n, c, hw), gamma, mean, invstd, ctx.training, y3,
                            ctx.relu, gx, gg, gb)
        return gx.reshape(g.shape), gg.astype(gamma.dtype), gb.astype(gamma.dtype)


def batch_norm2d(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: np.ndarray | None = None,
                 running_var: np.ndarray | None = None, *, training: bool = True, momentum: float = 0.1,
                 eps: float = 1e-5, relu: bool = False) -> Tensor:
    """Batch normalization over (N, H, W) of an NCHW tensor (see :class:`BatchNorm2d`).

    ``relu=True`` returns ``relu(batch_norm(x))`` from one fused pass (forward and backward).

    Args:
        x: (N, C, H, W) Tensor.
        gamma: (C,) scale.
        beta: (C,) shift.
        running_mean: (C,) float array updated in place in training, used in eval.
        running_var: (C,) likewise (unbiased variance).
        training: batch statistics (True) or the running ones (False).
        momentum: weight of the new batch in the running statistics.
        eps: added to the variance.
        relu: fuse a ReLU after the normalization.

    Raises:
        ValueError: wrong shapes (of ``x``, ``gamma``, ``beta``, ``running_mean`` or
            ``running_var``), only one of the running statistics given, eval mode without
            them, or training with a single value per channel (N*H*W = 1; PyTorch refuses
            it too: the batch variance is 0 and its unbiased estimate undefined).
    """
    _check_nchw(x, "batch_norm2d")
    n, c, h, w = x.shape
    if gamma.shape != (c,) or beta.shape != (c,):
        raise ValueError(f"batch_norm2d: gamma and beta must have shape ({c},), "
                         f"got {gamma.shape} and {beta.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm2d: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError("batch_norm2d with training=False needs running_mean and running_var")
    if running_mean is not None and (np.shape(running_mean) != (c,) or np.shape(running_var) != (c,)):
        raise ValueError(f"batch_norm2d: running_mean and running_var must have shape ({c},) for an input of "
                         f"{c} channels, got {np.shape(running_mean)} and {np.shape(running_var)}")
    if training and n * h * w == 1:
        raise ValueError(f"batch_norm2d: training needs more than 1 value per channel, got an input of shape "
                         f"{x.shape} (N*H*W = 1): use a batch of at least 2, or eval mode")
    return BatchNorm2d.apply(x, gamma, beta, running_mean=running_mean, running_var=running_var,
                             training=training, momentum=momentum, eps=eps, relu=relu)


# ---- softmax and loss ---------------------------------------------------------------------------------
def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = _log_softmax(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        return (g - np.exp(y) * g.sum(axis=-1, keepdims=True),)


class CrossEntropy(Function):
    """Mean over the batch of -sum_k t_k log softmax(x)_k, t = (1 - eps) onehot + eps / K."""

    @staticmethod
    def forward(ctx: Context, logits, targets, label_smoothing=0.0):
        n, k = logits.shape
        logp = _log_softmax(logits)
        rows = np.arange(n)
        loss = -logp[rows, targets]
        if label_smoothing:  # only then: 0 * log softmax = 0 * -inf would make a -inf logit's loss NaN
            loss = (1.0 - label_smoothing) * loss - (label_smoothing / k) * logp.sum(axis=-1)
        ctx.save_for_backward(logp, targets)
        ctx.eps = label_smoothing
        return np.asarray(loss.mean(dtype=np.float64), dtype=logits.dtype)

    @staticmethod
    def backward(ctx: Context, g):
        logp, targets = ctx.saved
        n, k = logp.shape
        grad = np.exp(logp)
        grad -= ctx.eps / k
        grad[np.arange(n), targets] -= 1.0 - ctx.eps
        grad *= np.asarray(g, dtype=grad.dtype) / n
        return grad, None


def log_softmax(x: Tensor) -> Tensor:
    """log softmax over the last axis.

    Args:
        x: a Tensor.
    """
    return LogSoftmax.apply(x)


def cross_entropy(logits: Tensor, targets: Any, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of (N, K) logits against integer class targets (N,).

    Args:
        logits: (N, K) Tensor.
        targets: (N,) integer class indices in ``0..K-1``.
        label_smoothing: eps of the smoothed targets ``(1 - eps) onehot + eps / K``.

    Raises:
        ValueError: wrong shapes, targets outside ``0..K-1``, or label_smoothing outside [0, 1].
    """
    t = np.asarray(targets)
    if logits.ndim != 2 or t.shape != (logits.shape[0],) or t.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy needs logits (N, K) and integer targets (N,), got {logits.shape} "
                         f"and {t.dtype} {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy targets must be in 0..{logits.shape[1] - 1}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    return CrossEntropy.apply(logits, t.astype(np.intp), label_smoothing=float(label_smoothing))


# ---- dropout and concat -------------------------------------------------------------------------------
class Dropout(Function):
    @staticmethod
    def forward(ctx: Context, x, p=0.5, seed=0):
        keep = np.random.default_rng(seed).random(x.shape, dtype=np.float32) >= p
        scale = np.asarray(1.0 / (1.0 - p), x.dtype)
        ctx.save_for_backward(keep, scale)
        return x * keep * scale

    @staticmethod
    def backward(ctx: Context, g):
        keep, scale = ctx.saved
        return (g * keep * scale,)


def dropout(x: Tensor, p: float = 0.5, *, seed: int = 0, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` (mask drawn from ``seed``), scale the rest by 1/(1-p).

    Args:
        x: a Tensor.
        p: drop probability in [0, 1).
        seed: seed of the mask.
        training: False returns ``x`` unchanged.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p={p} must be in [0, 1)")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=float(p), seed=seed)


class Concat(Function):
    @staticmethod
    def forward(ctx: Context, *xs, axis=0):
        ctx.axis = axis
        ctx.splits = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx: Context, g):
        return tuple(np.split(g, ctx.splits, axis=ctx.axis))


def concat(tensors: list[Tensor], axis: int = 0) -> Tensor:
    """Concatenate tensors along ``axis``.

    Args:
        tensors: a non-empty list of Tensors.
        axis: the axis.
    """
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    return Concat.apply(*tensors, axis=axis)


# ---- GEMM layers: linear and conv2d, quantized by a LayerQuant ----------------------------------------
class Linear(Function):
    """y = x @ w.T + b, x (N, in), w (out, in); GEMMs quantized by ``lq`` (None: plain float)."""

    @staticmethod
    def forward(ctx: Context, x, w, b, lq=None):
        if lq is None:
            y = np.matmul(x, w.T)
            if b is not None:
                y += b
            ctx.saved_operands = SavedOperands(x, w, 1.0, 1.0, 0)
        else:
            y, ctx.saved_operands = quantized_forward(lq, LINEAR_PRODUCTS, x, w, b)
        ctx.lq, ctx.has_bias = lq, b is not None
        return y

    @staticmethod
    def backward(ctx: Context, g):
        saved, lq = ctx.saved_operands, ctx.lq
        gb = g.sum(axis=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        if lq is None:
            gx = np.matmul(g, saved.w) if ctx.needs_input_grad[0] else None
            gw = np.matmul(g.T, saved.x) if ctx.needs_input_grad[1] else None
            return gx, gw, gb, None
        gx, gw = quantized_backward(lq, LINEAR_PRODUCTS, saved, g, need_input=ctx.needs_input_grad[0],
                                    need_weight=ctx.needs_input_grad[1])
        return gx, gw, gb, None


def linear(x: Tensor, w: Tensor, b: Tensor | None = None, quant: LayerQuant | None = None) -> Tensor:
    """Fully connected layer ``x @ w.T + b`` (see :class:`Linear`).

    Args:
        x: (N, in) Tensor.
        w: (out, in) weights.
        b: (out,) bias or None.
        quant: the layer's quantization policy (None: plain float).

    Raises:
        ValueError: shapes that do not fit together.
    """
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear needs x (N, in) and w (out, in) with matching 'in', got {x.shape} and {w.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear bias must have shape ({w.shape[0]},), got {b.shape}")
    return Linear.apply(x, w, b, quant)


def _conv_windows(x: np.ndarray, kh: int, kw: int, geo: ConvProducts) -> np.ndarray:
    """float64 reference path: (N, C, OH, OW, KH, KW) strided windows of the zero-padded input."""
    (sh, sw), (ph, pw), (dh, dw) = geo.stride, geo.padding, geo.dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def _conv_f64(x: np.ndarray, w: np.ndarray, geo: ConvProducts) -> np.ndarray:
    """Convolution in float64 with einsum (the gradient-check path; float32 goes through fp8emu.conv)."""
    g = geo.groups
    o, cg, kh, kw = w.shape
    win = _conv_windows(x, kh, kw, geo)
    n, c, oh, ow = win.shape[:4]
    win = win.reshape(n, g, cg, oh, ow, kh, kw)
    return np.einsum("ngchwij,gocij->ngohw", win, w.reshape(g, o // g, cg, kh, kw)).reshape(n, o, oh, ow)


def _conv_f64_grads(x: np.ndarray, w: np.ndarray, gy: np.ndarray,
                    geo: ConvProducts) -> tuple[np.ndarray, np.ndarray]:
    (sh, sw), (ph, pw), (dh, dw), g = geo.stride, geo.padding, geo.dilation, geo.groups
    o, cg, kh, kw = w.shape
    n, c, h, wd = x.shape
    oh, ow = gy.shape[2:]
    gy5 = gy.reshape(n, g, o // g, oh, ow)
    w5 = w.reshape(g, o // g, cg, kh, kw)
    win = _conv_windows(x, kh, kw, geo).reshape(n, g, cg, oh, ow, kh, kw)
    gw = np.einsum("ngchwij,ngohw->gocij", win, gy5).reshape(w.shape)
    gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            part = np.einsum("ngohw,goc->ngchw", gy5, w5[..., i, j]).reshape(n, c, oh, ow)
            gxp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += part
    return gxp[:, :, ph:ph + h, pw:pw + wd], gw


class Conv2d(Function):
    """2-D convolution (NCHW, OIHW) with an optional bias; quantized by ``lq`` (see :mod:`.qgemm`).

    ``products`` is the convolution's :class:`ConvProducts` (its geometry).
    """

    @staticmethod
    def forward(ctx: Context, x, w, b, products=None, lq=None):
        bias = None if b is None else b.reshape(1, -1, 1, 1)
        if lq is None:
            if x.dtype == np.float64:
                y = _conv_f64(x, w, products)
            else:
                y = _conv.conv2d(x, w, **products.geometry)
            if bias is not None:
                y += bias
            ctx.saved_operands = SavedOperands(x, w, 1.0, 1.0, 0)
        else:
            y, ctx.saved_operands = quantized_forward(lq, products, x, w, bias)
        ctx.lq, ctx.products, ctx.has_bias = lq, products, b is not None
        return y

    @staticmethod
    def backward(ctx: Context, g):
        saved, lq, products = ctx.saved_operands, ctx.lq, ctx.products
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gb = g.sum(axis=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        if lq is None and saved.x.dtype == np.float64:
            gx, gw = _conv_f64_grads(saved.x, saved.w, g, products)
            return (gx if need_x else None), (gw if need_w else None), gb, None
        g = np.ascontiguousarray(g)
        if lq is None:
            gx = _conv.conv2d_grad_input(g, saved.w, saved.x.shape, **products.geometry) if need_x else None
            gw = _conv.conv2d_grad_weight(saved.x, g, saved.w.shape, **products.geometry) if need_w else None
            return gx, gw, gb, None
        gx, gw = quantized_backward(lq, products, saved, g, need_input=need_x, need_weight=need_w)
        return gx, gw, gb, None


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, *, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, quant: LayerQuant | None = None) -> Tensor:
    """2-D cross-correlation like ``torch.nn.functional.conv2d`` (see :class:`Conv2d`).

    Args:
        x: (N, C, H, W) Tensor.
        w: (O, C/groups, KH, KW) weights.
        b: (O,) bias or None.
        stride, padding, dilation: ints or ``(h, w)`` pairs (padding: symmetric zeros).
        groups: channel groups.
        quant: the layer's quantization policy (None: plain float).

    Raises:
        ValueError: shapes that do not fit together, or bad stride/padding/dilation/groups.
        TypeError: stride/padding/dilation not an int or a pair of ints.
    """
    _check_nchw(x, "conv2d")
    if w.ndim != 4:
        raise ValueError(f"conv2d weights must be OIHW (4 dimensions), got shape {w.shape}")
    if groups < 1 or x.shape[1] % groups or w.shape[0] % groups or w.shape[1] * groups != x.shape[1]:
        raise ValueError(f"conv2d: input channels {x.shape[1]}, weights {w.shape} and groups={groups} do not fit "
                         "(need C = groups * w.shape[1] and O divisible by groups)")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"conv2d bias must have shape ({w.shape[0]},), got {b.shape}")
    products = ConvProducts(_conv.as_pair(stride, "stride", 1), _conv.as_pair(padding, "padding", 0),
                            _conv.as_pair(dilation, "dilation", 1), int(groups))
    return Conv2d.apply(x, w, b, products=products, lq=quant)
