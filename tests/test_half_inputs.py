"""float16 and bfloat16 inputs through the float32 kernels, converted in their loops.

Every 16-bit value is a float32 value, so rounding ``x`` must give the bits of rounding
``x.astype(float32)`` (and, for ``quantize``, those bits converted back), and the bits of the
per-element kernels that 16-bit inputs took before (``_F32_SOURCES`` cut down to float32, no
table).  Checked on every pattern, twice over in two orders (the random words depend on the
index), for deterministic and stochastic modes, out of place and in place.  Also: the two
float16 <-> float32 conversions (F16C and integer) on every pattern, the integer one compiled
for a CPU without F16C, and the smallest-magnitude pass of 16-bit arrays.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numba
import numpy as np
import pytest
from numba import njit

import fp8emu
from fp8emu import _half, _kernels

Q = importlib.import_module("fp8emu.quantize")
ROOT = Path(__file__).resolve().parents[1]
PATTERNS = np.arange(1 << 16, dtype=np.uint16)
#: every pattern twice, in two orders, then a tail: more than one SR chunk per thread and an index
#: range that is not a multiple of the chunk
X16 = np.concatenate([PATTERNS, PATTERNS[::-1], PATTERNS[:12345]])
DTYPES = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
ROUNDINGS = [("nearest_even", None), ("toward_zero", None), ("up", None), ("down", None),
             ("nearest_away", None), ("stochastic", None), ("stochastic", 8), ("stochastic", 1),
             ("stochastic", 32)]


def _previous_path(monkeypatch):
    """Route 16-bit inputs as before the conversion: the per-element kernels, no table."""
    monkeypatch.setattr(Q, "_F32_SOURCES", {(32, 23): _kernels.SRC_F32})
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 62)


def _check_every_pattern(monkeypatch, dtype_name, fmt, rounding, sr_bits, saturate):
    dtype = DTYPES[dtype_name]
    x = X16.view(dtype)
    kw = dict(rounding=rounding, sr_bits=sr_bits, saturate=saturate, seed=11, stream=3)
    codes = fp8emu.encode(x, fmt, **kw)
    np.testing.assert_array_equal(codes, fp8emu.encode(x.astype(np.float32), fmt, **kw))
    try:
        values = fp8emu.quantize(x, fmt, **kw).view(np.uint16)
    except ValueError:                                  # fmt has values dtype cannot hold
        values = None
    if values is not None:
        via32 = fp8emu.quantize(x.astype(np.float32), fmt, **kw).astype(dtype).view(np.uint16)
        np.testing.assert_array_equal(values, via32)
        inplace = x.copy()
        assert fp8emu.quantize(inplace, fmt, out=inplace, **kw) is inplace
        np.testing.assert_array_equal(inplace.view(np.uint16), values)
    with monkeypatch.context() as m:
        _previous_path(m)
        np.testing.assert_array_equal(codes, fp8emu.encode(x, fmt, **kw))
        if values is not None:
            np.testing.assert_array_equal(values, fp8emu.quantize(x, fmt, **kw).view(np.uint16))


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("fmt", ["e5m2", "e4m3fn"])
@pytest.mark.parametrize("rounding,sr_bits", [("nearest_even", None), ("toward_zero", None),
                                              ("stochastic", None), ("stochastic", 8)])
def test_every_pattern_as_float32_and_as_before(monkeypatch, dtype_name, fmt, rounding, sr_bits):
    _check_every_pattern(monkeypatch, dtype_name, fmt, rounding, sr_bits, False)


@pytest.mark.slow
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("fmt", ["e5m2", "e4m3fn", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz", "e4m3", "e3m4",
                                 "e3m2fn", "e2m1fn", "float16", "bfloat16", "tf32", "binary8p3ue",
                                 "binary8p1sf", "e6m9"])
@pytest.mark.parametrize("rounding,sr_bits", ROUNDINGS)
@pytest.mark.parametrize("saturate", [False, True])
def test_every_pattern_every_format(monkeypatch, dtype_name, fmt, rounding, sr_bits, saturate):
    _check_every_pattern(monkeypatch, dtype_name, fmt, rounding, sr_bits, saturate)


@pytest.mark.parametrize("dtype_name,values", [
    ("float16", [2.0**-18 * 1.5, 2.0**-19, 2.0**-23 * 3, 2.0**-24, -(2.0**-24), 2.0**-14 * 1023 / 1024]),
    ("bfloat16", [2.0**-18 * 1.5, 2.0**-40, 2.0**-80, -(2.0**-120), 2.0**-133])])
def test_deep_elements_many_times(dtype_name, values):
    """Elements that drop more than 32 (or 64) bits into e4m3fn, each 2^15 times: their rare
    round-ups (probability 2^-9 and less) show whether the kernels compared the whole random
    word (or went to the generic kernel) where the word's high half is not enough."""
    dtype = DTYPES[dtype_name]
    x = np.repeat(np.array(values, np.float32), 1 << 15).astype(dtype)
    x[::7] = 1.0 + 2.0**-3                            # ordinary elements in every chunk too
    x32 = x.astype(np.float32)
    for sr_bits in (None, 13):
        kw = dict(rounding="stochastic", sr_bits=sr_bits, seed=2, stream=1)
        want = fp8emu.quantize(x32, "e4m3fn", **kw)
        assert np.count_nonzero(want[x32 < 2.0**-17]) > 20          # round-ups do happen
        np.testing.assert_array_equal(fp8emu.quantize(x, "e4m3fn", **kw).astype(np.float32), want)
        y = x.copy()
        fp8emu.quantize(y, "e4m3fn", out=y, **kw)
        np.testing.assert_array_equal(y.astype(np.float32), want)
        np.testing.assert_array_equal(fp8emu.encode(x, "e4m3fn", **kw), fp8emu.encode(x32, "e4m3fn", **kw))


