"""NumPy imported before fp8emu: what OpenBLAS's spin timeout is worth, in fresh interpreters.

    python tools/probes/import_order.py [--rounds 3] [--shape 32768 1152 128] [--train-width 16]

Each round starts two child processes that both import NumPy first.  "restart": then fp8emu,
which has NumPy's OpenBLAS re-read ``OPENBLAS_THREAD_TIMEOUT`` and restart its workers
(``fp8emu._blas.apply_spin_timeout``).  "spinning": the same, but with a second Python thread
alive during the import, which makes fp8emu leave OpenBLAS alone (the documented rule), so its
idle workers spin for 2^28 cycles after each call as before.  Each child times
``np.matmul(out=)`` and ``fp8emu.matmul`` with e5m2 operands (``out=``) in interleaved rounds,
and with ``--train-width`` a ResNet-18 paper-e5m2 training step (batch 64).  Prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, threading, time, statistics
import numpy as np
mode, m, k, n, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
stop = threading.Event()
if mode == "spinning":
    t = threading.Thread(target=stop.wait); t.start()
import fp8emu
from fp8emu._blas import spin_timeout
stop.set()
rng = np.random.default_rng(1)
a = rng.standard_normal((m, k), dtype=np.float32); b = rng.standard_normal((k, n), dtype=np.float32)
out = np.empty((m, n), np.float32)
cases = {"np": lambda: np.matmul(a, b, out=out),
         "e5m2": lambda: fp8emu.matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", out=out)}
for f in cases.values(): f()
times = {c: [] for c in cases}
for _ in range(9):
    for c, f in cases.items():
        t0 = time.perf_counter(); f(); times[c].append(time.perf_counter() - t0)
res = {"timeout": spin_timeout(), "spin_set": fp8emu._OPENBLAS_SPIN_SET,
       **{c: statistics.median(v) for c, v in times.items()}}
if width:
    from fp8emu import nn
    from fp8emu.autograd import Tensor, ops
    from fp8emu.recipes import get_recipe
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32); y = rng.integers(0, 10, 64)
    nn.manual_seed(0)
    model = nn.resnet18(num_classes=10, width=width, cifar_stem=True)
    r = get_recipe("paper-e5m2"); r.apply(model)
    opt = r.make_optimizer(model.parameters(), lr=0.05, momentum=0.9); scaler = r.make_scaler()
    def step():
        loss = ops.cross_entropy(model(Tensor(x)), y); scaler.scale(loss).backward(); scaler.step(opt); opt.zero_grad()
    for _ in range(2): step()
    st = []
    for _ in range(7):
        t0 = time.perf_counter(); step(); st.append(time.perf_counter() - t0)
    res["step"] = statistics.median(st)
print(json.dumps(res))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=3, default=(32768, 1152, 128))
    ap.add_argument("--train-width", type=int, default=16, help="0: no training step")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[2]
    # the children's environment as the caller's, before fp8emu (imported for the header) adds
    # its thread defaults: a timeout in the environment would reach OpenBLAS at NumPy's load
    env = dict(os.environ)
    sys.path.insert(0, str(root))
    from benchmarks.timing import header
    print(header())
    import fp8emu
    if "OPENBLAS_THREAD_TIMEOUT" not in fp8emu.THREAD_ENV_DEFAULTS:
        print("note: OPENBLAS_THREAD_TIMEOUT is set in the environment, so both children run with it")
    m, k, n = args.shape
    print(f"matmul {m} x {k} x {n}, 9 interleaved rounds per child; ResNet-18 width {args.train_width}, batch 64")
    for r in range(args.rounds):
        for mode in ("spinning", "restart"):
            out = subprocess.run([sys.executable, "-c", CHILD, mode, str(m), str(k), str(n), str(args.train_width)],
                                 cwd=root, env=env, capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            step = f", training step {res['step'] * 1e3:.0f} ms" if "step" in res else ""
            print(f"round {r} {mode:8s}: OpenBLAS timeout {res['timeout']}, pipeline allowed {res['spin_set']}; "
                  f"np.matmul {res['np'] * 1e3:.1f} ms, matmul e5m2 {res['e5m2'] * 1e3:.1f} ms "
                  f"(ratio {res['np'] / res['e5m2']:.2f}){step}")


if __name__ == "__main__":
    main()
