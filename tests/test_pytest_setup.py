"""The test run's own set-up: pyproject.toml's ``addopts`` pass pytest-xdist's ``-n 2 --dist
loadfile``; without pytest-xdist (not installed, as on the GPU machine, or ``-p no:xdist``)
tests/conftest.py accepts and ignores them, so the suite still runs, in one process."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_probe_target():
    """What the runs below run: prints which worker it ran on."""
    print("WORKER=" + os.environ.get("PYTEST_XDIST_WORKER", "none"))


def _pytest(*args: str) -> subprocess.CompletedProcess:
    # a node inside tests/, so that tests/conftest.py is one of the conftests loaded first
    # without the variables of the xdist worker this test may itself run on
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", *args,
                           "tests/test_pytest_setup.py::test_probe_target"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_without_xdist_the_addopts_are_ignored_and_one_process_runs():
    run = _pytest("-p", "no:xdist")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pytest-xdist is not active" in run.stdout
    assert "WORKER=none" in run.stdout


def test_the_default_run_takes_two_workers():
    import pytest
    pytest.importorskip("xdist")
    run = _pytest()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 workers" in run.stdout, run.stdout
