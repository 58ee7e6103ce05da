"""Quantized matrix multiply: operands to their formats, exact products, a chosen accumulator.

``matmul`` does, in this order:

1. each operand to float32 values exact in its format: float input is quantized once
   from its exact value (after the exact division by its power-of-two scale), integer
   input is taken as codes of the format and decoded, ``fmt=None`` takes the float32
   values as they are (float64 input is rounded to float32 first);
2. ``accumulator.matmul_2d`` on every 2-D slice of the broadcast batch (as ``np.matmul``);
3. the power-of-two scales multiplied back onto the float32 result (exact in float64),
   then, with ``out_fmt``, one rounding to that format; the result is float32.

NaN and Inf operands propagate as IEEE arithmetic does (a NaN operand makes its whole row or
column of the result NaN; ``Inf * 0`` is NaN); formats without NaN/Inf see the rounding
layer's conversion of them first.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from ._blas import blas_threads, warn_if_spinning
from .accumulators import DEFAULT_ACCUMULATOR, Accumulator, Fp32Blas
from .format import Format, RoundMode
from .formats import get_format
from .quantize import INPUT_LAYOUTS
from .scaling import MXTensor, NVFP4Tensor, all_powers_of_two, mx_dequantize

__all__ = ["matmul", "resolve_accumulator", "prepare_operand"]

_F32 = np.float32


def resolve_accumulator(accumulator: Accumulator | None, a_fmt: Format | str | None,
                        b_fmt: Format | str | None) -> Accumulator:
    """The accumulator to use (None: :data:`~fp8emu.accumulators.fp32_blas`), checked against the formats.

    Args:
        accumulator: an :class:`~fp8emu.accumulators.Accumulator` or None.
        a_fmt, b_fmt: the operands' formats (Format, name or None).

    Returns:
        The accumulator.

    Raises:
        TypeError: ``accumulator`` is not an Accumulator.
        ValueError: it cannot take operands of these formats.
    """
    acc = DEFAULT_ACCUMULATOR if accumulator is None else accumulator
    if not isinstance(acc, Accumulator):
        raise TypeError(f"accumulator must be an fp8emu.accumulators.Accumulator (e.g. fp32_blas, "
                        f"fp32_sequential, lowp(...)), got {type(accumulator).__name__}")
    acc.check_operands(None if a_fmt is None else get_format(a_fmt), None if b_fmt is None else get_format(b_fmt))
    return acc


def _check_scale(scale: Any, name: str, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """Validate a power-of-two scale broadcastable to ``shape`` with extent 1 along ``axis``."""
    if scale is None:
        return None
    s = np.asarray(scale)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real number or float array, got dtype {s.dtype}")
    s = s.astype(np.float64)
    try:
        full = np.broadcast_shapes(s.shape, shape)
    except ValueError:
        full = None
    padded = (1,) * (len(shape) - s.ndim) + s.shape
    if full != tuple(shape) or len(padded) != len(shape) or padded[axis] != 1:
        raise ValueError(f"{name} has shape {s.shape}; it must broadcast to the operand's shape {tuple(shape)} "
                         f"with extent 1 along the contraction axis (per-tensor: a scalar; per-channel: "
                         f"{'(M, 1)' if axis == -1 else '(1, N) or (N,)'})")
    if not all_powers_of_two(s):
        raise ValueError(f"{name} must hold positive finite powers of two (so scaling is exact); "
                         "see fp8emu.scaling for choosing them")
    return s.reshape(padded)


def prepare_operand(x: Any, fmt: Format | str | None, name: str, rounding: RoundMode | str, saturate: bool,
                    seed: int | None, stream: int, which: int, scale: np.ndarray | None = None,
                    quantized: bool = False) -> tuple[np.ndarray, Format | None]:
    """Return (C-contiguous float32 values exact in ``fmt``, the Format or None) for one operand.

    The operand rule of :func:`matmul`, shared by :mod:`fp8emu.conv`.

    Args:
        x: the operand: floats, or unsigned codes of ``fmt``.
        fmt: its format (None: plain float32 values).
        name: the operand's name in error messages.
        rounding, saturate, seed, stream: the quantization, as :func:`matmul` takes them.
        which: the operand's stream offset (below).
        scale: a checked power-of-two dequantization scale, or None.
        quantized: ``x`` already holds values of ``fmt`` (no rounding pass).

    Returns:
        ``(values, fmt)``: C-contiguous float32 values and the Format (or None).

    Raises:
        TypeError: a dtype that does not fit ``fmt``.

    ``which`` offsets the stochastic-rounding stream (operand 0 uses ``stream``, operand 1
    ``stream + 1``, the output ``stream + 2``) so the operands draw independent bits.
    ``quantized=True`` takes float values as already exact in ``fmt`` (skips the rounding pass).
    """
    arr = np.asarray(x)
    is_float = arr.dtype.kind == "f" or arr.dtype.name in INPUT_LAYOUTS   # ml_dtypes' bfloat16: kind "V"
    if fmt is None:
        if not is_float:
            raise TypeError(f"{name} must be a float array (float16/bfloat16/float32/float64) when {name}_fmt "
                            f"is None, got dtype {arr.dtype}; integer codes need their format")
        if scale is not None:
            arr = arr.astype(np.float64) / scale
        return np.ascontiguousarray(arr, dtype=_F32), None
    fmt = get_format(fmt)
    from .quantize import decode, quantize  # layer 2
    if arr.dtype.kind == "u":
        if arr.dtype != fmt.code_dtype:
            raise TypeError(f"{name} holds {arr.dtype} codes but {fmt.name} codes are {fmt.code_dtype}")
        return np.ascontiguousarray(decode(arr, fmt, dtype=_F32)), fmt
    if not is_float:
        raise TypeError(f"{name} must be a float array or unsigned codes ({fmt.code_dtype}) of {fmt.name}, "
                        f"got dtype {arr.dtype}")
    if scale is not None:
        arr = arr.astype(np.float64) / scale  # exact: power-of-two scale, float64 range
    if quantized:
        return np.ascontiguousarray(arr, dtype=_F32), fmt
    q = quantize(arr, fmt, rounding=rounding, saturate=saturate, seed=seed, stream=stream + which)
    return np.ascontiguousarray(q, dtype=_F32), fmt


def _mx_operand(x: Any, fmt, name: str, contraction: int) -> Any:
    """An :class:`MXTensor` operand as its float32 values (exact), after checking its blocks run along K."""
    if isinstance(x, NVFP4Tensor):
        raise TypeError(f"{name} is an NVFP4Tensor, which matmul does not take: its block scales (E4M3) and "
                        f"tensor scale (float32) are not powers of two, so its values are not exact in float32 "
                        f"in general; pass {name}=nvfp4_dequantize({name}) (float32 values, or dtype=np.float64, "
                        f"which matmul rounds to float32) with {name}_fmt=None")
    if not isinstance(x, MXTensor):
        return x
    if fmt is not None:
        raise ValueError(f"{name} is an MXTensor (it carries its element format); pass {name}_fmt=None")
    k_axis = 0 if x.ndim == 1 else x.ndim + contraction
    if x.axis != k_axis:
        raise ValueError(f"{name} is MX-blocked along axis {x.axis}; matmul needs the blocks along the "
                         f"contraction axis {k_axis}")
    v64 = mx_dequantize(x, dtype=np.float64)
    v32 = v64.astype(np.float32)
    if not np.array_equal(v32.astype(np.float64), v64, equal_nan=True):
        raise ValueError(f"{name}'s MX values leave float32's range; they cannot be used exactly")
    return v32


#: Row blocks of the buffered quantize-then-sgemm path.  Each block of ``a`` is rounded into a
#: reused buffer and multiplied at once, so sgemm reads it back from cache when the block fits
#: there.  A block far larger than the last-level cache is written to memory by the rounding
#: pass and read back by sgemm (measured on the 2-core Zen 4, L3 32 MiB, at 131072 x 576 x 64:
#: 64 MiB blocks 94 ms, 4 MiB blocks 77 ms, np.matmul alone 68 ms); a small block pays, per
#: block, the wake-up of two sleeping thread pools (Numba's, then OpenBLAS's: about 0.08 ms each
#: in these virtual machines; quantize of 131072 float32 took 39 us on one thread, 116 us on
#: two, on the Intel CI host).  So the block is 1/32 of the L3 that the OS reports, between 4 and
#: 16 MiB: 4 MiB on the Zens (32 MiB L3 per CCD), 15 MiB on the Intel CI host (480 MiB L3), where
#: 16 MiB blocks ran 0.84 -> 1.03, 0.81-0.85 -> 0.86-0.87 of np.matmul at the two first ResNet-18
#: shapes (docs/results/benchmarks.md, issue 19).  Bits: see docs/accumulators.md.
_MIN_CACHE_BLOCK_BYTES = 4 << 20
_MAX_CACHE_BLOCK_BYTES = 16 << 20


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _l3_bytes(cache_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The size of CPU 0's level-3 cache as Linux reports it (sysfs), or None where it does not."""
    def read(index: str, name: str) -> str:
        with open(os.path.join(cache_dir, index, name)) as f:
            return f.read().strip()
    try:
        for index in sorted(os.listdir(cache_dir)):
            if not index.startswith("index") or read(index, "level") != "3" \
                    or read(index, "type") not in ("Unified", "Data"):
                continue
            size = read(index, "size")              # "491520K", "32768K", "1M"
            return int(size[:-1]) * _SIZE_UNITS[size[-1]] if size[-1] in _SIZE_UNITS else int(size)
    except (OSError, ValueError):
        pass
    return None


