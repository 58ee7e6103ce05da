"""One ResNet-18 (width 8) training step under a recipe through both backends: how many codes differ.

Same weights (the NumPy engine's initialisation copied into ``fp8emu.torch.models``), same batch,
same recipe seed; every quantization of both backends is recorded with fp8emu's observers and the
rounded tensors of each (layer, tensor class) are compared element by element.  Prints the loss
of both, the largest logit difference and, per tensor class, the number of differing elements.

    python tools/torch_crosscheck.py --recipe paper-e5m2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import fp8emu.torch as ft
from fp8emu import nn
from fp8emu.autograd import Tensor, TENSOR_CLASSES, add_observer, ops, remove_observer
from fp8emu.recipes import get_recipe
from fp8emu.torch import models


def recorded(run, inputs=None):
    """``(run(), {(layer, tensor class): rounded array})``; ``inputs`` (a dict) also gets each unrounded input."""
    seen = {}

    def observer(layer, tclass, x, q, spec):
        seen[(layer.name, tclass)] = np.array(q, copy=True)
        if inputs is not None:
            inputs[(layer.name, tclass)] = np.array(x, copy=True)
    add_observer(observer)
    try:
        out = run()
    finally:
        remove_observer(observer)
    return out, seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="paper-e5m2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=16)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    recipe = get_recipe(args.recipe)
    nn.manual_seed(0)
    ours = nn.resnet18(num_classes=10, in_channels=1, width=8, cifar_stem=True)
    recipe.apply(ours, seed=5)
    theirs = models.resnet18(num_classes=10, in_channels=1, width=8, cifar_stem=True)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    ft.apply_recipe(theirs, recipe, sample=torch.from_numpy(x[:1]), seed=5)

    def step_numpy():
        logits = ours(Tensor(x))
        loss = ops.cross_entropy(logits, y)
        loss.backward()
        return logits.data, float(loss.item())

    def step_torch():
        logits = theirs(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
        loss.backward()
        return logits.detach().numpy(), float(loss.item())

    (ln, lossn), seen_n = recorded(step_numpy)
    (lt, losst), seen_t = recorded(step_torch)
    print(f"{args.recipe}: loss numpy {lossn!r} torch {losst!r}; max |logits diff| {np.max(np.abs(ln - lt)):.3g}")
    for tclass in TENSOR_CLASSES:
        keys = [k for k in seen_n if k[1] == tclass]
        if keys:
            total = sum(seen_n[k].size for k in keys)
            diff = sum(int(np.sum(seen_n[k].view(np.uint32) != seen_t[k].view(np.uint32))) for k in keys)
            print(f"  {tclass:<13} {diff} of {total} elements differ ({len(keys)} layers)")


if __name__ == "__main__":
    main()
