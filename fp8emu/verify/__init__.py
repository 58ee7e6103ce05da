"""The verification toolkit: exception flags, TestFloat-style test vectors, checking a device's
outputs against them, and a cross-library disagreement report.

Command line: ``fp8emu vectors``, ``fp8emu check``, ``fp8emu crosscheck`` (see :mod:`fp8emu.verify.cli`).
"""

from .flags import (FLAG_NAMES, INEXACT, INFINITE, INVALID, OVERFLOW, UNDERFLOW, encode_with_flags, exception_flags,
                    flag_counts, flag_names)

__all__ = ["FLAG_NAMES", "INEXACT", "INFINITE", "INVALID", "OVERFLOW", "UNDERFLOW", "encode_with_flags",
           "exception_flags", "flag_counts", "flag_names"]
