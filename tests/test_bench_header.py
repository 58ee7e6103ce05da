"""The hardware header every benchmark prints (benchmarks/timing.py): CPU, Numba's ISA, NumPy's BLAS."""

from __future__ import annotations

import os
import pathlib
import platform
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import timing

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("features, isa", [
    ("+avx512f,+avx2,+avx,+sse4.2", "AVX-512"),
    ("-avx512f,+avx2,+avx,+sse4.2", "AVX2"),       # the host list names disabled features with '-'
    ("+avx,-avx2,-avx512f", "AVX"),
    ("+sse4.2,-avx", "SSE4.2"),
    ("+neon", "NEON"),
    ("-avx512f,-avx2", ""),
    ("", ""),
])
def test_isa_summary_names_the_widest_enabled_extension(features, isa):
    assert timing._isa_summary(features) == isa


def test_numba_target_follows_numba_config(monkeypatch):
    from numba.core import config
    monkeypatch.setattr(config, "CPU_NAME", "haswell")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-avx512f")
    assert timing.numba_target() == "haswell (NUMBA_CPU_NAME), features NUMBA_CPU_FEATURES=+avx2,-avx512f: AVX2"
    monkeypatch.setattr(config, "CPU_FEATURES", "")
    assert timing.numba_target().endswith("NUMBA_CPU_FEATURES=(empty): whatever haswell implies")
    # a CPU name alone keeps the host's feature list (what Numba's codegen passes to LLVM)
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    import llvmlite.binding as ll
    host = timing._isa_summary(ll.get_host_cpu_features().flatten()) or "no x86 vector extension"
    assert timing.numba_target() == f"haswell (NUMBA_CPU_NAME), features host: {host}"
    monkeypatch.setattr(config, "CPU_NAME", None)
    assert timing.numba_target().startswith(f"{ll.get_host_cpu_name()} (host), features host: ")


def test_numba_target_reads_the_environment_in_a_fresh_process():
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="+avx2")
    out = subprocess.run([sys.executable, "-c", "from benchmarks.timing import numba_target; print(numba_target())"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "haswell (NUMBA_CPU_NAME), features NUMBA_CPU_FEATURES=+avx2: AVX2"


def test_blas_info_names_numpys_blas_and_its_runtime_kernel():
    info = timing.blas_info()
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    assert info.startswith(f"{blas['name']} {blas['version']}".strip())
    core = timing._openblas_corename()
    if "openblas" in blas["name"].lower() and sys.platform.startswith("linux"):
        assert core, "NumPy links OpenBLAS but openblas_get_corename was not found"
        assert f", kernel {core}" in info
        # fp8emu is imported here, so OpenBLAS holds its timeout (or the user's own)
        want = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "4") or 28)
        assert f", idle workers spin 2^{min(max(want, 4), 30)} cycles, kernel " in info
    else:
        assert ", kernel unknown" in info or core


def _blas_info_in_a_fresh_process(**env_vars):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", "from benchmarks.timing import blas_info; print(blas_info())"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_blas_info_says_when_the_environment_forces_openblas_kernel():
    """A forced kernel (some hosts set OPENBLAS_CORETYPE=Haswell on AVX-512 CPUs) is named as such."""
    if "openblas" not in timing.blas_info().lower() or not sys.platform.startswith("linux") \
            or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("OpenBLAS kernel names are checked on x86-64 Linux only")
    free = _blas_info_in_a_fresh_process()
    assert "set by the environment" not in free
    forced = _blas_info_in_a_fresh_process(OPENBLAS_CORETYPE="Haswell")
    assert forced.endswith(", kernel Haswell (set by the environment: OPENBLAS_CORETYPE=Haswell)")


def test_cpu_model_is_the_cpuinfo_model_name():
    model = timing.cpu_model()
    assert model and "\n" not in model
    if os.path.exists("/proc/cpuinfo"):
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.lower().startswith("model name")]
        if names:
            assert model.startswith(names[0])
            fam = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.lower().startswith("cpu family")]
            if fam:                               # x86: "(family F model M)" follows the name
                assert f"(family {fam[0]} model " in model and model.endswith(")")


def test_header_has_the_three_hardware_lines():
    lines = timing.header().splitlines()
    assert [ln.split(":")[0] for ln in lines[1:]] == ["# cpu", "# numba target", "# blas"]
    assert lines[0].startswith("# python ")
    assert lines[2] == f"# numba target: {timing.numba_target()}"