def _boom(*args, **kwargs):
    raise AssertionError("a per-element kernel ran")


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_the_float32_kernels_take_16_bit_inputs(monkeypatch, dtype_name):
    """No per-element kernel and no table for the formats and modes the float32 kernels have."""
    for name in ("_encode_fast", "_encode_fast_sr", "_encode_generic", "_quantize_fast", "_quantize_fast_sr",
                 "_quantize_generic"):
        monkeypatch.setattr(_kernels, name, _boom)
    Q._TABLE16.clear()
    x = (np.random.default_rng(0).standard_normal(1 << 17) * 8).astype(DTYPES[dtype_name])
    x[:100] = 0
    for fmt in ("e5m2", "e2m1fn"):           # e2m1fn: no 16-bit element drops more than 32 bits
        for rounding, sr_bits in ROUNDINGS:
            fp8emu.encode(x, fmt, rounding=rounding, sr_bits=sr_bits, seed=1)
            fp8emu.quantize(x, fmt, rounding=rounding, sr_bits=sr_bits, seed=1)
            y = x.copy()
            fp8emu.quantize(y, fmt, rounding=rounding, sr_bits=sr_bits, seed=1, out=y)
    assert not Q._TABLE16


def test_sr_of_16_bit_inputs_same_bits_on_one_and_two_threads():
    x = (np.random.default_rng(1).standard_normal(300_001) * 100).astype(np.float16)
    got = []
    prev = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            got.append((fp8emu.quantize(x, "e4m3fn", rounding="stochastic", seed=5).view(np.uint16),
                        fp8emu.encode(x, "e5m2", rounding="stochastic", seed=5, sr_bits=6)))
    finally:
        numba.set_num_threads(prev)
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])
    # and any chunking: a slice starting at 0 rounds like the head of the whole
    head = fp8emu.quantize(x[:70_001], "e4m3fn", rounding="stochastic", seed=5).view(np.uint16)
    np.testing.assert_array_equal(head, got[0][0][:70_001])


# ---- the conversions ---------------------------------------------------------------------------

@njit
def _widen(bits, out):
    for i in range(bits.shape[0]):
        out[i] = _half.f32_bits_of_f16(bits[i])


@njit
def _narrow(bits, out):
    for i in range(bits.shape[0]):
        out[i] = _half.f16_bits_of_f32(bits[i])


