"""fp8emu's exact numerics inside PyTorch (the optional extra ``pip install 'fp8emu[torch]'``).

* :func:`encode`, :func:`decode`, :func:`quantize`: the NumPy API's arguments and bits on
  torch tensors (``torch.library`` operators ``fp8emu::encode``/``decode``/``quantize``,
  traceable by ``torch.compile``; CPU tensors go to the NumPy kernels as zero-copy views).
* :func:`fake_quant`: forward quantization with a straight-through or quantized gradient.
* :func:`apply_recipe`: any ``torch.nn`` model's Conv2d/Linear layers quantized as one of
  fp8emu's recipes, with its master weights and loss scaler.

Needs PyTorch 2.11 or later.
"""

from __future__ import annotations

try:
    import torch as _torch
except ImportError as exc:  # pragma: no cover - exercised only without PyTorch
    raise ImportError("fp8emu.torch needs PyTorch >= 2.11: pip install 'fp8emu[torch]'") from exc

MIN_TORCH = (2, 11)


def _version(text: str) -> tuple[int, int]:
    parts = text.split("+")[0].split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


if _version(_torch.__version__) < MIN_TORCH:  # pragma: no cover - CI installs a recent PyTorch
    raise ImportError(f"fp8emu.torch needs PyTorch >= {MIN_TORCH[0]}.{MIN_TORCH[1]}, found {_torch.__version__}")

from ._ops import OPS  # noqa: E402  (after the version check)
from . import _cuda  # noqa: E402,F401  (adds the CUDA kernels; numba-cuda loads at the first CUDA call)
from .functional import FLOAT_DTYPES, decode, encode, fake_quant, quantize  # noqa: E402
from .recipe import MasterWeights, TorchLossScaler, TorchRecipe, apply_recipe  # noqa: E402

__all__ = ["encode", "decode", "quantize", "fake_quant", "FLOAT_DTYPES", "OPS", "apply_recipe", "TorchRecipe",
           "MasterWeights", "TorchLossScaler"]
