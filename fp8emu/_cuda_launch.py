"""Launching the rounding kernels without Numba's per-call dispatch.

A call of a numba-cuda kernel (``kernel[blocks, threads, stream](*args)``) types every
argument, wraps every array as a device array and converts every element of the parameter
tuples to a ctypes value, each time: about 0.15-0.2 ms of host time per launch, measured on
an H200 host (``tools/probes/cuda_call_overhead.py``).  A training step of ResNet-18 under an
FP8 recipe makes some 290 rounding calls, so that overhead, not the GPU, set the step time
(78% of it, ``tools/gpu_probe.py``).

This module launches the same compiled kernel with the same argument list that Numba builds
(``_Kernel.launch`` / ``_prepare_args`` of numba-cuda 0.30): a 1-D C-contiguous array is
``meminfo, parent, nitems, itemsize, data, shape[0], strides[0]`` (the first two null), an
integer a ctypes value of its Numba type, a tuple its elements in order.  The first launch of
a kernel signature goes through Numba (it compiles, and it is the reference); later launches of
that signature reuse its compiled kernel and argument types and convert only the values that
change (pointers, sizes, the random-number keys); the parameter tuples' ctypes lists are cached
per tuple.  Any failure of this path (another numba-cuda version) falls back to Numba's launch
for the rest of the process; ``FP8EMU_CUDA_LAUNCH=numba`` selects Numba's launch from the start.

A :class:`Plan` goes one step further for callers that hold raw device pointers (the PyTorch
bridge): once a call has been launched through the path above, the plan keeps that call's
compiled kernel and every converted argument that does not change between calls (the table,
the parameter tuples, the deep-element limit), and later calls pass only the two pointers, the
length and the random-number keys, on a stream given by its handle: no device arrays, no
typing, no stream wrapper of Numba's.  A plan is bound by comparing its argument list with the
list built above for the same call, so a plan launches exactly what the cached launch would.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from functools import lru_cache
from typing import Any

__all__ = ["launch", "Plan", "enabled", "disable"]

_enabled = os.environ.get("FP8EMU_CUDA_LAUNCH", "fast") != "numba"
_compiled: dict[tuple, tuple] = {}      # signature key -> (cuda.core kernel, Numba argument types)
_tuple_args: dict[tuple, list] = {}      # (Numba tuple type, values) -> ctypes values
_configs: dict[tuple, Any] = {}          # (blocks, threads) -> LaunchConfig


@lru_cache(maxsize=None)
def _core():
    """cuda.core's launch and numba-cuda's stream conversion (imported once, not per launch)."""
    from cuda.core import launch as core_launch
    from numba.cuda.cudadrv.driver import _to_core_stream
    return core_launch, _to_core_stream


def enabled() -> bool:
    """Whether fp8emu launches kernels itself (False: ``FP8EMU_CUDA_LAUNCH=numba``, or after a failure)."""
    return _enabled


def disable(exc: Exception, what: str = "fast kernel launch", stacklevel: int = 4) -> None:
    """Use Numba's launch for the rest of the process, saying why (the one warning of this module)."""
    global _enabled
    _enabled = False
    warnings.warn(f"fp8emu.cuda: {what} unavailable ({exc!r}); using Numba's", RuntimeWarning, stacklevel=stacklevel)


def _config(blocks: int, threads: int):
    config = _configs.get((blocks, threads))
    if config is None:
        config = _configs[(blocks, threads)] = _launch_config(blocks, threads)
    return config


@lru_cache(maxsize=64)
def _core_stream(handle: int):
    """cuda.core's (non-owning) wrapper of a stream handle (0: the legacy default stream)."""
    from cuda.core import Stream
    return Stream.from_handle(int(handle))


def _launch_config(blocks: int, threads: int):
    from cuda.core import LaunchConfig
    from numba.cuda._compat import CUDA_CORE_GE_1_0
    coop = {"is_cooperative": False} if CUDA_CORE_GE_1_0 else {"cooperative_launch": False}
    return LaunchConfig(grid=blocks, block=threads, shmem_size=0, **coop)


def _ptr(arr) -> int:
    return int(arr.__cuda_array_interface__["data"][0])


def _current_device_id() -> int:
    from numba import cuda
    return int(cuda.get_current_device().id)


def _signature_key(kernel, args) -> tuple:
    """What decides the compiled overload: the arrays' dtypes and the scalars' and tuples' types,
    and the current device (a compiled function belongs to one device's context: another GPU's
    launch must not reuse it)."""
    key = [id(kernel), _current_device_id()]
    for a in args:
        if hasattr(a, "__cuda_array_interface__"):
            key.append(("A", str(a.dtype), a.ndim))
        elif isinstance(a, tuple):
            key.append(("T", len(a), tuple(type(v).__name__ for v in a), any(v >= 2**63 for v in a)))
        else:
            key.append(("S", type(a).__name__, isinstance(a, int) and a >= 2**63))
    return tuple(key)


def _numba_launch(kernel, blocks: int, threads: int, stream, args) -> None:
    if stream is None:
        kernel[blocks, threads](*args)
    else:
        kernel[blocks, threads, stream](*args)


def _overload(kernel, args):
    """(cuda.core kernel, argument types) of the overload Numba picked for ``args``."""
    argtypes = tuple(kernel.typeof_pyval(a) for a in args)
    compiled = kernel.overloads[argtypes]
    return compiled._codelibrary.get_cufunc().kernel, compiled.argument_types


