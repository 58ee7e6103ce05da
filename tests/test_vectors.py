"""Test vectors: levels, the line format, text/npz round trips, streaming, and SPEC §6.10 values."""

from __future__ import annotations

import numpy as np
import pytest

from fp8emu import encode
from fp8emu.cli import main
from fp8emu.formats import e2m1fn, e4m3fn, e4m3fnuz, e5m2, float16, get_format
from fp8emu.verify.flags import INEXACT, OVERFLOW, UNDERFLOW
from fp8emu.verify.vectors import (SOURCES, boundary_inputs, exhaustive_chunks, generate, read_vectors,
                                   rounding_boundaries, source_dtype, write_vectors)


def _lookup(vs, value):
    bits = np.array(value, dtype=vs.dtype).view(vs.inputs.dtype)
    i = np.flatnonzero(vs.inputs == bits)
    assert i.size, f"{value} not among the vectors"
    return int(vs.expected[i[0]]), int(vs.flags[i[0]])


# SPEC §6.10 (codes computed there with exact rationals), as float64 vectors
@pytest.mark.parametrize("fmt, sat, x, code", [
    (e4m3fn, False, 464.0, 0x7E), (e4m3fn, False, 465.0, 0x7F), (e4m3fn, True, 465.0, 0x7E),
    (e5m2, False, 61440.0, 0x7C), (e5m2, True, 61440.0, 0x7B), (e5m2, False, 2.0 ** -17, 0x00),
    (e4m3fnuz, False, 248.0, 0x80), (e4m3fn, False, 2.0 ** -10, 0x00), (e4m3fn, False, -0.0, 0x80),
    (e4m3fnuz, False, -0.0, 0x00), (e5m2, False, 1.125, 0x3C), (e4m3fn, False, 1.0625, 0x38),
])
def test_spec_vectors(fmt, sat, x, code):
    vs = generate(fmt, "float64", saturate=sat, inputs=np.array([x]).view(np.uint64))
    assert _lookup(vs, x)[0] == code
    if x not in (465.0, -0.0):  # the ties and the special points are level-1 cases themselves
        assert _lookup(generate(fmt, "float64", saturate=sat, level=1), x)[0] == code


def test_level1_has_ties_and_their_neighbours_in_the_source():
    vs = generate(e4m3fn, "float32", level=1)
    tie = int(np.float32(1.0625).view(np.uint32))
    for k, want in ((-1, 0x38), (0, 0x38), (1, 0x39)):
        assert _lookup(vs, np.uint32(tie + k).view(np.float32)) == (want, INEXACT)
    assert _lookup(vs, 464.0) == (0x7E, INEXACT)
    assert _lookup(vs, np.nextafter(np.float32(464), np.float32(500))) == (0x7F, INEXACT | OVERFLOW)
    assert _lookup(vs, 2.0 ** -10)[1] == INEXACT | UNDERFLOW
    x = vs.values()
    assert np.isinf(x).sum() == 2 and np.isnan(x).sum() >= 8  # +-Inf; quiet and signaling payloads
    assert (np.signbit(x) & (x == 0)).any()


def test_boundaries_are_sorted_positive_and_cover_every_value():
    for src in SOURCES:
        b = rounding_boundaries(e5m2, src).astype(np.float64)
        assert np.all(np.diff(b) > 0) and b[0] == 0
        assert set(e5m2.finite_values()[e5m2.finite_values() >= 0]) <= set(b)
        assert 61440.0 in b
    big = rounding_boundaries(float16, "float32")
    assert 500 > big.size > 100  # wide formats: binade ends only


def test_level2_is_seeded():
    a = generate(e5m2, "float32", level=2, seed=1, count=500)
    b = generate(e5m2, "float32", level=2, seed=1, count=500)
    c = generate(e5m2, "float32", level=2, seed=2, count=500)
    assert np.array_equal(a.inputs, b.inputs) and not np.array_equal(a.inputs, c.inputs)
    assert len(a) == len(generate(e5m2, "float32", level=1)) + 500


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("suffix", [".txt", ".npz"])
def test_files_round_trip(tmp_path, source, suffix):
    fmt = get_format("e4m3b11fnuz")
    vs = generate(fmt, source, level=2, count=300, rounding="up", saturate=True)
    back = read_vectors(write_vectors(vs, tmp_path / f"v{suffix}"))
    assert (back.source, back.fmt, back.rounding, back.saturate) == (vs.source, fmt, vs.rounding, True)
    for col in ("inputs", "expected", "flags"):
        assert np.array_equal(getattr(back, col), getattr(vs, col)), col


