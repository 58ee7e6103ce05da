"""Numba kernels: integer bit manipulation (no relaxed-math flags).  One exception: the float32
nearest-even value kernel rounds by one IEEE float32 addition (:func:`_value_f32_rne`), tested
equal to the integer kernel on all 2^32 inputs.

Every kernel takes plain ints and arrays (no ``Format`` objects); the public wrappers in
``quantize.py`` validate, allocate and unpack the format.  The slow twin of
:func:`_round_bits` is :func:`fp8emu.spec.round_scalar`; tests hold them bit-equal.

Input decomposition (any IEEE binary input: float16, bfloat16, float32, float64)::

    bit  in_w-1 | in_w-2 ... in_m | in_m-1 ... 0
         s      | E (exponent)    | T (fraction)

    E == 0 : value = T            * 2^(1 - in_bias - in_m)   (sig = T normalised to bit in_m, e lowered)
    E  > 0 : value = (2^in_m + T) * 2^(E - in_bias - in_m)   (sig = 2^in_m | T,    e = E - in_bias)

``sig`` is then shifted left by ``pad`` so that it has ``P = in_m + pad >= 16`` fraction bits
and the dropped part below is never empty.  The target quantum is ``2^(qe)`` with
``qe = max(e, emin) - m`` (``emin`` instead of ``emin - m`` below ``min_normal`` without
subnormals), so the number of dropped bits is ``sh = P - (e - qe)``::

    sig = | k (kept: the rounded magnitude in quanta) | L | R | sticky ... |   (sh dropped bits)
                                                      ^ LSB of k = L, round bit R

    nearest_even: k += R and (sticky or L)        nearest_away: k += R
    toward_zero : nothing                          up/down: k += (dropped != 0) for +/-
    stochastic  : k += (U < dropped / 2^sh), U uniform from the counter-based words
    odd         : k += (dropped != 0) and the truncated code is even (its lowest bit is 0)

    nearest_even, ties by code (mode 7, internal): as nearest_even with ``L`` = the lowest bit
    of the truncated *code* instead of ``k``'s.  The wrapper picks it for ``man_bits == 0``
    with ``TieRule.EVEN_EXPONENT`` (``k`` is 1 for every normal value there; the code's bit is
    the exponent field's).  For ``man_bits >= 1`` the two bits are the same.  A mode of its
    own.  Modes 6 and 7 run in the generic kernel only: :func:`_round_fast` and
    :func:`_round_f32` handle modes 0-5 (one more case in their vectorised loops cost 10-60%
    of their speed in every mode, measured).

A carry out of ``k`` (all ones + 1) moves into the next binade by itself, because the code
is ``((max(e, emin) - emin + has_zero) << m) + k - 2^m`` (normal) or ``k`` (subnormal): both
are monotone in the value.  Overflow is ``code > max_code`` *after* rounding.
"""

from __future__ import annotations

import types
from functools import lru_cache

import numpy as np
import numba
from numba import njit, prange
from numba.core import compiler as _nb_compiler
from numba.core.caching import FunctionCache
from numba.core.dispatcher import _FunctionCompiler
from numba.core.registry import CPUDispatcher

from ._random import GAMMA, mix64, mix64_hi
from ._bitcast import f32_from_bits, bits_from_f32
from ._half import f16_bits_of_f32, f32_bits_of_f16
from ._prefetch import prefetch_lines
from ._vector_width import prefer_512_bit_vectors, prefer_512_bit_vectors_converting, keep_gathers_scalar

__all__ = ["MODE_CODES", "MODE_NEAREST_EVEN_CODE", "PARAMS", "PARAMS_F32", "DECODE_PARAMS", "_round_bits",
           "_round_fast", "_round_f32", "_round_f32_k", "_decode", "_value_bits", "_value_f32", "_value_f32_sr",
           "_value_f32_consts", "_value_variant", "SERIAL_BELOW", "noalias_twin", "one_thread_below", "p32_array", "serial_twin", "sized",
           "thread_count_functions"]

#: RoundMode value -> the integer the kernels switch on.
MODE_CODES = {"nearest_even": 0, "nearest_away": 1, "toward_zero": 2, "up": 3, "down": 4, "stochastic": 5,
              "odd": 6}
#: The internal mode of nearest_even with ties by the code's lowest bit (``TieRule.EVEN_EXPONENT``).
MODE_NEAREST_EVEN_CODE = 7
#: The kernels' parameter tuple ``prm`` (all int64): input layout, target format, the codes of
#: the special outcomes (precomputed by the wrapper for the format, mode and saturation), mode.
#: A tuple, not an array: arrays passed to the per-element function cost a reference-count
#: update per element.
PARAMS = ("in_w", "in_m", "in_bias", "pad", "m", "emin", "subnormals", "has_zero", "fnuz", "signed",
          "sign_mask", "max_mag", "nan", "pos_inf", "neg_inf", "pos_zero", "neg_zero", "neg_unsigned",
          "pos_ovf", "neg_ovf", "mode", "sr_bits")


@njit(cache=True)
def _sr_chunk(sig, sh, j):
    """Bits ``64*j .. 64*j+63`` after the binary point of ``f = sig / 2^sh`` (0 <= sig < 2^63).

    ``floor(f * 2^(64(j+1))) mod 2^64 = sig * 2^t mod 2^64`` with ``t = 64(j+1) - sh``.
    """
    t = 64 * (j + 1) - sh
    u = np.uint64(sig)
    if t >= 64 or t <= -64:
        return np.uint64(0)
    if t >= 0:
        return u << np.uint64(t)
    return u >> np.uint64(-t)


@njit(cache=True)
def _sr_away(sig, sh, rem, i, key_base, key0, sr_bits):
    """Stochastic decision for element ``i``: True with probability ``rem / 2^sh`` (exact mode)
    or ``floor(rem * 2^r / 2^sh) / 2^r`` (``sr_bits = r``)."""
    if rem == 0:
        return False
    ctr = np.uint64(i + 1) * np.uint64(GAMMA)
    w = mix64(key0 + ctr)
    c = _sr_chunk(rem, sh, 0) if sh <= 64 else _sr_chunk(sig, sh, 0)
    if sr_bits > 0:
        # hardware style: r random bits added to the top r dropped bits; carry = round away
        drop = np.uint64(64 - sr_bits)
        return (w >> drop) > (~(c >> drop) & ((np.uint64(1) << np.uint64(sr_bits)) - np.uint64(1)))
    j = 0
    while w == c:
        # 0.w0 w1 ... equals f so far: look at the next 64 bits of both (rare: p = 2^-64)
        if 64 * (j + 1) >= sh:
            return False             # f has no bits left; U >= f
        j += 1
        w = mix64(mix64(key_base + np.uint64(j + 1) * np.uint64(GAMMA)) + ctr)   # key_j
        c = _sr_chunk(sig, sh, j)
    return w < c


@njit(cache=True, inline="always")
def _mag_of(k, e, emin, m, subnormals, has_zero):
    """Code magnitude of ``k`` quanta at input exponent ``e`` (see the module docstring).

    A carry of ``k`` out of the significand lands in the next binade by itself: the code
    is monotone in the value."""
    if e >= emin:
        return ((e - emin + has_zero) << m) + k - (np.int64(1) << m)
    if subnormals:
        return k
    return (k << m) if has_zero else np.int64(0)


@njit(cache=True, inline="always")
def _round_bits(b, i, prm, key_base, key0):
    """Code of one input bit pattern ``b`` (element index ``i`` and the keys: used only by SR)."""
    (in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz, signed, sign_mask, max_mag,
     c_nan, c_pinf, c_ninf, c_pzero, c_nzero, c_negu, c_povf, c_novf, mode, sr_bits) = prm
    ub = np.uint64(b)
    s = np.int64((ub >> np.uint64(in_w - 1)) & np.uint64(1))
    a = np.int64(ub & ((np.uint64(1) << np.uint64(in_w - 1)) - np.uint64(1)))
    E = a >> in_m
    T = a & ((np.int64(1) << in_m) - 1)
    if E == (np.int64(1) << (in_w - 1 - in_m)) - 1:          # Inf or NaN
        if T != 0:
            return c_nan
        return c_ninf if s else c_pinf
    if s == 1 and signed == 0 and a != 0:
        return c_negu
    if a == 0:
        return c_nzero if s else c_pzero
    if E == 0:                                   # subnormal input: normalise (the target's
        sig = T                                  # emin may be below the input's)
        e = 1 - in_bias
        while sig < (np.int64(1) << in_m):
            sig <<= 1
            e -= 1
    else:
        sig = T | (np.int64(1) << in_m)
        e = E - in_bias
    sig = sig << pad
    P = in_m + pad
    if e >= emin:
        sh = P - m
    elif subnormals:
        sh = P - m + (emin - e)
    else:
        sh = P + (emin - e)
    # |x| = sig * 2^(e - P); quantum = 2^(e - P + sh).  Beyond P + 2 dropped bits the value is
    # below half a quantum: only "dropped != 0" matters (exact SR uses the true sh).
    shc = min(sh, P + 2)
    k = sig >> shc
    rem = sig & ((np.int64(1) << shc) - 1)
    half = np.int64(1) << (shc - 1)
    mt = _mag_of(k, e, emin, m, subnormals, has_zero)       # truncated code (magnitude)
    if mode == 0:
        away = rem > half or (rem == half and (k & 1) == 1)
    elif mode == 7:
        away = rem > half or (rem == half and (mt & 1) == 1)
    elif mode == 1:
        away = rem >= half
    elif mode == 2:
        away = False
    elif mode == 3:
        away = rem != 0 and s == 0
    elif mode == 4:
        away = rem != 0 and s == 1
    elif mode == 6:
        away = rem != 0 and (mt & 1) == 0
    else:
        away = _sr_away(sig, sh, rem, i, key_base, key0, sr_bits)
    mag = _mag_of(k + 1, e, emin, m, subnormals, has_zero) if away else mt
    if mag > max_mag:
        return c_novf if s else c_povf
    if mag == 0 and fnuz:
        return np.int64(0)
    return mag | (sign_mask if s else 0)


@njit(cache=True, inline="always")
def _round_fast(b, i, prm, key0, stochastic):
    """Branch-free twin of :func:`_round_bits` for the common case (vectorises).

    Valid when the format has subnormals and ``emin >= 1 - in_bias`` (an input subnormal then
    lands in the target's subnormal range, so it needs no normalisation).  ``stochastic`` is a
    constant in each kernel, so the deterministic loops carry no random-number code and the
    stochastic ones no mode selects.  Returns ``(code, tie)``; ``tie`` flags an exact-SR element whose first random word
    equals the first 64 dropped bits while more dropped bits follow (probability 2^-64): the
    caller then recomputes with :func:`_round_bits`, which draws further words.
    """
    (in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz, signed, sign_mask, max_mag,
     c_nan, c_pinf, c_ninf, c_pzero, c_nzero, c_negu, c_povf, c_novf, mode, sr_bits) = prm
    # Same bit fields as _round_bits; every data-dependent branch below is a select.
    ub = np.uint64(b)
    s = np.int64(ub >> np.uint64(in_w - 1))
    a = np.int64(ub & ((np.uint64(1) << np.uint64(in_w - 1)) - np.uint64(1)))
    E = a >> in_m
    T = a & ((np.int64(1) << in_m) - 1)
    sig = (T | (np.int64(E != 0) << in_m)) << pad
    e = max(E, 1) - in_bias
    eq = max(e, emin)                       # exponent of the quantum's binade
    P = in_m + pad
    sh_true = P - m + (eq - e)              # dropped bits
    sh = min(sh_true, P + 2)                # beyond P + 2 only "dropped != 0" matters
    ones = (np.int64(1) << sh) - 1          # mask of the dropped bits
    tie = False
    if stochastic:
        # 64-bit window of the dropped fraction: sig's dropped bits left-aligned (sh <= 64),
        # or sig shifted right (tiny values, the fraction starts with zeros)
        w = mix64(key0 + np.uint64(i + 1) * np.uint64(GAMMA))
        ca = np.uint64(sig & ones) << np.uint64(max(64 - sh_true, 0))
        cb = np.uint64(sig) >> np.uint64(min(max(sh_true - 64, 0), 63))
        c0 = ca if sh_true <= 64 else cb
        if sr_bits > 0:
            drop = np.uint64(64 - sr_bits)
            away = (w >> drop) > (~(c0 >> drop) & ((np.uint64(1) << np.uint64(sr_bits)) - np.uint64(1)))
        else:
            away = w < c0
            tie = (w == c0) & (sh_true > 64)
        k = (sig >> sh) + np.int64(away)
    else:
        # add an increment below the LSB and truncate:  | k | L | R sticky... |
        #   nearest_even: R-1 ones + L  (carries iff R and (sticky or L))
        #   nearest_away: R             up: all ones if positive      down: all ones if negative
        if mode == 0:
            inc = (ones >> 1) + ((sig >> sh) & 1)
        elif mode == 1:
            inc = (ones >> 1) + 1
        elif mode == 2:
            inc = np.int64(0)
        elif mode == 3:
            inc = ones & (s - 1)
        else:
            inc = ones & (-s)
        k = (sig + inc) >> sh
    mag = ((eq - emin + 1) << m) + k - (np.int64(1) << m)
    code = mag | (sign_mask & -s)            # s is 0 or 1: no multiply
    code = 0 if (fnuz == 1) & (mag == 0) else code
    code = (c_novf if s else c_povf) if mag > max_mag else code
    code = c_negu if (s == 1) & (signed == 0) & (a != 0) else code
    special = (c_nan if T != 0 else (c_ninf if s else c_pinf))
    code = special if E == (np.int64(1) << (in_w - 1 - in_m)) - 1 else code
    return code, tie


