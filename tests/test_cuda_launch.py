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
    _run(SCRIPT)


PLAN_SCRIPT = r'''
import itertools
import numpy as np
from numba.cuda.dispatcher import _Kernel
import fp8emu
import fp8emu.cuda as fc
from fp8emu import _cuda_launch as L
from fp8emu.quantize import INPUT_LAYOUTS, kernel_arguments
from fp8emu.formats import get_format


class FakeKernel:
    extensions = []
    _prepare_args = _Kernel._prepare_args


class FakeDeviceArray:      # what the launch paths read of a 1-D device array
    def __init__(self, n, dtype, ptr):
        self.shape, self.dtype, self.ndim = (n,), np.dtype(dtype), 1
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": (n,), "typestr": self.dtype.str,
                                         "strides": None, "version": 3}


# No GPU here: the device-side resources are stand-ins with fixed pointers, and the overload's
# argument types are Numba's typing of the arguments (what numba-cuda compiles these kernels for).
fc._lut_on_device = lambda fmt, name: FakeDeviceArray(fmt.num_codes, INPUT_LAYOUTS[name].uint, 7 << 20)
fc._placeholder = lambda dev: FakeDeviceArray(1, np.int32, 9 << 20)
fc._device_id = lambda: 0
fc._sm_count = lambda: 132
L._overload = lambda kernel, args: ("cufunc", tuple(kernel.typeof_pyval(a) for a in args))
launched = []
L.Plan.launch = lambda self, *a: launched.append((self, a)) or True


def existing_call(fmt, name, values, rounding, saturate, sr_bits, seed, stream, n, src_ptr, dst_ptr):
    """The argument tuple and list of the existing path (fp8emu.cuda._round -> _cuda_launch.launch)."""
    f = get_format(fmt)
    args = kernel_arguments(f, fc._dtype_of(name), rounding=rounding, saturate=saturate, seed=seed,
                            sr_bits=sr_bits, stream=stream, values=values)
    stochastic = fp8emu.RoundMode.parse(rounding) is fp8emu.RoundMode.STOCHASTIC
    kernel, lut, p32, lim = fc._kernel_and_constants(f, name, args, stochastic, sr_bits, values)
    uint = INPUT_LAYOUTS[name].uint
    src = FakeDeviceArray(n, uint, src_ptr)
    dst = FakeDeviceArray(n, uint if values else f.code_dtype, dst_ptr)
    launch_args = (src, dst, lut, p32, args.params, args.keys.base, args.keys.key0, lim)
    argtypes = L._overload(kernel, launch_args)[1]
    return kernel, args, launch_args, argtypes, L._kernel_args(argtypes, launch_args)


cases = 0
modes = ["nearest_even", "stochastic", "toward_zero", "nearest_away", "odd"]
for fmt, name, values, mode, saturate in itertools.product(
        ["e5m2", "e4m3fn", "e2m1fn", "e8m0fnu", "bfloat16", "binary8p3sf", "tf32", "e8m13"],
        ["float32", "float16", "bfloat16", "float64"], [True, False], modes, [False, True]):
    for sr_bits in ([None, 8] if mode == "stochastic" else [None]):
        f = get_format(fmt)
        try:
            kernel, args, launch_args, argtypes, ref = existing_call(f, name, values, mode, saturate, sr_bits,
                                                                     3, 5, 1000, 4096, 8192)
        except (ValueError, TypeError):
            continue          # the format's values do not fit the dtype, or the mode does not exist for it
        dev = 0
        fc._PLANS.clear()
        fc._bind_plan((f, name, values, mode, saturate, sr_bits, dev), kernel, launch_args, args)
        assert len(fc._PLANS) == 1, "plan not bound"
        plan = next(iter(fc._PLANS.values()))[0]
        # the bound call itself, and a later call with other pointers, length, seed and stream
        assert L._comparable(plan.arguments(4096, 8192, 1000, int(args.keys.base), int(args.keys.key0))) == \
            L._comparable(ref)
        for seed, stream, n in [(3, 5, 1000), (12345678901234, -7, 17), (2**63 + 5, 2**40, 1)]:
            launched.clear()
            assert fc._round_ptr(1 << 30, 2 << 30, n, name, f, values, 0, dev, rounding=mode, saturate=saturate,
                                 seed=seed, sr_bits=sr_bits, stream=stream)
            (_, (blocks, threads, handle, sp, dp, nn, kb, k0)), = launched
            *_, ref2 = existing_call(f, name, values, mode, saturate, sr_bits, seed, stream, n, 1 << 30, 2 << 30)
            assert (blocks, threads) == fc.launch_config(n, fc._TUNING.ilp)
            got = plan.arguments(sp, dp, nn, kb, k0)
            assert L._comparable(got) == L._comparable(ref2), (fmt, name, values, mode, saturate, sr_bits, seed)
        # the scalar and tuple arguments as numba-cuda converts them itself
        numba_args = []
        for t, v in zip(argtypes[2:], launch_args[2:]):
            if not hasattr(v, "__cuda_array_interface__"):
                FakeKernel()._prepare_args(t, v, 0, [], numba_args)
        mine = [a for a in plan.arguments(0, 0, 1, int(args.keys.base), int(args.keys.key0))[14:]]
        if hasattr(launch_args[2], "__cuda_array_interface__"):
            mine = mine[7:]             # the table's array arguments, checked above
        assert L._comparable(mine) == L._comparable(numba_args)
        cases += 1
assert cases > 300, cases
print("OK", cases)
'''


