"""``encode``, ``decode`` and ``quantize`` of arrays that live on an NVIDIA GPU (numba-cuda).

The same rounding routines as :mod:`fp8emu.quantize` (the ``@njit`` functions of
``_kernels.py``, compiled again as CUDA device functions), the same path selection, and the
same random words for stochastic rounding: for the same arguments a GPU call returns the
bits that the CPU call returns.  Needs the ``cuda`` extra (``pip install fp8emu[cuda]``).

Inputs are any C-contiguous device arrays: Numba device arrays, or anything that exposes
``__cuda_array_interface__`` (PyTorch CUDA tensors, CuPy arrays), viewed without a copy.
Results are Numba device arrays shaped like the input; ``torch.as_tensor(result,
device="cuda")`` and ``cupy.asarray(result)`` view them without a copy.  Where a dtype has no
device-array form (bfloat16: neither Numba nor ``__cuda_array_interface__`` know it), pass
its bits as uint16 and say ``x_dtype="bfloat16"``; ``quantize`` then returns bits too.

With ``NUMBA_ENABLE_CUDASIM=1`` Numba's CUDA simulator runs the kernels on the CPU (slowly:
for tests of small arrays).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numba import cuda
from numba.core import config as _numba_config

from . import _cuda_kernels, _cuda_launch, _kernels
from ._random import call_keys, key_base, new_seed
from .format import Format, RoundMode
from .formats import get_format
from .quantize import INPUT_LAYOUTS, kernel_arguments
from .quantize import decode as _host_decode

__all__ = ["encode", "decode", "quantize", "simulated", "launch_config"]


class _Tuning(NamedTuple):
    """Launch geometry and kernel variant of the rounding kernels (none changes a bit).

    Attributes:
        threads: threads per block.
        blocks_per_sm: blocks per multiprocessor at most (a grid-stride loop covers the rest);
            0: as many blocks as the array needs (one loop step per thread).
        ilp: elements per thread and loop step.
        specialize: the float32 path compiles one kernel per rounding mode (the CPU's
            ``_round_f32_k`` with a literal mode); False: the mode is read per element.
        unsigned: unsigned loop indices (False: signed, with Numba's negative-index wrap-around).
        value_kernels: with ``specialize``, float32 ``quantize`` runs on the CPU's value routines
            (``_kernels._value_f32``/``_value_f32_sr``, as the CPU's float32 quantize does);
            False: ``_round_f32_k``'s value.
        fixed_block: the block size is a constant of the kernel (one address per loop step,
            constant offsets), not read at run time.
    """

    # The fastest variant on an H200 (benchmarks.cuda_check --only variants, docs/cuda.md): 16
    # blocks of 256 per multiprocessor (twice what stays resident: the next wave is queued).
    threads: int = 256
    blocks_per_sm: int = 16
    ilp: int = _cuda_kernels.ILP
    specialize: bool = True
    unsigned: bool = True
    value_kernels: bool = True
    fixed_block: bool = True


def _parse_tuning(text: str) -> _Tuning:
    """``FP8EMU_CUDA_TUNING``'s ``"threads=512,blocks_per_sm=16,ilp=8,specialize=0"`` (any subset)."""
    fields: dict[str, int] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, val = item.partition("=")
        if not sep or key not in _Tuning._fields or not val.strip().isdigit():
            raise ValueError(f"FP8EMU_CUDA_TUNING: bad item {item!r}; expected name=integer with names "
                             f"{', '.join(_Tuning._fields)}")
        fields[key] = int(val)
    return _checked_tuning(_Tuning()._replace(**fields))


def _checked_tuning(t: _Tuning) -> _Tuning:
    if not (32 <= t.threads <= 1024 and t.threads % 32 == 0):
        raise ValueError(f"threads={t.threads}: a multiple of 32 in 32..1024")
    if not 0 <= t.blocks_per_sm <= 64:
        raise ValueError(f"blocks_per_sm={t.blocks_per_sm}: 0 (no cap) .. 64")
    if not 1 <= t.ilp <= 16:
        raise ValueError(f"ilp={t.ilp}: 1..16")
    return t._replace(specialize=bool(t.specialize), unsigned=bool(t.unsigned), value_kernels=bool(t.value_kernels),
                      fixed_block=bool(t.fixed_block))


_TUNING = _parse_tuning(os.environ.get("FP8EMU_CUDA_TUNING", ""))


@contextmanager
def _tuned(**fields):
    """Benchmark-only: run the block with other launch geometry or kernel variant (``_Tuning``'s
    fields); launch plans made meanwhile are dropped on both sides of it."""
    global _TUNING
    old = _TUNING
    _TUNING = _checked_tuning(old._replace(**fields))
    _PLANS.clear()
    try:
        yield _TUNING
    finally:
        _TUNING = old
        _PLANS.clear()


_P32_UNUSED = (np.int32(0),) * len(_kernels.PARAMS_F32)     # the float32 tuple of paths that do not read it


def simulated() -> bool:
    """Whether Numba's CUDA simulator runs the kernels (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(_numba_config.ENABLE_CUDASIM)


@lru_cache(maxsize=None)
def _sm_count() -> int:
    if simulated():
        return 1
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def launch_config(n: int, per_thread: int = 1) -> tuple[int, int]:
    """``(blocks, threads)`` of a grid-stride launch over ``n`` elements, ``per_thread`` each
    loop step.  The simulator gets 2 blocks of 8 threads (it runs a Python thread per GPU
    thread), enough to exercise the grid-stride and tail logic.

    Args:
        n: the number of elements.
        per_thread: the elements each thread handles per loop step (the kernel's unrolling).

    Returns:
        ``(blocks, threads per block)``.
    """
    if simulated():
        return max(1, min(2, -(-n // (8 * per_thread)))), 8
    t = _TUNING
    blocks = -(-n // (t.threads * per_thread))
    if t.blocks_per_sm:
        blocks = min(blocks, _sm_count() * t.blocks_per_sm)
    return max(1, blocks), t.threads


def _device_array(x, argname: str, fn: str):
    """A Numba device-array view of ``x`` (no copy), C-contiguous, or a precise error."""
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        raise TypeError(f"{argname} is a host array; use fp8emu.{fn} for host arrays, or copy it to the GPU first "
                        "(numba.cuda.to_device, torch.Tensor.cuda)")
    if cuda.devicearray.is_cuda_ndarray(x):
        arr = x
    elif hasattr(x, "__cuda_array_interface__") and not simulated():
        arr = cuda.as_cuda_array(x)
    else:
        raise TypeError(f"{argname} must be a CUDA device array (Numba device array, or an object with "
                        f"__cuda_array_interface__ such as a CUDA torch.Tensor or a CuPy array), got "
                        f"{type(x).__name__}")
    if not arr.is_c_contiguous():
        raise ValueError(f"{argname} is not C-contiguous; make a contiguous copy first (torch: .contiguous(), "
                         "CuPy: cupy.ascontiguousarray)")
    if not np.dtype(arr.dtype).isnative:
        # the kernels read and write native bit patterns: a swapped array would be read wrong
        raise TypeError(f"{argname} has dtype {np.dtype(arr.dtype)}, not in native byte order; convert it on the "
                        "host before copying it to the GPU (x.astype(x.dtype.newbyteorder('=')))")
    return arr


def _flat(arr):
    return arr.reshape(arr.size) if arr.ndim != 1 else arr


@lru_cache(maxsize=None)
def _device_lut(fmt: Format, dtype_name: str, device_id: int):
    """The value of every code of ``fmt`` as ``dtype_name`` bits (the CPU's :func:`fp8emu.decode`,
    NaN codes the positive quiet NaN), copied to device ``device_id`` once; raises ValueError
    when the dtype cannot hold ``fmt``'s values, or (the Format's own message) when ``fmt`` is
    wider than 16 bits (those formats have no table: their kernels build each value from its code)."""
    fmt.values()   # raises for formats without a value table, before any 2**bits allocation
    table = _host_decode(np.arange(fmt.num_codes, dtype=np.int64), fmt, dtype=_dtype_of(dtype_name))
    return cuda.to_device(np.ascontiguousarray(table.view(INPUT_LAYOUTS[dtype_name].uint)))


def _dtype_of(name: str):
    if name == "bfloat16":
        import ml_dtypes   # only bfloat16 needs it (as on the CPU)
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _device_id() -> int:
    return 0 if simulated() else int(cuda.get_current_device().id)


def _lut_on_device(fmt: Format, dtype_name: str):
    return _device_lut(fmt, dtype_name, _device_id())


@lru_cache(maxsize=None)
def _placeholder(device_id: int):
    """A 1-element device array for kernel arguments that a path does not read."""
    return cuda.to_device(np.zeros(1, np.int32))


def _input_kind(arr, x_dtype, argname: str = "x") -> tuple[str, tuple]:
    """(float dtype name, ``INPUT_LAYOUTS`` info) of a device array, reading ``x_dtype`` for bits."""
    dt = np.dtype(arr.dtype)
    if x_dtype is None:
        if dt.kind != "f" or dt.name not in INPUT_LAYOUTS:
            raise TypeError(f"{argname} has dtype {dt}; allowed: float16, float32, float64, or the bits of one of "
                            f"{', '.join(INPUT_LAYOUTS)} as an unsigned array with x_dtype= naming it")
        return dt.name, INPUT_LAYOUTS[dt.name]
    name = x_dtype if isinstance(x_dtype, str) else getattr(np.dtype(x_dtype), "name", str(x_dtype))
    if name not in INPUT_LAYOUTS:
        raise TypeError(f"x_dtype={x_dtype!r} is not supported; allowed: {', '.join(INPUT_LAYOUTS)}")
    info = INPUT_LAYOUTS[name]
    if dt.itemsize != np.dtype(info.uint).itemsize or dt.kind not in "uif":
        raise TypeError(f"{argname} has dtype {dt}, which cannot hold {name} bits; pass a "
                        f"{np.dtype(info.uint).name} array (or a {name} array without x_dtype)")
    if dt.kind == "f" and dt.name != name:
        raise TypeError(f"{argname} has dtype {dt} but x_dtype={name!r}")
    return name, info


def _check_out(out, shape: tuple, dtype: np.dtype, fn: str, *, bits_of: str | None = None, argname: str = "out"):
    """A Numba device-array view of ``out`` after checking it as the CPU's ``out=`` is checked.

    Args:
        out: the caller's ``out``.
        shape: the result's shape.
        dtype: the result's dtype.
        fn: the calling function's name (for the host-array message).
        bits_of: the float dtype whose bits ``dtype`` holds, if any.  For ``"bfloat16"`` an int16
            ``out`` is as good as uint16: the PyTorch bridge passes bfloat16 tensors as their
            int16 bits (``fp8emu.torch._cuda._AS_INT``).  Any other dtype must be ``dtype``
            itself, as on the CPU (which refuses, e.g., int32 for float32: a kernel would write
            float bit patterns into integers).

    Raises:
        TypeError: a host array, not a device array, or the wrong dtype.
        ValueError: not C-contiguous, or the wrong shape.
    """
    arr = _device_array(out, argname, fn)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{argname} has shape {tuple(arr.shape)}; expected {tuple(shape)}")
    got = np.dtype(arr.dtype)
    if bits_of == "bfloat16":
        if got not in (np.dtype(np.uint16), np.dtype(np.int16)):
            raise TypeError(f"{argname} has dtype {got}; expected uint16 or int16 (the bits of bfloat16)")
    elif got != dtype:
        raise TypeError(f"{argname} has dtype {got}; expected {dtype}")
    return arr


def _byte_range(arr) -> tuple[int, int]:
    """``[first, end)`` device addresses of the memory of the C-contiguous device array ``arr``."""
    if simulated():   # the simulator's arrays wrap host NumPy arrays (no __cuda_array_interface__)
        first = int(arr._ary.__array_interface__["data"][0])
    else:
        first = int(arr.__cuda_array_interface__["data"][0])
    return first, first + int(arr.nbytes)


def _overlaps_other_than_identical(out, src) -> bool:
    """Whether the C-contiguous device arrays ``out`` and ``src`` (of the same shape) share memory
    other than as the identical buffer with the same element size.  A kernel thread reads
    ``src[i]`` and then writes ``out[i]``, so only the identical buffer is safe in place; any other
    overlap lets a thread overwrite elements that another thread has yet to read (the CPU's
    ``_direct_target`` computes into a temporary then, as the callers here do)."""
    if out.size == 0 or src.size == 0:     # an empty array's pointer may be anything (0, or another's)
        return False
    out_first, out_end = _byte_range(out)
    src_first, src_end = _byte_range(src)
    if out_first >= src_end or src_first >= out_end:
        return False
    return not (out_first == src_first and out.dtype.itemsize == src.dtype.itemsize)


def _direct_or_temporary(out, src, cuda_stream):
    """``(where the kernel writes, out)``: ``out`` itself, or a new array of its dtype when it
    overlaps ``src`` (see :func:`_overlaps_other_than_identical`); :func:`_deliver` then copies it."""
    if _overlaps_other_than_identical(out, src):
        return cuda.device_array(out.shape, out.dtype, stream=0 if cuda_stream is None else cuda_stream), out
    return out, out


def _deliver(written, out, cuda_stream):
    """``out`` after the kernel's result ``written`` (a temporary, or ``out`` itself) is in it;
    the copy runs on the kernel's stream, so it follows the kernel without a host wait."""
    if written is not out:
        out.copy_to_device(written, stream=0 if cuda_stream is None else cuda_stream)
    return out


def _launch(kernel, n: int, cuda_stream, *args) -> None:
    blocks, threads = launch_config(n, _TUNING.ilp)
    if simulated():
        if cuda_stream is None:
            kernel[blocks, threads](*args)
        else:
            kernel[blocks, threads, cuda_stream](*args)
    else:
        _cuda_launch.launch(kernel, blocks, threads, cuda_stream, args)


def _round(x, fmt, rounding, saturate, seed, sr_bits, stream, out, x_dtype, cuda_stream, values: bool,
           plan_device: int | None = None):
    """Shared body of :func:`encode` (``values=False``) and :func:`quantize` (``values=True``).

    With ``plan_device`` (the device of the current context) the launch also binds the
    pointer-launch plan of these arguments (:func:`_round_ptr`), once.
    """
    fn = "quantize" if values else "encode"
    arr = _device_array(x, "x", fn)
    name, info = _input_kind(arr, x_dtype)
    args = kernel_arguments(fmt, _dtype_of(name), rounding=rounding, saturate=saturate, seed=seed, sr_bits=sr_bits,
                            stream=stream, values=values)
    fmt0, fmt = fmt, get_format(fmt)
    src = _flat(arr).view(info.uint)
    stochastic = RoundMode.parse(rounding) is RoundMode.STOCHASTIC
    if values:
        out_dtype = np.dtype(arr.dtype)
    else:
        out_dtype = np.dtype(fmt.code_dtype)
    # the table (or its parameters) first: it raises when the dtype cannot hold fmt
    kernel, lut, p32, lim = _kernel_and_constants(fmt, name, args, stochastic, sr_bits, values)
    if out is None:
        target = written = cuda.device_array(arr.shape, out_dtype, stream=0 if cuda_stream is None else cuda_stream)
    else:
        checked = _check_out(out, arr.shape, out_dtype, fn, bits_of=name if values and x_dtype is not None else None)
        written, target = _direct_or_temporary(checked, arr, cuda_stream)
    dst = _flat(written).view(info.uint if values else fmt.code_dtype)
    n = src.shape[0]
    if n == 0:
        return target
    launch_args = (src, dst, lut, p32, args.params, args.keys.base, args.keys.key0, lim)
    _launch(kernel, n, cuda_stream, *launch_args)
    if plan_device is not None:
        _bind_plan((fmt0, name, values, rounding, saturate, sr_bits, plan_device), kernel, launch_args, args)
    return _deliver(written, target, cuda_stream)


def _kernel_and_constants(fmt: Format, name: str, args, stochastic: bool, sr_bits, values: bool) -> tuple:
    """``(kernel, lut, p32, lim)``: the kernel of a call and its arguments that depend on
    neither the arrays nor the random-number keys (``args``: its :class:`KernelArguments`)."""
    wide = values and fmt.bits > 16                # no table: values built from the codes
    if values:
        # the table raises when the dtype cannot hold fmt; kernel_arguments checked a wide format
        lut = args.value_params if wide else _lut_on_device(fmt, name)
    else:
        lut = _placeholder(_device_id())          # encode reads no table
    t = _TUNING
    block = launch_config(1)[1] if t.fixed_block else 0
    if values and t.specialize and t.value_kernels and args.params_f32_values is not None:
        # float32 quantize: the CPU's value routines, their constants in the p32 slot
        pv = args.params_f32_values
        lean, nz = _kernels._value_variant(pv)[1:]
        lim = np.uint32(args.deep_limit32 - 1 if stochastic and not sr_bits and args.deep_limit32 else 0)
        kernel = _cuda_kernels.value_kernel(stochastic, int(pv[7]), wide=wide, lean=lean, nz=nz,
                                            rbits=bool(stochastic and sr_bits), ilp=t.ilp, unsigned=t.unsigned,
                                            block=block)
        return kernel, lut, _value_constants(pv, 5 if stochastic else int(pv[7])), lim
    p32 = args.params_f32
    lim = np.uint32(0)
    mode, hi32 = None, False
    if args.kernel == "f32":
        if stochastic and sr_bits is None and args.deep_limit:
            lim = np.uint32(args.deep_limit - 1)     # 0 < |x| bits <= lim: deep
        if t.specialize:
            # the CPU's float32 kernels: one per mode; r-bit SR compares the word's high half
            mode, hi32 = int(p32[7]), bool(stochastic and sr_bits)
    else:
        p32 = _P32_UNUSED
    kernel = _cuda_kernels.kernel(args.kernel, stochastic, values, wide=wide, mode=mode, hi32=hi32, ilp=t.ilp,
                                  unsigned=t.unsigned, block=block)
    return kernel, lut, p32, lim


@lru_cache(maxsize=1024)
def _value_constants(p: tuple, mode: int) -> tuple:
    """``_kernels._value_f32_consts(p, mode)`` with the CPU loop's integer types (int32, the last
    one uint32): Numba returns them to Python as ints, which a kernel would take as int64."""
    c = _kernels._value_f32_consts(p, mode)
    return tuple(np.int32(v) for v in c[:-1]) + (np.uint32(c[-1]),)


# ----------------------------------------------------------------------------------------------
# Launch from raw pointers (the PyTorch bridge): a plan per call signature, bound by the first call

#: (fmt, dtype name, values, rounding, saturate, its type, sr_bits, its type, device)
#: -> (Plan, stochastic, the keys of a deterministic call).  Formats are frozen data: equal
#: formats round alike, so they share a plan.
_PLANS: dict[tuple, tuple] = {}
_MAX_PLANS = 4096      # a process that makes formats on the fly must not grow without bound


def _plans_enabled() -> bool:
    """Whether :func:`_round_ptr` may launch (a real GPU, and fp8emu's own launch not switched off)."""
    return not simulated() and _cuda_launch.enabled()


def _plan_key(fmt, name: str, values: bool, rounding, saturate, sr_bits, device: int) -> tuple:
    # the types too: True == 1 would otherwise find the plan of sr_bits=1 (which the checks refuse)
    return (fmt, name, values, rounding, saturate, type(saturate), sr_bits, type(sr_bits), device)


def _bind_plan(call: tuple, kernel, launch_args: tuple, args) -> None:
    """Bind the plan of ``call`` = (fmt, name, values, rounding, saturate, sr_bits, device) from the
    launch just made with ``launch_args`` (in that device's context), unless bound already or off."""
    key = _plan_key(*call)
    if key in _PLANS or not _cuda_launch.enabled():
        return
    plan = _cuda_launch.Plan()
    try:
        plan.bind(kernel, launch_args)
    except Exception as exc:      # another numba-cuda: the cached launch still works
        _cuda_launch.disable(exc, "pointer kernel launch")
        return
    stochastic = RoundMode.parse(call[3]) is RoundMode.STOCHASTIC
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = (plan, stochastic, (int(args.keys.base), int(args.keys.key0)))


@lru_cache(maxsize=4096)
def _sr_keys(seed: int, stream: int) -> tuple[int, int]:
    """The stochastic-rounding keys of ``(seed, stream)`` (as :func:`fp8emu.quantize.kernel_arguments`)."""
    return call_keys(key_base(seed, stream))


def _is_int(v) -> bool:
    return (type(v) is int) or isinstance(v, np.integer)


def _round_ptr(src_ptr: int, dst_ptr: int, n: int, name: str, fmt, values: bool, stream_handle: int, device: int, *,
               rounding=RoundMode.NEAREST_EVEN, saturate=False, seed=None, sr_bits=None, stream=0) -> bool:
    """:func:`encode`/:func:`quantize` of ``n`` elements of C-contiguous device memory at ``src_ptr``
    (``name``'s bits) into ``dst_ptr``, on the stream ``stream_handle`` of ``device``, whose context
    must be current; through the plan that an earlier call with the same arguments bound.

    Returns:
        True if launched; False when there is no plan yet (or pointer launches are off, or an
        argument is not of a type that the plan was checked for): the caller then takes
        :func:`_round` with ``plan_device``, which raises the precise errors and binds the plan.
    """
    try:
        entry = _PLANS.get(_plan_key(fmt, name, values, rounding, saturate, sr_bits, device))
    except TypeError:            # an unhashable argument: _round says what is wrong with it
        return False
    if entry is None or not _cuda_launch.enabled():
        return False
    plan, stochastic, keys = entry
    # what kernel_arguments accepts (bool is an int to Python, not to it); anything else: _round's message
    if not _is_int(stream) or type(stream) is bool or not (seed is None or _is_int(seed)) or type(seed) is bool:
        return False
    if stochastic:
        keys = _sr_keys.__wrapped__(new_seed(), int(stream)) if seed is None else _sr_keys(int(seed), int(stream))
    if n == 0:
        return True
    blocks, threads = launch_config(n, _TUNING.ilp)
    return plan.launch(blocks, threads, stream_handle, src_ptr, dst_ptr, n, *keys)


def encode(x: Any, fmt: Format | str, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
           saturate: bool = False, seed: int | None = None, sr_bits: int | None = None, stream: int = 0,
           out: Any = None, x_dtype: str | None = None, cuda_stream: Any = None) -> Any:
    """:func:`fp8emu.encode` of a device array: the codes, on the same GPU.

    Args:
        x: C-contiguous device array of float16, float32 or float64 (or the unsigned bits of
            any supported dtype, bfloat16 included, with ``x_dtype``).
        fmt: a :class:`~fp8emu.format.Format` or a format name.
        rounding: as :func:`fp8emu.encode`.
        saturate: as :func:`fp8emu.encode`.
        seed: as :func:`fp8emu.encode`; the same ``(seed, stream)`` gives the CPU's
            stochastic roundings element for element.
        sr_bits: as :func:`fp8emu.encode`.
        stream: as :func:`fp8emu.encode`.
        out: optional C-contiguous device array of ``x``'s shape and ``fmt.code_dtype``.
        x_dtype: the float dtype whose bits ``x`` holds (``"bfloat16"``), or None.
        cuda_stream: a Numba stream to launch on (``numba.cuda.external_stream(h)`` wraps
            another library's, e.g. ``torch.cuda.current_stream().cuda_stream``); None = the
            default stream.

    Returns:
        A Numba device array of codes (or ``out``), shaped like ``x``.

    Raises:
        TypeError: ``x`` is a host array or of an unsupported dtype; ``out`` has the wrong dtype.
        ValueError: as :func:`fp8emu.encode`; ``x``/``out`` not C-contiguous or shapes differ.
    """
    return _round(x, fmt, rounding, saturate, seed, sr_bits, stream, out, x_dtype, cuda_stream, False)


def quantize(x: Any, fmt: Format | str, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
             saturate: bool = False, seed: int | None = None, sr_bits: int | None = None, stream: int = 0,
             out: Any = None, x_dtype: str | None = None, cuda_stream: Any = None) -> Any:
    """:func:`fp8emu.quantize` of a device array: the rounded values in ``x``'s dtype.

    With ``x_dtype`` the result holds that dtype's bits in ``x``'s unsigned dtype.

    Args:
        x: as :func:`encode`.
        fmt: as :func:`encode`.
        rounding: as :func:`encode`.
        saturate: as :func:`encode`.
        seed: as :func:`encode`.
        sr_bits: as :func:`encode`.
        stream: as :func:`encode`.
        out: optional device array of ``x``'s shape and dtype; may be ``x`` itself (in place);
            one that overlaps ``x`` otherwise receives the result through a temporary.
        x_dtype: as :func:`encode`.
        cuda_stream: as :func:`encode`.

    Returns:
        A Numba device array (or ``out``) of ``x``'s shape and dtype.

    Raises:
        TypeError: as :func:`encode`.
        ValueError: as :func:`encode`; also when ``fmt`` has values that the dtype cannot hold.
    """
    return _round(x, fmt, rounding, saturate, seed, sr_bits, stream, out, x_dtype, cuda_stream, True)


def decode(codes: Any, fmt: Format | str, *, dtype: Any = np.float32, out: Any = None,
           cuda_stream: Any = None) -> Any:
    """:func:`fp8emu.decode` of a device array of codes.

    Args:
        codes: C-contiguous device array of integer codes ``0 .. fmt.num_codes - 1``.
        fmt: a :class:`~fp8emu.format.Format` or a format name.
        dtype: float16, float32, float64, or bfloat16 (returned as its uint16 bits).
        out: optional C-contiguous device array of ``codes``' shape and that dtype (bfloat16:
            uint16 or int16); one that overlaps ``codes`` receives the result through a temporary.
        cuda_stream: as :func:`encode`.

    Returns:
        A Numba device array of values (or ``out``).

    Raises:
        TypeError: non-integer codes, unsupported ``dtype``, or ``out`` of the wrong dtype.
        ValueError: a code out of range (checked on the GPU: this call then waits for the
            kernel; codes whose dtype cannot go out of range are not checked), or ``dtype``
            cannot hold ``fmt``'s values exactly.
    """
    fmt = get_format(fmt)
    try:
        dt = np.dtype(_dtype_of(dtype) if isinstance(dtype, str) and dtype == "bfloat16" else dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in INPUT_LAYOUTS:
        raise TypeError(f"dtype={dtype!r} is not supported; allowed: float16, bfloat16 (ml_dtypes), float32, float64")
    if not dt.isnative:
        raise TypeError(f"dtype={dtype!r} is not in native byte order; device arrays hold native values "
                        "(fp8emu.decode on the host takes either byte order)")
    arr = _device_array(codes, "codes", "decode")
    cdt = np.dtype(arr.dtype)
    if cdt.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got dtype {cdt}")
    wide = fmt.bits > 16                           # no table: values built from the codes
    # the table-free parameters, or the table; both raise when dt cannot hold fmt's values
    lut = kernel_arguments(fmt, dt, values=True).value_params if wide else _lut_on_device(fmt, dt.name)
    udt = np.dtype(INPUT_LAYOUTS[dt.name].uint)
    store = udt if dt.name == "bfloat16" else dt
    if out is None:
        target = written = cuda.device_array(arr.shape, store, stream=0 if cuda_stream is None else cuda_stream)
    else:
        checked = _check_out(out, arr.shape, store, "decode", bits_of=dt.name if store != dt else None)
        written, target = _direct_or_temporary(checked, arr, cuda_stream)
    n = arr.size
    if n == 0:
        return target
    # Only a dtype that can hold a code outside 0 .. num_codes - 1 needs the check (and its wait).
    check = cdt.kind == "i" or 2 ** (8 * cdt.itemsize) > fmt.num_codes
    bad = cuda.to_device(np.zeros(1, np.int32)) if check else _placeholder(_device_id())
    blocks, threads = launch_config(n)
    args = (_flat(arr), _flat(written).view(udt), lut, np.int64(fmt.num_codes), bad)
    kernel = _cuda_kernels.decode_wide_kernel if wide else _cuda_kernels.decode_kernel
    if cuda_stream is None:
        kernel[blocks, threads](*args)
    else:
        kernel[blocks, threads, cuda_stream](*args)
    if check:
        if int(bad.copy_to_host(stream=0 if cuda_stream is None else cuda_stream)[0]):
            raise ValueError(f"codes contains values out of range for {fmt.name} (0..{fmt.num_codes - 1})")
    return _deliver(written, target, cuda_stream)
