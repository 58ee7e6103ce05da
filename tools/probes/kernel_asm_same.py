"""Whether two checkouts compile the float32 SR kernels to the same machine code.

For refactors that must not change the kernels (only how Numba gets there, e.g. its compile
time): each checkout runs in its own process with a fresh Numba cache, makes the public calls
that compile the SR value and codes kernels (float32 and float16 inputs, exact and r-bit SR,
quantize and encode), and writes each compiled signature's assembly with the symbol names and
labels normalised.  Prints ``same`` or the first differing lines per kernel, and the seconds
each checkout took to compile.

    python tools/probes/kernel_asm_same.py --base /path/to/checkout-of-main [--head .]

Used for 53a35c7 (the SR kernels' element split by output): every kernel the same but one
string constant's length (a symbol name in an error message).
"""

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
import time

_DUMP = r'''
import hashlib, os, re, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, fp8emu
from fp8emu import _kernels as K
outdir = sys.argv[2]
x = np.random.default_rng(0).standard_normal(1 << 12).astype(np.float32)
for arr in (x, x.astype(np.float16)):
    fp8emu.quantize(arr, "e5m2", rounding="stochastic", seed=1)
    fp8emu.quantize(arr, "e4m3fn", rounding="stochastic", seed=1, sr_bits=8)
    fp8emu.encode(arr, "e5m2", rounding="stochastic", seed=1)
    fp8emu.encode(arr, "e4m3fn", rounding="stochastic", seed=1, sr_bits=8)
for table in ("_F32_CODES_SR", "_F32_VAL_SR"):
    for key, kern in getattr(K, table).items():
        for sig, asm in kern.inspect_asm().items():
            lines = []
            for line in asm.splitlines():
                line = re.sub(r"_ZN[\w$.]+", "SYM", line)
                line = re.sub(r"\.L\w+", "LBL", line)
                if not line.strip().startswith((".file", ".ident", ".section", "#")):
                    lines.append(line)
            name = table + "-" + "-".join(map(str, key)) + "-" + hashlib.md5(str(sig).encode()).hexdigest()[:8]
            with open(os.path.join(outdir, name + ".s"), "w") as f:
                f.write("\n".join(lines))
'''


def _dump(tree: str, outdir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="asm-same-cache-"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _DUMP, os.path.abspath(tree), outdir], check=True, env=env)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="checkout to compare against")
    ap.add_argument("--head", default=".", help="checkout under test (default: this one)")
    args = ap.parse_args()
    dirs = {}
    for label, tree in (("base", args.base), ("head", args.head)):
        dirs[label] = tempfile.mkdtemp(prefix=f"asm-{label}-")
        print(f"{label}: {tree}: compiled in {_dump(tree, dirs[label]):.1f} s")
    names = sorted(set(os.listdir(dirs["base"])) | set(os.listdir(dirs["head"])))
    differ = 0
    for name in names:
        texts = []
        for label in ("base", "head"):
            path = os.path.join(dirs[label], name)
            texts.append(open(path).read().splitlines() if os.path.exists(path) else None)
        if texts[0] == texts[1]:
            print(f"same  {name} ({len(texts[0])} lines)")
            continue
        differ += 1
        print(f"DIFF  {name}")
        if None in texts:
            print("      only in", "head" if texts[0] is None else "base")
            continue
        for line in list(difflib.unified_diff(texts[0], texts[1], lineterm="", n=0))[2:10]:
            print("      " + line)
    print(f"{len(names) - differ} of {len(names)} kernels the same")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
