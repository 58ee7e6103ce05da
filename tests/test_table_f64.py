"""float64 inputs by input class in the deterministic modes (``fp8emu.quantize._class_bits``
with width 64, ``_kernels._lookup_sticky`` on 64-bit patterns): the top ``k`` bits (sign,
11 exponent bits, ``1 + m`` fraction bits) and whether any lower bit is set decide every
rounding into a format of at most 16 bits whose steps are such patterns.  Checked against the
per-element kernels (the fast one where it takes the call, else the generic one) on every class
with several members, for every format the tables take and every deterministic mode."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8emu
from fp8emu import Format
from fp8emu.formats import PRESETS

Q = importlib.import_module("fp8emu.quantize")
DETERMINISTIC = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
NO_SUBNORMALS_E4M3 = Format(4, 3, subnormals=False)


def _members(k: int, seed: int = 0) -> np.ndarray:
    """Every class of ``k`` top bits of float64 patterns: its base, its base with the lowest
    bit set, the top of its range, one bit below the next base's half, and random members."""
    rng = np.random.default_rng(seed)
    tops = np.arange(1 << k, dtype=np.uint64) << np.uint64(64 - k)
    low = np.uint64((1 << (64 - k)) - 1)
    half = np.uint64(1 << (63 - k))
    rand = [rng.integers(0, 1 << 63, 1 << k, dtype=np.uint64) & low for _ in range(2)]
    return np.concatenate([tops, tops | np.uint64(1), tops | low, tops | (half - np.uint64(1)),
                           tops | half, *(tops | r for r in rand)]).view(np.float64)


def _both(monkeypatch, fn, x, *args, **kwargs):
    """``fn`` through the table, then on the per-element kernels."""
    Q._TABLE16.clear()
    via_table = fn(x, *args, **kwargs)
    tables = sum(1 for key in Q._TABLE16 if key[0] == "sticky" and key[-2] == 64)
    with monkeypatch.context() as patch:
        patch.setattr(Q, "_TABLE_F32_MIN", 1 << 62)
        direct = fn(x, *args, **kwargs)
    return via_table, direct, tables


#: every format whose float64 classes need at most 16 top bits, among the presets, and two others
FORMATS = [*(name for name, fmt in PRESETS.items() if Q._class_bits(fmt, 64) is not None), NO_SUBNORMALS_E4M3,
           Format(5, 2, subnormals=False)]


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("saturate", [False, True])
def test_classes_give_the_per_element_kernels_bits(monkeypatch, fmt, saturate):
    fmt = fp8emu.get_format(fmt) if isinstance(fmt, str) else fmt
    x = _members(Q._class_bits(fmt, 64))
    for rounding in DETERMINISTIC:
        codes, codes_ref, tables = _both(monkeypatch, fp8emu.encode, x, fmt, rounding=rounding, saturate=saturate)
        np.testing.assert_array_equal(codes, codes_ref, err_msg=rounding)
        assert tables == 1
        values, values_ref, tables = _both(monkeypatch, fp8emu.quantize, x, fmt, rounding=rounding,
                                           saturate=saturate)
        np.testing.assert_array_equal(values.view(np.uint64), values_ref.view(np.uint64), err_msg=rounding)
        assert tables == 1


def test_which_formats_take_the_float64_classes():
    """``13 + m`` bits: sign, exponent, the fraction and the midpoints' one more; up to m = 3."""
    bits = {name: Q._class_bits(PRESETS[name], 64) for name in
            ("binary8p1se", "e8m0fnu", "e2m1fn", "e5m2", "e4m3fn", "e4m3fnuz", "e3m4", "bfloat16", "float16")}
    assert bits == {"binary8p1se": 13, "e8m0fnu": 13, "e2m1fn": 14, "e5m2": 15, "e4m3fn": 16, "e4m3fnuz": 16,
                    "e3m4": None, "bfloat16": None, "float16": None}


@pytest.mark.parametrize("name,rounding", [("e8m0fnu", "nearest_even"), ("e5m2", "nearest_even"),
                                           ("e4m3fn", "nearest_away"), ("binary8p1uf", "nearest_even")], ids=str)
def test_one_class_bit_fewer_would_differ(monkeypatch, name, rounding):
    """With one top bit fewer the midpoints fall inside a class: the table gives other bits
    (so the width is needed, and the test above can fail)."""
    fmt = PRESETS[name]
    k = Q._class_bits(fmt, 64)
    x = _members(k, seed=1)
    class_bits = Q._class_bits
    monkeypatch.setattr(Q, "_class_bits", lambda f, w=32: k - 1 if w == 64 else class_bits(f, w))
    codes, codes_ref, tables = _both(monkeypatch, fp8emu.encode, x, fmt, rounding=rounding)
    assert tables == 1 and np.count_nonzero(codes != codes_ref) > 0


def test_edges_in_place_and_out():
    """Zeros, subnormals, the largest finite values, infinities and NaNs, through the table in
    place and into ``out=``, against the per-element kernels' results (the table off)."""
    edges = np.array([0.0, -0.0, 5e-324, -5e-324, 2.0**-1022, 1.7976931348623157e308, -1.7976931348623157e308,
                      np.inf, -np.inf, np.nan, -np.nan, 448.0, 464.0, 480.0, 2.0**-9, 2.0**-10, 1.5 * 2.0**-10])
    x = np.concatenate([edges, np.random.default_rng(3).standard_normal(1 << 17) * 100])
    for fmt in ("e4m3fn", "e8m0fnu", "binary8p1se"):
        Q._TABLE16.clear()
        inplace = x.copy()
        assert fp8emu.quantize(inplace, fmt, out=inplace) is inplace
        codes = np.empty(x.size, fp8emu.get_format(fmt).code_dtype)
        assert fp8emu.encode(x, fmt, out=codes) is codes
        assert sum(1 for key in Q._TABLE16 if key[0] == "sticky") == 2
        saved = Q._TABLE_F32_MIN
        Q._TABLE_F32_MIN = 1 << 62
        try:
            want_values, want_codes = fp8emu.quantize(x, fmt), fp8emu.encode(x, fmt)
        finally:
            Q._TABLE_F32_MIN = saved
        np.testing.assert_array_equal(inplace.view(np.uint64), want_values.view(np.uint64))
        np.testing.assert_array_equal(codes, want_codes)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(width=64, allow_nan=True, allow_infinity=True), min_size=1, max_size=64),
       st.sampled_from(["e8m0fnu", "e5m2", "e4m3fn", "binary8p1uf", "e2m1fn"]),
       st.sampled_from([*DETERMINISTIC, "stochastic"]), st.booleans(), st.integers(0, 2**32))
def test_kept_tables_serve_small_calls_with_the_kernels_bits(values, fmt, rounding, saturate, seed):
    """Calls of 1024 elements (any float64 values, tiled) after a large call kept the tables:
    the same bits as the per-element kernels.  Saturation and the seed drawn too."""
    x = np.resize(np.array(values, np.float64), 1024)
    kw = dict(rounding=rounding, saturate=saturate, seed=seed if rounding == "stochastic" else None)
    k = Q._class_bits(fp8emu.get_format(fmt), 64)
    fp8emu.encode(np.zeros(2 << k), fmt, **kw)                   # builds (or keeps) the table
    codes = fp8emu.encode(x, fmt, **kw)
    saved = Q._TABLE_F32_MIN
    Q._TABLE_F32_MIN = 1 << 62
    try:
        want = fp8emu.encode(x, fmt, **kw)
    finally:
        Q._TABLE_F32_MIN = saved
    np.testing.assert_array_equal(codes, want)
