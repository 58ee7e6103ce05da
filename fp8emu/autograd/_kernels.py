"""Numba kernels of the float32 ops (batch norm, ReLU, pooling), each beside its slow twin.

Layout is NCHW; batch-norm kernels see ``x`` as (N, C, HW) and pooling kernels as
(N*C, H, W) views.  Channel (or plane) loops run in parallel; inside one channel the order
of every sum is fixed, so the results do not depend on the number of threads.  Per-channel
sums are accumulated in float64 (one rounding per add, no fused multiply-add: Numba is used
without relaxed-math flags), which keeps batch statistics accurate for large N*H*W.

Every kernel has an independent twin in ``tests/oracles_ops.py``: whole-array NumPy in
float64 by the textbook formulas (two-pass batch statistics, windows as strided views,
scatter-adds).  ``tests/test_ops.py`` holds them bit-equal where the result does not depend
on the order of operations (ReLU, max pooling, the affine map, short float32 window sums) and
to a tolerance far below float32's resolution where it does (batch statistics).  Kernels
convert to float64 explicitly (``np.float64(x[i])``) rather than relying on promotion, so they
compute the same values under ``NUMBA_DISABLE_JIT=1`` (NumPy 2 keeps ``0.0 + float32`` in
float32, Numba promotes it to float64).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numba
import numpy as np

from .._kernels import thread_count_functions

__all__ = ["PARALLEL_MIN", "threads_for"]

#: Arrays with fewer elements run their parallel kernels on one thread: waking a second
#: thread costs microseconds on an idle machine and milliseconds on a busy one (measured
#: here: a ReLU of 6,400 floats took 16 ms with 2 threads and 3 us with 1 under load).
PARALLEL_MIN = 1 << 16


@contextlib.contextmanager
def threads_for(size: int) -> Iterator[None]:
    """Run the Numba kernels called inside on one thread when ``size`` < :data:`PARALLEL_MIN`."""
    if size >= PARALLEL_MIN:
        yield
        return
    get, set_ = thread_count_functions()
    n = get()
    if n == 1:
        yield
        return
    set_(1)
    try:
        yield
    finally:
        set_(n)


# ---- batch norm ------------------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _bn_train_forward(x, gamma, beta, eps, relu, y, mean, var, invstd):
    """Batch statistics of each channel of x (N, C, HW), then y = x * scale + shift.

    One pass gathers the shifted sums S1 = sum(x - k) and S2 = sum((x - k)^2) in float64 with
    k = the channel's first element (so S2/M - (S1/M)^2 does not cancel catastrophically: the
    shifted mean is a few standard deviations at most); var is the biased (population)
    variance.  A second pass writes y with scale = gamma / sqrt(var + eps) and
    shift = beta - mean * scale (then max(., 0) with ``relu``: batch norm and ReLU fused).
    """
    n, c, hw = x.shape
    m = n * hw
    for ch in numba.prange(c):
        k = np.float64(x[0, ch, 0])
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            for j in range(hw):
                d = np.float64(x[i, ch, j]) - k
                s1 += d
                s2 += d * d
        md = s1 / m
        v = max(s2 / m - md * md, 0.0)
        mu = k + md
        inv = 1.0 / math.sqrt(v + eps)
        scale = np.float64(gamma[ch]) * inv
        shift = np.float64(beta[ch]) - mu * scale
        for i in range(n):
            for j in range(hw):
                t = np.float64(x[i, ch, j]) * scale + shift
                y[i, ch, j] = (0.0 if t <= 0.0 else t) if relu else t
        mean[ch] = mu
        var[ch] = v
        invstd[ch] = inv


@numba.njit(cache=True, parallel=True)
def _bn_backward(x, gy, gamma, mean, invstd, train, y, relu, gx, ggamma, gbeta):
    """Gradients of y = gamma * (x - mean) * invstd + beta for x (N, C, HW).

    With ``train`` the mean and invstd are functions of x (batch statistics):
    gx = gamma * invstd / M * (M * gy - sum(gy) - xhat * sum(gy * xhat)), M = N * HW;
    otherwise they are constants (running statistics): gx = gamma * invstd * gy.  With ``relu``
    the op was relu(batch norm) with output ``y``: gy is first zeroed where y <= 0.
    """
    n, c, hw = x.shape
    m = n * hw
    for ch in numba.prange(c):
        mu = np.float64(mean[ch])
        inv = np.float64(invstd[ch])
        sg = 0.0
        sgx = 0.0
        for i in range(n):
            for j in range(hw):
                g = np.float64(gy[i, ch, j]) if (not relu or y[i, ch, j] > 0.0) else 0.0
                sg += g
                sgx += g * ((x[i, ch, j] - mu) * inv)
        ggamma[ch] = sgx
        gbeta[ch] = sg
        k = np.float64(gamma[ch]) * inv
        if train:
            k = k / m
            for i in range(n):
                for j in range(hw):
                    xh = (x[i, ch, j] - mu) * inv
                    g = np.float64(gy[i, ch, j]) if (not relu or y[i, ch, j] > 0.0) else 0.0
                    gx[i, ch, j] = k * ((m * g - sg) - xh * sgx)
        else:
            for i in range(n):
                for j in range(hw):
                    g = np.float64(gy[i, ch, j]) if (not relu or y[i, ch, j] > 0.0) else 0.0
                    gx[i, ch, j] = k * g


@numba.njit(cache=True, parallel=True)
def _affine_channels(x, scale, shift, relu, y):
    """y[i, c, j] = x[i, c, j] * scale[c] + shift[c] (batch norm in eval mode; then max(., 0) with relu)."""
    n, c, hw = x.shape
    for ch in numba.prange(c):
        a = np.float64(scale[ch])
        b = np.float64(shift[ch])
        for i in range(n):
            for j in range(hw):
                v = np.float64(x[i, ch, j]) * a + b
                y[i, ch, j] = (0.0 if v <= 0.0 else v) if relu else v


# ---- ReLU ------------------------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _relu_forward(x, y):
    """y = max(x, 0) on flat arrays; NaN propagates (x > 0 is False for NaN, so use x if not x <= 0)."""
    for i in numba.prange(x.size):
        v = x[i]
        y[i] = 0.0 if v <= 0.0 else v


@numba.njit(cache=True, parallel=True)
def _relu_backward(y, gy, gx):
    """gx = gy where the output y > 0, else 0 (flat arrays)."""
    for i in numba.prange(y.size):
        gx[i] = gy[i] if y[i] > 0.0 else 0.0


@numba.njit(cache=True, parallel=True)
def _add_relu_forward(a, b, y):
    """y = max(a + b, 0) on flat arrays (the residual join of a ResNet block)."""
    for i in numba.prange(a.size):
        v = a[i] + b[i]
        y[i] = 0.0 if v <= 0.0 else v


# ---- pooling (planes: x is (P, H, W) with P = N * C) -------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _maxpool_forward(x, k, s, p, y, idx):
    """Max over each k x k window (stride s, implicit -inf padding p); idx = flat argmax in the plane.

    Ties keep the first maximum in row-major window order (as PyTorch's CPU kernel does);
    a NaN in a window wins and propagates.
    """
    planes, h, w = x.shape
    ho, wo = y.shape[1], y.shape[2]
    for q in numba.prange(planes):
        for oi in range(ho):
            for oj in range(wo):
                best = -np.inf
                arg = -1
                for di in range(k):
                    ii = oi * s - p + di
                    if ii < 0 or ii >= h:
                        continue
                    for dj in range(k):
                        jj = oj * s - p + dj
                        if jj < 0 or jj >= w:
                            continue
                        v = x[q, ii, jj]
                        if arg < 0 or v > best or (v != v and best == best):
                            best = v
                            arg = ii * w + jj
                y[q, oi, oj] = best
                idx[q, oi, oj] = arg


@numba.njit(cache=True, parallel=True)
def _maxpool_backward(gy, idx, gx):
    """gx (P, H*W), zeroed here, receives gy at each window's argmax (summed over windows)."""
    planes = gy.shape[0]
    n = gy.shape[1]
    for q in numba.prange(planes):
        for j in range(gx.shape[1]):
            gx[q, j] = 0.0
        for j in range(n):
            gx[q, idx[q, j]] += gy[q, j]


@numba.njit(cache=True, parallel=True)
def _avgpool_forward(x, k, s, p, y):
    """Mean over each k x k window with zero padding p, divided by k*k (count_include_pad)."""
    planes, h, w = x.shape
    ho, wo = y.shape[1], y.shape[2]
    inv = 1.0 / (k * k)
    for q in numba.prange(planes):
        for oi in range(ho):
            for oj in range(wo):
                acc = np.float64(0.0)
                for di in range(k):
                    ii = oi * s - p + di
                    if ii < 0 or ii >= h:
                        continue
                    for dj in range(k):
                        jj = oj * s - p + dj
                        if 0 <= jj < w:
                            acc += x[q, ii, jj]
                y[q, oi, oj] = acc * inv


@numba.njit(cache=True, parallel=True)
def _avgpool_backward(gy, k, s, p, gx):
    """gx (P, H, W), zeroed here, receives gy / (k*k) at every in-bounds position of each window."""
    planes, h, w = gx.shape
    ho, wo = gy.shape[1], gy.shape[2]
    inv = 1.0 / (k * k)
    for q in numba.prange(planes):
        for i in range(h):
            for j in range(w):
                gx[q, i, j] = 0.0
        for oi in range(ho):
            for oj in range(wo):
                g = np.float64(gy[q, oi, oj]) * inv
                for di in range(k):
                    ii = oi * s - p + di
                    if ii < 0 or ii >= h:
                        continue
                    for dj in range(k):
                        jj = oj * s - p + dj
                        if 0 <= jj < w:
                            gx[q, ii, jj] += g