KEY_SCRIPT = r'''
import dataclasses
import numpy as np
import fp8emu.cuda as fc
from fp8emu import _cuda_launch as L
from fp8emu.formats import get_format, e5m2
from fp8emu.quantize import INPUT_LAYOUTS


class FakeDeviceArray:
    def __init__(self, n, dtype, ptr):
        self.shape, self.dtype, self.ndim = (n,), np.dtype(dtype), 1
        self.size, self.nbytes = n, n * self.dtype.itemsize      # what the out= overlap test reads
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": (n,), "typestr": self.dtype.str,
                                         "strides": None, "version": 3}

    def view(self, dtype):
        return FakeDeviceArray(self.shape[0], dtype, self.__cuda_array_interface__["data"][0])


fc._lut_on_device = lambda fmt, name: FakeDeviceArray(fmt.num_codes, INPUT_LAYOUTS[name].uint, 7 << 20)
fc._placeholder = lambda dev: FakeDeviceArray(1, np.int32, 9 << 20)
fc._device_id = lambda: 0
fc._sm_count = lambda: 132
fc._cuda_launch._overload = lambda kernel, args: ("cufunc", tuple(kernel.typeof_pyval(a) for a in args))
fc._cuda_launch.Plan.launch = lambda self, *a: True
# _round on stand-in arrays binds the plan of its arguments (the launch itself is Numba's, not run here)
fc._launch = lambda kernel, n, cuda_stream, *args: None
fc._device_array = lambda x, argname, fn: x
fc._check_out = lambda out, shape, dtype, fn, **kw: out

base = dict(fmt=e5m2, name="float32", values=True, rounding="stochastic", saturate=False, sr_bits=None, device=0)
other = {"fmt": get_format("e4m3fn"), "name": "float16", "values": False, "rounding": "nearest_even",
         "saturate": True, "sr_bits": 8, "device": 1}


def bind(c):
    uint = INPUT_LAYOUTS[c["name"]].uint
    src = FakeDeviceArray(64, np.dtype(c["name"]), 4096)
    dst = FakeDeviceArray(64, np.dtype(c["name"]) if c["values"] else c["fmt"].code_dtype, 8192)
    fc._round(src, c["fmt"], c["rounding"], c["saturate"], 1, c["sr_bits"], 2, dst, None, None, c["values"],
              plan_device=c["device"])


def ptr(c, **kw):
    return fc._round_ptr(4096, 8192, 64, c["name"], c["fmt"], c["values"], 0, c["device"],
                         rounding=c["rounding"], saturate=c["saturate"], sr_bits=c["sr_bits"],
                         seed=kw.get("seed", 1), stream=kw.get("stream", 2))


bind(base)
assert ptr(base) and len(fc._PLANS) == 1
plans = {id(next(iter(fc._PLANS.values()))[0])}
for field, value in other.items():
    c = dict(base, **{field: value})
    if field == "sr_bits":
        c["rounding"] = "stochastic"
    assert not ptr(c), f"a call differing in {field} found the plan of another call"
    bind(c)
    assert ptr(c), field
    plans |= {id(v[0]) for v in fc._PLANS.values()}
    assert len(plans) == len(fc._PLANS), field
assert len(fc._PLANS) == 1 + len(other)
# an equal Format object shares the plan (the name does not take part in equality: it changes no bit); another
# format has none; bool/int look-alikes and bad seeds: no plan (the checked path decides)
assert ptr(dict(base, fmt=dataclasses.replace(e5m2))) and ptr(dict(base, fmt=dataclasses.replace(e5m2, name="x")))
assert not ptr(dict(base, fmt=dataclasses.replace(e5m2, bias=16)))
assert not ptr(dict(base, saturate=0))
assert not ptr(dict(base, sr_bits=True)) and not ptr(dict(base, rounding="stochastic", sr_bits=1))
assert not ptr(base, seed=True) and not ptr(base, seed=1.5)
assert not ptr(base, stream="x") and not ptr(base, stream=False)
assert ptr(base, seed=np.int64(3), stream=np.int32(-4)) and ptr(base, seed=None)
# the keys: per (seed, stream), as kernel_arguments computes them
from fp8emu.quantize import kernel_arguments
for seed, stream in [(0, 0), (1, 2), (2, 1), (2**64 - 1, -(2**40))]:
    k = kernel_arguments("e5m2", np.float32, rounding="stochastic", seed=seed, stream=stream).keys
    assert fc._sr_keys(seed, stream) == (int(k.base), int(k.key0))
print("OK")
'''


