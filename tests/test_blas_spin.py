"""Importing fp8emu after NumPy gives NumPy's OpenBLAS the short spin timeout anyway.

OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` when it loads; with NumPy imported first (the usual
order) its idle workers used to spin for 2^28 cycles after every threaded call and take the
cores from Numba's kernels in between (a ResNet-18 step about 1.3x slower, matmul with operand
quantization 0.70-0.72x instead of 0.80-0.83x np.matmul on 2 cores; tools/probes/import_order.py).  Each
case runs in a fresh interpreter: the import order is the thing under test.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from fp8emu._blas import _openblas_calls

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _openblas_calls("openblas_read_env") is None
    or _openblas_calls("blas_thread_shutdown_") is None
    or _openblas_calls("scipy_openblas_get_num_threads64_") is None,
    reason="NumPy's BLAS is not the scipy-openblas of NumPy's wheels (with openblas_read_env, "
           "blas_thread_shutdown_) here")


def _child_output(code: str, **env_vars) -> str:
    # not the defaults this process's own import of fp8emu put in os.environ
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    # two OpenBLAS threads (one worker) whatever this process's environment says
    env.update(OPENBLAS_NUM_THREADS="2", **env_vars)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout


def _child(code: str, **env_vars) -> list[str]:
    return _child_output(code, **env_vars).split()


_TASKS = "sorted(os.listdir('/proc/self/task'))"
# a product large enough that OpenBLAS runs it on its worker thread too
_PRODUCT = ("rng = numpy.random.default_rng(0); a = rng.standard_normal((512, 512), dtype=numpy.float32); "
            "b = rng.standard_normal((512, 512), dtype=numpy.float32)")


# NumPy's OpenBLAS before fp8emu is imported (importing fp8emu._blas would import fp8emu)
_OPENBLAS_BEFORE_FP8EMU = (
    "import ctypes\n"
    "lib = ctypes.CDLL([ln.split()[-1] for ln in open('/proc/self/maps') if 'scipy_openblas' in ln][0])\n")


def test_numpy_first_then_fp8emu_restarts_openblas_workers_with_the_timeout():
    """NumPy first: the import sets the timeout in OpenBLAS (it read 0, its default, at load),
    stops the worker that was started with the old one (its thread ends; a new one serves the
    next product), and leaves the thread count and the product's bits as they were."""
    out = _child(
        "import os, numpy\n" + _PRODUCT + "\n"
        "before = numpy.matmul(a, b); tasks0 = set(" + _TASKS + ")\n"
        + _OPENBLAS_BEFORE_FP8EMU +
        "t0, n0 = lib.openblas_thread_timeout(), lib.scipy_openblas_get_num_threads64_()\n"
        "import fp8emu\n"
        "from fp8emu._blas import spin_timeout, blas_threads\n"
        "after = numpy.matmul(a, b); tasks1 = set(" + _TASKS + ")\n"
        "print(t0, n0, spin_timeout(), blas_threads(), fp8emu._OPENBLAS_SPIN_SET, numpy.array_equal(before, after),"
        " len(tasks0 - tasks1), len(tasks1 - tasks0))")
    t0, n0, t1, n1, flag, same, ended, started = out
    assert (t0, n0) == ("0", "2"), "OpenBLAS should start without a timeout and with 2 threads here"
    assert t1 == "4" and flag == "True"
    assert n1 == n0 and same == "True"
    assert int(ended) >= 1 and int(started) >= 1, "the worker started with the old timeout must be replaced"


def test_fp8emu_first_needs_no_restart():
    """fp8emu first: OpenBLAS reads the timeout at load, so no worker is stopped."""
    out = _child("import fp8emu, numpy\nfrom fp8emu._blas import spin_timeout\n"
                 "print(spin_timeout(), fp8emu._OPENBLAS_SPIN_SET)")
    assert out == ["4", "True"]


