"""A tiny timing helper for the benchmark scripts: warm-up, repeats, median, ns/element."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Timing", "measure", "platform_info"]


@dataclass(frozen=True)
class Timing:
    """Median and spread of ``repeat`` timed calls of one function over ``n`` elements."""

    name: str
    median_s: float
    min_s: float
    max_s: float
    n: int

    @property
    def ns_per_element(self) -> float:
        return self.median_s / self.n * 1e9

    @property
    def g_elements_per_s(self) -> float:
        return self.n / self.median_s / 1e9

    def line(self, reference: "Timing | None" = None) -> str:
        ratio = f"  {reference.median_s / self.median_s:8.3f}x vs {reference.name}" if reference else ""
        return (f"{self.name:<44s} median {self.median_s * 1e3:9.2f} ms  {self.g_elements_per_s:7.3f} G el/s "
                f"{self.ns_per_element:7.3f} ns/el (min {self.min_s * 1e3:.2f}, max {self.max_s * 1e3:.2f}){ratio}")


def measure(name: str, fn: Callable[[], object], n: int, *, repeat: int = 7, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times, then time ``repeat`` calls; report the median."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(name, statistics.median(times), min(times), max(times), n)


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
            f"numba threads {numba.get_num_threads()}{load}")
