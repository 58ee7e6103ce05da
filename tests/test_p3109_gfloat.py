"""fp8emu against gfloat (an independent implementation) on the IEEE P3109 formats: decode and
deterministic rounding (all 132 formats), and hardware-style SR against StochasticFastest."""

from __future__ import annotations

import numpy as np
import pytest

import fp8emu
from fp8emu import _random
from fp8emu.format import Format
from fp8emu.formats import e4m3fn, e5m2, p3109

gfloat = pytest.importorskip("gfloat")
import gfloat.formats  # noqa: E402

from p3109_gfloat import FORMATS, SOURCES, _same, compare_format  # noqa: E402

IDS = [f"binary{k}p{p}{'s' if s else 'u'}{'e' if e else 'f'}" for k, p, s, e in FORMATS]


def test_there_are_132_formats():
    assert len(FORMATS) == 132 and len({p3109(*f) for f in FORMATS}) == 132


@pytest.mark.parametrize("k, p, signed, extended", FORMATS, ids=IDS)
def test_decode_and_sampled_encode(k, p, signed, extended, monkeypatch):
    """Every code, and every 11th float16/bfloat16 input in every mode (the full sweep is slow)."""
    monkeypatch.setitem(SOURCES, "float16", SOURCES["float16"][::11])
    monkeypatch.setitem(SOURCES, "bfloat16", SOURCES["bfloat16"][5::11])
    row = compare_format(k, p, signed, extended)
    assert (row["decode_diff"], row["encode_diff"]) == (0, 0), row


@pytest.mark.slow
@pytest.mark.parametrize("k, p, signed, extended", FORMATS, ids=IDS)
def test_every_float16_bfloat16_input(k, p, signed, extended):
    row = compare_format(k, p, signed, extended)
    assert row["encoded"] >= 20 * (1 << 15) and (row["decode_diff"], row["encode_diff"]) == (0, 0), row


def _gfloat_info(fmt: Format):
    """A gfloat FormatInfo for an 8-bit OCP-style fp8emu format."""
    return {e4m3fn.name: gfloat.formats.format_info_ocp_e4m3, e5m2.name: gfloat.formats.format_info_ocp_e5m2}[fmt.name]


@pytest.mark.parametrize("fmt", [e4m3fn, e5m2, p3109(8, 3), p3109(8, 4, False, True), p3109(8, 1)], ids=str)
@pytest.mark.parametrize("r", [1, 3, 8, 13])
def test_sr_bits_equals_gfloat_stochastic_fastest(fmt, r):
    """``sr_bits=r``: away iff floor(f * 2^r) + (top r bits of the element's first random word)
    >= 2^r -- gfloat's StochasticFastest given those bits as ``srbits``."""
    fi = _gfloat_info(fmt) if fmt.name in (e4m3fn.name, e5m2.name) else gfloat.formats.format_info_p3109(
        8, fmt.precision, gfloat.Signedness.Signed if fmt.signed else gfloat.Signedness.Unsigned,
        gfloat.Domain.Extended if fmt.has_inf else gfloat.Domain.Finite)
    x = SOURCES["float16"]
    x = x[np.isfinite(x) & (np.abs(x) <= fmt.max)]
    if not fmt.signed:
        x = x[x >= 0]
    seed, stream = 1234, 7
    got = fp8emu.quantize(x, fmt, rounding="stochastic", sr_bits=r, seed=seed, stream=stream, saturate=True)
    srbits = (_random.words(seed, stream, np.arange(x.size)) >> np.uint64(64 - r)).astype(np.int64)
    want = gfloat.round_ndarray(fi, x, gfloat.RoundMode.StochasticFastest, True, srbits, r)
    bad = np.flatnonzero(~_same(got, want))
    assert bad.size == 0, f"x={x[bad[0]]!r}: fp8emu {got[bad[0]]!r}, gfloat {want[bad[0]]!r}"
