"""Benchmark: fp8emu quantize/encode vs np.copyto, ml_dtypes and PyTorch on 16M float32 elements.

Run: ``python -m benchmarks.quantize [--n 16777216] [--repeat 7] [--threads 1 2]``.
Prints medians and ratios from one run, for E5M2 and E4M3FN, at each thread count
(``numba.set_num_threads``; ``torch.set_num_threads``).  np.copyto and ml_dtypes are
single-threaded whatever the setting.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import fp8emu

from .timing import header, measure


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--formats", nargs="+", default=["e5m2", "e4m3fn"])
    ap.add_argument("--sweep", action="store_true", help="also time encode of all 2^32 float32 inputs (e4m3fn)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.n).astype(np.float32) * np.float32(100)
    out = np.empty_like(x)
    codes = np.empty(args.n, np.uint8)
    try:
        import ml_dtypes
    except ImportError:
        ml_dtypes = None
    try:
        import torch
    except ImportError:
        torch = None
    tx = torch.from_numpy(x) if torch is not None else None

    print(header())
    print(f"n = {args.n} float32 elements (standard normal * 100), repeat {args.repeat}, median times")
    for threads in args.threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(threads)
        print(f"\n=== {numba.get_num_threads()} thread(s) ===")
        copy = measure("np.copyto (float32 -> float32)", lambda: np.copyto(out, x), args.n, repeat=args.repeat)
        print(copy.line())
        for name in args.formats:
            rne = measure(f"{name} quantize RNE", lambda: fp8emu.quantize(x, name, out=out), args.n,
                          repeat=args.repeat)
            # the peers allocate their results: fp8emu with a fresh result too, for their ratios
            rne_fresh = measure(f"{name} quantize RNE, fresh result", lambda: fp8emu.quantize(x, name), args.n,
                                repeat=args.repeat)
            sr = measure(f"{name} quantize stochastic (exact)",
                         lambda: fp8emu.quantize(x, name, rounding="stochastic", seed=1, out=out), args.n,
                         repeat=args.repeat)
            sr8 = measure(f"{name} quantize stochastic sr_bits=8",
                          lambda: fp8emu.quantize(x, name, rounding="stochastic", seed=1, sr_bits=8, out=out),
                          args.n, repeat=args.repeat)
            enc = measure(f"{name} encode RNE -> uint8", lambda: fp8emu.encode(x, name, out=codes), args.n,
                          repeat=args.repeat)
            peers = []
            # ml_dtypes spells e3m2fn as float6_e3m2fn, e2m1fn as float4_e2m1fn; formats it lacks get no peer
            dt = next((getattr(ml_dtypes, f"float{w}_{name}") for w in (8, 6, 4)
                       if hasattr(ml_dtypes, f"float{w}_{name}")), None) if ml_dtypes is not None else None
            if dt is not None:
                peers.append(measure(f"{name} ml_dtypes astype round trip",
                                     lambda: x.astype(dt).astype(np.float32), args.n, repeat=args.repeat))
            tdt = getattr(torch, f"float8_{name}", None) if torch is not None else None
            if tdt is not None:
                peers.append(measure(f"{name} torch .to(fp8).to(float32)",
                                     lambda: tx.to(tdt).to(torch.float32), args.n, repeat=args.repeat))
            for t in (rne, rne_fresh, sr, sr8, enc):
                print(t.line(copy))
            for p in peers:
                print(p.line(copy))
                print(f"{'':<44s} fp8emu RNE quantize is {p.median_s / rne_fresh.median_s:.1f}x faster than this "
                      f"(both with a fresh result; {p.median_s / rne.median_s:.1f}x with out=)")
            print(f"{'':<44s} stochastic / RNE speed: exact {rne.median_s / sr.median_s:.2f}, "
                  f"sr_bits=8 {rne.median_s / sr8.median_s:.2f}")

    if args.sweep:
        sweep_all_float32("e4m3fn", threads=args.threads[-1])


def sweep_all_float32(name: str, threads: int = 2, chunk: int = 1 << 24) -> None:
    """Encode all 2^32 float32 bit patterns (chunked) and print the encode time alone."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    u = np.arange(chunk, dtype=np.uint32)
    codes = np.empty(chunk, np.uint8)
    fp8emu.encode(u[:16].view(np.float32), name)
    t_enc = 0.0
    t0 = time.perf_counter()
    for c in range((1 << 32) // chunk):
        if c:
            u += np.uint32(chunk)
        t1 = time.perf_counter()
        fp8emu.encode(u.view(np.float32), name, out=codes)
        t_enc += time.perf_counter() - t1
    print(f"\nall 2^32 float32 -> {name} encode, {numba.get_num_threads()} thread(s): {t_enc:.2f} s encoding "
          f"({time.perf_counter() - t0:.2f} s with generating the inputs)")


if __name__ == "__main__":
    main()
