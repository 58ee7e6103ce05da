"""``encode`` of float32 inputs into formats whose codes are the top bits of float32 patterns
(bfloat16, tf32, e8m13: ``quantize._codes_are_f32_top_bits``): ``quantize``'s float32 value
kernel, then a shift.  Checked against the generic per-element kernel (the path switched off)
on every top-16 pattern with low halves that straddle each rounding step, in every mode and
both saturations; all 2^32 inputs in ``tests/test_sweep_2pow32.py`` (slow)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import fp8emu
from fp8emu import Format

Q = importlib.import_module("fp8emu.quantize")
MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "stochastic"]


def _inputs(seed: int = 0) -> np.ndarray:
    """Every top-16 float32 pattern with its low half 0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF
    and two random ones (bfloat16's steps and midpoints, and tf32's and e8m13's at random)."""
    rng = np.random.default_rng(seed)
    tops = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    lows = [np.full(1 << 16, v, np.uint32) for v in (0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF)]
    lows += [rng.integers(0, 1 << 16, 1 << 16).astype(np.uint32) for _ in range(2)]
    return np.concatenate([tops | low for low in lows]).view(np.float32)


@pytest.fixture
def value_routes(monkeypatch):
    """The value routes that calls asked for (``_f32_route`` with ``values=True``)."""
    seen = []
    route = Q._f32_route

    def spy(values, *args):
        got = route(values, *args)
        if values:
            seen.append(got is not None)
        return got
    monkeypatch.setattr(Q, "_f32_route", spy)
    monkeypatch.setattr(Q, "_PLANS", {})     # calls ask for routes when they plan: none kept
    return seen


def test_which_formats():
    assert [n for n in ("bfloat16", "tf32", "e8m13", "float32", "e5m2", "e8m0fnu")
            if Q._codes_are_f32_top_bits(fp8emu.get_format(n))] == ["bfloat16", "tf32", "e8m13"]
    assert Q._codes_are_f32_top_bits(Format(8, 18))
    assert not Q._codes_are_f32_top_bits(Format(8, 7, subnormals=False))
    assert not Q._codes_are_f32_top_bits(Format(8, 7, bias=128))


@pytest.mark.parametrize("name", ["bfloat16", "tf32", "e8m13"])
@pytest.mark.parametrize("rounding", MODES)
@pytest.mark.parametrize("saturate", [False, True])
def test_value_kernel_and_shift_give_the_generic_kernels_codes(monkeypatch, value_routes, name, rounding, saturate):
    x = _inputs()
    kw = dict(rounding=rounding, saturate=saturate, seed=7)
    got = fp8emu.encode(x, name, **kw)
    assert value_routes == [True]
    with monkeypatch.context() as patch:
        patch.setattr(Q, "_codes_are_f32_top_bits", lambda fmt: False)
        patch.setattr(Q, "_PLANS", {})        # the calls' plans hold the route: plan again
        want = fp8emu.encode(x, name, **kw)
    np.testing.assert_array_equal(got, want)
    if rounding == "stochastic":
        for sr_bits in (1, 9, 32):
            got = fp8emu.encode(x, name, sr_bits=sr_bits, **kw)
            with monkeypatch.context() as patch:
                patch.setattr(Q, "_codes_are_f32_top_bits", lambda fmt: False)
                patch.setattr(Q, "_PLANS", {})
                want = fp8emu.encode(x, name, sr_bits=sr_bits, **kw)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["bfloat16", "tf32"])
def test_out_and_small_calls(name):
    """``out=`` (32-bit codes: the kernel writes the values into it, then shifts in place; also
    over the input's own memory) and calls on one thread give the same codes."""
    x = _inputs(1)
    fmt = fp8emu.get_format(name)
    want = fp8emu.encode(x, fmt, rounding="stochastic", seed=3)
    out = np.empty(x.size, fmt.code_dtype)
    assert fp8emu.encode(x, fmt, rounding="stochastic", seed=3, out=out) is out
    np.testing.assert_array_equal(out, want)
    if fmt.code_dtype.itemsize == 4:
        y = x.copy()
        fp8emu.encode(y, fmt, rounding="stochastic", seed=3, out=y.view(fmt.code_dtype))
        np.testing.assert_array_equal(y.view(fmt.code_dtype), want)
    np.testing.assert_array_equal(fp8emu.encode(x[:1000], fmt, rounding="stochastic", seed=3), want[:1000])
