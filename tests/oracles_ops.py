"""Independent NumPy oracles of the autograd kernels (fp8emu/autograd/_kernels.py).

Each oracle computes what its kernel should, by a different route: whole-array NumPy in
float64, textbook formulas (two-pass batch statistics, ``(x - mean) * invstd``), windows as
strided views of a padded copy, scatter-adds with ``np.add.at``.  Where the result does not
depend on the order of floating-point operations (ReLU, max pooling, the affine map, sums
of at most k*k float32 values, which float64 holds exactly) the tests hold kernel and oracle
bit-equal; where it does (batch statistics, gradients summed over a batch), they agree to a
tolerance far below float32's resolution.
"""

from __future__ import annotations

import numpy as np

F64 = np.float64


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) with NaN kept and -0 -> +0 (``x <= 0`` is False for NaN)."""
    return np.where(x <= 0, np.zeros_like(x), x)


def relu_backward(y: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """gy where the ReLU output is positive, else 0."""
    return np.where(y > 0, gy, np.zeros_like(gy))


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """relu(a + b) in the arrays' dtype."""
    return relu(a + b)


def affine_channels(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, relu_after: bool) -> np.ndarray:
    """x (N, C, HW) * scale[c] + shift[c] in float64, optionally ReLU, cast to x's dtype."""
    y = x.astype(F64) * scale.astype(F64)[None, :, None] + shift.astype(F64)[None, :, None]
    return (relu(y) if relu_after else y).astype(x.dtype)


def bn_train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, relu_after: bool):
    """Two-pass batch statistics (mean, then mean of squared deviations) and ``(x - mean) * invstd * gamma + beta``."""
    x64 = x.astype(F64)
    mean = x64.mean(axis=(0, 2))
    var = ((x64 - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    invstd = 1.0 / np.sqrt(var + eps)
    y = (x64 - mean[None, :, None]) * invstd[None, :, None] * gamma.astype(F64)[None, :, None] \
        + beta.astype(F64)[None, :, None]
    return (relu(y) if relu_after else y).astype(x.dtype), mean, var, invstd


def bn_backward(x, gy, gamma, mean, invstd, train: bool, y, relu_after: bool):
    """The textbook batch-norm gradients in float64: gx, dgamma, dbeta."""
    g = gy.astype(F64)
    if relu_after:
        g = np.where(y > 0, g, 0.0)
    m = x.shape[0] * x.shape[2]
    xhat = (x.astype(F64) - mean.astype(F64)[None, :, None]) * invstd.astype(F64)[None, :, None]
    dbeta = g.sum(axis=(0, 2))
    dgamma = (g * xhat).sum(axis=(0, 2))
    k = (gamma.astype(F64) * invstd.astype(F64))[None, :, None]
    if train:
        gx = k * (g - dbeta[None, :, None] / m - xhat * dgamma[None, :, None] / m)
    else:
        gx = k * g
    return gx.astype(x.dtype), dgamma, dbeta


def _windows(x: np.ndarray, k: int, s: int, p: int, fill: float) -> np.ndarray:
    """(P, HO, WO, k, k) windows of x (P, H, W) padded by p with ``fill``."""
    xp = np.pad(x.astype(F64), ((0, 0), (p, p), (p, p)), constant_values=fill)
    return np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::s, ::s]


def maxpool(x: np.ndarray, k: int, s: int, p: int):
    """Window maxima and the flat in-plane index of the first maximum (a NaN wins: np.argmax's rule)."""
    planes, h, w = x.shape
    win = _windows(x, k, s, p, -np.inf)
    flat = win.reshape(win.shape[:3] + (k * k,))
    arg = np.argmax(flat, axis=-1)
    di, dj = np.divmod(arg, k)
    oi = np.arange(win.shape[1])[None, :, None]
    oj = np.arange(win.shape[2])[None, None, :]
    idx = (oi * s - p + di) * w + (oj * s - p + dj)
    return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0].astype(x.dtype), idx.astype(np.int32)


def maxpool_backward(gy: np.ndarray, idx: np.ndarray, size: int) -> np.ndarray:
    """Scatter-add gy (P, n) into (P, size) at idx, in index order (np.add.at is unbuffered)."""
    gx = np.zeros((gy.shape[0], size), dtype=gy.dtype)
    rows = np.repeat(np.arange(gy.shape[0]), gy.shape[1])
    np.add.at(gx, (rows, idx.reshape(-1)), gy.reshape(-1))
    return gx


def avgpool(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """Window sums in float64 (zero padding counted) divided by k*k."""
    return (_windows(x, k, s, p, 0.0).sum(axis=(-2, -1)) * (1.0 / (k * k))).astype(x.dtype)


def avgpool_backward(gy: np.ndarray, k: int, s: int, p: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The adjoint of :func:`avgpool` in float64: each window offset adds gy / k^2 to a strided slice."""
    planes, h, w = shape
    ho, wo = gy.shape[1:]
    gxp = np.zeros((planes, h + 2 * p, w + 2 * p))
    g = gy.astype(F64) / (k * k)
    for di in range(k):
        for dj in range(k):
            gxp[:, di:di + s * (ho - 1) + 1:s, dj:dj + s * (wo - 1) + 1:s] += g
    return gxp[:, p:p + h, p:p + w]