def _cache_block_bytes(l3: int | None) -> int:
    """Bytes of ``a`` per block for a last-level cache of ``l3`` bytes (None: unknown)."""
    if not l3:
        return _MIN_CACHE_BLOCK_BYTES
    return min(_MAX_CACHE_BLOCK_BYTES, max(_MIN_CACHE_BLOCK_BYTES, l3 // 32))


CACHE_BLOCK_BYTES = _cache_block_bytes(_l3_bytes())
#: ...but at least this many rows: every sgemm call packs B again, which a few rows of a long K
#: do not amortise (2048 x 4608 x 512 in 4 MiB blocks of 227 rows: 16 % slower than one call).
_MIN_BLOCK_ROWS = 2048
#: ...and at most this many bytes of ``a`` per block (bounds the reused buffer).
_MAX_BLOCK_BYTES = 64 << 20
_fused_buffer = threading.local()


def block_rows(m: int, k: int) -> int:
    """Rows per block of the quantize-then-sgemm path for ``a`` of shape (m, k): the size rules
    above, then evened out over the blocks (no small ragged last block: sgemm's small-matrix
    kernels sum in another order, and a short call runs slowly).  Public (not in ``__all__``):
    the convs' row chunks follow it too (:mod:`fp8emu.conv`)."""
    row_bytes = 4 * max(k, 1)
    rows = max(CACHE_BLOCK_BYTES // row_bytes, _MIN_BLOCK_ROWS)
    rows = max(1, min(rows, _MAX_BLOCK_BYTES // row_bytes, m))
    blocks = -(-m // rows)
    return -(-m // blocks)


def _scratch(name: str, size: int) -> np.ndarray:
    """A float32 buffer of at least ``size`` elements kept by this thread (grown, never shrunk).

    Quantizing into a reused buffer saves the page faults of a fresh operand-sized array on
    every call (a fresh 75 MB array costs about as much as quantizing into it).
    """
    buf = getattr(_fused_buffer, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=_F32)
        setattr(_fused_buffer, name, buf)
    return buf


#: The two-worker pipeline of :func:`_fused_blas_rows` (None: not started yet).  Rounding a
#: block streams its rows from memory while sgemm waits; sgemm of a cached block is arithmetic.
#: With every core on each stage in turn the two costs add up; with one worker per core, each
#: rounding and multiplying its own blocks on one thread, one core's memory stream overlaps the
#: other's arithmetic (``tools/probes/gemm_pipeline.py``; docs/results/benchmarks.md, issue 19).
#: Opt-in (``FP8EMU_GEMM_PIPELINE=1``): it gained 2-23 % on an AMD Zen 5 and 2-20 % on the Intel
#: CI host (1.01-1.02 -> 1.05-1.07 of np.matmul at 131072 x 576 x 64, 0.84-0.85 -> 0.90 at 32768 x 1152 x
#: 128), and lost 15-30 % on the GPU machine's Intel Xeon, whose OpenBLAS ran two concurrent
#: one-thread calls only 1.29x faster than one; and on OpenBLAS's Haswell kernel its bits are
#: those of one BLAS thread, not of two.  A choice by timing would make the bits depend on the
#: load, so it is the user's.
PIPELINE_ENV = "FP8EMU_GEMM_PIPELINE"
_pipeline_pool: Any = None
#: One pipeline at a time: it sets OpenBLAS's process-wide thread count to 1 and back.
_pipeline_lock = threading.Lock()
_PIPELINE_WORKERS = 2


def _pipeline_requested() -> bool:
    """``FP8EMU_GEMM_PIPELINE``: ``1`` asks for the pipeline, ``0`` or unset for the serial loop."""
    value = os.environ.get(PIPELINE_ENV, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{PIPELINE_ENV}={value!r}: expected 1 (two-worker GEMM pipeline) or 0 (serial loop)")
    return value == "1"


def _pipeline_ready(blocks: int) -> bool:
    """Whether :func:`_fused_blas_rows` runs its blocks on the two-worker pipeline: asked for
    (:data:`PIPELINE_ENV` is ``1``), at least two blocks, at least two Numba threads and two
    OpenBLAS threads to replace (a cap of one thread, e.g. :func:`fp8emu.cluster.limit_threads`,
    keeps the serial loop), NumPy's BLAS an OpenBLAS whose thread count can be set, and OpenBLAS
    holding fp8emu's spin timeout (read at its load, or after the restart of the import when
    NumPy came first) or a timeout of your own.  Without it OpenBLAS's idle workers spin for
    2^28 cycles after each two-thread call and take the cores the workers need (measured 2x
    slower than the serial loop: docs/results/benchmarks.md, issue 19)."""
    if not _pipeline_requested() or blocks < 2:
        return False
    import fp8emu
    if not fp8emu._OPENBLAS_SPIN_SET:
        return False                     # OpenBLAS's workers spin after each call (restart skipped)
    import numba
    if numba.get_num_threads() < _PIPELINE_WORKERS:
        return False
    threads = blas_threads()
    return threads is not None and threads >= _PIPELINE_WORKERS


def _fused_blas_rows(a: np.ndarray, qb: np.ndarray, fmt: Format, rounding, saturate: bool,
                     y: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(quantize(a), qb)`` for a 2-D float32 ``a``, a block of rows at a time, into
    ``y`` (a C-contiguous float32 (M, N) array not overlapping the operands) or a new array.

    Same values as quantizing the whole of ``a`` first (rows are independent and the rounding
    is deterministic; ``a`` of one block is one sgemm call, exactly that), without a fresh
    ``a``-sized array: the quantized rows go to a reused buffer (:func:`block_rows`).  With
    ``FP8EMU_GEMM_PIPELINE=1``, two or more blocks and two threads, two workers take the blocks
    in turn, each rounding on one Numba thread and multiplying with OpenBLAS set to one thread
    for the call (:func:`_pipeline_ready`).  A block's product on one thread does not depend on which worker
    takes it, so the bits equal the serial loop's at one BLAS thread; OpenBLAS's thread split can
    round some sums differently on its Haswell kernel (docs/accumulators.md).
    """
    warn_if_spinning()
    m, k = a.shape
    rows = block_rows(m, k)
    if y is None:
        y = np.empty((m, qb.shape[1]), dtype=_F32)
    starts = list(range(0, m, rows))
    with _pipeline_lock:
        if _pipeline_ready(len(starts)):
            _run_pipeline(a, qb, fmt, rounding, saturate, y, rows, starts)
            return y
    buf = _scratch("a", rows * k)
    for r0 in starts:
        _round_and_multiply(a, qb, fmt, rounding, saturate, y, r0, min(m, r0 + rows), buf)
    return y


def _round_and_multiply(a, qb, fmt, rounding, saturate, y, r0: int, r1: int, buf: np.ndarray) -> None:
    """One block: rows ``r0:r1`` of ``a`` rounded into ``buf``, times ``qb``, into ``y[r0:r1]``."""
    from .quantize import quantize  # layer 2
    block = buf[:(r1 - r0) * a.shape[1]].reshape(r1 - r0, a.shape[1])
    quantize(a[r0:r1], fmt, rounding=rounding, saturate=saturate, out=block)
    np.matmul(block, qb, out=y[r0:r1])


def _run_pipeline(a, qb, fmt, rounding, saturate, y, rows: int, starts: list[int]) -> None:
    """The blocks at ``starts`` on :data:`_PIPELINE_WORKERS` threads, each taking the next block
    when it is free (one Numba thread each: Numba's count is per calling thread), with
    OpenBLAS at one thread until every block is done; its count is restored even on error."""
    global _pipeline_pool
    from concurrent.futures import ThreadPoolExecutor, wait

    import numba

    if _pipeline_pool is None:
        _pipeline_pool = ThreadPoolExecutor(_PIPELINE_WORKERS, thread_name_prefix="fp8emu-gemm")
    m = a.shape[0]
    queue = iter(starts)
    take = threading.Lock()

    def worker() -> None:
        numba.set_num_threads(1)
        buf = _scratch("a", rows * a.shape[1])
        while True:
            with take:
                r0 = next(queue, None)
            if r0 is None:
                return
            _round_and_multiply(a, qb, fmt, rounding, saturate, y, r0, min(m, r0 + rows), buf)

    before = blas_threads()
    blas_threads(1)
    try:
        futures = [_pipeline_pool.submit(worker) for _ in range(_PIPELINE_WORKERS)]
        wait(futures)                    # both done before OpenBLAS's count goes back, even on error
        for f in futures:
            f.result()
    finally:
        blas_threads(before)


def _out_target(out: np.ndarray | None, shape: tuple[int, ...], a_vec: bool, b_vec: bool,
                operands: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """Check ``out`` against the result's shape; return it as the (..., M, N) array the product
    may be written into, or None when it cannot be (non-contiguous, byte-swapped, or sharing
    memory with an operand: the product is then copied into it at the end)."""
    if out is None:
        return None
    final = shape[:-2] + shape[-2:-1] * (not a_vec) + shape[-1:] * (not b_vec)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != final:
        raise ValueError(f"out has shape {out.shape}; expected {final}")
    if out.dtype.newbyteorder("=") != np.dtype(_F32):
        raise TypeError(f"out has dtype {out.dtype}; expected float32 (any byte order)")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if (not out.flags.c_contiguous or not out.dtype.isnative
            or any(np.may_share_memory(out, x) for x in operands)):
        return None
    # a subclass (a masked array, a matrix) as a plain array over its memory: the kernels and
    # np.matmul's out= take nothing else
    return (out if type(out) is np.ndarray else np.asarray(out)).reshape(shape)


def _output(y: np.ndarray, scale: np.ndarray | None, out_fmt, out_rounding, saturate: bool, seed,
            stream: int) -> np.ndarray:
    """Apply the combined scale (exact in float64) and the optional output rounding."""
    if scale is not None:
        y = y.astype(np.float64) * scale
    if out_fmt is None:
        return np.ascontiguousarray(y, dtype=_F32)
    from .quantize import quantize
    q = quantize(y, get_format(out_fmt), rounding=out_rounding, saturate=saturate, seed=seed, stream=stream + 2)
    return np.ascontiguousarray(q, dtype=_F32)


def matmul(a: npt.ArrayLike, b: npt.ArrayLike, *, a_fmt: Format | str | None = None,
           b_fmt: Format | str | None = None, rounding="nearest_even", saturate: bool = False,
           accumulator: Accumulator | None = None, out_fmt: Format | str | None = None,
           out_rounding="nearest_even", a_scale: npt.ArrayLike | None = None,
           b_scale: npt.ArrayLike | None = None, seed: int | None = None,
           stream: int = 0, quantized: bool = False, out: np.ndarray | None = None) -> npt.NDArray[np.float32]:
    """Matrix product of quantized operands, summed by ``accumulator``; batched like ``np.matmul``.

    Args:
        a: (..., M, K) or (K,).  Float values, or unsigned-integer *codes* of ``a_fmt``
            (uint8 for formats of at most 8 bits, uint16 above), which are decoded, not rounded,
            or an :class:`~fp8emu.scaling.MXTensor` blocked along K (its exact values are used;
            the block scales make the products' exponents differ per block, so the accumulator
            sees plain float32 operands).
        b: (..., K, N) or (K,), likewise with ``b_fmt``.
        a_fmt, b_fmt: operand formats (Format or name); ``None`` = plain float32 operands.
        rounding: rounding mode of the operand quantization (RoundMode or name).
        saturate: clamp overflow to +-max in every quantization of this call (operands and output).
        accumulator: how each dot product is summed (default :data:`fp32_blas`).
        out_fmt: round the result once to this format (values returned as float32).
        out_rounding: rounding mode of the output quantization.
        a_scale: power-of-two dequantization scale of ``a`` (``a ~ a_scale * q(a / a_scale)``):
            a scalar or per-row ``(..., M, 1)``.
        b_scale: likewise for ``b``: a scalar or per-column ``(..., 1, N)`` / ``(N,)``.
        seed, stream: stochastic rounding; ``a`` uses ``stream``, ``b`` ``stream + 1``, the
            output ``stream + 2``, a stochastic accumulator ``stream + 3`` (its own seed and
            stream when ``seed`` is None), with element indices running over the whole batch.
        quantized: the float operands already hold values of ``a_fmt`` / ``b_fmt`` (e.g. the
            output of ``quantize``): skip the operand rounding pass.  Not checked; the formats
            still go to the accumulator.
        out: optional float32 array of the result's shape (as ``np.matmul``'s ``out``): the
            result is written there and ``out`` is returned, which saves allocating it (a
            fresh 32 MiB result costs its page faults: about a tenth of the sgemm at
            131072 x 576 x 64).  May overlap ``a`` or ``b`` (then a temporary is used).

    Returns:
        float32 array of shape ``np.matmul(a, b).shape`` (``out`` when given).

    Raises:
        ValueError: mismatched shapes, scales of the wrong shape or not powers of two, an
            accumulator that cannot represent the operands' products, ``out`` of the wrong
            shape or read-only.
        TypeError: wrong dtypes (complex, bool, signed ints, codes of the wrong width), ``out``
            not a float32 numpy array.
    """
    acc = resolve_accumulator(accumulator, a_fmt, b_fmt)
    a = _mx_operand(a, a_fmt, "a", -1)
    b = _mx_operand(b, b_fmt, "b", -2)
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.ndim == 0 or b_arr.ndim == 0:
        raise ValueError("matmul operands must have at least one dimension (scalars are not allowed)")
    a_vec, b_vec = a_arr.ndim == 1, b_arr.ndim == 1
    if a_vec:
        a_arr = a_arr[None, :]
    if b_vec:
        b_arr = b_arr[:, None]
    if a_arr.shape[-1] != b_arr.shape[-2]:
        raise ValueError(f"matmul shape mismatch: a is {np.shape(a)} (K={a_arr.shape[-1]}) but b is "
                         f"{np.shape(b)} (K={b_arr.shape[-2]})")
    try:
        batch = np.broadcast_shapes(a_arr.shape[:-2], b_arr.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul batch dimensions do not broadcast: a {np.shape(a)}, b {np.shape(b)}") from None
    sa = _check_scale(a_scale, "a_scale", a_arr.shape, -1)
    sb = _check_scale(b_scale, "b_scale", b_arr.shape, -2)
    m, n = a_arr.shape[-2], b_arr.shape[-1]
    # the result goes straight into ``out`` when nothing (scale, rounding) follows the product
    target = _out_target(out, batch + (m, n), a_vec, b_vec, (a_arr, b_arr))
    if sa is not None or sb is not None or out_fmt is not None:
        target = None
    fused = (isinstance(acc, Fp32Blas) and not batch and a_fmt is not None and not quantized and sa is None
             and a_arr.dtype == _F32 and a_arr.size > 0 and RoundMode.parse(rounding) is not RoundMode.STOCHASTIC)
    if fused:
        # same values as the general path: deterministic rounding, independent rows
        qb, _ = prepare_operand(b_arr, b_fmt, "b", rounding, saturate, seed, stream, 1, sb, quantized)
        y = _fused_blas_rows(a_arr, qb, get_format(a_fmt), rounding, saturate, target)
    else:
        qa, fa = prepare_operand(a_arr, a_fmt, "a", rounding, saturate, seed, stream, 0, sa, quantized)
        qb, fb = prepare_operand(b_arr, b_fmt, "b", rounding, saturate, seed, stream, 1, sb, quantized)
        if not batch:
            y = acc.run_2d(qa, qb, a_fmt=fa, b_fmt=fb, out=target, seed=seed, stream=stream + 3)
        else:
            y = np.empty(batch + (m, n), dtype=_F32) if target is None else target
            qa_b = np.broadcast_to(qa, batch + qa.shape[-2:])
            qb_b = np.broadcast_to(qb, batch + qb.shape[-2:])
            for flat, idx in enumerate(np.ndindex(*batch)):
                part = acc.run_2d(qa_b[idx], qb_b[idx], a_fmt=fa, b_fmt=fb, out=y[idx], seed=seed,
                                  stream=stream + 3, index0=flat * m * n)
                if not np.may_share_memory(part, y):
                    y[idx] = part
    scale = None
    if sa is not None or sb is not None:
        scale = (1.0 if sa is None else sa) * (1.0 if sb is None else sb)  # (..., M, 1) * (..., 1, N)
    y = _output(y, scale, out_fmt, out_rounding, saturate, seed, stream)
    if a_vec:
        y = y[..., 0, :]
    if b_vec:
        y = y[..., 0]
    if out is None:
        return y
    if not np.may_share_memory(y, out):
        np.copyto(out, y)
    return out
