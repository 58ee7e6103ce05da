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
"""

from __future__ import annotations

import ctypes
import os
import warnings
from functools import lru_cache
from typing import Any

__all__ = ["launch"]

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


def _launch_config(blocks: int, threads: int):
    from cuda.core import LaunchConfig
    from numba.cuda._compat import CUDA_CORE_GE_1_0
    coop = {"is_cooperative": False} if CUDA_CORE_GE_1_0 else {"cooperative_launch": False}
    return LaunchConfig(grid=blocks, block=threads, shmem_size=0, **coop)


def _ptr(arr) -> int:
    return int(arr.__cuda_array_interface__["data"][0])


def _signature_key(kernel, args) -> tuple:
    """What decides the compiled overload: the arrays' dtypes and the scalars' and tuples' types."""
    key = [id(kernel)]
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
    global _enabled
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
            _enabled = False
            warnings.warn(f"fp8emu.cuda: fast kernel launch unavailable ({exc!r}); using Numba's", RuntimeWarning,
                          stacklevel=3)
        return
    try:
        core_launch, to_core_stream = _core()
        cukernel, argtypes = entry
        config = _configs.get((blocks, threads))
        if config is None:
            config = _configs[(blocks, threads)] = _launch_config(blocks, threads)
        kargs = _kernel_args(argtypes, args)
    except Exception as exc:     # nothing was launched yet: fall back for good
        _enabled = False
        warnings.warn(f"fp8emu.cuda: fast kernel launch unavailable ({exc!r}); using Numba's", RuntimeWarning,
                      stacklevel=3)
        _numba_launch(kernel, blocks, threads, stream, args)
        return
    core_launch(to_core_stream(stream if stream is not None else 0), config, cukernel, *kargs)