#: Software prefetch (:mod:`fp8emu._prefetch`; issue 19).  Loops that compute much per element
#: ran far slower on arrays streamed from DRAM than on the same data in cache, although they
#: use a small part of the memory bandwidth: the hardware prefetchers did not keep a slowly
#: consumed stream ahead.  The codes kernels (``encode``), the float32 SR kernels and the
#: float64 deterministic kernels run each chunk in blocks of ``_PREFETCH_BLOCK`` elements, each
#: block first prefetching the input ``_PREFETCH_AHEAD`` elements ahead
#: (:func:`_prefetched_block`); the float64 SR kernels prefetch the next chunk at the start of
#: each (:func:`_sr_chunk_codes`: the blocks cost that loop its vector code).  Measured on the
#: Intel CI host, 1 thread, interleaved A/B (``benchmarks/quantize_ab.py``), time after/before:
#: float32 16 M ``encode`` 0.48-0.61 (1 M, in cache: 0.71-0.74), exact SR ``quantize`` 0.90-0.97,
#: ``encode`` SR 0.72-0.88; float64 8 M ``quantize`` 0.59-0.65, ``encode`` 0.26-0.30, SR
#: 0.67-0.82 (docs/results/benchmarks.md; on the GPU machine's Xeon smaller and mixed).  The
#: float32 value kernels of the deterministic modes keep the hardware's prefetching: they
#: stream as fast as ``np.copyto`` (a copy as large as the input) and prefetching slowed them
#: by 2-15 % (blocks of 128-1024, distances of 512-4096 and whole chunks measured).
_PREFETCH_BLOCK = 256
_PREFETCH_AHEAD = 4096


@njit(cache=True, inline="always")
def _prefetched_block(bits, b0, hi):
    """Prefetch the input lines ``_PREFETCH_AHEAD`` elements ahead of the block of
    ``_PREFETCH_BLOCK`` elements that starts at ``b0``; returns the block's end in a chunk
    ending at ``hi`` (unsigned, for the vectorised inner loop)."""
    prefetch_lines(bits, b0 + _PREFETCH_AHEAD, b0 + _PREFETCH_AHEAD + _PREFETCH_BLOCK)
    return np.uint64(min(b0 + _PREFETCH_BLOCK, hi))


@njit(cache=True, parallel=True)
def _encode_generic(bits, out, prm, key_base, key0):
    """``out[i] = code of bits[i]`` for 1-d C-contiguous arrays (any format)."""
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, out)
        out[i] = _round_bits(bits[i], i, prm, key_base, key0)


@njit(cache=True, parallel=True)
def _quantize_generic(bits, out, lut, prm, key_base, key0):
    """``out[i] = lut[code of bits[i]]``: encode and decode fused (no code temporary)."""
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, out)
        out[i] = lut[_round_bits(bits[i], i, prm, key_base, key0)]


@njit(cache=True, parallel=True)
def _encode_fast(bits, out, prm, key0):
    """:func:`_encode_generic` with :func:`_round_fast`, deterministic modes (over chunks,
    prefetching: see :data:`_PREFETCH_BLOCK`)."""
    n = bits.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        prefer_512_bit_vectors(bits, out)
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        for b0 in range(lo, hi, _PREFETCH_BLOCK):
            for i in range(np.uint64(b0), _prefetched_block(bits, b0, hi)):
                out[i] = _round_fast(bits[i], 0, prm, key0, False)[0]
    return 0


#: Elements per task of the stochastic kernels.  Each task loops over its chunk serially and
#: keeps codes and tie flags in small L1-resident buffers, so every inner loop is a plain
#: vectorisable loop (a prange body with a reduction and a table gather stays scalar).
_CHUNK = 4096


@njit(cache=True, inline="always")
def _sr_chunk_codes(bits, lo, hi, codes, flags, prm, key0):
    """Codes of ``bits[lo:hi]`` into ``codes[:hi-lo]``; returns how many exact-SR ties.  First
    prefetches the next chunk's input (``bits[hi:2 hi - lo]``; see :data:`_PREFETCH_BLOCK`)."""
    prefetch_lines(bits, hi, hi + (hi - lo))
    for i in range(lo, hi):
        code, tie = _round_fast(bits[i], i, prm, key0, True)
        codes[i - lo] = code
        flags[i - lo] = tie
    t = 0
    for j in range(hi - lo):
        t += flags[j]
    return t


@njit(cache=True, parallel=True)
def _encode_fast_sr(bits, out, prm, key0):
    """:func:`_encode_fast` for stochastic rounding; returns the number of exact-SR ties."""
    n = bits.shape[0]
    ties = 0
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        prefer_512_bit_vectors(bits, out)
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        codes = np.empty(_CHUNK, np.int32)       # int32: LLVM then picks 512-bit vectors
        flags = np.empty(_CHUNK, np.uint8)
        ties += _sr_chunk_codes(bits, lo, hi, codes, flags, prm, key0)
        for i in range(lo, hi):
            out[i] = codes[i - lo]
    return ties


@njit(cache=True, parallel=True)
def _quantize_fast(bits, out, lut, prm, key0):
    """:func:`_quantize_generic` with :func:`_round_fast`, deterministic modes (over chunks,
    prefetching)."""
    n = bits.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        prefer_512_bit_vectors(bits, out)
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        for b0 in range(lo, hi, _PREFETCH_BLOCK):
            for i in range(np.uint64(b0), _prefetched_block(bits, b0, hi)):
                out[i] = lut[_round_fast(bits[i], 0, prm, key0, False)[0]]
    return 0


@njit(cache=True, parallel=True)
def _quantize_fast_sr(bits, out, lut, prm, key0):
    """:func:`_quantize_fast` for stochastic rounding; returns the number of exact-SR ties."""
    n = bits.shape[0]
    ties = 0
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        prefer_512_bit_vectors(bits, out)
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        codes = np.empty(_CHUNK, np.int32)       # int32: LLVM then picks 512-bit vectors
        flags = np.empty(_CHUNK, np.uint8)
        ties += _sr_chunk_codes(bits, lo, hi, codes, flags, prm, key0)
        for i in range(lo, hi):
            out[i] = lut[codes[i - lo]]
    return ties


# ---- float32 inputs: 32-bit lanes, values without a table ------------------------------------------
#: The float32 kernels' parameter tuple ``p`` (all int32): the target format, the codes of the
#: special outcomes (as in :data:`PARAMS`) and their float32 bit patterns and the largest finite
#: value's (``v_max``; ``encode``'s codes kernels read ``v_max``, the GPU kernels none of these:
#: 0 there), and whether the format has a zero (0 only for e8m0fnu-like formats, which only
#: the CPU kernels take).
PARAMS_F32 = ("m", "emin", "max_mag", "sign_mask", "fnuz", "signed", "neg_zero", "mode", "sr_bits", "q_bits",
              "nan", "pos_inf", "neg_inf", "pos_ovf", "neg_ovf", "neg_unsigned",
              "v_nan", "v_pos_inf", "v_neg_inf", "v_pos_ovf", "v_neg_ovf", "v_neg_unsigned", "v_max", "has_zero")
_I32 = np.int32


assert len(PARAMS_F32) == 24         # _p32_tuple's length


def p32_array(p) -> np.ndarray:
    """The float32 tuple ``p`` (:data:`PARAMS_F32`) as the CPU kernels take it: a read-only
    int32 array (returned as it is when it is one already).  Numba's dispatcher types a
    tuple of 24 NumPy scalars on every call, about 1.5 us (Zen 3), and an array in 0.1 us;
    the kernels turn it back into the tuple (:func:`_p32_tuple`) before their loops."""
    if isinstance(p, np.ndarray) and p.dtype == np.int32 and not p.flags.writeable and p.shape == (24,):
        return p
    a = np.array([int(v) for v in p], dtype=np.int32)
    if a.shape != (24,):
        raise ValueError(f"the float32 kernels' parameters have 24 entries (PARAMS_F32), got {a.shape[0]}")
    a.flags.writeable = False
    return a


@njit(cache=True, inline="always")
def _p32_tuple(a):
    """:func:`p32_array`'s array back as the tuple of 24 int32 that the element functions
    take: read once before the loop, so the loop holds the same constants as with a tuple."""
    return (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
            a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23])


# ---- 16-bit inputs through the float32 kernels ------------------------------------------------
#: The input of a float32 kernel: float32 bits, or float16 / bfloat16 bits converted in the
#: loop (exactly: every 16-bit value is a float32 value, so the rounding and the random word
#: of each element are the float32 kernel's; stochastic rounding of 16-bit arrays then runs in
#: the same vector loops instead of the generic per-element ones).
SRC_F32, SRC_F16, SRC_BF16 = 0, 1, 2
#: :func:`_round_f32_kz`'s ``sr_kind``: stochastic rounding as the parameters' ``sr_bits`` says
#: (the GPU kernels), exact, or r-bit.
SR_BITS_FROM_P, SR_EXACT, SR_R_BITS = 0, 1, 2
_SOURCES = (SRC_F32, SRC_F16, SRC_BF16)


@njit(cache=True, inline="always")
def _load_f32_bits(x, src):
    """Input element ``x`` (``src``: float32, float16 or bfloat16 bits) as float32 bits."""
    if src == SRC_F16:
        return f32_bits_of_f16(x)
    if src == SRC_BF16:
        return np.uint32(np.uint32(x) << np.uint32(16))
    return np.uint32(x)


@njit(cache=True, inline="always")
def _store_f32_bits(out, i, r, src):
    """``out[i]`` = the value with float32 bits ``r`` in ``src``'s format (which holds it)."""
    if src == SRC_F16:
        out[i] = f16_bits_of_f32(r)
    elif src == SRC_BF16:
        out[i] = np.uint16(np.uint32(r) >> np.uint32(16))
    else:
        out[i] = r


@njit(cache=True, inline="always")
def _round_f32(b, i, p, key0, stochastic):
    """:func:`_round_fast` for float32 inputs in int32 arithmetic, returning ``(code, value)``.

    The routine the GPU compiles (and the CPU's fallback for exact stochastic rounding of
    arrays with tiny elements): :func:`_round_f32_k` with the mode read from ``p`` and the
    random word compared on all 64 bits.  In stochastic mode the caller must have checked
    that no element needs a second random word (``sh > 64``: :func:`_count_f32_deep`).
    """
    return _round_f32_k(b, i, p, key0, stochastic, p[7], False)


@njit(cache=True, inline="always")
def _round_f32_k(b, i, p, key0, stochastic, mode, hi32):
    """:func:`_round_f32` with the mode and the width of the SR comparison as arguments:
    :func:`_round_f32_kz` with element ``i``'s counter ``key0 + (i + 1) * GAMMA``."""
    return _round_f32_kz(b, key0 + np.uint64(i + 1) * np.uint64(GAMMA), p, stochastic, mode, hi32, SR_BITS_FROM_P)


