"""GNU OpenMP's spin before sleep (``GOMP_SPINCOUNT``, which fp8emu's import sets): what it is worth.

    python tools/probes/omp_spin.py [--rounds 3] [--spins 0 5000] [--no-train]
    python tools/probes/omp_spin.py --variants "OPENBLAS_THREAD_TIMEOUT=4" "OPENBLAS_THREAD_TIMEOUT=18"

Each round starts one child process per spin count; each child imports fp8emu first (so
``OMP_WAIT_POLICY=PASSIVE`` and ``OPENBLAS_THREAD_TIMEOUT=4`` as by default) with
``GOMP_SPINCOUNT`` set to that count (0: the pool sleeps at once, fp8emu's earlier default).
A child times, on 2 Numba threads: a call of a tiny parallel kernel right after the previous one
and after gaps of 50 us to 1.6 ms (the wake-up cost of the pool); a 384^3 ``np.matmul`` right
after another and after 0.4 ms (OpenBLAS's); ``fp8emu.quantize`` of 512 K
float32 (e5m2, ``out=``) back to back; ``fp8emu.matmul`` with e5m2 operands against ``np.matmul``
at 32768 x 1152 x 128; and a ResNet-18 training step (width 8, batch 128, fp32 and paper-e5m2).
Medians; the rounds alternate the counts.  ``--variants`` replaces the spin counts by sets of
environment variables (``NAME=VALUE`` separated by spaces), e.g. OpenBLAS's spin timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, statistics
import fp8emu
import numpy as np, numba
from numba import njit, prange
train = sys.argv[1] == "1"
med = statistics.median

@njit(parallel=True)
def touch(out):
    for i in prange(out.shape[0]):
        out[i] += 1.0

buf = np.zeros(64); touch(buf)
res = {"threads": numba.get_num_threads(), "wake": {}}
for gap in (0, 50, 200, 400, 1600):
    ts = []
    for _ in range(15):
        touch(buf)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < gap * 1e-6:
            pass
        t = time.perf_counter(); touch(buf); ts.append(time.perf_counter() - t)
    res["wake"][gap] = med(ts) * 1e6
# OpenBLAS's side: a small threaded product right after another and after a pause
sa = np.ones((384, 384), np.float32); so = np.empty_like(sa); np.matmul(sa, sa, out=so)
res["blas"] = {}
for gap in (0, 400):
    ts = []
    for _ in range(15):
        np.matmul(sa, sa, out=so)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < gap * 1e-6:
            pass
        t = time.perf_counter(); np.matmul(sa, sa, out=so); ts.append(time.perf_counter() - t)
    res["blas"][gap] = med(ts) * 1e6
x = np.random.default_rng(0).standard_normal(1 << 19).astype(np.float32); o = np.empty_like(x)
fp8emu.quantize(x, "e5m2", out=o)
ts = []
for _ in range(9):
    t = time.perf_counter()
    for _ in range(20):
        fp8emu.quantize(x, "e5m2", out=o)
    ts.append((time.perf_counter() - t) / 20)
res["quantize_512k"] = med(ts) * 1e6
rng = np.random.default_rng(1)
a = rng.standard_normal((32768, 1152), dtype=np.float32); b = rng.standard_normal((1152, 128), dtype=np.float32)
out = np.empty((32768, 128), np.float32)
cases = {"np": lambda: np.matmul(a, b, out=out),
         "e5m2": lambda: fp8emu.matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", out=out)}
for f in cases.values(): f()
tt = {c: [] for c in cases}
for _ in range(7):
    for c, f in cases.items():
        t = time.perf_counter(); f(); tt[c].append(time.perf_counter() - t)
res["gemm_ratio"] = med(tt["np"]) / med(tt["e5m2"])
del a, b, out
if train:
    from fp8emu import nn
    from fp8emu.autograd import Tensor, ops
    from fp8emu.recipes import get_recipe
    xb = rng.standard_normal((128, 3, 32, 32)).astype(np.float32); yb = rng.integers(0, 10, 128)
    for recipe in ("fp32", "paper-e5m2"):
        nn.manual_seed(0)
        model = nn.resnet18(num_classes=10, width=8, cifar_stem=True)
        r = get_recipe(recipe); r.apply(model)
        opt = r.make_optimizer(model.parameters(), lr=0.05, momentum=0.9); scaler = r.make_scaler()
        def step():
            loss = ops.cross_entropy(model(Tensor(xb)), yb); scaler.scale(loss).backward(); scaler.step(opt); opt.zero_grad()
        for _ in range(2): step()
        st = []
        for _ in range(7):
            t = time.perf_counter(); step(); st.append(time.perf_counter() - t)
        res["step_" + recipe] = med(st) * 1e3
print(json.dumps(res))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spins", nargs="+", default=["0", "5000"])
    ap.add_argument("--variants", nargs="+", default=None,
                    help="environment settings to compare instead of --spins, e.g. 'OPENBLAS_THREAD_TIMEOUT=18'")
    ap.add_argument("--no-train", action="store_true")
    args = ap.parse_args()
    variants = args.variants or [f"GOMP_SPINCOUNT={s}" for s in args.spins]
    root = Path(__file__).resolve().parents[2]
    # the caller's environment before fp8emu (imported for the header) adds its defaults
    base = dict(os.environ)
    sys.path.insert(0, str(root))
    from benchmarks.timing import header
    print(header())
    for r in range(args.rounds):
        for variant in variants:
            env = dict(base, **dict(kv.split("=", 1) for kv in variant.split()))
            out = subprocess.run([sys.executable, "-c", CHILD, "0" if args.no_train else "1"], cwd=root, env=env,
                                 capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            wake = " ".join(f"{g}us:{v:.0f}" for g, v in res["wake"].items())
            steps = "".join(f", step {k[5:]} {v:.0f} ms" for k, v in res.items() if k.startswith("step_"))
            blas = " ".join(f"{g}us:{v:.0f}" for g, v in res["blas"].items())
            print(f"round {r} {variant:>28s}: tiny call after a gap of {wake} us; 384^3 sgemm after {blas} us; "
                  f"quantize 512K "
                  f"{res['quantize_512k']:.0f} us; matmul e5m2 / np.matmul {res['gemm_ratio']:.2f}{steps}")


if __name__ == "__main__":
    main()
