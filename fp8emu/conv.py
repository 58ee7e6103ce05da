"""2-D convolution (NCHW activations, OIHW weights) lowered onto one GEMM path.

All three passes call the same ``accumulator.matmul_2d`` (see :mod:`fp8emu.gemm`):

* forward: ``cols (N*OH*OW, KH*KW*Cg) @ w_mat (KH*KW*Cg, Og)`` per group, where row
  ``(n, oh, ow)`` of ``cols`` holds the receptive field in ``(kh, kw, c)`` order (im2col,
  zeros where the window hangs over the padding);
* grad_weight: ``cols.T (KH*KW*Cg, N*OH*OW) @ gy_mat (N*OH*OW, Og)``: the reduction over
  every output position is one accumulator dot product;
* grad_input: ``dcols = gy_mat (N*OH*OW, Og) @ w_mat.T (Og, KH*KW*Cg)``, then col2im adds
  each window's contributions back into ``dx`` in float32, in the fixed order of the loop
  nest ``n, oh, ow, kh, kw, c`` (+0.0 start).  So the accumulator sums over the output
  channels; the up to ``KH*KW`` tap partial sums of one input pixel are then added in
  float32 in that order.  Bit-reproducible whenever the accumulator is.

``padding`` is symmetric (an int or an ``(ph, pw)`` pair), like ``torch.nn.functional.conv2d``.
A stochastic accumulator numbers the output elements of each pass in its GEMM layout, group
after group (forward: ``(g*M + row)*Og + o``; grad_input: ``(g*M + row)*K + col``; grad_weight:
``g*K*Og + row*Og + o``), with the call's ``seed`` and ``stream + 3`` (or, without a call ``seed``,
its own seed and stream), as :func:`fp8emu.matmul` does.
im2col goes through a zero-padded NHWC copy of the input, so each row of ``cols`` is
``KH*KW`` contiguous runs of ``Cg`` floats; col2im is its adjoint into the same padded
layout.  The kernels are Numba loops that only move or add float32 values; their readable
twins are in ``tests/oracles_gemm.py``.  The large buffers are reused between calls (large
fresh allocations cost page faults).
"""

from __future__ import annotations

import threading
from typing import Sequence

import numba
import numpy as np
import numpy.typing as npt

from .accumulators import Accumulator, Fp32Blas
from .format import Format
from .gemm import block_rows, prepare_operand, resolve_accumulator

__all__ = ["conv2d", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_output_shape", "im2col", "as_pair"]

_F32 = np.float32
_scratch = threading.local()   # per Python thread: concurrent convs in two threads do not share buffers


def _buffer(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """A reused float32 scratch array of ``shape`` (grown when too small); never returned to users."""
    size = int(np.prod(shape))
    buffers = _scratch.__dict__
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=_F32)
        buffers[key] = buf
    return buf[:size].reshape(shape)


def as_pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    """A stride/padding/dilation argument as an ``(h, w)`` pair of ints.

    Args:
        value: an int (both dimensions) or a pair of ints.
        name: the argument's name, for error messages.
        minimum: the smallest allowed value (1 for stride and dilation, 0 for padding).

    Returns:
        ``(h, w)``.

    Raises:
        TypeError: not an int or a pair of ints.
        ValueError: a value below ``minimum``.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return pair


class _Geometry:
    """Validated shapes of one convolution."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups):
        if len(x_shape) != 4:
            raise ValueError(f"x must be 4-D NCHW, got shape {tuple(x_shape)}")
        if len(w_shape) != 4:
            raise ValueError(f"w must be 4-D OIHW, got shape {tuple(w_shape)}")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be an int >= 1, got {groups!r}")
        self.n, self.c, self.h, self.w = (int(v) for v in x_shape)
        self.o, self.cg, self.kh, self.kw = (int(v) for v in w_shape)
        self.groups = int(groups)
        if min(self.c, self.cg, self.o, self.kh, self.kw) < 1:  # an empty sum or an empty output
            raise ValueError(f"conv2d needs at least one input channel, output channel and kernel tap; got x "
                             f"{tuple(x_shape)} (C = {self.c}) and w {tuple(w_shape)} (O = {self.o}, "
                             f"KH x KW = {self.kh} x {self.kw})")
        self.sh, self.sw = as_pair(stride, "stride", 1)
        self.ph, self.pw = as_pair(padding, "padding", 0)
        self.dh, self.dw = as_pair(dilation, "dilation", 1)
        if self.c != self.cg * self.groups:
            raise ValueError(f"x has {self.c} channels but w expects {self.cg} per group x groups={self.groups}")
        if self.o % self.groups:
            raise ValueError(f"w has {self.o} output channels, not divisible by groups={self.groups}")
        self.og = self.o // self.groups
        self.oh = (self.h + 2 * self.ph - self.dh * (self.kh - 1) - 1) // self.sh + 1
        self.ow = (self.w + 2 * self.pw - self.dw * (self.kw - 1) - 1) // self.sw + 1
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"the kernel ({self.kh}x{self.kw}, dilation {self.dh, self.dw}) does not fit the "
                             f"padded input ({self.h}+2*{self.ph} x {self.w}+2*{self.pw})")
        self.m = self.n * self.oh * self.ow
        self.k = self.kh * self.kw * self.cg

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.o, self.oh, self.ow)


