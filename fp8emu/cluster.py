"""Dask distributed for fp8emu's sweeps: connect to a scheduler, or start a local one.

Training sweeps (:mod:`fp8emu.sweep`) and the exhaustive conversion hashes
(:mod:`fp8emu.verify.vectors`) share this module, which imports nothing else from fp8emu.
``dask[distributed]`` comes with the ``train`` extra; it is imported only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["connect", "limit_threads", "blas_threads"]


def limit_threads(threads: int | None) -> None:
    """Cap Numba's and BLAS's threads at ``threads``; None: leave them.

    BLAS through threadpoolctl when it is installed, else through the ``openblas_set_num_threads``
    of the OpenBLAS NumPy loaded (:func:`blas_threads`).  The cap matters for bits, not only
    speed: on OpenBLAS's Haswell kernel (AVX2 hosts) the split of ``np.matmul`` over threads
    changes the rounding of some sums, so runs compare bit for bit only at equal BLAS threads.

    Args:
        threads: the thread count (None: no change).
    """
    if threads is None:
        return
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        blas_threads(threads)


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


@contextlib.contextmanager
def connect(scheduler: str = "local", *, workers: int | None = None, quiet: bool = False,
            prog: str = "fp8emu") -> Iterator[Any]:
    """A ``distributed.Client``: on a new ``LocalCluster`` or on the scheduler at ``scheduler``.

    Args:
        scheduler: ``"local"`` for a ``LocalCluster`` of ``workers`` worker processes with one
            thread each (the kernels then run one thread per task), or a scheduler address such
            as ``tcp://host:8786`` (workers started by ``dask-jobqueue``, ``dask-ssh`` or by hand).
        workers: worker processes of a local cluster (default: the machine's CPUs); ignored for
            an address.
        quiet: print nothing (the dashboard address is printed otherwise, when bokeh is installed).
        prog: the program name in messages.

    Yields:
        The client; the local cluster (if any) is closed on exit.

    Raises:
        RuntimeError: dask[distributed] is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("Dask distributed is not installed: pip install 'fp8emu[train]' "
                           "(or pip install 'dask[distributed]')") from None
    try:
        import bokeh  # noqa: F401  (the dashboard needs it; it is not a dependency)
        dashboard = True
    except ImportError:
        dashboard = False
    if scheduler == "local":
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               scheduler_port=0)
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
    else:
        cluster = None
        try:
            # Dask's connect timeout (30 s unless configured) bounds the wait for a scheduler.
            client = Client(scheduler)
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        if not quiet:
            n = len(client.scheduler_info().get("workers", {}))
            where = "a local cluster" if cluster is not None else scheduler
            print(f"{prog}: Dask on {where}, {n} worker(s)", flush=True)
            if dashboard and client.dashboard_link:
                print(f"{prog}: Dask dashboard at {client.dashboard_link}", flush=True)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
