"""The committed reports under docs/results/ are what ``fp8emu report`` makes of the committed
metrics: the ``bash`` blocks of docs/reproduce.md marked ``<!-- docs-test: regenerate -->`` run as
written (``fp8emu`` is ``python -m fp8emu``) in a copy of docs/results/, and every committed
``report.md`` must come out again, byte for byte.  When the report's format changes, run those
commands in the repository root and commit the new reports."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
_REGEN = re.compile(r"<!-- docs-test: regenerate -->\s*\n```bash\n(?P<body>.*?)^```", re.M | re.S)


def regenerate_blocks() -> list[str]:
    return [m["body"] for m in _REGEN.finditer((ROOT / "docs" / "reproduce.md").read_text())]


def test_every_committed_report_is_regenerated_as_written(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("scipy")
    blocks = regenerate_blocks()
    assert blocks, "docs/reproduce.md has no <!-- docs-test: regenerate --> block"
    shutil.copytree(RESULTS, tmp_path / "docs" / "results")
    committed = sorted(p.relative_to(ROOT) for p in RESULTS.rglob("report.md"))
    for rel in committed:
        (tmp_path / rel).unlink()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg")
    script = f'fp8emu() {{ "{sys.executable}" -m fp8emu "$@"; }}\nset -e\n' + "\n".join(blocks)
    res = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    for rel in committed:
        assert (tmp_path / rel).exists(), f"no regenerate command in docs/reproduce.md writes {rel}"
        assert (tmp_path / rel).read_text() == (ROOT / rel).read_text(), f"{rel} differs from what its command makes"
