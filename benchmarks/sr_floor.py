"""How fast exact stochastic rounding can be with its documented random bits: the hash alone.

    python -m benchmarks.sr_floor [--n 4194304] [--repeat 15]
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+avx2 NUMBA_CACHE_DIR=/tmp/nb-avx2 python -m benchmarks.sr_floor

Every element of a stochastic rounding call needs the high half of the SplitMix64 word
``mix64(key0 + (i + 1) * GAMMA)`` (``fp8emu._random``).  This times, on 1 Numba thread
(``time.thread_time`` medians), a loop that computes only that word and stores it (no
rounding at all), next to ``fp8emu.quantize`` with RNE and with exact SR (into another array
and in place), and prints the vector loop's instructions per element (``inspect_asm``).  If the hash alone costs more than
``RNE / 0.8``, SR >= 0.8x RNE is out of reach without other random bits.  A second hash loop
carries the Weyl counter as a running sum (``z += GAMMA``, no ``(i + 1) * GAMMA`` multiply)
within chunks indexed by unsigned integers, as the float32 SR kernel does (signed indices made
LLVM fall back to 4-lane code).  A third line times ``_kernels._min_f32_mag``, the read pass
that exact SR made first when the output overlapped the input (``quantize`` in place reads each
chunk first instead since 2026-12-07; ``encode`` into 32-bit codes in place still makes it).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
from numba import njit, prange

import fp8emu
from fp8emu import _kernels
from fp8emu._random import GAMMA, mix64

from .kernel_asm import loops
from .timing import header, measure, numba_target

_CHUNK = 4096


# Not cached: Numba's inspect_asm shows nothing for a kernel loaded from its cache, and the
# assembly lines below are half of what this benchmark reports.
@njit(parallel=True)
def hash_only(out, key0):
    """``out[i]`` = the high half of element i's first random word (what SR draws)."""
    for i in prange(out.shape[0]):
        out[i] = np.uint32(mix64(key0 + np.uint64(i + 1) * np.uint64(GAMMA)) >> np.uint64(32))


@njit(parallel=True)
def hash_running(out, key0):
    """:func:`hash_only` with the counter carried as a running sum within chunks."""
    n = out.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.uint64(c * _CHUNK)
        z = key0 + lo * np.uint64(GAMMA)
        for i in range(lo, np.uint64(min(n, c * _CHUNK + _CHUNK))):
            z += np.uint64(GAMMA)
            out[i] = np.uint32(mix64(z) >> np.uint64(32))


def _per_element(fn) -> str:
    vec = [lp for lp in loops(next(iter(fn.inspect_asm().values())))
           if lp["width"] in ("ymm", "zmm") and lp["step"] in (4, 8, 16, 32, 64)]
    if not vec:
        return "no vector loop"
    lp = max(vec, key=lambda x: x["instructions"])
    ops = ", ".join(f"{k} {v}" for k, v in lp["ops"].items())
    return f"{lp['instructions']} instr per {lp['step']} el ({lp['instructions'] / lp['step']:.1f}/el; {ops})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--format", default="e5m2")
    args = ap.parse_args(argv)
    print(header())
    print(f"# numba target: {numba_target()}")
    numba.set_num_threads(1)
    n = args.n
    x = (np.random.default_rng(0).standard_normal(n) * 100).astype(np.float32)
    out = np.empty_like(x)
    y = x.copy()            # rounded again and again in place: same work each time (branch-free)
    words = np.empty(n, np.uint32)
    key0 = np.uint64(0x243F6A8885A308D3)
    ref = np.empty(n, np.uint32)
    hash_only(ref, key0)
    hash_running(words, key0)
    assert np.array_equal(ref, words), "running counter gives other words"

    def cpu(fn):
        return measure("", fn, 1, repeat=args.repeat, clock=time.thread_time).median_s

    t = {"np.copyto": cpu(lambda: np.copyto(out, x)),
         "quantize RNE": cpu(lambda: fp8emu.quantize(x, args.format, out=out)),
         "quantize exact SR": cpu(lambda: fp8emu.quantize(x, args.format, rounding="stochastic", seed=1, out=out)),
         "quantize exact SR, in place": cpu(lambda: fp8emu.quantize(y, args.format, rounding="stochastic", seed=1,
                                                                    out=y)),
         "hash only, (i+1)*GAMMA": cpu(lambda: hash_only(words, key0)),
         "hash only, running counter": cpu(lambda: hash_running(words, key0)),
         "min read pass (in place)": cpu(lambda: _kernels._min_f32_mag(x.view(np.uint32)))}
    rne = t["quantize RNE"]
    print(f"n = {n}, {args.format}, 1 thread, thread_time medians of {args.repeat}")
    for k, v in t.items():
        print(f"{k:28s} {v * 1e3:7.3f} ms  {n / v / 1e9:6.3f} G el/s  RNE / this {rne / v:5.2f}")
    print(f"SR >= 0.8x RNE needs SR <= {rne / 0.8 * 1e3:.3f} ms; the hash alone takes "
          f"{min(t['hash only, (i+1)*GAMMA'], t['hash only, running counter']) * 1e3:.3f} ms")
    print(f"hash_only vector loop:    {_per_element(hash_only)}")
    print(f"hash_running vector loop: {_per_element(hash_running)}")


if __name__ == "__main__":
    main()
