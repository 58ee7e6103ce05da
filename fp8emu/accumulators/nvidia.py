"""Bit-exact model of the FP8 GEMM of an NVIDIA H200 (Hopper) through cuBLASLt, as data.

Two layers, each a set of parameters (see ``docs/h200.md`` for the evidence behind each value):

1. The tensor-core instruction (one ``wgmma`` K-step): ``step`` = 32 consecutive K elements
   and the running tensor-core accumulator ``c`` form one alignment group.  With
   ``e(x) = floor(log2|x|)`` for normal operands, ``emin`` of the format for subnormal ones
   (``subnormal_exponent="min_normal"``), the reference exponent is

       emax = max( max_k e(a_k) + e(b_k) ,  floor(log2|c|) )      (zero products excluded)

   where ``e(a)+e(b)`` is the *un-normalised* product exponent (significand products lie in
   [1, 4)).  Every term, ``c`` included, is cut to ``kept_frac_bits`` (13) fraction bits below
   ``2^emax`` (``term_rounding="truncate"``: toward zero, sign-magnitude); the cut terms are
   summed exactly; the sum is normalised and cut to ``kept_frac_bits`` fraction bits of its
   own exponent (``sum_rounding``).  That is the new ``c``.

2. The library kernel: without fast accumulation, every ``promotion_interval`` (128) K
   elements ``c`` is added to an FP32 register with one round-to-nearest-even add and reset
   (``promotion_interval=None`` is ``use_fast_accum=True``: ``c`` runs to the end).  A
   split-K kernel (``split_k`` > 1) cuts K into ``split_k`` contiguous ranges of
   ``ceil(ceil(K / split_granule) / split_k) * split_granule`` elements (the last one
   shorter); each range starts from zero and runs the above; the FP32 partials are added in
   range order (``splitKreduce_kernel``).  Which ``split_k`` cuBLASLt picks for a shape is
   :class:`CublasLtSplitRule` (measured table for one cuBLASLt version).

The definition in integers (the slow twin follows it with Fractions; the fast kernel holds the
same integers in float32 exactly (float64 where ``c`` is left out of the alignment); one operand
element)::

    x = sig * 2^lsb        sig: signed integer, |sig| < 2^p (p = man_bits + 1)
                           lsb = e - man_bits (normal) or emin - man_bits (subnormal)
    e(x)                   alignment exponent: floor(log2|x|), or emin for subnormals

A product term is ``P = sig_a * sig_b`` at ``2^(lsb_a + lsb_b)``; in the group's fixed-point
unit ``2^(emax - kept)`` it is ``P * 2^d`` with ``d = lsb_a + lsb_b - emax + kept``; ``d < 0``
cuts ``-d`` bits off ``|P|``::

    |P| = 1 0 1 1 0 1 1 1          (d = -3)
          <--- kept ---> x x x     dropped (truncate), or rounded half to even
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import numba
import numpy as np
from numba import prange

from ..format import Format
from ..formats import e4m3fn, get_format
from ..quantize import decode
from . import _h200_splits
from .base import Accumulator

__all__ = ["NvidiaHopperFP8", "CublasLtSplitRule", "CUBLASLT_13_1_H200", "nvidia_hopper_fp8",
           "split_ranges", "compare_to_recording", "hopper_reference_dot"]

_ROUNDINGS = ("truncate", "nearest_even")
_SUBNORMAL_RULES = ("min_normal", "actual")


# ---------------------------------------------------------------------------------------------
# kernel choice
# ---------------------------------------------------------------------------------------------
def _parse_table() -> tuple[tuple[int, int, int, int], ...]:
    """(M, N, K, numSplitsK) rows of the generated module ``_h200_splits`` (grid and K sweep)."""
    rows = []
    for line in _h200_splits.TABLE.strip().splitlines():
        mn, vals = line.split(":")
        m, n = (int(v) for v in mn.split())
        for k, v in zip(_h200_splits.KS, vals.split()):
            if v != "-":
                rows.append((m, n, k, int(v)))
    seen = {r[:3] for r in rows}
    for line in _h200_splits.SWEEP.strip().splitlines():
        mn, runs = line.split(":")
        m, n = (int(v) for v in mn.split())
        t = 0
        for run in runs.split():
            value, count = (int(v) for v in run.split("*"))
            for _ in range(count):
                t += 1
                if (m, n, 128 * t) not in seen:
                    rows.append((m, n, 128 * t, value))
    return tuple(rows)


@dataclass(frozen=True)
class CublasLtSplitRule:
    """Which ``numSplitsK`` cuBLASLt's heuristic picks for an FP8 GEMM, as data.

    ``splits`` looks the shape up in ``table`` (exact, measured).  For a shape missing from the
    table it falls back to cuBLASLt's base rule ``max(1, (ceil(K/128) - 1) // k_tiles_per_split)``
    (every split gets more than 20 K tiles of 128; measured at every K = 128 t up to 131072 for
    outputs of 16..64 x 16..64, where it holds to K = 65536 and beyond except for 64 x 64),
    clamped between the measured values at the nearest measured K below and above (1 when none
    is below, the row's largest when none is above) of one measured output shape: (M, N) rounded
    up to the smallest measured (m, n) with ``m >= M`` and ``n >= N`` (fewest outputs, then
    smallest m), because larger outputs get fewer splits (capped by the 1 MiB workspace and the
    tile count); where no measured shape is that large, the largest measured output's values.
    Shapes off the table are *not* pinned.

    Args:
        table: ``(M, N, K, splits)`` rows measured on the target.
        format_overrides: ``(M, N, K, a_fmt, b_fmt, splits)`` rows where an operand-format pair
            other than the table's got a different count.
        k_tiles_per_split: the base rule's K tiles (of 128) per split.
        version: the library/driver/GPU the table was measured on.
    """

    table: tuple[tuple[int, int, int, int], ...] = field(default=(), repr=False)
    format_overrides: tuple[tuple[int, int, int, str, str, int], ...] = field(default=(), repr=False)
    k_tiles_per_split: int = 20
    version: str = ""

    @cached_property
    def _lookup(self) -> dict:
        return {(m, n, k): s for m, n, k, s in self.table}

    @cached_property
    def _by_mn(self) -> dict:
        by_mn: dict = {}
        for m, n, k, s in sorted(self.table):
            by_mn.setdefault((m, n), []).append((k, s))
        return by_mn

    def measured_output_for(self, M: int, N: int) -> tuple[int, int]:
        """The measured output shape whose split counts bound an unmeasured (M, N).

        The smallest measured (m, n) with ``m >= M`` and ``n >= N`` (fewest outputs, then the
        smaller m): a larger output never gets more splits from the workspace cap.  Past every
        measured shape in M or N, the largest measured output (the most outputs).

        Args:
            M, N: the GEMM's output shape.

        Raises:
            ValueError: the table is empty.
        """
        if not self._by_mn:
            raise ValueError("the split table is empty: no measured output shape to round up to")
        def outputs_then_shape(mn: tuple[int, int]) -> tuple[int, tuple[int, int]]:
            return mn[0] * mn[1], mn

        covering = [mn for mn in self._by_mn if mn[0] >= M and mn[1] >= N]
        return min(covering, key=outputs_then_shape) if covering else max(self._by_mn, key=outputs_then_shape)

    def is_measured(self, M: int, N: int, K: int) -> bool:
        """Whether the table holds this shape.

        Args:
            M, N, K: the GEMM's shape.
        """
        return (M, N, K) in self._lookup

    def splits(self, M: int, N: int, K: int, fast_accum: bool = False, a_fmt: str = "e4m3fn",
               b_fmt: str = "e4m3fn") -> int:
        """numSplitsK for an (M, K) x (K, N) product (the same in both modes wherever measured).

        Args:
            M, N, K: the GEMM's shape.
            fast_accum: cuBLASLt's fast-accumulation mode.
            a_fmt, b_fmt: the operand format names (some shapes split differently per format).

        Returns:
            The number of K splits.
        """
        for m, n, k, fa, fb, s in self.format_overrides:
            if (m, n, k, fa, fb) == (M, N, K, str(a_fmt), str(b_fmt)):
                return s
        if (M, N, K) in self._lookup:
            return self._lookup[(M, N, K)]
        guess = max(1, (-(-K // 128) - 1) // self.k_tiles_per_split)
        if not self._by_mn:
            return guess
        row = self._by_mn[self.measured_output_for(M, N)]
        below = [s for k, s in row if k <= K]
        above = [s for k, s in row if k >= K]
        lo = below[-1] if below else 1
        hi = above[0] if above else max(s for _, s in row)
        return max(min(lo, hi), min(guess, max(lo, hi)))


#: cuBLASLt 13.1.0 (libcublasLt.so.13, 130100) of PyTorch 2.11.0+cu130, CUDA 13.0, driver 580.159,
#: H200 (132 SMs), 1 MiB workspace (what PyTorch passed here).
CUBLASLT_13_1_H200 = CublasLtSplitRule(
    table=_parse_table(), format_overrides=_h200_splits.FORMAT_OVERRIDES,
    version="cuBLASLt 13.1.0 (130100), torch 2.11.0+cu130, H200 132 SMs, workspace 1 MiB")


def split_ranges(K: int, split_k: int, granule: int = 128) -> list[tuple[int, int]]:
    """The K ranges of a split-K kernel: ``ceil(ceil(K/granule)/split_k)`` granules each, in order.

    Measured with the boundary probes (``h200_inputs.boundary_probe``): K = 16384 with 6 splits
    gives boundaries 2816, 5632, 8448, 11264, 14080.  Fewer ranges come out when the rounding up
    leaves nothing for the last ones.

    Args:
        K: the reduction length.
        split_k: the number of splits.
        granule: split boundaries fall on multiples of this.

    Returns:
        ``[(lo, hi), ...]`` in order.
    """
    if split_k < 1 or granule < 1:
        raise ValueError(f"split_k={split_k} and granule={granule} must be >= 1")
    tiles = -(-K // granule)
    per = max(1, -(-tiles // split_k)) * granule  # K = 0: one empty range, not a zero step
    return [(lo, min(lo + per, K)) for lo in range(0, max(K, 1), per)]


# ---------------------------------------------------------------------------------------------
# the accumulator
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NvidiaHopperFP8(Accumulator):
    """The H200 FP8 tensor-core GEMM as parameters (defaults: measured values, non-fast mode).

    Args:
        step: K elements per tensor-core alignment group (wgmma K-step): 32.
        kept_frac_bits: fraction bits kept below the group's reference exponent: 13.
        term_rounding: how terms are cut to the kept bits: ``"truncate"`` (toward zero) or
            ``"nearest_even"``.
        sum_rounding: how the normalised group sum is cut: same choices.
        include_acc_in_alignment: whether the accumulator's exponent takes part in ``emax``
            (when False, ``c`` is still aligned to the products' unit, with the same rounding).
        promotion_interval: K elements between FP32 promotions (a multiple of ``step``), or
            None for fast accumulation (the tensor-core accumulator is the output).
        split_k: number of K splits, or None to ask ``split_rule`` with the GEMM's shape.
        split_granule: split boundaries fall on multiples of this (the kernel's K tile): 128.
        split_rule: cuBLASLt's choice of ``split_k`` per shape (used when ``split_k`` is None).
        subnormal_exponent: alignment exponent of subnormal operands: ``"min_normal"`` (the
            format's emin, measured) or ``"actual"`` (floor(log2|x|)).
    """

    step: int = 32
    kept_frac_bits: int = 13
    term_rounding: str = "truncate"
    sum_rounding: str = "truncate"
    include_acc_in_alignment: bool = True
    promotion_interval: int | None = 128
    split_k: int | None = None
    split_granule: int = 128
    split_rule: CublasLtSplitRule = field(default=CUBLASLT_13_1_H200, repr=False)
    subnormal_exponent: str = "min_normal"

    def __post_init__(self) -> None:
        if not isinstance(self.step, int) or self.step < 1:
            raise ValueError(f"step={self.step!r} must be a positive int")
        if not isinstance(self.kept_frac_bits, int) or self.kept_frac_bits < 1:
            raise ValueError(f"kept_frac_bits={self.kept_frac_bits!r} must be a positive int")
        if self.kept_frac_bits + 2 + math.ceil(math.log2(self.step + 1)) > 24:
            raise ValueError(f"kept_frac_bits={self.kept_frac_bits} with step={self.step}: a group sum needs "
                             f"{self.kept_frac_bits + 2 + math.ceil(math.log2(self.step + 1))} bits; the exact "
                             "float32 kernel allows 24 (kept_frac_bits + 2 + ceil(log2(step + 1)) <= 24)")
        for name in ("term_rounding", "sum_rounding"):
            if getattr(self, name) not in _ROUNDINGS:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: {', '.join(map(repr, _ROUNDINGS))}")
        if self.promotion_interval is not None and (
                not isinstance(self.promotion_interval, int) or self.promotion_interval < self.step
                or self.promotion_interval % self.step):
            raise ValueError(f"promotion_interval={self.promotion_interval!r} must be None or a positive "
                             f"multiple of step={self.step}")
        if self.split_k is not None and (not isinstance(self.split_k, int) or self.split_k < 1):
            raise ValueError(f"split_k={self.split_k!r} must be None or an int >= 1")
        if not isinstance(self.split_granule, int) or self.split_granule < 1 or self.split_granule % self.step:
            raise ValueError(f"split_granule={self.split_granule!r} must be a positive multiple of step={self.step}")
        if self.subnormal_exponent not in _SUBNORMAL_RULES:
            raise ValueError(f"subnormal_exponent={self.subnormal_exponent!r}; allowed: "
                             f"{', '.join(map(repr, _SUBNORMAL_RULES))}")

    @property
    def fast_accum(self) -> bool:
        """Whether this is cuBLASLt's fast accumulation (no FP32 promotion)."""
        return self.promotion_interval is None

    def splits_for_formats(self, M: int, N: int, K: int, a_fmt: Format, b_fmt: Format) -> int:
        """The split count used for an (M, K) x (K, N) product of these operand formats.

        Args:
            M, N, K: the GEMM's shape.
            a_fmt, b_fmt: the operand formats.

        Returns:
            ``split_k`` when set, else the split rule's count for this shape.
        """
        if self.split_k is not None:
            return self.split_k
        return self.split_rule.splits(M, N, K, self.fast_accum, a_fmt.name, b_fmt.name)

    def check_operands(self, a_fmt: Format | None, b_fmt: Format | None) -> None:
        for name, fmt in (("a_fmt", a_fmt), ("b_fmt", b_fmt)):
            if fmt is None:
                raise ValueError(f"{self.name} models FP8 tensor cores: {name} must be a Format "
                                 "(e.g. fp8emu.formats.e4m3fn or e5m2), got None")
        fa, fb = get_format(a_fmt), get_format(b_fmt)
        # the kernel's float32 arithmetic is exact for these (see the note above _hopper_gemm)
        if fa.precision + fb.precision > 24 or fa.min_subnormal_exp + fb.min_subnormal_exp < -149 \
                or fa.emax + fb.emax + 2 > 127:
            raise ValueError(f"a_fmt={fa.name}, b_fmt={fb.name}: products must be exact float32 values "
                             "(precisions summing to <= 24, product exponents within -149..127); "
                             "8-bit formats and float16 qualify")

    def matmul_2d(self, a: np.ndarray, b: np.ndarray, *, a_fmt: Format | None = None,
                  b_fmt: Format | None = None) -> np.ndarray:
        """Return ``a @ b`` as the H200 computes it (float32, C-contiguous).

        Args:
            a: float32 (M, K), every value exact in ``a_fmt``.
            b: float32 (K, N), every value exact in ``b_fmt``.
            a_fmt, b_fmt: the operand formats (required).

        Raises:
            ValueError: missing formats, values not exact in their format, NaN/Inf operands, or
                mismatched shapes.
        """
        self.check_operands(a_fmt, b_fmt)
        a_fmt, b_fmt = get_format(a_fmt), get_format(b_fmt)
        a = np.asarray(a, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"a and b must be 2-D with a.shape[1] == b.shape[0]; got {a.shape} and {b.shape}")
        M, K = a.shape
        N = b.shape[1]
        av, ap = _split_operand(a, a_fmt, "a", self.subnormal_exponent)
        bv, bp = _split_operand(b, b_fmt, "b", self.subnormal_exponent)
        ranges = split_ranges(K, self.splits_for_formats(M, N, K, a_fmt, b_fmt), self.split_granule)
        bounds = np.array([lo for lo, _ in ranges] + [K], dtype=np.int64)
        out = np.empty((M, N), dtype=np.float32)
        prom = 0 if self.promotion_interval is None else self.promotion_interval
        _hopper_gemm(av, ap, bv, bp, bounds, self.step, self.kept_frac_bits, prom,
                     self.term_rounding == "nearest_even", self.sum_rounding == "nearest_even",
                     self.include_acc_in_alignment, out)
        return out


def nvidia_hopper_fp8(fast_accum: bool = False, M: int | None = None, N: int | None = None,
                      K: int | None = None, *, a_fmt: Format | str = e4m3fn, b_fmt: Format | str = e4m3fn,
                      split_rule: CublasLtSplitRule = CUBLASLT_13_1_H200, **params) -> NvidiaHopperFP8:
    """The H200 + cuBLASLt FP8 GEMM of ``torch._scaled_mm(..., use_fast_accum=fast_accum)``.

    Args:
        fast_accum: ``use_fast_accum``: no FP32 promotion every 128 K elements.
        M, N, K: when all are given, the split count is fixed now (``split_rule.splits``);
            otherwise each ``matmul_2d`` call asks ``split_rule`` with its own shape.
        a_fmt, b_fmt: operand formats, used with M, N, K (a few shapes split differently per pair).
        split_rule: the kernel-choice table (default: measured cuBLASLt 13.1 on an H200).
        **params: any other :class:`NvidiaHopperFP8` field, to model another chip or library.
    """
    params.setdefault("promotion_interval", None if fast_accum else 128)
    if M is not None and N is not None and K is not None:
        params.setdefault("split_k", split_rule.splits(M, N, K, fast_accum, get_format(a_fmt).name,
                                                       get_format(b_fmt).name))
    return NvidiaHopperFP8(split_rule=split_rule, **params)


# ---------------------------------------------------------------------------------------------
# operand decomposition
# ---------------------------------------------------------------------------------------------
def _split_operand(x: np.ndarray, fmt: Format, name: str, sub_rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(value, 2^e(x)) of every element of a float32 array as float32; 2^e is 0 for zeros.

    Raises:
        ValueError: NaN/Inf, or a value that is not exact in ``fmt``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    pow2 = np.empty(x.shape, dtype=np.float32)
    flat = x.reshape(-1)
    nonfinite, bad = _split_f32(flat, flat.view(np.int32), pow2.reshape(-1), _POW2_F64, float(fmt.min_normal),
                                float(fmt.max), fmt.man_bits, fmt.emin, float(2.0 ** fmt.precision),
                                sub_rule == "actual")
    if nonfinite >= 0:
        raise ValueError(f"{name} holds NaN or Inf; the tensor-core model takes finite operands only")
    if bad >= 0:
        idx = tuple(int(i) for i in np.unravel_index(bad, x.shape))
        raise ValueError(f"{name}[{idx}] = {x[idx]!r} is not exactly representable in {fmt.name}")
    return x, pow2


_POW2_BIAS = 400  # _POW2_F64[e + _POW2_BIAS] = 2.0 ** e: exponents of float32 values and their lsb
_POW2_F64 = np.ldexp(1.0, np.arange(-_POW2_BIAS, _POW2_BIAS + 1))


@numba.njit(cache=True)
def _split_f32(x, xi, pow2, p2, min_normal, fmax, man_bits, emin, sig_limit, actual):
    """Fill ``pow2`` with 2^e(x) (0 for zeros); return (first non-finite index, first inexact index), -1: none.

    ``xi`` is ``x`` viewed as int32.  ``x = sig * 2^lsb`` must hold with an integer ``|sig| <
    2^p``: ``lsb = floor(log2|x|) - man_bits`` for normal values of the format, ``emin -
    man_bits`` below (the float64 product ``x * 2^-lsb`` is exact; cast to float32 it is what
    float32 ``ldexp`` returns).  ``p2[e + _POW2_BIAS]`` is 2.0^e (a table: no libm call).
    """
    first_bad = -1
    for t in range(x.shape[0]):
        v = x[t]
        if not np.isfinite(v):
            return t, first_bad
        if v == 0.0:
            pow2[t] = 0.0
            continue
        field = (xi[t] >> 23) & 0xFF
        e_true = field - 127 if field != 0 else math.frexp(v)[1] - 1  # float32 subnormal: frexp
        normal = abs(v) >= min_normal
        lsb = e_true - man_bits if normal else emin - man_bits
        sig = np.float32(np.float64(v) * p2[_POW2_BIAS - lsb])
        if first_bad < 0 and (sig != np.trunc(sig) or abs(sig) >= sig_limit or abs(v) > fmax):
            first_bad = t
        pow2[t] = np.float32(p2[_POW2_BIAS + (e_true if normal or actual else emin)])
    return -1, first_bad


# ---------------------------------------------------------------------------------------------
# fast kernel
# ---------------------------------------------------------------------------------------------
# Why float32 is exact here (checked by _check_float32_exact): an operand has p <= 12 significant
# bits, so a product has <= 24; scaling by the power of two 2^(kept - emax) is exact (no under- or
# overflow for the allowed formats); each cut term is an integer below 2^(kept + 2) and step + 1
# of them sum to below 2^24.  So trunc/rint on float32 are the integer truncation/rounding of the
# definition, the accumulator c (1 + kept bits) is a float32, and the loops vectorise 8 or 16
# lanes wide (mul, mul, round, add; max for the exponents).
_EXP_MASK = np.int32(0x7F800000)  # float32 bits: S | EEEEEEEE | 23 fraction bits
_ROW_BLOCK = 8    # rows of a per thread task: they share every slab of b read below
_COL_TILE = 512   # columns per pass: a step's slab of bv and bp (2 x 32 x 128 float32 = 32 KiB) stays in L1
# The passes over columns take 4 K elements each, so the running maximum / sum is loaded and
# stored once per 4 products, not once per product.  The exponent maximum is written to a
# second array (ping-pong), never back to the one it reads: ``e[j] = max(e[j], x)`` in place
# compiles to a masked store, which AVX2 has only as ``vmaskmovps`` (microcoded, slow on AMD).
# Neither changes a bit: the maximum of non-negative powers of two does not depend on the
# order, and the exact integer sums do not either.
#
# With the accumulator left out of the alignment (``include_acc_in_alignment=False``) ``c`` in
# units of the products' 2^(emax - kept) is not bounded by 2^(kept + 1): a large ``c`` against
# small products is a huge integer, and a float32 sum with it would round.  That path keeps
# the cut ``c`` apart (float64), sums the product terms alone in float32 (exact, as above) and
# adds the two once, in float64 (:func:`_wide_sum` says why the cut of that sum is exact).


@numba.njit(cache=True, inline="always")
def _fmax(x, y):
    """max(x, y) for non-NaN floats, as one select (``vmaxps``)."""
    return x if x > y else y


@numba.njit(cache=True, inline="always")
def _cut(x, rne):
    """x rounded to an integer: half to even, or toward zero."""
    return np.rint(x) if rne else np.trunc(x)


_WIDE_EXACT = 2.0 ** 52  # below this every integer sum d + t (|t| < 2^24) is exact in float64


@numba.njit(cache=True, inline="always")
def _wide_sum(d, t, shrink):
    """``d + t`` exactly in float64, or a float64 sum that cuts to the same 1 + kept bits.

    ``d``: the accumulator cut to the group's unit (an integer-valued float64 of any size with at
    most 1 + kept significant bits); ``t``: the exact sum of the cut product terms, an integer
    with ``|t| < 2^24`` (the float32 bound of the kernel); ``shrink = 2^-(kept + 4)``, ``kept <=
    21`` (``__post_init__``).

    Why the cut of the result (truncation or round-half-even to 1 + kept significant bits) is
    the cut of the exact ``d + t``:

    * ``|d| < 2^52``: ``d + t`` is an integer below ``2^52 + 2^24 < 2^53``: exact in float64.
    * ``|d| >= 2^52``: write ``E = floor(log2|d|)`` and ``L = 2^(E - 1 - kept)``, the finer of the
      two result spacings next to ``d`` (``|d|``'s own binade has spacing ``2L``, the one below
      ``L``).  ``d`` is on the (1 + kept)-bit grid and the nearest grid point or rounding midpoint
      is at least ``L / 2`` away, so every ``d + x`` with ``0 < |x| < L / 2`` and the sign of
      ``t`` truncates (and rounds to nearest) to the same value.  ``|t| < 2^24 < 2^29 <= L / 2``,
      so ``t`` may be replaced by ``x = sign(t) * |d| * 2^-(kept + 4)`` (``|x| < L / 4``), and
      ``d + x = m * (2^(kept + 4) +- 1) * 2^(q - kept - 4)`` for ``d = m * 2^q`` has fewer than
      ``2 kept + 6 <= 48`` significant bits: exact in float64.
    """
    mag = abs(d)
    x = math.copysign(mag * shrink, t) if (t != 0.0 and mag >= _WIDE_EXACT) else t
    return d + x


@numba.njit(cache=True, inline="always")
def _group(av, ap, i, bv, bp, j0, j1, kp, n_p, kv, n_v, c, p32, zero, ea, eb, scale, ssum, c_cut, kept, low_mask,
           half, term_rne, sum_rne, inc_acc):
    """One tensor-core step of output row i over the columns of ``c`` (a tile of them): c <- new c.

    ``kp[:n_p]`` / ``kv[:n_v]``: the step's K indices with a nonzero 2^e(a) / a value (a zero
    operand contributes neither to the maximum nor a term).  ``c`` and the scratch arrays are
    the tile's columns j0..j1 and so are the rows of ``bv``, ``bp`` taken here: every loop runs
    from column 0 over contiguous 1-D arrays, so Numba's negative-index wraparound folds away
    and the loops vectorise.
    """
    N = c.shape[0]
    ci, pi32, si = c.view(np.int32), p32.view(np.int32), ssum.view(np.int32)
    two_kept = np.float32(math.ldexp(1.0, kept))
    # 1. reference exponent as a power of two: 2^floor(log2|c|) is c's exponent field alone
    #    (0.0 for c = 0); then the max with the products' 2^(e(a)+e(b))
    for j in range(N):
        pi32[j] = ci[j] & _EXP_MASK
    src = p32 if inc_acc else zero
    flip = False
    q = 0
    while q < n_p:
        dst = eb if flip else ea
        if q + 8 <= n_p:
            ka, kb, kc, kd = kp[q], kp[q + 1], kp[q + 2], kp[q + 3]
            ke, kf, kg, kh = kp[q + 4], kp[q + 5], kp[q + 6], kp[q + 7]
            pa, pb, pc, pd = ap[i, ka], ap[i, kb], ap[i, kc], ap[i, kd]
            pe, pf, pg, ph = ap[i, ke], ap[i, kf], ap[i, kg], ap[i, kh]
            ra, rb, rc, rd = bp[ka][j0:j1], bp[kb][j0:j1], bp[kc][j0:j1], bp[kd][j0:j1]
            re, rf, rg, rh = bp[ke][j0:j1], bp[kf][j0:j1], bp[kg][j0:j1], bp[kh][j0:j1]
            for j in range(N):
                x = _fmax(_fmax(pa * ra[j], pb * rb[j]), _fmax(pc * rc[j], pd * rd[j]))
                y = _fmax(_fmax(pe * re[j], pf * rf[j]), _fmax(pg * rg[j], ph * rh[j]))
                dst[j] = _fmax(_fmax(x, y), src[j])
            q += 8
        elif q + 4 <= n_p:
            ka, kb, kc, kd = kp[q], kp[q + 1], kp[q + 2], kp[q + 3]
            pa, pb, pc, pd = ap[i, ka], ap[i, kb], ap[i, kc], ap[i, kd]
            ra, rb, rc, rd = bp[ka][j0:j1], bp[kb][j0:j1], bp[kc][j0:j1], bp[kd][j0:j1]
            for j in range(N):
                x = _fmax(pa * ra[j], pb * rb[j])
                y = _fmax(pc * rc[j], pd * rd[j])
                dst[j] = _fmax(_fmax(x, y), src[j])
            q += 4
        else:
            ka = kp[q]
            pa = ap[i, ka]
            ra = bp[ka][j0:j1]
            for j in range(N):
                dst[j] = _fmax(pa * ra[j], src[j])
            q += 1
        src = dst
        flip = not flip
    emx = src
    # 2. the accumulator as the first term, in units of 2^(emax - kept)
    for j in range(N):
        e = emx[j]
        if e == 0.0:  # no product (and c left out of the max): align to c, or to anything
            e = p32[j] if p32[j] != 0.0 else np.float32(1.0)
        scale[j] = two_kept / e
    if inc_acc:
        # |c| < 2^(emax + 1): c in units is below 2^(kept + 1) and the float32 sum stays exact
        for j in range(N):
            ssum[j] = _cut(c[j] * scale[j], term_rne)
    else:
        # c may be far above the products: kept apart, in float64 (see _wide_sum)
        for j in range(N):
            c_cut[j] = _cut(np.float64(c[j]) * np.float64(scale[j]), term_rne)
            ssum[j] = 0.0
    # 3. the products as terms, cut and added one at a time in K order
    q = 0
    while q < n_v:
        if q + 8 <= n_v:
            ka, kb, kc, kd = kv[q], kv[q + 1], kv[q + 2], kv[q + 3]
            ke, kf, kg, kh = kv[q + 4], kv[q + 5], kv[q + 6], kv[q + 7]
            va, vb, vc, vd = av[i, ka], av[i, kb], av[i, kc], av[i, kd]
            ve, vf, vg, vh = av[i, ke], av[i, kf], av[i, kg], av[i, kh]
            ra, rb, rc, rd = bv[ka][j0:j1], bv[kb][j0:j1], bv[kc][j0:j1], bv[kd][j0:j1]
            re, rf, rg, rh = bv[ke][j0:j1], bv[kf][j0:j1], bv[kg][j0:j1], bv[kh][j0:j1]
            for j in range(N):
                s = scale[j]
                t = (((ssum[j] + _cut(va * ra[j] * s, term_rne)) + _cut(vb * rb[j] * s, term_rne))
                     + _cut(vc * rc[j] * s, term_rne)) + _cut(vd * rd[j] * s, term_rne)
                ssum[j] = (((t + _cut(ve * re[j] * s, term_rne)) + _cut(vf * rf[j] * s, term_rne))
                           + _cut(vg * rg[j] * s, term_rne)) + _cut(vh * rh[j] * s, term_rne)
            q += 8
        elif q + 4 <= n_v:
            ka, kb, kc, kd = kv[q], kv[q + 1], kv[q + 2], kv[q + 3]
            va, vb, vc, vd = av[i, ka], av[i, kb], av[i, kc], av[i, kd]
            ra, rb, rc, rd = bv[ka][j0:j1], bv[kb][j0:j1], bv[kc][j0:j1], bv[kd][j0:j1]
            for j in range(N):
                s = scale[j]
                ssum[j] = (((ssum[j] + _cut(va * ra[j] * s, term_rne)) + _cut(vb * rb[j] * s, term_rne))
                           + _cut(vc * rc[j] * s, term_rne)) + _cut(vd * rd[j] * s, term_rne)
            q += 4
        else:
            ka = kv[q]
            va = av[i, ka]
            ra = bv[ka][j0:j1]
            for j in range(N):
                ssum[j] += _cut(va * ra[j] * scale[j], term_rne)
            q += 1
    # 4. normalise: keep the top 1 + kept bits of the exact integer sum (sign-magnitude), by
    #    clearing or rounding away the low 23 - kept fraction bits of its float32 pattern
    #        S EEEEEEEE 1 ffff...f (kept) | xxxx...x (23 - kept)
    if not inc_acc:
        # the same cut on the float64 pattern of the wide sum (see _wide_sum):
        #     S EEEEEEEEEEE 1 ffff...f (kept) | xxxx...x (52 - kept)
        wide_bits = c_cut.view(np.int64)
        shrink = math.ldexp(1.0, -(kept + 4))
        wide_low = np.int64((1 << (52 - kept)) - 1)
        wide_half = np.int64(1 << (51 - kept))
        for j in range(N):
            c_cut[j] = _wide_sum(c_cut[j], np.float64(ssum[j]), shrink)
        for j in range(N):
            bits = wide_bits[j]
            low = bits & wide_low
            bits -= low
            if sum_rne and (low > wide_half or (low == wide_half and (bits & (wide_low + 1)) != 0)):
                bits += wide_low + 1  # a carry into the exponent field is still the right value
            wide_bits[j] = bits
        for j in range(N):
            c[j] = np.float32(c_cut[j] / np.float64(scale[j]))
        return
    if sum_rne:
        step_bit = low_mask + 1
        for j in range(N):
            bits = si[j]
            low = bits & low_mask
            bits -= low
            if low > half or (low == half and (bits & step_bit) != 0):
                bits += step_bit  # a carry into the exponent field is still the right value
            si[j] = bits
    else:
        for j in range(N):
            si[j] = si[j] & ~low_mask
    for j in range(N):
        c[j] = ssum[j] / scale[j]


@numba.njit(cache=True, parallel=True)
def _hopper_gemm(av, ap, bv, bp, bounds, step, kept, prom, term_rne, sum_rne, inc_acc, out):
    """Tensor-core GEMM model: blocks of rows in parallel, each step vectorised over columns j.

    Args:
        av, ap: (M, K) float32 values of a and 2^e(a) (0 for zero).
        bv, bp: (K, N) the same for b.
        bounds: split range starts, then K.
        step, kept, prom: group size, kept fraction bits, promotion interval (0 = none).
        term_rne, sum_rne: round half to even instead of truncating (terms / normalised sum).
        inc_acc: the accumulator's exponent takes part in the group maximum.
        out: (M, N) float32 result.
    """
    M = av.shape[0]
    N = bv.shape[1]
    n_split = bounds.shape[0] - 1
    low_mask = np.int32((1 << (23 - kept)) - 1)
    half = np.int32(1 << (22 - kept))
    n_blocks = (M + _ROW_BLOCK - 1) // _ROW_BLOCK
    for blk in prange(n_blocks):
        i0 = blk * _ROW_BLOCK
        rows = min(_ROW_BLOCK, M - i0)
        c = np.zeros((rows, N), np.float32)  # tensor-core accumulators (exact values)
        p32 = np.empty(N, np.float32)        # scratch: 2^floor(log2|c|)
        zero = np.zeros(N, np.float32)       # the running maximum's start when c is left out
        ea = np.empty(N, np.float32)         # running 2^emax of the group (two, alternately written)
        eb = np.empty(N, np.float32)
        scale = np.empty(N, np.float32)      # 2^(kept - emax)
        ssum = np.empty(N, np.float32)       # exact sum of the cut terms, in units
        c_cut = np.empty(N, np.float64)      # c cut to the unit, when kept out of ssum (inc_acc False)
        acc = np.zeros((rows, N), np.float32)  # FP32 accumulators of one split
        res = np.zeros((rows, N), np.float32)  # sums of the split partials
        kp = np.empty((rows, step), np.int64)  # per row of the block: K indices of nonzero 2^e(a)
        kv = np.empty((rows, step), np.int64)  # and of nonzero a
        n_p = np.empty(rows, np.int64)
        n_v = np.empty(rows, np.int64)
        for s in range(n_split):
            lo, hi = bounds[s], bounds[s + 1]
            c[:] = 0.0
            acc[:] = 0.0
            for k0 in range(lo, hi, step):
                k1 = min(k0 + step, hi)
                for r in range(rows):
                    i = i0 + r
                    m_p = 0
                    m_v = 0
                    for k in range(k0, k1):
                        if ap[i, k] != 0.0:
                            kp[r, m_p] = k
                            m_p += 1
                        if av[i, k] != 0.0:
                            kv[r, m_v] = k
                            m_v += 1
                    n_p[r] = m_p
                    n_v[r] = m_v
                for j0 in range(0, N, _COL_TILE):
                    j1 = min(j0 + _COL_TILE, N)
                    for r in range(rows):
                        _group(av, ap, i0 + r, bv, bp, j0, j1, kp[r], n_p[r], kv[r], n_v[r],
                               c[r, j0:j1], p32[j0:j1], zero[j0:j1], ea[j0:j1], eb[j0:j1], scale[j0:j1],
                               ssum[j0:j1], c_cut[j0:j1], kept, low_mask, half, term_rne, sum_rne, inc_acc)
                # promotion to FP32 (one RNE add); the tensor core restarts from zero
                if prom > 0 and ((k1 - lo) % prom == 0 or k1 == hi):
                    for r in range(rows):
                        for j in range(N):
                            acc[r, j] = acc[r, j] + c[r, j]
                            c[r, j] = 0.0
            for r in range(rows):
                for j in range(N):
                    part = acc[r, j] if prom > 0 else c[r, j]
                    # split-K reduction: FP32 partials added in split order
                    res[r, j] = part if s == 0 else res[r, j] + part
        out[i0:i0 + rows] = res


# ---------------------------------------------------------------------------------------------
# slow readable twin: exact rationals, one output element at a time
# ---------------------------------------------------------------------------------------------
def _align_exp(x: Fraction, fmt: Format | None = None, sub_rule: str = "actual") -> int | None:
    """floor(log2|x|), or fmt's emin for a subnormal of fmt under the "min_normal" rule; None for 0."""
    if x == 0:
        return None
    mag = abs(x)
    e = math.floor(math.log2(mag))
    while Fraction(2) ** e > mag:   # guard float log2 rounding
        e -= 1
    while Fraction(2) ** (e + 1) <= mag:
        e += 1
    if fmt is not None and sub_rule == "min_normal" and mag < Fraction(fmt.min_normal):
        return fmt.emin
    return e


def _cut_fraction(x: Fraction, unit: Fraction, rounding: str) -> Fraction:
    """x cut to a multiple of unit: toward zero, or to nearest with ties to even."""
    q = abs(x) / unit
    n = q.numerator // q.denominator
    if rounding == "nearest_even":
        rem = q - n
        if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1):
            n += 1
    return (n if x >= 0 else -n) * unit


def hopper_reference_dot(a_row, b_col, *, a_fmt: Format, b_fmt: Format,
                         model: NvidiaHopperFP8 | None = None, split_k: int = 1) -> np.float32:
    """One output element of :class:`NvidiaHopperFP8`, written from the definitions with Fractions.

    The slow twin of the fast kernel (tests hold them bit-equal): exact rational products,
    ``floor(log2)`` exponents, cuts by floor division, one numpy float32 add per promotion and
    per split.

    Args:
        a_row: K values of a row of A (exact in ``a_fmt``).
        b_col: K values of a column of B (exact in ``b_fmt``).
        a_fmt, b_fmt: the operand formats.
        model: the parameters (default: the measured non-fast model); its ``split_k`` is ignored.
        split_k: number of K splits (explicit here; the fast path asks the kernel rule).

    Returns:
        The float32 output element.
    """
    model = model or NvidiaHopperFP8()
    a_fmt, b_fmt = get_format(a_fmt), get_format(b_fmt)
    K = len(a_row)
    kept = model.kept_frac_bits
    result = None
    for lo, hi in split_ranges(K, split_k, model.split_granule):
        acc32 = np.float32(0)
        c = Fraction(0)
        for k0 in range(lo, hi, model.step):
            k1 = min(k0 + model.step, hi)
            prods, exps = [], []
            for k in range(k0, k1):
                x, y = Fraction(float(a_row[k])), Fraction(float(b_col[k]))
                ex = _align_exp(x, a_fmt, model.subnormal_exponent)
                ey = _align_exp(y, b_fmt, model.subnormal_exponent)
                prods.append(x * y)
                if ex is not None and ey is not None:
                    exps.append(ex + ey)
            ec = _align_exp(c)
            if model.include_acc_in_alignment and ec is not None:
                exps.append(ec)
            if not exps:
                emax = ec if ec is not None else 0
            else:
                emax = max(exps)
            unit = Fraction(2) ** (emax - kept)
            total = _cut_fraction(c, unit, model.term_rounding)
            total += sum(_cut_fraction(p, unit, model.term_rounding) for p in prods)
            if total == 0:
                c = Fraction(0)
            else:
                e_sum = _align_exp(total)
                c = _cut_fraction(total, Fraction(2) ** (e_sum - kept), model.sum_rounding)
            if model.promotion_interval and ((k1 - lo) % model.promotion_interval == 0 or k1 == hi):
                acc32 = np.float32(acc32 + np.float32(c))
                c = Fraction(0)
        partial = acc32 if model.promotion_interval else np.float32(c)
        result = partial if result is None else np.float32(result + partial)
    return np.float32(result)


# ---------------------------------------------------------------------------------------------
# comparing a recording with the model
# ---------------------------------------------------------------------------------------------
def _value_order(x: np.ndarray) -> np.ndarray:
    """float32 values as int64 in the order of their values, one apart per float32 step.

    The bit pattern read as a sign-magnitude integer: non-negative patterns are themselves,
    negative ones ``-(pattern & 0x7FFFFFFF)``, so -0 and +0 are both 0 and ``-x`` and ``x`` are
    twice ``x``'s pattern apart (the raw int32 difference would be about 2^31 across signs).
    """
    bits = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def compare_to_recording(a_codes: np.ndarray, bt_codes: np.ndarray, out: np.ndarray,
                         a_fmt: Format | str = e4m3fn, b_fmt: Format | str = e4m3fn,
                         fast_accum: bool = False, model: NvidiaHopperFP8 | None = None) -> dict:
    """Match report of a recorded GPU GEMM ``out = A @ Bt.T`` against the model.

    Args:
        a_codes: uint8 (M, K) codes of A in ``a_fmt``.
        bt_codes: uint8 (N, K) codes of B transposed, in ``b_fmt``.
        out: float32 (M, N) recorded output (``torch._scaled_mm`` with unit scales).
        a_fmt, b_fmt: operand formats (Format or name).
        fast_accum: the recording's ``use_fast_accum``.
        model: a model to compare with; default ``nvidia_hopper_fp8(fast_accum, M, N, K)``.

    Returns:
        dict with ``match`` (fraction of bit-identical outputs), ``n``, ``mismatches``,
        ``max_ulp`` (largest distance in float32 units of the last place: how many float32
        steps lie between the two values, across zero too; +0 and -0 are 0 apart, though they
        count as a mismatch), ``split_k`` and ``measured_shape`` (whether the kernel rule's
        split count for this shape was measured).
    """
    a_fmt, b_fmt = get_format(a_fmt), get_format(b_fmt)
    a = decode(np.asarray(a_codes, dtype=a_fmt.code_dtype), a_fmt, dtype=np.float32)
    bt = decode(np.asarray(bt_codes, dtype=b_fmt.code_dtype), b_fmt, dtype=np.float32)
    out = np.asarray(out, dtype=np.float32)
    M, K = a.shape
    N = bt.shape[0]
    if bt.shape[1] != K or out.shape != (M, N):
        raise ValueError(f"shapes do not fit: a {a.shape}, bt {bt.shape}, out {out.shape}")
    model = model or nvidia_hopper_fp8(fast_accum)
    pred = model.matmul_2d(a, np.ascontiguousarray(bt.T), a_fmt=a_fmt, b_fmt=b_fmt)
    same = pred.view(np.int32) == out.view(np.int32)
    return {"match": float(same.mean()), "n": int(same.size), "mismatches": int((~same).sum()),
            "max_ulp": int(np.abs(_value_order(pred) - _value_order(out)).max()) if same.size else 0,
            "split_k": model.splits_for_formats(M, N, K, a_fmt, b_fmt),
            "measured_shape": model.split_rule.is_measured(M, N, K)}
