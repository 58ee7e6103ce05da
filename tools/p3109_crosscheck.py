"""Write docs/results/p3109-gfloat.md: fp8emu vs gfloat on all 132 P3109 formats.

Usage: ``python tools/p3109_crosscheck.py`` (needs gfloat, from the test extra).
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from p3109_gfloat import FORMATS, compare_format, table_markdown  # noqa: E402

OUT = ROOT / "docs" / "results" / "p3109-gfloat.md"


def main() -> int:
    rows = [compare_format(*f) for f in FORMATS]
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(table_markdown(rows))
    os.replace(tmp, OUT)          # atomic: never a half-written page
    bad = sum(r["decode_diff"] + r["encode_diff"] for r in rows)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rows)} formats, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
