"""On a GPU: fp8emu.cuda's cached kernel launch (fp8emu/_cuda_launch.py) against the CPU, bit for bit.

Every call after the first of a kernel signature takes the cached path, so each case runs three
times (sizes 1, 1000 and 2^20 + 7, another seed/stream each time) and every result is compared
with fp8emu.quantize / fp8emu.encode on the host.  Exit status 1 on any difference.

    python tools/probes/cuda_fast_launch_check.py
"""
import itertools
import sys
import time

import numpy as np
from numba import cuda

import fp8emu
import fp8emu.cuda as fc
from fp8emu import _cuda_launch

rng = np.random.default_rng(0)
bad = 0
cases = 0
for fmt, mode, dtype, values in itertools.product(
        ["e5m2", "e4m3fn", "e3m2fn", "e5m2fnuz", "bfloat16", "binary8p3sf", "e2m1fn"],
        ["nearest_even", "stochastic", "toward_zero"], [np.float32, np.float16, np.float64], [True, False]):
    for k, n in enumerate([1, 1000, (1 << 20) + 7]):
        x = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)).astype(dtype)
        kw = dict(rounding=mode, seed=k + 3 if mode == "stochastic" else None, stream=11 * k)
        try:
            want = (fp8emu.quantize if values else fp8emu.encode)(x, fmt, **kw)
        except (ValueError, TypeError) as exc:
            break
        got = (fc.quantize if values else fc.encode)(cuda.to_device(x), fmt, **kw).copy_to_host()
        cases += 1
        if not np.array_equal(got.view(np.uint8), want.view(np.uint8)):
            bad += 1
            print(f"DIFFER {fmt} {mode} {np.dtype(dtype).name} values={values} n={n}", flush=True)
print(f"fast launch enabled: {_cuda_launch._enabled}; cached signatures: {len(_cuda_launch._compiled)}")
x = cuda.to_device(rng.standard_normal(4096).astype(np.float32))
o = cuda.device_array_like(x)
for label in ("RNE", "SR"):
    kw = dict(rounding="stochastic", seed=1, stream=5) if label == "SR" else {}
    fc.quantize(x, "e5m2", out=o, **kw)
    cuda.synchronize()
    t = time.perf_counter()
    for _ in range(1000):
        fc.quantize(x, "e5m2", out=o, **kw)
    cuda.synchronize()
    print(f"fc.quantize 4096 float32 -> e5m2 {label}: {1e3 * (time.perf_counter() - t):.1f} us/call")
print(f"{cases} cases, {bad} differ")
sys.exit(1 if bad or not cases else 0)
