"""docs/verification.md is a tutorial whose every shell command runs: this test executes its
``bash`` blocks in order, in one scratch directory, with this checkout's ``fp8emu``.

* Each block runs with ``bash -e -o pipefail`` and must exit 0 (a command that is meant to
  fail is written ``cmd || echo "exit status $?"`` in the page, and the status is then part of
  the output below).
* A ``text`` block preceded by ``<!-- docs-test: output -->`` shows the output (stdout and
  stderr) of the ``bash`` block before it: each of its lines must appear in that output, so the
  page never shows an output the commands do not give (lines with ``...`` are elisions).
* Reduced sizes, so that the test takes a minute rather than hours (the page shows the real
  commands): the 2^32-line float32 sweep runs on the patterns ``00000000..000FFFFF`` only
  (``--range``), the 2^20-pattern slice of [1, 2) on 2^16 patterns, ``--count 100000`` becomes
  ``--count 5000``, and the full hardware harness (``examples/hardware/run.sh``, which CI runs
  in full in ``.ci/run``) runs level 1 only (``LEVELS=1``).

The block-level checks that need no tools (every block parses, every ``fp8emu`` option exists)
run in the default suite; running the commands needs Icarus Verilog and a C compiler and is
``slow`` (CI installs both and runs it).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "verification.md"
_BLOCK = re.compile(r"(?P<marker><!-- docs-test: output -->\s*\n)?^```(?P<lang>bash|text)[^\n]*\n(?P<body>.*?)^```",
                    re.M | re.S)

# real command (as on the page) -> what the test runs instead; see the module docstring
REDUCED = {
    "--level exhaustive --out all_f32.txt": "--level exhaustive --range 00000000:00100000 --out all_f32.txt",
    "--range 3F800000:3F900000": "--range 3F800000:3F810000",
    "--count 100000": "--count 5000",
    "bash examples/hardware/run.sh": "LEVELS=1 bash examples/hardware/run.sh",
    # the 2^32-input hashes on a local cluster: the same command on a 16-bit source (2^16 inputs)
    "fp8emu vectors --format e4m3fn,e5m2 --level exhaustive --hash --scheduler local":
        "fp8emu vectors --source bfloat16 --format e4m3fn,e5m2 --level exhaustive --hash --scheduler local",
    # no scheduler listens at tcp://host:8786 here: the same hash on a cluster the test starts itself
    "--hash --scheduler tcp://host:8786": "--source bfloat16 --hash --scheduler local",
}


def blocks() -> list[tuple[str, str, bool]]:
    """``(lang, body, is_output)`` of the page's bash and text blocks, in order."""
    return [(m["lang"], m["body"], bool(m["marker"])) for m in _BLOCK.finditer(PAGE.read_text())]


def _reduce(body: str) -> str:
    for real, small in REDUCED.items():
        body = body.replace(real, small)
    return body


def test_every_reduction_applies_to_a_command_on_the_page():
    text = "\n".join(body for lang, body, _ in blocks() if lang == "bash")
    for real in REDUCED:
        assert real in text, f"REDUCED names {real!r}, which the page no longer has"


def test_output_blocks_follow_a_command():
    kinds = blocks()
    for i, (lang, body, is_output) in enumerate(kinds):
        if is_output:
            assert lang == "text" and i > 0 and kinds[i - 1][0] == "bash", body[:80]


def test_blocks_parse_and_use_existing_options():
    from fp8emu.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for lang, body, _ in blocks():
        if lang != "bash":
            continue
        proc = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert proc.returncode == 0, f"{body}\n{proc.stderr}"
        for cmd in re.findall(r"\bfp8emu (\w+)([^|;&\n]*)", body):
            sub, rest = cmd
            assert sub in subparsers, f"fp8emu {sub}: no such command"
            known = {o for a in subparsers[sub]._actions for o in a.option_strings}
            for opt in re.findall(r"(?<!\S)(--[\w-]+)", rest):
                assert opt in known, f"fp8emu {sub} has no option {opt}"


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("iverilog") and shutil.which("vvp") and shutil.which("cc")),
                    reason="needs Icarus Verilog (iverilog, vvp) and a C compiler (cc); .ci/run installs them")
def test_every_command_on_the_page_runs(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "fp8emu"  # `fp8emu` is this checkout's, whatever is installed
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fp8emu "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")  # the page's commands run from the checkout root
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    last = None
    for lang, body, is_output in blocks():
        if lang == "bash":
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", _reduce(body)], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=900)
            last = proc.stdout + proc.stderr
            assert proc.returncode == 0, f"this block failed (exit {proc.returncode}):\n{body}\n--- output:\n{last}"
        elif is_output:
            for line in body.splitlines():
                if line.strip() and "..." not in line:
                    assert line.rstrip() in last, f"the page shows {line!r}, which the command did not print:\n{last}"


def _property_examples() -> dict[str, str]:
    """The property-test examples users copy: the page's and fp8emu.testing's docstring."""
    import fp8emu.testing

    page = PAGE.read_text()
    block = next(b for b in re.findall(r"^```python\n(.*?)^```", page, re.M | re.S) if "@given" in b)
    doc = fp8emu.testing.__doc__
    code = doc[doc.index("::") + 2:doc.index("The strategies shrink")]
    lines = [ln[4:] if ln.startswith("    ") else ln for ln in code.splitlines()]
    return {"docs/verification.md": block, "fp8emu.testing": "\n".join(lines) + "\ntest_my_kernel()\n"}


@pytest.mark.slow
@pytest.mark.parametrize("where", ["docs/verification.md", "fp8emu.testing"])
def test_property_examples_work_as_written_on_a_cold_cache(tmp_path, where):
    """Run outside this suite (no hypothesis profile from conftest.py) with an empty Numba cache:
    the first call compiles, which the example's own settings must allow."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env.pop("HYPOTHESIS_PROFILE", None)
    proc = subprocess.run([sys.executable, "-c", _property_examples()[where]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if where.startswith("docs"):
        assert proc.stdout.count("found after") == 2, proc.stdout
