"""Why the SR and codes kernels prefetch (issue 19): a loop that does much arithmetic per
element runs slower on an array streamed from DRAM than on the same data in cache, although
it needs a small part of the memory bandwidth; prefetching each block's input ahead of use
brings it back.

    python tools/probes/prefetch.py [--threads 1 2] [--rounds 0 2 4 8] [--n 16777216]

A synthetic kernel: ``rounds`` multiply-xorshift steps per uint32 element (about 5 vector
instructions each), one uint32 or uint8 result per element, as a flat ``prange`` loop and as
the chunked loop of fp8emu's SR and codes kernels with ``_prefetched_block`` (blocks of
``_PREFETCH_BLOCK`` elements, the input ``_PREFETCH_AHEAD`` ahead).  Prints ns per element
(median of 9 calls) in cache (64 K elements, called back to back) and from DRAM (``--n``).
No fp8emu kernel is timed here: ``benchmarks/quantize_ab.py`` times those against another
checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from benchmarks.timing import header  # noqa: E402
from fp8emu._kernels import _PREFETCH_BLOCK, _SR_CHUNK, _prefetched_block  # noqa: E402
from fp8emu._vector_width import prefer_512_bit_vectors_converting  # noqa: E402


def kernels(rounds: int):
    @njit(parallel=True)
    def flat(x, o):
        for i in prange(x.shape[0]):
            prefer_512_bit_vectors_converting(x, o)
            v = x[i]
            for _ in range(rounds):
                v = (v ^ (v >> np.uint32(7))) * np.uint32(0x9E3779B9)
            o[i] = v

    @njit(parallel=True)
    def prefetched(x, o):
        n = x.shape[0]
        for t in prange((n + _SR_CHUNK - 1) // _SR_CHUNK):
            prefer_512_bit_vectors_converting(x, o)
            lo = t * _SR_CHUNK
            hi = min(n, lo + _SR_CHUNK)
            for b0 in range(lo, hi, _PREFETCH_BLOCK):
                for i in range(np.uint64(b0), _prefetched_block(x, b0, hi)):
                    v = x[i]
                    for _ in range(rounds):
                        v = (v ^ (v >> np.uint32(7))) * np.uint32(0x9E3779B9)
                    o[i] = v
    return flat, prefetched


def per_element(f, x, o) -> float:
    f(x, o)
    ts = []
    for _ in range(9):
        t0 = time.perf_counter()
        f(x, o)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) / x.size * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, nargs="+", default=[0, 2, 4, 8])
    ap.add_argument("--n", type=int, default=1 << 24)
    args = ap.parse_args()
    print(header())
    rng = np.random.default_rng(0)
    big = rng.integers(0, 2**32, args.n, dtype=np.uint32)
    small = big[:1 << 16].copy()
    print("ns per element, median of 9; in cache: 64 K elements, DRAM: %d" % args.n)
    print("threads rounds out    | cache flat  prefetched | DRAM flat  prefetched")
    for th in args.threads:
        numba.set_num_threads(th)
        for rounds in args.rounds:
            flat, prefetched = kernels(rounds)
            for dtype in (np.uint32, np.uint8):
                cells = [per_element(f, x, np.empty(x.size, dtype)) for x in (small, big) for f in (flat, prefetched)]
                print(f"{th:7d} {rounds:6d} {np.dtype(dtype).name:6s}| {cells[0]:10.3f} {cells[1]:11.3f} |"
                      f" {cells[2]:9.3f} {cells[3]:11.3f}")


if __name__ == "__main__":
    main()