def test_line_format(tmp_path):
    vs = generate(e4m3fn, "float32", inputs=np.array([np.float32(465.0)]).view(np.uint32))
    text = write_vectors(vs, tmp_path / "v.txt").read_text().splitlines()
    assert text[0] == "// fp8emu test vectors v2"
    assert "format=e4m3fn exp_bits=4 man_bits=3 bias=7 subnormals=1 specials=fn" in text[1]
    assert text[-2:] == ["43E88000 7F 05", "// end: 1 cases"]  # 465.0 -> NaN code, inexact|overflow


def test_stochastic_vectors_hold_both_neighbours(tmp_path):
    vs = generate(e5m2, "float32", rounding="stochastic", level=2, count=500)
    with np.errstate(invalid="ignore"):
        x = vs.values().astype(np.float64)
    lo = np.abs(encode(x, e5m2, rounding="toward_zero").astype(np.int64))
    fin = np.isfinite(x) & (np.abs(x) < e5m2.max)
    assert np.array_equal(vs.expected[fin], lo[fin].astype(np.uint8))
    step = (vs.expected_up.astype(int) - vs.expected.astype(int))[fin]
    exact = encode(x[fin], e5m2, rounding="up") == encode(x[fin], e5m2, rounding="down")
    assert np.all(step[exact] == 0) and np.all(step[~exact] == 1)
    back = read_vectors(write_vectors(vs, tmp_path / "s.txt"))
    assert np.array_equal(back.expected_up, vs.expected_up)


def test_exhaustive_sources():
    vs = generate(e2m1fn, "bfloat16", level="exhaustive")
    assert len(np.unique(vs.inputs)) == 1 << 16
    with pytest.raises(ValueError, match="16-bit source"):
        generate(e2m1fn, "float32", level="exhaustive")
    with pytest.raises(ValueError, match="16- or 32-bit"):
        next(exhaustive_chunks("float64"))


