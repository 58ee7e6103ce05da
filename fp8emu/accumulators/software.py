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
inputs (``b`` is made C-contiguous; ``a`` may be C- or Fortran-ordered).  Numba is used without any relaxed-math flags:
LLVM only contracts ``a * b + c`` into an FMA when told it may, so it does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .. import _kernels
from .._blas import warn_if_spinning
from ..format import Format, RoundMode
from ..formats import get_format
from ..quantize import kernel_arguments
from .base import Accumulator

__all__ = [
    "Fp32Blas", "Fp32Sequential", "Fp32Pairwise", "Fp32Blocked",
    "LowPrecisionAccumulator", "fp32_blas", "fp32_sequential", "fp32_pairwise", "fp32_blocked", "lowp",
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

    accepts_out = True
    #: exact float32 products: the formats are only checked, never used
    uses_operand_formats = False

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


def _as_lhs_float32(x: np.ndarray) -> np.ndarray:
    """float32 ``a`` operand, C- or Fortran-ordered as given (the kernels read ``a[i, k]`` as scalars,
    so a transposed view, e.g. ``cols.T`` in conv2d_grad_weight, needs no transposing copy)."""
    if x.dtype == _F32 and (x.flags.c_contiguous or x.flags.f_contiguous):
        return x
    return np.ascontiguousarray(x, dtype=_F32)


def _out_buffer(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The (M, N) float32 array to compute into: ``out`` once checked, or a new one; also a new
    one where ``out`` shares memory with the operands as the kernels read them (they write
    rows of the result while still reading both), which :func:`_written_back` copies into
    ``out``, as ``np.matmul`` does with an overlapping ``out``."""
    shape = (a.shape[0], b.shape[1])
    if out is None:
        return np.empty(shape, dtype=_F32)
    if out.shape != shape or out.dtype != _F32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    if np.may_share_memory(out, a) or np.may_share_memory(out, b):
        return np.empty(shape, dtype=_F32)
    return out


def _written_back(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out`` holding ``result`` where :func:`_out_buffer` gave a temporary, else ``result``."""
    if out is None or result is out:
        return result
    np.copyto(out, result)
    return out


@dataclass(frozen=True)
class Fp32Blas(_Fp32Accumulator):
    """``np.matmul`` in float32 (OpenBLAS sgemm): fast, summation order unspecified."""

    reproducible = False

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        warn_if_spinning()
        return _written_back(np.matmul(a, b, out=_out_buffer(a, b, out)), out)


# ---- sequential --------------------------------------------------------------------------
@numba.njit(cache=True, inline="always")
def _sequential_row(a, b, i, acc):
    """acc[j] = (((0 + a[i,0]b[0,j]) + a[i,1]b[1,j]) + ...) in float32, vectorised over j."""
    for j in range(acc.shape[0]):
        acc[j] = np.float32(0.0)
    for k in range(a.shape[1]):
        aik = a[i, k]
        bk = b[k]
        for j in range(acc.shape[0]):
            acc[j] = acc[j] + aik * bk[j]


@numba.njit(cache=True, parallel=True)
def _matmul_sequential(a, b, out):
    """out[i, j] = (((0 + a[i,0]b[0,j]) + a[i,1]b[1,j]) + ...) in float32.

    Threads take blocks of four rows; each loaded ``b[k, j]`` serves the four rows, and the
    inner loop over output columns j vectorises.  Every element still sees its own sequence
    of float32 multiply-then-add operations in k order (the row grouping only interleaves
    independent elements).
    """
    m, kk = a.shape
    n = b.shape[1]
    for ib in numba.prange((m + 3) // 4):
        i0 = ib * 4
        if i0 + 4 > m:
            for i in range(i0, m):
                _sequential_row(a, b, i, out[i])
            continue
        o0, o1, o2, o3 = out[i0], out[i0 + 1], out[i0 + 2], out[i0 + 3]
        for j in range(n):
            o0[j] = np.float32(0.0)
            o1[j] = np.float32(0.0)
            o2[j] = np.float32(0.0)
            o3[j] = np.float32(0.0)
        for k in range(kk):
            x0, x1, x2, x3 = a[i0, k], a[i0 + 1, k], a[i0 + 2, k], a[i0 + 3, k]
            bk = b[k]
            for j in range(n):
                bj = bk[j]
                o0[j] = o0[j] + x0 * bj
                o1[j] = o1[j] + x1 * bj
                o2[j] = o2[j] + x2 * bj
                o3[j] = o3[j] + x3 * bj
    return out


@dataclass(frozen=True)
class Fp32Sequential(_Fp32Accumulator):
    """Sum over k in order, one float32 rounding per product and per add; bit-reproducible."""

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        a, b = _as_lhs_float32(a), _as_c_float32(b)
        return _written_back(_matmul_sequential(a, b, _out_buffer(a, b, out)), out)


# ---- blocked -----------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _matmul_blocked(a, b, block, out):
    """Sequential sums of ``block`` consecutive products, the block sums added in order.

    Four rows per task share each loaded ``b[k, j]`` (as in :func:`_matmul_sequential`);
    every element keeps its own order.
    """
    m, kk = a.shape
    n = b.shape[1]
    for ib in numba.prange((m + 3) // 4):
        i0 = ib * 4
        rows = min(4, m - i0)
        part = np.empty((4, n), dtype=np.float32)
        for r in range(rows):
            for j in range(n):
                out[i0 + r, j] = np.float32(0.0)
        for k0 in range(0, kk, block):
            part[:] = np.float32(0.0)
            p0, p1, p2, p3 = part[0], part[1], part[2], part[3]
            for k in range(k0, min(k0 + block, kk)):
                bk = b[k]
                if rows == 4:
                    x0, x1, x2, x3 = a[i0, k], a[i0 + 1, k], a[i0 + 2, k], a[i0 + 3, k]
                    for j in range(n):
                        bj = bk[j]
                        p0[j] = p0[j] + x0 * bj
                        p1[j] = p1[j] + x1 * bj
                        p2[j] = p2[j] + x2 * bj
                        p3[j] = p3[j] + x3 * bj
                else:
                    for r in range(rows):
                        x = a[i0 + r, k]
                        pr = part[r]
                        for j in range(n):
                            pr[j] = pr[j] + x * bk[j]
            for r in range(rows):
                acc = out[i0 + r]
                pr = part[r]
                for j in range(n):
                    acc[j] = acc[j] + pr[j]
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
        """``fp32_blocked(B)``."""
        return f"fp32_blocked({self.block})"

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None):
        a, b = _as_lhs_float32(a), _as_c_float32(b)
        return _written_back(_matmul_blocked(a, b, int(self.block), _out_buffer(a, b, out)), out)


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
        a, b = _as_lhs_float32(a), _as_c_float32(b)
        return _written_back(_matmul_pairwise(a, b, _out_buffer(a, b, out)), out)


fp32_blas = Fp32Blas()
fp32_sequential = Fp32Sequential()
fp32_pairwise = Fp32Pairwise()


def fp32_blocked(block: int = 32) -> Fp32Blocked:
    """Return the blocked float32 accumulator with blocks of ``block`` products.

    Args:
        block: products per block (>= 1).

    Returns:
        An :class:`Fp32Blocked`.
    """
    return Fp32Blocked(block)


# ---- low precision (Wang et al. 2018) ------------------------------------------------------------
#   float64 bit layout used by the fast path below:
#     bit 63 | 62 ........ 52 | 51 ................................. 0
#       S    | E (bias 1023)  | T: the target keeps the top m bits | drops sh = 52 - m
_MAG = np.uint64(0x7FFF_FFFF_FFFF_FFFF)


@numba.njit(cache=True, inline="always")
def _sum_round_to_odd(q, p):
    """Bits of fl64(q + p) rounded to odd: the exact sum, or its odd float64 neighbour toward it.

    TwoSum (Knuth) gives the exact error ``err`` of ``s = fl64(q + p)``; when ``err != 0``
    and ``s``'s last significand bit is 0 (RNE landed on an even neighbour), step one ulp
    toward the exact sum (``u + 1`` grows the magnitude, ``u - 1`` shrinks it).  Rounding
    this round-to-odd value once more to any format with at most 51 significand bits gives
    the same result as rounding the exact sum (Boldo and Melquiond 2008), in every rounding
    mode; stochastic rounding sees the exact fraction to 2^-(51-m) ulp (<= 2^-36).  Branch-free, so the loops
    calling it vectorise.
    """
    s = q + p
    bb = s - q
    err = (q - (s - bb)) + (p - bb)
    u = np.float64(s).view(np.uint64)
    finite = (u & _MAG) < np.uint64(0x7FF0_0000_0000_0000)
    step = np.uint64((err != 0.0) & ((u & np.uint64(1)) == np.uint64(0)) & finite)
    grow = np.uint64((err > 0.0) == (s > 0.0))
    return u + step * grow - step * (np.uint64(1) - grow)


@numba.njit(cache=True, inline="always")
def _round_fast(u, uadd, utie, sh, keep, fast, min_bits, max_bits):
    """(value, ok): the in-place rounding of float64 bits ``u`` (see :func:`_accumulate_row`);
    when not ok, the value is ``u`` itself, kept for the general path."""
    mag = u & _MAG
    r = (mag + uadd + ((mag >> sh) & utie)) & keep
    ok = fast & (mag >= min_bits) & (r <= max_bits)
    return np.uint64((r | (u & ~_MAG)) if ok else u).view(np.float64), ok


@numba.njit(cache=True, inline="always")
def _accumulate_row(dst, x, y, idx_row, events, event, exact, add, tie_even, m, min_bits, max_bits,
                    prm, key_base, key0, lut, dprm):
    """dst[j] = round_fmt(dst[j] + x * y[j]) for every j, one rounding from the exact sum.

    The products ``x * y[j]`` are exact in float64 (operands of at most 24 significand bits).
    The sum is taken round-to-odd (``exact=True``) or plain float64 when that provably gives
    the same rounding (see :meth:`LowPrecisionAccumulator._needs_exact_sum`).
    Fast path, when the result is a normal number of the format that does not overflow:
    round the float64 bits in place (``sh = 52 - m`` dropped bits)::

        r = (|u| + add + (lsb & tie_even)) & ~(2^sh - 1)

    with ``add = half - 1, tie_even = 1`` (nearest-even), ``add = half, tie_even = 0``
    (nearest-away), ``add = 0, tie_even = 0`` (toward zero); a carry walks into the exponent
    by itself.  Everything else (zeros, subnormals, overflow, NaN/Inf, stochastic and the
    other directed modes, and nearest-even with ``m = 0``, whose ties follow the format's
    tie rule: ``add < 0``) goes through the rounding layer's ``_round_bits``,
    whose random bits for element ``idx_row + j`` use index ``(idx_row + j) * events + event``;
    the code's value is ``lut[code]``, or built from the code (``dprm``) when ``lut`` is empty
    (formats wider than 16 bits have no table).
    """
    n = dst.shape[0]
    sh = np.uint64(52 - m)
    keep = ~((np.uint64(1) << sh) - np.uint64(1))
    fast = add >= 0
    uadd = np.uint64(max(add, 0))
    utie = np.uint64(tie_even)
    nslow = 0
    if exact:                    # two loops, so each one vectorises without a branch inside
        for j in range(n):
            u = _sum_round_to_odd(dst[j], x * y[j])
            v, ok = _round_fast(u, uadd, utie, sh, keep, fast, min_bits, max_bits)
            nslow += np.int64(not ok)
            dst[j] = v
    else:
        for j in range(n):
            u = np.float64(dst[j] + x * y[j]).view(np.uint64)
            v, ok = _round_fast(u, uadd, utie, sh, keep, fast, min_bits, max_bits)
            nslow += np.int64(not ok)
            dst[j] = v
    if nslow:
        # The same test on the kept sum fails again (a fast lane's rounded value passes it), so
        # the slow lanes are found without a flag array.
        for j in range(n):
            u = np.float64(dst[j]).view(np.uint64)
            if not _round_fast(u, uadd, utie, sh, keep, fast, min_bits, max_bits)[1]:
                code = _kernels._round_bits(u, (idx_row + j) * events + event, prm, key_base, key0)
                if lut.shape[0] > 0:
                    dst[j] = lut[code]
                else:
                    dst[j] = np.uint64(_kernels._value_bits(code, dprm)).view(np.float64)


@numba.njit(cache=True, parallel=True)
def _matmul_lowp(a, b, chunk, index0, exact, exact_chunk, add, tie_even, m, min_bits, max_bits, prm, key_base, key0, lut,
                 dprm, out):
    """Chunked low-precision accumulation of float64 operands (values exact in float32).

    Per output element: ``tot = +0``; for each chunk of ``chunk`` products:
    ``part = +0; part = round(part + p_k)`` for each k in order, then ``tot = round(tot + part)``.
    Rounding events of element e are numbered ``k`` (product adds) and ``K + c`` (chunk c).
    """
    mm, kk = a.shape
    n = b.shape[1]
    nchunks = (kk + chunk - 1) // chunk
    events = kk + nchunks
    for i in numba.prange(mm):
        part = np.empty(n, dtype=np.float64)
        tot = np.zeros(n, dtype=np.float64)
        idx_row = index0 + i * n
        for c in range(nchunks):
            part[:] = 0.0
            for k in range(c * chunk, min(kk, (c + 1) * chunk)):
                _accumulate_row(part, np.float64(a[i, k]), b[k], idx_row, events, k, exact, add, tie_even, m,
                                min_bits, max_bits, prm, key_base, key0, lut, dprm)
            _accumulate_row(tot, 1.0, part, idx_row, events, kk + c, exact_chunk, add, tie_even,
                            m, min_bits, max_bits, prm, key_base, key0, lut, dprm)
        for j in range(n):
            out[i, j] = np.float32(tot[j])
    return out


_NEAREST = (RoundMode.NEAREST_EVEN, RoundMode.NEAREST_AWAY)


def _float64_rounding(fmt, rounding, saturate, seed, sr_bits, stream):
    """The rounding layer's kernel parameters for float64 input: (prm, key_base, key0, float64
    values of the codes, value-building parameters).  Formats wider than 16 bits get an empty
    table: their values are built from the code."""
    args = kernel_arguments(fmt, np.float64, rounding=rounding, saturate=saturate, seed=seed, sr_bits=sr_bits,
                            stream=stream)
    return args.params, args.keys.base, args.keys.key0, args.values, args.value_params



@dataclass(frozen=True)
class LowPrecisionAccumulator(Accumulator):
    """Chunked accumulation in a low-precision format (Wang et al. 2018, NeurIPS).

    Per output element, with exact products ``p_k`` (float64: exact for operands of at most
    24 significand bits)::

        tot = +0
        for each chunk of `chunk` consecutive k:
            part = +0
            for k in chunk: part = round_fmt(part + p_k)      # one rounding of the exact sum
            tot = round_fmt(tot + part)

    ``chunk >= K`` is plain sequential accumulation in ``fmt`` (the final add of ``part``
    to ``+0`` is exact).  Rounding is the rounding layer's (``fp8emu.quantize``) applied to
    the exact sum (computed as float64 round-to-odd, which makes the single rounding exact);
    overflow follows ``saturate`` and the format's Inf/NaN rules, after which Inf/NaN
    propagate.  Stochastic rounding draws the bits of rounding event ``ev`` of output
    element ``e`` (C-order index over the whole, batched, result) at index
    ``e * (K + nchunks) + ev`` (events ``0..K-1``: product adds, ``K + c``: chunk ``c``
    added to the total) of the stream ``(seed, stream)``; ``seed=None`` draws a fresh seed
    per call (not reproducible).  :func:`fp8emu.matmul` passes its own ``seed`` and
    ``stream + 3`` when given a seed.

    Args:
        fmt: the accumulator format (Format or name), e.g. ``"float16"``, ``"bfloat16"``.
        chunk: chunk length C >= 1.
        rounding: rounding mode of every accumulation step (RoundMode or name).
        saturate: clamp overflowing partial sums to +-max instead of Inf/NaN.
        seed, stream: stochastic rounding keys.
        sr_bits: ``None`` exact stochastic rounding, else ``r`` random bits (hardware style).
    """

    fmt: Format
    chunk: int = 64
    rounding: RoundMode = RoundMode.NEAREST_EVEN
    saturate: bool = False
    seed: int | None = None
    stream: int = 0
    sr_bits: int | None = None

    accepts_out = True
    accepts_rng = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fmt", get_format(self.fmt))
        object.__setattr__(self, "rounding", RoundMode.parse(self.rounding))
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, (int, np.integer)) or self.chunk < 1:
            raise ValueError(f"LowPrecisionAccumulator.chunk must be an int >= 1, got {self.chunk!r}")
        object.__setattr__(self, "chunk", int(self.chunk))
        if not self.fmt.signed:
            raise ValueError(f"LowPrecisionAccumulator.fmt must be signed, got {self.fmt.name}")
        _float64_rounding(self.fmt, self.rounding, self.saturate, 0, self.sr_bits, self.stream)  # validates the rest

    @property
    def name(self) -> str:
        """``lowp(fmt, chunk=C, rounding)``."""
        return f"lowp({self.fmt.name}, chunk={self.chunk}, {self.rounding.value})"

    def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None, out=None, seed=None, stream=None, index0=0):
        a = _as_lhs_float32(a)
        b = np.ascontiguousarray(b, dtype=np.float64)
        target = _out_buffer(a, b, out)
        seed = self.seed if seed is None else seed
        stream = self.stream if stream is None else stream
        prm, key_base, key0, lut, dprm = _float64_rounding(self.fmt, self.rounding, self.saturate, seed, self.sr_bits,
                                                     stream)
        fmt = self.fmt
        half = 1 << (51 - fmt.man_bits)
        add, tie_even = {RoundMode.NEAREST_EVEN: (half - 1, 1), RoundMode.NEAREST_AWAY: (half, 0),
                         RoundMode.TOWARD_ZERO: (0, 0)}.get(self.rounding, (-1, 0))
        if fmt.man_bits == 0 and self.rounding is RoundMode.NEAREST_EVEN:
            # No fast path: with m = 0 the fast path's tie bit is float64's exponent low bit,
            # which is neither tie rule (UP: away from zero; EVEN_EXPONENT: the even code,
            # whose parity also depends on the bias).  The rounding layer applies fmt.tie_rule.
            add, tie_even = -1, 0
        bits = np.array([fmt.min_normal, fmt.max], dtype=np.float64).view(np.uint64)
        exact = self._needs_exact_sum(a_fmt, b_fmt)
        exact_chunk = self.rounding not in _NEAREST  # chunk sums add two format values (p bits each)
        return _written_back(_matmul_lowp(a, b, self.chunk, int(index0), exact, exact_chunk, add, tie_even, fmt.man_bits,
                                          bits[0], bits[1], prm, key_base, key0, lut, dprm, target), out)

    def _needs_exact_sum(self, a_fmt: Format | None, b_fmt: Format | None) -> bool:
        """Whether ``round(fl64(q + p))`` could differ from ``round(q + p)`` (then sums are taken round-to-odd).

        Not for nearest-even/away when every product has at most ``p`` (the accumulator's
        precision) significand bits.  Proof: let ``x = q + p`` (``q`` a format value, both
        addends of at most ``p <= 16`` bits) with the two roundings different.  Then
        ``fl64(x)`` is a midpoint ``mu`` of the format (a float64 number) and ``x != mu``, so
        ``x`` needs more than 53 bits: the smaller addend is below ``2^-37`` of the larger
        ("big"), hence ``|big - mu| < 2^(e - 36)``.  Both ``big`` and ``mu`` have at most
        ``p + 1 <= 17`` bits at exponents within one of ``e``, so ``big = mu``; but ``q`` is
        on the format's grid, and a product of at most ``p`` bits this far (2^37) above the
        smallest value ``|q|`` is a normal-range number, not a midpoint (``p + 1`` bits).
        Directed and stochastic modes always need the exact sum (``x = q - tiny`` must round
        below ``q``).
        """
        if self.rounding not in _NEAREST or self.fmt.precision > 16:   # the proof needs p <= 16
            return True
        pa = 24 if a_fmt is None else a_fmt.precision
        pb = 24 if b_fmt is None else b_fmt.precision
        return pa + pb > self.fmt.precision


def lowp(fmt: Format | str, chunk: int = 64, rounding: RoundMode | str = RoundMode.NEAREST_EVEN, **kw
         ) -> LowPrecisionAccumulator:
    """Return a :class:`LowPrecisionAccumulator` (e.g. ``lowp("float16", 64)``, ``lowp("bfloat16", 32, "sr")``).

    Args:
        fmt: the accumulator format (Format or name).
        chunk: chunk length C >= 1.
        rounding: rounding mode of every accumulation step (RoundMode or name).
        **kw: ``saturate``, ``seed``, ``stream``, ``sr_bits`` (see the class).

    Returns:
        The accumulator.
    """
    return LowPrecisionAccumulator(get_format(fmt), chunk, RoundMode.parse(rounding), **kw)