@njit(cache=True, inline="always")
def _round_f32_kz(b, z, p, stochastic, mode, hi32, sr_kind):
    """:func:`_round_f32_k` given the element's counter ``z`` (its random word is ``mix64(z)``;
    the CPU kernels carry it as a running sum) and ``sr_kind``: whether stochastic rounding is
    r-bit (``SR_R_BITS``), exact (``SR_EXACT``) or as ``p``'s ``sr_bits`` says
    (``SR_BITS_FROM_P``; a constant in the CPU kernels, so that their loops carry one form).

    No table lookup: the rounded value's float32 bits come straight from the input's bits.
    Valid where ``_round_fast`` is and, in addition, where the target's smallest subnormal
    ``q = 2^(emin - m)`` is a normal float32 (``q_bits`` is its pattern).  Same decisions,
    same random words as :func:`_round_bits`::

        b = | s | E (8) | T (23) |      a = b without s,   sig = [E != 0] T  (24 bits)
                        |<-- kt -->|<- sh ->|               sh = dropped bits of sig
                                   | L | R sticky ... |     (L: lowest kept bit, R: round bit)

        sh <= 23: the kept bits lie in the fraction field, so the result is ``a`` with the
                  dropped bits cleared plus (k - kt) quanta; a carry out of the fraction
                  moves into the exponent field, which is the next binade (IEEE layout).
        sh >= 24: |x| < q, so k is 0 or 1 and the result is k * q.

    Overflow of the value is ``value bits > v_max`` (the largest finite value's bits): values
    are monotone in codes, so this is ``mag > max_mag`` without computing ``mag``.

    Stochastic rounding compares the first random word ``w`` with the dropped bits ``c``
    left-aligned to 64 bits.  With ``hi32`` (a constant in the CPU kernels) only the high
    halves are compared, in 32-bit lanes: ``w < c`` iff ``hi(w) < hi(c)`` when ``sh <= 32``
    (``c``'s low half is 0 then: at most 24 significant dropped bits); with ``sr_bits = r
    <= 32`` only the top r bits of each matter, whatever ``sh``.  So ``hi32`` is valid for
    r-bit SR and, in exact SR, for arrays without nonzero elements with ``sh > 32``.

    ``mode`` is a literal in the CPU kernels, so each compiles its own loop.  Every
    intermediate is cast back to ``int32`` (Numba types ``int32 op int32`` as ``int64``) and
    variable shift amounts are masked with ``& 31`` (a no-op on their values): together they
    let LLVM keep everything but the random word in 32-bit lanes (16 per 512-bit vector, 8
    per 256-bit one).  No intermediate overflows int32 for a finite input.
    """
    (m, emin, max_mag, sign_mask, fnuz, signed, neg_zero, _, sr_bits, q_bits,
     c_nan, c_pinf, c_ninf, c_povf, c_novf, c_negu, v_nan, v_pinf, v_ninf, v_povf, v_novf, v_negu, v_max, _) = p
    s = _I32(b >> np.uint32(31))
    a = _I32(b & np.uint32(0x7FFFFFFF))
    E = _I32(a >> _I32(23))
    T = _I32(a & _I32(0x7FFFFF))
    sig = _I32(T | _I32(_I32(E != _I32(0)) << _I32(23)))
    # d = e - emin for the unbiased exponent e = max(E, 1) - 127: the target quantum is
    # 2^(max(e, emin) - m), so sh = 23 - m + max(-d, 0) bits of sig drop
    d = _I32(max(E, _I32(1)) - _I32(emin + _I32(127)))
    sh_true = _I32(_I32(_I32(23) - m) - min(d, _I32(0)))
    # beyond 25 (> 24 + 1) only "dropped != 0" matters; "& 31" tells LLVM the shift is < 32
    sh = _I32(min(sh_true, _I32(25)) & _I32(31))
    ones = _I32(_I32(_I32(1) << sh) - _I32(1))      # mask of the dropped bits
    kt = _I32(sig >> sh)                            # truncated magnitude in quanta
    if stochastic:
        r_bits = sr_bits > 0 if sr_kind == SR_BITS_FROM_P else sr_kind == SR_R_BITS
        if hi32:
            # c's high half: the dropped bits shifted to bit 31 (sh <= 32) or sig shifted
            # right (sh > 32; 0 once sh >= 56)
            ch = (np.uint32(np.uint32(sig & ones) << np.uint32(_I32(_I32(32) - sh_true) & _I32(31)))
                  if sh_true <= _I32(32) else
                  np.uint32(np.uint32(sig) >> np.uint32(min(max(_I32(sh_true - _I32(32)), _I32(0)), _I32(31)))))
            wh = mix64_hi(z)
            if r_bits:
                # hardware style: r random bits added to the top r dropped bits; carry = away
                top_r = np.uint32(np.uint32(0xFFFFFFFF) << np.uint32(_I32(_I32(32) - sr_bits) & _I32(31)))
                away = np.uint32(wh & top_r) > np.uint32(np.uint32(~ch) & top_r)   # as _value_f32_sr_z
            else:
                away = wh < ch
        else:
            w = mix64(z)
            ca = np.uint64(sig & ones) << np.uint64(max(_I32(64) - sh_true, _I32(0)))
            cb = np.uint64(sig) >> np.uint64(min(max(sh_true - _I32(64), _I32(0)), _I32(63)))
            c0 = ca if sh_true <= _I32(64) else cb
            if r_bits:
                drop = np.uint64(64 - sr_bits)
                away = (w >> drop) > (~(c0 >> drop) & ((np.uint64(1) << np.uint64(sr_bits)) - np.uint64(1)))
            else:
                away = w < c0
        k = _I32(kt + _I32(away))
    else:
        # inc: added below the kept bits so that the carry into k is the rounding decision
        if mode == 0:           # nearest_even: half - 1, plus 1 when k is odd
            inc = _I32(_I32(ones >> _I32(1)) + _I32(kt & _I32(1)))
        elif mode == 1:         # nearest_away: half
            inc = _I32(_I32(ones >> _I32(1)) + _I32(1))
        elif mode == 2:         # toward_zero
            inc = _I32(0)
        elif mode == 3:         # up: all ones for +, 0 for -
            inc = _I32(ones & _I32(s - _I32(1)))
        else:                   # down: all ones for -, 0 for +
            inc = _I32(ones & _I32(-s))
        k = _I32(_I32(sig + inc) >> sh)
    # Specials and negative inputs of unsigned formats by comparisons of the input's bits:
    # combining boolean vectors with the loop-invariant flags made LLVM pack and unpack masks
    # through 16-bit lanes on AVX2 (measured: about 10 of 65 instructions per 8 elements).
    inf = _I32(0x7F800000)
    neg_lim = np.uint32(0x80000000) if signed == _I32(0) else np.uint32(0xFFFFFFFF)
    negu = b > neg_lim                               # unsigned format, x < 0 (not -0)
    sgn = _I32(s << _I32(31))
    # the code: magnitude by the module docstring's formula (has_zero = 1), then specials
    m5 = _I32(m & _I32(31))
    mag = _I32(_I32(_I32(max(d, _I32(0)) + _I32(1)) << m5) + _I32(k - _I32(_I32(1) << m5)))
    csgn = _I32(sign_mask & _I32(-s))
    code = _I32(mag | csgn) if mag != _I32(0) else _I32(csgn & _I32(fnuz - _I32(1)))   # fnuz: no -0
    code = (c_novf if s else c_povf) if mag > max_mag else code
    code = c_negu if negu else code
    code = (c_ninf if s else c_pinf) if a == inf else code
    code = c_nan if a > inf else code
    # the value (k is 0 or 1 when sh_true >= 24), then its sign and the specials
    r = _I32(_I32(a & _I32(~ones)) + _I32(_I32(k - kt) << sh)) if sh_true <= _I32(23) else _I32(q_bits & _I32(-k))
    ovf = r > v_max
    r = _I32(r | sgn) if r != _I32(0) else _I32(sgn & _I32(-neg_zero))
    r = (v_novf if s else v_povf) if ovf else r
    r = v_negu if negu else r
    r = (v_ninf if s else v_pinf) if a == inf else r
    r = v_nan if a > inf else r
    return code, r


@njit(cache=True)
def _value_f32_consts(p, mode):
    """The loop constants of :func:`_value_f32` from the float32 tuple ``p`` (computed once
    per call, outside the loop: LLVM then cannot turn the per-element comparisons with them
    into selects on flags, which it packed through 16-bit lanes on AVX2)."""
    (m, emin, _, _, _, signed, neg_zero, _, _, q_bits, _, _, _, _, _, _,
     v_nan, v_pinf, v_ninf, v_povf, v_novf, v_negu, v_max, has_zero) = p
    # q/2's bits: one binade below q; in float32's subnormal range half of q's pattern (0 when
    # q = 2^-149: then only 0 is below q)
    half = q_bits - 0x800000 if q_bits > 0x800000 else q_bits >> 1
    # |x| < q rounds to q when a > thr: nearest_even |x| > q/2, nearest_away |x| >= q/2 (and
    # nonzero), toward_zero never (up and down compare the signed bits instead)
    thr = half if mode == 0 or mode == MODE_NEAREST_EVEN_CODE else max(half - 1, 0) if mode == 1 else 0x7FFFFFFF
    # up and down: the kernels with ``low`` compare the signed bits (bx for down) with thr, the
    # others with 0
    thr = 0 if mode == 3 or mode == 4 else thr
    # a format without zero (emin = -127, unsigned, m = 0: e8m0fnu): every nonzero |x| < q
    # rounds to q in every mode (down's comparison lets every positive input through with
    # -2^31; negative ones become NaN anyway), and a zero is NaN: with ``low`` the NaN test
    # compares ``a - zoff`` unsigned, which wraps for a = 0
    zoff = 0
    if has_zero == 0:
        thr = -2147483648 if mode == 4 else 0
        zoff = 1
    negu_lim = 0 if signed == 0 else 0x7FFFFFFF       # unsigned formats: negative nonzero -> v_negu
    zero_lim = -1 if neg_zero else 0                  # r > zero_lim keeps the sign
    # r-bit stochastic rounding compares the top r bits of 32: their mask (0 for exact SR)
    top_r = (0xFFFFFFFF << (32 - p[8])) & 0xFFFFFFFF if p[8] > 0 else 0
    # c1 = 150 - m + emin; the ``low`` kernels only read its parity (code-parity ties), which a
    # format without zero flips: its codes start one lower
    return (_I32(150 - m + emin + zoff), _I32(23 - m), _I32(q_bits), _I32(thr), _I32(negu_lim), _I32(zero_lim),
            v_max, v_povf, v_novf, v_negu, v_pinf, v_ninf, v_nan, _I32(zoff), np.uint32(top_r))


@njit(cache=True, inline="always")
def _value_f32(b, c, mode, lean, nz, low):
    """The float32 bits of the rounded value of float32 pattern ``b``, deterministic modes only.

    The quantize loops' own routine (``c``: :func:`_value_f32_consts`): :func:`_round_f32_k`'s
    value without its code, in fewer vector instructions.  Same results by a different
    derivation (tests hold it equal to the generic kernel's codes through the table)::

        |x| >= q (the smallest subnormal of the target, bits q_bits):
            sh = dropped bits <= 23, all inside the fraction field; adding the increment to
            ``a`` itself carries into the exponent field exactly when the significand
            carries, so  r = (a + inc) & ~(2^sh - 1)  ("add and mask").
        |x| <  q: the result is 0 or q; q when |x| is above the mode's threshold
            (nearest_even: > q/2, nearest_away: >= q/2, up/down: nonzero of that sign).

    ``sh = max(150 - m + emin - max(E, 1), 23 - m)``.  The kept bit ``L`` (nearest_even) is
    bit ``sh`` of the significand: of ``a | 2^23`` (sh = 23 only for m = 0 in the normal
    range, where it is the implicit bit).  Valid where :func:`_round_f32_k` is and also where q is a float32
    subnormal (``emin - m >= -149``; float32's subnormals are spaced like its binade E = 1,
    so add-and-mask holds there too), e.g. bfloat16-like formats.  The specials, overflow and
    unsigned formats' negative inputs as in :func:`_round_f32_k`, by comparisons of the
    input's bits as signed int32; ``lean`` (a constant: signed format, +-Inf inputs give the
    overflow values) and ``nz`` (a constant: the format has -0) drop three of those selects.
    Formats without subnormals take it with ``q = 2^emin`` (their only values below
    ``2^emin`` are 0 and ``2^emin``), and ``m = 0`` formats whose nearest_even ties go to the
    even code (``MODE_NEAREST_EVEN_CODE``) with ``L`` the parity of the truncated value's code.

    ``low`` (a constant): the format's smallest normal binade is ``[2^-127, 2^-126)``, float32's
    subnormal range (``emin = -127``: e8m0fnu, binary8p1ue/uf).  Float32 encodes that binade
    with ``E = 0`` and the spacing of ``E = 1``, so the shift count there is one less than
    ``max(E, 1)`` gives (the target's quantum halves, float32's does not)::

        sh = 23 - m - 1 + min(E, 1)          (emin = -127: 150 - m + emin = 23 - m)

    and add-and-mask carries from ``E = 0`` into ``E = 1`` by itself.  With ``low`` an
    e8m0fnu-like format without zero is valid too (:func:`_value_f32_consts`).
    """
    return _value_specials(_value_f32_mag(b, c, mode, low), _I32(b), c, lean, nz, low)


@njit(cache=True, inline="always")
def _value_f32_mag(b, c, mode, low):
    """:func:`_value_f32`'s rounded magnitude (float32 bits of a value of the format, or above
    ``v_max`` where it overflows), before the sign and the specials: quantize finishes it with
    :func:`_value_specials`, encode with :func:`_code_of_value`."""
    (c1, c2, q_bits, thr, _, _, _, _, _, _, _, _, _, _, _) = c
    bi = _I32(b)
    a = _I32(bi & _I32(0x7FFFFFFF))
    if low:
        sh = _I32(_I32(_I32(c2 - _I32(1)) + min(_I32(a >> _I32(23)), _I32(1))) & _I32(31))
    else:
        sh = _I32(max(_I32(c1 - max(_I32(a >> _I32(23)), _I32(1))), c2) & _I32(31))
    notones = _I32(_I32(-1) << sh)
    ones = _I32(~notones)
    bx = _I32(bi ^ _I32(-2147483648))          # > 0 exactly for negative nonzero inputs
    if mode == 0:           # nearest_even: half - 1, plus L
        inc = _I32(_I32(ones >> _I32(1)) + _I32(_I32(_I32(a | _I32(0x800000)) >> sh) & _I32(1)))
        up_tiny = a > thr
    elif mode == MODE_NEAREST_EVEN_CODE:
        # m = 0, ties to the even code: at and above q = 2^emin (sh = 23) the truncated value
        # 2^(E - 127) has code E - 126 - emin, odd when E's lowest bit differs from emin's
        # (c1 = 150 + emin has emin's): half - 1, plus that bit.  With ``low`` sh is 22 for
        # E = 0 (the value 2^-127, code 1): E is a >> 23 there too
        inc = _I32(_I32(ones >> _I32(1)) + _I32(_I32(_I32(a >> (_I32(23) if low else sh)) ^ c1) & _I32(1)))
        up_tiny = a > thr
    elif mode == 1:         # nearest_away: half
        inc = _I32(_I32(ones >> _I32(1)) + _I32(1))
        up_tiny = a > thr
    elif mode == 2:         # toward_zero
        inc = _I32(0)
        up_tiny = a > thr
    elif mode == 3:         # up: all ones for +
        inc = _I32(ones & _I32(_I32(bi >> _I32(31)) ^ _I32(-1)))
        up_tiny = bi > (thr if low else _I32(0))
    else:                   # down: all ones for -
        inc = _I32(ones & _I32(bi >> _I32(31)))
        up_tiny = bx > (thr if low else _I32(0))
    return _I32(_I32(a + inc) & notones) if a >= q_bits else (q_bits if up_tiny else _I32(0))


def _fadd_ok(p) -> bool:
    """Whether :func:`_value_f32_rne` is valid for the float32 tuple ``p``: nearest_even, the
    smallest subnormal ``q`` at least 2^-125 (so no float32 subnormal is ever near a rounding
    boundary: the result does not depend on flush-to-zero or denormals-are-zero), and the
    magic number of the overflow binade still a finite float32 (see :func:`_value_f32_fadd_consts`),
    and ``q = 2^(emin - m)``: a format without subnormals (``q = 2^emin``, m >= 1) rounds below
    ``2^emin`` on a coarser grid than the addition's."""
    m, emin, q_bits, v_max = int(p[0]), int(p[1]), int(p[9]), int(p[22])
    return int(p[7]) == 0 and q_bits >= (2 << 23) and (v_max >> 23) + 1 + 23 - m <= 254 \
        and q_bits == (emin - m + 127) << 23