def test_every_benchmark_script_prints_the_header():
    skip = {"__init__", "timing", "run_all"}   # run_all runs the others, each printing its own header
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in skip)
    assert len(scripts) >= 7
    missing = [p.name for p in scripts if "header()" not in p.read_text()]
    assert not missing, f"benchmarks without the hardware header: {missing}"


ASM = """\
\t.text
_ZN6fp8emu8_kernels13_quantize_f32Ex:
\tretq
_ZN13_3cdynamic_3e36__numba_parfor_gufunc_0x1Ex:
\tmovq\t%rdi, %rax
.LBB4_3:
\tvmovdqu\t(%rsi,%rdx,4), %ymm0
\tvpsllvq\t%ymm1, %ymm0, %ymm0
\tvmovdqu\t32(%rsp), %ymm2
\tvpmuludq\t%ymm2, %ymm0, %ymm0
\tvmovdqu\t%ymm0, (%rdi,%rdx,4)
\taddq\t$8, %rdx
\tcmpq\t%rdx, %rcx
\tjne\t.LBB4_3
.LBB4_5:
\tmovl\t(%rsi,%rdx,4), %eax
\tincq\t%rdx
\tcmpq\t%rdx, %rcx
\tjne\t.LBB4_5
\tretq
__gufunc__._ZN13_3cdynamic_3e36__numba_parfor_gufunc_0x1Ex:
.LBB9_1:
\tvpsllvq\t%zmm1, %zmm0, %zmm0
\tjne\t.LBB9_1
"""


def test_kernel_asm_finds_the_parfor_body_loops():
    from benchmarks.kernel_asm import loops
    found = loops(ASM)   # the __gufunc__ wrapper and the outer function are not the body
    assert [(lp["label"], lp["width"], lp["step"], lp["instructions"], lp["spills"]) for lp in found] == [
        (".LBB4_3", "ymm", 8, 8, 1), (".LBB4_5", "scalar (GPR)", 1, 4, 0)]
    assert found[0]["ops"] == {"vpsllvq": 1, "vpmuludq": 1}


def test_run_all_keeps_the_hand_recorded_sections(tmp_path):
    """A new summary replaces the generated part and keeps what follows the marker, atomically."""
    from benchmarks import run_all
    path = tmp_path / "benchmarks.md"
    path.write_text(f"# Benchmark results\nold run\n\n{run_all.HAND_MARKER}\n## before/after by hand\nkept\n")
    run_all.write_summary(path, "# Benchmark results\nnew run\n")
    text = path.read_text()
    assert "old run" not in text and text.startswith("# Benchmark results\nnew run\n")
    assert text.endswith(f"{run_all.HAND_MARKER}\n## before/after by hand\nkept\n")
    assert [p.name for p in tmp_path.iterdir()] == ["benchmarks.md"]       # no temporary left
    fresh = tmp_path / "fresh.md"
    run_all.write_summary(fresh, "# only generated\n")
    assert fresh.read_text() == "# only generated\n"


def test_run_all_skips_benchmarks_that_need_arguments(tmp_path, monkeypatch, capsys):
    """A full run lists ``quantize_ab`` (it needs ``--base``) as skipped instead of failing on it;
    asking for it alone without its arguments is a usage error naming them."""
    from benchmarks import run_all
    ran = []
    monkeypatch.setattr(run_all, "discover", lambda: {"quantize_ab": ROOT / "benchmarks" / "quantize_ab.py",
                                                      "sr_floor": ROOT / "benchmarks" / "sr_floor.py"})
    monkeypatch.setattr(run_all, "run_one", lambda path, timeout, extra=None: ran.append((path.stem, extra)) or
                        {"status": 0, "seconds": 1.0, "output": "x 2.0x vs y\n", "command": path.stem})
    out = tmp_path / "summary.md"
    assert run_all.main(["--out", str(out)]) == 0
    assert ran == [("sr_floor", None)]
    text = out.read_text()
    assert "| `quantize_ab` | `python -m benchmarks.quantize_ab --base <root of another checkout>` | skipped" in text
    ran.clear()
    assert run_all.main(["--out", str(out), "--args", "quantize_ab=--base /x"]) == 0
    assert ran == [("quantize_ab", ["--base", "/x"]), ("sr_floor", None)]
    with pytest.raises(SystemExit):
        run_all.main(["--only", "quantize_ab", "--out", str(out)])
    assert "quantize_ab needs arguments: --args quantize_ab=\"--base" in capsys.readouterr().err
