"""Steady-state time of conv2d and conv2d_grad_input at the ResNet-18 (CIFAR, batch 128) shapes (issue 19).

    python tools/probes/conv_chunks.py            # this checkout's chunking
    cd <other checkout> && python <this file>     # the other one's (the package is imported from the cwd)

Each call runs 14 times; prints the median of the last 8 (the first calls of a process run up
to 2x slower in these virtual machines while fresh output arrays fault their pages in) and the
second call's time.  float32 operands, the default accumulator (fp32_blas).
"""
import os
import sys
import time

sys.path.insert(0, os.getcwd())
import numpy as np  # noqa: E402
from benchmarks.timing import header  # noqa: E402
from fp8emu.conv import conv2d, conv2d_grad_input  # noqa: E402

print(header())
SHAPES = [((128, 64, 32, 32), (64, 64, 3, 3)), ((128, 128, 16, 16), (128, 128, 3, 3)),
          ((128, 256, 8, 8), (256, 256, 3, 3)), ((128, 512, 4, 4), (512, 512, 3, 3))]
for xs, ws in SHAPES:
    rng = np.random.default_rng(10)
    x = rng.standard_normal(xs, dtype=np.float32)
    w = rng.standard_normal(ws, dtype=np.float32)
    gy = rng.standard_normal((xs[0], ws[0], xs[2], xs[3]), dtype=np.float32)
    res = []
    for f in (lambda: conv2d(x, w, padding=1), lambda: conv2d_grad_input(gy, w, x.shape, padding=1)):
        ts = []
        for _ in range(14):
            t = time.perf_counter()
            f()
            ts.append((time.perf_counter() - t) * 1e3)
        res.append(f"{np.median(ts[6:]):6.1f} ms (second call {ts[1]:.0f})")
    print(f"{str(xs):18s} * {str(ws):16s} forward {res[0]}  grad_input {res[1]}", flush=True)
