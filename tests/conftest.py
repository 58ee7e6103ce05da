"""Shared test configuration: hypothesis profiles.

Every test must also pass with ``NUMBA_DISABLE_JIT=1`` (slowly): the kernels are plain
Python then, which is how to debug them.
"""

import os

# The CUDA kernels' tests (test_cuda.py) run on Numba's CUDA simulator unless you choose
# otherwise (NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU).  Numba reads the variable when
# it is first imported, hence here, before any test module imports it.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, max_examples=200, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# In CI (FP8EMU_REQUIRE_TORCH=1) a missing PyTorch is an error, not a reason to skip the torch tests.
if os.environ.get("FP8EMU_REQUIRE_TORCH") == "1":
    try:
        import torch  # noqa: F401
        import fp8emu.torch  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"FP8EMU_REQUIRE_TORCH=1 but PyTorch/fp8emu.torch does not import: {exc}") from exc


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def dask_client():
    """A Dask LocalCluster of 2 worker processes with one thread each, started once for the tests
    that need it (test_sweep, test_digest); nothing is pre-started outside the tests."""
    pytest.importorskip("distributed")
    from fp8emu.cluster import connect
    with connect("local", workers=2, quiet=True) as client:
        yield client


def pytest_addoption(parser, pluginmanager):
    """Without pytest-xdist (not installed, or ``-p no:xdist``), accept and ignore the ``-n`` and
    ``--dist`` that pyproject.toml's ``addopts`` pass, so the suite still runs, in one process
(for test paths under tests/, where pytest loads this file before it parses the options)."""
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist-fallback", "pytest-xdist is not active: the tests run in one process")
    # lowercase short options are reserved to plugins, as pytest-xdist registers its own
    group._addoption("-n", "--numprocesses", dest="numprocesses", default=None,
                    help="ignored: pytest-xdist is not active")
    group.addoption("--dist", dest="dist", default="no", help="ignored: pytest-xdist is not active")


def pytest_report_header(config):
    if not config.pluginmanager.has_plugin("xdist"):
        return "pytest-xdist is not active: one process (-n and --dist ignored)"
