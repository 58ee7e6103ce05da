"""Training throughput and peak memory: fp8emu (fp32, paper-e5m2) vs PyTorch, same model and batch.

CIFAR-style ResNet-18 (3x3 stem, no max-pool, width 64), batch 128 of 3x32x32, SGD with
momentum; 3 warm-up steps, then the median of 5 timed steps.  Every configuration runs in
its own interpreter so that its peak resident memory (``ru_maxrss``) is its own; the line
also shows the peak minus the resident size after imports (the model's own share).

    python -m benchmarks.train_step                     # all configurations
    python -m benchmarks.train_step --batch 32 --width 16 --timed 3
    python -m benchmarks.train_step --configs fp8emu:paper-e5m2

Targets (issue 4): fp8emu fp32 >= 0.5x PyTorch fp32, paper-e5m2 >= 0.4x, peak memory <= 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.timing import header

CONFIGS = ("torch:fp32", "fp8emu:fp32", "fp8emu:paper-e5m2")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def torch_resnet18(num_classes: int = 10, width: int = 64, in_channels: int = 3, cifar_stem: bool = True):
    """A plain torch.nn ResNet-18 with torchvision's layer names (no torchvision needed)."""
    import torch.nn as tnn

    class Block(tnn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            if cifar_stem:
                self.conv1 = tnn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            else:
                self.conv1 = tnn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.Identity() if cifar_stem else tnn.MaxPool2d(3, 2, 1)
            cin = width
            for i in range(4):
                cout = width * 2 ** i
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(Block(cin, cout, stride), Block(cout, cout, 1)))
                cin = cout
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(width * 8, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return Net()


def _worker(config: str, batch: int, width: int, warm: int, timed: int) -> dict:
    import numpy as np

    lib, recipe = config.split(":")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    if lib == "torch":
        import torch
        base = _rss_mb()
        torch.manual_seed(0)
        model = torch_resnet18(10, width)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            loss.backward()
            opt.step()
            opt.zero_grad()
    else:
        from fp8emu import nn
        from fp8emu.autograd import Tensor, ops
        from fp8emu.recipes import get_recipe
        base = _rss_mb()
        nn.manual_seed(0)
        model = nn.resnet18(num_classes=10, width=width, cifar_stem=True)
        r = get_recipe(recipe)
        r.apply(model)
        opt = r.make_optimizer(model.parameters(), lr=0.05, momentum=0.9)
        scaler = r.make_scaler()

        def step() -> None:
            loss = ops.cross_entropy(model(Tensor(x)), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            opt.zero_grad()
    for _ in range(warm):
        step()
    times = []
    for _ in range(timed):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": config, "median_s": med, "img_s": batch / med, "peak_mb": peak, "model_mb": peak - base}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--timed", type=int, default=5)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.batch, args.width, args.warm, args.timed)))
        return
    print(header())
    print(f"ResNet-18 (CIFAR stem, width {args.width}), batch {args.batch} x 3x32x32, SGD momentum; "
          f"{args.warm} warm + median of {args.timed} steps; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    results = {}
    for config in args.configs:
        worker_args = ["--worker", config, "--batch", str(args.batch), "--width", str(args.width), "--warm",
                       str(args.warm), "--timed", str(args.timed)]
        if config.startswith("torch:"):
            # the peer in PyTorch's own thread settings: fp8emu's removed from its environment and
            # PyTorch loaded before the benchmarks package imports fp8emu (train_cli.PEER_PRELUDE)
            import fp8emu
            from .train_cli import PEER_PRELUDE
            env = {k: v for k, v in os.environ.items() if k not in fp8emu.THREAD_ENV_DEFAULTS}
            cmd = [sys.executable, "-c", PEER_PRELUDE + "import runpy; sys.argv[0] = 'train_step'; "
                   "runpy.run_module('benchmarks.train_step', run_name='__main__')", *worker_args]
        else:
            env, cmd = None, [sys.executable, "-m", "benchmarks.train_step", *worker_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{config:<20} failed: {tail}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[config] = res
        print(f"{config:<20} {res['img_s']:8.2f} img/s  (median step {res['median_s']:.3f} s)  "
              f"peak RSS {res['peak_mb']:7.0f} MB  (+{res['model_mb']:.0f} MB after imports)")
    ref = results.get("torch:fp32")
    if ref:
        for config, res in results.items():
            if config != "torch:fp32":
                print(f"{config:<20} speed ratio vs torch:fp32 {res['img_s'] / ref['img_s']:.2f}x   "
                      f"peak memory ratio {res['peak_mb'] / ref['peak_mb']:.2f}x "
                      f"(after-import share {res['model_mb'] / max(ref['model_mb'], 1e-9):.2f}x)")


if __name__ == "__main__":
    main()
