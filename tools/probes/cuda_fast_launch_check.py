"""On a GPU: the pointer launch of the PyTorch bridge gives the bits of Numba's launch and of the CPU.

For every preset x rounding mode x saturation x input dtype (float32, float16, bfloat16,
float64), ``quantize`` and ``encode`` of random inputs (half random bit patterns, half values
over the format's range, ties included) through ``fp8emu/torch/_cuda.py``:

* ``pointer``: the second call of the same arguments (the first binds the plan), checked to
  have taken the pointer launch; again with another ``(seed, stream)`` (new keys, same plan);
* ``inplace``: ``quantize_into(y, fmt, out=y)``;
* ``strided_out``: ``out=`` a strided view (the result arrives by a copy);
* ``strided_x``: a strided input (copied to contiguous first);
* ``numba``: the same call with fp8emu's launch off (``FP8EMU_CUDA_LAUNCH=numba``'s path);

each against ``fp8emu.quantize``/``fp8emu.encode`` on the host, byte for byte.  The input
dtypes run in ``--workers`` subprocesses (kernel compilation is per process and CPU-bound).
Exit status 1 on any difference, or if the pointer launch never ran.

    python tools/probes/cuda_fast_launch_check.py --out fast_launch_check.json
    python tools/probes/cuda_fast_launch_check.py --list          # the cases, without a GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)          # run as a script from anywhere: fp8emu and benchmarks from this checkout

DTYPES = ("float32", "float16", "bfloat16", "float64")


def _cases(formats, modes, dtypes):
    for dtype, fmt, mode, saturate, op in itertools.product(dtypes, formats, modes, (False, True),
                                                              ("quantize", "encode")):
        yield dtype, fmt, mode, saturate, op


def _inputs(n: int, fmt, dtype: str, rng):
    """Host inputs of ``dtype`` (NumPy; bfloat16 as ml_dtypes) for ``fmt``."""
    import numpy as np

    from benchmarks.cuda_check import _random_f32
    x = _random_f32(n, fmt, rng)
    if dtype == "bfloat16":
        import ml_dtypes
        return x.astype(ml_dtypes.bfloat16)
    if dtype == "float64":
        x = x.astype(np.float64)
        k = n // 4                     # values with bits beyond float32's
        x[:k] *= 1 + rng.uniform(-1, 1, k) * 2.0 ** -40
        return x
    return x.astype(dtype)


def _to_torch(a, torch):
    import numpy as np
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(a).view(np.uint16)).view(torch.bfloat16).cuda()
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def _bytes(t):
    import torch
    return t.contiguous().view(torch.uint8).cpu().numpy()


def run_worker(args) -> dict:
    import numpy as np
    import torch

    import fp8emu
    import fp8emu.cuda as fc
    import fp8emu.torch as ft
    from fp8emu import _cuda_launch
    from fp8emu.formats import get_format
    from fp8emu.torch._cuda import quantize_into

    if not torch.cuda.is_available() or fc.simulated():
        raise SystemExit("needs a CUDA GPU (and NUMBA_ENABLE_CUDASIM unset)")
    pointer_calls = [0]
    real_round_ptr = fc._round_ptr

    def counting_round_ptr(*a, **kw):
        ok = real_round_ptr(*a, **kw)
        pointer_calls[0] += bool(ok)
        return ok
    fc._round_ptr = counting_round_ptr

    rng = np.random.default_rng(args.seed)
    rows, failed, skipped = [], [], 0
    for k, (dtype, name, mode, saturate, op) in enumerate(_cases(args.formats, args.modes, args.dtypes)):
        fmt = get_format(name)
        stochastic = mode == "stochastic"
        n = args.n + k % 7                 # odd lengths: the kernels' tails
        x = _inputs(n, fmt, dtype, rng)
        keys = [(k + 3, 11 * k - 5), (2**40 + k, k)] if stochastic else [(None, 0)]
        host = fp8emu.quantize if op == "quantize" else fp8emu.encode
        try:
            want = [host(x, fmt, rounding=mode, saturate=saturate, seed=s, stream=st) for s, st in keys]
        except (ValueError, TypeError):
            skipped += 1                   # the dtype cannot hold the format's values, or no such mode
            continue
        want = [np.ascontiguousarray(w).view(np.uint8).reshape(-1) for w in want]
        xt = _to_torch(x, torch)
        got = {}

        def call(t, out=None, seed_stream=keys[0]):
            kw = dict(rounding=mode, saturate=saturate, seed=seed_stream[0], stream=seed_stream[1])
            if op == "quantize":
                return quantize_into(t, fmt, out, **kw)
            return ft.encode(t, fmt, **kw)

        call(xt)                                   # binds the plan (Numba views, cached launch)
        before = pointer_calls[0]
        got["pointer"] = _bytes(call(xt))
        took_pointer = pointer_calls[0] > before
        if stochastic:
            got["pointer_other_keys"] = _bytes(call(xt, seed_stream=keys[1]))
        if op == "quantize":
            y = xt.clone()
            got["inplace"] = _bytes(call(y, out=y))
            big = torch.empty(2 * n, dtype=xt.dtype, device="cuda")
            big.view(torch.uint8).fill_(0x5A)
            got["strided_out"] = _bytes(call(xt, out=big[::2]))
            gaps = big.view(torch.uint8).view(n, 2 * xt.element_size())[:, xt.element_size():]
            if not bool((gaps == 0x5A).all()):       # a write between the strides
                got["strided_out_gaps"] = np.zeros(1, np.uint8)
        xs = torch.empty(2 * n, dtype=xt.dtype, device="cuda")[::2]
        xs.copy_(xt)
        got["strided_x"] = _bytes(call(xs))
        _cuda_launch._enabled = False
        try:
            got["numba"] = _bytes(call(xt))
        finally:
            _cuda_launch._enabled = True
        case = f"{op} {name} {mode} sat={saturate} {dtype} n={n}"
        bad = {}
        for path, g in got.items():
            w = want[1] if path == "pointer_other_keys" else want[0]
            mism = int(np.count_nonzero(g != w)) if g.shape == w.shape else -1
            if mism:
                bad[path] = mism
        row = {"case": case, "pointer_launch": took_pointer, "mismatched_bytes": bad}
        rows.append(row)
        if bad or not took_pointer:
            failed.append(row)
            print(f"FAIL {row}", flush=True)
    return {"dtypes": args.dtypes, "cases": len(rows), "skipped": skipped, "failed": failed,
            "pointer_enabled_at_end": _cuda_launch.enabled(), "plans": len(fc._PLANS), "rows": rows}


def main(argv=None) -> int:
    from fp8emu import RoundMode
    from fp8emu.formats import ALL_FORMATS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=(1 << 16) + 1, help="elements per case (plus 0..6)")
    ap.add_argument("--formats", default=",".join(f.name for f in ALL_FORMATS), help="comma-separated presets")
    ap.add_argument("--modes", default=",".join(m.value for m in RoundMode), help="comma-separated rounding modes")
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated input dtypes")
    ap.add_argument("--workers", type=int, default=4, help="subprocesses (the dtypes are dealt among them); 0: "
                                                           "this process")
    ap.add_argument("--seed", type=int, default=0, help="seed of the inputs")
    ap.add_argument("--out", default="", help="JSON file for the results")
    ap.add_argument("--list", action="store_true", help="print the cases and exit (no GPU needed)")
    args = ap.parse_args(argv)
    from fp8emu.formats import get_format
    try:
        args.formats = [get_format(f).name for f in filter(None, args.formats.split(","))]
        args.modes = [RoundMode.parse(m).value for m in filter(None, args.modes.split(","))]
    except (ValueError, KeyError, TypeError) as exc:
        ap.error(str(exc))
    args.dtypes = [d for d in filter(None, args.dtypes.split(","))]
    if any(d not in DTYPES for d in args.dtypes) or not args.dtypes:
        ap.error(f"--dtypes: allowed {', '.join(DTYPES)}")
    if args.n < 1 or args.workers < 0:
        ap.error("--n must be positive and --workers non-negative")
    if args.list:
        cases = list(_cases(args.formats, args.modes, args.dtypes))
        for c in cases:
            print(*c)
        print(f"{len(cases)} cases (those the CPU refuses are skipped)")
        return 0
    t0 = time.perf_counter()
    if args.workers == 0 or len(args.dtypes) == 1:
        res = run_worker(args)
        parts = [res]
    else:
        groups = [args.dtypes[k::args.workers] for k in range(min(args.workers, len(args.dtypes)))]
        procs = []
        base = args.out or "fast_launch_check.json"
        for k, group in enumerate(groups):
            out = f"{base}.part{k}"
            cmd = [sys.executable, os.path.abspath(__file__), "--workers", "0", "--n", str(args.n), "--formats",
                   ",".join(args.formats), "--modes", ",".join(args.modes), "--dtypes", ",".join(group),
                   "--seed", str(args.seed + k), "--out", out]
            procs.append((subprocess.Popen(cmd, cwd=ROOT), out, group))
        parts = []
        for proc, out, group in procs:
            rc = proc.wait()
            try:
                with open(out) as f:
                    parts.append(json.load(f))
                os.remove(out)
            except (OSError, ValueError):
                parts.append({"dtypes": group, "cases": 0, "skipped": 0, "pointer_enabled_at_end": False,
                              "failed": [{"worker": group, "rc": rc}], "rows": []})
    failed = [r for p in parts for r in p["failed"]]
    cases = sum(p["cases"] for p in parts)
    ok_ptr = all(p.get("pointer_enabled_at_end") for p in parts)
    summary = {"cases": cases, "skipped": sum(p["skipped"] for p in parts), "failed": failed,
               "pointer_enabled_at_end": ok_ptr, "seconds": round(time.perf_counter() - t0, 1),
               "parts": [{k: v for k, v in p.items() if k != "rows"} for p in parts],
               "rows": [r for p in parts for r in p["rows"]]}
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, args.out)
    print(f"{cases} cases x paths (pointer, other keys, in place, strided out, strided x, numba) against the CPU; "
          f"{summary['skipped']} skipped (refused by the CPU too); {len(failed)} failed; pointer launch still on: "
          f"{ok_ptr}; {summary['seconds']} s", flush=True)
    return 1 if failed or not cases or not ok_ptr else 0


if __name__ == "__main__":
    sys.exit(main())