def conv2d_output_shape(x_shape: Sequence[int], w_shape: Sequence[int], *, stride=1, padding=0, dilation=1,
                        groups: int = 1) -> tuple[int, int, int, int]:
    """Return the NCHW output shape of :func:`conv2d` (validating the arguments).

    Args:
        x_shape: input shape (N, C, H, W).
        w_shape: weight shape (O, C/groups, KH, KW).
        stride, padding, dilation: ints or ``(h, w)`` pairs.
        groups: channel groups.

    Returns:
        ``(N, O, OH, OW)``.

    Raises:
        ValueError: shapes or arguments that do not fit together.
        TypeError: stride/padding/dilation not an int or a pair of ints.
    """
    return _Geometry(x_shape, w_shape, stride, padding, dilation, groups).out_shape


# ---- kernels -------------------------------------------------------------------------------------
@numba.njit(cache=True, inline="always")
def _transpose_block(src, s0, s_stride, dst, d0, d_stride, rows, cols, tile):
    """dst[d0 + j*d_stride + i] = src[s0 + i*s_stride + j] for i < rows, j < cols: a (rows, cols)
    block of one flat float32 array into another, transposed.

    In 8 x 8 tiles through ``tile`` (64 floats, the caller's): 8 rows of 8 contiguous floats
    read, then 8 runs of 8 contiguous floats written.  With the fixed trip counts LLVM turns
    each tile into vector loads, shuffles and vector stores::

        src rows i0..i0+7        tile (j, i)         dst rows j0..j0+7
        | a0 a1 .. a7 |         | a0 b0 .. h0 |       | a0 b0 .. h0 |
        | b0 b1 .. b7 |   ->    | a1 b1 .. h1 |  ->   | a1 b1 .. h1 |
        |  ..         |         |  ..         |       |  ..         |

    A scalar loop one element at a time took 14.0 ms for the first ResNet-18 layer's input
    (128, 64, 32, 32) on a Zen 4, 5.1 ms so: its reads went to 64 channel planes 4 KiB apart,
    which share one set of the 8-way L1 cache, and it moved one float per instruction pair.
    The ragged edges (rows or cols not a multiple of 8) go one element at a time.

    Used where the reads come from channel planes (``_pad_nhwc``, ``_nchw_to_rows``).  The other
    direction (``_crop_nchw``, ``_rows_to_nchw``) keeps its plain loop over one plane at a time:
    there the tiles' 8 write runs would go to planes 4 KiB apart, and tiling measured no faster
    (Zen 4, 0.5-0.6 ms plain against 0.6-2.0 ms tiled for 16 images of (64, 32, 32)).
    """
    i_full = rows - rows % 8
    j_full = cols - cols % 8
    for i0 in range(0, i_full, 8):
        for j0 in range(0, j_full, 8):
            for i in range(8):
                for j in range(8):
                    tile[j * 8 + i] = src[s0 + (i0 + i) * s_stride + j0 + j]
            for j in range(8):
                for i in range(8):
                    dst[d0 + (j0 + j) * d_stride + i0 + i] = tile[j * 8 + i]
        for j in range(j_full, cols):
            for i in range(i0, i0 + 8):
                dst[d0 + j * d_stride + i] = src[s0 + i * s_stride + j]
    for i in range(i_full, rows):
        for j in range(cols):
            dst[d0 + j * d_stride + i] = src[s0 + i * s_stride + j]


