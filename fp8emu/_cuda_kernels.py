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

from functools import lru_cache

import numpy as np
from numba import cuda

from ._kernels import _round_bits, _round_f32, _round_f32_k, _round_fast, _value_bits, _value_f32, _value_f32_sr

__all__ = ["ILP", "kernel", "value_kernel", "decode_kernel", "decode_wide_kernel"]

#: Elements per thread and loop step: a thread issues this many independent loads before it
#: computes, which keeps more bytes in flight than one load at a time (memory-bound kernels).
ILP = 4
#: The rounding modes' codes in the float32 kernels' parameters (``_kernels.PARAMS_F32``'s
#: ``mode``): 0-4 the deterministic modes, 5 stochastic.
_SR_MODE = 5


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


def _make_value_elem(stochastic: bool, wide: bool, mode: int, lean: bool, nz: bool, rbits: bool):
    """The per-element device function of a float32 ``quantize`` kernel: the CPU's value routines
    (``_kernels._value_f32`` for a deterministic ``mode``, ``_value_f32_sr`` for stochastic
    rounding by the random word's high half), which build the rounded value's bits from the
    input's without its code.  Their constants (``_kernels._value_f32_consts``) travel in the
    ``p32`` argument; ``lean``, ``nz`` and ``rbits`` (r-bit SR) are the CPU kernels' constants.

    Exact SR of an element that drops more than 32 bits (``0 < |x| bits <= lim``) cannot be
    decided by the word's high half; the CPU then runs the whole array through a 64-bit or
    generic kernel, a GPU thread calls ``_round_bits`` for that element: the same value.
    """
    value = _make_value(wide)
    if not stochastic:
        @cuda.jit(device=True, inline="always")
        def elem(b, i, lut, c, prm, key_base, key0, lim):
            return np.int64(_value_f32(b, c, mode, lean, nz, False))
        return elem

    @cuda.jit(device=True, inline="always")
    def elem(b, i, lut, c, prm, key_base, key0, lim):
        if not rbits:
            a = b & np.uint32(0x7FFFFFFF)
            if (a != np.uint32(0)) and (a <= lim):
                return value(_round_bits(b, i, prm, key_base, key0), lut)
        return np.int64(_value_f32_sr(b, i, c, key0, lean, nz, rbits, False, False))
    return elem


def _make_elem(path: str, stochastic: bool, values: bool, wide: bool = False, mode: int | None = None,
               hi32: bool = False):
    """The per-element device function of one kernel (``path``, mode class, output kind).

    ``stochastic``, ``values``, ``wide``, ``mode`` and ``hi32`` are closure constants: Numba
    folds the branches on them, so deterministic kernels carry no random-number code (as on the
    CPU).  On the ``"f32"`` path, ``mode`` (the rounding mode's code, as the CPU's float32
    kernels have it) compiles one kernel per mode: ``_kernels._round_f32_k`` with a literal
    mode, the CPU's own routine, instead of ``_round_f32`` reading the mode from the parameters
    for every element; ``hi32`` (``sr_bits`` given: valid whatever the element, see
    ``_round_f32_k``) compares the random word's high half, as the CPU does.  ``mode=None``:
    the runtime switch (the kernel before this specialisation, kept for the benchmark).
    """
    value = _make_value(wide)
    if path == "f32":
        m = _SR_MODE if stochastic or mode is None else int(mode)
        runtime_mode = mode is None

        @cuda.jit(device=True, inline="always")
        def elem(b, i, lut, p32, prm, key_base, key0, lim):
            # An exact-SR element with more than 64 dropped bits may need a second random
            # word, which _round_f32 cannot draw (the CPU checks the whole array first).
            a = b & np.uint32(0x7FFFFFFF)
            if stochastic and (a != np.uint32(0)) and (a <= lim):
                c = _round_bits(b, i, prm, key_base, key0)
                return value(c, lut) if values else c
            if runtime_mode:
                c32, v32 = _round_f32(b, i, p32, key0, stochastic)
            else:
                c32, v32 = _round_f32_k(b, i, p32, key0, stochastic, m, hi32)
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


