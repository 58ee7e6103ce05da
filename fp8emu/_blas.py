"""NumPy's OpenBLAS, reached through ctypes: its thread count (no threadpoolctl needed) and its
workers' spin timeout.

Low in the layers: the GEMM reference runs sgemm single-threaded in its pipeline
(:mod:`fp8emu.gemm`), :mod:`fp8emu.cluster` caps the threads of sweep workers, and importing
fp8emu after NumPy gives OpenBLAS the spin timeout it would have read at load
(:func:`apply_spin_timeout`).
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from typing import Any

__all__ = ["apply_spin_timeout", "blas_threads", "spin_timeout", "warn_if_spinning"]

#: OpenBLAS's variable: its idle workers spin 2^value cycles before they sleep (default 28).
TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"


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


def spin_timeout() -> int | None:
    """The ``OPENBLAS_THREAD_TIMEOUT`` value NumPy's OpenBLAS holds (0: unset, OpenBLAS's 2^28
    cycles); None when NumPy's BLAS is not an OpenBLAS found in this process."""
    import ctypes

    get = _openblas_calls("openblas_thread_timeout")
    if get is None:
        return None
    get.restype = ctypes.c_int
    return int(get())


def apply_spin_timeout() -> bool:
    """Give NumPy's already loaded OpenBLAS the spin timeout that ``os.environ`` now holds.

    OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` once, when NumPy loads it, and hands it to its
    worker threads when it starts them; a value set after ``import numpy`` was ignored, and
    OpenBLAS's idle workers then spun for 2^28 cycles after every threaded call, taking the
    cores from Numba's kernels in between (``fp8emu.matmul`` with e5m2 operands fell from
    0.80-0.83x to 0.70-0.72x ``np.matmul`` at 32768 x 1152 x 128 on 2 cores, a ResNet-18 step
    took 1.3x as long; ``tools/probes/import_order.py``).  Here
    ``openblas_read_env`` reads the environment again and ``blas_thread_shutdown_`` stops the
    workers (what OpenBLAS's own fork handler does); its next threaded call starts them again
    with the new timeout.  Bits do not change: the same kernel and thread count run the same
    partition.

    Done only while this process runs a single Python thread: stopping the workers under
    another thread's BLAS call is not safe.

    Returns:
        Whether OpenBLAS now holds the variable's value (False: no variable, not an OpenBLAS
        with these calls, another Python thread running, or a value it did not take).
    """
    import ctypes

    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value.isdigit() or threading.active_count() != 1:
        return False
    read_env = _openblas_calls("openblas_read_env")
    shutdown = _openblas_calls("blas_thread_shutdown_")
    if read_env is None or shutdown is None or spin_timeout() is None:
        return False
    read_env.restype = None
    read_env()
    if spin_timeout() != int(value):
        return False
    shutdown.restype = ctypes.c_int
    return shutdown() == 0


_spin_checked = False


def warn_if_spinning() -> None:
    """Once per process, at fp8emu's first BLAS product: warn when NumPy's OpenBLAS runs several
    threads with its default spin (2^28 cycles), i.e. when fp8emu's timeout never reached it
    (NumPy imported first while other Python threads ran, as in a Jupyter kernel: the restart
    of :func:`apply_spin_timeout` is skipped then).  A timeout of your own, even 28, is left
    alone and not warned about."""
    global _spin_checked
    if _spin_checked:
        return
    _spin_checked = True
    if spin_timeout() == 0 and (blas_threads() or 1) > 1:
        warnings.warn(
            "NumPy's OpenBLAS keeps its idle threads spinning for 2^28 cycles after each call: it was "
            "loaded before fp8emu set OPENBLAS_THREAD_TIMEOUT=4, and other Python threads were running "
            "when fp8emu was imported (e.g. in Jupyter), so fp8emu did not restart its workers. The "
            "spinning workers take the cores from fp8emu's kernels between products (on 2 cores: matmul "
            "with operand quantization about 0.7x instead of 0.8x np.matmul, training steps about 1.3x "
            "slower). Import fp8emu before NumPy, or set OPENBLAS_THREAD_TIMEOUT=4 in the environment "
            "before Python starts (28 keeps OpenBLAS's default and silences this warning).",
            RuntimeWarning, stacklevel=3)
