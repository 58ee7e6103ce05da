"""The accumulator contract: how the K exact products of each dot product are summed.

An accumulator is data (a frozen dataclass) plus one method.  :func:`fp8emu.matmul`
quantizes the operands, then hands the 2-D float32 operands (values exactly representable
in their formats) to ``accumulator.matmul_2d``; batching, scaling and output
quantization stay in ``matmul``.  Hardware models (e.g. the NVIDIA H200 tensor core) are
accumulators too, which is the hook point for them.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ..format import Format

__all__ = ["Accumulator"]


class Accumulator(abc.ABC):
    """Base class of every accumulator.  Subclasses are frozen dataclasses."""

    #: True when the result's bits depend only on the inputs (not on BLAS kernel, threads or layout).
    reproducible: bool = True
    #: ``matmul_2d`` takes ``out=`` (a C-contiguous float32 (M, N) array to fill), so callers can
    #: reuse buffers.
    accepts_out: bool = False
    #: ``matmul_2d`` takes ``seed=``, ``stream=`` and ``index0=`` (the C-order index of its first
    #: output element in the whole, batched, result): a stochastic accumulator.
    accepts_rng: bool = False
    #: The result can depend on the operands' formats (hardware models align by the format's
    #: exponent range).  When False, the formats only serve :meth:`check_operands`, and a caller
    #: whose operands already hold format values may pass them as plain float32.
    uses_operand_formats: bool = True

    @property
    def name(self) -> str:
        """A short display name (reports, error messages)."""
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
        """Raise ValueError if this accumulator cannot take operands of these formats.

        Args:
            a_fmt, b_fmt: the operands' formats, or None for plain float32 operands.

        Raises:
            ValueError: the accumulator cannot represent the products of these formats.
        """
        return None

    def run_2d(self, a: np.ndarray, b: np.ndarray, *, a_fmt: Format | None = None, b_fmt: Format | None = None,
               out: np.ndarray | None = None, seed: int | None = None, stream: int = 0,
               index0: int = 0) -> np.ndarray:
        """:meth:`matmul_2d` with the arguments this accumulator takes (its capabilities above).

        ``out`` is used only when :attr:`accepts_out` (the result may then be ``out``); ``index0``
        whenever :attr:`accepts_rng`, ``seed`` and ``stream`` only when, in addition, ``seed`` is
        not None (a stochastic accumulator otherwise uses its own seed and stream).  ``index0``
        goes even then: the element indices run over the whole result with either seed, so
        batch slices and conv groups draw different bits.

        Args:
            a, b: float32 operands (M, K) and (K, N), as for :meth:`matmul_2d`.
            a_fmt, b_fmt: the operands' formats (None: plain float32).
            out: optional float32 (M, N) buffer.
            seed, stream: the call's stochastic-rounding keys.
            index0: C-order index of the first output element in the whole result.

        Returns:
            float32 (M, N).
        """
        kw: dict[str, Any] = {}
        if out is not None and self.accepts_out:
            kw["out"] = out
        if self.accepts_rng:
            kw["index0"] = index0
            if seed is not None:
                kw.update(seed=seed, stream=stream)
        return self.matmul_2d(a, b, a_fmt=a_fmt, b_fmt=b_fmt, **kw)
