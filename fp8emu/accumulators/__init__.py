"""Accumulators: how the K products of each dot product are summed (see ``docs/accumulators.md``).

Presets: :data:`fp32_blas` (default, fast, order unspecified), :data:`fp32_sequential`,
:data:`fp32_pairwise`; factories :func:`fp32_blocked` and :func:`lowp`.
"""

from .base import Accumulator
from .software import (Fp32Blas, Fp32Blocked, Fp32Pairwise, Fp32Sequential, LowPrecisionAccumulator, fp32_blas,
                       fp32_blocked, fp32_pairwise, fp32_sequential, lowp)

# Hardware models (one import line each) go below this line.
from .nvidia import NvidiaHopperFP8, nvidia_hopper_fp8

__all__ = [
    "Accumulator", "Fp32Blas", "Fp32Sequential", "Fp32Pairwise", "Fp32Blocked",
    "fp32_blas", "fp32_sequential", "fp32_pairwise", "fp32_blocked",
    "LowPrecisionAccumulator", "lowp", "DEFAULT_ACCUMULATOR", "NvidiaHopperFP8", "nvidia_hopper_fp8",
]

#: The accumulator used when ``accumulator=None``.
DEFAULT_ACCUMULATOR: Accumulator = fp32_blas
