"""The array operations that the quantized-GEMM rules need, looked up by the array's type.

:meth:`LayerQuant.quantize <fp8emu.autograd.LayerQuant.quantize>` and
:mod:`fp8emu.autograd.qgemm` write each rule once; the handful of things they do *to* an array
(round it into a format, find its amax, multiply it by a power of two, view it on the host)
go through an :class:`ArrayOps` chosen by the array's type.  NumPy arrays get
:data:`NUMPY_OPS` (the default for every type nobody registered); a bridge registers its own
array type with :func:`register_array_ops` (``fp8emu.torch`` does so for ``torch.Tensor``: CPU
tensors reach these NumPy operations as zero-copy views, CUDA tensors the same rounding
routines compiled for the GPU), and the rules then keep that bridge's arrays end to end,
on its device, with the same bits.

An implementation must give the bits of :data:`NUMPY_OPS` for the same values: the rounding
is fp8emu's (stochastic rounding by the C-order element index), :meth:`ArrayOps.amax`
propagates NaN as ``np.max`` does, and :meth:`ArrayOps.scale_` multiplies by the factor
rounded to the array's dtype (exact for the powers of two the rules pass, one rounding when
the result under- or overflows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import scaling as _scaling
from ..format import Format
from ..quantize import quantize as _quantize

__all__ = ["ArrayOps", "NUMPY_OPS", "array_ops", "register_array_ops"]


class ArrayOps:
    """The operations of the quantized-GEMM rules on one array type; this base class is NumPy's.

    A subclass for another array type overrides every method; arguments ``x``/``out`` are of
    that type, ``fmt`` a :class:`~fp8emu.format.Format`.
    """

    def size(self, x: Any) -> int:
        """The number of elements of ``x``.

        Args:
            x: the array.
        """
        return int(x.size)

    def contiguous(self, x: Any) -> bool:
        """Whether ``x`` is C-contiguous (only such an array may be its own ``out``).

        Args:
            x: the array.
        """
        return bool(x.flags.c_contiguous)

    def quantize(self, x: Any, fmt: Format, *, out: Any = None, **kw: Any) -> Any:
        """:func:`fp8emu.quantize` of ``x`` (``out`` may be ``x`` itself).

        Args:
            x: the array to round.
            fmt: the target format.
            out: where to write the result (None: a new array).
            **kw: ``rounding``, ``saturate``, ``seed``, ``sr_bits``, ``stream`` as :func:`fp8emu.quantize`.

        Returns:
            The rounded array (``out`` when given).
        """
        return _quantize(x, fmt, out=out, **kw)

    def amax(self, x: Any) -> float:
        """``max |x|`` as a host float: NaN when ``x`` holds a NaN, 0.0 for an empty array.

        Args:
            x: the array.
        """
        return float(_scaling.amax(x))

    def scale_(self, x: Any, factor: float) -> Any:
        """``x *= factor`` in place, the factor rounded to ``x``'s dtype; returns ``x``.

        Args:
            x: the array (modified).
            factor: a power of two (the rules' scales).
        """
        if factor != 1.0:
            x *= np.asarray(factor, dtype=x.dtype)
        return x

    def scaled(self, x: Any, factor: float) -> Any:
        """A new array ``x * factor``, the factor rounded to ``x``'s dtype.

        Args:
            x: the array.
            factor: a power of two.
        """
        return x * np.asarray(factor, dtype=x.dtype)

    def to_host(self, x: Any) -> np.ndarray:
        """A NumPy array of ``x``'s values (a view where possible: callers must not write to it).

        Args:
            x: the array.
        """
        return np.asarray(x)

    def from_host(self, a: np.ndarray, like: Any) -> Any:
        """``a`` as an array of ``like``'s type, on its device.

        Args:
            a: a NumPy array (the caller's: it may be viewed rather than copied).
            like: an array of the wanted type and device.
        """
        return a


#: The NumPy implementation (the default for array types nobody registered).
NUMPY_OPS = ArrayOps()

_registered: dict[type, ArrayOps] = {}
_by_type: dict[type, ArrayOps] = {}      # lookups, cached per concrete type (subclasses: torch's Parameter)


def register_array_ops(cls: type, ops: ArrayOps) -> None:
    """Make the quantized-GEMM rules use ``ops`` for arrays of type ``cls`` (and its subclasses).

    Args:
        cls: the array type.
        ops: its operations.

    Raises:
        TypeError: ``cls`` is not a type or ``ops`` not an :class:`ArrayOps`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a type, got {type(cls).__name__}")
    if not isinstance(ops, ArrayOps):
        raise TypeError(f"ops must be an fp8emu.autograd.arrays.ArrayOps, got {type(ops).__name__}")
    _registered[cls] = ops
    _by_type.clear()


def array_ops(x: Any) -> ArrayOps:
    """The :class:`ArrayOps` of ``x``'s type: the registered one of its nearest class, else NumPy's.

    Args:
        x: an array.
    """
    cls = type(x)
    ops = _by_type.get(cls)
    if ops is None:
        ops = next((_registered[c] for c in cls.__mro__ if c in _registered), NUMPY_OPS)
        _by_type[cls] = ops
    return ops