@numba.njit(cache=True, parallel=True)
def _pad_nhwc(x, c0, cg, ph, pw, xp):
    """xp[n, ph + h, pw + w, c] = x[n, c0 + c, h, w], zeros in the border: padded NHWC copy of one group."""
    n_img, c_all, h, w = x.shape
    hp, wp = xp.shape[1], xp.shape[2]
    xf = x.reshape(-1)
    xpf = xp.reshape(-1)
    for n in numba.prange(n_img):
        tile = np.empty(64, np.float32)
        for r in range(hp):
            for q in range(wp):
                if r < ph or r >= ph + h or q < pw or q >= pw + w:
                    for c in range(cg):
                        xp[n, r, q, c] = np.float32(0.0)
        for r in range(h):
            # (cg channels, w columns) of input row r -> (w, cg) of padded row ph + r
            _transpose_block(xf, ((n * c_all + c0) * h + r) * w, h * w,
                             xpf, ((n * hp + ph + r) * wp + pw) * cg, cg, cg, w, tile)
    return xp


@numba.njit(cache=True, parallel=True)
def _im2col_nhwc(xp, kh, kw, sh, sw, dh, dw, oh, ow, cols):
    """cols[(n*oh + y)*ow + x_, (i*kw + j)*cg + c] = xp[n, y*sh + i*dh, x_*sw + j*dw, c].

    ``xp`` is the padded NHWC input, so every row of ``cols`` is ``kh*kw`` contiguous runs
    of ``cg`` floats and ``cols`` is written front to back.  Threads take (image, output row).
    """
    n_img = xp.shape[0]
    cg = xp.shape[3]
    for ny in numba.prange(n_img * oh):
        n = ny // oh
        y = ny - n * oh
        for xo in range(ow):
            row = cols[ny * ow + xo]
            for i in range(kh):
                src_row = xp[n, y * sh + i * dh]
                for j in range(kw):
                    src = src_row[xo * sw + j * dw]
                    col0 = (i * kw + j) * cg
                    for c in range(cg):
                        row[col0 + c] = src[c]
    return cols


def _im2col(x: np.ndarray, geo: "_Geometry", g: int, cols: np.ndarray) -> np.ndarray:
    """Fill ``cols`` with the im2col matrix of group ``g`` of the images ``x`` (via a padded NHWC copy)."""
    xp = _buffer("nhwc", (x.shape[0], geo.h + 2 * geo.ph, geo.w + 2 * geo.pw, geo.cg))
    _pad_nhwc(x, g * geo.cg, geo.cg, geo.ph, geo.pw, xp)
    return _im2col_nhwc(xp, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw, geo.oh, geo.ow, cols)


@numba.njit(cache=True, parallel=True)
def _col2im_nhwc(dcols, kh, kw, sh, sw, dh, dw, oh, ow, xp):
    """xp[n, y*sh + i*dh, x_*sw + j*dw, c] += dcols[(n*oh + y)*ow + x_, (i*kw + j)*cg + c].

    The adjoint of :func:`_im2col_nhwc`, into a zeroed padded NHWC buffer.  Loop order
    n, y, x_, i, j, c fixes the order of the float32 adds into each element; threads take
    images, so no two threads touch one element.
    """
    n_img = xp.shape[0]
    cg = xp.shape[3]
    for n in numba.prange(n_img):
        for y in range(oh):
            for xo in range(ow):
                row = dcols[(n * oh + y) * ow + xo]
                for i in range(kh):
                    dst_row = xp[n, y * sh + i * dh]
                    for j in range(kw):
                        dst = dst_row[xo * sw + j * dw]
                        col0 = (i * kw + j) * cg
                        for c in range(cg):
                            dst[c] = dst[c] + row[col0 + c]
    return xp


