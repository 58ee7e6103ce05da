"""The package and its docs stand on their own: no citations of files a user does not have."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the project's design notes live outside the repository; users only get the package and docs/
_OUTSIDE = re.compile(r"SPEC\.md|SPEC §|\.\./shared|/work/shared")


def test_package_and_docs_cite_nothing_outside_the_repository():
    files = [*(ROOT / "fp8emu").rglob("*.py"), *(ROOT / "docs").rglob("*.md"), ROOT / "README.md",
             ROOT / "mkdocs.yml"]
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1) if _OUTSIDE.search(line)]
    assert not hits, "cites files outside the repository (write what users need into docs/spec.md):\n" + "\n".join(hits)
