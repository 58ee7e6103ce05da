"""fp8emu/_cuda_launch.py builds the kernel argument list that numba-cuda builds.

The cached launch cannot run without a GPU, but its argument conversion can be compared with
numba-cuda's own (``_Kernel._prepare_args``) for the integer and tuple arguments, and the
1-D array layout (meminfo, parent, nitems, itemsize, data, shape, strides) checked by hand.
Runs in a subprocess with the simulator off (the simulator replaces ``numba.cuda``).
"""

import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import numpy as np
from numba.cuda.dispatcher import _Kernel
from numba.cuda import types
from fp8emu import _cuda_launch as L


class FakeKernel:
    extensions = []
    _prepare_args = _Kernel._prepare_args


class FakeDeviceArray:      # what _kernel_args reads of a 1-D device array
    def __init__(self, n, dtype, ptr):
        self.shape, self.dtype, self.ndim = (n,), np.dtype(dtype), 1
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": (n,), "typestr": self.dtype.str}


tys = [types.UniTuple(types.int32, 3), types.UniTuple(types.int64, 2), types.uint64, types.uint32]
vals = [(np.int32(1), np.int32(-2), np.int32(3)), (5, -7), np.uint64(2**64 - 3), np.uint32(9)]
ref = []
for t, v in zip(tys, vals):
    FakeKernel()._prepare_args(t, v, 0, [], ref)
got = L._kernel_args(tys, vals)
assert [(type(x), x.value) for x in got] == [(type(x), x.value) for x in ref], (got, ref)
arr = L._kernel_args([types.Array(types.uint32, 1, "C")], [FakeDeviceArray(10, np.uint32, 4096)])
assert arr == [0, 0, 10, 4, 4096, 10, 4], arr
print("OK")
'''


def test_kernel_arguments_match_numba_cuda():
    pytest.importorskip("numba_cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if "ImportError" in res.stderr and "dispatcher" in res.stderr:
        pytest.skip("numba-cuda's dispatcher does not import here")
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-2000:]