@numba.njit(cache=True, parallel=True)
def _crop_nchw(xp, c0, ph, pw, dx):
    """dx[n, c0 + c, h, w] = xp[n, ph + h, pw + w, c]: the padded NHWC buffer back to NCHW."""
    n_img, _, h, w = dx.shape
    cg = xp.shape[3]
    for n in numba.prange(n_img):
        for c in range(cg):
            dst = dx[n, c0 + c]
            for r in range(h):
                src = xp[n, ph + r]
                for q in range(w):
                    dst[r, q] = src[pw + q, c]
    return dx


@numba.njit(cache=True, parallel=True)
def _rows_to_nchw(mat, o0, out):
    """out[n, o0 + o, y, x] = mat[(n*OH + y)*OW + x, o]: the GEMM rows back to NCHW."""
    n_img, _, oh, ow = out.shape
    og = mat.shape[1]
    p = oh * ow
    for n in numba.prange(n_img):
        for o in range(og):
            dst = out[n, o0 + o]
            for y in range(oh):
                for xo in range(ow):
                    dst[y, xo] = mat[n * p + y * ow + xo, o]
    return out


@numba.njit(cache=True, parallel=True)
def _nchw_to_rows(t, o0, mat):
    """mat[(n*OH + y)*OW + x, o] = t[n, o0 + o, y, x]: NCHW channels o0.. as GEMM rows."""
    n_img, o_all, oh, ow = t.shape
    og = mat.shape[1]
    p = oh * ow
    tf = t.reshape(-1)
    matf = mat.reshape(-1)
    for n in numba.prange(n_img):
        tile = np.empty(64, np.float32)
        # (og, p) channel planes of image n -> (p, og) rows
        _transpose_block(tf, (n * o_all + o0) * p, p, matf, n * p * og, og, og, p, tile)
    return mat


@numba.njit(cache=True, parallel=True)
def _weight_rows(w, o0, mat):
    """mat[(i*KW + j)*Cg + c, o] = w[o0 + o, c, i, j]: the forward's weight matrix of one group.

    NumPy's copy of ``w.transpose(2, 3, 1, 0)`` reads ``w`` with a stride of ``Cg*KH*KW`` floats in
    its innermost loop, once per tap, and took 9.4 ms for 512 x 512 x 3 x 3 weights (Intel CI
    host).  Here threads take input channels: for one ``c`` every ``o`` reads its ``KH*KW`` taps,
    which share cache lines with the next ``c``'s, and writes ``KH*KW`` rows front to back.
    """
    _, cg, kh, kw = w.shape
    og = mat.shape[1]
    for c in numba.prange(cg):
        for o in range(og):
            taps = w[o0 + o, c]
            for i in range(kh):
                for j in range(kw):
                    mat[(i * kw + j) * cg + c, o] = taps[i, j]
    return mat


