import time, cProfile, pstats, sys, io
import torch, numpy as np
from numba import cuda
import fp8emu.cuda as fc
from fp8emu.torch._cuda import quantize_into
from fp8emu import get_format
x = torch.randn(4096, device="cuda"); out = torch.empty_like(x)
f = get_format("e5m2")
def t(label, fn, n=500):
    fn(); torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); print(f"{label:<50} {1e6*(time.perf_counter()-t0)/n:8.1f} us/call", flush=True)
t("torch x.clone()", lambda: x.clone())
t("cuda.as_cuda_array(x)", lambda: cuda.as_cuda_array(x))
t("cuda.as_cuda_array(x, sync=False)", lambda: cuda.as_cuda_array(x, sync=False))
t("x.__cuda_array_interface__", lambda: x.__cuda_array_interface__)
xv, ov = cuda.as_cuda_array(x), cuda.as_cuda_array(out)
s = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
t("external_stream", lambda: cuda.external_stream(torch.cuda.current_stream().cuda_stream))
t("fc.quantize views RNE", lambda: fc.quantize(xv, f, out=ov, cuda_stream=s))
t("fc.quantize views SR", lambda: fc.quantize(xv, f, out=ov, rounding="stochastic", seed=1, stream=5, cuda_stream=s))
t("quantize_into RNE", lambda: quantize_into(x, f, out))
t("quantize_into SR", lambda: quantize_into(x, f, out, rounding="stochastic", seed=1, stream=5))
import fp8emu.torch as ft
t("fp8emu.torch.quantize op SR", lambda: ft.quantize(x, f, rounding="stochastic", seed=1, stream=5))
pr = cProfile.Profile(); pr.enable()
for _ in range(300): quantize_into(x, f, out, rounding="stochastic", seed=1, stream=5)
torch.cuda.synchronize(); pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(30)
