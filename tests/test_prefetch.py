"""The prefetch hint (``fp8emu._prefetch``): it compiles to a prefetch instruction, the kernels
that use it have one, and their results do not depend on where blocks and chunks end."""

import importlib
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

import fp8emu
from fp8emu import _kernels as K, _random
from fp8emu.format import RoundMode
from fp8emu._prefetch import prefetch, prefetch_lines

ROOT = pathlib.Path(__file__).resolve().parents[1]
Q = importlib.import_module("fp8emu.quantize")   # the module (fp8emu.quantize is the function)
X86 = platform.machine().lower() in ("x86_64", "amd64")


@njit
def _prefetch_then_read(a, i):
    prefetch(a, i)
    return a[0]


@njit
def _prefetch_range(a, lo, hi):
    prefetch_lines(a, lo, hi)
    return a[0]


def _asm(dispatcher) -> str:
    return "\n".join(dispatcher.inspect_asm().values())


@pytest.mark.skipif(not X86, reason="x86 instruction names")
def test_prefetch_compiles_to_a_prefetch_instruction():
    a = np.arange(64, dtype=np.float32)
    assert _prefetch_then_read(a, 16) == 0.0
    assert re.search(r"\bprefetcht0\b", _asm(_prefetch_then_read))


def test_prefetch_lines_clips_to_the_array():
    """A range past the end is clipped (never a pointer outside the array), for every element
    width; nothing is read or written."""
    for dtype in (np.uint8, np.uint16, np.float32, np.float64):
        a = np.ones(100, dtype)
        assert _prefetch_range(a, 90, 10**12) == 1
        assert _prefetch_range(a, 200, 300) == 1
        assert np.all(a == 1)


CHILD = r"""
import json, numba
from fp8emu import _kernels as K

def prefetches(dispatcher, sig):
    dispatcher.compile(sig)                     # a fresh cache: compiled here, so the asm exists
    return dispatcher.inspect_asm(dispatcher.signatures[-1]).count("prefetcht0")

u32, u8, u64 = numba.types.uint32[::1], numba.types.uint8[::1], numba.types.uint64[::1]
prm = numba.types.UniTuple(numba.types.int64, len(K.PARAMS))
p32 = numba.types.Array(numba.types.int32, 1, "C", readonly=True)      # K.p32_array
key, thr, in_place = numba.types.uint64, numba.types.uint32, numba.types.boolean
print(json.dumps({
    "encode": prefetches(K._F32_CODES[0, True, True, True, K.SRC_F32], (u32, u8, p32, key)),
    "encode_sr": prefetches(K._F32_CODES_SR["hi32", True, True, K.SRC_F32], (u32, u8, p32, key, thr, in_place)),
    "quantize_sr": prefetches(K._F32_VAL_SR["hi32", True, True, K.SRC_F32], (u32, u32, p32, key, thr, in_place)),
    "quantize_rne": prefetches(K._F32_VAL_FADD[True, True, K.SRC_F32], (u32, u32, p32, key)),
    "encode_f64": prefetches(K._encode_fast, (u64, u8, prm, key)),
    "quantize_f64_sr": prefetches(K._quantize_fast_sr, (u64, u64, u64, prm, key)),
}))
"""


@pytest.mark.skipif(not X86, reason="x86 instruction names")
def test_codes_and_stochastic_kernels_prefetch(tmp_path):
    """The codes kernels (``encode``, deterministic and stochastic), the stochastic value
    kernels and the float64 kernels carry the prefetch; the float32 deterministic value
    kernels do not (they stream as fast as a copy without it, and it slowed them:
    ``fp8emu/_kernels.py``).  Compiled in a child with a fresh cache (a cached kernel has no
    assembly to inspect)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(got[k] > 0 for k in ("encode", "encode_sr", "quantize_sr", "encode_f64", "quantize_f64_sr")), got
    assert got["quantize_rne"] == 0, got


def _generic_codes(x, fmt, rounding, sr_bits, seed, stream):
    """Codes of ``x`` by the generic kernel: a flat loop over elements, no chunks or blocks."""
    mode = RoundMode.parse(rounding)
    prm = Q._params(Q.INPUT_LAYOUTS[x.dtype.name], fmt, mode, False, sr_bits or 0)
    base, key0 = _random.call_keys(_random.key_base(seed, stream))
    codes = np.empty(x.shape, fmt.code_dtype)
    K._encode_generic(x.view(f"u{x.dtype.itemsize}"), codes, prm, np.uint64(base), np.uint64(key0))
    return codes


@pytest.mark.parametrize("rounding, sr_bits", [("nearest_even", None), ("toward_zero", None),
                                               ("stochastic", None), ("stochastic", 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_results_do_not_depend_on_block_or_chunk_ends(rounding, sr_bits, dtype):
    """Prefixes ending on both sides of every block (256) and chunk (4096) end give the generic
    kernel's codes (and their values) for the same elements: no element of a partial block is
    skipped or computed twice, and each keeps its own random word."""
    rng = np.random.default_rng(7)
    n = 2 * K._SR_CHUNK + 3 * K._PREFETCH_BLOCK + 17
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-14, 8, n))).astype(dtype)
    kw = dict(rounding=rounding, seed=11, stream=3, sr_bits=sr_bits)
    for name in ("e5m2", "e4m3fn"):
        fmt = fp8emu.get_format(name)
        want = _generic_codes(x, fmt, rounding, sr_bits, 11, 3)
        values = fmt.values()
        for m in (1, 255, 256, 257, 4095, 4096, 4097, 4096 + 256, n):
            assert np.array_equal(fp8emu.encode(x[:m], fmt, **kw), want[:m]), (name, m)
            got = fp8emu.quantize(x[:m], fmt, **kw).astype(np.float64)
            assert np.array_equal(got, values[want[:m]], equal_nan=True), (name, m)
