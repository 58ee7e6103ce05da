"""The documentation: every ``python`` code block in docs/*.md runs, the generated pages are
up to date, and (when MkDocs is installed) the site builds with ``--strict``.

Code blocks of one page run in order in one namespace, in a temporary working directory, so a
page can build on its earlier blocks.  A block preceded by ``<!-- docs-test: skip -->`` is
shown but not run (use it only for commands that need a device or a long run).  A block made
of signature lines (``name(args) -> result``, not valid Python, as in design.md's contracts)
is a listing, not an example, and is not run either.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"(?P<skip><!-- docs-test: skip -->\s*\n)?^```python[^\n]*\n(?P<body>.*?)^```", re.M | re.S)


def _is_signature_listing(body: str) -> bool:
    """Signature lines (``name(args) -> result``) are not Python: a listing, not an example."""
    try:
        compile(body, "<block>", "exec")
    except SyntaxError:
        return "->" in body
    return False


def _pages() -> list[pathlib.Path]:
    return sorted(p for p in DOCS.rglob("*.md") if _BLOCK.search(p.read_text()))


def code_blocks(text: str) -> list[str]:
    """The runnable ``python`` blocks of a Markdown page, in order."""
    return [m["body"] for m in _BLOCK.finditer(text) if not m["skip"] and not _is_signature_listing(m["body"])]


def test_code_blocks_are_found():
    text = ("a\n```python\nx = 1\n```\n<!-- docs-test: skip -->\n```python\nboom()\n```\n```bash\nls\n```\n"
            "```python\nf(a, *, b=1) -> int\ng(x) -> y  # note\n```\n```python\nf(1)\n```\n")
    assert code_blocks(text) == ["x = 1\n", "f(1)\n"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, body in enumerate(code_blocks(page.read_text())):
        try:
            exec(compile(body, f"{page.relative_to(ROOT)}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"{page.relative_to(ROOT)}, python block {i} failed:\n{body}") from exc


def test_formats_page_is_generated_and_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (DOCS / "formats.md").read_text() == gen.formats_md(), \
        "docs/formats.md is stale: run `python tools/gen_docs.py`"


def test_every_preset_in_the_formats_table():
    from fp8emu.formats import ALL_FORMATS
    text = (DOCS / "formats.md").read_text()
    for fmt in ALL_FORMATS:
        assert text.count(f"| `{fmt.name}` |") == 2, fmt.name


def test_nav_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.M))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed <= on_disk, f"nav names missing pages: {sorted(listed - on_disk)}"
    assert on_disk <= listed, f"pages not in the nav: {sorted(on_disk - listed)}"


@pytest.mark.skipif(shutil.which("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
                    reason="mkdocs / mkdocstrings not installed (pip install -e .[docs])")
def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
