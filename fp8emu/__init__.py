"""fp8emu: a bit-exact software emulator of FP8 (and any small ExMy float) numerics.

Layers (data flows one way): formats -> rounding kernels -> GEMM/conv reference ->
autograd -> nn / optim / loss scaling -> training CLI.  The verification toolkit sits
beside training, on top of the numerics.

Importing fp8emu sets thread-pool defaults (``os.environ.setdefault``: a value you set
yourself wins).  fp8emu alternates Numba's OpenMP kernels with OpenBLAS GEMMs
many times per training step; by default the idle pool of each spins for a while after its
work and steals the CPU from the other.  On a 2-core machine that made a ResNet-18 step
(width 8) 3x slower (881 ms -> 303 ms with both settings; ``benchmarks/train_cli.py``).  A
sleeping OpenMP pool cost 13-90 us to wake on the virtual machines measured, so its workers
first spin briefly (``GOMP_SPINCOUNT``), which back-to-back kernels catch.
OpenBLAS reads its setting when it loads; when NumPy came first, the import has OpenBLAS
read it again and restart its workers (``_blas.apply_spin_timeout``), unless other Python
threads are running.
"""

import os as _os
import sys as _sys

#: The thread settings this import added to ``os.environ`` (those you had set are not here).
THREAD_ENV_DEFAULTS = {name: value for name, value in (
    ("OMP_WAIT_POLICY", "PASSIVE"),          # Numba's OpenMP workers sleep when idle...
    ("GOMP_SPINCOUNT", "5000"),              # ...after a short spin (GNU OpenMP: 0.05-0.2 ms)
    ("OPENBLAS_THREAD_TIMEOUT", "4"),        # OpenBLAS workers spin 2^4 cycles, not 2^28
) if name not in _os.environ}
# GNU OpenMP's GOMP_SPINCOUNT overrides the spin that OMP_WAIT_POLICY implies: only with our policy,
# never with one of your own (ACTIVE would spin 5000 times instead of forever)
if "OMP_WAIT_POLICY" not in THREAD_ENV_DEFAULTS:
    THREAD_ENV_DEFAULTS.pop("GOMP_SPINCOUNT", None)
_os.environ.update(THREAD_ENV_DEFAULTS)
# NumPy loads OpenBLAS when it is imported and OpenBLAS reads its timeout then: had NumPy come
# first, our timeout came too late, so OpenBLAS is told again (its workers restart with it).
# Whether its workers sleep after a call: the GEMM pipeline cannot afford spinning ones.
_OPENBLAS_SPIN_SET = "numpy" not in _sys.modules or "OPENBLAS_THREAD_TIMEOUT" not in THREAD_ENV_DEFAULTS
if not _OPENBLAS_SPIN_SET:
    from ._blas import apply_spin_timeout as _apply_spin_timeout
    _OPENBLAS_SPIN_SET = _apply_spin_timeout()

from .format import Format, NanPolicy, RoundMode, Specials, TieRule
from .formats import get_format
from .quantize import decode, encode, quantize
from .gemm import matmul
from .conv import conv2d, conv2d_grad_input, conv2d_grad_weight
from .autograd import Tensor, no_grad
from . import nn, optim
from .recipes import QuantSpec, Recipe, get_recipe

__version__ = "0.1.0"

__all__ = [
    "Format", "RoundMode", "Specials", "TieRule", "NanPolicy", "get_format",
    "encode", "decode", "quantize",
    "matmul", "conv2d", "conv2d_grad_input", "conv2d_grad_weight",
    "Tensor", "no_grad", "nn", "optim", "QuantSpec", "Recipe", "get_recipe",
]
