"""``encode``, ``decode``, ``quantize`` and ``fake_quant`` on torch tensors.

Same arguments and the same bits as the NumPy API (:func:`fp8emu.encode` etc.): every call
validates its arguments exactly as the NumPy function does, then runs a ``torch.library``
operator whose CPU implementation is that NumPy function on zero-copy views of the tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from .._random import new_seed
from ..autograd import QuantSpec
from ..format import Format, RoundMode
from ..formats import get_format
from ..quantize import encode as _np_encode
from ._ops import format_key, int64_of

__all__ = ["encode", "decode", "quantize", "fake_quant", "FLOAT_DTYPES"]

#: The tensor dtypes encode/quantize accept (the keys of fp8emu.quantize.INPUT_LAYOUTS as torch dtypes).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_DTYPES = (torch.uint8, torch.int8, torch.uint16, torch.int16, torch.uint32, torch.int32, torch.int64)
_EMPTY = np.zeros(0, np.float32)


def _check_float(x, argname: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{argname} must be a torch.Tensor, got {type(x).__name__} (use fp8emu.encode/quantize "
                        "for NumPy arrays)")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{argname} has dtype {x.dtype}; allowed: torch.float16, torch.bfloat16, torch.float32, "
                        "torch.float64")


def _rounding_args(fmt, rounding, saturate, seed, sr_bits, stream) -> tuple:
    """The operator arguments ``(format key, mode, saturate, seed, sr_bits, stream)``.

    Raises what the NumPy functions raise for the same arguments (they check them: an empty
    call), and draws the seed of an unseeded stochastic rounding the way they do.
    """
    fmt = get_format(fmt)
    mode = RoundMode.parse(rounding)
    if torch.compiler.is_compiling():
        # Traced code cannot call into NumPy/Numba here: the operator's implementation checks
        # the same arguments when it runs.  A drawn seed would be frozen into the graph.
        if mode is RoundMode.STOCHASTIC and seed is None:
            raise ValueError("stochastic rounding under torch.compile needs an explicit seed (a seed drawn "
                             "while tracing would be the same on every call)")
    else:
        if mode is RoundMode.STOCHASTIC and seed is None:
            seed = new_seed()
        _np_encode(_EMPTY, fmt, rounding=mode, saturate=saturate, seed=seed, sr_bits=sr_bits, stream=stream)
    return (format_key(fmt), mode.value, bool(saturate), int64_of(seed or 0), int(sr_bits or 0),
            int64_of(stream))


def _to_out(result: torch.Tensor, out: torch.Tensor | None, argname: str = "out") -> torch.Tensor:
    if out is None:
        return result
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{argname} must be a torch.Tensor, got {type(out).__name__}")
    if out.shape != result.shape:
        raise ValueError(f"{argname} has shape {tuple(out.shape)}; expected {tuple(result.shape)}")
    if out.dtype != result.dtype:
        raise TypeError(f"{argname} has dtype {out.dtype}; expected {result.dtype}")
    return out.copy_(result)


def encode(x: torch.Tensor, fmt: Format | str, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
           saturate: bool = False, seed: int | None = None, sr_bits: int | None = None, stream: int = 0,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """Round a float tensor into ``fmt`` and return the codes (as :func:`fp8emu.encode`).

    Args:
        x: float16, bfloat16, float32 or float64 tensor of any shape and strides.
        fmt: a :class:`~fp8emu.Format` or a format name.
        rounding: a :class:`~fp8emu.RoundMode` or its name.
        saturate: clamp overflow and +-Inf to +-max.
        seed: stochastic rounding seed (``None``: drawn from NumPy's global generator, as
            :func:`fp8emu.encode` does).
        sr_bits: ``None`` (exact probabilities) or 1..32 random bits.
        stream: independent random bits per stream for one seed.
        out: optional tensor for the codes (the result is copied into it).

    Returns:
        A uint8, uint16 or uint32 tensor of codes (as ``fmt.code_dtype``), shaped like ``x``; element
        ``i`` (C order) equals ``fp8emu.encode(x.numpy(), ...)[i]``.

    Raises:
        TypeError: ``x`` is not a float tensor of a supported dtype; bad argument types.
        ValueError: unknown format or rounding, bad ``sr_bits``, ``out`` of the wrong shape.
    """
    _check_float(x)
    codes = torch.ops.fp8emu.encode(x, *_rounding_args(fmt, rounding, saturate, seed, sr_bits, stream))
    return _to_out(codes, out)


def decode(codes: torch.Tensor, fmt: Format | str, *, dtype: torch.dtype = torch.float32,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """Values of ``codes`` in ``fmt`` (as :func:`fp8emu.decode`; NaN codes -> quiet NaN).

    Args:
        codes: integer tensor of codes ``0 .. fmt.num_codes - 1``.
        fmt: a :class:`~fp8emu.Format` or a format name.
        dtype: torch.float16, torch.bfloat16, torch.float32 or torch.float64; it must hold
            every value of ``fmt`` exactly.
        out: optional output tensor (the result is copied into it).

    Returns:
        A tensor of ``dtype`` shaped like ``codes``.

    Raises:
        TypeError: non-integer codes or an unsupported ``dtype``.
        ValueError: a code out of range (when the operator runs), or ``dtype`` cannot hold
            ``fmt``'s values.
    """
    fmt = get_format(fmt)
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in _INT_DTYPES:
        raise TypeError(f"codes must be an integer tensor, got dtype {codes.dtype}")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype={dtype!r} is not supported; allowed: torch.float16, torch.bfloat16, "
                        "torch.float32, torch.float64")
    return _to_out(torch.ops.fp8emu.decode(codes, format_key(fmt), dtype), out)


def quantize(x: torch.Tensor, fmt: Format | str, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
             saturate: bool = False, seed: int | None = None, sr_bits: int | None = None, stream: int = 0,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """Fake quantization of a float tensor (as :func:`fp8emu.quantize`), same dtype as ``x``.

    Differentiable with the straight-through rule (the gradient passes unchanged); use
    :func:`fake_quant` to quantize the gradient too.

    Args:
        x: float16, bfloat16, float32 or float64 tensor.
        fmt: a :class:`~fp8emu.Format` or a format name.
        rounding: a :class:`~fp8emu.RoundMode` or its name.
        saturate: clamp overflow and +-Inf to +-max.
        seed: stochastic rounding seed (``None``: drawn, as :func:`fp8emu.quantize` does).
        sr_bits: ``None`` (exact probabilities) or 1..32 random bits.
        stream: independent random bits per stream for one seed.
        out: optional tensor for the result (copied into it; it may be ``x``).

    Returns:
        The rounded values in ``x``'s dtype.

    Raises:
        TypeError, ValueError: as :func:`encode`; also ValueError (when the operator runs) if
            ``x``'s dtype cannot hold every value of ``fmt``.
    """
    _check_float(x)
    q = torch.ops.fp8emu.quantize(x, *_rounding_args(fmt, rounding, saturate, seed, sr_bits, stream))
    return _to_out(q, out)


def _as_spec(spec: QuantSpec | Format | str, argname: str) -> QuantSpec:
    if not isinstance(spec, QuantSpec):
        spec = QuantSpec(get_format(spec))
    if spec.scaling != "none":
        raise ValueError(f"{argname} has scaling={spec.scaling!r}; fake_quant rounds without scaling (the "
                         "scaled classes of a recipe keep state per layer: use fp8emu.torch.apply_recipe)")
    return spec


def fake_quant(t: torch.Tensor, spec: QuantSpec | Format | str, grad_spec: QuantSpec | Format | str | None = None,
               *, seed: int | None = None, stream: int = 0, grad_stream: int | None = None) -> torch.Tensor:
    """Quantize ``t`` forward by ``spec``, with an explicit rule for the gradient.

    With ``grad_spec=None`` the gradient passes unchanged (straight-through estimator);
    otherwise the incoming gradient is quantized by ``grad_spec`` (the paper's treatment of
    errors: e.g. ``QuantSpec("e5m2", "stochastic")``).

    Args:
        t: float tensor.
        spec: the forward rounding (a :class:`~fp8emu.QuantSpec`, or a format for RNE).
        grad_spec: the gradient's rounding, or ``None`` for straight-through.
        seed: seed of both stochastic roundings (``None``: drawn, as in :func:`quantize`).
        stream: SR stream of the forward rounding.
        grad_stream: SR stream of the gradient's rounding (default ``stream ^ 2^63``, so the
            two never share random bits).

    Returns:
        The quantized tensor (same dtype as ``t``).

    Raises:
        TypeError: ``t`` not a supported float tensor.
        ValueError: a spec with scaling other than ``"none"``; bad rounding arguments.
    """
    _check_float(t, "t")
    spec = _as_spec(spec, "spec")
    if (seed is None and not torch.compiler.is_compiling()
            and (spec.stochastic or (grad_spec is not None and _as_spec(grad_spec, "grad_spec").stochastic))):
        seed = new_seed()   # one seed for both roundings
    fwd = _rounding_args(spec.fmt, spec.rounding, spec.saturate, seed, spec.sr_bits, stream)
    if grad_spec is None:
        bwd = ("", RoundMode.NEAREST_EVEN.value, False, 0, 0, 0)
    else:
        g = _as_spec(grad_spec, "grad_spec")
        bwd = _rounding_args(g.fmt, g.rounding, g.saturate, seed, g.sr_bits,
                             (int(stream) ^ (1 << 63)) if grad_stream is None else grad_stream)
    return torch.ops.fp8emu.fake_quant(t, *fwd, *bwd)
