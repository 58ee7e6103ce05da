"""Benchmarks (``python -m benchmarks.<name>``).  fp8emu is imported before NumPy so that its
thread-pool defaults (``fp8emu.THREAD_ENV_DEFAULTS``) apply, as they do in the ``fp8emu`` CLI."""

import fp8emu  # noqa: F401  (first: OpenBLAS reads its settings when NumPy loads it)
