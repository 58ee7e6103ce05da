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

Integer representation used by both implementations (one operand element)::

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
from ..formats import e4m3fn, e5m2, get_format
from . import _h200_splits
from .base import Accumulator

__all__ = ["NvidiaHopperFP8", "CublasLtSplitRule", "CUBLASLT_13_1_H200", "nvidia_hopper_fp8",
           "split_ranges", "compare_to_recording", "hopper_reference_dot"]

_NEG = -(1 << 20)  # alignment exponent of a zero (never wins a max, sums stay far below)
_ROUNDINGS = ("truncate", "nearest_even")
_SUBNORMAL_RULES = ("min_normal", "actual")


# ---------------------------------------------------------------------------------------------
# kernel choice
# ---------------------------------------------------------------------------------------------
def _parse_table() -> tuple[tuple[int, int, int, int], ...]:
    """(M, N, K, numSplitsK) rows of the generated table ``_h200_splits``."""
    rows = []
    for line in _h200_splits.TABLE.strip().splitlines():
        mn, vals = line.split(":")
        m, n = (int(v) for v in mn.split())
        for k, v in zip(_h200_splits.KS, vals.split()):
            if v != "-":
                rows.append((m, n, k, int(v)))
    return tuple(rows)


@dataclass(frozen=True)
class CublasLtSplitRule:
    """Which ``numSplitsK`` cuBLASLt's heuristic picks for an FP8 GEMM, as data.

    ``splits`` looks the shape up in ``table`` (exact, measured).  For a shape missing from the
    table it falls back to an approximation: ``floor(ceil(K/128) / k_tiles_per_split)`` (which
    reproduces every measured value for outputs up to 64 x 64), clamped between the measured
    values of the nearest measured K below and above for the same (M, N), where (M, N) is first
    rounded up to the nearest measured output shape.  Shapes outside the table are *not* pinned.

    Args:
        table: ``(M, N, K, splits)`` rows measured on the target.
        format_overrides: ``(M, N, K, a_fmt, b_fmt, splits)`` rows where an operand-format pair
            other than the table's got a different count.
        k_tiles_per_split: fallback divisor (K tiles of 128 per split).
        version: the library/driver/GPU the table was measured on.
    """

    table: tuple[tuple[int, int, int, int], ...] = field(default=(), repr=False)
    format_overrides: tuple[tuple[int, int, int, str, str, int], ...] = field(default=(), repr=False)
    k_tiles_per_split: float = 20.05
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

    def is_measured(self, M: int, N: int, K: int) -> bool:
        """Whether the table holds this shape."""
        return (M, N, K) in self._lookup

    def splits(self, M: int, N: int, K: int, fast_accum: bool = False, a_fmt: str = "e4m3fn",
               b_fmt: str = "e4m3fn") -> int:
        """numSplitsK for an (M, K) x (K, N) product (the same in both modes wherever measured)."""
        for m, n, k, fa, fb, s in self.format_overrides:
            if (m, n, k, fa, fb) == (M, N, K, str(a_fmt), str(b_fmt)):
                return s
        if (M, N, K) in self._lookup:
            return self._lookup[(M, N, K)]
        guess = max(1, int(-(-K // 128) // self.k_tiles_per_split))
        if not self._by_mn:
            return guess
        ms = sorted({m for m, _ in self._by_mn})
        ns = sorted({n for _, n in self._by_mn})
        mn = (next((m for m in ms if m >= M), ms[-1]), next((n for n in ns if n >= N), ns[-1]))
        row = self._by_mn.get(mn)
        if not row:
            return guess
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
    """
    if split_k < 1 or granule < 1:
        raise ValueError(f"split_k={split_k} and granule={granule} must be >= 1")
    tiles = -(-K // granule)
    per = -(-tiles // split_k) * granule
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
        if not isinstance(self.kept_frac_bits, int) or not 1 <= self.kept_frac_bits <= 40:
            raise ValueError(f"kept_frac_bits={self.kept_frac_bits!r} must be an int in 1..40")
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
        return self.promotion_interval is None

    def splits_for(self, M: int, N: int, K: int) -> int:
        """The split count used for an (M, K) x (K, N) product."""
        return self.splits_for_formats(M, N, K, e4m3fn, e4m3fn)

    def splits_for_formats(self, M: int, N: int, K: int, a_fmt: Format, b_fmt: Format) -> int:
        """The split count used for an (M, K) x (K, N) product of these operand formats."""
        if self.split_k is not None:
            return self.split_k
        return self.split_rule.splits(M, N, K, self.fast_accum, a_fmt.name, b_fmt.name)

    def check_operands(self, a_fmt: Format | None, b_fmt: Format | None) -> None:
        for name, fmt in (("a_fmt", a_fmt), ("b_fmt", b_fmt)):
            if fmt is None:
                raise ValueError(f"{self.name} models FP8 tensor cores: {name} must be a Format "
                                 "(e.g. fp8emu.formats.e4m3fn or e5m2), got None")
            if get_format(fmt).precision > 11:
                raise ValueError(f"{name}={get_format(fmt).name} has precision {get_format(fmt).precision}; "
                                 f"{self.name} takes formats of at most 11 significand bits")

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
        sa, la, ea = _split_operand(a, a_fmt, "a", self.subnormal_exponent)
        sb, lb, eb = _split_operand(np.ascontiguousarray(b), b_fmt, "b", self.subnormal_exponent)
        bounds = np.array([lo for lo, _ in split_ranges(K, self.splits_for_formats(M, N, K, a_fmt, b_fmt), self.split_granule)] + [K],
                          dtype=np.int64)
        out = np.empty((M, N), dtype=np.float32)
        prom = 0 if self.promotion_interval is None else self.promotion_interval
        _hopper_gemm(sa, la, ea, sb, lb, eb, bounds, self.step, self.kept_frac_bits, prom,
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
def _split_operand(x: np.ndarray, fmt: Format, name: str, sub_rule: str):
    """(sig int64, lsb int32, e int32) of every element; see the module docstring."""
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or Inf; the tensor-core model takes finite operands only")
    mant, expo = np.frexp(x.astype(np.float64))  # x = mant * 2^expo, |mant| in [0.5, 1)
    e_true = expo.astype(np.int32) - 1
    normal = np.abs(x) >= fmt.min_normal
    lsb = np.where(normal, e_true - fmt.man_bits, fmt.emin - fmt.man_bits).astype(np.int32)
    sig_f = np.ldexp(x.astype(np.float64), -lsb)
    sig = sig_f.astype(np.int64)
    bad = (sig != sig_f) | (np.abs(sig) >= (1 << fmt.precision)) | (np.abs(x) > fmt.max)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}[{idx}] = {x[idx]!r} is not exactly representable in {fmt.name}")
    if sub_rule == "min_normal":
        e = np.where(normal, e_true, fmt.emin)
    else:
        e = e_true
    e = np.where(x == 0, _NEG, e).astype(np.int32)
    lsb = np.where(x == 0, 0, lsb).astype(np.int32)
    return np.ascontiguousarray(sig), np.ascontiguousarray(lsb), np.ascontiguousarray(e)


# ---------------------------------------------------------------------------------------------
# fast kernel
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True, inline="always")
def _cut(mag, r, nearest):
    """``mag >> r`` for ``r >= 1`` (truncate), or rounded half to even.

    ``mag = q << r | rem``: rounding up when ``rem > half``, or ``rem == half`` and ``q`` is odd.
    """
    q = mag >> r
    if nearest:
        rem = mag - (q << r)
        half = np.int64(1) << (r - 1)
        if rem > half or (rem == half and (q & 1) == 1):
            q += 1
    return q


@numba.njit(cache=True, inline="always")
def _bitlen(x):
    """Number of bits of a positive int64 below 2^53 (exact through float64's exponent)."""
    return math.frexp(float(x))[1]


@numba.njit(cache=True, parallel=True)
def _hopper_gemm(sa, la, ea, sb, lb, eb, bounds, step, kept, prom, term_rne, sum_rne, inc_acc, out):
    """Tensor-core GEMM model; one output row per prange iteration, vectorised over columns j.

    Args:
        sa, la, ea: (M, K) significand (int64), lsb exponent and alignment exponent (int32) of a.
        sb, lb, eb: (K, N) the same for b.
        bounds: split range starts, then K.
        step, kept, prom: group size, kept fraction bits, promotion interval (0 = none).
        term_rne, sum_rne: round half to even instead of truncating (terms / normalised sum).
        inc_acc: the accumulator's exponent takes part in the group maximum.
        out: (M, N) float32 result.
    """
    M, K = sa.shape
    N = sb.shape[1]
    n_split = bounds.shape[0] - 1
    for i in prange(M):
        c_sig = np.zeros(N, np.int64)     # tensor-core accumulator c = c_sig * 2^c_lsb
        c_lsb = np.zeros(N, np.int32)
        c_exp = np.full(N, _NEG, np.int32)  # floor(log2|c|), _NEG for c = 0
        emax = np.empty(N, np.int32)
        acc = np.zeros(N, np.float32)     # FP32 accumulator of one split
        res = np.zeros(N, np.float32)     # sum of the split partials
        ssum = np.empty(N, np.int64)
        for s in range(n_split):
            lo, hi = bounds[s], bounds[s + 1]
            c_sig[:] = 0
            c_exp[:] = _NEG
            acc[:] = 0
            for k0 in range(lo, hi, step):
                k1 = min(k0 + step, hi)
                # 1. reference exponent of the group
                for j in range(N):
                    emax[j] = c_exp[j] if inc_acc else _NEG
                for k in range(k0, k1):
                    e_a = ea[i, k]
                    if e_a == _NEG:
                        continue
                    for j in range(N):
                        emax[j] = max(emax[j], e_a + eb[k, j])
                if not inc_acc:
                    for j in range(N):
                        if emax[j] == _NEG:
                            emax[j] = c_exp[j]
                # 2. the accumulator as a term: c_sig * 2^(c_lsb - (emax - kept))
                for j in range(N):
                    if c_sig[j] == 0:
                        ssum[j] = 0
                        continue
                    d = c_lsb[j] - emax[j] + kept
                    mag = abs(c_sig[j])
                    if d >= 0:
                        mag = mag << min(d, 62)
                    else:
                        mag = _cut(mag, min(-d, 63), term_rne)
                    ssum[j] = -mag if c_sig[j] < 0 else mag
                # 3. the products as terms, summed exactly
                for k in range(k0, k1):
                    s_a = sa[i, k]
                    if s_a == 0:
                        continue
                    l_a = la[i, k] + kept
                    if term_rne:
                        for j in range(N):
                            p = s_a * sb[k, j]
                            d = l_a + lb[k, j] - emax[j]
                            mag = abs(p)
                            if d >= 0:
                                mag = mag << min(d, 62)
                            else:
                                mag = _cut(mag, min(-d, 63), True)
                            ssum[j] += -mag if p < 0 else mag
                    else:
                        # branch-free truncation toward zero: (|p| << max(d,0)) >> max(-d,0)
                        for j in range(N):
                            p = s_a * sb[k, j]
                            d = l_a + lb[k, j] - emax[j]
                            mag = (abs(p) << min(max(d, 0), 62)) >> min(max(-d, 0), 63)
                            ssum[j] += -mag if p < 0 else mag
                # 4. normalise the sum, keep 1 + kept bits
                for j in range(N):
                    v = ssum[j]
                    if v == 0:
                        c_sig[j] = 0
                        c_exp[j] = _NEG
                        continue
                    mag = abs(v)
                    unit = emax[j] - kept
                    nb = _bitlen(mag)
                    if nb > kept + 1:
                        r = nb - kept - 1
                        mag = _cut(mag, r, sum_rne)
                        unit += r
                        if mag >> (kept + 1):  # rounding carried into a new bit
                            mag >>= 1
                            unit += 1
                        nb = kept + 1
                    c_sig[j] = -mag if v < 0 else mag
                    c_lsb[j] = unit
                    c_exp[j] = unit + _bitlen(mag) - 1
                # 5. promotion to FP32 (one RNE add), then the tensor core starts from zero
                if prom > 0 and ((k1 - lo) % prom == 0 or k1 == hi):
                    for j in range(N):
                        if c_sig[j] != 0:
                            acc[j] = acc[j] + np.float32(math.ldexp(float(c_sig[j]), c_lsb[j]))
                        c_sig[j] = 0
                        c_exp[j] = _NEG
            if prom == 0:
                for j in range(N):
                    acc[j] = np.float32(math.ldexp(float(c_sig[j]), c_lsb[j]))
            # 6. split-K reduction: FP32 partials added in split order
            for j in range(N):
                res[j] = acc[j] if s == 0 else res[j] + acc[j]
        for j in range(N):
            out[i, j] = res[j]


# ---------------------------------------------------------------------------------------------
# slow readable twin: exact rationals, one output element at a time
# ---------------------------------------------------------------------------------------------
def _align_exp(x: Fraction, fmt: Format, sub_rule: str) -> int | None:
    if x == 0:
        return None
    mag = abs(x)
    e = math.floor(math.log2(mag))
    while Fraction(2) ** e > mag:   # guard float log2 rounding
        e -= 1
    while Fraction(2) ** (e + 1) <= mag:
        e += 1
    if mag < Fraction(fmt.min_normal) and sub_rule == "min_normal":
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

    The slow twin of the fast kernel (tests hold them bit-equal); ``split_k`` is explicit here.
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
                ex, ey = _align_exp(x, a_fmt, model.subnormal_exponent), _align_exp(y, b_fmt, model.subnormal_exponent)
                prods.append(x * y)
                if ex is not None and ey is not None:
                    exps.append(ex + ey)
            ec = _align_exp(c, e4m3fn, "actual")  # c is any value; format unused by "actual"
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
                e_sum = _align_exp(total, e4m3fn, "actual")
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
def _decode_codes(codes: np.ndarray, fmt: Format) -> np.ndarray:
    vals = fmt.values()
    out = np.asarray(vals, dtype=np.float64)[np.asarray(codes, dtype=np.int64)]
    return out.astype(np.float32)


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
        ``max_ulp`` (largest difference in float32 units of the last place), ``split_k`` and
        ``measured_shape`` (whether the kernel rule's split count for this shape was measured).
    """
    a_fmt, b_fmt = get_format(a_fmt), get_format(b_fmt)
    a = _decode_codes(a_codes, a_fmt)
    bt = _decode_codes(bt_codes, b_fmt)
    out = np.asarray(out, dtype=np.float32)
    M, K = a.shape
    N = bt.shape[0]
    if bt.shape[1] != K or out.shape != (M, N):
        raise ValueError(f"shapes do not fit: a {a.shape}, bt {bt.shape}, out {out.shape}")
    model = model or nvidia_hopper_fp8(fast_accum)
    pred = model.matmul_2d(a, np.ascontiguousarray(bt.T), a_fmt=a_fmt, b_fmt=b_fmt)
    pi, oi = pred.view(np.int32).astype(np.int64), out.view(np.int32).astype(np.int64)
    same = pi == oi
    return {"match": float(same.mean()), "n": int(same.size), "mismatches": int((~same).sum()),
            "max_ulp": int(np.abs(pi - oi).max()) if same.size else 0,
            "split_k": model.splits_for_formats(M, N, K, a_fmt, b_fmt),
            "measured_shape": model.split_rule.is_measured(M, N, K)}
