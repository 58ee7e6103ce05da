"""CUDA implementations of the ``fp8emu::encode``/``decode``/``quantize`` operators.

They hand Numba views of the CUDA tensors (``__cuda_array_interface__``, no copy) to
:mod:`fp8emu.cuda`, whose kernels are the CPU's rounding routines compiled for the GPU, and
launch on PyTorch's current stream of the tensor's device: a CUDA call returns the bits of the
CPU call with the same arguments (stochastic rounding included).  numba-cuda is imported at
the first CUDA call, so ``import fp8emu.torch`` stays light and works without it.
"""

from __future__ import annotations

import functools

import torch

from ..format import Format, RoundMode
from ._ops import OPS, code_dtype, format_from_key

__all__ = ["register", "quantize_into"]

#: bfloat16's ``__cuda_array_interface__`` type string ("<V2") means nothing to Numba: its bits
#: travel as int16 and the kernels are told the dtype (``x_dtype``).
_AS_INT = {torch.bfloat16: torch.int16}


@functools.lru_cache(maxsize=None)
def _numba():
    """``(numba.cuda, fp8emu.cuda)``, imported at the first CUDA call (once: the import statement costs per call)."""
    try:
        from numba import cuda
        from .. import cuda as fc
    except ImportError as exc:     # pragma: no cover - the cuda extra is installed in CI
        raise ImportError("CUDA tensors need numba-cuda: pip install 'fp8emu[cuda]'") from exc
    return cuda, fc


def _view(t: torch.Tensor, cuda):
    """A Numba device-array view of a contiguous CUDA tensor (bfloat16/uint16 through int16)."""
    t = t.detach()
    return cuda.as_cuda_array(t.view(_AS_INT.get(t.dtype, t.dtype)))


@functools.lru_cache(maxsize=64)
def _numba_stream(handle: int):
    """Numba's wrapper of a PyTorch stream (it does not own the stream; creating one per call
    cost ~20 us on an H200 host)."""
    return _numba()[0].external_stream(handle)


def _launch(t: torch.Tensor, fn) -> None:
    """Run ``fn(cuda, fc, stream)`` on ``t``'s device and PyTorch's current stream there."""
    cuda, fc = _numba()
    with cuda.gpus[t.device.index if t.device.index is not None else torch.cuda.current_device()]:
        fn(cuda, fc, _numba_stream(torch.cuda.current_stream(t.device).cuda_stream))


#: The kernels' names of the tensors' dtypes.
_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.float64: "float64", torch.bfloat16: "bfloat16"}


def _round(src: torch.Tensor, dst: torch.Tensor, fmt: Format, values: bool, rounding=RoundMode.NEAREST_EVEN,
           saturate=False, seed=None, sr_bits=None, stream=0) -> None:
    """``fp8emu.cuda`` encode (``values=False``) or quantize of contiguous ``src`` into contiguous ``dst``.

    The fast path: when the tensor's device is the current one, launch from the tensors'
    pointers on PyTorch's current stream through the plan of these arguments (no Numba device
    arrays, no context switch); the first call of a plan, a call on another device, bad
    arguments and ``FP8EMU_CUDA_LAUNCH=numba`` take Numba views (which also binds the plan).
    """
    cuda, fc = _numba()
    name = _NAMES.get(src.dtype)
    dev = src.device.index
    plan_device = None
    # the plan was checked for dst of src's shape and (values) dtype: anything else takes _check_out
    if (name is not None and fc._plans_enabled() and dst.shape == src.shape and (dst.dtype == src.dtype or not values)
            and dev == torch.cuda.current_device()):
        if fc._round_ptr(src.data_ptr(), dst.data_ptr(), src.numel(), name, fmt, values,
                         torch.cuda.current_stream(dev).cuda_stream, dev, rounding=rounding, saturate=saturate,
                         seed=seed, sr_bits=sr_bits, stream=stream):
            return
        plan_device = dev
    x_dtype = "bfloat16" if src.dtype == torch.bfloat16 else None
    _launch(src, lambda cuda, fc, s: fc._round(_view(src, cuda), fmt, rounding, saturate, seed, sr_bits, stream,
                                               _view(dst, cuda), x_dtype, s, values, plan_device=plan_device))


