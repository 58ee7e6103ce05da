"""Naive oracles for the GEMM/conv layer: plain Python loops, one scalar operation at a time.

Written independently of the kernels (no numpy vector ops in the sums): float32 sums use
``np.float32`` scalars, so every ``+`` and ``*`` is one IEEE float32 rounding; exact sums
use ``fractions.Fraction``.  Slow on purpose; use small shapes.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

F32 = np.float32


# ---- float32 dot products in a stated order ------------------------------------------------------
def dot_sequential(a_row, b_col) -> np.float32:
    s = F32(0.0)
    for x, y in zip(a_row, b_col):
        s = F32(s + F32(F32(x) * F32(y)))
    return s


def _tree(products: list) -> np.float32:
    """T(p) = p[0] for one product, else T(left) + T(right), left = the largest power of two < len."""
    if len(products) == 1:
        return products[0]
    h = 1 << (len(products) - 1).bit_length() - 1
    return F32(_tree(products[:h]) + _tree(products[h:]))


def dot_pairwise(a_row, b_col) -> np.float32:
    products = [F32(F32(x) * F32(y)) for x, y in zip(a_row, b_col)]
    if not products:
        return F32(0.0)
    return F32(F32(0.0) + _tree(products))


def dot_blocked(a_row, b_col, block: int) -> np.float32:
    s = F32(0.0)
    for k0 in range(0, len(a_row), block):
        part = dot_sequential(a_row[k0:k0 + block], b_col[k0:k0 + block])
        s = F32(s + part)
    return s


def matmul_by(dot, a, b, *args) -> np.ndarray:
    """out[i, j] = dot(a[i, :], b[:, j], *args), element by element."""
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n), dtype=F32)
    for i in range(m):
        for j in range(n):
            out[i, j] = dot(list(a[i, :]), list(b[:, j]), *args)
    return out


def matmul_exact(a, b) -> list[list[Fraction]]:
    """Exact rational products and sums of finite float operands."""
    return [[sum((Fraction(float(a[i, k])) * Fraction(float(b[k, j])) for k in range(a.shape[1])), Fraction(0))
             for j in range(b.shape[1])] for i in range(a.shape[0])]


def gamma(n: int, u: float = 2.0 ** -24) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative bound of an n-term float sum."""
    return n * u / (1 - n * u)


# ---- direct convolution -----------------------------------------------------------------------
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_direct(x, w, stride=1, padding=0, dilation=1, groups=1, dtype=F32):
    """Direct-loop cross-correlation; each output summed in (kh, kw, c) order in ``dtype`` from +0."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n_img, c_in, h, wd = x.shape
    o_ch, cg, kh, kw = w.shape
    og = o_ch // groups
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n_img, o_ch, oh, ow), dtype=dtype)
    for n in range(n_img):
        for o in range(o_ch):
            g = o // og
            for y in range(oh):
                for xo in range(ow):
                    s = dtype(0.0)
                    for i in range(kh):
                        for j in range(kw):
                            for c in range(cg):
                                ih, iw = y * sh - ph + i * dh, xo * sw - pw + j * dw
                                xv = x[n, g * cg + c, ih, iw] if 0 <= ih < h and 0 <= iw < wd else 0.0
                                s = dtype(s + dtype(dtype(xv) * dtype(w[o, c, i, j])))
                    out[n, o, y, xo] = s
    return out


def conv2d_grad_weight_direct(x, gy, w_shape, stride=1, padding=0, dilation=1, groups=1, dtype=F32):
    """dw[o, c, i, j] = sum over (n, y, x_) in that order of x[n, g*cg + c, tap] * gy[n, o, y, x_]."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n_img, _, h, wd = x.shape
    o_ch, cg, kh, kw = w_shape
    og = o_ch // groups
    _, _, oh, ow = gy.shape
    out = np.zeros(tuple(w_shape), dtype=dtype)
    for o in range(o_ch):
        g = o // og
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    s = dtype(0.0)
                    for n in range(n_img):
                        for y in range(oh):
                            for xo in range(ow):
                                ih, iw = y * sh - ph + i * dh, xo * sw - pw + j * dw
                                xv = x[n, g * cg + c, ih, iw] if 0 <= ih < h and 0 <= iw < wd else 0.0
                                s = dtype(s + dtype(dtype(xv) * dtype(gy[n, o, y, xo])))
                    out[o, c, i, j] = s
    return out


def conv2d_grad_input_direct(gy, w, x_shape, stride=1, padding=0, dilation=1, groups=1, dtype=F32):
    """dx by scattering: for n, y, x_, i, j, c (that order), dx[tap] += (sum over o in order of gy * w).

    This is the documented two-stage order of ``fp8emu.conv2d_grad_input`` with a sequential
    accumulator over the output channels of the group.
    """
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n_img, c_in, h, wd = x_shape
    o_ch, cg, kh, kw = w.shape
    og = o_ch // groups
    _, _, oh, ow = gy.shape
    dx = np.zeros(tuple(x_shape), dtype=dtype)
    for g in range(groups):
        for n in range(n_img):
            for y in range(oh):
                for xo in range(ow):
                    for i in range(kh):
                        for j in range(kw):
                            for c in range(cg):
                                s = dtype(0.0)
                                for o in range(g * og, (g + 1) * og):
                                    s = dtype(s + dtype(dtype(gy[n, o, y, xo]) * dtype(w[o, c, i, j])))
                                ih, iw = y * sh - ph + i * dh, xo * sw - pw + j * dw
                                if 0 <= ih < h and 0 <= iw < wd:
                                    dx[n, g * cg + c, ih, iw] = dtype(dx[n, g * cg + c, ih, iw] + s)
    return dx


def conv_abs_bound(x, w, **kw) -> np.ndarray:
    """sum |x||w| per output, in float64 (for the gamma_K error bound)."""
    return conv2d_direct(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), dtype=np.float64, **kw)


__all__ = ["dot_sequential", "dot_pairwise", "dot_blocked", "matmul_by", "matmul_exact", "gamma",
           "conv2d_direct", "conv2d_grad_weight_direct", "conv2d_grad_input_direct", "conv_abs_bound",
           "im2col_loops"]


def im2col_loops(x, kh, kw, stride=1, padding=0, dilation=1):
    """cols[(n, oh, ow), (i, j, c)] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 outside), by loops."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n_img, c_in, h, wd = x.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n_img * oh * ow, kh * kw * c_in), dtype=F32)
    for n in range(n_img):
        for y in range(oh):
            for xo in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        for c in range(c_in):
                            ih, iw = y * sh - ph + i * dh, xo * sw - pw + j * dw
                            if 0 <= ih < h and 0 <= iw < wd:
                                cols[(n * oh + y) * ow + xo, (i * kw + j) * c_in + c] = x[n, c, ih, iw]
    return cols