@njit(cache=True)
def _value_f32_fadd_consts(p):
    """The loop constants of :func:`_value_f32_rne`: the exponent fields (float32 bits) of the
    target's smallest normal binade and of the first binade above its largest finite value,
    and ``23 - m`` moved to the exponent field."""
    m, emin, v_max = p[0], p[1], p[22]
    return (_I32((emin + 127) << 23), _I32(((v_max >> 23) + 1) << 23), _I32((23 - m) << 23))


@njit(cache=True, inline="always")
def _value_f32_rne(b, c, cf, lean, nz):
    """:func:`_value_f32` for nearest_even by one float32 addition (where :func:`_fadd_ok`).

    For ``|x|`` in binade ``E`` (biased; ``E = max(E, E_min)`` of the target's normals, so the
    target's subnormals share its smallest normal binade) the target's quantum is
    ``2^(E - 127 - m)``.  The magic number ``s = 2^(E - 127 - m + 23)`` puts ``|x| + s`` in a
    float32 binade whose spacing is exactly that quantum, so the IEEE addition (round to
    nearest, ties to even: the default rounding of every CPU float unit, which no relaxed-math
    flag may loosen) rounds ``|x|`` to the target's grid in one step; ``(|x| + s) - s`` is
    exact.  Ties go to even quanta, as ``s`` is an even number of them (2^23)::

        s bits   = | 0 | max(E, E_min) + 23 - m | 0 ... 0 |
        |x| + s  = s + k * quantum      (k: |x| / quantum rounded to nearest even)
        r        = (|x| + s) - s = k * quantum

    A carry into the next binade (k = 2^(m + 1)) is exact too.  Above the target's range ``E``
    is clamped to the first overflowing binade: ``r`` stays above ``v_max`` and finite, and
    :func:`_value_specials` takes over (Inf and NaN inputs give Inf and NaN sums, also above
    ``v_max``; without the clamp ``s`` could be Inf and ``Inf - Inf`` a negative NaN).
    Float32 subnormal inputs lie far below ``q / 2`` (``q >= 2^-125``) and round to 0 under
    any denormal handling.
    """
    return _value_specials(_value_f32_rne_mag(b, cf), _I32(b), c, lean, nz, False)


@njit(cache=True, inline="always")
def _value_f32_rne_mag(b, cf):
    """:func:`_value_f32_rne`'s rounded magnitude before the sign and the specials (as
    :func:`_value_f32_mag`)."""
    e_min, e_ovf, e_shift = cf
    a = _I32(_I32(b) & _I32(0x7FFFFFFF))
    e = min(max(_I32(a & _I32(0x7F800000)), e_min), e_ovf)
    s = f32_from_bits(_I32(e + e_shift))
    return bits_from_f32((f32_from_bits(a) + s) - s)


def _flat_ok(p) -> bool:
    """Whether :func:`_value_f32_rne_flat` is valid for the float32 tuple ``p``: nearest_even
    into a format with float32's smallest normal binade (``emin = -126``: bfloat16, tf32, e8m13)
    and at least one mantissa bit.  With ``m = 0`` the bit at ``sh`` is the exponent field's
    lowest, not ``k``'s (1 for every normal value), so ties would go to the even exponent where
    ``TieRule.UP`` rounds them up (1.5 * 2^e -> 2^(e+1); the integer value kernel does).
    And subnormals: ``q = 2^(-126 - m)`` (without them ``q = 2^-126`` and float32's subnormals
    round to 0 or ``q``, not on the grid)."""
    m = int(p[0])
    return int(p[7]) == 0 and int(p[1]) == -126 and m >= 1 and int(p[9]) == 1 << (23 - m)


@njit(cache=True, inline="always")
def _value_f32_rne_flat(b, c, lean, nz):
    """:func:`_value_f32` for nearest_even where the target's ``emin`` is float32's (-126)
    (where :func:`_flat_ok`): every float32 input, subnormal or normal, drops the same
    ``sh = 23 - m`` bits (float32's subnormals are spaced like its binade E = 1, and so are the
    target's), so add and mask needs no per-element shift count and no branch below ``q``::

        a   = | 0 | E (8) | kept (m) | L... dropped (sh) |
        r   = (a + 2^(sh-1) - 1 + L) & ~(2^sh - 1)         L = bit sh of a

    A carry moves into the exponent field (or to Inf, then the overflow value) by itself.
    """
    (_, c2, _, _, _, _, _, _, _, _, _, _, _, _, _) = c
    sh = _I32(c2 & _I32(31))           # in range for LLVM: 32-bit shifts, not 64-bit ones
    bi = _I32(b)
    a = _I32(bi & _I32(0x7FFFFFFF))
    notones = _I32(_I32(-1) << sh)
    inc = _I32(_I32(_I32(~notones) >> _I32(1)) + _I32(_I32(a >> sh) & _I32(1)))
    r = _I32(_I32(a + inc) & notones)
    return _value_specials(r, bi, c, lean, nz, False)


@njit(cache=True, inline="always")
def _value_f32_sr(b, i, c, key0, lean, nz, rbits, w64, low):
    """:func:`_value_f32` for stochastic rounding, deciding by the random word's high half
    (or, with ``w64``, by the whole word): :func:`_value_f32_sr_z` of element ``i``'s
    counter ``key0 + (i + 1) * GAMMA``."""
    return _value_f32_sr_z(b, key0 + np.uint64(i + 1) * np.uint64(GAMMA), c, lean, nz, rbits, w64, low)


@njit(cache=True, inline="always")
def _value_f32_sr_z(b, z, c, lean, nz, rbits, w64, low):
    """:func:`_value_f32_sr` given the element's counter ``z`` (its random word is ``mix64(z)``):
    the CPU kernels carry ``z`` as a running sum instead of multiplying the index by ``GAMMA``.

    Valid where the ``hi32`` comparison of :func:`_round_f32_k` is (r-bit SR, ``rbits``; exact
    SR of arrays without nonzero elements with more than 32 dropped bits), with the same
    random word; with ``w64`` (exact SR) where its 64-bit comparison is (no nonzero element
    with more than 64 dropped bits).  The dropped bits' high half ``ch``: ``|x| >= q``: ``a``'s
    low ``sh`` bits moved to the top; ``|x| < q``: the significand shifted by ``32 - sh``
    (``sh <= 32``) or right (r-bit SR only); likewise on 64 bits for ``w64``.  The value:
    ``a`` with the dropped bits cleared plus one quantum when the word is below ``ch`` (``q``
    or 0 below ``q``), then the specials.  For an element with at most 32 dropped bits the
    64-bit comparison and the high halves' agree (the dropped bits' low half is 0).  ``low``:
    as for :func:`_value_f32` (the shift count of ``E = 0``).
    """
    return _value_specials(_value_f32_sr_mag(b, z, c, rbits, w64, low), _I32(b), c, lean, nz, low)


@njit(cache=True, inline="always")
def _f32_sr_dropped(a, c, low):
    """``(e1, sh_true)`` of magnitude bits ``a`` for :func:`_value_f32_sr_mag`: the biased
    exponent ``max(E, 1)`` and how many bits of the 24-bit significand drop (from ``c``'s
    ``c1``, ``c2``; ``low``: as for :func:`_value_f32`)."""
    c1, c2 = c[0], c[1]
    e1 = max(_I32(a >> _I32(23)), _I32(1))
    if low:
        return e1, _I32(_I32(c2 - _I32(1)) + min(_I32(a >> _I32(23)), _I32(1)))
    return e1, _I32(max(_I32(c1 - e1), c2))


@njit(cache=True, inline="always")
def _f32_sr_tie_beyond_64(b, z, c, low):
    """1 when exact SR of float32 bits ``b`` with counter ``z`` is a tie that the first random
    word cannot decide, else 0: more than 64 bits drop (below the smallest quantum only), bits
    follow the first 64, and the word ``mix64(z)`` equals those 64, which
    :func:`_value_f32_sr_mag` compared (``w64``; probability 2^-64).  Rounded toward zero then,
    the element needs further words (the generic kernel draws them)::

        fraction = sig / 2^sh_true = 0. [ first 64 bits = sig >> (sh_true - 64) ] [ sig's low bits ]

    Branch-free, and an int rather than a bool: inlined into a parallel kernel's body, the
    copies that ``and``/``or`` and a returned bool make are taken for array aliases by Numba's
    parfor alias analysis, which then compiles the body without ``noalias`` arrays (in-place
    calls then ran LLVM's scalar fallback, 9x slower)."""
    a = _I32(_I32(b) & _I32(0x7FFFFFFF))
    e1, sh_true = _f32_sr_dropped(a, c, low)
    deep = (a < c[2]) & (sh_true > _I32(64))    # below the smallest quantum (q_bits), beyond 64 bits
    sig = np.uint64(_I32(_I32(a + _I32(0x800000)) - _I32(e1 << _I32(23))))
    rest = np.uint64(min(max(_I32(sh_true - _I32(64)), _I32(0)), _I32(63)))
    more = np.uint64(sig & np.uint64(np.uint64(np.uint64(1) << rest) - np.uint64(1))) != np.uint64(0)
    return np.int64(deep & more & (mix64(z) == np.uint64(sig >> rest)))


@njit(cache=True, inline="always")
def _value_f32_sr_mag(b, z, c, rbits, w64, low):
    """:func:`_value_f32_sr_z`'s rounded magnitude before the sign and the specials (as
    :func:`_value_f32_mag`)."""
    (c1, c2, q_bits, _, _, _, _, _, _, _, _, _, _, _, top_r) = c
    bi = _I32(b)
    a = _I32(bi & _I32(0x7FFFFFFF))
    e1, sh_true = _f32_sr_dropped(a, c, low)
    notones = _I32(_I32(-1) << _I32(sh_true & _I32(31)))
    t = np.uint32(_I32(_I32(32) - sh_true) & _I32(31))
    big = a >= q_bits
    sig = _I32(_I32(a + _I32(0x800000)) - _I32(e1 << _I32(23)))      # the 24-bit significand
    if w64:
        t64 = np.uint64(_I32(_I32(64) - sh_true) & _I32(63))
        c64 = np.uint64(np.uint64(_I32(a & _I32(~notones)) if big else sig) << t64)
        # more than 64 dropped bits (only below the smallest quantum): the fraction's first 64
        # bits are the significand shifted right; a word equal to them while more bits follow
        # is a tie that the word alone cannot decide (_f32_sr_tie_beyond_64 finds it)
        c64 = c64 if sh_true <= _I32(64) else np.uint64(np.uint64(sig) >> np.uint64(min(_I32(sh_true - _I32(64)),
                                                                                          _I32(63))))
        away = mix64(z) < c64
        up = _I32(-_I32(away))
        return _I32(_I32(a & notones) - _I32(notones & up)) if big else _I32(q_bits & up)
    ch = np.uint32(np.uint32(_I32(a & _I32(~notones)) if big else sig) << t)
    if rbits:
        # r-bit SR takes any depth: beyond 32 dropped bits the significand moves right
        ch = ch if sh_true <= _I32(32) else np.uint32(np.uint32(sig) >> np.uint32(
            min(_I32(sh_true - _I32(32)), _I32(31))))
    wh = mix64_hi(z)
    if rbits:
        # r-bit SR rounds away when the top r bits of the word plus those of the dropped bits
        # carry: w_r > ~c_r on r bits.  Kept in place instead of shifted down (no variable
        # shift, which Numba types as 64-bit and LLVM then runs in 64-bit lanes):
        #    wh & top_r = [  w_r  | 0 ... 0 ]     the same order as w_r vs ~c_r
        #   ~ch & top_r = [ ~c_r  | 0 ... 0 ]
        #                  r bits  32 - r bits
        away = np.uint32(wh & top_r) > np.uint32(np.uint32(~ch) & top_r)
    else:
        away = wh < ch
    up = _I32(-_I32(away))
    return _I32(_I32(a & notones) - _I32(notones & up)) if big else _I32(q_bits & up)


@njit(cache=True, inline="always")
def _value_specials(r, bi, c, lean, nz, low):
    """The sign, overflow, unsigned formats' negative inputs and the specials of the rounded
    magnitude's bits ``r`` of input ``bi`` (int32 bits), for :func:`_value_f32` and
    :func:`_value_f32_sr`; with ``low`` a zero input of a format without zero is NaN too."""
    (_, _, _, _, negu_lim, zero_lim, v_max, v_povf, v_novf, v_negu, v_pinf, v_ninf, v_nan, zoff, _) = c
    a = _I32(bi & _I32(0x7FFFFFFF))
    neg = bi < _I32(0)
    ovf = r > v_max
    if nz:
        r = _I32(r | _I32(bi & _I32(-2147483648)))
    else:
        r = _I32(r | _I32(bi & _I32(-2147483648))) if r > zero_lim else r
    r = (v_novf if neg else v_povf) if ovf else r      # +-Inf inputs land here too (r = Inf)
    inf = _I32(0x7F800000)
    if not lean:
        r = v_negu if _I32(bi ^ _I32(-2147483648)) > negu_lim else r
        r = (v_ninf if neg else v_pinf) if a == inf else r
    if low:
        # a > inf, or (zoff = 1) a = 0: a - 1 wraps to 2^32 - 1
        r = v_nan if np.uint32(_I32(a - zoff)) > np.uint32(_I32(inf - zoff)) else r
    else:
        r = v_nan if a > inf else r
    return r


