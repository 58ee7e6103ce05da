"""A tiny timing helper for the benchmark scripts: warm-up, repeats, median, ns/element, and the
hardware header every script prints (CPU model, the ISA Numba compiles for, NumPy's BLAS kernel)."""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Timing", "blas_info", "cpu_model", "header", "measure", "numba_target", "platform_info", "threading_layer"]


@dataclass(frozen=True)
class Timing:
    """Median and spread of ``repeat`` timed calls of one function over ``n`` elements."""

    name: str
    median_s: float
    min_s: float
    max_s: float
    n: int
    unit: str = "el"        # what n counts (elements; FLOP for the GEMM model)

    @property
    def ns_per_element(self) -> float:
        return self.median_s / self.n * 1e9

    @property
    def g_elements_per_s(self) -> float:
        return self.n / self.median_s / 1e9

    def line(self, reference: "Timing | None" = None) -> str:
        ratio = f"  {reference.median_s / self.median_s:8.3f}x vs {reference.name}" if reference else ""
        u = self.unit
        return (f"{self.name:<44s} median {self.median_s * 1e3:9.2f} ms  {self.g_elements_per_s:7.3f} G {u}/s "
                f"{self.ns_per_element:7.3f} ns/{u} (min {self.min_s * 1e3:.2f}, max {self.max_s * 1e3:.2f}){ratio}")


def measure(name: str, fn: Callable[[], object], n: int, *, repeat: int = 7, warmup: int = 1,
            clock: Callable[[], float] = time.perf_counter, unit: str = "el") -> Timing:
    """Call ``fn`` ``warmup`` times, then time ``repeat`` calls by ``clock`` (wall clock unless
    told, e.g. ``time.thread_time`` for CPU time: that one counts a parallel loop only where the
    threading layer runs it on the calling thread too, as omp and tbb do and workqueue does not;
    :func:`header` prints the layer); report the median.  ``unit``: what ``n`` counts."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return Timing(name, statistics.median(times), min(times), max(times), n, unit)


def platform_info() -> str:
    """One line: Python, NumPy, Numba versions, CPU and thread settings, load average."""
    import numba
    import numpy as np
    try:
        load = " load %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    return (f"python {platform.python_version()} numpy {np.__version__} numba {numba.__version__} | "
            f"{platform.machine()} {platform.processor() or platform.platform()} | cpus {os.cpu_count()} "
            f"numba threads {numba.get_num_threads()} ({threading_layer()}){load}")


def threading_layer() -> str:
    """Numba's threading layer (omp, tbb or workqueue): chosen by the first parallel loop, so
    one runs here if none has (CPU-time figures depend on it, see :func:`measure`)."""
    import numba
    try:
        return numba.threading_layer()
    except ValueError:
        import numpy as np

        import fp8emu
        from fp8emu._kernels import SERIAL_BELOW
        fp8emu.quantize(np.zeros(SERIAL_BELOW, np.float32), "e5m2")     # a parallel kernel, from the cache
        try:
            return numba.threading_layer()
        except ValueError:
            return "threading layer not chosen"


def cpu_model() -> str:
    """The CPU model string (``model name`` of /proc/cpuinfo on Linux, else ``platform.processor()``),
    with the x86 family and model numbers where /proc/cpuinfo has them: virtual machines often
    report a bare "AMD EPYC", and family 25 model 1 (Zen 3) and model 17 (Zen 4) differ."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break                                   # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    name = next((fields[k] for k in ("model name", "hardware", "cpu model") if fields.get(k)), "")
    if not name:
        return platform.processor() or platform.machine() or "unknown"
    if fields.get("cpu family") and fields.get("model"):
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def _isa_summary(features: str) -> str:
    """The widest x86 vector extension a ``+a,-b,...`` LLVM feature string enables ('' if none named)."""
    on = {f[1:] for f in features.split(",") if f.startswith("+")}
    for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4.2", "SSE4.2"),
                        ("neon", "NEON"), ("sve", "SVE")):
        if flag in on:
            return label
    return ""


def numba_target() -> str:
    """The CPU name and ISA Numba's JIT compiles for.

    Numba uses ``NUMBA_CPU_NAME`` (else the host CPU name) together with ``NUMBA_CPU_FEATURES``
    (else the host's full feature list, which LLVM applies on top of the named CPU: so
    ``NUMBA_CPU_NAME=haswell`` alone still emits AVX-512 on an AVX-512 host; AVX2-only code needs
    ``NUMBA_CPU_FEATURES`` too).  The summary names the widest vector extension of the features
    actually passed.

    Returns:
        e.g. ``"znver4 (host), features host: AVX-512"`` or
        ``"haswell (NUMBA_CPU_NAME), features NUMBA_CPU_FEATURES=+avx2,...: AVX2"``.
    """
    import llvmlite.binding as ll
    from numba.core import config

    name = f"{config.CPU_NAME} (NUMBA_CPU_NAME)" if config.CPU_NAME else f"{ll.get_host_cpu_name()} (host)"
    if config.CPU_FEATURES is not None:
        feats = config.CPU_FEATURES
        where = f"NUMBA_CPU_FEATURES={feats or '(empty)'}"
        isa = _isa_summary(feats) or f"whatever {config.CPU_NAME or 'the host CPU'} implies"
    else:
        feats = ll.get_host_cpu_features().flatten()
        where = "host"
        isa = _isa_summary(feats) or "no x86 vector extension"
    return f"{name}, features {where}: {isa}"


def _openblas_corename() -> str:
    """OpenBLAS's runtime-selected kernel (``openblas_get_corename``) from the library NumPy loaded,
    found as fp8emu finds its thread-count calls (:mod:`fp8emu._blas`: every scipy-openblas
    spelling, through /proc/self/maps); '' when there is none (not OpenBLAS, not Linux)."""
    from fp8emu._blas import _openblas_calls

    fn = _openblas_calls("openblas_get_corename")
    if fn is None:
        return ""
    fn.restype = ctypes.c_char_p
    core = fn()
    return core.decode(errors="replace") if core else ""


def blas_info() -> str:
    """NumPy's BLAS: library name and version (``np.show_config``), how long OpenBLAS's idle workers
    spin, and OpenBLAS's runtime kernel."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        lib = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no mode='dicts'; the header must never stop a benchmark
        lib = "unknown BLAS"
    core = _openblas_corename()
    # A kernel forced by the environment is not the one OpenBLAS would pick for this CPU (some
    # hosts set OPENBLAS_CORETYPE=Haswell on AVX-512 CPUs): say so, or the header misleads.
    forced = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(k))
    # idle workers spin 2^t cycles after each call (0: OpenBLAS's default, 28; it clamps to 4..30)
    from fp8emu._blas import spin_timeout
    t = spin_timeout()
    spin = "" if t is None else f", idle workers spin 2^{min(max(t, 4), 30) if t else 28} cycles"
    text = f"{lib}{spin}, kernel {core}" if core else f"{lib}{spin}, kernel unknown"
    return f"{text} (set by the environment: {forced})" if forced else text


def header() -> str:
    """The benchmark header: versions/threads/load (:func:`platform_info`), then CPU, Numba ISA, BLAS."""
    return (f"# {platform_info()}\n# cpu: {cpu_model()}\n# numba target: {numba_target()}\n"
            f"# blas: {blas_info()}")
