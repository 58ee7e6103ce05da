"""Milliseconds per training step of the torch backend on a device, and the share of fp8emu's rounding.

For each (recipe, width): ResNet-18 (CIFAR stem, 1 x 28 x 28 inputs, 10 classes: Fashion-MNIST's
shapes) built as ``fp8emu train --backend torch`` builds it, trained on random batches with that
backend's step (``fp8emu.torch.train.train_step``: forward, loss scaling, backward, unscale,
optimizer and master write-back).  Two timed phases after ``--warmup`` steps:

1. ``--steps`` steps as a run makes them (one device sync at the end): **ms/step**;
2. the same number of steps with every fp8emu array operation of the quantized layers and the
   master write-back bracketed by device syncs: the time inside them per step (**rounding ms**)
   and its share of that phase's step time (the syncs slow phase 2 down a little; its own step
   time is printed too).  Host copies (MX/NVFP4 block scaling, observers) count as rounding.

Also the first step's time (Numba compiles or loads the kernels) and the peak device memory.

    python tools/gpu_probe.py --recipes fp32,paper-e5m2 --widths 8,64            # on a GPU
    python tools/gpu_probe.py --device cpu --widths 4 --batch-size 16 --steps 2   # the script's own check
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this checkout's fp8emu
import fp8emu  # noqa: E402,F401  (before torch: its thread-pool defaults)
import torch  # noqa: E402

from fp8emu.recipes import get_recipe  # noqa: E402
from fp8emu.torch import _arrays  # noqa: E402
from fp8emu.torch.train import BACKEND  # noqa: E402
from fp8emu.train import build  # noqa: E402

_TIMED_OPS = ("quantize", "amax", "scale_", "quantize_scaled", "to_host", "from_host")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Bracketed:
    """While active, every fp8emu array operation on tensors (the quantized layers' and the master
    write-back's roundings) runs between two device syncs; ``seconds`` sums the time inside them."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self.calls = device, 0.0, 0

    def _wrap(self, fn):
        def timed(*args, **kw):
            _sync(self.device)
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                _sync(self.device)
                self.seconds += time.perf_counter() - t
                self.calls += 1
        return timed

    def __enter__(self) -> "_Bracketed":
        ops = _arrays.TORCH_OPS
        for name in _TIMED_OPS:        # instance attributes shadow the class's methods
            setattr(ops, name, self._wrap(getattr(ops, name)))
        return self

    def __exit__(self, *exc) -> None:
        for name in _TIMED_OPS:
            vars(_arrays.TORCH_OPS).pop(name, None)


def probe(recipe: str, width: int, args: argparse.Namespace) -> dict:
    """One (recipe, width): the figures of the module docstring."""
    device = torch.device(args.device)
    ds = SimpleNamespace(image_shape=(1, 28, 28), num_classes=10)
    config = dict(model="resnet18", width=width, recipe=recipe, lr=0.05, momentum=0.9, weight_decay=5e-4, seed=0,
                  epochs=1, schedule="constant", warmup_epochs=0, backend="torch", device=args.device,
                  threads=args.threads)
    parts = build(config, ds, steps_per_epoch=args.warmup + 2 * args.steps + 1)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, 1, 28, 28)).astype(np.float32),
                rng.integers(0, 10, args.batch_size)) for _ in range(min(8, args.warmup + 2 * args.steps + 1))]
    k = 0

    def one():
        nonlocal k
        x, y = batches[k % len(batches)]
        k += 1
        BACKEND.train_step(parts, x, y)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t = time.perf_counter()
    one()
    _sync(device)
    first = time.perf_counter() - t
    for _ in range(args.warmup):
        one()
    _sync(device)
    prof = cProfile.Profile() if args.profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    for _ in range(args.steps):
        one()
    _sync(device)
    plain = (time.perf_counter() - t) / args.steps
    if prof:
        prof.disable()
        with open(args.profile, "a") as f:
            f.write(f"==== {recipe} width {width}: {args.steps} steps, {1e3 * plain:.1f} ms/step (profiled)\n")
            pstats.Stats(prof, stream=f).sort_stats("tottime").print_stats(35)
    with _Bracketed(device) as b:
        t = time.perf_counter()
        for _ in range(args.steps):
            one()
        _sync(device)
        bracketed = (time.perf_counter() - t) / args.steps
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return dict(recipe=recipe, width=width, batch_size=args.batch_size, device=str(device), steps=args.steps,
                ms_per_step=1e3 * plain, first_step_s=first, bracketed_ms_per_step=1e3 * bracketed,
                rounding_ms_per_step=1e3 * b.seconds / args.steps, rounding_calls_per_step=b.calls / args.steps,
                rounding_share=b.seconds / args.steps / bracketed, peak_mib=peak)


def _write_atomic(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".gpu_probe.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--recipes", default="paper-e5m2", help="comma-separated recipe names")
    p.add_argument("--widths", default="64", help="comma-separated ResNet-18 widths")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    p.add_argument("--steps", type=int, default=20, help="timed steps per phase")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's)")
    p.add_argument("--profile", default=None, help="append a cProfile of the plain phase (by own time) to this file")
    p.add_argument("--json", default=None, help="also write the results to this file (JSON list)")
    args = p.parse_args(argv)
    try:
        recipes = [get_recipe(r).name for r in args.recipes.split(",")]
        widths = [int(w) for w in args.widths.split(",")]
        device = torch.device(args.device)
    except (ValueError, RuntimeError) as exc:
        print(f"gpu_probe: {exc}", file=sys.stderr)
        return 2
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or min(widths) < 1:
        print("gpu_probe: --steps, --batch-size and the widths must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_probe: --device cuda but PyTorch sees no GPU (use --device cpu)", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"gpu_probe: torch {torch.__version__} on {name}; ResNet-18, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} + 1 warm-up", flush=True)
    results = []
    for r in recipes:
        for w in widths:
            res = probe(r, w, args)
            results.append(res)
            mem = f"  peak {res['peak_mib']:.0f} MiB" if res["peak_mib"] is not None else ""
            print(f"{r:<22} width {w:<3} {res['ms_per_step']:9.1f} ms/step  rounding "
                  f"{res['rounding_ms_per_step']:8.1f} ms/step = {100 * res['rounding_share']:5.1f}% "
                  f"({res['rounding_calls_per_step']:.0f} calls; {res['bracketed_ms_per_step']:.1f} ms/step "
                  f"with the syncs)  first step {res['first_step_s']:.1f} s{mem}", flush=True)
    if args.json:
        _write_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