def _kernel_args(argtypes, args) -> list:
    from numba.cuda import types
    out: list = []
    for ty, v in zip(argtypes, args):
        if isinstance(ty, types.Array):
            # numba-cuda's array ABI (1-D, C-contiguous): meminfo, parent, nitems, itemsize,
            # data, shape[0], strides[0]
            n, item = int(v.shape[0]), int(v.dtype.itemsize)
            out += [0, 0, n, item, _ptr(v), n, item]
        elif isinstance(ty, types.BaseTuple):
            key = (ty, v)
            cached = _tuple_args.get(key)
            if cached is None:
                cached = _tuple_args[key] = [getattr(ctypes, f"c_{t}")(x) for t, x in zip(ty, v)]
            out += cached
        elif isinstance(ty, types.Integer):
            out.append(getattr(ctypes, f"c_{ty}")(v))
        else:
            raise TypeError(f"unexpected kernel argument type {ty}")
    return out


def launch(kernel, blocks: int, threads: int, stream, args: tuple) -> None:
    """``kernel[blocks, threads, stream](*args)``, through the cached fast path when possible.

    Args:
        kernel: a numba-cuda kernel (dispatcher) whose arguments are 1-D C-contiguous device
            arrays, integers and tuples of integers.
        blocks: grid size.
        threads: block size.
        stream: a Numba stream, or None for the default stream.
        args: the kernel's arguments.
    """
    if not _enabled:
        _numba_launch(kernel, blocks, threads, stream, args)
        return
    key = _signature_key(kernel, args)
    entry = _compiled.get(key)
    if entry is None:
        _numba_launch(kernel, blocks, threads, stream, args)     # compiles; the reference launch
        try:
            _compiled[key] = _overload(kernel, args)
        except Exception as exc:     # another numba-cuda: keep Numba's launch
            disable(exc)
        return
    try:
        core_launch, to_core_stream = _core()
        cukernel, argtypes = entry
        config = _config(blocks, threads)
        kargs = _kernel_args(argtypes, args)
    except Exception as exc:     # nothing was launched yet: fall back for good
        disable(exc)
        _numba_launch(kernel, blocks, threads, stream, args)
        return
    core_launch(to_core_stream(stream if stream is not None else 0), config, cukernel, *kargs)


def _array_args(ptr: int, n: int, itemsize: int) -> list:
    """numba-cuda's arguments of a 1-D C-contiguous array (see :func:`_kernel_args`)."""
    return [0, 0, n, itemsize, ptr, n, itemsize]


class Plan:
    """One kernel call with everything fixed but ``(src, out)``'s pointers and length and the SR keys.

    The kernel's arguments are ``(src, out, *middle, key_base, key0, last)`` (fp8emu's rounding
    kernels: ``middle`` = table, float32 parameters, parameters; ``last`` = the deep limit).
    :meth:`bind` takes the compiled kernel and converted arguments from a call that went through
    :func:`launch`; :meth:`launch` then starts the same kernel from raw pointers.
    """

    __slots__ = ("cukernel", "middle", "last", "key_types", "src_item", "out_item")

    def __init__(self) -> None:
        self.cukernel = None       # None until bound

    def bind(self, kernel, args: tuple) -> None:
        """Fix everything but the pointers, length and keys from ``args``, a call that :func:`launch`
        has just launched in the current context; checks that the plan rebuilds its argument list.

        Raises:
            RuntimeError: the plan's argument list differs from :func:`launch`'s for ``args``.
        """
        cukernel, argtypes = _overload(kernel, args)
        src, out, *middle, kb, k0, last = args
        self.middle = _kernel_args(argtypes[2:-3], middle)
        self.key_types = tuple(getattr(ctypes, f"c_{t}") for t in argtypes[-3:-1])
        self.last = _kernel_args(argtypes[-1:], [last])
        self.src_item, self.out_item = int(src.dtype.itemsize), int(out.dtype.itemsize)
        mine = self.arguments(_ptr(src), _ptr(out), int(src.shape[0]), int(kb), int(k0))
        ref = _kernel_args(argtypes, args)
        if _comparable(mine) != _comparable(ref):
            raise RuntimeError(f"the pointer launch's arguments {mine} differ from the cached launch's {ref}")
        self.cukernel = cukernel

    def arguments(self, src_ptr: int, out_ptr: int, n: int, key_base: int, key0: int) -> list:
        """The kernel's argument list for one call (what numba-cuda would build)."""
        kb_t, k0_t = self.key_types
        return [*_array_args(src_ptr, n, self.src_item), *_array_args(out_ptr, n, self.out_item), *self.middle,
                kb_t(key_base), k0_t(key0), *self.last]

    def launch(self, blocks: int, threads: int, stream_handle: int, src_ptr: int, out_ptr: int, n: int,
               key_base: int, key0: int) -> bool:
        """Launch on the stream ``stream_handle`` (an int) in the current context.

        Returns:
            True if launched; False (after disabling fp8emu's launch, with a warning) on a failure,
            when nothing was launched and the caller should take Numba's path.
        """
        try:
            core_launch = _core()[0]
            core_launch(_core_stream(stream_handle), _config(blocks, threads), self.cukernel,
                        *self.arguments(src_ptr, out_ptr, n, key_base, key0))
        except Exception as exc:     # another numba-cuda / cuda.core: Numba's launch from now on
            disable(exc, "pointer kernel launch")
            return False
        return True


def _comparable(kargs: list) -> list:
    """An argument list as (type, value) pairs (ctypes values compare by identity)."""
    return [(type(a), a.value if isinstance(a, ctypes._SimpleCData) else a) for a in kargs]
