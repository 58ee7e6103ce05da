"""The 2^16-pattern tables of 16-bit inputs (fp8emu.quantize._kept_table): the same bits as the
kernels, only for deterministic modes, large enough calls and the cases that the float32
kernels cannot take (no subnormals, float32's 23 fraction bits, encode below float32's normals,
odd rounding), and a bounded cache."""

from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest

import fp8emu

Q = importlib.import_module("fp8emu.quantize")
PATTERNS = np.arange(1 << 16, dtype=np.uint16)


def _both(monkeypatch, fn, x, *args, **kwargs):
    """``fn`` through the table, then straight through the kernels."""
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 16)
    via_table = fn(x, *args, **kwargs)
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 62)
    direct = fn(x, *args, **kwargs)
    return via_table, direct


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("fmt,rounding", [
    *((f, r) for f in ("e8m0fnu", "bfloat16", "float32")
      for r in ("nearest_even", "toward_zero", "up", "down", "nearest_away")),
    ("binary8p1se", "nearest_even"),                  # ties to the even exponent (float32 kernels set aside)
    *((f, "odd") for f in ("e5m2", "e4m3fn", "e4m3fnuz", "e2m1fn"))])
@pytest.mark.parametrize("saturate", [False, True])
def test_table_gives_the_kernels_bits_for_every_pattern(monkeypatch, dtype, fmt, rounding, saturate):
    x = np.concatenate([PATTERNS, PATTERNS[::-1]]).view(dtype)      # every pattern, twice, in two orders
    monkeypatch.setattr(Q, "_f32_route", lambda *a: None)           # the table, where the float32
    monkeypatch.setattr(Q, "_PLANS", {})                            # kernels would take the call too
    Q._TABLE16.clear()
    codes, codes_ref = _both(monkeypatch, fp8emu.encode, x, fmt, rounding=rounding, saturate=saturate)
    np.testing.assert_array_equal(codes, codes_ref)
    assert len(Q._TABLE16) == 1                      # the table was used (and built once)
    try:
        values, values_ref = _both(monkeypatch, fp8emu.quantize, x, fmt, rounding=rounding, saturate=saturate)
    except ValueError:                               # values the input dtype cannot hold
        return
    np.testing.assert_array_equal(values.view(np.uint16), values_ref.view(np.uint16))


def test_out_and_in_place_through_the_table(monkeypatch):
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 16)
    x = (np.random.default_rng(1).standard_normal(1 << 17) * 50).astype(np.float16)
    Q._TABLE16.clear()
    expected = fp8emu.quantize(x.copy(), "e4m3fn", saturate=True, rounding="odd")
    out = np.empty_like(x)
    assert fp8emu.quantize(x, "e4m3fn", saturate=True, rounding="odd", out=out) is out
    np.testing.assert_array_equal(out.view(np.uint16), expected.view(np.uint16))
    fp8emu.quantize(x, "e4m3fn", saturate=True, rounding="odd", out=x)
    np.testing.assert_array_equal(x.view(np.uint16), expected.view(np.uint16))
    codes = np.empty((1 << 16, 2), np.uint8)
    fp8emu.encode(x.reshape(-1, 2), "e4m3fn", rounding="odd", out=codes)
    np.testing.assert_array_equal(codes.ravel(), fp8emu.encode(x, "e4m3fn", rounding="odd"))
    assert len(Q._TABLE16) == 2


def test_table_only_for_deterministic_modes_and_large_calls(monkeypatch):
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 16)
    Q._TABLE16.clear()
    x = np.random.default_rng(2).standard_normal(1 << 16).astype(np.float16)
    fp8emu.quantize(x, "e5m2", rounding="stochastic", seed=3)
    fp8emu.encode(x, "e5m2", rounding="stochastic", seed=3, sr_bits=8)
    fp8emu.quantize(x[:-1], "e5m2", rounding="odd")  # one element short
    fp8emu.quantize(x.astype(np.float32), "e5m2", rounding="odd")    # 32-bit input: its classes' table
    fp8emu.quantize(x, "e5m2")                       # the float32 kernels take it, converted
    assert [key[0] for key in Q._TABLE16] == ["sticky"]
    fp8emu.quantize(x, "e5m2", rounding="odd")
    assert [key[0] for key in Q._TABLE16] == ["sticky", "quantize"]
    table = Q._TABLE16[next(key for key in Q._TABLE16 if key[0] == "quantize")]
    assert table.size == 1 << 16 and not table.flags.writeable


def test_tables_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 16)
    monkeypatch.setattr(Q, "_TABLE16_KEEP", 3)
    Q._TABLE16.clear()
    x = np.random.default_rng(4).standard_normal(1 << 16).astype(np.float16)
    for fmt in ("e5m2", "e4m3fn", "e3m2fn", "e2m3fn", "e2m1fn"):
        fp8emu.encode(x, fmt, rounding="odd")
        assert len(Q._TABLE16) <= 3
    assert {key[2].name for key in Q._TABLE16} == {"e3m2fn", "e2m3fn", "e2m1fn"}   # the newest stay


def test_tables_kept_are_bounded_in_bytes(monkeypatch):
    """float64 stochastic class tables of e4m3fn are 2.5 MiB: under a 6 MiB budget two stay,
    the newest, and results keep their bits."""
    monkeypatch.setattr(Q, "_TABLE_BYTES_KEEP", 6 << 20)
    Q._TABLE16.clear()
    x = np.random.default_rng(6).standard_normal(1 << 17)
    got = {}
    for seed, fmt in enumerate(("e4m3fn", "e4m3fnuz", "e4m3fn_sat", "e4m3fn")):
        name, saturate = fmt.removesuffix("_sat"), fmt.endswith("_sat")
        got[fmt] = fp8emu.quantize(x, name, rounding="stochastic", seed=1, saturate=saturate)
        assert sum(map(Q._table_bytes, Q._TABLE16.values())) <= 6 << 20
    assert len(Q._TABLE16) == 2
    # ("sr-classes", op, dtype, format, mode, saturate, ...): e4m3fn saturating, then e4m3fn
    assert [(key[3].name, key[5]) for key in Q._TABLE16] == [("e4m3fn", True), ("e4m3fn", False)]
    monkeypatch.setattr(Q, "_TABLE_F32_MIN", 1 << 62)
    np.testing.assert_array_equal(got["e4m3fn"].view(np.uint64),
                                  fp8emu.quantize(x, "e4m3fn", rounding="stochastic", seed=1).view(np.uint64))


def test_tables_built_from_several_threads(monkeypatch):
    """Threads building and evicting tables at once: no error, the bound holds, every result right."""
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 16)
    monkeypatch.setattr(Q, "_TABLE16_KEEP", 2)
    Q._TABLE16.clear()
    x = np.random.default_rng(5).standard_normal(1 << 16).astype(np.float16)
    jobs = [(fmt, "odd") for fmt in ("e5m2", "e4m3fn", "e3m2fn", "e2m3fn")] * 3 \
        + [("e8m0fnu", rounding) for rounding in ("nearest_even", "toward_zero", "up", "down")] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: fp8emu.encode(x, job[0], rounding=job[1]), jobs))
    assert len(Q._TABLE16) <= 2
    monkeypatch.setattr(Q, "_TABLE16_MIN", 1 << 62)
    for (fmt, rounding), codes in zip(jobs, results):
        np.testing.assert_array_equal(codes, fp8emu.encode(x, fmt, rounding=rounding))
