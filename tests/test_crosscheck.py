"""The cross-library report: each explanation is found where the peer is known to behave that way."""

from __future__ import annotations

import numpy as np
import pytest

from fp8emu.formats import e4m3fn, e8m0fnu
from fp8emu.verify.crosscheck import available_peers, compare_peer, crosscheck_report, peer_codes
from oracles import ml_dtypes_double_rounds_float64

pytest.importorskip("ml_dtypes")


def _bits(x, dt):
    return np.asarray(x, dtype=dt).view({4: np.uint32, 8: np.uint64}[np.dtype(dt).itemsize])


def test_ml_dtypes_double_rounds_float64():
    # ml_dtypes PR #401 (releases up to 0.6): float64 -> float32 -> e4m3fn; -431.99999999999994
    # is -416 exactly rounded.  ml_dtypes 0.7.0 rounds once: then it agrees with fp8emu.
    res = compare_peer("ml_dtypes", e4m3fn, "float64", _bits([-431.99999999999994, 1.0625 + 2.0 ** -30], np.float64))
    if ml_dtypes_double_rounds_float64():
        assert res["diff"] == 2 and len(res["reasons"]["double rounding via float32"]) == 2
    else:
        assert res["diff"] == 0, res


def test_ml_dtypes_agrees_on_float32_boundaries():
    res = compare_peer("ml_dtypes", e4m3fn, "float32", _bits([464.0, 1.0625, 2.0 ** -10, -0.0, 448.0], np.float32))
    assert res["diff"] == 0


def test_saturating_peer_is_explained():
    pytest.importorskip("torch")
    res = compare_peer("torch", e4m3fn, "float32", _bits([1e6, 500.0, 1.0], np.float32))
    assert res["diff"] == 2 and len(res["reasons"]["saturates"]) == 2


def test_unsigned_sign_dropped_and_zero_to_min():
    pytest.importorskip("torch")
    res = compare_peer("torch", e8m0fnu, "float32", _bits([-2.0, 0.0, 4.0], np.float32))
    assert set(res["reasons"]) == {"sign dropped", "zero to min"}


def test_peer_codes_shape_and_mask():
    codes = peer_codes("ml_dtypes", e4m3fn, np.array([1.0, -448.0], np.float32))
    assert codes.tolist() == [0x38, 0xFE]


def test_report_table():
    text = crosscheck_report(count=100, peers=["ml_dtypes"], formats=["e4m3fn"])
    assert text.startswith("# Cross-library report")
    rows = [r for r in text.splitlines() if r.startswith("| ml_dtypes")]
    assert len(rows) == 4  # float16, bfloat16, float32, float64
    f64 = next(r for r in rows if "| float64 |" in r)
    assert ("double rounding via float32" in f64) == ml_dtypes_double_rounds_float64(), f64
    assert "ml_dtypes" in available_peers()


def test_nan_disagreements_on_ordinary_inputs_stay_unexplained(monkeypatch):
    # A peer that turns 1.0 into NaN, or an overflow into 16.0, has a bug; only a NaN/Inf/out-of-range
    # input mapped to NaN, Inf, ±max, ±0 or the smallest magnitude is a "NaN handling" convention.
    import fp8emu.verify.crosscheck as cc
    real = cc.peer_codes

    def planted(peer, fmt, x):
        out = real("ml_dtypes", fmt, x)
        out[x == 1.0] = 0x7F        # 1.0 -> NaN
        out[x == 1000.0] = 0x50     # overflow -> 16.0
        out[np.isnan(x)] = 0x00     # NaN -> +0: a convention
        return out

    monkeypatch.setattr(cc, "peer_codes", planted)
    res = cc.compare_peer("ml_dtypes", e4m3fn, "float32", _bits([1.0, 1000.0, np.nan, 3.0], np.float32))
    assert {why: [r[0] for r in rows] for why, rows in res["reasons"].items()} == \
        {"unexplained": [1.0, 1000.0], "NaN handling": [pytest.approx(np.nan, nan_ok=True)]}