def _encode_cuda(x, fmt, rounding, saturate, seed, sr_bits, stream):
    f = format_from_key(fmt)
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=code_dtype(f), device=x.device)
    _round(x, out, f, False, rounding=rounding, saturate=saturate, seed=seed, sr_bits=sr_bits or None, stream=stream)
    return out


def _decode_cuda(codes, fmt, dtype):
    codes = codes.contiguous()
    out = torch.empty(codes.shape, dtype=dtype, device=codes.device)
    name = str(dtype).removeprefix("torch.")
    _launch(codes, lambda cuda, fc, s: fc.decode(_view(codes, cuda), format_from_key(fmt), dtype=name,
                                                 out=_view(out, cuda), cuda_stream=s))
    return out


def _overlaps_other_than_identical(out: torch.Tensor, src: torch.Tensor) -> bool:
    """Whether the contiguous tensors ``out`` and ``src`` (of the same shape) share memory other
    than as the identical buffer with the same element size.  A kernel thread reads ``src[i]`` and
    then writes ``out[i]``, so only the identical buffer is safe in place: with any other overlap
    (``out = buf[1:]``, ``src = buf[:-1]``) a thread overwrites elements that another has yet to
    read.  Both fast (pointer) and Numba launches write ``out`` directly, so this is decided here,
    from the tensors' address ranges (``fp8emu.cuda`` makes the same test on its own arguments)."""
    if out.numel() == 0 or src.numel() == 0:
        return False
    out_first, src_first = out.data_ptr(), src.data_ptr()
    out_end = out_first + out.numel() * out.element_size()
    src_end = src_first + src.numel() * src.element_size()
    if out_first >= src_end or src_first >= out_end:
        return False
    return not (out_first == src_first and out.element_size() == src.element_size())


def quantize_into(x: torch.Tensor, fmt: Format, out: torch.Tensor | None = None, **kw) -> torch.Tensor:
    """:func:`fp8emu.quantize` of a CUDA tensor on the GPU, into ``out`` (may be ``x``) or a new tensor.

    The kernel reads and writes C-contiguous memory: a strided ``x`` is copied first (the
    element index of stochastic rounding is the C-order index either way), a strided ``out``
    receives the result by a copy.  Launched on PyTorch's current stream: no host sync.

    Args:
        x: a CUDA tensor (float16, bfloat16, float32, float64).
        fmt: the target format.
        out: a CUDA tensor of ``x``'s shape and dtype, or None.
        **kw: ``rounding``, ``saturate``, ``seed``, ``sr_bits``, ``stream`` as :func:`fp8emu.quantize`.

    Returns:
        ``out``, or the new tensor.
    """
    if out is not None:
        # checked here, not only by fp8emu.cuda: a strided or overlapping out gets the result by
        # out.copy_, which would broadcast another shape and convert another dtype silently
        if out.shape != x.shape:
            raise ValueError(f"out has shape {tuple(out.shape)}; expected {tuple(x.shape)}")
        if out.dtype != x.dtype:
            raise TypeError(f"out has dtype {out.dtype}; expected {x.dtype}")
    src = x.contiguous()
    if out is not None and out.is_contiguous() and not _overlaps_other_than_identical(out, src):
        dst = out
    else:   # the kernel writes contiguous memory that no other thread still has to read
        dst = torch.empty_like(src, memory_format=torch.contiguous_format)
    _round(src, dst, fmt, True, **kw)
    if out is not None and dst is not out:
        return out.copy_(dst)
    return dst


def _quantize_cuda(x, fmt, rounding, saturate, seed, sr_bits, stream):
    return quantize_into(x, format_from_key(fmt), rounding=rounding, saturate=saturate, seed=seed,
                         sr_bits=sr_bits or None, stream=stream)


def register() -> None:
    """Add the CUDA kernels to the operators (``fake_quant`` calls ``quantize``: it follows)."""
    OPS["encode"].register_kernel("cuda")(_encode_cuda)
    OPS["decode"].register_kernel("cuda")(_decode_cuda)
    OPS["quantize"].register_kernel("cuda")(_quantize_cuda)


register()