@njit(cache=True)
def _code_f32_consts(p):
    """The loop constants of :func:`_code_of_value` from the float32 tuple ``p`` (with its
    values: ``quantize._params_f32(..., with_values=True)``), computed once per call."""
    (m, emin, _, sign_mask, fnuz, signed, _, _, _, _,
     c_nan, c_pinf, c_ninf, c_povf, c_novf, c_negu, _, _, _, _, _, _, v_max, has_zero) = p
    bmin = _I32((emin + 127) << 23)             # the smallest normal value's bits
    emin_f = f32_from_bits(bmin)
    if emin == -127:
        # ``low`` (see :func:`_code_of_value`): bmin is what t loses; without zero the exponent
        # field 0 holds 2^-127's binade, one binade less
        bmin = _I32(0 if has_zero else 1 << 23)
        emin_f = np.float32(0)
    return (bmin, emin_f, _I32(23 - m), _I32(sign_mask), _I32(fnuz - 1),
            _I32(0 if signed == 0 else 0x7FFFFFFF), _I32(v_max),
            _I32(c_nan), _I32(c_pinf), _I32(c_ninf), _I32(c_povf), _I32(c_novf), _I32(c_negu),
            _I32(1 - has_zero))


def _code_variant(p) -> tuple[bool, bool]:
    """``(lean, signed_zero)`` of :func:`_code_of_value` for the float32 tuple ``p``: ``lean``,
    a signed format whose +-Inf inputs get the overflow codes; ``signed_zero``, not fnuz (a
    zero keeps its sign bit in the code)."""
    return bool(p[5]) and p[11] == p[13] and p[12] == p[14], not bool(p[4])


@njit(cache=True, inline="always")
def _code_of_value(r, bi, k, lean, signed_zero, low):
    """The code of input ``bi`` (int32 bits) whose rounded magnitude is ``r`` (the float32 bits
    of a value of the format, or above ``v_max``: :func:`_value_f32_mag` and its siblings),
    ``k``: :func:`_code_f32_consts`.  encode's float32 loops: the quantize kernels' rounding,
    then the code of the value instead of :func:`_round_f32_kz`'s integer code path (79 vector
    instructions per 8 elements on AVX2; the code of the value takes a dozen).

    Valid where the smallest subnormal ``q`` is a normal float32 (the codes kernels'
    condition), so every value of the format is a normal float32 or zero.  In the format's
    IEEE layout the code of a normal value is its float32 pattern moved down by ``23 - m`` and
    re-biased; a subnormal ``k * q`` becomes the smallest normal binade's pattern by one exact
    float32 addition (``k < 2^m`` quanta of ``2^(emin - m)`` on top of ``2^emin``)::

        r >= bmin:  | 0 | emin + 127 + j | fraction: m bits | 0 ... 0 |   code = j + 1, fraction
        r <  bmin:  r + 2^emin = | 0 | emin + 127 | k (m bits) | 0 ... 0 |   code = 0, k
        mag = (t - bmin) >> (23 - m),   t = r + 2^23  or  bits(r + 2^emin)

    Then the sign (``sign_mask``, and none on a zero of an fnuz format), overflow (``r >
    v_max``: values are monotone in codes), an unsigned format's negative inputs, +-Inf and
    NaN, in :func:`_round_f32_kz`'s order and with its codes.  ``lean`` and ``signed_zero``
    (:func:`_code_variant`) are constants that drop three selects and one.

    ``low`` (a constant; ``emin = -127``, as for :func:`_value_f32`): the format's binade
    ``[2^-127, 2^-126)`` and its subnormals are float32 subnormals, integers in units of
    ``2^-149``, where a code step is ``2^(22 - m)`` units, half of the ``2^(23 - m)`` of the
    normal float32 binades.  Doubling them lines them up with the IEEE layout, without any
    float32 arithmetic (no flush-to-zero question)::

        t = r + min(r, 2^23)         (r + 2^23 for r >= 2^-126, 2 r below)
        mag = (t - bmin) >> (23 - m),   bmin = 0, or 2^23 (one binade) for a format without zero

    A zero input of a format without zero is NaN (``zoff``, as in :func:`_value_specials`)."""
    (bmin, emin_f, shc, sign_mask, zero_mask, negu_lim, v_max,
     c_nan, c_pinf, c_ninf, c_povf, c_novf, c_negu, zoff) = k
    if low:
        t = _I32(r + min(r, _I32(0x800000)))
    else:
        t = _I32(r + _I32(0x800000)) if r >= bmin else bits_from_f32(f32_from_bits(r) + emin_f)
    mag = _I32(_I32(t - bmin) >> _I32(shc & _I32(31)))
    csgn = _I32(sign_mask & _I32(bi >> _I32(31)))
    if signed_zero:
        code = _I32(mag | csgn)
    else:
        code = _I32(mag | csgn) if mag != _I32(0) else _I32(csgn & zero_mask)
    neg = bi < _I32(0)
    code = (c_novf if neg else c_povf) if r > v_max else code     # +-Inf land here too (r = Inf)
    a = _I32(bi & _I32(0x7FFFFFFF))
    inf = _I32(0x7F800000)
    if not lean:
        code = c_negu if _I32(bi ^ _I32(-2147483648)) > negu_lim else code
        code = (c_ninf if neg else c_pinf) if a == inf else code
    if low:
        return c_nan if np.uint32(_I32(a - zoff)) > np.uint32(_I32(inf - zoff)) else code
    return c_nan if a > inf else code


# The element functions return their result and the kernel stores it: an array passed through
# two levels of inlined functions left reference-count calls in the loop body until after
# LLVM's first vectorising pass, which kept the serial twins of these kernels scalar (8x slower
# per element on a Zen 3); the parallel kernels' bodies carry no reference counts.
@njit(cache=True, inline="always")
def _sr_value_element(b, z, p, c, lean, nz, rbits, w64, low):
    """One element of the chunked SR value kernels: the value (float32 bits) of float32 bits
    ``b`` with counter ``z``; ``w64``: compared on all 64 bits (a chunk redone for its deep
    elements), ``rbits``: r-bit SR (not with ``w64``).  The kernel factory passes both flags
    as constants it combines in Python: an ``and``/``or`` in the loop body, of constants even,
    makes copies that Numba's parfor alias analysis takes for array aliases (see
    :func:`_f32_sr_tie_beyond_64`), and the r-bit kernels lost their ``noalias`` arrays to
    ``rbits and not whole_word`` here (in place 8x slower)."""
    return _value_f32_sr_z(b, z, c, lean, nz, rbits, w64, low)


@njit(cache=True, inline="always")
def _sr_code_element(b, z, k, c, lean, nz, rbits, w64, low):
    """:func:`_sr_value_element` for the SR codes kernels: the code of the value
    (:func:`_code_of_value`, ``k`` its constants; ``lean`` and ``nz`` its ``lean`` and
    ``signed_zero``).  Two functions, picked by the kernel factory, instead of one with a
    ``values`` flag: Numba inlines a function's whole IR before it prunes the branch not taken,
    and copying both routines' IR took most of the SR kernels' compile time (the machine code
    is the same)."""
    return _code_of_value(_value_f32_sr_mag(b, z, c, rbits, w64, low), _I32(b), k, lean, nz, low)


@njit(cache=True, inline="always")
def _store_code(out, i, r, src):
    """``out[i]`` = code ``r`` (the codes kernels' twin of :func:`_store_f32_bits`)."""
    out[i] = r


# Flat prange loops: LLVM vectorises these with 512-bit vectors; a reduction or a chunk loop
# with signed indices inside the body made it fall back to 256-bit or scalar code (measured,
# 2-4x slower: Numba's negative-index wraparound code).  The exact/r-bit SR kernels and the
# codes kernels loop over chunks with *unsigned* indices, which vectorise in full width: the
# Weyl counter then runs as a sum (no 64-bit multiply per element) and the smallest magnitude
# as a reduction, at no cost (benchmarks.sr_floor; docs/results/benchmarks.md).  One compiled
# loop per (output, mode): a runtime switch on the mode inside the loop kept more constants
# live (AVX2 has 16 vector registers) and cost branches in every iteration.
#: Elements per task of the float32 SR and codes kernels (2048-8192 measured alike).
_SR_CHUNK = 4096


