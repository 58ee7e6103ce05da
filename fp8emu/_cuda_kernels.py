"""CUDA kernels: the rounding routines of ``_kernels.py``, compiled for the GPU by numba-cuda.

Nothing here decides a rounding.  Each kernel is a grid-stride loop around one of the
``@njit`` per-element routines of :mod:`fp8emu._kernels` (``_round_bits``, ``_round_fast``,
``_round_f32``, ``_value_bits``), which numba-cuda compiles a second time as CUDA device functions: one
definition of the rounding rules for both devices, so a change to a rule reaches the GPU
without a second edit, and the CPU tests of those routines cover the GPU's arithmetic too.

The stochastic kernels use the same counter-based words as the CPU (``mix64`` of the call's
keys and the element's C-order index ``i``), so for the same ``(seed, stream)`` a GPU call
and a CPU call give the same codes, whatever the grid.  Where the CPU reruns a whole array
with ``_round_bits`` (an exact-SR element that needs a second random word), a GPU thread
calls ``_round_bits`` for that element alone: same result, no second pass.

All kernels share one argument list ``(src, out, lut, p32, prm, key_base, key0, lim)`` so
that one loop (:func:`_make_kernel`) serves every path; each ignores what it does not use.
Only :mod:`fp8emu.cuda` imports this module (it needs numba-cuda).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ._kernels import _round_bits, _round_f32, _round_fast, _value_bits

__all__ = ["ILP", "KERNELS", "WIDE_KERNELS", "decode_kernel", "decode_wide_kernel"]

#: Elements per thread and loop step: a thread issues this many independent loads before it
#: computes, which keeps more bytes in flight than one load at a time (memory-bound kernels).
ILP = 4


def _make_value(wide: bool):
    """The device function ``value(code, lut)``: the output float's bits of a code, read from the
    decode table, or with ``wide`` (formats wider than 16 bits: no table) built from the code by
    ``_kernels._value_bits``, whose parameter tuple then travels in the ``lut`` argument."""
    if wide:
        @cuda.jit(device=True, inline="always")
        def value(c, lut):
            # through uint64, as a table entry is read: the simulator's Python ints >= 2^63 then wrap too
            return np.int64(np.uint64(_value_bits(c, lut)))
    else:
        @cuda.jit(device=True, inline="always")
        def value(c, lut):
            return np.int64(lut[c])
    return value


def _make_elem(path: str, stochastic: bool, values: bool, wide: bool = False):
    """The per-element device function of one kernel (``path``, mode class, output kind).

    ``stochastic``, ``values`` and ``wide`` are closure constants: Numba folds the branches on
    them, so deterministic kernels carry no random-number code (as on the CPU).
    """
    value = _make_value(wide)
    if path == "f32":
        @cuda.jit(device=True, inline="always")
        def elem(b, i, lut, p32, prm, key_base, key0, lim):
            # An exact-SR element with more than 64 dropped bits may need a second random
            # word, which _round_f32 cannot draw (the CPU checks the whole array first).
            a = b & np.uint32(0x7FFFFFFF)
            if stochastic and (a != np.uint32(0)) and (a <= lim):
                c = _round_bits(b, i, prm, key_base, key0)
                return value(c, lut) if values else c
            c32, v32 = _round_f32(b, i, p32, key0, stochastic)
            return np.int64(v32) if values else np.int64(c32)
    elif path == "fast":
        @cuda.jit(device=True, inline="always")
        def elem(b, i, lut, p32, prm, key_base, key0, lim):
            c, tie = _round_fast(b, i, prm, key0, stochastic)
            if stochastic and tie:          # first random word equals the dropped bits
                c = _round_bits(b, i, prm, key_base, key0)
            return value(c, lut) if values else c
    else:
        @cuda.jit(device=True, inline="always")
        def elem(b, i, lut, p32, prm, key_base, key0, lim):
            c = _round_bits(b, i, prm, key_base, key0)
            return value(c, lut) if values else c
    return elem


def _make_kernel(elem):
    """Grid-stride kernel ``out[i] = elem(src[i], i, ...)`` with :data:`ILP` loads per step."""

    @cuda.jit
    def kernel(src, out, lut, p32, prm, key_base, key0, lim):
        n = src.shape[0]
        bd = cuda.blockDim.x
        start = cuda.blockIdx.x * bd * ILP + cuda.threadIdx.x
        step = cuda.gridDim.x * bd * ILP
        for base in range(start, n, step):
            if base + (ILP - 1) * bd < n:
                # all loads first: out may be src (in place), so the compiler could not
                # move a later load above an earlier store by itself
                b0 = src[base]
                b1 = src[base + bd]
                b2 = src[base + 2 * bd]
                b3 = src[base + 3 * bd]
                out[base] = elem(b0, base, lut, p32, prm, key_base, key0, lim)
                out[base + bd] = elem(b1, base + bd, lut, p32, prm, key_base, key0, lim)
                out[base + 2 * bd] = elem(b2, base + 2 * bd, lut, p32, prm, key_base, key0, lim)
                out[base + 3 * bd] = elem(b3, base + 3 * bd, lut, p32, prm, key_base, key0, lim)
            else:
                for k in range(ILP):
                    j = base + k * bd
                    if j < n:
                        out[j] = elem(src[j], j, lut, p32, prm, key_base, key0, lim)

    return kernel


#: (path, stochastic, values) -> kernel; path "f32" (float32 inputs, int32 lanes), "fast"
#: (branch-free, formats with subnormals and emin >= the input's), "generic" (any format).
KERNELS = {(path, sr, values): _make_kernel(_make_elem(path, sr, values))
           for path in ("f32", "fast", "generic") for sr in (False, True) for values in (False, True)}

#: (path, stochastic) -> the quantize kernel of formats wider than 16 bits (its ``lut`` argument is
#: the ``_kernels.DECODE_PARAMS`` tuple: the values are built from the codes, as the CPU's
#: ``_quantize_wide`` does; ``_round_fast`` is valid for them, as the CPU's encode shows).
WIDE_KERNELS = {(path, sr): _make_kernel(_make_elem(path, sr, True, wide=True))
                for path in ("f32", "fast", "generic") for sr in (False, True)}


def _make_decode(value):
    @cuda.jit
    def kernel(codes, out, lut, ncodes, bad):
        """``out[i] = value(codes[i])``; a code outside ``0 .. ncodes - 1`` sets ``bad[0] = 1``."""
        start, step = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, codes.shape[0], step):
            c = np.int64(codes[i])
            if c < 0 or c >= ncodes:
                bad[0] = 1
                c = 0
            out[i] = value(c, lut)
    return kernel


#: ``out[i] = lut[codes[i]]`` (the table of a format of up to 16 bits).
decode_kernel = _make_decode(_make_value(False))
#: ``out[i] = _value_bits(codes[i], d)`` (formats wider than 16 bits; ``d`` in the ``lut`` argument).
decode_wide_kernel = _make_decode(_make_value(True))
