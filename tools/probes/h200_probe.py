"""Probe the FP8 GEMM of an NVIDIA H200 through ``torch._scaled_mm`` (cuBLASLt) and record it.

Run on the GPU machine from the repository root::

    OUT=/some/dir python3 tools/probes/h200_probe.py            # everything (about 3-5 minutes)
    OUT=/some/dir python3 tools/probes/h200_probe.py names      # cuBLASLt log only (set the log env first)

What it writes under ``$OUT`` (all small; inputs are *not* stored, ``h200_inputs.py`` regenerates them):

* ``h200_env.json``: torch / CUDA / cuBLASLt versions, GPU, driver.
* ``h200_probe_vectors.npz``: designed probes (step, kept bits, truncation, subnormal rule, promotion,
  accumulator in alignment), full outputs, both modes (``<name>_acc`` / ``<name>_fast``).
* ``h200_probe_random.npz`` + ``.json``: random-code GEMMs; small shapes full, large shapes a 16x16
  sample (rows ``ri``, cols ``ci``), both modes, with the CUDA kernel names that ran (profiler).
* ``h200_probe_bounds.npz``: split-boundary maps (see ``h200_inputs.boundary_probe``) for a grid of
  shapes, both modes: per tested boundary, how many outputs kept the small term.
* ``cublaslt_log.txt.gz``: cuBLASLt's API log (level 5) for one call of each grid shape and mode.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h200_inputs as H  # noqa: E402

OUT = os.environ.get("OUT", "/tmp/h200_out")
DEV = "cuda" if torch.cuda.is_available() else "cpu"
TORCH_FMT = {"e4m3fn": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
MN = (16, 32, 64, 128, 256)
KS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
GRID = [(m, n, k) for m in MN for n in MN for k in KS]
GRID += [(m, m, k) for m in (48, 80, 96, 192, 512) for k in (1024, 4096, 16384, 65536)]
if os.environ.get("H200_PROBE_SMALL"):  # local dry run on the CPU
    GRID = [(16, 16, 1024), (32, 16, 4096)]
ONE = torch.tensor(1.0, device=DEV)


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def to_dev(codes: np.ndarray, fmt: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(codes)).to(DEV).view(TORCH_FMT[fmt])


def scaled_mm(a: torch.Tensor, bt: torch.Tensor, fast: bool) -> torch.Tensor:
    """C = a @ bt.T on the tensor cores: A row-major, B column-major (bt row-major), FP32 out."""
    return torch._scaled_mm(a, bt.t(), scale_a=ONE, scale_b=ONE, out_dtype=torch.float32, use_fast_accum=fast)


def gemm_np(a_codes, bt_codes, a_fmt, b_fmt, fast):
    out = scaled_mm(to_dev(a_codes, a_fmt), to_dev(bt_codes, b_fmt), fast)
    return out.cpu().numpy()


# ---------------------------------------------------------------------------------------------
def env_info() -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "numpy": np.__version__,
            "device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu",
            "env": {k: v for k, v in os.environ.items() if k.startswith(("CUBLAS", "CUDA", "TORCH", "NVIDIA"))}}
    if DEV == "cuda":
        info["sm_count"] = torch.cuda.get_device_properties(0).multi_processor_count
        try:
            info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm",
                                                 "--format=csv,noheader"], capture_output=True, text=True,
                                                timeout=30).stdout.strip()
        except Exception as exc:  # noqa: BLE001 - record, don't fail
            info["nvidia_smi"] = repr(exc)
        torch.ones(1, device=DEV)
        scaled_mm(to_dev(np.zeros((16, 32), np.uint8), "e4m3fn"), to_dev(np.zeros((16, 32), np.uint8), "e4m3fn"), True)
        libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps") if "cublas" in ln and ".so" in ln})
        info["cublas_libs"] = libs
        for lib in libs:
            if "cublasLt" in lib:
                try:
                    fn = ctypes.CDLL(lib).cublasLtGetVersion
                    fn.restype = ctypes.c_size_t
                    info["cublasLt_version"] = int(fn())
                except Exception as exc:  # noqa: BLE001
                    info["cublasLt_version"] = repr(exc)
    return info


def run_vectors() -> None:
    res = {}
    for name, (_, a_fmt, b_fmt) in H.VECTOR_PROBES.items():
        a, bt = H.vector_probe(name)
        for fast in (False, True):
            res[f"{name}_{'fast' if fast else 'acc'}"] = gemm_np(a, bt, a_fmt, b_fmt, fast)
        res[f"{name}_crc"] = np.array(H.crc(a, bt), dtype=np.uint64)
        log("vector probe", name, a.shape)
    np.savez_compressed(os.path.join(OUT, "h200_probe_vectors.npz"), **res)


def random_cases() -> list[dict]:
    cases = []
    combos = (("e4m3fn", "e4m3fn"), ("e4m3fn", "e5m2"), ("e5m2", "e4m3fn"))
    # small shapes, every distribution and combo, odd K included (K = 16 j)
    for dist in ("normal", "wide", "sub", "cancel"):
        for a_fmt, b_fmt in combos:
            for K in (16, 48, 80, 128, 144, 400, 1024):
                cases.append(dict(M=32, N=32, K=K, a_fmt=a_fmt, b_fmt=b_fmt, dist=dist))
    for (M, N, K) in GRID:
        cases.append(dict(M=M, N=N, K=K, a_fmt="e4m3fn", b_fmt="e4m3fn", dist="normal"))
    for M in (16, 64, 256):
        for K in (1024, 16384, 65536):
            for a_fmt, b_fmt in combos[1:]:
                cases.append(dict(M=M, N=M, K=K, a_fmt=a_fmt, b_fmt=b_fmt, dist="wide"))
    for i, c in enumerate(cases):
        c["key"] = f"r{i:04d}"
        c["seed"] = 1000 + i
    return cases


def run_random() -> None:
    cases = random_cases()
    res = {}
    marker = torch.zeros(1, device=DEV)
    kernels_all = []
    prof_ctx = None
    if DEV == "cuda":
        from torch.profiler import ProfilerActivity, profile
        prof_ctx = profile(activities=[ProfilerActivity.CUDA])
        prof_ctx.__enter__()
    t0 = time.time()
    for c in cases:
        M, N, K = c["M"], c["N"], c["K"]
        a = H.random_codes(c["seed"], (M, K), c["a_fmt"], c["dist"])
        bt = H.random_codes(c["seed"] + 500_000, (N, K), c["b_fmt"], c["dist"])
        ri = np.arange(M) if M <= 64 else np.linspace(0, M - 1, 16).round().astype(np.int64)
        ci = np.arange(N) if N <= 64 else np.linspace(0, N - 1, 16).round().astype(np.int64)
        ta, tb = to_dev(a, c["a_fmt"]), to_dev(bt, c["b_fmt"])
        for fast in (False, True):
            marker.fill_(1.0)  # a kernel of known name between GEMMs, to cut the kernel trace
            out = scaled_mm(ta, tb, fast).cpu().numpy()
            res[f"{c['key']}_{'fast' if fast else 'acc'}"] = out[np.ix_(ri, ci)]
        res[f"{c['key']}_ri"], res[f"{c['key']}_ci"] = ri, ci
        c["crc"] = H.crc(a, bt)
    torch.cuda.synchronize() if DEV == "cuda" else None
    if prof_ctx is not None:
        prof_ctx.__exit__(None, None, None)
        evs = [e for e in prof_ctx.events() if "cuda" in str(e.device_type).lower()]
        evs.sort(key=lambda e: e.time_range.start)
        kernels_all = [e.name for e in evs]
    # cut the kernel trace at the marker (fill) kernels: one segment per GEMM call, in order
    segs, cur = [], None
    for name in kernels_all:
        if "fill" in name.lower() and "gemm" not in name.lower():
            cur = []
            segs.append(cur)
        elif cur is not None:
            cur.append(name)
    for i, c in enumerate(cases):
        if 2 * i + 1 < len(segs):
            c["kernels_acc"], c["kernels_fast"] = segs[2 * i], segs[2 * i + 1]
    # determinism: repeat two split-prone cases
    det = {}
    for c in cases:
        if (c["M"], c["N"], c["K"]) in ((16, 16, 16384), (16, 16, 65536)) and c["a_fmt"] == c["b_fmt"]:
            a = to_dev(H.random_codes(c["seed"], (c["M"], c["K"]), c["a_fmt"], c["dist"]), c["a_fmt"])
            bt = to_dev(H.random_codes(c["seed"] + 500_000, (c["N"], c["K"]), c["b_fmt"], c["dist"]), c["b_fmt"])
            for fast in (False, True):
                outs = [scaled_mm(a, bt, fast).cpu().numpy() for _ in range(5)]
                det[f"{c['key']}_{fast}"] = all((o.view(np.uint32) == outs[0].view(np.uint32)).all() for o in outs)
    log("random cases", len(cases), f"{time.time() - t0:.1f}s", "kernel segments", len(segs), "determinism", det)
    np.savez_compressed(os.path.join(OUT, "h200_probe_random.npz"), **res)
    with open(os.path.join(OUT, "h200_probe_random.json"), "w") as f:
        json.dump({"cases": cases, "determinism": det, "n_kernel_events": len(kernels_all)}, f, indent=0)


def run_bounds() -> None:
    res = {}
    L = 65536.0
    preserved = {"trunc": np.float32(L + 0.0625), "assoc": np.float32(L * (1 + 2.0 ** -23))}
    t0 = time.time()
    for (M, N, K) in GRID:
        for kind in ("trunc", "assoc"):
            n_g = H.boundary_gemm_count(kind, M, N, K)
            per_mode = {False: ([], [], [], []), True: ([], [], [], [])}
            for g in range(n_g):
                a, bt, bnd = H.boundary_probe(kind, M, N, K, g)
                ta, tb = to_dev(a, "e4m3fn"), to_dev(bt, "e4m3fn")
                for fast in (False, True):
                    out = scaled_mm(ta, tb, fast).cpu().numpy()
                    pos_l, keep_l, tot_l, other_l = per_mode[fast]
                    for p in np.unique(bnd[bnd >= 0]):
                        sel = out[bnd == p]
                        pos_l.append(p)
                        keep_l.append(int((sel == preserved[kind]).sum()))
                        tot_l.append(sel.size)
                        other_l.append(int(((sel != preserved[kind]) & (sel != np.float32(L))).sum()))
            for fast, (pos_l, keep_l, tot_l, other_l) in per_mode.items():
                key = f"{kind}_{M}_{N}_{K}_{'fast' if fast else 'acc'}"
                res[key + "_pos"] = np.array(pos_l, np.int32)
                res[key + "_keep"] = np.array(keep_l, np.int32)
                res[key + "_tot"] = np.array(tot_l, np.int32)
                res[key + "_other"] = np.array(other_l, np.int32)
        log("bounds", (M, N, K), f"{time.time() - t0:.1f}s")
    np.savez_compressed(os.path.join(OUT, "h200_probe_bounds.npz"), **res)


def run_names() -> None:
    """One call per grid shape and mode (run with CUBLASLT_LOG_LEVEL=5 set in the environment)."""
    for (M, N, K) in GRID:
        a = to_dev(H.random_codes(1, (M, K), "e4m3fn", "normal"), "e4m3fn")
        bt = to_dev(H.random_codes(2, (N, K), "e4m3fn", "normal"), "e4m3fn")
        for fast in (False, True):
            print(f"### shape M={M} N={N} K={K} fast={fast}", flush=True)
            scaled_mm(a, bt, fast)
            torch.cuda.synchronize() if DEV == "cuda" else None


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if part == "names":
        run_names()
        return
    info = env_info()
    log("env", info)
    with open(os.path.join(OUT, "h200_env.json"), "w") as f:
        json.dump(info, f, indent=1)
    if DEV == "cuda":
        logfile = os.path.join(OUT, "cublaslt_log.txt")
        env = dict(os.environ, CUBLASLT_LOG_LEVEL="5", CUBLASLT_LOG_FILE=logfile)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "names"], env=env,
                           capture_output=True, text=True, timeout=240)
        log("names rc", r.returncode, r.stderr[-2000:])
        if os.path.exists(logfile):
            with open(logfile, "rb") as f, gzip.open(logfile + ".gz", "wb") as g:
                g.write(f.read())
            os.remove(logfile)
    run_vectors()
    run_random()
    run_bounds()
    log("done")


if __name__ == "__main__":
    main()
