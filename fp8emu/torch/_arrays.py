"""``torch.Tensor`` in fp8emu's quantized-GEMM rules: the :class:`~fp8emu.autograd.arrays.ArrayOps` of tensors.

Registered on import, so :func:`~fp8emu.autograd.qgemm.quantized_forward`/``quantized_backward``
and :meth:`LayerQuant.quantize <fp8emu.autograd.LayerQuant.quantize>` keep torch tensors from
the operands to the gradients, on the tensors' device.  Each operation has two branches:

* a CPU tensor: the NumPy operation itself on a zero-copy view (the bits and the speed of the
  NumPy engine, by construction);
* a CUDA tensor: the same step on the GPU, launched on PyTorch's current stream:
  the rounding is :func:`fp8emu.cuda.quantize` (the CPU's rounding routines compiled for the
  GPU) on views of the tensors, the amax ``abs().amax()`` (NaN propagates, as in ``np.max``;
  the one value that comes to the host, and only under per-tensor/delayed scaling), the
  rescales in torch, in the working dtype of the NumPy operations (float32 for float16 and
  bfloat16 tensors) by the factor rounded to it, as NumPy computes them.

What still goes to the host from a GPU: MX and NVFP4 block scaling (rounded by NumPy, the result
copied back) and the arrays handed to observers (statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..autograd.arrays import NUMPY_OPS, ArrayOps, register_array_ops
from ..format import Format
from ._ops import as_numpy

__all__ = ["TorchArrayOps", "TORCH_OPS"]


def _on_cpu(t: torch.Tensor) -> bool:
    return t.device.type == "cpu"


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    """A tensor viewing ``a`` (bfloat16, which ``torch.from_numpy`` refuses, through its uint16 bits)."""
    if a.dtype.kind == "V" or a.dtype.name == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(a).view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(a)


class TorchArrayOps(ArrayOps):
    """The quantized-GEMM rules' operations on torch tensors (CPU: NumPy on views; CUDA: on the GPU)."""

    def size(self, x: torch.Tensor) -> int:
        """See :meth:`ArrayOps.size`."""
        return x.numel()

    def contiguous(self, x: torch.Tensor) -> bool:
        """See :meth:`ArrayOps.contiguous`."""
        return x.is_contiguous()

    def quantize(self, x: torch.Tensor, fmt: Format, *, out: torch.Tensor | None = None, **kw: Any) -> torch.Tensor:
        """See :meth:`ArrayOps.quantize`."""
        if _on_cpu(x):
            q = NUMPY_OPS.quantize(as_numpy(x), fmt, out=None if out is None else as_numpy(out), **kw)
            return out if out is not None else _from_numpy(q)
        from ._cuda import quantize_into   # numba-cuda loads at the first CUDA rounding
        return quantize_into(x, fmt, out, **kw)

    def amax(self, x: torch.Tensor) -> float:
        """See :meth:`ArrayOps.amax` (on a GPU: one host sync)."""
        if _on_cpu(x):
            return NUMPY_OPS.amax(as_numpy(x))
        return float(x.detach().abs().amax()) if x.numel() else 0.0

    def scale_(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """See :meth:`ArrayOps.scale_`."""
        if _on_cpu(x):
            NUMPY_OPS.scale_(as_numpy(x), factor)
        elif factor != 1.0:
            work = _working_dtype(x.dtype)
            if work == x.dtype:
                x.mul_(_in_dtype(factor, work))
            else:
                x.copy_(x.to(work).mul_(_in_dtype(factor, work)))
        return x

    def quantize_scaled(self, x: torch.Tensor, factor: float, fmt: Format, **kw: Any) -> torch.Tensor:
        """See :meth:`ArrayOps.quantize_scaled`."""
        if _on_cpu(x):
            return _from_numpy(NUMPY_OPS.quantize_scaled(as_numpy(x), factor, fmt, **kw))
        work = _working_dtype(x.dtype)
        if work != x.dtype:      # raises what the CPU branch raises (an empty call)
            NUMPY_OPS.quantize_scaled(as_numpy(torch.empty(0, dtype=x.dtype)), factor, fmt)
        scaled = x.to(work) * _in_dtype(factor, work)
        from ._cuda import quantize_into   # numba-cuda loads at the first CUDA rounding
        return quantize_into(scaled, fmt, scaled, **kw).to(x.dtype)

    def to_host(self, x: torch.Tensor) -> np.ndarray:
        """See :meth:`ArrayOps.to_host` (a view of a CPU tensor, a copy of another device's)."""
        return as_numpy(x if _on_cpu(x) else x.detach().cpu())

    def from_host(self, a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """See :meth:`ArrayOps.from_host`."""
        t = _from_numpy(a)
        return t if _on_cpu(like) else t.to(like.device)


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    """:func:`~fp8emu.autograd.arrays.working_dtype` for a torch dtype: float32 for float16 and bfloat16."""
    return torch.promote_types(dtype, torch.float32)


def _in_dtype(factor: float, dtype: torch.dtype) -> float:
    """``factor`` rounded to ``dtype`` (as ``np.asarray(factor, dtype)`` does), as a Python float: a scalar
    that PyTorch's kernels take exactly (they compute in float32 or wider)."""
    return float(torch.tensor(factor, dtype=torch.float64).to(dtype))


#: The operations registered for ``torch.Tensor``.
TORCH_OPS = TorchArrayOps()
register_array_ops(torch.Tensor, TORCH_OPS)
