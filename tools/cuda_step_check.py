"""One ResNet-18 (width 8) training step of the torch backend on two devices (default: CUDA and
the CPU) from the same weights and batch: which quantized tensors differ, and by how much the
losses do.

Every quantization of both runs is recorded with fp8emu's observers.  The weights are the same
on both devices, so their quantized codes must be identical in every layer; the first quantized
layer is fed the same batch, so its quantized activations must be identical too.  Later
tensors may differ: the float32 GEMMs are cuBLAS/cuDNN on one device and the CPU's on the
other (same values, another summation order; TF32 is off on CUDA), and a product that lands
on the other side of a rounding boundary changes a code.  Exit status 1 when the weights or
the first layer's activations differ or the losses differ by more than ``--loss-rtol``.

    python tools/cuda_step_check.py --recipe paper-e5m2              # on a machine with a GPU
    python tools/cuda_step_check.py --devices cpu,cpu                 # the script's own check
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_crosscheck import recorded  # noqa: E402

import fp8emu.torch as ft  # noqa: E402
from fp8emu.autograd import TENSOR_CLASSES  # noqa: E402
from fp8emu.recipes import get_recipe  # noqa: E402
from fp8emu.torch import models  # noqa: E402
from fp8emu.torch.train import cuda_numerics  # noqa: E402


def step(device: str, recipe, state: dict, x: np.ndarray, y: np.ndarray):
    """((logits, loss), {(layer, tensor class): quantized array}, first layer name) on ``device``."""
    if device.startswith("cuda"):
        cuda_numerics()
    model = models.resnet18(num_classes=10, in_channels=x.shape[1], width=8, cifar_stem=True)
    model.load_state_dict(state)
    model.to(device)
    ft.apply_recipe(model, recipe, sample=torch.from_numpy(x[:1]).to(device), seed=5)

    def run():
        logits = model(torch.from_numpy(x).to(device))
        loss = F.cross_entropy(logits, torch.from_numpy(y).to(device))
        loss.backward()
        return logits.detach().cpu().numpy(), float(loss.item())

    return recorded(run)


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
    (lb, loss_b), seen_b = step(dev_b, recipe, state, x, y)
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
            same = np.array_equal(np.asarray(seen_a[(layer, tclass)]).view(np.uint8), np.asarray(q).view(np.uint8))
            print(f"  first quantized layer {layer} {tclass}: {'identical' if same else 'DIFFERENT'}")
            ok = ok and same
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
