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
propagates NaN as ``np.max`` does, and the rescales (:meth:`ArrayOps.scale_`,
:meth:`ArrayOps.quantize_scaled`) multiply in :func:`working_dtype` by the factor rounded to it
(exact for the powers of two the rules pass, one rounding when the result under- or overflows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import scaling as _scaling
from ..format import Format
from ..quantize import quantize as _quantize

__all__ = ["ArrayOps", "NUMPY_OPS", "array_ops", "register_array_ops", "working_dtype"]


def working_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype that a rescale of a ``dtype`` array computes in: float32 for float16 and bfloat16, else ``dtype``.

    The narrow dtypes cannot hold every power-of-two factor (2^16 overflows float16, 2^-25
    underflows it), and a product in their subnormal range would be rounded once before its
    rounding into a format; in float32 the product of their values and a power of two is exact.

    Args:
        dtype: the array's dtype.
    """
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


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
        """``x *= factor`` in place; returns ``x``.

        The product is taken in :func:`working_dtype` with the factor rounded to it, then
        rounded once into ``x``'s dtype: a float16 or bfloat16 array gets the float32 array's
        result (exact whenever that is representable in its dtype).

        Args:
            x: the array (modified).
            factor: a power of two (the rules' scales).
        """
        if factor == 1.0:
            return x
        work = working_dtype(x.dtype)
        if work == x.dtype:
            x *= np.asarray(factor, dtype=work)
        else:
            with np.errstate(over="ignore"):        # overflow to Inf is the rounding's result
                x[...] = x.astype(work) * np.asarray(factor, dtype=work)
        return x

    def quantize_scaled(self, x: Any, factor: float, fmt: Format, **kw: Any) -> Any:
        """A new array of ``x``'s dtype: ``x * factor`` rounded into ``fmt`` (per-tensor and delayed scaling).

        The product is taken in :func:`working_dtype` with the factor rounded to it, and rounded
        once into ``fmt`` from there: a float16 or bfloat16 array gets the values of the float32
        array holding its values, which return to its dtype exactly.

        Args:
            x: the array.
            factor: a power of two (the quantization factor, ``1 / scale``).
            fmt: the target format.
            **kw: ``rounding``, ``saturate``, ``seed``, ``sr_bits``, ``stream`` as :func:`fp8emu.quantize`.

        Returns:
            The rounded values (format values) in ``x``'s dtype.

        Raises:
            ValueError: as :func:`fp8emu.quantize` of ``x``, e.g. when ``x``'s dtype cannot hold
                every value of ``fmt``.
        """
        work = working_dtype(x.dtype)
        if work != x.dtype:
            _quantize(np.zeros(0, dtype=x.dtype), fmt)      # raises if x's dtype cannot hold fmt, as rounding x would
        with np.errstate(over="ignore"):
            scaled = x.astype(work, copy=False) * np.asarray(factor, dtype=work)
        q = _quantize(scaled, fmt, out=scaled, **kw)
        return q if work == x.dtype else q.astype(x.dtype)

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
