"""What the float32 quantize kernels compile to, per ISA: the loops of the prange body.

    python -m benchmarks.kernel_asm                       # host ISA and haswell (AVX2 only)
    python -m benchmarks.kernel_asm --isa haswell --dump /tmp/asm   # also write the .s files

Each ISA compiles in its own process (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` are read at
import; a fresh ``NUMBA_CACHE_DIR`` so that ``inspect_asm`` sees a compilation, not a cache
hit).  For ``_quantize_f32`` (RNE by one float32 addition, ``_quantize_f32_rne``; the integer
value kernel of every deterministic mode, ``_quantize_f32_int``) and ``_quantize_f32_sr`` (exact stochastic, the random word's
high half deciding: the kernel an array without tiny elements gets; ``_quantize_f32_sr_rbits``,
stochastic with ``sr_bits``), and encode's codes kernels of the first two (``_encode_f32_rne``,
``_encode_f32_sr``: the same rounding, then the code of the value), it lists every loop of
the parfor body (a backward jump): instructions, widest register, elements per iteration (the
induction step), and the instructions that tell the lane width: 64-bit shifts/multiplies
(``vpsllvq``, ``vpmullq``; AVX2 has no 64-bit multiply, so ``vpmuludq`` sequences), 64-bit
compares (``vpcmpgtq``: AVX2 has no ``vpmaxsq``), gathers, and stack reloads (spills).
No timing: this is the evidence behind docs/results/kernel-asm.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

from .timing import header

ISAS = {"host": {}, "haswell": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2"}}
#: name -> the expression (in the child, ``K`` is ``fp8emu._kernels``) of the compiled loop: the
#: float32 quantize kernels for nearest_even and for exact SR deciding by the word's high half.
KERNELS = {"_quantize_f32_rne": "K._F32_VAL_FADD[True, True, K.SRC_F32]", "_quantize_f32_int": "K._F32_VAL[0, True, True, K.SRC_F32]",
           "_quantize_f32_sr": 'K._F32_VAL_SR["hi32", True, True, K.SRC_F32]',
           "_quantize_f32_sr_rbits": 'K._F32_VAL_SR["rbits", True, True, K.SRC_F32]',
           "_encode_f32_rne": "K._F32_CODES[0, True, True, True, K.SRC_F32]",
           "_encode_f32_sr": 'K._F32_CODES_SR["hi32", True, True, K.SRC_F32]'}
KEYS = ("vpmullq", "vpmuludq", "imulq", "vpsllvq", "vpsrlvq", "vpsllvd", "vpsrlvd", "vpsllq", "vpslld",
        "vpcmpgtq", "vpcmpgtd", "vpmovzxdq", "vpmovqd", "vextracti128", "vextracti64x4", "vpgatherdd",
        "vpgatherqq")

CHILD = r"""
import json, sys
import numpy as np
import fp8emu
from fp8emu import _kernels as K
from benchmarks.timing import numba_target
# calls of SERIAL_BELOW elements: smaller ones run the kernels' serial twins, which leaves the
# parallel kernels (whose loops are read here) uncompiled
x = np.ones(K.SERIAL_BELOW, np.float32)
fp8emu.quantize(x, "e5m2", out=np.empty_like(x))
fp8emu.quantize(x, "e5m2", rounding="stochastic", seed=1, out=np.empty_like(x))
fp8emu.quantize(x, "e5m2", rounding="stochastic", seed=1, sr_bits=8, out=np.empty_like(x))
fp8emu.encode(x, "e5m2")
fp8emu.encode(x, "e5m2", rounding="stochastic", seed=1)
# the integer value kernel of nearest_even (quantize takes it where the addition is not valid)
from fp8emu.quantize import _params_f32
from fp8emu.format import RoundMode
p = _params_f32(fp8emu.get_format("e5m2"), RoundMode.NEAREST_EVEN, False, 0, True, True)
K._F32_VAL[0, True, True, K.SRC_F32](x.view(np.uint32), np.empty(x.size, np.uint32), K.p32_array(p), np.uint64(0))
kernels = dict(zip(sys.argv[1::2], sys.argv[2::2]))
print(json.dumps({"target": numba_target(),
                  **{n: next(iter(eval(e).inspect_asm().values())) for n, e in kernels.items()}}))
