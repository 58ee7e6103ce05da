"""On a GPU: host time of one rounding call from PyTorch, per launch path (us per call).

The paths (``fp8emu/torch/_cuda.py`` -> ``fp8emu/cuda.py`` -> ``fp8emu/_cuda_launch.py``):

* ``numba``: Numba views of the tensors, Numba's kernel call (``FP8EMU_CUDA_LAUNCH=numba``);
* ``cached``: Numba views, fp8emu's cached launch of the compiled signature (the previous default);
* ``pointer``: the plan of the call, launched from the tensors' pointers (the default).

Each is timed as ``quantize_into`` (what the training step calls), 4096 float32 elements into
e5m2, nearest-even and stochastic, ``--calls`` back-to-back calls between two syncs; also
``fp8emu.torch.quantize`` (the operator) and the pieces of a call.  ``--profile`` adds
cProfile's top functions of the pointer path.

    python tools/probes/cuda_call_overhead.py --out overhead.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="elements per call")
    ap.add_argument("--calls", type=int, default=1000, help="calls per timing")
    ap.add_argument("--repeats", type=int, default=2, help="timings per row (the minimum is reported)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top 25 of the pointer path (SR)")
    ap.add_argument("--out", default="", help="JSON file for the results")
    args = ap.parse_args(argv)
    if args.n < 1 or args.calls < 1 or args.repeats < 1:
        ap.error("--n, --calls and --repeats must be positive")

    import torch
    from numba import cuda

    import fp8emu.cuda as fc
    import fp8emu.torch as ft
    from fp8emu import _cuda_launch
    from fp8emu.formats import e5m2
    from fp8emu.torch import _cuda
    from fp8emu.torch._cuda import quantize_into

    if not torch.cuda.is_available() or fc.simulated():
        print("needs a CUDA GPU (and NUMBA_ENABLE_CUDASIM unset)", file=sys.stderr)
        return 2
    x = torch.randn(args.n, device="cuda")
    out = torch.empty_like(x)
    rows: dict[str, float] = {}

    def t(label, fn):
        fn()
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.calls):
                fn()
            torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t0) / args.calls)
        rows[label] = round(best * 1e6, 2)
        print(f"{label:<58} {rows[label]:9.2f} us/call", flush=True)

    sr = dict(rounding="stochastic", seed=1, stream=5)
    t("torch x.clone() (a small kernel from PyTorch)", lambda: x.clone())
    t("torch.cuda.current_stream().cuda_stream", lambda: torch.cuda.current_stream(x.device).cuda_stream)
    t("torch.cuda.current_device()", torch.cuda.current_device)
    t("x.data_ptr()", x.data_ptr)
    t("cuda.as_cuda_array(x)", lambda: cuda.as_cuda_array(x))

    def push_pop():
        with cuda.gpus[torch.cuda.current_device()]:
            pass
    t("with cuda.gpus[i]: (Numba context push/pop)", push_pop)

    plans_enabled = fc._plans_enabled
    paths = {
        "numba": dict(plans=False, launch=False),
        "cached": dict(plans=False, launch=True),
        "pointer": dict(plans=True, launch=True),
    }
    for path, cfg in paths.items():
        fc._plans_enabled = plans_enabled if cfg["plans"] else (lambda: False)
        _cuda_launch._enabled = cfg["launch"]
        t(f"{path}: quantize_into RNE", lambda: quantize_into(x, e5m2, out))
        t(f"{path}: quantize_into SR", lambda: quantize_into(x, e5m2, out, **sr))
        t(f"{path}: quantize_into SR, new stream each call",
          lambda c=iter(range(10**9)): quantize_into(x, e5m2, out, rounding="stochastic", seed=1, stream=next(c)))
        t(f"{path}: fp8emu.torch.quantize op SR", lambda: ft.quantize(x, e5m2, **sr))
    fc._plans_enabled = plans_enabled
    _cuda_launch._enabled = True
    pointer_ok = _cuda_launch.enabled() and len(fc._PLANS) > 0
    print(f"pointer launch enabled: {pointer_ok}; plans bound: {len(fc._PLANS)}", flush=True)

    profile = ""
    if args.profile:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(300):
            quantize_into(x, e5m2, out, **sr)
        torch.cuda.synchronize()
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(25)
        profile = buf.getvalue()
        print(profile)
    speedup = {m: round(rows[f"cached: quantize_into {m}"] / rows[f"pointer: quantize_into {m}"], 2)
               for m in ("RNE", "SR")}
    print(f"cached / pointer host time per call: {speedup}", flush=True)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"n": args.n, "calls": args.calls, "us_per_call": rows, "cached_over_pointer": speedup,
                       "pointer_launch_ok": pointer_ok, "device": torch.cuda.get_device_name(),
                       "torch": torch.__version__, "profile": profile}, f, indent=1)
        os.replace(tmp, args.out)
    return 0 if pointer_ok else 1


if __name__ == "__main__":
    sys.exit(main())