@numba.njit(cache=True, parallel=True)
def _rows_to_weight(mat, o0, dw):
    """dw[o0 + o, c, i, j] = mat[(i*KW + j)*Cg + c, o]: a weight gradient of one group back to OIHW
    (the adjoint layout of :func:`_weight_rows`).  Threads take blocks of 16 output channels
    (one 64-byte line of a ``mat`` row), so each line read is used 16 times."""
    _, cg, kh, kw = dw.shape
    og = mat.shape[1]
    for ob in numba.prange((og + 15) // 16):
        o_lo = ob * 16
        o_hi = min(og, o_lo + 16)
        for i in range(kh):
            for j in range(kw):
                for c in range(cg):
                    row = mat[(i * kw + j) * cg + c]
                    for o in range(o_lo, o_hi):
                        dw[o0 + o, c, i, j] = row[o]
    return dw


# ---- helpers -------------------------------------------------------------------------------------
#: Largest im2col block (bytes): bounds the scratch memory.  ``conv2d_grad_weight`` sums its
#: chunks' partial products, so it takes chunks this large: every ResNet-18 CIFAR layer at batch
#: 128 (at most 302 MB) is one reduction.
_CHUNK_BYTES = 512 << 20
#: The forward and ``conv2d_grad_input`` (each output row its own dot product, so the chunks change
#: no bit) take the GEMM path's row blocks instead (:func:`fp8emu.gemm.block_rows`: 1/32 of the L3,
#: 4-16 MiB, at least 2048 rows, evened out), in whole images: each chunk's im2col matrix (or
#: sgemm result) is read back from cache by the next step, where a whole-batch one went to memory
#: and back (302 MB at the first ResNet-18 layer).  Intel CI host, steady state (issue 19;
#: docs/results/benchmarks.md): forward 109 -> 72 ms at (128, 64, 32, 32) * (64, 64, 3, 3), whose
#: GEMM np.matmul does in 65 ms.  Before the thread-pool settings of issue 19 (idle OpenBLAS workers
#: spinning, Numba's pool waking slowly) smaller chunks had been slower.


def _image_chunks(geo: _Geometry, row_blocks: bool = False) -> list[tuple[int, int, int, int]]:
    """Whole-image chunks ``(n0, n1, row0, row1)`` of the GEMM rows, at most ``_CHUNK_BYTES`` of
    im2col each (but at least one image); with ``row_blocks``, at most the images of one of
    :func:`~fp8emu.gemm.block_rows`' blocks (rounded up), evened out over the chunks.

    Output rows are independent dot products, so splitting them changes no result of a
    row-independent accumulator (every built-in one).  An empty batch is one empty chunk.
    """
    per_image = geo.oh * geo.ow
    if geo.n == 0:
        # one empty chunk, not none: grad_weight's reduction over no positions is then still one
        # accumulator call, which gives its zero sums (and the block sizes below need rows)
        return [(0, 0, 0, 0)]
    step = max(1, _CHUNK_BYTES // (4 * geo.k * per_image))
    if row_blocks:
        step = min(step, -(-block_rows(geo.m, geo.k) // per_image))
        step = -(-geo.n // -(-geo.n // step))      # the same number of chunks, evened out
    return [(n0, min(n0 + step, geo.n), n0 * per_image, min(n0 + step, geo.n) * per_image)
            for n0 in range(0, geo.n, step)]


def _weight_matrix(w: np.ndarray, g: int, og: int) -> np.ndarray:
    """(KH*KW*Cg, Og) matrix of group ``g``: rows in (kh, kw, c) order, matching ``cols`` (a reused
    buffer: the forward's ``b`` operand, used before the call returns)."""
    _, cg, kh, kw = w.shape
    return _weight_rows(np.ascontiguousarray(w), g * og, _buffer("wmat", (kh * kw * cg, og)))


def _weight_matrix_t(w: np.ndarray, g: int, og: int) -> np.ndarray:
    """The transpose of :func:`_weight_matrix`, (Og, KH*KW*Cg), for grad_input: each output channel's
    weights in (kh, kw, c) order.  One NumPy copy whose inner loop stays inside one channel's
    ``Cg*KH*KW`` floats (1 ms for 512 x 512 x 3 x 3; the transpose of the forward's matrix took 30)."""
    wg = w[g * og:(g + 1) * og]
    return np.ascontiguousarray(wg.transpose(0, 2, 3, 1)).reshape(og, -1)


def im2col(x: npt.ArrayLike, kernel_size, *, stride=1, padding=0, dilation=1) -> npt.NDArray[np.float32]:
    """Return the im2col matrix (N*OH*OW, KH*KW*C) of an NCHW array: rows ``(n, oh, ow)``, columns ``(kh, kw, c)``.

    ``conv2d(x, w)`` with one group equals ``im2col(x, ...) @ w.transpose(2, 3, 1, 0).reshape(-1, O)``
    with the rows reshaped to (N, OH, OW, O).

    Args:
        x: float array (N, C, H, W).
        kernel_size: an int or a ``(KH, KW)`` pair.
        stride, padding, dilation: ints or ``(h, w)`` pairs.

    Returns:
        float32 (N*OH*OW, KH*KW*C).
    """
    x, _ = prepare_operand(x, None, "x", "nearest_even", False, None, 0, 0)
    kh, kw = as_pair(kernel_size, "kernel_size", 1)
    geo = _Geometry(x.shape, (1, x.shape[1], kh, kw), stride, padding, dilation, 1)
    return _im2col(x, geo, 0, np.empty((geo.m, geo.k), dtype=_F32))


# ---- public --------------------------------------------------------------------------------------
def conv2d(x: npt.ArrayLike, w: npt.ArrayLike, *, stride=1, padding=0, dilation=1, groups: int = 1,
           accumulator: Accumulator | None = None, x_fmt: Format | str | None = None,
           w_fmt: Format | str | None = None, rounding="nearest_even", saturate: bool = False,
           seed: int | None = None, stream: int = 0, quantized: bool = False) -> npt.NDArray[np.float32]:
    """2-D cross-correlation (PyTorch's ``conv2d``): NCHW input, OIHW weights, float32 NCHW output.

    Args:
        x: input (N, C, H, W), float (or codes with ``x_fmt``, as in :func:`fp8emu.matmul`).
        w: weights (O, C/groups, KH, KW), float (or codes with ``w_fmt``).
        stride, padding, dilation: ints or ``(h, w)`` pairs; padding is symmetric zeros.
        groups: channel groups; C and O must be divisible by it.
        accumulator: how each dot product is summed (default :data:`fp32_blas`).
        x_fmt, w_fmt: quantize the operands to these formats first (``None``: use float32 values).
        rounding, saturate, seed, stream, quantized: operand quantization, as in :func:`fp8emu.matmul`
            (``quantized=True``: the operands already hold values of their formats; no rounding pass).

    Returns:
        float32 array (N, O, OH, OW), ``OH = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``.

    Raises:
        ValueError: bad shapes, strides, groups, or an accumulator that cannot take the formats.
        TypeError: non-float operands without a format.
    """
    acc = resolve_accumulator(accumulator, x_fmt, w_fmt)
    x, x_fmt = prepare_operand(x, x_fmt, "x", rounding, saturate, seed, stream, 0, quantized=quantized)
    w, w_fmt = prepare_operand(w, w_fmt, "w", rounding, saturate, seed, stream, 1, quantized=quantized)
    geo = _Geometry(x.shape, w.shape, stride, padding, dilation, groups)
    out = np.empty(geo.out_shape, dtype=_F32)
    for g in range(geo.groups):
        wmat = _weight_matrix(w, g, geo.og)
        for n0, n1, r0, r1 in _image_chunks(geo, row_blocks=True):
            cols = _buffer("cols", (r1 - r0, geo.k))
            _im2col(x[n0:n1], geo, g, cols)
            y = acc.run_2d(cols, wmat, a_fmt=x_fmt, b_fmt=w_fmt, out=_buffer("rows", (r1 - r0, geo.og)), seed=seed,
                           stream=stream + 3, index0=(g * geo.m + r0) * geo.og)
            _rows_to_nchw(y, g * geo.og, out[n0:n1])
    return out


def conv2d_grad_input(gy: npt.ArrayLike, w: npt.ArrayLike, x_shape: Sequence[int], *, stride=1, padding=0,
                      dilation=1, groups: int = 1, accumulator: Accumulator | None = None,
                      gy_fmt: Format | str | None = None, w_fmt: Format | str | None = None,
                      rounding="nearest_even", saturate: bool = False, seed: int | None = None,
                      stream: int = 0, quantized: bool = False) -> npt.NDArray[np.float32]:
    """Gradient of :func:`conv2d` with respect to its input: ``dL/dx`` for ``gy = dL/dy``.

    Args:
        gy: output gradient (N, O, OH, OW).
        w: the forward weights (O, C/groups, KH, KW).
        x_shape: the forward input's shape (N, C, H, W) (needed: strides lose rows/columns).
        stride, padding, dilation, groups, accumulator: as in the forward call.
        gy_fmt, w_fmt, rounding, saturate, seed, stream, quantized: operand quantization, as in :func:`conv2d`.

    Returns:
        float32 array of ``x_shape``.  Summation: the accumulator over output channels,
        then col2im in float32 in a fixed order (module docstring).
    """
    acc = resolve_accumulator(accumulator, gy_fmt, w_fmt)
    gy, gy_fmt = prepare_operand(gy, gy_fmt, "gy", rounding, saturate, seed, stream, 0, quantized=quantized)
    w, w_fmt = prepare_operand(w, w_fmt, "w", rounding, saturate, seed, stream, 1, quantized=quantized)
    geo = _Geometry(tuple(x_shape), w.shape, stride, padding, dilation, groups)
    if gy.shape != geo.out_shape:
        raise ValueError(f"gy has shape {gy.shape}; the forward output shape is {geo.out_shape}")
    dx = np.empty((geo.n, geo.c, geo.h, geo.w), dtype=_F32)
    for g in range(geo.groups):
        wt = _weight_matrix_t(w, g, geo.og)
        for n0, n1, r0, r1 in _image_chunks(geo, row_blocks=True):
            gmat = _nchw_to_rows(gy[n0:n1], g * geo.og, _buffer("rows", (r1 - r0, geo.og)))
            d = acc.run_2d(gmat, wt, a_fmt=gy_fmt, b_fmt=w_fmt, out=_buffer("cols", (r1 - r0, geo.k)), seed=seed,
                           stream=stream + 3, index0=(g * geo.m + r0) * geo.k)
            xp = _buffer("nhwc", (n1 - n0, geo.h + 2 * geo.ph, geo.w + 2 * geo.pw, geo.cg))
            xp.fill(0.0)
            _col2im_nhwc(d, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw, geo.oh, geo.ow, xp)
            _crop_nchw(xp, g * geo.cg, geo.ph, geo.pw, dx[n0:n1])
    return dx


def conv2d_grad_weight(x: npt.ArrayLike, gy: npt.ArrayLike, w_shape: Sequence[int], *, stride=1, padding=0,
                       dilation=1, groups: int = 1, accumulator: Accumulator | None = None,
                       x_fmt: Format | str | None = None, gy_fmt: Format | str | None = None,
                       rounding="nearest_even", saturate: bool = False, seed: int | None = None,
                       stream: int = 0, quantized: bool = False) -> npt.NDArray[np.float32]:
    """Gradient of :func:`conv2d` with respect to its weights: ``dL/dw`` for ``gy = dL/dy``.

    Args:
        x: the forward input (N, C, H, W).
        gy: output gradient (N, O, OH, OW).
        w_shape: the weights' shape (O, C/groups, KH, KW).
        stride, padding, dilation, groups, accumulator: as in the forward call.
        x_fmt, gy_fmt, rounding, saturate, seed, stream, quantized: operand quantization, as in
            :func:`conv2d`.

    Returns:
        float32 array of ``w_shape``; each element is one accumulator dot product over all
        N*OH*OW output positions.
    """
    acc = resolve_accumulator(accumulator, x_fmt, gy_fmt)
    x, x_fmt = prepare_operand(x, x_fmt, "x", rounding, saturate, seed, stream, 0, quantized=quantized)
    gy, gy_fmt = prepare_operand(gy, gy_fmt, "gy", rounding, saturate, seed, stream, 1, quantized=quantized)
    geo = _Geometry(x.shape, tuple(w_shape), stride, padding, dilation, groups)
    if gy.shape != geo.out_shape:
        raise ValueError(f"gy has shape {gy.shape}; the forward output shape is {geo.out_shape}")
    dw = np.empty((geo.o, geo.cg, geo.kh, geo.kw), dtype=_F32)
    # One accumulator call over all N*OH*OW positions; only fp32_blas (order unspecified anyway)
    # splits the reduction into image chunks whose partial results are added in float32.
    chunks = _image_chunks(geo) if isinstance(acc, Fp32Blas) else [(0, geo.n, 0, geo.m)]
    for g in range(geo.groups):
        d = None
        for n0, n1, r0, r1 in chunks:
            cols = _buffer("cols", (r1 - r0, geo.k))
            _im2col(x[n0:n1], geo, g, cols)
            gmat = _nchw_to_rows(gy[n0:n1], g * geo.og, _buffer("rows", (r1 - r0, geo.og)))
            part = acc.run_2d(cols.T, gmat, a_fmt=x_fmt, b_fmt=gy_fmt, seed=seed, stream=stream + 3,
                              index0=g * geo.k * geo.og)
            d = part if d is None else np.add(d, part, out=d)
        # d: (KH*KW*Cg, Og), rows (kh, kw, c)
        _rows_to_weight(d, g * geo.og, dw)
    return dw
