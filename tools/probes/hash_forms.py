"""The SplitMix64 hash of exact SR in other instruction forms, same bits (issue 19).

    python tools/probes/hash_forms.py

Times, on one Numba thread, the high half of ``mix64`` over 4 M counters carried as a running
sum (as the SR kernels do, results kept in an L1-sized scratch), written three ways: ``mix64``
itself (LLVM picks ``vpmullq`` on AVX-512), both multiplies as three 32 x 32-bit products, and
the second multiply's high half only.  Checks that all three give the same words, and prints the
``vpmullq``/``vpmuludq`` counts of each compiled kernel.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import time
import numpy as np
import numba
from numba import njit, prange
from fp8emu._random import GAMMA, mix64, _M1, _M2
numba.set_num_threads(1)
C=4096
M1L, M1H = np.uint64(_M1 & 0xFFFFFFFF), np.uint64(_M1 >> 32)
M2L, M2H = np.uint64(_M2 & 0xFFFFFFFF), np.uint64(_M2 >> 32)
@njit(inline="always")
def mul3(a, ml, mh):
    lo = a & np.uint64(0xFFFFFFFF)
    hi = a >> np.uint64(32)
    return lo * ml + ((hi * ml + lo * mh) << np.uint64(32))
@njit(inline="always")
def mix64_dec(z):
    z = mul3(z ^ (z >> np.uint64(30)), M1L, M1H)
    z = mul3(z ^ (z >> np.uint64(27)), M2L, M2H)
    return z ^ (z >> np.uint64(31))
@njit(inline="always")
def mix64_hi_dec(z):
    # full first multiply, only the high half of the second
    w = mul3(z ^ (z >> np.uint64(30)), M1L, M1H)
    y = w ^ (w >> np.uint64(27))
    lo = y & np.uint64(0xFFFFFFFF); hi = y >> np.uint64(32)
    t = lo * M2L
    h = ((t >> np.uint64(32)) + hi * M2L + lo * M2H) & np.uint64(0xFFFFFFFF)
    return np.uint32(h ^ (h >> np.uint64(31)))
def make(fn):
    @njit(parallel=True)
    def k(n, key0, scratch):
        for c in prange((n + C - 1)//C):
            lo = np.uint64(c*C)
            z = key0 + lo*np.uint64(GAMMA)
            for i in range(lo, np.uint64(min(n, c*C+C))):
                z += np.uint64(GAMMA)
                scratch[i - lo] = fn(z)
    return k
@njit(inline="always")
def ref(z): return np.uint32(mix64(z) >> np.uint64(32))
@njit(inline="always")
def dec(z): return np.uint32(mix64_dec(z) >> np.uint64(32))
ks = {"vpmullq (now)": make(ref), "3x32 both": make(dec), "3x32 + hi-only": make(mix64_hi_dec)}
n=1<<22
outs={}
for name,k in ks.items():
    s=np.empty(C,np.uint32); k(np.uint64(C*3), np.uint64(12345), s); outs[name]=s.copy()
for name in outs: assert np.array_equal(outs[name], outs["vpmullq (now)"]), name
for name,k in ks.items():
    s=np.empty(C,np.uint32)
    ts=[]
    for _ in range(15):
        t=time.thread_time(); k(np.uint64(n), np.uint64(5), s); ts.append(time.thread_time()-t)
    asm = next(iter(k.inspect_asm().values()))
    print(f"{name:18s} {np.median(ts)*1e3:.3f} ms per 4M  vpmullq {asm.count('vpmullq')} vpmuludq {asm.count('vpmuludq')} zmm {'zmm' in asm}")
