"""pytest plugin: Numba's compile time per jitted function and per test, exclusive of the
functions it compiles on the way (numba:compile events), written as JSON at the end.

    rm -rf /tmp/fresh && git clone -q . /tmp/fresh && cd /tmp/fresh && \
    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=$OLDPWD/tools/probes \
    COMPILEPROF_OUT=/tmp/compile.json python -m pytest -n 0 -p compile_time_plugin

A fresh clone has no Numba cache, as in CI.  NUMBA_ENABLE_CUDASIM must be set here: the plugin
imports Numba before tests/conftest.py can set it.  One process (``-n 0``): each worker of
pytest-xdist would count its own compiles.  Summary of the 2026-12-04 run:
docs/results/compile-time-2026-12-04/compile_by_function.txt.
"""
import collections, time, os, json
from numba.core import event

class _L(event.Listener):
    def __init__(self):
        self.stack = []
        self.by_func = collections.Counter()
        self.n_func = collections.Counter()
        self.current_test = None
        self.by_test = collections.Counter()
    def on_start(self, ev):
        self.stack.append([time.perf_counter(), 0.0])
    def on_end(self, ev):
        t0, child = self.stack.pop()
        total = time.perf_counter() - t0
        excl = total - child
        if self.stack:
            self.stack[-1][1] += total
        d = ev.data.get("dispatcher")
        name = getattr(getattr(d, "py_func", None), "__module__", "?") + "." + getattr(getattr(d, "py_func", None), "__qualname__", "?")
        self.by_func[name] += excl
        self.n_func[name] += 1
        self.by_test[self.current_test] += excl

L = _L()
event.register("numba:compile", L)

def pytest_runtest_setup(item):
    L.current_test = item.nodeid

def pytest_sessionfinish(session):
    out = os.environ.get("COMPILEPROF_OUT", "compile_time.json")
    with open(out, "w") as f:
        json.dump({"by_func": L.by_func.most_common(), "n_func": dict(L.n_func),
                   "by_test": L.by_test.most_common()}, f, indent=0)