def test_a_timeout_of_your_own_is_kept():
    """A value set before NumPy is OpenBLAS's own already; the import neither changes nor resets it."""
    out = _child("import os, numpy\n" + _PRODUCT + "\nnumpy.matmul(a, b); tasks0 = set(" + _TASKS + ")\n"
                 "import fp8emu\nfrom fp8emu._blas import spin_timeout\nnumpy.matmul(a, b)\n"
                 "print(spin_timeout(), fp8emu._OPENBLAS_SPIN_SET, len(tasks0 - set(" + _TASKS + ")))",
                 OPENBLAS_THREAD_TIMEOUT="7")
    assert out == ["7", "True", "0"]


def test_no_restart_while_another_python_thread_runs():
    """Another Python thread might be inside a BLAS call: the workers are left alone (and the
    GEMM pipeline, which needs sleeping workers, stays off)."""
    out = _child("import threading, numpy\nstop = threading.Event()\n"
                 "t = threading.Thread(target=stop.wait); t.start()\n"
                 "import fp8emu\nfrom fp8emu._blas import spin_timeout\n"
                 "print(spin_timeout(), fp8emu._OPENBLAS_SPIN_SET); stop.set(); t.join()")
    assert out == ["0", "False"]


def test_apply_spin_timeout_refuses_a_value_that_is_not_a_count(monkeypatch):
    """Nothing is re-read or stopped for a malformed value (OpenBLAS would read it as 0)."""
    from fp8emu import _blas
    called = []
    monkeypatch.setattr(_blas, "_openblas_calls", lambda name: called.append(name))
    for value in ("", "abc", "-3", "4.5"):
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", value)
        assert _blas.apply_spin_timeout() is False
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    assert _blas.apply_spin_timeout() is False
    assert called == []


_MATMULS = ("import warnings\n"
            "a = numpy.ones((300, 200), numpy.float32)\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    fp8emu.matmul(a, a.T, a_fmt='e5m2', b_fmt='e5m2')\n"
            "    fp8emu.matmul(a, a.T)\n"
            "    fp8emu.conv2d(numpy.ones((2, 3, 8, 8), numpy.float32), numpy.ones((4, 3, 3, 3), numpy.float32))\n"
            "print(len([w for w in seen if 'OPENBLAS_THREAD_TIMEOUT' in str(w.message)]))\n")


def test_a_spinning_openblas_is_warned_about_once():
    """NumPy first with another Python thread alive (a Jupyter kernel has several): no restart,
    so the first BLAS product warns, once, and says what to do."""
    out = _child("import threading, numpy\nstop = threading.Event()\n"
                 "t = threading.Thread(target=stop.wait); t.start()\nimport fp8emu\nstop.set(); t.join()\n"
                 + _MATMULS)
    assert out == ["1"]
    text = _child_output("import threading, numpy, warnings\nstop = threading.Event()\n"
                         "t = threading.Thread(target=stop.wait); t.start()\nimport fp8emu\nstop.set(); t.join()\n"
                         "with warnings.catch_warnings(record=True) as seen:\n"
                         "    warnings.simplefilter('always')\n"
                         "    fp8emu.matmul(numpy.ones((3, 2), numpy.float32), numpy.ones((2, 3), numpy.float32))\n"
                         "print(seen[0].category.__name__, seen[0].message)")
    assert text.startswith("RuntimeWarning ")
    for needed in ("2^28 cycles", "Import fp8emu before NumPy", "OPENBLAS_THREAD_TIMEOUT=4", "Jupyter"):
        assert needed in text, needed


@pytest.mark.parametrize("order, env", [("import numpy, fp8emu\n", {}), ("import fp8emu, numpy\n", {}),
                                        ("import numpy, fp8emu\n", {"OPENBLAS_THREAD_TIMEOUT": "28"})])
def test_no_warning_when_the_timeout_reached_openblas_or_is_your_own(order, env):
    """Restarted, set at load, or your own value (even OpenBLAS's default 28): no warning."""
    assert _child(order + _MATMULS, **env) == ["0"]
