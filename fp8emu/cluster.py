"""Dask distributed for fp8emu's sweeps: connect to a scheduler, or start a local one.

Training sweeps (:mod:`fp8emu.sweep`) and the exhaustive conversion hashes
(:mod:`fp8emu.verify.vectors`) share this module, which imports nothing else from fp8emu (but its OpenBLAS helper).
``dask[distributed]`` comes with the ``train`` extra; it is imported only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ._blas import blas_threads

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
