"""fp8emu._vector_width: the per-kernel 512-bit preference reaches LLVM, follows its rule, and
every parallel loop of the rounding kernels asks for it."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest
from llvmlite import ir

from fp8emu import _vector_width as vw

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mark_puts_the_attribute_into_the_functions_ir():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "kernel")
    ir.IRBuilder(fn.append_basic_block()).ret_void()
    assert vw._mark(fn)
    define = next(line for line in str(module).splitlines() if line.startswith("define"))
    assert vw.VECTOR_WIDTH_ATTRIBUTE in define


def test_mark_does_nothing_where_attributes_are_not_a_set():
    class Other:
        attributes = ("noinline",)
    assert not vw._mark(Other())


@pytest.mark.parametrize("widths, wanted", [((32, 32), True), ((64, 8), True), ((8, 32), True),
                                            ((16, 32), False), ((32, 16), False), ((16, 16), False)])
def test_rule_no_16_bit_array(widths, wanted):
    from numba import types
    arrays = [types.Array(getattr(types, f"uint{w}"), 1, "C")
              for w in widths]
    assert vw._wants_512(arrays) is wanted


CHILD = r"""
import json, numpy as np, numba
from numba import njit, prange
from fp8emu import _kernels as K
from fp8emu._vector_width import prefer_512_bit_vectors, prefer_512_bit_vectors_converting

@njit(parallel=True)
def converting(bits, out):
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors_converting(bits, out)
        out[i] = (bits[i] + (bits[i] >> 3)) & 0x7FFF

@njit(parallel=True)
def marked(bits, out):
    for i in prange(bits.shape[0]):
        prefer_512_bit_vectors(bits, out)
        out[i] = (bits[i] + (bits[i] >> 3)) & 0x7FFFF

@njit(parallel=True)
def plain(bits, out):
    for i in prange(bits.shape[0]):
        out[i] = (bits[i] + (bits[i] >> 3)) & 0x7FFFF

def zmm(dispatcher, sig):
    dispatcher.compile(sig)                     # compiled, never run: the host may lack AVX-512
    return dispatcher.inspect_asm(dispatcher.signatures[-1]).count("zmm")

u32 = numba.types.uint32[::1]
u16 = numba.types.uint16[::1]
p32 = numba.types.Array(numba.types.int32, 1, "C", readonly=True)      # K.p32_array
print(json.dumps({
    "marked": zmm(marked, (u32, u32)), "plain": zmm(plain, (u32, u32)),
    "marked_u16": zmm(marked, (u16, u16)), "min_f32_mag": zmm(K._min_f32_mag, (u32,)),
    "converting_u16": zmm(converting, (u16, u16)),
    "f16_sr": zmm(K._F32_VAL_SR["hi32", True, True, K.SRC_F16], (u16, u16, p32, numba.types.uint64, numba.types.uint32)),
}))
"""


def test_kernels_get_512_bit_code_on_a_cpu_tuned_for_256(tmp_path):
    """Skylake-SP, compiled (not run) in a child: LLVM's tuning there prefers 256-bit vectors, so
    only the marked loops get ``zmm`` code; a 16-bit array keeps the CPU's preference."""
    env = dict(os.environ, NUMBA_CPU_NAME="skylake-avx512",
               NUMBA_CPU_FEATURES="+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512cd,+avx2,+fma,+bmi2",
               NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["plain"] == 0, got            # the tuning this module overrides is in force
    assert got["marked"] > 0, got
    assert got["marked_u16"] == 0, got
    assert got["min_f32_mag"] > 0, got      # one of fp8emu's own kernels
    assert got["converting_u16"] > 0, got   # the converting variant marks 16-bit loops too
    assert got["f16_sr"] > 0, got           # float16 stochastic rounding, converted in the loop


def test_every_parallel_loop_of_the_rounding_kernels_asks_for_it():
    """Each ``prange`` loop of fp8emu/_kernels.py starts with ``prefer_512_bit_vectors(a, b)``
    (or its ``_converting`` variant) on two of the kernel's arrays."""
    tree = ast.parse((ROOT / "fp8emu" / "_kernels.py").read_text())
    loops = [node for node in ast.walk(tree) if isinstance(node, ast.For)
             and isinstance(node.iter, ast.Call) and getattr(node.iter.func, "id", "") == "prange"]
    assert len(loops) >= 15
    for loop in loops:
        first = loop.body[0]
        call = first.value if isinstance(first, ast.Expr) else None
        assert isinstance(call, ast.Call) and getattr(call.func, "id", "") in (
            "prefer_512_bit_vectors", "prefer_512_bit_vectors_converting"), \
            f"prange loop at line {loop.lineno} does not start with prefer_512_bit_vectors"
        assert len(call.args) == 2 and all(isinstance(a, ast.Name) for a in call.args), loop.lineno


@pytest.mark.parametrize("isa", ["host", "haswell"])
def test_r_bit_stochastic_rounding_compares_in_32_bit_lanes(isa):
    """The float32 value kernel of ``sr_bits`` SR keeps its comparison in 32-bit lanes: its
    vector loops have no 64-bit variable shift, compare or widening (the random word's hash is
    64-bit; what follows its high half is not).  The shifted form of the comparison compiled
    to ``vpsrlvq``/``vpcmpgtq``/``vpmovzxdq`` and ran 10 % slower."""
    from benchmarks.kernel_asm import compile_asm, loops
    asm = compile_asm(isa, {"rbits": 'K._F32_VAL_SR["rbits", True, True, K.SRC_F32]'})["rbits"]
    vector = [lp for lp in loops(asm) if lp["width"] in ("ymm", "zmm") and lp["step"] in (8, 16, 32, 64)]
    assert vector, "no vector loop found"
    for lp in vector:
        wide = {op: n for op, n in lp["ops"].items() if op in ("vpsrlvq", "vpcmpgtq", "vpmovzxdq")}
        assert not wide, (isa, lp["label"], wide)
