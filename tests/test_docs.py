"""The documentation: every ``python`` code block in docs/*.md runs, the generated pages are
up to date, and (when MkDocs is installed) the site builds with ``--strict``.

Code blocks of one page run in order in one namespace, in a temporary working directory, so a
page can build on its earlier blocks.  A block preceded by ``<!-- docs-test: skip -->`` is
shown but not run (use it only for commands that need a device or a long run).  A block that
is not valid Python and holds signature lines (``name(args) -> result``, as in design.md's
contracts) or ``...`` elisions is a listing, not an example, and is not run either.

Every block must run as written, on its own: a block that uses a name it neither defines nor
imports (``model(Tensor(x))`` with no ``x``), even one an earlier block defined, fails,
because a reader copies one block, not the page.  Only walkthrough pages (``WALKTHROUGHS``,
whose commands have their own test) may build on earlier blocks; there a *fragment* (a block
using names its page never defines) is still checked: it must compile, its imports must
succeed, and every attribute it reads from an imported module must exist;
``test_fragments_are_listed`` prints the fragments.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import pathlib
import types
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"(?P<skip><!-- docs-test: skip -->\s*\n)?^```python[^\n]*\n(?P<body>.*?)^```", re.M | re.S)


def _is_signature_listing(body: str) -> bool:
    """Signature lines (``name(args) -> result``) and pseudo-code with ``...`` elisions are not
    Python: a listing, not an example.  Any other block that does not compile is a broken example."""
    try:
        compile(body, "<block>", "exec")
    except SyntaxError:
        return "->" in body or "..." in body
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


def free_names(body: str, defined) -> set[str]:
    """Names a block reads that neither it, the earlier blocks (``defined``) nor builtins bind."""
    tree = ast.parse(body)
    bound = set(defined) | set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loads - bound


def _check_fragment(body: str, namespace: dict, where: str) -> None:
    """Run a fragment's imports, then resolve every ``module.attr...`` chain it reads."""
    tree = ast.parse(body)
    imports = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    exec(compile(imports, where, "exec"), namespace)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or not isinstance(namespace.get(base.id), (types.ModuleType, type)):
            continue
        obj = namespace[base.id]
        for attr in reversed(chain):
            assert hasattr(obj, attr), f"{where}: {base.id}.{'.'.join(reversed(chain))} does not exist"
            obj = getattr(obj, attr)
            if not isinstance(obj, (types.ModuleType, type)):
                break


#: Pages whose blocks may build on the names of earlier blocks (and fragments are only checked):
#: verification.md is a walkthrough whose commands its own test (test_docs_verification.py) runs.
WALKTHROUGHS = ("verification.md",)


def _run_page(page: pathlib.Path) -> list[str]:
    """Run every block of a page; return the fragments' locations.

    Outside :data:`WALKTHROUGHS` a block must run as written, on its own: it may not use a
    name that only an earlier block defines (a reader copies one block, not the page).
    """
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    fragments = []
    standalone = page.name not in WALKTHROUGHS
    for i, body in enumerate(code_blocks(page.read_text())):
        where = f"{page.relative_to(ROOT)}[block {i}]"
        own = free_names(body, {}) if standalone else set()
        assert not own, f"{where} uses {', '.join(sorted(own))} without defining or importing it:\n{body}"
        try:
            free = free_names(body, namespace)
            if free:
                fragments.append(f"{where}: uses {', '.join(sorted(free))}")
                _check_fragment(body, namespace, where)
            else:
                exec(compile(body, where, "exec"), namespace)
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"{where} failed:\n{body}") from exc
    return fragments


def test_free_names_and_fragment_check():
    assert free_names("import numpy as np\ny = np.ones(3) + x\nfor i in y: print(i)", {}) == {"x"}
    assert free_names("def f(a):\n    return a\nz = [k for k in range(3)]", {}) == set()
    ns: dict = {}
    _check_fragment("import fp8emu\ny = fp8emu.encode(x, 'e5m2')", ns, "ok")
    with pytest.raises(AssertionError, match="does not exist"):
        _check_fragment("import fp8emu\ny = fp8emu.encode_renamed(x)", {}, "renamed")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_page(page)


def test_fragments_are_listed(tmp_path, monkeypatch, capsys):
    """Informational: the blocks that are checked as fragments rather than run (see the module doc)."""
    monkeypatch.chdir(tmp_path)
    found = [f for page in _pages() for f in _run_page(page)]
    with capsys.disabled():
        if found:
            print("\ndocs fragments (checked, not run):\n  " + "\n  ".join(found))


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
