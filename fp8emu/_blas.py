"""NumPy's OpenBLAS, reached through ctypes: its thread count (no threadpoolctl needed).

Low in the layers: the GEMM reference runs sgemm single-threaded in its pipeline
(:mod:`fp8emu.gemm`), and :mod:`fp8emu.cluster` caps the threads of sweep workers.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["blas_threads"]


@functools.lru_cache(maxsize=None)
def _openblas_calls(name: str) -> Any:
    """The OpenBLAS function ``name`` (e.g. ``openblas_set_num_threads``) of the OpenBLAS that
    NumPy loaded, found in /proc/self/maps (Linux); None elsewhere.  NumPy's wheels ship
    scipy-openblas, whose symbols carry a ``scipy_`` prefix and, in the ILP64 build, a ``64_``
    suffix: all four spellings are tried.  Cached: the lookup (reading the maps, loading the
    library) took about 2 ms a call, the OpenBLAS calls themselves microseconds."""
    import ctypes

    import numpy  # noqa: F401  (loads its BLAS)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in (name, name + "64_", "scipy_" + name, "scipy_" + name + "64_"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                return fn
    return None


def blas_threads(threads: int | None = None) -> int | None:
    """OpenBLAS's thread count, set to ``threads`` first when given.

    Args:
        threads: the new thread count (None: only read it).

    Returns:
        The count after the call; None when NumPy's BLAS is not an OpenBLAS found in this
        process (then nothing is set).
    """
    get = _openblas_calls("openblas_get_num_threads")
    if get is None:
        return None
    if threads is not None:
        setter = _openblas_calls("openblas_set_num_threads")
        if setter is not None:
            import ctypes
            setter.argtypes = [ctypes.c_int]
            setter(int(threads))
    return int(get())
