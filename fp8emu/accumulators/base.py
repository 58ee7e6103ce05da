"""The accumulator contract: how the K exact products of each dot product are summed.

An accumulator is data (a frozen dataclass) plus one method.  :func:`fp8emu.matmul`
quantizes the operands, then hands the 2-D float32 operands (values exactly representable
in their formats) to ``accumulator.matmul_2d``; batching, scaling and output
quantization stay in ``matmul``.  Hardware models (e.g. the NVIDIA H200 tensor core) are
accumulators too, which is the hook point for them.
"""

from __future__ import annotations

import abc

import numpy as np

from ..format import Format

__all__ = ["Accumulator"]


class Accumulator(abc.ABC):
    """Base class of every accumulator.  Subclasses are frozen dataclasses."""

    #: True when the result's bits depend only on the inputs (not on BLAS kernel, threads or layout).
    reproducible: bool = True

    @property
    def name(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def matmul_2d(self, a: np.ndarray, b: np.ndarray, *, a_fmt: Format | None = None,
                  b_fmt: Format | None = None) -> np.ndarray:
        """Return ``a @ b`` summed this accumulator's way.

        Args:
            a: float32 array (M, K); every value exact in ``a_fmt`` when that is given.
            b: float32 array (K, N); likewise for ``b_fmt``.
            a_fmt, b_fmt: the operands' formats (hardware models need them, e.g. for the
                exponent of subnormal operands); ``None`` when the operands are plain float32.

        Returns:
            float32 array (M, N), C-contiguous.
        """

    def check_operands(self, a_fmt: Format | None, b_fmt: Format | None) -> None:
        """Raise ValueError if this accumulator cannot take operands of these formats."""
        return None
