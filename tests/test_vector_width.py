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
    "f16_sr": zmm(K._F32_VAL_SR["hi32", True, True, K.SRC_F16], (u16, u16, p32, numba.types.uint64, numba.types.uint32,
                                                               numba.types.boolean)),
}))
"""


def _compiled_in_child(code: str, cpu: str, cache) -> dict:
    """What ``code`` prints last (JSON), run in a child that compiles for an AVX-512 ``cpu``."""
    env = dict(os.environ, NUMBA_CPU_NAME=cpu,
               NUMBA_CPU_FEATURES="+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512cd,+avx2,+fma,+bmi2",
               NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_kernels_get_512_bit_code_on_a_cpu_tuned_for_256(tmp_path):
    """Skylake-SP, compiled (not run) in a child: LLVM's tuning there prefers 256-bit vectors, so
    only the marked loops get ``zmm`` code; a 16-bit array keeps the CPU's preference."""
    got = _compiled_in_child(CHILD, "skylake-avx512", tmp_path)
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


@pytest.mark.parametrize("index_bits, element_bits, cpu, scalar", [
    (64, 64, "znver3", True), (64, 8, "sapphirerapids", True), (64, 32, "rocketlake", True),
    (8, 16, "rocketlake", True), (16, 8, "skylake-avx512", True), (16, 16, "x86-64-v4", True),
    (32, 8, "emeraldrapids", False), (32, 16, "rocketlake", False),
    (8, 16, "znver3", False), (16, 16, "znver4", False), (8, 32, "rocketlake", False),
    (32, 32, "skylake-avx512", False), (16, 64, "emeraldrapids", False), (32, 8, "znver5", False)])
def test_gather_rule(index_bits, element_bits, cpu, scalar):
    """Lookups by 64-bit indices stay scalar everywhere; of 8- or 16-bit elements by 8- or
    16-bit indices on CPUs other than AMD's; the others keep vector gathers."""
    assert vw._scalar_gathers(index_bits, element_bits, cpu) is scalar


GATHER_CHILD = r"""
import json, numba
from fp8emu import _kernels as K
u8, u16, u32, u64, f32, f64 = (numba.types.Array(getattr(numba.types, t), 1, "C")
                               for t in ("uint8", "uint16", "uint32", "uint64", "float32", "float64"))

def probe(dispatcher, sig):
    dispatcher.compile(sig)                     # compiled, never run: the host may lack AVX-512
    s = dispatcher.signatures[-1]
    asm = dispatcher.inspect_asm(s)
    return {"scalar": "noimplicitfloat" in dispatcher.inspect_llvm(s),
            "vector_gather": asm.count("gather") + asm.count("vpinsr")}

print(json.dumps({
    "decode_u8_u16": probe(K._decode, (u8, u16, u16)), "decode_u8_f32": probe(K._decode, (u8, f32, f32)),
    "decode_u16_u8": probe(K._decode, (u16, u8, u8)),
    "f64_lookup": probe(K._lookup_sticky_kernel(49, 64), (u64, f64, f64)),
    "f64_lookup_codes": probe(K._lookup_sticky_kernel(49, 64), (u64, u8, u8)),
    "f32_lookup": probe(K._lookup_sticky_kernel(19, 32), (u32, u32, u32)),
    "f32_lookup_codes": probe(K._lookup_sticky_kernel(19, 32), (u32, u8, u8)),
}))
"""


@pytest.mark.parametrize("cpu", ["skylake-avx512", "znver4"])
def test_lookup_kernels_keep_gathers_scalar_by_the_rule(cpu, tmp_path):
    """The table lookups (``_decode``, the class lookups), compiled (not run) in a child for an
    Intel and an AMD AVX-512 CPU: the loops the rule keeps scalar carry ``noimplicitfloat`` and
    have no vector gather (nor its ``vpinsr`` emulation); the others keep theirs."""
    got = _compiled_in_child(GATHER_CHILD, cpu, tmp_path)
    narrow_scalar = not cpu.startswith("znver")
    want = {"decode_u8_u16": narrow_scalar, "decode_u8_f32": False, "decode_u16_u8": narrow_scalar,
            "f64_lookup": True, "f64_lookup_codes": True, "f32_lookup": False, "f32_lookup_codes": False}
    for name, scalar in want.items():
        assert got[name]["scalar"] is scalar, (name, got)
        assert (got[name]["vector_gather"] == 0) is scalar, (name, got)
