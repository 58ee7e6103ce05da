"""Numba kernels: integer bit manipulation only (no float arithmetic, no fastmath).

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

A carry out of ``k`` (all ones + 1) moves into the next binade by itself, because the code
is ``((max(e, emin) - emin + has_zero) << m) + k - 2^m`` (normal) or ``k`` (subnormal): both
are monotone in the value.  Overflow is ``code > max_code`` *after* rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._random import GAMMA, mix64

__all__ = ["MODE_CODES", "SPECIAL_SLOTS", "_round_bits", "_encode", "_quantize", "_decode"]

#: RoundMode value -> the integer the kernels switch on.
MODE_CODES = {"nearest_even": 0, "nearest_away": 1, "toward_zero": 2, "up": 3, "down": 4, "stochastic": 5}
#: Slots of the ``spc`` table of precomputed outcome codes.
SPECIAL_SLOTS = ("nan", "pos_inf", "neg_inf", "pos_zero", "neg_zero", "neg_unsigned", "pos_ovf", "neg_ovf")
_NAN, _PINF, _NINF, _PZERO, _NZERO, _NEGU, _POVF, _NOVF = range(8)


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
def _sr_away(sig, sh, rem, i, keys, sr_bits):
    """Stochastic decision for element ``i``: True with probability ``rem / 2^sh`` (exact mode)
    or ``floor(rem * 2^r / 2^sh) / 2^r`` (``sr_bits = r``)."""
    if rem == 0:
        return False
    ctr = np.uint64(i + 1) * np.uint64(GAMMA)
    w = mix64(keys[0] + ctr)
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
        w = mix64(keys[j] + ctr)
        c = _sr_chunk(sig, sh, j)
    return w < c


@njit(cache=True)
def _round_bits(b, i, in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz, signed,
                sign_mask, max_mag, spc, mode, sr_bits, keys):
    """Code of one input bit pattern ``b`` (element index ``i``, used only by SR)."""
    ub = np.uint64(b)
    s = np.int64((ub >> np.uint64(in_w - 1)) & np.uint64(1))
    a = np.int64(ub & ((np.uint64(1) << np.uint64(in_w - 1)) - np.uint64(1)))
    E = a >> in_m
    T = a & ((np.int64(1) << in_m) - 1)
    if E == (np.int64(1) << (in_w - 1 - in_m)) - 1:          # Inf or NaN
        if T != 0:
            return spc[_NAN]
        return spc[_NINF] if s else spc[_PINF]
    if s == 1 and signed == 0 and a != 0:
        return spc[_NEGU]
    if a == 0:
        return spc[_NZERO] if s else spc[_PZERO]
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
    if mode == 0:
        away = rem > half or (rem == half and (k & 1) == 1)
    elif mode == 1:
        away = rem >= half
    elif mode == 2:
        away = False
    elif mode == 3:
        away = rem != 0 and s == 0
    elif mode == 4:
        away = rem != 0 and s == 1
    else:
        away = _sr_away(sig, sh, rem, i, keys, sr_bits)
    if away:
        k += 1
    if e >= emin:
        mag = ((e - emin + has_zero) << m) + k - (np.int64(1) << m)
    elif subnormals:
        mag = k
    else:
        mag = (k << m) if has_zero else 0
    if mag > max_mag:
        return spc[_NOVF] if s else spc[_POVF]
    if mag == 0 and fnuz:
        return np.int64(0)
    return mag | (sign_mask if s else 0)


@njit(cache=True, parallel=True)
def _encode(bits, out, in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz, signed,
            sign_mask, max_mag, spc, mode, sr_bits, keys):
    """``out[i] = code of bits[i]`` for 1-d C-contiguous arrays."""
    for i in prange(bits.shape[0]):
        out[i] = _round_bits(bits[i], i, in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz,
                             signed, sign_mask, max_mag, spc, mode, sr_bits, keys)


@njit(cache=True, parallel=True)
def _quantize(bits, out, lut, in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz, signed,
              sign_mask, max_mag, spc, mode, sr_bits, keys):
    """``out[i] = lut[code of bits[i]]``: encode and decode fused (no code temporary)."""
    for i in prange(bits.shape[0]):
        out[i] = lut[_round_bits(bits[i], i, in_w, in_m, in_bias, pad, m, emin, subnormals, has_zero, fnuz,
                                 signed, sign_mask, max_mag, spc, mode, sr_bits, keys)]


@njit(cache=True, parallel=True)
def _decode(codes, out, lut):
    """``out[i] = lut[codes[i]]`` (codes already validated by the wrapper)."""
    for i in prange(codes.shape[0]):
        out[i] = lut[codes[i]]
