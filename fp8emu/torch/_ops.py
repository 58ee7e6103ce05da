"""The torch.library operators ``fp8emu::encode``, ``fp8emu::decode``, ``fp8emu::quantize`` and
``fp8emu::fake_quant`` and their CPU implementations.

Each operator is defined once with its schema, a fake (meta) implementation that only
computes the output's shape and dtype (so ``torch.compile`` traces through it without a graph
break), and, where it has one, its autograd formula.  The CPU implementations hand zero-copy
NumPy views of the tensors to :mod:`fp8emu.quantize`: the bits are fp8emu's by construction,
never a re-implementation.  Another device adds a kernel to the same operator, e.g.::

    fp8emu.torch.OPS["quantize"].register_kernel("cuda")(my_cuda_quantize)

The operators take the format as a string key (:func:`format_key`) and every seed/stream as
a signed 64-bit int (the value mod 2^64, which is how fp8emu reads seeds and streams).
Validation happens in the public wrappers (:mod:`fp8emu.torch.ops`) before an operator runs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..format import Format, Specials
from ..quantize import decode as _np_decode
from ..quantize import encode as _np_encode
from ..quantize import quantize as _np_quantize

__all__ = ["OPS", "format_key", "format_from_key", "as_numpy", "code_dtype", "int64_of"]

_MASK64 = (1 << 64) - 1


def int64_of(value: int) -> int:
    """``value`` mod 2^64 as a signed 64-bit int (the operators' schemas take int64)."""
    v = int(value) & _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def format_key(fmt: Format) -> str:
    """A string that :func:`format_from_key` turns back into an equal Format (schemas take no dataclass)."""
    return (f"{fmt.name}|{fmt.exp_bits},{fmt.man_bits},{fmt.bias},{int(fmt.subnormals)},{fmt.specials.value},"
            f"{int(fmt.signed)},{int(fmt.has_zero)},{fmt.tie_rule.value}")


@lru_cache(maxsize=256)
def format_from_key(key: str) -> Format:
    """The Format of :func:`format_key`'s string (one object per key: Formats are frozen, and the GPU's
    launch plans are looked up by format on every call)."""
    name, fields = key.rsplit("|", 1)
    e, m, bias, sub, specials, signed, has_zero, tie_rule = fields.split(",")
    return Format(int(e), int(m), bias=int(bias), subnormals=bool(int(sub)), specials=Specials(specials),
                  signed=bool(int(signed)), has_zero=bool(int(has_zero)), tie_rule=tie_rule, name=name)


def code_dtype(fmt: Format) -> torch.dtype:
    """The torch dtype of ``fmt``'s codes (uint8, uint16 or uint32), as NumPy's ``fmt.code_dtype``."""
    return {1: torch.uint8, 2: torch.uint16, 4: torch.uint32}[np.dtype(fmt.code_dtype).itemsize]


@lru_cache(maxsize=1)
def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes comes with the torch extra
        raise ImportError("bfloat16 tensors need ml_dtypes (pip install 'fp8emu[torch]')") from None
    return np.dtype(ml_dtypes.bfloat16)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A zero-copy NumPy view of a CPU tensor (bfloat16 through a uint16 view: ``.numpy()`` refuses it)."""
    t = t.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(_bfloat16())
    return t.numpy()


# ---- encode -------------------------------------------------------------------------------------------
@torch.library.custom_op("fp8emu::encode", mutates_args=(), device_types="cpu")
def _encode(x: torch.Tensor, fmt: str, rounding: str, saturate: bool, seed: int, sr_bits: int,
            stream: int) -> torch.Tensor:
    f = format_from_key(fmt)
    out = torch.empty(x.shape, dtype=code_dtype(f))
    _np_encode(as_numpy(x), f, rounding=rounding, saturate=saturate, seed=seed, sr_bits=sr_bits or None,
               stream=stream, out=out.numpy())
    return out


@_encode.register_fake
def _encode_fake(x, fmt, rounding, saturate, seed, sr_bits, stream):
    return x.new_empty(x.shape, dtype=code_dtype(format_from_key(fmt)))


# ---- decode -------------------------------------------------------------------------------------------
@torch.library.custom_op("fp8emu::decode", mutates_args=(), device_types="cpu")
def _decode(codes: torch.Tensor, fmt: str, dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(codes.shape, dtype=dtype)
    view = as_numpy(out)
    _np_decode(as_numpy(codes), format_from_key(fmt), dtype=view.dtype, out=view)
    return out


@_decode.register_fake
def _decode_fake(codes, fmt, dtype):
    return codes.new_empty(codes.shape, dtype=dtype)


# ---- quantize (straight-through gradient) -------------------------------------------------------------
@torch.library.custom_op("fp8emu::quantize", mutates_args=(), device_types="cpu")
def _quantize(x: torch.Tensor, fmt: str, rounding: str, saturate: bool, seed: int, sr_bits: int,
              stream: int) -> torch.Tensor:
    out = torch.empty(x.shape, dtype=x.dtype)
    _np_quantize(as_numpy(x), format_from_key(fmt), rounding=rounding, saturate=saturate, seed=seed,
                 sr_bits=sr_bits or None, stream=stream, out=as_numpy(out))
    return out


@_quantize.register_fake
def _quantize_fake(x, fmt, rounding, saturate, seed, sr_bits, stream):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _straight_through(ctx, grad):
    return grad, None, None, None, None, None, None


_quantize.register_autograd(_straight_through)


# ---- fake_quant: quantize forward, a chosen rule for the gradient -------------------------------------
# One implementation for every device: it calls the quantize operator, which dispatches on the device.
@torch.library.custom_op("fp8emu::fake_quant", mutates_args=())
def _fake_quant(x: torch.Tensor, fmt: str, rounding: str, saturate: bool, seed: int, sr_bits: int, stream: int,
                grad_fmt: str, grad_rounding: str, grad_saturate: bool, grad_seed: int, grad_sr_bits: int,
                grad_stream: int) -> torch.Tensor:
    return torch.ops.fp8emu.quantize(x, fmt, rounding, saturate, seed, sr_bits, stream)


@_fake_quant.register_fake
def _fake_quant_fake(x, *args):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _fake_quant_setup(ctx, inputs, output):
    ctx.grad_args = inputs[7:]


def _fake_quant_backward(ctx, grad):
    fmt, rounding, saturate, seed, sr_bits, stream = ctx.grad_args
    if fmt:     # "" = straight-through
        grad = torch.ops.fp8emu.quantize(grad, fmt, rounding, saturate, seed, sr_bits, stream)
    return (grad,) + (None,) * 13


_fake_quant.register_autograd(_fake_quant_backward, setup_context=_fake_quant_setup)

#: The operators by name (``register_kernel(device)`` adds an implementation for another device).
OPS = {"encode": _encode, "decode": _decode, "quantize": _quantize, "fake_quant": _fake_quant}
