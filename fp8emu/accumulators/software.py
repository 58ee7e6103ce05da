"""Software accumulators: the summation order of a dot product, as data.

Every accumulator receives 2-D float32 operands ``a`` (M, K) and ``b`` (K, N) and sums
the K products of each output element its own way.  Definitions (``p_k = a[i, k] * b[k, j]``):

* :class:`Fp32Blas` -- ``np.matmul`` in float32.  Fast, **not reproducible**: OpenBLAS
  picks its kernel at run time (Haswell and SkylakeX kernels block K differently and use
  FMA), and the split over threads depends on the shape and thread count, so the bits can
  change between machines and between 1 and 2 threads.
* :class:`Fp32Sequential` -- ``s = +0.0; for k in 0..K-1: s = fl32(s + fl32(p_k))``: one
  float32 rounding per product and per add, no fused multiply-add.
* :class:`Fp32Pairwise` -- a binary tree: ``T(p[lo:hi]) = p[lo]`` for one product, else
  ``T(p[lo:lo+h]) + T(p[lo+h:hi])`` with ``h`` the largest power of two strictly less than
  ``hi - lo``; the result is ``+0.0 + T(p[0:K])``.  For a power-of-two K this is the perfect
  tree ``((p0+p1)+(p2+p3))+...``; otherwise the perfect trees of the binary digits of K,
  largest first, are added right to left: K = 6 gives ``((p0+p1)+(p2+p3)) + (p4+p5)``.
* :class:`Fp32Blocked` ``(block)`` -- sequential within each block of ``block``
  consecutive products (``b = +0.0; b = fl32(b + p_k)``), then the block sums added in
  order: ``s = +0.0; for each block: s = fl32(s + b)``.  ``block >= K`` is sequential.
* :class:`LowPrecisionAccumulator` ``(fmt, chunk, rounding)`` -- Wang et al. 2018 chunked
  accumulation in a low-precision format, see its docstring.

Products of two float32 values are rounded to float32 (IEEE); when the operands carry
formats whose products are exact in float32 (every pair of 8-bit formats), they are exact.
The sums start from ``+0.0``, so an all ``-0`` dot product gives ``+0`` (as BLAS does).
NaN and Inf operands propagate exactly as IEEE arithmetic does (``Inf * 0 = NaN``,
``Inf + -Inf = NaN``); no special casing.

All reproducible kernels compute each output element with one fixed sequence of float32
operations, so the bits do not depend on thread count or on the memory layout of the
inputs (they are made C-contiguous first).  Numba is used without any relaxed-math flags:
LLVM only contracts ``a * b + c`` into an FMA when told it may, so it does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..format import Format
from .base import Accumulator

__all__ = [
    "Fp32Blas", "Fp32Sequential", "Fp32Pairwise", "Fp32Blocked",
    "fp32_blas", "fp32_sequential", "fp32_pairwise", "fp32_blocked",
]

_F32 = np.float32


def _products_exact_in_float32(fmt_a: Format, fmt_b: Format) -> str | None:
    """Return why products of the two formats are not exact in float32, or None if they are."""
    if fmt_a.precision + fmt_b.precision > 24:
        return (f"products of {fmt_a.name} (p={fmt_a.precision}) and {fmt_b.name} (p={fmt_b.precision}) "
                f"need {fmt_a.precision + fmt_b.precision} significand bits; float32 has 24")
    lo = fmt_a.min_subnormal_exp + fmt_b.min_subnormal_exp
    if lo < -149:
        return (f"the smallest product of {fmt_a.name} and {fmt_b.name} is 2^{lo}, below float32's "
                "smallest subnormal 2^-149")
    if fmt_a.max * fmt_b.max > float(np.finfo(np.float32).max):
        return f"the largest product of {fmt_a.name} and {fmt_b.name} overflows float32"
    return None


class _Fp32Accumulator(Accumulator):
    """Shared operand check of the float32 accumulators: products must be exact in float32."""

    #: ``matmul_2d`` takes ``out=`` (a C-contiguous float32 (M, N) array to fill); conv reuses buffers.
    accepts_out = True

    def check_operands(self, a_fmt: Format | None, b_fmt: Format | None) -> None:
        if a_fmt is None or b_fmt is None:
            return None  # plain float32 operands: products round to float32, as IEEE float32 GEMM does
        why = _products_exact_in_float32(a_fmt, b_fmt)
        if why is not None:
            raise ValueError(f"accumulator {self.name} cannot represent the operands' products: {why}; "
                             "use LowPrecisionAccumulator (exact float64 products) or narrower formats")
        return None


def _as_c_float32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=_F32)


def _out_buffer(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    shape = (a.shape[0], b.shape[1])
    if out is None:
        return np.empty(shape, dtype=_F32)
    if out.shape != shape or out.dtype != _F32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    return out


@dataclass(frozen=True)
class Fp32Blas(_Fp32Accumulator):
    """``np.matmul`` in float32 (OpenBLAS sgemm): fast, summation order unspecified."""

    reproducible = False

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        return np.matmul(a, b, out=_out_buffer(a, b, out))


# ---- sequential --------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _matmul_sequential(a, b, out):
    """out[i, j] = (((0 + a[i,0]b[0,j]) + a[i,1]b[1,j]) + ...) in float32.

    Rows go to threads (prange); within a row the inner loop runs over output columns j,
    so the k-loop order of every element is fixed while the j-loop vectorises.
    """
    m, kk = a.shape
    n = b.shape[1]
    for i in numba.prange(m):
        acc = out[i]
        for j in range(n):
            acc[j] = np.float32(0.0)
        for k in range(kk):
            aik = a[i, k]
            bk = b[k]
            for j in range(n):
                acc[j] = acc[j] + aik * bk[j]
    return out


def _matmul_sequential_ref(a, b, out):
    """Readable twin of :func:`_matmul_sequential` (plain loops, numpy float32 scalars)."""
    m, kk = a.shape
    for i in range(m):
        for j in range(b.shape[1]):
            s = _F32(0.0)
            for k in range(kk):
                s = _F32(s + _F32(a[i, k] * b[k, j]))
            out[i, j] = s
    return out


@dataclass(frozen=True)
class Fp32Sequential(_Fp32Accumulator):
    """Sum over k in order, one float32 rounding per product and per add; bit-reproducible."""

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        a, b = _as_c_float32(a), _as_c_float32(b)
        out = _out_buffer(a, b, out)
        return _matmul_sequential(a, b, out)


# ---- blocked -----------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _matmul_blocked(a, b, block, out):
    """Sequential sums of ``block`` consecutive products, the block sums added in order."""
    m, kk = a.shape
    n = b.shape[1]
    for i in numba.prange(m):
        acc = out[i]
        part = np.empty(n, dtype=np.float32)
        for j in range(n):
            acc[j] = np.float32(0.0)
        for k0 in range(0, kk, block):
            for j in range(n):
                part[j] = np.float32(0.0)
            for k in range(k0, min(k0 + block, kk)):
                aik = a[i, k]
                bk = b[k]
                for j in range(n):
                    part[j] = part[j] + aik * bk[j]
            for j in range(n):
                acc[j] = acc[j] + part[j]
    return out


@dataclass(frozen=True)
class Fp32Blocked(_Fp32Accumulator):
    """Sequential within blocks of ``block`` products, then the block sums sequentially."""

    block: int = 32

    def __post_init__(self) -> None:
        if isinstance(self.block, bool) or not isinstance(self.block, (int, np.integer)) or self.block < 1:
            raise ValueError(f"Fp32Blocked.block must be an int >= 1, got {self.block!r}")

    @property
    def name(self) -> str:
        return f"fp32_blocked({self.block})"

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        a, b = _as_c_float32(a), _as_c_float32(b)
        out = _out_buffer(a, b, out)
        return _matmul_blocked(a, b, int(self.block), out)


# ---- pairwise ----------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _matmul_pairwise(a, b, out):
    """The pairwise tree of the module docstring, built with a binary-counter stack.

    Products are pushed in order; after pushing product k the top two entries are merged
    (``left + right``) once per trailing zero bit of ``k + 1``, so the stack always holds
    perfect trees whose sizes are the binary digits of the count so far, largest at the
    bottom.  At the end they are folded right to left (top first), then added to ``+0.0``.
    """
    m, kk = a.shape
    n = b.shape[1]
    depth = 1
    while (1 << depth) <= kk:
        depth += 1
    for i in numba.prange(m):
        stack = np.empty((depth + 1, n), dtype=np.float32)
        top = 0
        for k in range(kk):
            aik = a[i, k]
            bk = b[k]
            row = stack[top]
            for j in range(n):
                row[j] = aik * bk[j]
            top += 1
            c = k + 1
            while (c & 1) == 0:
                left = stack[top - 2]
                right = stack[top - 1]
                for j in range(n):
                    left[j] = left[j] + right[j]
                top -= 1
                c >>= 1
        acc = out[i]
        for j in range(n):
            acc[j] = np.float32(0.0)
        if top > 0:
            for j in range(n):
                acc[j] = stack[top - 1][j]
            for t in range(top - 2, -1, -1):
                left = stack[t]
                for j in range(n):
                    acc[j] = left[j] + acc[j]
            for j in range(n):
                acc[j] = np.float32(0.0) + acc[j]
    return out


@dataclass(frozen=True)
class Fp32Pairwise(_Fp32Accumulator):
    """Pairwise (binary tree) summation in float32; tree defined in the module docstring."""

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        a, b = _as_c_float32(a), _as_c_float32(b)
        out = _out_buffer(a, b, out)
        return _matmul_pairwise(a, b, out)


fp32_blas = Fp32Blas()
fp32_sequential = Fp32Sequential()
fp32_pairwise = Fp32Pairwise()


def fp32_blocked(block: int = 32) -> Fp32Blocked:
    """Return the blocked float32 accumulator with blocks of ``block`` products."""
    return Fp32Blocked(block)
