"""``check``: fp8emu's own outputs pass; deliberately wrong implementations are caught and classified."""

from __future__ import annotations

import numpy as np
import pytest

from fp8emu import decode, encode
from fp8emu.cli import main
from fp8emu.formats import e4m3fn, e5m2, e5m2fnuz
from fp8emu.verify.check import check, check_files, classify
from fp8emu.verify.flags import exception_flags
from fp8emu.verify.vectors import generate, write_results, write_vectors


def _run(vs, dut, flags=None):
    return check(vs, vs.inputs, dut(vs.values()), flags)


def _dominant(report):
    return max(report.by_class, key=report.by_class.get)


@pytest.mark.parametrize("fmt", [e4m3fn, e5m2, e5m2fnuz], ids=lambda f: f.name)
@pytest.mark.parametrize("source", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("mode, sat", [("nearest_even", False), ("nearest_even", True), ("toward_zero", False),
                                       ("up", True), ("nearest_away", False)])
def test_fp8emu_passes_its_own_vectors(fmt, source, mode, sat):
    vs = generate(fmt, source, rounding=mode, saturate=sat, level=2, count=2000, seed=3)
    x = vs.values()
    rep = check(vs, vs.inputs, encode(x, fmt, rounding=mode, saturate=sat), exception_flags(x, fmt, rounding=mode))
    assert rep.ok, rep.format()


def test_ties_away_is_caught_as_rounding():
    vs = generate(e4m3fn, "float32", level=1)
    rep = _run(vs, lambda x: encode(x, e4m3fn, rounding="nearest_away"))
    assert not rep.ok and _dominant(rep) == "rounding"
    assert rep.by_class["subnormal"] > 0  # ties in the subnormal range too
    f = next(f for f in rep.failures if f["class"] == "rounding")
    assert abs(f["got_value"]) > abs(f["expected_value"])  # away from zero


def test_double_rounding_through_float32_is_caught():
    vs = generate(e4m3fn, "float64", level=1)
    with np.errstate(over="ignore", invalid="ignore"):
        rep = _run(vs, lambda x: encode(x.astype(np.float32), e4m3fn))
    assert not rep.ok and _dominant(rep) == "rounding", rep.format()
    # just above the 1.0625 tie: 1.125 directly, 1.0 via float32 (which rounds it onto the tie)
    x = np.array([1.0625 + 2.0 ** -30])
    vs1 = generate(e4m3fn, "float64", inputs=x.view(np.uint64))
    assert not check(vs1, vs1.inputs, encode(x.astype(np.float32), e4m3fn)).ok


def test_double_rounding_through_float16_is_caught():
    # the authors' toolkit path for E5M2: float32 -> float16 (RNE) -> E5M2
    vs = generate(e5m2, "float32", level=1)
    with np.errstate(over="ignore"):
        rep = _run(vs, lambda x: encode(x.astype(np.float16), e5m2))
    assert not rep.ok and rep.by_class["rounding"] > 0, rep.format()


def test_flush_to_zero_is_caught_as_subnormal():
    def ftz(x):
        codes = encode(x, e4m3fn)
        sub = np.abs(decode(codes, e4m3fn)) < e4m3fn.min_normal
        return np.where(sub, codes & 0x80, codes).astype(np.uint8)
    rep = _run(generate(e4m3fn, "float32", level=1), ftz)
    assert not rep.ok and set(k for k, v in rep.by_class.items() if v) == {"subnormal"}, rep.format()


def test_saturation_nan_and_signed_zero_classes():
    vs = generate(e4m3fn, "float32", level=1)
    assert _dominant(_run(vs, lambda x: encode(x, e4m3fn, saturate=True))) == "overflow"

    def nan_to_max(x):
        return np.where(np.isnan(x), np.uint8(0x7E), encode(x, e4m3fn)).astype(np.uint8)
    rep = _run(vs, nan_to_max)
    assert set(k for k, v in rep.by_class.items() if v) == {"nan"}

    def lose_sign_of_zero(x):
        return np.where(x == 0, np.uint8(0), encode(x, e4m3fn)).astype(np.uint8)
    rep = _run(vs, lose_sign_of_zero)
    assert rep.by_class["signed_zero"] >= 1 and rep.mismatches == rep.by_class["signed_zero"]


def test_wrong_flags_are_a_mismatch():
    vs = generate(e5m2, "float32", level=1)
    x = vs.values()
    no_underflow = exception_flags(x, e5m2) & ~np.uint8(0x02)
    rep = check(vs, vs.inputs, encode(x, e5m2), no_underflow)
    assert not rep.ok and rep.mismatches == rep.by_class["flags"] > 0


def test_classify_order():
    vs = generate(e4m3fn, "float32", level=1)
    x = np.array([np.nan, 500.0, -0.0, 0.001, 3.0], np.float32)
    exp = np.array([0x7F, 0x7F, 0x80, 0x01, 0x44], np.uint8)
    got = np.array([0x7E, 0x7E, 0x00, 0x00, 0x45], np.uint8)
    assert classify(vs, x, exp, got, np.zeros(5, np.uint8)).tolist() == [
        "nan", "overflow", "signed_zero", "subnormal", "rounding"]


def _sr_draws(vs, fmt, draws, **kw):
    x = vs.values()
    codes = np.concatenate([encode(x, fmt, rounding="stochastic", seed=s, **kw) for s in range(draws)])
    return np.tile(vs.inputs, draws), codes


def test_stochastic_rounding_passes_membership_and_bias():
    vs = generate(e5m2, "float32", rounding="stochastic", level=2, count=3000)
    rep = check(vs, *_sr_draws(vs, e5m2, 20))
    assert rep.ok and rep.bias_z is not None and rep.dispersion_z is not None, rep.format()


def test_stochastic_with_too_few_random_bits_is_biased():
    vs = generate(e5m2, "float32", rounding="stochastic", level=2, count=3000)
    rep = check(vs, *_sr_draws(vs, e5m2, 20, sr_bits=2))
    assert rep.mismatches == 0 and rep.bias_failed and rep.bias_z < -5, rep.format()


def test_nearest_posing_as_stochastic_fails_dispersion():
    vs = generate(e5m2, "float32", rounding="stochastic", level=2, count=3000)
    x = vs.values()
    rep = check(vs, np.tile(vs.inputs, 20), np.tile(encode(x, e5m2), 20))
    assert rep.mismatches == 0 and rep.bias_failed and rep.dispersion_z > 5, rep.format()


def test_stochastic_outside_down_up_is_a_mismatch():  # (one draw: too few for the bias tests, see min_draws)
    vs = generate(e5m2, "float32", rounding="stochastic", level=1)
    x = vs.values()
    fin = np.isfinite(x) & (np.abs(x) > 1) & (np.abs(x) < 1000)
    codes = encode(x, e5m2, rounding="stochastic", seed=0)
    codes[fin] += 2  # two codes up: never a neighbour
    rep = check(vs, vs.inputs, codes)
    assert rep.mismatches == np.count_nonzero(fin) and rep.by_class["rounding"] == rep.mismatches


def test_files_and_cli_exit_status(tmp_path, capsys):
    vs = generate(e4m3fn, "float32", level=1)
    vpath = write_vectors(vs, tmp_path / "v.txt")
    bad = write_results(tmp_path / "dut.txt", vs.inputs, encode(vs.values(), e4m3fn, rounding="nearest_away"),
                        "float32", e4m3fn)
    assert not check_files(vpath, bad).ok
    assert main(["check", "--vectors", str(vpath), "--results", str(bad), "--max-failures", "3"]) == 1
    out = capsys.readouterr().err  # the report goes to stderr (stdout carries data)
    assert "FAIL" in out and "rounding" in out and "expected" in out and "more (--max-failures)" in out
    good = write_results(tmp_path / "ok.txt", vs.inputs[::-1], encode(vs.values(), e4m3fn)[::-1], "float32", e4m3fn)
    assert main(["check", "--vectors", str(vpath), "--results", str(good)]) == 0  # any order
    stranger = write_results(tmp_path / "s.txt", np.array([0x12345678]), np.array([0]), "float32", e4m3fn)
    rep = check_files(vpath, stranger)
    assert rep.unmatched == 1 and rep.covered == 0 and not rep.ok
    assert main(["check", "--vectors", str(tmp_path / "missing.txt"), "--results", str(good)]) == 2


def test_truncating_nan_payload_to_inf_is_caught_as_nan():
    # float16 -> e5m2 by keeping the top byte: a NaN whose payload sits only in the low 8 bits
    # becomes Inf (SPEC §6.4: the quiet bit must be forced)
    vs = generate(e5m2, "float16", level=1)
    rep = _run(vs, lambda x: (x.view(np.uint16) >> 8).astype(np.uint8))
    nan_rows = [f for f in check(vs, vs.inputs, (vs.values().view(np.uint16) >> 8).astype(np.uint8),
                                 max_failures=10_000).failures if f["class"] == "nan"]
    assert rep.by_class["nan"] >= 2 and any(f["got_value"] == float("inf") for f in nan_rows)
