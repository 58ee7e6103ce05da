"""One ResNet-18 (width 8) training step of the torch backend on two devices (default: CUDA and
the CPU) from the same weights and batch: which quantized tensors differ, and by how much the
losses do; then every quantized layer fed the same inputs on both devices, and the master-weight
write-back of the same update.

Every quantization of both runs is recorded with fp8emu's observers.  The weights are the same
on both devices, so their quantized codes must be identical in every layer; the first quantized
layer is fed the same batch, so its quantized activations must be identical too.  Later
tensors may differ: the float32 GEMMs are cuBLAS/cuDNN on one device and the CPU's on the
other (same values, another summation order; TF32 is off on CUDA), and a product that lands
on the other side of a rounding boundary changes a code.

Then each quantized layer alone, on both devices, gets the same float32 input and the same
incoming gradient (those the second device's step recorded): its activation, weight and error
codes must be identical (one rounding each, on each device, of the same values, stochastic
rounding included); outputs and the two gradients are reported (they follow a GEMM).  Last, the
recipe's master weights (FP16, stochastic write-back) get the same parameters and gradients on
both devices: the written-back parameters must be identical.

Exit status 1 when any of these codes differ or the losses differ by more than ``--loss-rtol``.

    python tools/cuda_step_check.py --recipe paper-e5m2              # on a machine with a GPU
    python tools/cuda_step_check.py --devices cpu,cpu                 # the script's own check
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this checkout's fp8emu
from torch_crosscheck import recorded  # noqa: E402

import fp8emu.torch as ft  # noqa: E402
from fp8emu.autograd import TENSOR_CLASSES  # noqa: E402
from fp8emu.recipes import get_recipe  # noqa: E402
from fp8emu.torch import models  # noqa: E402
from fp8emu.torch.recipe import gemm_layers  # noqa: E402
from fp8emu.torch.train import cuda_numerics  # noqa: E402


def _model(state: dict):
    model = models.resnet18(num_classes=10, in_channels=1, width=8, cifar_stem=True)
    model.load_state_dict(state)
    return model


def step(device: str, recipe, state: dict, x: np.ndarray, y: np.ndarray, inputs: dict | None = None):
    """((logits, loss), {(layer, tensor class): quantized array}) of one forward/backward on ``device``
    (``inputs`` also gets each quantization's unrounded input)."""
    if device.startswith("cuda"):
        cuda_numerics()
    model = _model(state).to(device)
    ft.apply_recipe(model, recipe, sample=torch.from_numpy(x[:1]).to(device), seed=5)

    def run():
        logits = model(torch.from_numpy(x).to(device))
        loss = F.cross_entropy(logits, torch.from_numpy(y).to(device))
        loss.backward()
        return logits.detach().cpu().numpy(), float(loss.item())

    return recorded(run, inputs)


def layer_alone(device: str, recipe, state: dict, name: str, x: np.ndarray, gy: np.ndarray) -> dict:
    """{tensor class: quantized array} of layer ``name`` alone on ``device``, fed ``x`` and, backward, ``gy``."""
    model = _model(state)
    index = [n for n, _ in gemm_layers(model)].index(name)
    module = copy.deepcopy(dict(model.named_modules())[name]).to(device)
    rec = ft.apply_recipe(module, recipe, exempt=[], seed=5)
    lq = rec.layers[""]
    lq.name, lq.index = name, index       # the model's SR streams: same layer index, step 1

    def run():
        xt = torch.from_numpy(x).to(device).requires_grad_()
        module(xt).backward(torch.from_numpy(gy).to(device))

    _, seen = recorded(run)
    return {tclass: q for (_, tclass), q in seen.items()}


def master_write_back(device: str, recipe, state: dict) -> list[np.ndarray]:
    """The parameters after one SGD step (fixed pseudo-random gradients) and the recipe's master
    write-back on ``device``.  The learning rate is a power of two, so ``lr * g`` is exact and the
    float32 update is one rounding on both devices (a GPU may fuse it into an FMA, a CPU not):
    the write-back then rounds the same float32 values."""
    model = _model(state).to(device)
    rec = ft.apply_recipe(model, recipe, exempt=[], seed=5)
    opt = rec.make_optimizer(lr=0.125)
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.grad = torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)).to(device)
    opt.step()
    return [p.detach().cpu().numpy() for p in model.parameters()]


