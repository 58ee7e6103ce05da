"""The one-way data flow of docs/design.md, checked on the import graph of the package."""

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "fp8emu"

# module (dotted, relative to fp8emu) -> layer number; a module may import only layers <= its own,
# except the verification toolkit (6), which must not import the training stack (5's apps) and vice versa.
LAYERS = {
    "format": 1, "formats": 1, "_checks": 1, "_blas": 1,
    "spec": 2, "_random": 2, "_bitcast": 2, "_half": 2, "_vector_width": 2, "_prefetch": 2, "_kernels": 2, "quantize": 2, "_cuda_kernels": 2, "_cuda_launch": 2, "cuda": 2,
    "accumulators": 3, "gemm": 3, "conv": 3, "scaling": 3,
    "autograd": 4,
    "nn": 5, "optim": 5, "loss_scale": 5, "recipes": 5, "stats": 5,
    "data": 6, "checkpoint": 6, "train": 6, "report": 6, "seedstats": 6, "sweep": 6, "cluster": 6, "cli": 7, "__main__": 7,
    "verify": 6, "testing": 6,
    "torch": 6,
}


def _layer_of(dotted: str) -> int | None:
    head = dotted.split(".")[0]
    return LAYERS.get(head)


def _internal_imports(path: pathlib.Path) -> list[str]:
    rel = path.relative_to(PKG).with_suffix("")
    package_parts = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("fp8emu."):
                    found.append(node.module[len("fp8emu."):])
                continue
            base = package_parts[: len(package_parts) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            if target:
                found.append(target)
            else:  # "from . import x"
                found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fp8emu."):
                    found.append(alias.name[len("fp8emu."):])
    return found


MODULES = [p for p in sorted(PKG.rglob("*.py")) if p.name != "__init__.py" or p.parent != PKG]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_flow_one_way(path):
    own = _layer_of(".".join(path.relative_to(PKG).with_suffix("").parts))
    assert own is not None, f"{path.relative_to(PKG)} is in no layer: add it to LAYERS and docs/design.md"
    for target in _internal_imports(path):
        layer = _layer_of(target)
        assert layer is not None, f"{path.relative_to(PKG)} imports fp8emu.{target}, which is in no layer"
        assert layer <= own, (f"{path.relative_to(PKG)} (layer {own}) imports fp8emu.{target} "
                              f"(layer {layer}): data flows one way")
        if own == 6 and layer == 6 and target.split(".")[0] != "cluster":  # Dask plumbing serves both sides
            side = lambda m: m.split(".")[0] in ("verify", "testing")  # noqa: E731
            mod = ".".join(path.relative_to(PKG).with_suffix("").parts)
            assert side(mod) == side(target), f"{mod} and fp8emu.{target}: training and verification stay apart"


def test_design_doc_states_these_layers():
    """docs/design.md's table names every layer's modules with the numbers used here."""
    import re
    table = (PKG.parent / "docs" / "design.md").read_text().split("## Contracts")[0]
    stated = {}
    for row in re.finditer(r"^\| (\d) [^|]*\| ([^|]*)\|", table, re.M):
        for name in re.findall(r"`([A-Za-z_]+)(?:\.py|/)`", row[2]):
            if (PKG / f"{name}.py").exists() or (PKG / name).is_dir():   # top-level modules, not submodules
                stated[name] = int(row[1])
    assert stated == LAYERS, f"docs/design.md says {stated}, tests/test_layering.py says {LAYERS}"


#: Known exceptions, to be removed: (importing module, source module) -> why.
PRIVATE_IMPORT_EXCEPTIONS: dict[tuple[str, str], str] = {}


def test_no_private_names_imported_across_modules():
    """A module uses another module's private names only where that module exports them (``__all__``,
    as the kernel modules do for their wrappers): otherwise the rule it relies on is not an interface."""
    import importlib
    problems = []
    for path in MODULES:
        rel = path.relative_to(PKG).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = list(rel.parts[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = package[: len(package) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if not private or not source or (mod, source) in PRIVATE_IMPORT_EXCEPTIONS:
                continue
            exported = getattr(importlib.import_module(f"fp8emu.{source}"), "__all__", ())
            submodules = [n for n in private if (PKG / source.replace(".", "/") / f"{n}.py").exists()]
            bad = [n for n in private if n not in exported and n not in submodules]
            if bad:
                problems.append(f"{mod} imports {', '.join(bad)} from fp8emu.{source}")
    assert not problems, "\n".join(problems)


def test_package_never_imports_tests_or_benchmarks():
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        for bad in ("import tests", "from tests", "import benchmarks", "from benchmarks"):
            assert bad not in text, f"{path.relative_to(PKG)}: {bad!r}"