def test_float32_exhaustive_streams_in_chunks(tmp_path):
    vs = generate(e5m2, "float32", inputs=np.zeros(0, np.uint32))
    chunks = exhaustive_chunks("float32", chunk=1000, start=0x3F800000, stop=0x3F800000 + 2500)
    path = write_vectors(vs, tmp_path / "stream.txt", stream_chunks=chunks)
    back = read_vectors(path)
    assert np.array_equal(back.inputs, np.arange(0x3F800000, 0x3F800000 + 2500, dtype=np.uint32))
    assert np.array_equal(back.expected, encode(back.values(), e5m2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="level"):
        generate(e5m2, "float32", level=3)
    with pytest.raises(ValueError, match="source"):
        source_dtype("int8")
    with pytest.raises(ValueError, match="rounding"):
        generate(e5m2, "float32", rounding="nearest")


def test_cli_vectors_then_check(tmp_path, capsys):
    v = tmp_path / "v.txt"
    assert main(["vectors", "--source", "float16", "--format", "e4m3fnuz", "--level", "2", "--count", "200",
                 "--out", str(v)]) == 0
    assert main(["check", "--vectors", str(v), "--results", str(v)]) == 0  # a file checks against itself
    assert "PASS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["vectors", "--source", "float64", "--format", "e5m2", "--level", "exhaustive", "--out", str(v)])
    assert boundary_inputs(e5m2, "float16").dtype == np.uint16


# ---- dot-product vectors ------------------------------------------------------------------------
from fp8emu import matmul  # noqa: E402
from fp8emu.accumulators import fp32_pairwise, fp32_sequential, lowp  # noqa: E402
from fp8emu.verify.dot import accumulator_from_spec, check_dot, generate_dot, read_dot, write_dot  # noqa: E402


def _dot(vs, acc):
    with np.errstate(all="ignore"):
        return matmul(vs.a[:, None, :], vs.b[:, :, None], a_fmt=vs.a_fmt, b_fmt=vs.b_fmt, accumulator=acc).reshape(-1)


@pytest.mark.parametrize("spec", ["fp32_sequential", "fp32_pairwise", "fp32_blocked:8", "lowp:float16:4",
                                  "nvidia_hopper_fp8"])
def test_dot_vectors_round_trip_and_pass(tmp_path, spec):
    vs = generate_dot("e4m3fn", "e5m2", accumulator=spec, k=16, count=100)
    back = read_dot(write_dot(vs, tmp_path / "d.txt"))
    assert np.array_equal(back.a, vs.a) and np.array_equal(back.b, vs.b)
    assert np.array_equal(back.expected.view(np.uint32), vs.expected.view(np.uint32))
    assert check_dot(back, vs.expected.view(np.uint32)).ok


def test_dot_check_catches_another_summation_order():
    vs = generate_dot("e5m2", accumulator="fp32_sequential", k=64, count=300)
    rep = check_dot(vs, _dot(vs, fp32_pairwise))
    assert not rep.ok and rep.by_class["accumulation"] == rep.mismatches
    assert "ulp apart" in rep.failures[0]
    rep16 = check_dot(vs, _dot(vs, lowp("float16", 64)))  # FP16 accumulation overflows where FP32 does not
    assert rep16.by_class["overflow"] > 0
    assert check_dot(vs, _dot(vs, fp32_sequential)).ok


def test_dot_level1_structured_cases():
    vs = generate_dot("e5m2", accumulator="fp32_sequential", k=8, level=1)
    assert np.isnan(vs.expected).any()  # NaN operand and Inf - Inf
    big = e5m2.max ** 2 * 8
    assert np.float32(big) in vs.expected


def test_dot_bad_arguments():
    with pytest.raises(ValueError, match="unspecified"):
        accumulator_from_spec("fp32_blas")
    with pytest.raises(ValueError, match="not supported"):
        accumulator_from_spec("kahan")
    with pytest.raises(ValueError, match="k="):
        generate_dot("e5m2", k=1)
    with pytest.raises(ValueError, match="level"):
        generate_dot("e5m2", level="exhaustive")


def test_cli_dot_vectors_and_check(tmp_path, capsys):
    d = tmp_path / "dot.txt"
    assert main(["vectors", "--format", "e4m3fn", "--accumulator", "fp32_pairwise", "--k", "8", "--count", "40",
                 "--out", str(d)]) == 0
    assert main(["check", "--vectors", str(d), "--results", str(d)]) == 0
    vs = read_dot(d)
    res = tmp_path / "res.txt"
    wrong = _dot(vs, fp32_sequential).view(np.uint32)
    res.write_text("".join(f"{int(w):08X}\n" for w in wrong))
    rc = main(["check", "--vectors", str(d), "--results", str(res)])
    assert rc == (0 if np.array_equal(wrong, vs.expected.view(np.uint32)) else 1)


def test_reading_fixed_width_and_free_form_text(tmp_path):
    vs = generate(e5m2, "float32", level=2, count=500)
    fast = read_vectors(write_vectors(vs, tmp_path / "v.txt"))
    # the same rows hand-edited: lower case, extra spaces, a comment in the middle
    lines = (tmp_path / "v.txt").read_text().splitlines()
    body = [ln.lower().replace(" ", "   ") for ln in lines[4:]]
    (tmp_path / "w.txt").write_text("\n".join(lines[:4] + body[:10] + ["# note"] + body[10:]) + "\n")
    slow = read_vectors(tmp_path / "w.txt")
    for v in (fast, slow):
        assert np.array_equal(v.inputs, vs.inputs) and np.array_equal(v.expected, vs.expected)
        assert np.array_equal(v.flags, vs.flags)


def test_results_npz(tmp_path):
    from fp8emu.verify.check import check_files
    vs = generate(e4m3fn, "float32", level=1)
    write_vectors(vs, tmp_path / "v.npz")
    np.savez(tmp_path / "r.npz", inputs=vs.inputs, codes=encode(vs.values(), e4m3fn))
    assert check_files(tmp_path / "v.npz", tmp_path / "r.npz").ok
    np.savez(tmp_path / "bad.npz", codes=vs.expected)
    with pytest.raises(ValueError, match="inputs"):
        check_files(tmp_path / "v.npz", tmp_path / "bad.npz")
