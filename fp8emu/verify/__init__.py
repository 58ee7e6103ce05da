"""The verification toolkit: exception flags, TestFloat-style test vectors (conversions and dot
products), checking a device's outputs against them, and a cross-library disagreement report.

Command line: ``fp8emu vectors``, ``fp8emu check``, ``fp8emu crosscheck`` (see :mod:`fp8emu.verify.cli`).
The modules import only NumPy, Numba and the numerics below them; :mod:`fp8emu.testing` (the
hypothesis strategies) is separate so that hypothesis stays optional.
"""

from .check import CheckReport, check, check_files
from .dot import DotReport, check_dot, generate_dot, read_dot, read_dot_results, write_dot
from .flags import (FLAG_NAMES, INEXACT, INFINITE, INVALID, OVERFLOW, UNDERFLOW, encode_with_flags, exception_flags,
                    flag_counts, flag_names)
from .textio import FileFormatError
from .vectors import VectorSet, generate, read_results, read_vectors, write_results, write_vectors

__all__ = ["FLAG_NAMES", "INEXACT", "INFINITE", "INVALID", "OVERFLOW", "UNDERFLOW", "encode_with_flags",
           "exception_flags", "flag_counts", "flag_names", "VectorSet", "generate", "read_vectors", "write_vectors",
           "write_results", "read_results", "FileFormatError", "CheckReport", "check", "check_files", "generate_dot",
           "read_dot", "write_dot", "read_dot_results", "check_dot", "DotReport"]