def _ndiff(a, b) -> int:
    """How many elements of two float arrays differ in their bits (all of them when the shapes differ)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return max(a.size, b.size)
    u = np.dtype(f"u{a.dtype.itemsize}")
    return int(np.sum(a.view(u) != b.view(u)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="paper-e5m2")
    p.add_argument("--devices", default="cuda,cpu", help="the two torch devices to compare")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--loss-rtol", type=float, default=1e-2)
    args = p.parse_args(argv)
    dev_a, dev_b = args.devices.split(",")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    torch.manual_seed(0)
    state = models.resnet18(num_classes=10, in_channels=1, width=8, cifar_stem=True).state_dict()
    recipe = get_recipe(args.recipe)
    (la, loss_a), seen_a = step(dev_a, recipe, state, x, y)
    inputs: dict = {}
    (lb, loss_b), seen_b = step(dev_b, recipe, state, x, y, inputs)
    rel = abs(loss_a - loss_b) / max(abs(loss_b), 1e-30)
    print(f"{args.recipe}: loss {dev_a} {loss_a!r} {dev_b} {loss_b!r} (relative difference {rel:.3g}); "
          f"max |logits diff| {np.max(np.abs(la - lb)):.3g}")
    ok = rel <= args.loss_rtol
    for tclass in TENSOR_CLASSES:
        keys = [k for k in seen_b if k[1] == tclass]
        if not keys:
            continue
        total = sum(seen_b[k].size for k in keys)
        diff = sum(int(np.sum(np.asarray(seen_a[k]).view(np.uint8) != np.asarray(seen_b[k]).view(np.uint8)))
                   for k in keys)
        print(f"  {tclass:<13} {diff} of {total} bytes differ ({len(keys)} layers)")
        if tclass == "weights" and diff:
            ok = False
    first = next(iter(seen_b))[0]
    for (layer, tclass), q in seen_b.items():
        if layer == first and tclass in ("activations", "weights"):
            n = _ndiff(seen_a[(layer, tclass)], q)
            print(f"  first quantized layer {layer} {tclass}: "
                  f"{'identical' if not n else f'DIFFERENT ({n} of {q.size} elements)'}")
            ok = ok and not n
    # every quantized layer alone, fed the same input and incoming gradient on both devices
    layers = [layer for (layer, tclass) in inputs if tclass == "activations"]
    print(f"  each of {len(layers)} quantized layers alone, same input and gradient on both devices:")
    diffs: dict[str, list[int]] = {}          # class -> [layers that differ, elements that differ, elements]
    for name in layers:
        if (name, "errors") not in inputs:
            continue
        xa, ga = inputs[(name, "activations")], inputs[(name, "errors")]
        qa = layer_alone(dev_a, recipe, state, name, xa, ga)
        qb = layer_alone(dev_b, recipe, state, name, xa, ga)
        for tclass in TENSOR_CLASSES:
            if tclass in qb:
                n = _ndiff(qa.get(tclass, np.zeros(0, np.float32)), qb[tclass])
                d = diffs.setdefault(tclass, [0, 0, 0])
                d[0], d[1], d[2] = d[0] + bool(n), d[1] + n, d[2] + qb[tclass].size
    for tclass, (n_layers, n, total) in diffs.items():
        must = tclass in ("activations", "weights", "errors")
        print(f"    {tclass:<13} {n_layers} layers differ ({n} of {total} elements)"
              f"{'' if must else ' (after a GEMM: reported only)'}")
        ok = ok and not (must and n_layers)
    pa, pb = master_write_back(dev_a, recipe, state), master_write_back(dev_b, recipe, state)
    n_master = sum(bool(_ndiff(a, b)) for a, b in zip(pa, pb))
    print(f"  master write-back of the same update: {n_master} of {len(pb)} parameters differ")
    ok = ok and n_master == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
