"""Images/s of fp8emu's training loop on Fashion-MNIST (fp32 and paper-e5m2) next to PyTorch.

Runs the real pipeline (``fp8emu.data.BatchLoader`` -> ``fp8emu.train.train_step``) for a few
steps per recipe, then PyTorch 2.x CPU training of the same ResNet-18 (CIFAR stem, 1 input
channel, same width, same batches) when torch is installed.  Prints the median step time,
images/s, the ratio to PyTorch fp32 and the fraction of each step spent in data loading.

    python -m benchmarks.train_cli --width 16 --batch-size 128 --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.timing import header
from fp8emu.data import BatchLoader, load_dataset


def fp8emu_steps(recipe: str, ds, args) -> tuple[list[float], list[float]]:
    """(step seconds, data seconds) of ``args.steps`` timed steps after one warm-up step."""
    from fp8emu.train import build, train_step

    config = {"model": "resnet18", "width": args.width, "recipe": recipe, "lr": 0.05, "momentum": 0.9,
              "weight_decay": 5e-4, "seed": 0, "label_smoothing": 0.0, "epochs": 1, "schedule": "constant",
              "warmup_epochs": 0, "batch_size": args.batch_size}
    parts = build(config, ds, steps_per_epoch=args.steps + 1)
    loader = BatchLoader(ds.train_images, ds.train_labels, args.batch_size, mean=ds.mean, std=ds.std,
                         augment=True, pad=ds.pad, flip=ds.flip, drop_last=True, seed=0)
    steps, datas = [], []
    batches = loader.batches(0)
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        x, y = next(batches)
        t1 = time.perf_counter()
        train_step(parts, x, y, label_smoothing=0.0)
        t2 = time.perf_counter()
        if i:  # the first step compiles kernels
            steps.append(t2 - t0)
            datas.append(t1 - t0)
    return steps, datas


def torch_steps(ds, args) -> list[float] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.down(x))

    w = args.width
    layers = [nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
    cin = w
    for i in range(4):
        for s in ((1 if i == 0 else 2), 1):
            layers.append(Block(cin, w * 2 ** i, s))
            cin = w * 2 ** i
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = BatchLoader(ds.train_images, ds.train_labels, args.batch_size, mean=ds.mean, std=ds.std,
                         augment=True, pad=ds.pad, flip=ds.flip, drop_last=True, seed=0)
    times = []
    batches = loader.batches(0)
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        x, y = next(batches)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t0)
    return times


#: The peer's interpreter starts with this: it records the thread settings it was given, then
#: loads PyTorch (whose OpenMP reads them as it loads) before anything imports the benchmarks
#: package, which imports fp8emu, which sets fp8emu's own (``fp8emu.THREAD_ENV_DEFAULTS``).
PEER_PRELUDE = ("import os, sys; seen = {k: os.environ.get(k) for k in "
                "('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'OPENBLAS_THREAD_TIMEOUT', 'OMP_NUM_THREADS')}; "
                "import torch; ")


def torch_steps_subprocess(args) -> list[float] | None:
    """:func:`torch_steps` in a fresh interpreter with PyTorch's own default thread settings
    (without the ones fp8emu's import added), so the peer runs at its best."""
    import fp8emu
    env = {k: v for k, v in os.environ.items() if k not in fp8emu.THREAD_ENV_DEFAULTS}
    cmd = [sys.executable, "-c", PEER_PRELUDE + "from benchmarks.train_cli import _torch_worker; "
           "_torch_worker(sys.argv[1:], seen)", str(args.width), str(args.batch_size), str(args.steps), args.data or ""]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _torch_worker(argv: list[str], seen: dict | None = None) -> None:
    width, batch, steps, data = argv
    args = argparse.Namespace(width=int(width), batch_size=int(batch), steps=int(steps), data=data or None)
    times = torch_steps(load_dataset("fashion-mnist", args.data), args)
    threads = None
    if times is not None:
        import torch
        threads = torch.get_num_threads()
    print(json.dumps({"times": times, "threads": threads, "env": seen}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", default="8", help="ResNet width, or a comma-separated list of widths")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--recipes", default="fp32,paper-e5m2")
    p.add_argument("--data", default=None)
    args = p.parse_args()
    ds = load_dataset("fashion-mnist", args.data)
    widths = [int(w) for w in str(args.width).split(",")]
    print(header())
    print(f"# Fashion-MNIST, ResNet-18 (CIFAR stem, 1 input channel), batch {args.batch_size}, "
          f"{args.steps} timed steps after 1 warm-up")
    for width in widths:
        args.width = width
        print(f"## width {width}: one epoch = {len(ds.train_images) // args.batch_size} steps")
        peer = torch_steps_subprocess(args)
        ref = peer["times"]
        ref_ips = args.batch_size / statistics.median(ref) if ref else None
        if ref:
            import torch
            env = ", ".join(f"{k}={v}" for k, v in (peer.get("env") or {}).items() if v is not None) or "none set"
            print(f"pytorch {torch.__version__} fp32 ({peer['threads']} threads, own process, thread env as "
                  f"loaded: {env}): step {statistics.median(ref) * 1e3:8.1f} ms  {ref_ips:8.1f} images/s  1.00x")
        else:
            print("pytorch: not installed (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)")
        for recipe in args.recipes.split(","):
            steps, datas = fp8emu_steps(recipe, ds, args)
            med = statistics.median(steps)
            ratio = f"  {args.batch_size / med / ref_ips:.2f}x pytorch fp32" if ref_ips else ""
            epoch_min = len(ds.train_images) // args.batch_size * med / 60
            print(f"fp8emu {recipe:>12}: step {med * 1e3:8.1f} ms  {args.batch_size / med:8.1f} images/s{ratio}  "
                  f"data loading {100 * sum(datas) / sum(steps):.2f}% of a step  (epoch ~{epoch_min:.1f} min)",
                  flush=True)


if __name__ == "__main__":
    main()
