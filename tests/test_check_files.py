"""``fp8emu check`` as a sign-off tool: coverage is part of the verdict, exit codes 0/1/2, a
one-line ``file:line`` message for every malformed input (never a traceback), stdin/stdout,
``--nan any``, validated options, format v1 still read, and the stochastic draw-count rule."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fp8emu import encode
from fp8emu.cli import main
from fp8emu.formats import e2m1fn, e3m2fn, e3m4, e4m3fn, e5m2, float16
from fp8emu.verify.check import check, check_files
from fp8emu.verify.dot import generate_dot, read_dot, write_dot
from fp8emu.verify.textio import FileFormatError, write_bytes
from fp8emu.verify.vectors import exhaustive_chunks, generate, read_vectors, write_results, write_vectors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(capsys, *argv):
    """Exit status and stderr of ``fp8emu check ...`` (argparse usage errors included)."""
    try:
        rc = main(["check", *map(str, argv)])
    except SystemExit as exc:
        rc = exc.code
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.err


@pytest.fixture
def l1(tmp_path):
    vs = generate(e4m3fn, "float32", level=1)
    return vs, write_vectors(vs, tmp_path / "v.txt")


# ---- coverage -------------------------------------------------------------------------------------
def test_empty_results_fail_with_coverage(tmp_path, capsys, l1):
    vs, v = l1
    (tmp_path / "empty.txt").write_text("")
    rc, err = _cli(capsys, "--vectors", v, "--results", tmp_path / "empty.txt")
    assert rc == 1 and f"FAIL: 0 of {len(vs)} cases checked" in err and f"missing: {len(vs)} cases" in err


def test_partial_results_fail_unless_allowed(tmp_path, capsys, l1):
    vs, v = l1
    one = write_results(tmp_path / "one.txt", vs.inputs[:1], vs.expected[:1], "float32", e4m3fn)
    rc, err = _cli(capsys, "--vectors", v, "--results", one)
    assert rc == 1 and f"1 of {len(vs)} cases checked" in err and f"missing: {len(vs) - 1} cases" in err
    rc, err = _cli(capsys, "--vectors", v, "--results", one, "--allow-partial")
    assert rc == 0 and f"PASS: 1 of {len(vs)} cases checked" in err and "allowed by --allow-partial" in err
    rep = check(vs, vs.inputs[:0], vs.expected[:0], allow_partial=True)
    assert not rep.ok  # nothing checked is never a pass


def test_every_case_needs_a_result_but_order_and_repeats_are_free(l1):
    vs, _ = l1
    perm = np.random.default_rng(0).permutation(len(vs))
    twice = np.concatenate([perm, perm[:100]])
    assert check(vs, vs.inputs[twice], vs.expected[twice]).ok
    rep = check(vs, vs.inputs[perm[1:]], vs.expected[perm[1:]])
    assert not rep.ok and rep.missing == 1 and rep.mismatches == 0
    assert rep.missing_inputs == [f"{int(vs.inputs[perm[0]]):08X}"]


def test_results_for_inputs_not_in_the_vectors_fail(l1):
    vs, _ = l1
    rep = check(vs, np.append(vs.inputs, np.uint32(0x3F812345)), np.append(vs.expected, np.uint8(0x38)))
    assert not rep.ok and rep.unmatched == 1


# ---- exit code 2: malformed files, a one-line message with file and line --------------------------
def _vectors_text(tmp_path):
    vs = generate(e4m3fn, "float32", level=1)
    return write_vectors(vs, tmp_path / "v.txt"), (tmp_path / "v.txt").read_text().splitlines()


@pytest.mark.parametrize("case, edit, role, message", [
    ("header only", lambda ln: ln[:4], "vectors", "v.txt: no test cases"),
    ("no bias", lambda ln: [ln[0], ln[1].replace(" bias=7", "")] + ln[2:], "vectors", "v.txt:2: the header lacks bias"),
    ("bad specials", lambda ln: [ln[0], ln[1].replace("specials=fn", "specials=odd")] + ln[2:], "vectors",
     "v.txt:2: invalid format"),
    ("expected 1FF", lambda ln: ln[:9] + [ln[9][:9] + "1FF 00"] + ln[10:], "vectors", "v.txt:10: expected '1FF' has 3"),
    ("9-digit input", lambda ln: ln[:9] + ["1" + ln[9]] + ln[10:], "vectors", "v.txt:10: input '1"),
    ("not hex", lambda ln: ln[:6] + ["3F80000G 38 00"] + ln[7:], "vectors", "v.txt:7: input '3F80000G' is not"),
    ("short line", lambda ln: ln[:6] + ["3F800000 38"] + ln[7:], "vectors", "v.txt:7: 2 words, but"),
    ("not fp8emu", lambda ln: ["// some other file"] + ln[1:], "vectors", "v.txt:1: not an fp8emu vectors file"),
    ("negative", lambda ln: ["-1 00"], "results", "r.txt:1: input '-1' is not a hexadecimal word"),
    ("past 2^64", lambda ln: ["1" + "0" * 16 + " 00"], "results", "r.txt:1: input '10000000000000000' has 17"),
    ("code 138", lambda ln: ["// a harness", "3F800000 38", "3F800001 138"], "results",
     "r.txt:3: code '138' has 3 hex digits"),
    ("four words", lambda ln: ["3F800000 38 00 00"], "results", "r.txt:1: 4 words per line, expected 3"),
    ("Verilog X", lambda ln: ["3F800000 xx"], "results", "r.txt:1: code 'xx' is not a hexadecimal word"),
    ("binary", lambda ln: ["\0\1\2"], "results", "r.txt: not a text file"),
])
def test_malformed_files_exit_2_with_file_and_line(tmp_path, capsys, case, edit, role, message):
    v, lines = _vectors_text(tmp_path)
    r = tmp_path / "r.txt"
    if role == "vectors":
        v.write_text("\n".join(edit(lines)) + "\n")
        r.write_text("3F800000 38\n")
    else:
        r.write_text("\n".join(edit(lines)) + "\n")
    rc, err = _cli(capsys, "--vectors", v, "--results", r)
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_out_of_range_code_of_a_narrow_format(tmp_path, capsys):
    v = write_vectors(generate(e3m2fn, "float32", level=1), tmp_path / "v.txt")
    (tmp_path / "r.txt").write_text("3F800000 10\n3F800001 7F\n")
    rc, err = _cli(capsys, "--vectors", v, "--results", tmp_path / "r.txt")
    assert rc == 2 and "r.txt:2: code '7F' is out of range for a 6-bit word (at most 3F)" in err
    (tmp_path / "r4.txt").write_text("3F800000 02\n")
    v4 = write_vectors(generate(e2m1fn, "float32", level=1), tmp_path / "v4.txt")
    rc, err = _cli(capsys, "--vectors", v4, "--results", tmp_path / "r4.txt")
    assert rc == 2 and "r4.txt:1: code '02' has 2 hex digits; a 4-bit word has at most 1" in err
    vs = read_vectors(v4)
    with pytest.raises(ValueError, match="out of range"):
        check(vs, vs.inputs[:1], np.array([0x10]))
    vs3 = generate(e3m4, "float32", level=1)
    with pytest.raises(ValueError, match=r"codes\[0\] = 0x138"):
        check(vs3, vs3.inputs[:1], np.array([0x138]))


def test_missing_file_and_bad_npz_exit_2(tmp_path, capsys, l1):
    _, v = l1
    rc, err = _cli(capsys, "--vectors", v, "--results", tmp_path / "nope.txt")
    assert rc == 2 and "nope.txt: No such file" in err
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    rc, err = _cli(capsys, "--vectors", tmp_path / "broken.npz", "--results", v)
    assert rc == 2 and "broken.npz: not a readable .npz" in err
    np.savez(tmp_path / "r.npz", codes=np.zeros(3, np.uint8))
    rc, err = _cli(capsys, "--vectors", v, "--results", tmp_path / "r.npz")
    assert rc == 2 and "r.npz: no array 'inputs'" in err


@pytest.mark.parametrize("option, value", [("--z-max", "nan"), ("--z-max", "inf"), ("--z-max", "0"),
                                           ("--z-max", "-1"), ("--max-failures", "-3"), ("--min-draws", "0"),
                                           ("--nan", "some")])
def test_numeric_options_are_validated(capsys, l1, option, value):
    _, v = l1
    rc, err = _cli(capsys, "--vectors", v, "--results", v, option, value)
    assert rc == 2 and option in err


def test_python_api_validates_options(l1):
    vs, _ = l1
    for kw in (dict(z_max=float("nan")), dict(max_failures=-3), dict(nan="whatever"), dict(min_draws=0)):
        with pytest.raises(ValueError):
            check(vs, vs.inputs, vs.expected, **kw)


# ---- .npz everywhere, stdin and stdout ------------------------------------------------------------
def test_npz_vectors_and_results(tmp_path, capsys, l1):
    vs, v = l1
    vz = write_vectors(vs, tmp_path / "v.npz")
    rc, err = _cli(capsys, "--vectors", vz, "--results", v)
    assert rc == 0 and f"PASS: {len(vs)} of {len(vs)}" in err
    np.savez(tmp_path / "r.npz", inputs=vs.inputs, codes=encode(vs.values(), e4m3fn))
    assert _cli(capsys, "--vectors", v, "--results", tmp_path / "r.npz")[0] == 0


def _fp8emu(*args, stdin=None, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "fp8emu", *map(str, args)], input=stdin, capture_output=True,
                          cwd=cwd, env=env, timeout=300)


def test_stdin_stdout_and_status_on_stderr(tmp_path):
    gen = _fp8emu("vectors", "--format", "e5m2", "--source", "float16", "--out", "-")
    assert gen.returncode == 0 and gen.stdout.startswith(b"// fp8emu test vectors v2\n")
    assert b"fp8emu vectors:" in gen.stderr and b"fp8emu vectors:" not in gen.stdout
    assert not (tmp_path / "-").exists()
    (tmp_path / "v.txt").write_bytes(gen.stdout)
    for args in (("--vectors", "-", "--results", "v.txt"), ("--vectors", "v.txt", "--results", "-")):
        run = _fp8emu("check", *args, stdin=gen.stdout, cwd=tmp_path)
        assert run.returncode == 0 and run.stdout == b"" and b"PASS" in run.stderr, run.stderr
    both = _fp8emu("check", "--vectors", "-", "--results", "-", stdin=gen.stdout, cwd=tmp_path)
    assert both.returncode == 2 and b"only one of" in both.stderr
    assert _fp8emu("vectors", "--format", "e5m2", "--source", "float16", "--out", "v.npz", cwd=tmp_path).returncode == 0
    npz = (tmp_path / "v.npz").read_bytes()
    run = _fp8emu("check", "--vectors", "-", "--results", "v.txt", stdin=npz, cwd=tmp_path)  # sniffed, not named
    assert run.returncode == 0, run.stderr


# ---- --nan any ------------------------------------------------------------------------------------
def test_nan_any_accepts_another_nan_code(tmp_path, capsys, l1):
    vs, v = l1
    codes = encode(vs.values(), e4m3fn)
    neg = np.signbit(vs.values()) & (codes == 0x7F)
    codes[neg] = 0xFF  # the other NaN code of e4m3fn, e.g. for negative overflow
    assert neg.sum() > 5
    r = write_results(tmp_path / "r.txt", vs.inputs, codes, "float32", e4m3fn)
    rc, err = _cli(capsys, "--vectors", v, "--results", r)
    assert rc == 1 and f"nan          {neg.sum()}" in err  # a NaN encoding, not an overflow
    assert _cli(capsys, "--vectors", v, "--results", r, "--nan", "any")[0] == 0
    codes[~neg & (codes == 0x7E)] = 0x7F  # a NaN where max is expected is still wrong
    rep = check(vs, vs.inputs, codes, nan="any")
    assert not rep.ok and rep.mismatches == np.count_nonzero(encode(vs.values(), e4m3fn) == 0x7E)


def test_nan_any_with_stochastic_vectors():
    vs = generate(e5m2, "float32", rounding="stochastic", level=1)
    x = vs.values()
    codes = np.concatenate([encode(x, e5m2, rounding="stochastic", seed=s) for s in range(20)])
    nan = np.isnan(np.tile(x, 20))
    codes[nan] = 0x7D  # another quiet NaN of e5m2
    inputs = np.tile(vs.inputs, 20)
    assert check(vs, inputs, codes, nan="any").mismatches == 0
    assert check(vs, inputs, codes).mismatches > 0


# ---- format v1 still read ---------------------------------------------------------------------------
def _as_v1(text: str) -> str:
    return (text.replace("// fp8emu test vectors v2", "# fp8emu test vectors v1").replace("// words:", "# columns:")
            .replace("// ", "# "))


def test_v1_text_files_are_read(tmp_path, capsys):
    vs = generate(e5m2, "float32", level=2, count=300, rounding="stochastic")
    v2 = write_vectors(vs, tmp_path / "v2.txt")
    (tmp_path / "v1.txt").write_text(_as_v1(v2.read_text()))
    back = read_vectors(tmp_path / "v1.txt")
    for col in ("inputs", "expected", "expected_up", "flags"):
        assert np.array_equal(getattr(back, col), getattr(vs, col)), col
    assert back.rounding is vs.rounding and back.fmt == vs.fmt


def test_v1_dot_files_are_read(tmp_path):
    vs = generate_dot("e4m3fn", "e5m2", accumulator="fp32_pairwise", k=4, count=20)
    v1 = ["# fp8emu dot-product vectors v1",
          "# a_format=e4m3fn exp_bits=4 man_bits=3 bias=7 subnormals=1 specials=fn signed=1 has_zero=1",
          "# b_format=e5m2 exp_bits=5 man_bits=2 bias=15 subnormals=1 specials=ieee signed=1 has_zero=1",
          "# accumulator=fp32_pairwise k=4 level=2 seed=0", "# columns: a_codes b_codes expected_float32"]
    v1 += ["".join(f"{c:02X}" for c in ra) + " " + "".join(f"{c:02X}" for c in rb) + f" {int(y):08X}"
           for ra, rb, y in zip(vs.a, vs.b, vs.expected.view(np.uint32))]
    (tmp_path / "d1.txt").write_text("\n".join(v1) + "\n")
    with pytest.raises(FileFormatError, match="format v1 file .* has none.*--allow-no-end-line"):
        read_dot(tmp_path / "d1.txt")  # v1 has no end line: a cut at a line boundary would go unnoticed
    back = read_dot(tmp_path / "d1.txt", allow_no_end_line=True)
    assert np.array_equal(back.a, vs.a) and np.array_equal(back.b, vs.b)
    assert np.array_equal(back.expected.view(np.uint32), vs.expected.view(np.uint32))


# ---- level 2 has no repeated case ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt, source", [(e4m3fn, "float32"), (e2m1fn, "float16"), (e5m2, "bfloat16")])
def test_level2_never_repeats_an_input(fmt, source):
    vs = generate(fmt, source, level=2, count=20000, seed=5)
    n1 = len(generate(fmt, source, level=1))
    assert np.unique(vs.inputs).size == len(vs) == n1 + 20000
    with np.errstate(invalid="ignore"):
        x = np.abs(vs.values()[n1:].astype(np.float64))
    in_range = (x >= fmt.min_subnormal / 2) & (x <= fmt.max * 1.25)
    # half spread over the format's range, half uniform bits; a 16-bit source holds fewer distinct
    # values near a coarse format's grid, so repeats there are replaced by more uniform draws
    assert (0.45 if source == "float32" else 0.25) < in_range.mean() < 0.75, in_range.mean()


def test_level2_count_is_bounded_by_the_source():
    n1 = len(generate(e2m1fn, "float16", level=1))
    assert len(generate(e2m1fn, "float16", level=2, count=(1 << 16) - n1)) == 1 << 16
    with pytest.raises(ValueError, match="exhaustive"):
        generate(e2m1fn, "float16", level=2, count=(1 << 16) - n1 + 1)


def test_dot_cases_are_distinct():
    vs = generate_dot("e2m1fn", accumulator="fp32_sequential", k=2, count=3000, seed=1)
    rows = np.concatenate([vs.a, vs.b], axis=1)
    assert np.unique(rows, axis=0).shape[0] == len(vs)
    with pytest.raises(ValueError, match="only"):
        generate_dot("e2m1fn", accumulator="fp32_sequential", k=2, count=16 ** 4)


# ---- stochastic rounding: coverage and the draw-count rule ---------------------------------------------
def test_stochastic_needs_min_draws_for_the_bias_tests(capsys, tmp_path):
    vs = generate(e5m2, "float32", rounding="stochastic", level=2, count=500)
    x = vs.values()
    one = check(vs, vs.inputs, encode(x, e5m2, rounding="stochastic", seed=0))
    assert one.mismatches == 0 and one.missing == 0 and not one.ok and one.short_inputs > 0
    assert "need at least 20 draws" in one.format() and "fewest: 1" in one.format()
    assert check(vs, vs.inputs, encode(x, e5m2, rounding="stochastic", seed=0), min_draws=1).ok
    draws = np.concatenate([encode(x, e5m2, rounding="stochastic", seed=s) for s in range(20)])
    assert check(vs, np.tile(vs.inputs, 20), draws).ok
    # coverage: an input with no draw at all is a missing case, even with enough draws elsewhere
    keep = np.tile(vs.inputs, 20) != vs.inputs[3]
    rep = check(vs, np.tile(vs.inputs, 20)[keep], draws[keep])
    assert not rep.ok and rep.missing == 1


# ---- dot products: coverage, result layouts --------------------------------------------------------------
@pytest.fixture
def dot(tmp_path):
    vs = generate_dot("e4m3fn", accumulator="fp32_sequential", k=8, count=50)
    return vs, write_dot(vs, tmp_path / "d.txt")


def test_dot_results_in_order_by_index_or_echoed(tmp_path, capsys, dot):
    vs, d = dot
    y = vs.expected.view(np.uint32)
    (tmp_path / "order.txt").write_text("".join(f"{int(w):08X}\n" for w in y))
    assert _cli(capsys, "--vectors", d, "--results", tmp_path / "order.txt")[0] == 0
    perm = np.random.default_rng(1).permutation(len(vs))
    (tmp_path / "index.txt").write_text("".join(f"{i:X} {int(y[i]):08X}\n" for i in perm))
    assert _cli(capsys, "--vectors", d, "--results", tmp_path / "index.txt")[0] == 0
    assert _cli(capsys, "--vectors", d, "--results", d)[0] == 0  # the vectors' own words, result last
    vz = write_dot(vs, tmp_path / "d.npz")
    assert _cli(capsys, "--vectors", vz, "--results", tmp_path / "order.txt")[0] == 0


def test_dot_short_long_and_bad_results(tmp_path, capsys, dot):
    vs, d = dot
    y = vs.expected.view(np.uint32)
    (tmp_path / "short.txt").write_text("".join(f"{int(w):08X}\n" for w in y[:10]))
    rc, err = _cli(capsys, "--vectors", d, "--results", tmp_path / "short.txt")
    assert rc == 1 and f"10 of {len(vs)} cases checked" in err and "first: row 10" in err
    assert _cli(capsys, "--vectors", d, "--results", tmp_path / "short.txt", "--allow-partial")[0] == 0
    (tmp_path / "long.txt").write_text("".join(f"{int(w):08X}\n" for w in np.append(y, y[:1])))
    rc, err = _cli(capsys, "--vectors", d, "--results", tmp_path / "long.txt")
    assert rc == 2 and f"long.txt:{len(vs) + 1}: more results than" in err
    (tmp_path / "idx.txt").write_text(f"{len(vs):X} 00000000\n")
    rc, err = _cli(capsys, "--vectors", d, "--results", tmp_path / "idx.txt")
    assert rc == 2 and "idx.txt:1: index" in err
    lines = d.read_text().splitlines()
    (tmp_path / "h.txt").write_text("\n".join(lines[:5]) + "\n")
    rc, err = _cli(capsys, "--vectors", tmp_path / "h.txt", "--results", tmp_path / "short.txt")
    assert rc == 2 and "no test cases" in err


# ---- writing ------------------------------------------------------------------------------------------
def test_writes_are_atomic(tmp_path):
    def chunks():
        yield b"partial"
        raise RuntimeError("generator failed")
    with pytest.raises(RuntimeError):
        write_bytes(tmp_path / "out.txt", chunks())
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        write_bytes(tmp_path / "keep.txt", chunks())
    assert (tmp_path / "keep.txt").read_text() == "old"


def test_file_format_error_is_a_value_error_with_location():
    err = FileFormatError("v.txt", "bad word", 7)
    assert isinstance(err, ValueError) and str(err) == "v.txt:7: bad word" and err.line == 7


def test_wide_formats_use_wider_words(tmp_path):
    vs = generate(float16, "float32", level=1)
    text = write_vectors(vs, tmp_path / "h.txt").read_text().splitlines()
    assert [len(w) for w in text[-2].split()] == [8, 4, 2] and text[-1] == f"// end: {len(vs)} cases"
    assert check_files(tmp_path / "h.txt", tmp_path / "h.txt").ok


def test_stdout_closed_early_is_no_error(tmp_path):
    cmd = f'"{sys.executable}" -m fp8emu vectors --format e5m2 --level 2 --count 200000 --out - | head -1'
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and proc.stdout == "// fp8emu test vectors v2\n"
    assert "Error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_dot_results_npz(tmp_path, capsys, dot):
    vs, d = dot
    y = vs.expected.view(np.uint32)
    np.savez(tmp_path / "r.npz", results=y)
    assert _cli(capsys, "--vectors", d, "--results", tmp_path / "r.npz")[0] == 0
    perm = np.random.default_rng(2).permutation(len(vs))[:-1]
    np.savez(tmp_path / "p.npz", results=vs.expected[perm], index=perm)  # float32 values, any order, one short
    rc, err = _cli(capsys, "--vectors", d, "--results", tmp_path / "p.npz")
    assert rc == 1 and f"{len(vs) - 1} of {len(vs)} cases checked" in err
    np.savez(tmp_path / "bad.npz", results=y, index=np.full(y.size, len(vs)))
    rc, err = _cli(capsys, "--vectors", d, "--results", tmp_path / "bad.npz")
    assert rc == 2 and "bad.npz: array 'index'" in err


@pytest.mark.parametrize("kind", ["vectors", "dot", "results"])
def test_mangled_files_never_raise(tmp_path, capsys, kind):
    """Random byte edits of a valid file: exit status 0, 1 or 2, never an exception."""
    rng = np.random.default_rng(7)
    if kind == "dot":
        good = write_dot(generate_dot("e4m3fn", accumulator="fp32_pairwise", k=4, count=20), tmp_path / "g.txt")
    else:
        good = write_vectors(generate(e5m2, "float16", level=1), tmp_path / "g.txt")
    data = good.read_bytes()
    alphabet = np.frombuffer(b"0123456789ABCDEFxX/#= -\n\t\0\xff", np.uint8)
    for trial in range(40):
        buf = np.frombuffer(data, np.uint8).copy()
        where = rng.integers(0, buf.size, size=int(rng.integers(1, 6)))
        buf[where] = rng.choice(alphabet, size=where.size)
        bad = tmp_path / f"m{trial}.txt"
        bad.write_bytes(buf.tobytes()[: int(rng.integers(1, buf.size + 1))] if trial % 3 == 0 else buf.tobytes())
        args = ("--vectors", good, "--results", bad) if kind == "results" else ("--vectors", bad, "--results", good)
        rc, _ = _cli(capsys, *args)
        assert rc in (0, 1, 2), trial


@pytest.mark.parametrize("argv", [["vectors", "--format", "e4m3fn", "--level", "1"],
                                  ["vectors", "--format", "e4m3fn", "--b-format", "e5m2",
                                   "--accumulator", "fp32_sequential", "--k", "4", "--level", "1", "--count", "4"]],
                         ids=["conversion", "dot"])
def test_out_in_a_missing_directory_is_a_one_line_error(tmp_path, capsys, argv):
    target = tmp_path / "missing" / "v.txt"
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(target)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot write {target}: No such file or directory" in err and "Traceback" not in err
    assert not target.parent.exists()


# ---- a cut-off file is refused, never checked as fewer cases ------------------------------------------
def test_vectors_cut_mid_line_never_pass(tmp_path, capsys, l1):
    """The reviewer's case: a vectors file cut inside a flags word ('01' -> '0', read as 00) checked
    against results whose last (wrong) line matches the cut: that used to PASS 180 of 180."""
    vs, v = l1
    text = v.read_bytes()
    body = [ln for ln in text.splitlines(keepends=True) if not ln.startswith(b"//")]
    n_head = text.index(body[0])
    cut_at = next(i for i in range(n_head + 180 * len(body[0]), len(text)) if text[i - 1:i + 1] == b" 0")
    cut = text[:cut_at + 1]  # ... "xxxxxxxx yy 0": the flags word '01' lost its last digit
    assert cut.endswith(b" 0") and text[cut_at + 1:cut_at + 2] == b"1"
    (tmp_path / "cut.txt").write_bytes(cut)
    rows = cut[n_head:].count(b"\n") + 1
    results = b"".join(body[:rows - 1]) + cut[cut.rindex(b"\n") + 1:] + b"0\n"  # the device's wrong 00 flags
    (tmp_path / "r.txt").write_bytes(results)
    rc, err = _cli(capsys, "--vectors", tmp_path / "cut.txt", "--results", tmp_path / "r.txt")
    assert rc == 2 and f"cut.txt:{5 + rows - 1}: the last line ends without a newline: the file is cut off" in err, err


@pytest.mark.parametrize("edit, message", [
    (lambda t: t[:t.index(b"\n", len(t) // 2) + 1], "the header says cases=1548, but the file holds"),  # a line boundary
    (lambda t: t.replace(b" cases=1548", b"")[:t.index(b"\n", len(t) // 2) - 10], "no end line"),
    (lambda t: t.replace(b"// end: 1548 cases", b"// end: 1547 cases"), "end line 'end: 1547 cases' does not match"),
    (lambda t: t.replace(b"\n3F800000 38 00\n", b"\n3F800000 38 0\n"), "flags '0' has 1 hex digits, but fp8emu writes 2"),
    (lambda t: t.replace(b"\n3F800000 38 00\n", b"\n3F80000 38 00\n"), "input '3F80000' has 7 hex digits"),
])
def test_cut_or_edited_vectors_exit_2(tmp_path, capsys, l1, edit, message):
    _, v = l1
    (tmp_path / "bad.txt").write_bytes(edit(v.read_bytes()))
    rc, err = _cli(capsys, "--vectors", tmp_path / "bad.txt", "--results", v)
    assert rc == 2 and "bad.txt" in err and message in err, err


def test_vectors_without_end_line_need_the_opt_out(tmp_path, capsys, l1):
    vs, v = l1
    old = v.read_bytes().replace(b" cases=1548", b"").replace(b"// end: 1548 cases\n", b"")  # an earlier fp8emu
    (tmp_path / "old.txt").write_bytes(old)
    rc, err = _cli(capsys, "--vectors", tmp_path / "old.txt", "--results", v)
    assert rc == 2 and "no end line ('// end: N cases')" in err and "--allow-no-end-line" in err
    rc, err = _cli(capsys, "--vectors", tmp_path / "old.txt", "--results", v, "--allow-no-end-line")
    assert rc == 0 and f"PASS: {len(vs)} of {len(vs)}" in err
    (tmp_path / "old_cut.txt").write_bytes(old[:-3])  # a cut mid-line is still caught
    rc, err = _cli(capsys, "--vectors", tmp_path / "old_cut.txt", "--results", v, "--allow-no-end-line")
    assert rc == 2 and "ends without a newline" in err


def test_results_cut_mid_word_exit_2(tmp_path, capsys, l1):
    vs, v = l1
    codes = vs.expected.copy()
    codes[-1] ^= 1  # a wrong last result, "7E" cut to "7" would be read as 07
    r = write_results(tmp_path / "r.txt", vs.inputs, codes, "float32", e4m3fn, flags=vs.flags)
    full = r.read_bytes()
    (tmp_path / "cut.txt").write_bytes(full[:-2])  # "... 00\n" -> "... 0": flags 00 read as 0 would agree
    rc, err = _cli(capsys, "--vectors", v, "--results", tmp_path / "cut.txt")
    assert rc == 2 and "ends without a newline and its flags '0' has 1 of 2 hex digits" in err, err
    (tmp_path / "whole.txt").write_bytes(full[:-1])  # complete words, no final newline: accepted
    rc, err = _cli(capsys, "--vectors", v, "--results", tmp_path / "whole.txt")
    assert rc == 1 and "1 mismatches" in err


def test_dot_vectors_and_results_cut_exit_2(tmp_path, capsys, dot):
    vs, path = dot
    text = path.read_bytes()
    assert text.endswith(f"// end: {len(vs)} cases\n".encode()) and f" cases={len(vs)}\n".encode() in text
    (tmp_path / "cut.txt").write_bytes(text[:text.index(b"\n", len(text) // 2) + 1])
    rc, err = _cli(capsys, "--vectors", tmp_path / "cut.txt", "--results", path)
    assert rc == 2 and f"the header says cases={len(vs)}" in err
    y = "".join(f"{int(w):08X}\n" for w in vs.expected.view(np.uint32))
    (tmp_path / "r.txt").write_text(y[:-3])
    rc, err = _cli(capsys, "--vectors", path, "--results", tmp_path / "r.txt")
    assert rc == 2 and "the file looks cut off" in err


def test_streamed_vectors_count_their_cases(tmp_path):
    vs = generate(e5m2, "float32", inputs=np.zeros(0, np.uint32))
    chunks = exhaustive_chunks("float32", chunk=1000, start=0x3F800000, stop=0x3F800000 + 2500)
    path = write_vectors(vs, tmp_path / "s.txt", stream_chunks=chunks, stream_cases=2500)
    text = path.read_text()
    assert " cases=2500\n" in text and text.endswith("// end: 2500 cases\n") and len(read_vectors(path)) == 2500
    with pytest.raises(ValueError, match="yielded 2500 inputs, stream_cases says 2000"):
        write_vectors(vs, tmp_path / "t.txt", stream_chunks=exhaustive_chunks("float32", chunk=1000, start=0,
                                                                             stop=2500), stream_cases=2000)
    assert not (tmp_path / "t.txt").exists()


@pytest.mark.parametrize("argv, message", [
    (["crosscheck", "--count", "-5"], "argument --count: -5 must be >= 0"),
    (["crosscheck", "--seed", "-1"], "argument --seed: -1 must be >= 0"),
    (["vectors", "--format", "e4m3fn", "--level", "2", "--seed", "-1", "--out", "-"], "argument --seed: -1 must be >= 0"),
])
def test_negative_counts_and_seeds_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