def test_float16_to_float32_every_pattern():
    want = PATTERNS.view(np.float16).astype(np.float32).view(np.uint32)
    integer = np.array([_half.f32_bits_of_f16_int_jit(h) for h in PATTERNS], np.uint32)
    np.testing.assert_array_equal(integer, want)              # NumPy keeps NaN payloads too
    fast = np.empty(1 << 16, np.uint32)
    _widen(PATTERNS, fast)
    nan = np.isnan(PATTERNS.view(np.float16))
    np.testing.assert_array_equal(fast[~nan], want[~nan])
    assert np.isnan(fast[nan].view(np.float32)).all()
    # F16C quiets signalling NaNs (fraction bit 22), the integer version does not
    np.testing.assert_array_equal(fast[nan] & ~np.uint32(1 << 22), want[nan] & ~np.uint32(1 << 22))


def test_float32_to_float16_of_every_float16_value():
    nan = np.isnan(PATTERNS.view(np.float16))
    wide = PATTERNS.view(np.float16).astype(np.float32).view(np.int32)
    fast = np.empty(1 << 16, np.uint16)
    _narrow(wide, fast)
    integer = np.array([_half.f16_bits_of_f32_int_jit(r) for r in wide], np.uint16)
    for got in (fast, integer):
        np.testing.assert_array_equal(got[~nan], PATTERNS[~nan])
        assert np.isnan(got[nan].view(np.float16)).all()
    canonical = np.array([0x7FC00000, 0xFFC00000], np.uint32).view(np.int32)
    np.testing.assert_array_equal(np.array([_half.f16_bits_of_f32_int_jit(r) for r in canonical]),
                                  [0x7E00, 0xFE00])


CHILD = r"""
import json, numpy as np
from numba import njit
from fp8emu import _half

@njit
def widen(bits, out):
    for i in range(bits.shape[0]):
        out[i] = _half.f32_bits_of_f16(bits[i])

@njit
def narrow(bits, out):
    for i in range(bits.shape[0]):
        out[i] = _half.f16_bits_of_f32(bits[i])

p = np.arange(1 << 16, dtype=np.uint16)
w = np.empty(1 << 16, np.uint32); widen(p, w)
n = np.empty(1 << 16, np.uint16); narrow(w.view(np.int32), n)
asm = "".join(next(iter(f.inspect_asm().values())) for f in (widen, narrow))
print(json.dumps({"widen_ok": bool(np.array_equal(w, p.view(np.float16).astype(np.float32).view(np.uint32))),
                  "narrow_ok": bool(np.array_equal(n[~np.isnan(p.view(np.float16))], p[~np.isnan(p.view(np.float16))])),
                  "f16c": "vcvtph2ps" in asm or "vcvtps2ph" in asm}))
"""


def test_integer_conversion_where_the_cpu_has_no_f16c(tmp_path):
    """Compiled and run for a baseline x86-64 CPU: LLVM's half conversions would need
    ``__extendhfsf2``, which Numba cannot link, so the intrinsics lower the integer version."""
    env = dict(os.environ, NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="+64bit,+sse,+sse2,+cx8,+cmov,+fxsr,+mmx",
               NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    got = res.stdout.strip().splitlines()[-1]
    assert got == '{"widen_ok": true, "narrow_ok": true, "f16c": false}', got


# ---- the smallest magnitude of 16-bit arrays ----------------------------------------------------

@pytest.mark.parametrize("dtype_name", DTYPES)
def test_smallest_magnitude_as_of_the_float32_array(dtype_name):
    dtype = DTYPES[dtype_name]
    rng = np.random.default_rng(3)
    src = Q._F32_SOURCES[(16, 10 if dtype_name == "float16" else 7)]
    cases = [np.zeros(0, np.uint16), np.zeros(7, np.uint16), np.array([0x8000, 0x0000, 0x8001], np.uint16),
             np.array([0x7FFF, 0xFFFF], np.uint16), PATTERNS,
             *(rng.integers(0, 1 << 16, size, dtype=np.uint16) for size in (1, 5, 1000, 200_000))]
    for bits in cases:
        wide = bits.view(dtype).astype(np.float32).view(np.uint32)
        assert Q._smallest_magnitude(bits, src) == int(_kernels._min_f32_mag(wide)), bits[:8]
