"""float32 inputs that the float32 kernels cannot take: the tables of at most 2^17 classes
(fp8emu.quantize._kept_table, deterministic modes, formats where ``_f32_sticky_ok``) and the copy
into formats that hold every float32 value (``_holds_float32``).  Both give the kernels' own
bits: checked here on every top-16-bit pattern with several low halves, against the per-element
kernels; all 2^32 inputs for some cases in tests/test_sweep_2pow32.py (slow)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import fp8emu
from fp8emu import Format
from fp8emu.formats import PRESETS

Q = importlib.import_module("fp8emu.quantize")
DETERMINISTIC = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")


def _classes(lows=(0, 1, 0x8000, 0xFFFF), seed=0) -> np.ndarray:
    """Every top 16 bits with each low half in ``lows`` and a random nonzero one."""
    tops = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    rand = np.random.default_rng(seed).integers(1, 1 << 16, 1 << 16).astype(np.uint32)
    return np.concatenate([tops | np.uint32(low) for low in lows] + [tops | rand]).view(np.float32)


def _both(monkeypatch, fn, x, *args, **kwargs):
    """``fn`` through the table, then straight through the per-element kernels."""
    monkeypatch.setattr(Q, "_TABLE_F32_MIN", 1 << 17)
    via_table = fn(x, *args, **kwargs)
    monkeypatch.setattr(Q, "_TABLE_F32_MIN", 1 << 62)
    direct = fn(x, *args, **kwargs)
    return via_table, direct


def _tables(width: int = 32) -> int:
    """How many class tables of ``width``-bit inputs are kept (their keys end in width, k)."""
    return sum(1 for key in Q._TABLE16 if key[0] == "sticky" and key[-2] == width)


# the formats and modes the float32 kernels leave to the per-element kernels, and ties to the
# even code (binary8p1se/sf), which the float32 kernels take now: set aside here, so that the
# table's classes (float64 inputs use them too) are held to those ties as well
TABLE_CASES = [*((f, r) for f in ("e8m0fnu", "binary8p1ue", "binary8p1uf") for r in DETERMINISTIC),
               ("binary8p1se", "nearest_even"), ("binary8p1sf", "nearest_even"),
               *((f, "odd") for f in ("e5m2", "e4m3fn", "e4m3fnuz", "e2m1fn", "e3m2fn", "binary8p4se"))]


def _without_f32_kernels(monkeypatch):
    monkeypatch.setattr(Q, "_f32_route", lambda *a: None)
    monkeypatch.setattr(Q, "_PLANS", {})


@pytest.mark.parametrize("fmt,rounding", TABLE_CASES, ids=str)
@pytest.mark.parametrize("saturate", [False, True])
def test_table_gives_the_kernels_bits_for_every_class(monkeypatch, fmt, rounding, saturate):
    x = _classes()
    _without_f32_kernels(monkeypatch)
    Q._TABLE16.clear()
    codes, codes_ref = _both(monkeypatch, fp8emu.encode, x, fmt, rounding=rounding, saturate=saturate)
    np.testing.assert_array_equal(codes, codes_ref)
    values, values_ref = _both(monkeypatch, fp8emu.quantize, x, fmt, rounding=rounding, saturate=saturate)
    np.testing.assert_array_equal(values.view(np.uint32), values_ref.view(np.uint32))
    assert _tables() == 2                            # the tables were used: encode's and quantize's


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, f in PRESETS.items() if f.bits <= 8], ids=str)
def test_table_for_every_8bit_preset_and_mode(monkeypatch, name):
    x = _classes(seed=1)
    fmt = PRESETS[name]
    assert Q._f32_sticky_ok(fmt) == (fmt.man_bits <= 6)
    if not Q._f32_sticky_ok(fmt):
        return
    _without_f32_kernels(monkeypatch)                        # the table for every mode
    for rounding in DETERMINISTIC:
        for saturate in (False, True):
            codes, codes_ref = _both(monkeypatch, fp8emu.encode, x, fmt, rounding=rounding, saturate=saturate)
            np.testing.assert_array_equal(codes, codes_ref)
    assert _tables() > 0


def test_which_formats_take_the_table():
    ok = {name for name, fmt in PRESETS.items() if Q._f32_sticky_ok(fmt)}
    assert {"e8m0fnu", "e5m2", "e4m3fn", "e2m1fn", "binary8p1se", "binary8p1uf", "binary8p7se"} <= ok
    # midpoints with 9 significant bits (or more) fall between bfloat16 values
    assert not ok & {"bfloat16", "float16", "tf32", "float32", "binary8p8se", "binary8p8uf"}
    # steps off the bfloat16 grid: a quantum below bfloat16's smallest subnormal 2^-133
    assert Q._f32_sticky_ok(Format(8, 6, bias=127)) and not Q._f32_sticky_ok(Format(8, 6, bias=130))
    assert not Q._f32_sticky_ok(Format(5, 7)) and not Q._f32_sticky_ok(Format(4, 7))


@pytest.mark.parametrize("fmt", [Format(5, 7), Format(8, 6, bias=130)], ids=str)
def test_formats_refused_would_differ(monkeypatch, fmt):
    """The condition is needed: forced through the table, formats it refuses give other bits
    (nearest_even; the float32 kernels set aside)."""
    monkeypatch.setattr(Q, "_class_bits", lambda f, width=32: 16)
    monkeypatch.setattr(Q, "_f32_route", lambda *a: None)
    monkeypatch.setattr(Q, "_PLANS", {})
    x = _classes(lows=(0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF))
    Q._TABLE16.clear()
    codes, codes_ref = _both(monkeypatch, fp8emu.encode, x, fmt)
    assert _tables() == 1 and np.count_nonzero(codes != codes_ref) > 0


def test_a_call_builds_the_table_from_as_many_elements_as_it_has_classes(monkeypatch):
    """e8m0fnu's table has 2^12 classes: a call on fewer elements does not build it, one on
    2^12 does; then calls on fewer use it, down to ``_TABLE_F32_MIN`` elements (1024)."""
    _without_f32_kernels(monkeypatch)        # they take e8m0fnu now (emin = -127 kernels)
    looked_up = []
    lookup = Q._kernels._lookup_sticky
    monkeypatch.setattr(Q._kernels, "_lookup_sticky", lambda bits, *a: (looked_up.append(bits.size),
                                                                         lookup(bits, *a)))
    Q._TABLE16.clear()
    x = _classes()
    assert Q._class_bits(fp8emu.get_format("e8m0fnu")) == 11 and Q._TABLE_F32_MIN == 1 << 10
    small = fp8emu.encode(x[: (1 << 12) - 1], "e8m0fnu")
    fp8emu.encode(x, "e8m0fnu", rounding="stochastic", seed=1)     # the classes of SR: other tables
    assert _tables() == 0 and looked_up == []
    fp8emu.encode(x[: 1 << 12], "e8m0fnu")
    assert _tables() == 1 and looked_up == [1 << 12]
    np.testing.assert_array_equal(fp8emu.encode(x[: (1 << 12) - 1], "e8m0fnu"), small)
    fp8emu.encode(x[:1024], "e8m0fnu")
    fp8emu.encode(x[:1023], "e8m0fnu")
    assert looked_up == [1 << 12, (1 << 12) - 1, 1024]


def test_out_and_in_place_through_the_table():
    x = (np.random.default_rng(2).standard_normal(1 << 18) * 50).astype(np.float32)
    expected = fp8emu.quantize(x.copy(), "binary8p1se")
    out = np.empty_like(x)
    assert fp8emu.quantize(x, "binary8p1se", out=out) is out
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
    fp8emu.quantize(x, "binary8p1se", out=x)
    np.testing.assert_array_equal(x.view(np.uint32), expected.view(np.uint32))
    codes = np.empty((1 << 17, 2), np.uint8)
    assert fp8emu.encode(x.reshape(-1, 2), "e8m0fnu", rounding="odd", out=codes) is codes


def _nan_and_edge_patterns() -> np.ndarray:
    rng = np.random.default_rng(3)
    edges = [0, 0x80000000, 1, 0x80000001, 0x7FFFFF, 0x800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
             0x7F800001, 0x7FBFFFFF, 0x7FC00000, 0x7FFFFFFF, 0xFF800001, 0xFFC00000, 0xFFFFFFFF]
    return np.concatenate([np.array(edges, np.uint32),
                           rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32)]).view(np.float32)


@pytest.mark.parametrize("rounding,sr_bits", [*((r, None) for r in DETERMINISTIC), ("stochastic", None),
                                               ("stochastic", 8)])
@pytest.mark.parametrize("saturate", [False, True])
def test_float32_format_is_a_copy_with_the_kernels_specials(monkeypatch, rounding, saturate, sr_bits):
    x = _nan_and_edge_patterns()
    kw = dict(rounding=rounding, saturate=saturate, sr_bits=sr_bits, seed=5 if rounding == "stochastic" else None)
    got = fp8emu.encode(x, "float32", **kw), fp8emu.quantize(x, "float32", **kw)
    monkeypatch.setattr(Q, "_holds_float32", lambda fmt: False)
    monkeypatch.setattr(Q, "_PLANS", {})    # the calls' plans hold the copy's table: plan again
    want = fp8emu.encode(x, "float32", **kw), fp8emu.quantize(x, "float32", **kw)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1].view(np.uint32), want[1].view(np.uint32))
    finite = np.isfinite(x)
    np.testing.assert_array_equal(got[1].view(np.uint32)[finite], x.view(np.uint32)[finite])


def test_which_formats_are_a_copy():
    assert Q._holds_float32(PRESETS["float32"])
    assert not any(Q._holds_float32(f) for name, f in PRESETS.items() if name != "float32")
    assert not Q._holds_float32(Format(8, 22)) and not Q._holds_float32(Format(8, 23, subnormals=False))


def test_class_bits_of_the_presets():
    """The fewest top bits that decide: sign, exponent and one more than the fraction bits
    (the midpoints), one more where a midpoint is a float32 subnormal (e8m0fnu's 1.5 * 2^-127)."""
    bits = {name: Q._f32_class_bits(PRESETS[name]) for name in
            ("binary8p1se", "e8m0fnu", "e2m1fn", "e5m2", "e4m3fn", "binary8p7se", "bfloat16")}
    assert bits == {"binary8p1se": 10, "e8m0fnu": 11, "e2m1fn": 11, "e5m2": 12, "e4m3fn": 13,
                    "binary8p7se": 16, "bfloat16": None}


@pytest.mark.parametrize("name,rounding,spare", [
    ("e8m0fnu", "nearest_even", 0), ("binary8p1se", "nearest_even", 0),
    ("binary8p1ue", "nearest_away", 0), ("binary8p1uf", "nearest_even", 0),
    # round-to-odd steps only at the even values (an x in (1.00, 1.10) of e5m2 goes to 1.01),
    # which have one significant bit fewer than the values, two fewer than the midpoints
    ("e5m2", "odd", 2), ("e2m1fn", "odd", 2)], ids=str)
def test_one_class_bit_fewer_would_differ(monkeypatch, name, rounding, spare):
    """The table with :func:`_f32_class_bits`' width gives the per-element kernels' bits, and so
    does each narrower width down to ``spare`` bits fewer; one more bit fewer does not (so for
    the nearest modes the width is the fewest, and the test can fail)."""
    fmt = PRESETS[name]
    k = Q._f32_class_bits(fmt)
    x = _classes(lows=(0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF))
    _without_f32_kernels(monkeypatch)
    for width, same in [*((k - d, True) for d in range(spare + 1)), (k - spare - 1, False)]:
        monkeypatch.setattr(Q, "_class_bits", lambda f, w=32, width=width: width)
        Q._TABLE16.clear()
        codes, codes_ref = _both(monkeypatch, fp8emu.encode, x, fmt, rounding=rounding)
        assert _tables() == 1
        assert np.array_equal(codes, codes_ref) == same, (width, same)
