"""Counter-based random bits for stochastic rounding: a pure function of (seed, stream, i, j).

Element ``i`` (C-order index of the logical array) of a call keyed by ``(seed, stream)``
gets the 64-bit words ``word(i, 0), word(i, 1), ...``; most elements use only word 0 (see
``docs/rounding.md``).  Because a word depends on nothing but its coordinates, results are
identical on 1 or 2 threads and under any chunking, and no generator state is shared.

The generator is SplitMix64 (Steele, Lea, Flood 2014; constants of Vigna's ``splitmix64.c``)
used as a hash of a Weyl counter::

    key_j      = mix64(mix64(mix64(seed) ^ mix64(stream + GAMMA)) + (j + 1) * GAMMA)
    word(i, j) = mix64(key_j + (i + 1) * GAMMA)                     (all mod 2^64)

``mix64`` is the SplitMix64 output function (the "variant 13" finaliser of MurmurHash3's
fmix64): two xor-shift/multiply rounds, a bijection on 64-bit words with full avalanche.
For fixed ``j`` the words over ``i`` are exactly the SplitMix64 sequence started at
``key_j``, which passes BigCrush and PractRand (Vigna, prng.di.unimi.it); the keys are
hashes of ``(seed, stream, j)``, so two of these sequences overlap only when two keys
differ by a multiple of ``GAMMA`` smaller than the array length: probability about
``n / 2^64`` per pair.  This is a simulation-quality generator, not a cryptographic one.

Seeds and streams are Python ints taken modulo 2^64 (so ``hash(...)`` values, which can be
negative, are fine as streams).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GAMMA", "MAX_WORDS", "mix64", "mix64_hi", "mix64_py", "key_base", "call_keys", "seeded_call_keys", "stream_keys", "words", "new_seed"]

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15          # 2^64 / golden ratio, odd: the SplitMix64 Weyl increment
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
#: Most words one element can need: a float64 input rounded into any Format drops at most
#: 52 + 127 + 1074 + 2 < 64 * 21 bits (see ``docs/rounding.md``).
MAX_WORDS = 21


def mix64_py(z: int) -> int:
    """SplitMix64 output function on a Python int (reference for :func:`mix64`)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


@njit(cache=True, inline="always")   # inlined into the kernels' loops (parfor bodies too)
def mix64(z):
    """SplitMix64 output function on a ``np.uint64`` (wraps mod 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def mix64_hi(z):
    """``mix64(z) >> 32`` as a ``np.uint32``: the high half of the word, for comparisons in
    32-bit lanes.

    Computing only the high half of the last multiply (three 32x32-bit products) was measured
    slower than this on AVX-512 and on AVX2 (Zen 4; LLVM's own 64-bit multiply is as short).
    """
    return np.uint32(mix64(z) >> np.uint64(32))


def key_base(seed: int, stream: int = 0) -> int:
    """``mix64(mix64(seed) ^ mix64(stream + GAMMA))``: the call's base key (a Python int)."""
    return mix64_py(mix64_py(int(seed)) ^ mix64_py(int(stream) + GAMMA))


def call_keys(base: int) -> tuple[int, int]:
    """``(base, key_0)``: a call's base key and its first word's key ``mix64(base + GAMMA)`` (Python
    ints), the two keys that the kernels take."""
    return base, mix64_py(base + GAMMA)


@njit(cache=True)
def _seeded_call_keys(seed, stream):
    # seed, stream: int64 holding the 64 bits of the words (Python ints pass fastest as int64)
    base = mix64(mix64(np.uint64(seed)) ^ mix64(np.uint64(stream) + np.uint64(GAMMA)))
    return base, mix64(base + np.uint64(GAMMA))


def _as_int64(v: int) -> int:
    """The int64 with the bits of ``v mod 2^64``."""
    v = int(v) & MASK64
    return v - (1 << 64) if v >> 63 else v


def seeded_call_keys(seed: int, stream: int = 0) -> tuple[np.uint64, np.uint64]:
    """``call_keys(key_base(seed, stream))`` as ``np.uint64``, by the jitted :func:`mix64`: about
    1 us against 3 us for the four ``mix64_py`` on Python ints (every stochastic call takes it)."""
    base, key0 = _seeded_call_keys(_as_int64(seed), _as_int64(stream))
    return np.uint64(base), np.uint64(key0)


def stream_keys(seed: int, stream: int = 0, nwords: int = MAX_WORDS) -> np.ndarray:
    """The per-word keys ``key_j = mix64(base + (j + 1) * GAMMA)``, j = 0 .. nwords-1 (uint64)."""
    base = key_base(seed, stream)
    return np.array([mix64_py(base + (j + 1) * GAMMA) for j in range(nwords)], dtype=np.uint64)


def words(seed: int, stream: int, index, j: int = 0) -> np.ndarray:
    """``word(i, j)`` for an array of element indices (vectorised NumPy; for tests and tools)."""
    key = int(stream_keys(seed, stream, j + 1)[j])
    idx = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (idx + np.uint64(1)) * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def new_seed() -> int:
    """A fresh seed from NumPy's global generator (``seed=None``): not reproducible unless the
    caller has seeded ``np.random`` itself."""
    return int(np.random.randint(0, 2**63, dtype=np.int64))
