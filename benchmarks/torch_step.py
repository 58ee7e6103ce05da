"""Milliseconds per training step of the torch backend, with and without fp8emu's thread-env defaults.

Importing fp8emu sets ``OMP_WAIT_POLICY=PASSIVE``, ``GOMP_SPINCOUNT=5000`` and
``OPENBLAS_THREAD_TIMEOUT=4`` (see ``docs/design.md``).  PyTorch's intra-op pool is OpenMP too and reads ``OMP_WAIT_POLICY`` when
``import torch`` loads it, so with ``--backend torch`` both settings also govern PyTorch.  Each
configuration runs in its own process:

* ``defaults``: ``import fp8emu`` first (the settings apply to NumPy's OpenBLAS, Numba's and
  PyTorch's OpenMP pools);
* ``without``: ``OPENBLAS_THREAD_TIMEOUT=28`` (OpenBLAS's own default) in the environment, and
  ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` removed again right after ``import fp8emu``, before
  PyTorch and Numba's OpenMP load (their own default spin-then-sleep policy).

ResNet-18 (CIFAR stem, 1 input channel) on random 28x28 batches, the step of ``fp8emu train``
(``fp8emu.torch.train.train_step``); prints the median over the timed steps.

    python -m benchmarks.torch_step --width 8 --batch-size 128 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from benchmarks.timing import header

CHILD = r"""
import os, sys, time, json
import fp8emu
if {without}:
    os.environ.pop("OMP_WAIT_POLICY", None)
    os.environ.pop("GOMP_SPINCOUNT", None)
import numpy as np, torch
from types import SimpleNamespace
from fp8emu.train import build
from fp8emu.torch.train import BACKEND
cfg = json.loads(sys.argv[1])
ds = SimpleNamespace(image_shape=(1, 28, 28), num_classes=10)
config = dict(model="resnet18", width=cfg["width"], recipe=cfg["recipe"], lr=0.05, momentum=0.9, weight_decay=5e-4,
              seed=0, epochs=1, schedule="constant", warmup_epochs=0, backend="torch", device="cpu", threads=None)
parts = build(config, ds, steps_per_epoch=cfg["steps"] + 1)
rng = np.random.default_rng(0)
times = []
for i in range(cfg["steps"] + 1):
    x = rng.standard_normal((cfg["batch"], 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, cfg["batch"])
    t = time.perf_counter()
    BACKEND.train_step(parts, x, y)
    if i:
        times.append(time.perf_counter() - t)
print(json.dumps(dict(times=times, env={{k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}},
                      torch_threads=torch.get_num_threads())))
"""


def run(recipe: str, without: bool, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    if without:
        env["OPENBLAS_THREAD_TIMEOUT"] = "28"
    cfg = json.dumps({"recipe": recipe, "width": args.width, "batch": args.batch_size, "steps": args.steps})
    out = subprocess.run([sys.executable, "-c", CHILD.format(without=without), cfg], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--recipes", default="fp32,paper-e5m2")
    args = p.parse_args()
    print(header())
    print(f"torch backend, ResNet-18 width {args.width}, batch {args.batch_size}, {os.cpu_count()} CPUs; "
          f"median of {args.steps} steps after one warm-up")
    for recipe in args.recipes.split(","):
        for without in (False, True):
            r = run(recipe, without, args)
            label = "without fp8emu's defaults" if without else "with fp8emu's defaults"
            print(f"{recipe:<12} {label:<27} {1e3 * statistics.median(r['times']):8.1f} ms/step  "
                  f"(env {r['env']}, torch threads {r['torch_threads']})", flush=True)


if __name__ == "__main__":
    main()