def _loop_source(ilp: int, unsigned: bool = True, block: int = 0) -> str:
    """The source of the grid-stride loop with ``ilp`` elements per thread and step.

    Thread ``t`` of block ``g`` handles ``base + k * blockDim`` for ``k < ilp``, ``base = (g *
    blockDim) * ilp + t`` plus multiples of the grid's span: for each ``k`` a warp reads 32
    consecutive elements (coalesced).  Indices are unsigned: Numba adds a negative-index
    wrap-around (three 64-bit operations) to every access with a signed index.  The element
    index handed to ``elem`` is the same number as an int64 (the random words' counter).
    ``unsigned=False``: signed indices (the loop before this change, kept for the benchmark).
    ``block``: the block size as a constant (0: read ``blockDim``), so that the ``ilp`` loads
    and stores of a step are one address plus constant offsets; the kernel must then be
    launched with blocks of exactly ``block`` threads.
    """
    u = "np.uint64" if unsigned else "np.int64"
    lines = ["def kernel(src, out, lut, p32, prm, key_base, key0, lim):",
             f"    n = {u}(src.shape[0])",
             f"    bd = {u}({block})" if block else f"    bd = {u}(cuda.blockDim.x)",
             f"    base = {u}(cuda.blockIdx.x) * bd * {u}({ilp}) + {u}(cuda.threadIdx.x)",
             f"    step = {u}(cuda.gridDim.x) * bd * {u}({ilp})",
             "    while base < n:",
             f"        if base + {u}({ilp - 1}) * bd < n:",
             # all loads first: out may be src (in place), so the compiler could not move a
             # later load above an earlier store by itself
             *[f"            b{k} = src[base + {u}({k}) * bd]" for k in range(ilp)],
             *[f"            out[base + {u}({k}) * bd] = elem(b{k}, np.int64(base + {u}({k}) * bd), lut, p32, prm, "
               "key_base, key0, lim)" for k in range(ilp)],
             "        else:",
             f"            for k in range({ilp}):",
             f"                j = base + {u}(k) * bd",
             "                if j < n:",
             "                    out[j] = elem(src[j], np.int64(j), lut, p32, prm, key_base, key0, lim)",
             "        base += step"]
    return "\n".join(lines) + "\n"


def _make_kernel(elem, ilp: int = ILP, unsigned: bool = True, block: int = 0):
    """Grid-stride kernel ``out[i] = elem(src[i], i, ...)`` with ``ilp`` loads per step (the loop's
    source is generated: ``ilp`` named loads, then ``ilp`` stores)."""
    scope = {"cuda": cuda, "np": np, "elem": elem}
    exec(compile(_loop_source(ilp, unsigned, block), f"<fp8emu._cuda_kernels loop, ilp={ilp}>", "exec"), scope)
    return cuda.jit(scope["kernel"])


@lru_cache(maxsize=None)
def value_kernel(stochastic: bool, mode: int, *, wide: bool = False, lean: bool = False, nz: bool = False,
                 rbits: bool = False, ilp: int = ILP, unsigned: bool = True, block: int = 0):
    """The float32 ``quantize`` kernel of one case on the CPU's value routines (see
    :func:`_make_value_elem`; compiled at its first launch, built once per process).

    Args:
        stochastic: stochastic rounding (``mode`` is then ignored).
        mode: the deterministic mode's code (0-4).
        wide: a format wider than 16 bits (the fallback's value built from its code).
        lean, nz: ``_kernels._value_f32``'s constants (``_kernels._value_variant``).
        rbits: r-bit stochastic rounding (``sr_bits`` given; no fallback needed).
        ilp, unsigned, block: the loop's (see :func:`_loop_source`).

    Returns:
        The numba-cuda kernel (argument list ``(src, out, lut, consts, prm, key_base, key0, lim)``).
    """
    elem = _make_value_elem(stochastic, wide, 5 if stochastic else int(mode), lean, nz, rbits)
    return _make_kernel(elem, ilp, unsigned, block)


@lru_cache(maxsize=None)
def kernel(path: str, stochastic: bool, values: bool, *, wide: bool = False, mode: int | None = None,
           hi32: bool = False, ilp: int = ILP, unsigned: bool = True, block: int = 0):
    """The rounding kernel of one case (compiled at its first launch; built once per process).

    Args:
        path: ``"f32"``, ``"fast"`` or ``"generic"`` (``KernelArguments.kernel``).
        stochastic: stochastic rounding.
        values: quantize (values) rather than encode (codes).
        wide: a format wider than 16 bits (values built from the codes; quantize only).
        mode: the ``"f32"`` path's mode code (0-4; ignored when ``stochastic``), or None for
            the kernel that reads it from the parameters per element.
        hi32: the ``"f32"`` stochastic kernel compares the random word's high half (only with
            ``sr_bits``).
        ilp: elements per thread and loop step.
        unsigned: unsigned loop indices (False: signed, with Numba's wrap-around per access).
        block: the block size as a constant of the loop (0: read at run time).

    Returns:
        The numba-cuda kernel (argument list ``(src, out, lut, p32, prm, key_base, key0, lim)``).
    """
    if path != "f32":
        mode, hi32 = None, False      # the other paths read the mode from their parameters
    return _make_kernel(_make_elem(path, stochastic, values, wide, mode, hi32), ilp, unsigned, block)


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