def _f32_kernel(values: bool, stochastic: bool, mode: int, hi32: bool, lean: bool = False, nz: bool = False,
                rbits: bool = False, fadd: bool = False, flat: bool = False, src: int = SRC_F32, low: bool = False):
    """The parallel loop for one case, called as ``(bits, out, p32, key0)`` (``p32``: the float32
    tuple as :func:`p32_array` gives it): values (``_value_f32(bits[i], ..., mode, lean, nz)``, or
    stochastic ``_value_f32_sr(bits[i], i, ..., lean, nz, rbits, not hi32)``), or codes: the
    same rounded magnitude then :func:`_code_of_value` (``lean`` and ``nz`` are its ``lean``
    and ``signed_zero``), equal to ``_round_f32_k(bits[i], i, ...)[0]``.

    The stochastic kernels take ``thr32`` (uint32) and ``in_place`` after ``key0`` (``w64``
    value kernels do not) and run over chunks of ``_SR_CHUNK`` elements with the counter as a
    running sum.  With ``hi32`` they decide on the whole word each chunk whose smallest
    ``|bits| - 1`` is below ``thr32`` (0: never; see :func:`_quantize_f32_sr_checked`): out of
    place by redoing the chunk, in place (``out`` is ``bits``) by reading the chunk's
    magnitudes first and rounding a deep chunk through a scratch, stored only without a tie.
    They return how many ties an element beyond 64 dropped bits drew
    (:func:`_f32_sr_tie_beyond_64`; r-bit SR: 0, no check).

    ``src``: the input (and, for values, the output) holds float32, float16 or bfloat16 bits,
    converted in the loop (:func:`_load_f32_bits`).  ``low``: the format's ``emin`` is -127
    (:func:`_value_f32`; not with ``fadd`` or ``flat``)."""

    if values and flat:
        @njit(cache=True, parallel=True)
        def value_flat_kernel(bits, out, p32, key0):
            p = _p32_tuple(p32)
            c = _value_f32_consts(p, 0)
            for i in prange(bits.shape[0]):
                prefer_512_bit_vectors_converting(bits, out)
                _store_f32_bits(out, i, _value_f32_rne_flat(_load_f32_bits(bits[i], src), c, lean, nz), src)
        return value_flat_kernel

    if values and fadd:
        @njit(cache=True, parallel=True)
        def value_fadd_kernel(bits, out, p32, key0):
            p = _p32_tuple(p32)
            c = _value_f32_consts(p, 0)
            cf = _value_f32_fadd_consts(p)
            for i in prange(bits.shape[0]):
                prefer_512_bit_vectors_converting(bits, out)
                _store_f32_bits(out, i, _value_f32_rne(_load_f32_bits(bits[i], src), c, cf, lean, nz), src)
        return value_fadd_kernel

    if values and not stochastic:
        @njit(cache=True, parallel=True)
        def value_kernel(bits, out, p32, key0):
            p = _p32_tuple(p32)
            c = _value_f32_consts(p, mode)
            for i in prange(bits.shape[0]):
                prefer_512_bit_vectors_converting(bits, out)
                _store_f32_bits(out, i, _value_f32(_load_f32_bits(bits[i], src), c, mode, lean, nz, low), src)
        return value_kernel

    if values and not hi32:
        @njit(cache=True, parallel=True)
        def value_w64_kernel(bits, out, p32, key0):
            p = _p32_tuple(p32)
            c = _value_f32_consts(p, 5)
            for i in prange(bits.shape[0]):
                prefer_512_bit_vectors_converting(bits, out)
                r = _value_f32_sr(_load_f32_bits(bits[i], src), i, c, key0, lean, nz, False, True, low)
                _store_f32_bits(out, i, r, src)
        return value_w64_kernel

    if stochastic:
        # values with hi32 (exact SR on the word's high half, or r-bit SR), or codes: chunks
        # with the counter as a running sum; the smallest magnitude is tracked where the high
        # half may not be enough (exact SR)
        track = (not rbits) and (values or hi32)
        sr_element = _sr_value_element if values else _sr_code_element
        # the rounding pass's flags (a chunk redone on the whole word: w64 True, rbits False);
        # combined here, not in the loop body (see _sr_value_element).  The value kernels
        # compare on the high half in that pass (they have hi32), the codes kernels there
        # unless hi32 is off
        pass_w64 = (not values) and (not hi32)
        pass_rbits = rbits and not pass_w64
        store = _store_f32_bits if values else _store_code

        @njit(cache=True, parallel=True)
        def sr_kernel(bits, out, p32, key0, thr32, in_place=False):
            p = _p32_tuple(p32)
            c = _value_f32_consts(p, 5)
            k = p if values else _code_f32_consts(p)      # the element's own constants
            n = bits.shape[0]
            ties = 0
            for t in prange((n + _SR_CHUNK - 1) // _SR_CHUNK):
                prefer_512_bit_vectors_converting(bits, out)
                # unsigned indices: no negative-index wraparound code, so LLVM vectorises
                # the inner loops with 512-bit vectors and the counter as a running sum
                lo = np.uint64(t * _SR_CHUNK)
                hi = np.uint64(min(n, t * _SR_CHUNK + _SR_CHUNK))
                z0 = key0 + lo * np.uint64(GAMMA)
                lt = np.uint32(0xFFFFFFFF)
                # no "and" of run-time booleans in this body: Numba's parfor alias analysis
                # takes the copies that "and" makes for array aliases, and then compiles the
                # body without noalias arrays; LLVM's run-time overlap check then sent every
                # in-place call to scalar code (9x slower)
                if track:
                    if in_place:
                        # the output overwrites the input: the chunk's smallest magnitude first
                        # (a read that leaves the chunk in L1 for the rounding pass)
                        for i in range(lo, hi):
                            lt = min(lt, np.uint32((_load_f32_bits(bits[i], src) & np.uint32(0x7FFFFFFF))
                                                   - np.uint32(1)))
                chunk_ties = 0
                deep_in_place = in_place & (lt < thr32)
                if deep_in_place:
                    # an element of this chunk drops more than 32 bits: the whole word, into a
                    # scratch first, so that a tie leaves the chunk's inputs for the caller's redo
                    # (a new array, not a view of out, which would be an alias too)
                    scratch = np.empty(np.int64(hi - lo), out.dtype)
                    z = z0
                    for i in range(lo, hi):
                        z += np.uint64(GAMMA)
                        b = _load_f32_bits(bits[i], src)
                        store(scratch, i - lo, sr_element(b, z, k, c, lean, nz, False, True, low), src)
                        chunk_ties += _f32_sr_tie_beyond_64(b, z, c, low)
                    if chunk_ties == 0:
                        for i in range(lo, hi):
                            out[i] = scratch[i - lo]
                else:
                    z = z0
                    for b0 in range(np.int64(lo), np.int64(hi), _PREFETCH_BLOCK):
                        for i in range(np.uint64(b0), _prefetched_block(bits, b0, np.int64(hi))):
                            z += np.uint64(GAMMA)
                            b = _load_f32_bits(bits[i], src)
                            store(out, i, sr_element(b, z, k, c, lean, nz, pass_rbits, pass_w64, low), src)
                            if track:       # (in place: the same smallest again; costs nothing)
                                lt = min(lt, np.uint32((b & np.uint32(0x7FFFFFFF)) - np.uint32(1)))
                    if lt < thr32:
                        # an element of this chunk drops more than 32 bits: redo it on the whole
                        # word (the input is intact: out is elsewhere), counting the ties
                        z = z0
                        for i in range(lo, hi):
                            z += np.uint64(GAMMA)
                            b = _load_f32_bits(bits[i], src)
                            store(out, i, sr_element(b, z, k, c, lean, nz, False, True, low), src)
                            chunk_ties += _f32_sr_tie_beyond_64(b, z, c, low)
                ties += chunk_ties
            return ties
        return sr_kernel

    @njit(cache=True, parallel=True)
    def code_kernel(bits, out, p32, key0):
        p = _p32_tuple(p32)
        c = _value_f32_consts(p, mode)
        cf = _value_f32_fadd_consts(p)
        k = _code_f32_consts(p)
        n = bits.shape[0]
        for t in prange((n + _SR_CHUNK - 1) // _SR_CHUNK):
            prefer_512_bit_vectors_converting(bits, out)
            lo = t * _SR_CHUNK
            hi = min(n, lo + _SR_CHUNK)
            for b0 in range(lo, hi, _PREFETCH_BLOCK):
                for i in range(np.uint64(b0), _prefetched_block(bits, b0, hi)):
                    b = _load_f32_bits(bits[i], src)
                    r = _value_f32_rne_mag(b, cf) if fadd else _value_f32_mag(b, c, mode, low)
                    out[i] = _code_of_value(r, _I32(b), k, lean, nz, low)
    return code_kernel


#: The deterministic mode codes of the float32 kernels: 0-4 (``MODE_CODES``) and nearest_even
#: by the code's parity (``MODE_NEAREST_EVEN_CODE``: m = 0, the CPU kernels only).
_DET_MODES = (0, 1, 2, 3, 4, MODE_NEAREST_EVEN_CODE)
#: Every table below is keyed by the input's ``src`` last.
#: (mode code in ``_DET_MODES``, lean, signed_zero, fadd) -> deterministic codes kernel (:func:`_code_of_value`
#: of :func:`_value_f32_mag`, or of :func:`_value_f32_rne_mag` with ``fadd``: nearest_even only).
_F32_CODES = {(mode, lean, sz, fadd, src): _f32_kernel(False, False, mode, False, lean, sz, fadd=fadd, src=src)
              for mode in _DET_MODES for lean in (False, True) for sz in (False, True)
              for fadd in ((False, True) if mode == 0 else (False,)) for src in _SOURCES}
#: (mode code in ``_DET_MODES``, lean, nz, src) -> deterministic value kernel (see :func:`_value_f32`).
_F32_VAL = {(mode, lean, nz, src): _f32_kernel(True, False, mode, False, lean, nz, src=src)
            for mode in _DET_MODES for lean in (False, True) for nz in (False, True) for src in _SOURCES}
#: (lean, nz) -> nearest_even value kernel by one float32 addition (:func:`_value_f32_rne`).
_F32_VAL_FADD = {(lean, nz, src): _f32_kernel(True, False, 0, False, lean, nz, fadd=True, src=src)
                 for lean in (False, True) for nz in (False, True) for src in _SOURCES}
#: (lean, nz) -> nearest_even value kernel with one shift count (:func:`_value_f32_rne_flat`).
_F32_VAL_FLAT = {(lean, nz, src): _f32_kernel(True, False, 0, False, lean, nz, flat=True, src=src)
                 for lean in (False, True) for nz in (False, True) for src in _SOURCES}
#: (kind, lean, signed_zero, src) -> stochastic codes kernel; kind as for ``_F32_VAL_SR``
#: (next), and every one takes ``thr32``.
_F32_CODES_SR = {(kind, lean, sz, src): _f32_kernel(False, True, 5, kind != "w64", lean, sz, kind == "rbits",
                                                    src=src)
                 for kind in ("hi32", "rbits", "w64") for lean in (False, True) for sz in (False, True)
                 for src in _SOURCES}
#: (kind, lean, nz) -> stochastic value kernel (:func:`_value_f32_sr`); kind: "hi32" (exact,
#: the word's high half; takes ``thr32``), "rbits" (r-bit SR; takes ``thr32``, 0), "w64"
#: (exact, the whole word).
_F32_VAL_SR = {(kind, lean, nz, src): _f32_kernel(True, True, 5, kind != "w64", lean, nz, kind == "rbits", src=src)
               for kind in ("hi32", "rbits", "w64") for lean in (False, True) for nz in (False, True)
               for src in _SOURCES}
#: The four tables above for formats with ``emin = -127`` (``low``; see :func:`_value_f32`):
#: same keys without ``fadd``.
_F32_CODES_LOW = {(mode, lean, sz, src): _f32_kernel(False, False, mode, False, lean, sz, src=src, low=True)
                  for mode in _DET_MODES for lean in (False, True) for sz in (False, True) for src in _SOURCES}
_F32_VAL_LOW = {(mode, lean, nz, src): _f32_kernel(True, False, mode, False, lean, nz, src=src, low=True)
                for mode in _DET_MODES for lean in (False, True) for nz in (False, True) for src in _SOURCES}
_F32_CODES_SR_LOW = {(kind, lean, sz, src): _f32_kernel(False, True, 5, kind != "w64", lean, sz, kind == "rbits",
                                                        src=src, low=True)
                     for kind in ("hi32", "rbits", "w64") for lean in (False, True) for sz in (False, True)
                     for src in _SOURCES}
_F32_VAL_SR_LOW = {(kind, lean, nz, src): _f32_kernel(True, True, 5, kind != "w64", lean, nz, kind == "rbits",
                                                      src=src, low=True)
                   for kind in ("hi32", "rbits", "w64") for lean in (False, True) for nz in (False, True)
                   for src in _SOURCES}


def _low(p) -> bool:
    """Whether the float32 tuple ``p``'s format has ``emin = -127`` (the ``low`` kernels)."""
    return int(p[1]) == -127


def _encode_f32_kernel(p, src=SRC_F32):
    """The compiled kernel that :func:`_encode_f32` runs for the float32 tuple ``p`` (with its
    values): nearest_even rounds by the float32 addition where it is valid (:func:`_fadd_ok`)."""
    mode = int(p[7])
    if _low(p):
        return _F32_CODES_LOW[(mode, *_code_variant(p), src)]
    return _F32_CODES[(mode, *_code_variant(p), mode == 0 and _fadd_ok(p), src)]


def _encode_f32(bits, out, p, key0, src=SRC_F32):
    """``out[i]`` = code of float32 pattern ``bits[i]``, deterministic modes (``p``'s mode);
    ``src`` as for :func:`_encode_f32_sr`."""
    _encode_f32_kernel(p, src)(bits, out, p32_array(p), key0)


def _sr_kind(p, hi32: bool) -> str:
    """The stochastic kernels' kind for the float32 tuple ``p``: ``"rbits"`` (r-bit SR, always
    decided by the word's high half), ``"hi32"`` (exact, by the high half) or ``"w64"``."""
    return "rbits" if p[8] else "hi32" if hi32 else "w64"


def _encode_f32_sr_kernel(p, src=SRC_F32, hi32=False):
    """The compiled kernel that :func:`_encode_f32_sr` runs; every kind takes
    ``(bits, out, p, key0, thr32)``."""
    return (_F32_CODES_SR_LOW if _low(p) else _F32_CODES_SR)[(_sr_kind(p, hi32), *_code_variant(p), src)]


def _encode_f32_sr(bits, out, p, key0, hi32=False, src=SRC_F32):
    """:func:`_encode_f32`, stochastic rounding (one random word per element); ``hi32``: the
    word's high half decides (valid for r-bit SR, which always takes it, and for exact SR when
    no nonzero element has more than 32 dropped bits: ``_count_f32_deep`` with the 32-bit limit
    is 0).  ``src``: ``bits`` holds float32, float16 or bfloat16 patterns (``SRC_*``)."""
    _encode_f32_sr_kernel(p, src, hi32)(bits, out, p32_array(p), key0, np.uint32(0), False)


def _encode_f32_sr_checked(bits, out, p, key0, thr32, src=SRC_F32):
    """:func:`_encode_f32_sr` for exact stochastic rounding of any array, in one pass that
    decides deep chunks on the whole word, as :func:`_quantize_f32_sr_checked` (same ``thr32``,
    same return value; out of place only)."""
    return int(_encode_f32_sr_kernel(p, src, True)(bits, out, p32_array(p), key0, np.uint32(thr32), False))


def _value_variant(p):
    """``_F32_VAL``'s key for the float32 tuple ``p``: (mode, lean, nz) of :func:`_value_f32`."""
    lean = bool(p[5]) and p[17] == p[19] and p[18] == p[20]      # signed; +-Inf -> the overflow values
    return int(p[7]), lean, bool(p[6])


def _quantize_f32_kernel(p, src=SRC_F32):
    """The compiled kernel that :func:`_quantize_f32` runs for the float32 tuple ``p`` (callers
    that round many arrays with one ``p`` look it up once): nearest-even takes the
    float32-addition kernel where it is valid (:func:`_fadd_ok`): 19 instructions per
    8 elements on AVX2 against 40 with spills (benchmarks/kernel_asm.py); formats with
    float32's ``emin`` (bfloat16) the one-shift-count kernel (:func:`_value_f32_rne_flat`)."""
    mode, lean, nz = _value_variant(p)
    if _low(p):
        return _F32_VAL_LOW[mode, lean, nz, src]
    if mode == 0 and _fadd_ok(p):
        return _F32_VAL_FADD[lean, nz, src]
    if mode == 0 and _flat_ok(p):
        return _F32_VAL_FLAT[lean, nz, src]
    return _F32_VAL[mode, lean, nz, src]


def _quantize_f32(bits, out, p, key0, src=SRC_F32):
    """``out[i]`` = float32 pattern of the rounded value of ``bits[i]``, deterministic modes
    (also valid where only :func:`_value_f32` is: q a float32 subnormal), by the kernel of
    :func:`_quantize_f32_kernel`."""
    _quantize_f32_kernel(p, src)(bits, out, p32_array(p), key0)


def _quantize_f32_sr_kernel(p, src=SRC_F32, hi32=False):
    """The compiled kernel that :func:`_quantize_f32_sr` runs: kinds ``"rbits"`` and ``"hi32"``
    take ``(bits, out, p, key0, thr32, in_place)`` (and return the ties, see
    :func:`_quantize_f32_sr_checked`), ``"w64"`` takes ``(bits, out, p, key0)``."""
    _, lean, nz = _value_variant(p)
    return (_F32_VAL_SR_LOW if _low(p) else _F32_VAL_SR)[_sr_kind(p, hi32), lean, nz, src]


def _quantize_f32_sr(bits, out, p, key0, hi32=False, src=SRC_F32):
    """:func:`_quantize_f32`, stochastic rounding; ``hi32`` and ``src`` as for
    :func:`_encode_f32_sr` (``out`` holds ``src``'s patterns too)."""
    kernel = _quantize_f32_sr_kernel(p, src, hi32)
    if _sr_kind(p, hi32) == "w64":
        kernel(bits, out, p32_array(p), key0)
    else:
        kernel(bits, out, p32_array(p), key0, np.uint32(0), False)


def _quantize_f32_sr_checked(bits, out, p, key0, thr32, src=SRC_F32, in_place=False):
    """:func:`_quantize_f32` for exact stochastic rounding of any float32 array; ``out`` is
    apart from ``bits``, or with ``in_place`` the same array.

    Decides by the random word's high half, and on the whole word each chunk of ``_SR_CHUNK``
    elements with a nonzero magnitude pattern below ``thr32 + 1`` (``_deep_limit(fmt, 32)``:
    more than 32 dropped bits).  Returns how many elements dropped more than 64 bits and drew a
    first word equal to their first 64 with more following (:func:`_f32_sr_tie_beyond_64`):
    when nonzero, ``out`` is not valid at them (the caller reruns the generic kernel, which
    draws further words; in place their chunks keep their inputs).  ``src`` as for
    :func:`_quantize_f32_sr` (the magnitudes are those of the float32 bits).
    """
    return int(_quantize_f32_sr_kernel(p, src, True)(bits, out, p32_array(p), key0, np.uint32(thr32), in_place))


#: Calls on fewer elements than this run on one thread: the parallel loop's fork and join cost
#: about 10 us, as long as one thread takes for some 40 K elements (measured on the 2-core
#: Zen 4: quantize of 65536 float32 took 39 us on 1 thread, 49 us on 2).
SERIAL_BELOW = 1 << 17


@lru_cache(maxsize=1)
def thread_count_functions():
    """(get, set) for the calling thread's Numba thread count, found on first use.

    The threading layer's own functions, where this Numba exposes them once its threads are
    launched: 0.1 and 0.26 us a call against 0.7 and 0.95 us for ``numba.get_num_threads`` and
    ``numba.set_num_threads``, which take a lock and check the argument on every call (Intel CI
    host).  Small calls switch the count twice each, so this is most of a 16-element
    ``quantize``'s thread switch.  Both reach the same per-thread count."""
    numba.get_num_threads()         # launches the threads (once), so the layer's functions are bound
    from numba.np.ufunc import parallel
    get, set_ = getattr(parallel, "_get_num_threads", None), getattr(parallel, "_set_num_threads", None)
    if callable(get) and callable(set_) and get() == numba.get_num_threads():
        return get, set_
    return numba.get_num_threads, numba.set_num_threads


#: Parallel kernels and their serial twins (:func:`serial_twin`).
_SERIAL_TWINS: dict = {}

#: Parallel kernels whose serial twins compile with ``noalias`` arrays (:func:`noalias_twin`).
_NOALIAS_TWINS: set = set()


class _NoAliasCompiler(_FunctionCompiler):
    """Numba's function compiler with its ``noalias`` flag set: every pointer argument of the
    compiled function (an array's data among them) is ``noalias`` in LLVM, as Numba gives a
    ``prange`` body whose arrays its alias analysis finds apart."""

    def _customize_flags(self, flags):
        flags.noalias = True
        return flags


class _NoAliasDispatcher(CPUDispatcher):
    """An ``njit`` dispatcher that compiles with :class:`_NoAliasCompiler`.  Numba has no public
    option for the flag; its dispatcher builds a ``_FunctionCompiler`` and lets a subclass of it
    change the flags (``_customize_flags``), so this swaps the compiler right after the build.
    ``tests/test_kernels.py`` checks the compiled code has the ``noalias`` arguments, so that a
    Numba that changes this is noticed."""

    def __init__(self, py_func, locals=None, targetoptions=None, pipeline_class=_nb_compiler.Compiler):
        super().__init__(py_func, locals, targetoptions, pipeline_class)
        c = self._compiler
        self._compiler = _NoAliasCompiler(c.py_func, c.targetdescr, c.targetoptions, c.locals, c.pipeline_class)


def noalias_twin(kernel):
    """Mark ``kernel``'s serial twin (:func:`serial_twin`) to compile with ``noalias`` arrays;
    returns ``kernel``.

    For kernels that gather from tables at data-dependent indices and store into the output:
    without ``noalias`` LLVM cannot prove a store leaves the tables and the input alone, and
    keeps the twin's loop scalar ("loop not vectorized: cannot identify array bounds"), while
    Numba compiles the parallel kernel's ``prange`` body with ``noalias`` (its alias analysis
    finds none among the arrays), and that one vectorises.  The twin then makes the parallel
    kernel's own assumption, which the callers keep: an output apart from the input or the
    input itself (in place), where each element's load comes before its own store and no
    other element's, so reordering loads and stores of different elements changes nothing;
    tables that nothing writes."""
    if kernel in _SERIAL_TWINS and kernel not in _NOALIAS_TWINS:
        raise RuntimeError(f"{kernel.py_func.__qualname__}: its serial twin was built already")
    _NOALIAS_TWINS.add(kernel)
    return kernel


# The per-element kernels' twins (calls below SERIAL_BELOW that no table or float32 kernel
# takes): each element's output depends on its input alone, and they gather from a table of
# values or codes (``lut``, ``d``) that nothing writes.  Without ``noalias`` the twin of
# float64 RNE (_quantize_fast) ran 21-33 % slower per element than its parallel kernel.
for _kernel in (_encode_generic, _quantize_generic, _encode_fast, _encode_fast_sr, _quantize_fast,
                _quantize_fast_sr):
    noalias_twin(_kernel)
# The float32 kernels' twins: in place (quantize(x, out=x), the optimizer's master-weight
# write-back) the input and the output are one array, which LLVM's run-time overlap check
# sends to the scalar loop: their twins ran 7-20x slower in place than out of place (65536
# float32 elements, Intel CI host), while their parallel kernels' bodies have noalias arrays.
# Each element's load comes before its own store; a chunk read again after its stores (exact
# SR's redo) is out of place only, where the chunk is rounded in place through a scratch.
for _table in (_F32_CODES, _F32_VAL, _F32_VAL_FADD, _F32_VAL_FLAT, _F32_CODES_SR, _F32_VAL_SR, _F32_CODES_LOW,
               _F32_VAL_LOW, _F32_CODES_SR_LOW, _F32_VAL_SR_LOW):
    for _kernel in _table.values():
        noalias_twin(_kernel)
del _kernel, _table


def serial_twin(kernel):
    """The serial twin of a ``parallel=True`` Numba kernel: the same Python function compiled
    without ``parallel`` (``prange`` is then ``range``), for calls below :data:`SERIAL_BELOW`.

    A parallel kernel launches its loop through Numba's threading layer even on one thread:
    about 5-6 us a call on a Zen 3, as long as its loop takes for some 10 K float32 elements,
    and half of a 16-element ``quantize``.  The twin runs the same loop body in the caller's
    thread.  Same bits: the body is the same code, integer operations and float32 additions
    that are never reassociated (no fast-math flags), and each element's result depends on
    nothing but its index (the stochastic kernels' counters are functions of the index), so
    the order of the iterations does not matter; ``tests/test_kernels.py`` holds each twin that
    the package uses to its parallel kernel.  Kernels marked by :func:`noalias_twin` get a twin
    with ``noalias`` arrays.

    The twin gets its own qualified name (``..._serial``, ``..._serial_noalias``), so Numba's
    on-disk cache keeps its code apart from the parallel kernel's (the cache's key has the
    function's code and closure but not the ``parallel`` or ``noalias`` flags).  Other objects
    than parallel Numba kernels are returned as they are."""
    twin = _SERIAL_TWINS.get(kernel)
    if twin is not None:
        return twin
    options = getattr(kernel, "targetoptions", None)
    if not (isinstance(kernel, CPUDispatcher) and options and options.get("parallel")):
        return kernel
    noalias = kernel in _NOALIAS_TWINS
    suffix = "_serial_noalias" if noalias else "_serial"
    f = kernel.py_func
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + suffix, f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + suffix
    g.__module__, g.__doc__ = f.__module__, f.__doc__
    options = {k: v for k, v in options.items() if k not in ("parallel", "nopython")}
    if noalias:
        twin = _NoAliasDispatcher(g, targetoptions={**options, "nopython": True})
        if isinstance(kernel._cache, FunctionCache):
            twin.enable_caching()
    else:
        twin = njit(cache=isinstance(kernel._cache, FunctionCache), **options)(g)
    _SERIAL_TWINS[kernel] = twin        # a race builds two equal twins; either is kept
    return twin


def sized(kernel, n: int):
    """``kernel`` for a call on ``n`` elements: its serial twin below :data:`SERIAL_BELOW`."""
    return kernel if n >= SERIAL_BELOW else serial_twin(kernel)


def one_thread_below(n: int, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on one Numba thread when ``n < SERIAL_BELOW``, else on the
    current count (restored afterwards).  A parallel Numba kernel runs as its serial twin
    there (:func:`serial_twin`); anything else (Python code that calls kernels) with the
    thread count set to one."""
    if n >= SERIAL_BELOW:
        return fn(*args, **kwargs)
    twin = serial_twin(fn)
    if twin is not fn:
        return twin(*args, **kwargs)
    get, set_ = thread_count_functions()
    prev = get()
    if prev == 1:
        return fn(*args, **kwargs)
    set_(1)
    try:
        return fn(*args, **kwargs)
    finally:
        set_(prev)


@njit(cache=True, parallel=True)
def _min_f32_mag(bits):
    """The smallest ``(bits[i] & 0x7FFFFFFF) - 1`` mod 2^32 (zeros wrap to 2^32 - 1): one read
    pass that tells whether a nonzero element is below :func:`_count_f32_deep`'s limits
    (it is below ``limit - 1`` exactly when that count is nonzero)."""
    low = np.uint32(0xFFFFFFFF)
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, bits)
        low = min(low, np.uint32((bits[i] & np.uint32(0x7FFFFFFF)) - np.uint32(1)))
    return low


@njit(cache=True, parallel=True)
def _min_mag16(bits):
    """The smallest ``(bits[i] & 0x7FFF) - 1`` mod 2^16 of float16 or bfloat16 patterns (zeros
    wrap to 2^16 - 1).  Both conversions to float32 keep the order of magnitudes, so the
    float32 pattern of this plus one is the smallest nonzero magnitude that
    :func:`_min_f32_mag` would find in the converted array."""
    low = np.uint16(0xFFFF)
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, bits)
        low = min(low, np.uint16(np.uint16(bits[i] & np.uint16(0x7FFF)) - np.uint16(1)))
    return low


@njit(cache=True, parallel=True)
def _count_f32_deep(bits, limit):
    """How many patterns have ``0 < |x| bits < limit``: the elements whose exact stochastic
    rounding may need more than one 64-bit random word (more than 64 dropped bits)."""
    n = 0
    lim = np.uint32(limit - 1)
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, bits)
        n += np.int64(((bits[i] & np.uint32(0x7FFFFFFF)) - np.uint32(1)) < lim)    # 0 wraps to 2^32 - 1
    return n


@noalias_twin
@njit(cache=True, parallel=True)
def _decode(codes, out, lut):
    """``out[i] = lut[codes[i]]`` (codes already validated by the wrapper; ``out`` apart from
    ``codes`` or over them element for element: ``quantize._direct_target``)."""
    for i in prange(codes.shape[0]):
        prefer_512_bit_vectors(codes, out)
        keep_gathers_scalar(codes, out)
        out[i] = lut[codes[i]]



def _lookup_sticky_kernel(shift: int, width: int = 32):
    """The compiled lookup of float32 (``width`` 32) or float64 (64) patterns by their class,
    for ``shift`` low bits: ``kernel(bits, out, table)`` sets ``out[i] = table[c]``, ``c`` the
    class of ``bits[i]``, its top ``width - shift`` bits and whether any of its low ``shift``
    bits is set (``quantize._class_bits`` says how many top bits decide a deterministic
    rounding)::

        bits[i] = | s | exponent (8 or 11) | fraction, top bits | fraction, low ``shift`` bits |
        c       = | s | exponent (8 or 11) | fraction, top bits | any low bit set             |

    ``c = (b >> shift) << 1 | sticky``; the table's ``2^(width + 1 - shift)`` entries: 8-16 KiB
    of float32 for e8m0fnu and binary8p1 (``shift`` 21-22), 512 KiB at most (``shift`` 16; L2).
    One kernel per ``shift``, a constant in its loop: a shift by a variable made LLVM run the
    float32 loop in 64-bit lanes (``vpsrlvq``, ``vpgatherqd``) and took 1.7x the time for codes.
    Made on first use (each compiles once, then Numba's cache on disk keeps it)."""
    return _make_lookup_sticky(shift, width)


@lru_cache(maxsize=None)
def _make_lookup_sticky(shift: int, width: int):
    if width == 32:
        low = np.uint32((1 << shift) - 1)
        sh = np.uint32(shift)

        @njit(cache=True, parallel=True)
        def lookup_f32_sticky(bits, out, table):
            for i in prange(bits.shape[0]):
                prefer_512_bit_vectors(bits, out)
                keep_gathers_scalar(bits, out)
                b = np.uint32(bits[i])
                c = np.uint32(np.uint32(b >> sh) << np.uint32(1))
                out[i] = table[c | np.uint32(np.uint32(b & low) != np.uint32(0))]
        return noalias_twin(lookup_f32_sticky)
    low64 = np.uint64((1 << shift) - 1)
    sh64 = np.uint64(shift)

    @njit(cache=True, parallel=True)
    def lookup_f64_sticky(bits, out, table):
        for i in prange(bits.shape[0]):
            prefer_512_bit_vectors(bits, out)
            keep_gathers_scalar(bits, out)
            b = np.uint64(bits[i])
            c = np.uint64(np.uint64(b >> sh64) << np.uint64(1))
            out[i] = table[c | np.uint64(np.uint64(b & low64) != np.uint64(0))]
    return noalias_twin(lookup_f64_sticky)


def _lookup_sticky(bits, out, table, shift: int) -> None:
    """``out[i]`` = ``table`` at the class of ``bits[i]`` for ``shift`` low bits
    (:func:`_lookup_sticky_kernel`; float32 or float64 by ``bits``' width; the serial twin
    below :data:`SERIAL_BELOW` elements)."""
    sized(_lookup_sticky_kernel(int(shift), bits.dtype.itemsize * 8), bits.size)(bits, out, table)


@njit(cache=True, inline="always")
def _sr_table_chunk(t, n, key0):
    """Chunk ``t`` of the SR-by-table kernels: its elements ``[lo, hi)`` (unsigned: see
    ``_SR_CHUNK``) and the Weyl counter before its first element."""
    lo = np.uint64(t * _SR_CHUNK)
    hi = np.uint64(min(n, t * _SR_CHUNK + _SR_CHUNK))
    return lo, hi, key0 + lo * np.uint64(GAMMA)


@njit(cache=True, inline="always")
def _r_bits_shift(r, rbits):
    """``(32 - r, 2^r - 1)`` for ``r``-bit SR (1 <= r <= 32), ``(0, 2^32 - 1)`` otherwise."""
    r_shift = np.uint32(32 - r) if rbits else np.uint32(0)
    return r_shift, np.uint32(np.uint32(0xFFFFFFFF) >> r_shift)


@njit(cache=True, inline="always")
def _away32(wh, f, r_shift, r_mask, rbits):
    """Round away: the word's high half ``wh`` below the fraction's first 32 bits ``f`` (exact
    SR where the fraction has no more bits), or with ``rbits`` the top ``r`` bits of both carry."""
    if rbits:
        return (wh >> r_shift) > (~(f >> r_shift) & r_mask)
    return wh < f


def _sr_class_kernel(shift: int, kind: str, src: int = SRC_F32, width: int = 32):
    """The compiled stochastic rounding of float32 patterns by their class (the classes of
    :func:`_lookup_sticky_kernel` for ``shift`` low bits), for formats the float32 kernels
    do not take (``quantize._class_bits`` says when a class fixes the interval)::

        kernel(bits, out, lo, hi, shifts, key0, r) -> ties

    Each class ``c`` lies in one interval ``[L, U)`` of the format's neighbouring magnitudes:
    ``lo[c]`` and ``hi[c]`` are the results of rounding toward ``L`` and away to ``U`` (the
    generic kernel's own, overflow and specials included; equal where nothing is dropped).  The
    quantum ``U - L`` spans ``d`` low bits of the input's significand ``sig``::

        bits[i] = | s | E (8) | T (23) |         sig = T | (E != 0) << 23   (24 bits)
        |x| = L + (sig mod 2^d) * 2^(E' - 150),  E' = max(E, 1),  quantum 2^(d + E' - 150)

    and the dropped fraction ``(sig mod 2^d) / 2^d``, left-aligned in a word of ``W`` bits
    (``W`` = 32, or 64 for ``"w64"``), is ``F = ((sig << a) >> b) mod 2^W`` with the class's
    two shift counts ``shifts[c] = a | b << 8``::

        d <= W:  a = W - d, b = 0          sig's d low bits moved to the top, its kept bits
                                           shifted out past bit W - 1
        d >  W:  a = 0,     b = d - W      (at most W - 1: sig < 2^24 is gone by then)

    (one pair of variable shifts, no compare and select per element).  The element rounds away
    when its word ``w = mix64(key0 + (i + 1) * GAMMA)`` is below the fraction, as
    ``_round_bits`` decides it (``r``-bit SR: the word's top ``r`` bits plus the fraction's top
    ``r`` bits carry).  ``kind``:

    * ``"hi32"``: exact SR where no class drops more than 32 bits; the 64-bit fraction's low
      half is then zero, so ``w < frac`` is ``w >> 32 < F`` (32-bit lanes);
    * ``"rbits"``: ``r``-bit SR (``r <= 32``) on the word's high half, any ``d``;
    * ``"w64"``: exact SR on the whole word; returns how many elements drop more than 64 bits
      (``b > 0``) and drew a word equal to their first 64 (probability 2^-64 each): the caller
      then redoes the call on the generic kernel, which draws further words.

    ``src``: ``bits`` holds float32, float16 or bfloat16 patterns (converted to float32 bits in
    the loop, exactly); ``out`` has the tables' dtype.  ``width`` 64: ``bits`` holds float64
    patterns (``src`` unused), ``sig = T | (E != 0) << 52`` (53 bits) and the fraction is
    always aligned in 64 bits (``a``, ``b`` for ``W`` = 64), the 32-bit kinds taking its top
    half (a 53-bit ``sig`` is not gone after a right shift by 31).  Made on first use, one
    kernel per ``(shift, kind, src, width)``: the shift a constant (see
    :func:`_lookup_sticky_kernel`)."""
    if width == 64:
        return _make_sr_class64(int(shift), kind)
    return _make_sr_class(int(shift), kind, int(src))


@lru_cache(maxsize=None)
def _make_sr_class(shift: int, kind: str, src: int):
    low = np.uint32((1 << shift) - 1)
    sh = np.uint32(shift)
    whole_word = kind == "w64"
    rbits = kind == "rbits"

    @njit(cache=True, parallel=True)
    def sr_class(bits, out, lo_table, hi_table, shifts, key0, r):
        n = bits.shape[0]
        ties = 0
        r_shift, r_mask = _r_bits_shift(r, rbits)
        for t in prange((n + _SR_CHUNK - 1) // _SR_CHUNK):
            prefer_512_bit_vectors_converting(bits, out)
            lo, hi, z = _sr_table_chunk(t, n, key0)
            chunk_ties = 0
            for b0 in range(np.int64(lo), np.int64(hi), _PREFETCH_BLOCK):
                for i in range(np.uint64(b0), _prefetched_block(bits, b0, np.int64(hi))):
                    z += np.uint64(GAMMA)
                    b = _load_f32_bits(bits[i], src)
                    c = np.uint32(np.uint32(b >> sh) << np.uint32(1)) | np.uint32(np.uint32(b & low) != np.uint32(0))
                    ab = np.uint32(shifts[c])
                    a = ab & np.uint32(0xFF)
                    bb = ab >> np.uint32(8)
                    sig = (b & np.uint32(0x7FFFFF)) | (np.uint32(0x800000) if (b & np.uint32(0x7F800000)) != 0
                                                       else np.uint32(0))
                    if whole_word:
                        w = mix64(z)
                        frac = (np.uint64(sig) << np.uint64(a)) >> np.uint64(bb)
                        away = w < frac
                        chunk_ties += np.int64((w == frac) & (bb != np.uint32(0)))
                    else:
                        wh = mix64_hi(z)
                        away = _away32(wh, np.uint32(np.uint32(sig << a) >> bb), r_shift, r_mask, rbits)
                    # both loads, then a select: a load under the condition kept the loop scalar
                    up = hi_table[c]
                    down = lo_table[c]
                    out[i] = up if away else down
            ties += chunk_ties
        return ties
    return noalias_twin(sr_class)


@lru_cache(maxsize=None)
def _make_sr_class64(shift: int, kind: str):
    # float64's own loop, beside _make_sr_class's rather than one loop for both widths: the
    # shared form (the parts of an element and the fraction's top half chosen per width, as
    # inline helpers or by a branch on a constant) ran the float32 r-bit loop 6-20 % slower
    # (encode into uint8, 4 M elements, Zen 3), so the float32 loop stays as it was measured
    low = np.uint64((1 << shift) - 1)
    sh = np.uint64(shift)
    whole_word = kind == "w64"
    rbits = kind == "rbits"

    @njit(cache=True, parallel=True)
    def sr_class64(bits, out, lo_table, hi_table, shifts, key0, r):
        n = bits.shape[0]
        ties = 0
        r_shift, r_mask = _r_bits_shift(r, rbits)
        for t in prange((n + _SR_CHUNK - 1) // _SR_CHUNK):
            prefer_512_bit_vectors(bits, out)
            lo, hi, z = _sr_table_chunk(t, n, key0)
            chunk_ties = 0
            for b0 in range(np.int64(lo), np.int64(hi), _PREFETCH_BLOCK):
                for i in range(np.uint64(b0), _prefetched_block(bits, b0, np.int64(hi))):
                    z += np.uint64(GAMMA)
                    b = np.uint64(bits[i])
                    c = np.uint64(np.uint64(b >> sh) << np.uint64(1)) | np.uint64(np.uint64(b & low) != np.uint64(0))
                    ab = np.uint64(shifts[c])
                    a = ab & np.uint64(0xFF)
                    bb = ab >> np.uint64(8)
                    sig = (b & np.uint64(0xFFFFFFFFFFFFF)) | (np.uint64(1 << 52) if (b & np.uint64(0x7FF0000000000000)) != 0
                                                             else np.uint64(0))
                    frac = (sig << a) >> bb
                    if whole_word:
                        w = mix64(z)
                        away = w < frac
                        chunk_ties += np.int64((w == frac) & (bb != np.uint64(0)))
                    else:
                        away = _away32(mix64_hi(z), np.uint32(frac >> np.uint64(32)), r_shift, r_mask, rbits)
                    # both loads, then a select (see _make_sr_class)
                    up = hi_table[c]
                    down = lo_table[c]
                    out[i] = up if away else down
            ties += chunk_ties
        return ties
    return noalias_twin(sr_class64)


def _sr_pattern16_kernel(rbits: bool):
    """The compiled stochastic rounding of 16-bit inputs by their pattern, for formats the
    float32 kernels do not take::

        kernel(bits, out, lo, hi, frac, key0, r)

    Per pattern ``c`` (all 2^16, ``quantize._sr_pattern16_tables``): ``lo[c]`` and ``hi[c]``,
    the generic kernel's results toward zero and away from it, and ``frac[c]``, the dropped
    fraction's first 32 bits (``floor(fraction * 2^32)``).  The element rounds away when the
    high half of its word ``mix64(key0 + (i + 1) * GAMMA)`` is below ``frac[c]`` (exact where
    every pattern's fraction has at most 32 bits: the word's low half cannot matter), or with
    ``rbits``, when its top ``r`` bits and the fraction's carry (``_round_bits``).  Three loads
    per element and the hash: no conversion of the input, no shifts."""
    return _make_sr_pattern16(bool(rbits))


@lru_cache(maxsize=None)
def _make_sr_pattern16(rbits: bool):
    @njit(cache=True, parallel=True)
    def sr_pattern16(bits, out, lo_table, hi_table, frac, key0, r):
        n = bits.shape[0]
        r_shift, r_mask = _r_bits_shift(r, rbits)
        for t in prange((n + _SR_CHUNK - 1) // _SR_CHUNK):
            prefer_512_bit_vectors_converting(bits, out)
            lo, hi, z = _sr_table_chunk(t, n, key0)
            for i in range(lo, hi):
                z += np.uint64(GAMMA)
                c = bits[i]
                away = _away32(mix64_hi(z), frac[c], r_shift, r_mask, rbits)
                up = hi_table[c]            # both loads, then a select (see _make_sr_class)
                down = lo_table[c]
                out[i] = up if away else down
    return noalias_twin(sr_pattern16)


@njit(cache=True, parallel=True)
def _copy_f32_finite(bits, out, specials):
    """``out[i] = bits[i]`` for a finite float32 pattern (rounding into a format that holds every
    float32 value changes none), else ``specials[2 * nan + sign]``: +Inf, -Inf, +NaN, -NaN's
    results (a NaN's payload does not matter)::

        bits[i] = | sign | exponent (8) | fraction (23) |    finite: exponent != 0xFF
    """
    # four selects on constants, no table load in the loop: LLVM vectorises it branch-free
    p_inf, n_inf, p_nan, n_nan = (np.uint32(specials[0]), np.uint32(specials[1]), np.uint32(specials[2]),
                                  np.uint32(specials[3]))
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, out)
        b = np.uint32(bits[i])
        a = b & np.uint32(0x7FFFFFFF)
        neg = b > np.uint32(0x7FFFFFFF)
        special = (n_nan if neg else p_nan) if a > np.uint32(0x7F800000) else (n_inf if neg else p_inf)
        out[i] = b if a < np.uint32(0x7F800000) else special

# ---- formats wider than 16 bits: values computed from the code, no table -------------------------
#: :func:`_value_bits`' parameter tuple ``d`` (all int64): the format's fields, its special codes
#: (-1 where absent) and the output float layout (width, fraction bits, bias).
DECODE_PARAMS = ("m", "bias", "subnormals", "has_zero", "sign_mask", "nan_code", "nan_mag", "inf_mag",
                 "out_w", "out_m", "out_bias")


@njit(cache=True, inline="always")
def _value_bits(c, d):
    """The output float's bit pattern of code ``c`` (exact: the wrapper checked that the
    output format holds every value).  NaN codes give the positive quiet NaN.

    A code is ``| S | E (w bits) | T (m bits) |``; its value is ``sig * 2^ex`` with
    ``sig = 2^m + T, ex = E - bias - m`` (normal) or ``sig = T, ex = 1 - bias - m`` (E = 0 with
    zero and subnormals).  The output pattern is built like the code, from the top bit ``n``
    of ``sig``::

        e = ex + n >= 1 - out_bias:  ((e + out_bias) << out_m) + (sig << (out_m - n)) - 2^out_m
        else (output subnormal):     sig << (ex - (1 - out_bias - out_m))
    """
    (m, bias, subnormals, has_zero, sign_mask, nan_code, nan_mag, inf_mag, out_w, out_m, out_bias) = d
    c = np.int64(c)
    s = np.uint64(1) if (c & sign_mask) != 0 else np.uint64(0)
    mag = c & ~sign_mask
    out_exp_ones = (np.int64(1) << (out_w - 1 - out_m)) - 1
    if c == nan_code or mag == nan_mag or (inf_mag >= 0 and mag > inf_mag):
        return np.uint64((out_exp_ones << out_m) | (np.int64(1) << (out_m - 1)))
    top = np.uint64(out_w - 1)
    if mag == inf_mag:
        return np.uint64(out_exp_ones << out_m) | (s << top)
    E = mag >> m
    T = mag & ((np.int64(1) << m) - 1)
    if E == 0 and has_zero:
        sig = T if subnormals else np.int64(0)
        ex = 1 - bias - m
    else:
        sig = T | (np.int64(1) << m)
        ex = E - bias - m
    if sig == 0:
        # nan_code >= 0 marks fnuz / signed extended (the NaN is the negative-zero code): no -0
        # there, so a sign-set zero code (non-canonical, without subnormals) is +0
        return s << top if nan_code < 0 else np.uint64(0)
    n = 0
    while (sig >> (n + 1)) != 0:
        n += 1
    e = ex + n
    if e >= 1 - out_bias:
        r = ((e + out_bias) << out_m) + (sig << (out_m - n)) - (np.int64(1) << out_m)
    else:
        r = sig << (ex - (1 - out_bias - out_m))
    return np.uint64(r) | (s << top)


@njit(cache=True, parallel=True)
def _decode_wide(codes, out, d):
    """``out[i]`` = output float bits of ``codes[i]`` (codes already validated by the wrapper)."""
    for i in prange(codes.shape[0]):
        prefer_512_bit_vectors(codes, out)
        out[i] = _value_bits(codes[i], d)


@noalias_twin           # a per-element kernel, as those marked above
@njit(cache=True, parallel=True)
def _quantize_wide(bits, out, d, prm, key_base, key0):
    """:func:`_quantize_generic` without a table: the value is built from the code."""
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, out)
        out[i] = _value_bits(_round_bits(bits[i], i, prm, key_base, key0), d)
