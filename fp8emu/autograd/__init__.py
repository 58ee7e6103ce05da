"""A small reverse-mode autograd engine on NumPy arrays (layer 4).

``Tensor`` + ``Function`` (forward and backward side by side) + ops; the GEMM/conv ops take a
:class:`LayerQuant` policy that quantizes their operands by the rules of :mod:`.qgemm`.
"""

from . import ops
from ._kernels import threads_for
from .function import Context, Function
from .qgemm import (LINEAR_PRODUCTS, ConvProducts, GemmProducts, LinearProducts, SavedOperands, quantized_backward,
                    quantized_forward)
from .quant import TENSOR_CLASSES, LayerQuant, QuantSpec, add_observer, remove_observer
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad

__all__ = [
    "Tensor", "Function", "Context", "no_grad", "enable_grad", "is_grad_enabled", "ops",
    "QuantSpec", "LayerQuant", "TENSOR_CLASSES", "add_observer", "remove_observer",
    "quantized_forward", "quantized_backward", "SavedOperands", "GemmProducts", "LinearProducts", "ConvProducts",
    "LINEAR_PRODUCTS", "threads_for",
]