"""


def compile_asm(isa: str, kernels: dict[str, str] | None = None) -> dict[str, str]:
    """Assembly of ``kernels`` (default :data:`KERNELS`) compiled for ``isa`` (a key of
    :data:`ISAS`) in a child process."""
    import json
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
        env.update(ISAS[isa], NUMBA_CACHE_DIR=cache)
        args = [x for kv in (KERNELS if kernels is None else kernels).items() for x in kv]
        res = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if res.returncode:
        raise RuntimeError(f"compiling for {isa} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _functions(asm: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = None
    for ln in asm.splitlines():
        m = re.match(r"^([_a-zA-Z][^\s:]*):", ln)
        if m:
            cur = m.group(1)
            out[cur] = []
        elif cur is not None:
            out[cur].append(ln)
    return out


def loops(asm: str) -> list[dict]:
    """The loops (backward jumps) of the parfor body function in ``asm``, innermost first per label."""
    funcs = {name: lines for name, lines in _functions(asm).items() if "numba_parfor_gufunc" in name}
    # the parfor body; LLVM sometimes inlines it into its __gufunc__ wrapper
    body = [lines for name, lines in funcs.items() if not name.startswith("__gufunc__")] or list(funcs.values())
    res = []
    for lines in body:
        labels = {m.group(1): n for n, ln in enumerate(lines) if (m := re.match(r"^(\.L\w+):", ln))}
        for n, ln in enumerate(lines):
            m = re.match(r"^\s+(j[a-z]+)\s+(\.L\w+)\s*$", ln)
            if not (m and m.group(2) in labels and labels[m.group(2)] <= n):
                continue
            ins = [x.strip() for x in lines[labels[m.group(2)]:n + 1] if re.match(r"^\s+[a-z]", x)]
            ops = collections.Counter(x.split()[0] for x in ins)
            width = next((w for w in ("zmm", "ymm", "xmm") if any(f"%{w}" in x for x in ins)), "scalar (GPR)")
            if width == "xmm" and not any(re.match(r"v?p", x) for x in ins):
                width = "scalar (GPR)"
            # the induction step: an immediate added to a register that the loop also compares
            cmp_regs = set(re.findall(r"%r\w+", " ".join(x for x in ins if x.startswith("cmpq"))))
            steps = [int(a.group(1)) for x in ins
                     if (a := re.match(r"addq\s+\$(\d+), (%r\w+)$", x)) and a.group(2) in cmp_regs]
            steps += [1 for x in ins if (a := re.match(r"incq\s+(%r\w+)$", x)) and a.group(1) in cmp_regs]
            res.append(dict(label=m.group(2), instructions=len(ins), width=width,
                            step=max(steps) if steps else None,
                            spills=sum(1 for x in ins if "(%rsp)" in x),
                            ops={k: ops[k] for k in KEYS if ops[k]}))
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", nargs="+", default=list(ISAS), choices=list(ISAS))
    ap.add_argument("--dump", default="", help="directory for the full assembly (<kernel>_<isa>.s)")
    args = ap.parse_args(argv)
    print(header())
    for isa in args.isa:
        asm = compile_asm(isa)
        print(f"\n=== {isa}: numba target {asm.pop('target')}")
        for name, text in asm.items():
            if args.dump:
                os.makedirs(args.dump, exist_ok=True)
                with open(os.path.join(args.dump, f"{name}_{isa}.s"), "w") as f:
                    f.write(text)
            print(f"{name}:")
            for lp in loops(text):
                # scalar blocks are not laid out contiguously: their step and size are not meaningful
                vector = lp["width"] in ("ymm", "zmm") and lp["step"] in (4, 8, 16, 32, 64)
                step = f"{lp['step']:3d}" if vector else "  -"
                per = f"{lp['instructions'] / lp['step']:5.1f} instr/el" if vector else "scalar/remainder"
                ops = ", ".join(f"{k} {v}" for k, v in lp["ops"].items())
                print(f"  loop {lp['label']:<8} {lp['instructions']:4d} instr, {lp['width']:<12} "
                      f"{step} el/iter ({per}), {lp['spills']:2d} stack refs; {ops}")


if __name__ == "__main__":
    main()
