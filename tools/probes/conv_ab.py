"""Interleaved A/B of conv2d / conv2d_grad_input / conv2d_grad_weight: two versions of
fp8emu/conv.py in one process, same inputs, bits asserted equal, calls alternated so that a
noisy host slows both alike.

    python tools/probes/conv_ab.py --base <checkout of the old version> [--shapes 0 1 2 3]

The current tree's fp8emu is imported as usual; the base tree's conv.py is loaded as
``fp8emu.conv_base`` on top of the current package (so only conv.py differs).
"""
import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from fp8emu import conv as new  # noqa: E402

SHAPES = [((128, 64, 32, 32), (64, 64, 3, 3)), ((128, 128, 16, 16), (128, 128, 3, 3)),
          ((128, 256, 8, 8), (256, 256, 3, 3)), ((128, 512, 4, 4), (512, 512, 3, 3))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="root of the checkout holding the old fp8emu/conv.py")
    ap.add_argument("--shapes", type=int, nargs="*", default=[0, 1, 2, 3])
    ap.add_argument("--repeat", type=int, default=11)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("fp8emu.conv_base", pathlib.Path(args.base) / "fp8emu" / "conv.py")
    old = importlib.util.module_from_spec(spec)
    sys.modules["fp8emu.conv_base"] = old
    spec.loader.exec_module(old)
    rng = np.random.default_rng(0)
    print(f"# base {args.base}; medians of {args.repeat} interleaved calls, ms, after 3 warm-up calls each")
    for si in args.shapes:
        xs, ws = SHAPES[si]
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        gy = rng.standard_normal(xs[:1] + ws[:1] + xs[2:], dtype=np.float32)
        fns = {}
        for tag, m in [("base", old), ("new", new)]:
            fns[tag + " fwd"] = lambda m=m: m.conv2d(x, w, padding=1)
            fns[tag + " gi"] = lambda m=m: m.conv2d_grad_input(gy, w, xs, padding=1)
            fns[tag + " gw"] = lambda m=m: m.conv2d_grad_weight(x, gy, ws, padding=1)
        for op in ("fwd", "gi", "gw"):
            assert np.array_equal(fns["base " + op](), fns["new " + op]()), f"{op} bits differ at {xs}"
        times = {k: [] for k in fns}
        for f in fns.values():
            for _ in range(3):
                f()
        for _ in range(args.repeat):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
        print(xs, "  ".join(f"{k} {np.median(v) * 1e3:.1f}" for k, v in times.items()), flush=True)


if __name__ == "__main__":
    main()
