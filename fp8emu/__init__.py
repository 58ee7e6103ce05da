"""fp8emu: a bit-exact software emulator of FP8 (and any small ExMy float) numerics.

Layers (data flows one way): formats -> rounding kernels -> GEMM/conv reference ->
autograd -> nn / optim / loss scaling -> training CLI.  The verification toolkit sits
beside training, on top of the numerics.
"""

from .format import Format, RoundMode, Specials
from .formats import get_format
from .quantize import decode, encode, quantize
from .gemm import matmul
from .conv import conv2d, conv2d_grad_input, conv2d_grad_weight
from .autograd import Tensor, no_grad
from . import nn, optim
from .recipes import QuantSpec, Recipe, get_recipe

__version__ = "0.1.0"

__all__ = [
    "Format", "RoundMode", "Specials", "get_format",
    "encode", "decode", "quantize",
    "matmul", "conv2d", "conv2d_grad_input", "conv2d_grad_weight",
    "Tensor", "no_grad", "nn", "optim", "QuantSpec", "Recipe", "get_recipe",
]