def _run(script, tuning=""):
    """Run ``script`` with the simulator off (it replaces numba.cuda); it prints OK at its end."""
    pytest.importorskip("numba_cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", FP8EMU_CUDA_TUNING=tuning)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if "ImportError" in res.stderr and "dispatcher" in res.stderr:
        pytest.skip("numba-cuda's dispatcher does not import here")
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


@pytest.mark.parametrize("tuning", ["specialize=0,unsigned=0,value_kernels=0,fixed_block=0",
                                    "specialize=1,unsigned=1,value_kernels=1,fixed_block=1"])
def test_pointer_launch_plans_build_the_existing_argument_list(tuning):
    """fp8emu.cuda._round_ptr launches what _round's launch builds, for every kind of kernel and call:
    the kernels that read the mode per element, and the per-mode ones (float32 quantize on the
    CPU's value routines, whose constants are a tuple of int32 and uint32)."""
    _run(PLAN_SCRIPT, tuning)


def test_pointer_launch_plans_differ_in_every_field_that_changes_bits():
    _run(KEY_SCRIPT)


DEVICE_SCRIPT = r'''
import numpy as np
from fp8emu import _cuda_launch as L

class FakeDeviceArray:
    def __init__(self, n, dtype):
        self.shape, self.dtype, self.ndim = (n,), np.dtype(dtype), 1
        self.__cuda_array_interface__ = {"data": (4096, False), "shape": (n,), "typestr": self.dtype.str}

args = (FakeDeviceArray(8, np.uint32), (np.int32(1), np.int32(2)), np.uint64(3))
keys = {}
for dev in (0, 1):
    L._current_device_id = lambda dev=dev: dev
    keys[dev] = L._signature_key(object, args)
assert keys[0] != keys[1], keys      # a kernel compiled in device 0's context is not launched on device 1
L._current_device_id = lambda: 0
assert L._signature_key(object, args) == keys[0]
print("OK")
'''


def test_cached_launch_is_per_device():
    """The cached launch keeps one compiled function per device: a function belongs to one
    device's context, and reusing device 0's on another GPU would fail (or run the wrong code)."""
    _run(DEVICE_SCRIPT)
