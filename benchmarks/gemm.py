"""GEMM and conv throughput at the ResNet-18 (CIFAR, batch 128) layer shapes, next to plain np.matmul.

    python -m benchmarks.gemm                  # all shapes, every accumulator, conv passes
    python -m benchmarks.gemm --repeats 5 --shapes 0 3 --chunk-mb 8
    python -m benchmarks.gemm --matmul-only --repeats 7   # np.matmul and fp32_blas+quantization only

Prints, per shape M x K x N (the 3x3 convs of the four ResNet-18 stages lower to exactly these
GEMMs), the median GFLOP/s of: plain ``np.matmul`` (float32, into ``out=``), ``fp8emu.matmul`` with
the default ``fp32_blas`` accumulator and e4m3fn (saturating) or e5m2 operand quantization
included (ratio to np.matmul in wall time and in process CPU time, which other load on the
machine disturbs less; all of these timed in interleaved rounds; the target's ratio is a fresh
fp8emu result against np.matmul into ``out=``, then both with fresh results, then both with
``out=``), the reproducible float32
accumulators, chunked float16 accumulation, then conv2d forward / grad_input / grad_weight
against the matmul each one reduces to.  The slow accumulators run on a row slice (their cost
is linear in M), which the line says.  Targets (issues #3, #19): fp32_blas+quantization >= 0.85x
np.matmul; fp32_sequential >= 20 GFLOP/s; low-precision >= 5 GFLOP/s; conv2d forward >= 0.7x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

# Numba's OpenMP workers and OpenBLAS's threads alternate in every conv; with the default
# (active) wait policy the idle pool spins and steals one of the 2 cores (measured: conv2d
# forward 4.4 s -> 0.55 s with 8 MiB chunks).  Must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

import fp8emu.conv as conv  # noqa: E402
from fp8emu import conv2d, conv2d_grad_input, conv2d_grad_weight, matmul, quantize  # noqa: E402
from fp8emu.accumulators import fp32_blocked, fp32_pairwise, fp32_sequential, lowp  # noqa: E402
from fp8emu.formats import e4m3fn  # noqa: E402

from .timing import header, measure  # noqa: E402

# (M, K, N) and the conv that lowers to it: (N, C, H, W), (O, C, 3, 3), padding 1
SHAPES = [(131072, 576, 64), (32768, 1152, 128), (8192, 2304, 256), (2048, 4608, 512)]
CONVS = [((128, 64, 32, 32), (64, 64, 3, 3)), ((128, 128, 16, 16), (128, 128, 3, 3)),
         ((128, 256, 8, 8), (256, 256, 3, 3)), ((128, 512, 4, 4), (512, 512, 3, 3))]


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call (compilation, buffers)."""
    return measure("", fn, 1, repeat=repeats).median_s


def median_cpu_time(fn, repeats: int) -> float:
    """Median process CPU time (all threads) of ``repeats`` calls: robust to other load on the machine.

    ``GFLOP / cpu-s * threads`` estimates the throughput on dedicated cores.
    """
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def interleaved_medians(cases: dict, repeats: int) -> tuple[dict, dict]:
    """Median wall and process CPU time of each case, timed in ``repeats`` rounds that call
    every case once (after one warm-up call each), so slow changes of the machine's load hit
    all cases alike."""
    for fn in cases.values():
        fn()
    wall: dict = {name: [] for name in cases}
    cpu: dict = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return ({name: float(np.median(v)) for name, v in wall.items()},
            {name: float(np.median(v)) for name, v in cpu.items()})


def gflops(m: int, k: int, n: int, seconds: float) -> float:
    return 2.0 * m * k * n / seconds / 1e9


def bench_shape(idx: int, repeats: int, accumulators: bool = True) -> None:
    m, k, n = SHAPES[idx]
    rng = np.random.default_rng(idx)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    print(f"\n== {m} x {k} x {n}  ({2 * m * k * n / 1e9:.1f} GFLOP)")
    cases = {"np": lambda: np.matmul(a, b, out=out), "np fresh": lambda: np.matmul(a, b)}
    for fmt, sat in (("e4m3fn", True), ("e5m2", False)):
        cases[fmt] = lambda fmt=fmt, sat=sat: matmul(a, b, a_fmt=fmt, b_fmt=fmt, saturate=sat)
        cases[fmt + " out"] = lambda fmt=fmt, sat=sat: matmul(a, b, a_fmt=fmt, b_fmt=fmt, saturate=sat, out=out)
    wall, cpu = interleaved_medians(cases, repeats)
    print(f"np.matmul float32                     {gflops(m, k, n, wall['np']):8.1f} GFLOP/s  (median "
          f"{wall['np'] * 1e3:.1f} ms with out=, {wall['np fresh'] * 1e3:.1f} ms fresh; "
          f"{gflops(m, k, n, cpu['np']):.1f} GFLOP per cpu-s)")
    for fmt in ("e4m3fn", "e5m2"):
        print(f"matmul fp32_blas + {fmt:6s} quantization {gflops(m, k, n, wall[fmt]):8.1f} GFLOP/s  "
              f"ratio vs np.matmul {wall['np'] / wall[fmt]:.2f}, in cpu-s {cpu['np'] / cpu[fmt]:.2f} "
              f"(target >= 0.85); both fresh {wall['np fresh'] / wall[fmt]:.2f}, in cpu-s "
              f"{cpu['np fresh'] / cpu[fmt]:.2f}; both out= {wall['np'] / wall[fmt + ' out']:.2f}, "
              f"in cpu-s {cpu['np'] / cpu[fmt + ' out']:.2f}")
    if not accumulators:
        return
    qa = quantize(a, "e4m3fn", saturate=True)
    qb = quantize(b, "e4m3fn", saturate=True)
    for acc, budget, target in [(fp32_sequential, 2e9, 20), (fp32_pairwise, 1e9, None), (fp32_blocked(32), 2e9, None),
                                (lowp("float16", 64), 1e8, 5)]:
        rows = int(max(64, min(m, budget // (2 * k * n))))
        def run():
            return acc.matmul_2d(qa[:rows], qb, a_fmt=e4m3fn, b_fmt=e4m3fn)
        t = median_time(run, max(1, repeats // 2))
        c = median_cpu_time(run, max(1, repeats // 2))
        tgt = f" (target >= {target})" if target else ""
        print(f"{acc.name:38s} {gflops(rows, k, n, t):8.1f} GFLOP/s  on {rows} rows{tgt}; "
              f"{gflops(rows, k, n, c):.1f} GFLOP per cpu-s")


#: Warm-up calls before the conv timings: in these virtual machines the first 5-6 calls of a
#: process at the first ResNet-18 shape ran up to 2x slower than the later ones (the same in every
#: version; tools/probes/conv_chunks.py), and a training step runs the same shapes every time.
CONV_WARMUP = 6


def bench_conv(idx: int, repeats: int) -> None:
    x_shape, w_shape = CONVS[idx]
    m, k, n = SHAPES[idx]
    rng = np.random.default_rng(10 + idx)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    gy = rng.standard_normal((x_shape[0], w_shape[0], x_shape[2], x_shape[3]), dtype=np.float32)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    t_mm = median_time(lambda: np.matmul(a, b, out=out), repeats)
    def steady(fn):
        return measure("", fn, 1, repeat=repeats, warmup=CONV_WARMUP).median_s
    t_f = steady(lambda: conv2d(x, w, padding=1))
    t_gi = steady(lambda: conv2d_grad_input(gy, w, x.shape, padding=1))
    t_gw = steady(lambda: conv2d_grad_weight(x, gy, w.shape, padding=1))
    print(f"conv {x_shape} * {w_shape}: np.matmul {t_mm * 1e3:.1f} ms; forward {t_f * 1e3:.1f} ms "
          f"ratio vs matmul {t_mm / t_f:.2f} (target >= 0.7); grad_input {t_gi * 1e3:.1f} ms "
          f"ratio {t_mm / t_gi:.2f}; grad_weight {t_gw * 1e3:.1f} ms ratio {t_mm / t_gw:.2f} "
          f"(after {CONV_WARMUP} warm-up calls)")


_BITS_SCRIPT = """
import hashlib, numpy as np
rng = np.random.default_rng(0)
for m, k, n in [(2048, 4608, 512), (4096, 576, 64), (333, 1000, 77)]:
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    print(hashlib.sha1(np.matmul(a, b).tobytes()).hexdigest()[:10], end=" ")
"""


def blas_bits() -> None:
    """Why fp32_blas is documented as not reproducible: result hashes under OpenBLAS kernels and threads."""
    print("\n== fp32_blas bits (sha1 of np.matmul results, shapes 2048x4608x512, 4096x576x64, 333x1000x77)")
    for threads in ("1", "2"):
        for core in ("Haswell", "SkylakeX"):
            env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OPENBLAS_CORETYPE=core)
            res = subprocess.run([sys.executable, "-c", _BITS_SCRIPT], env=env, capture_output=True, text=True)
            print(f"threads {threads} kernel {core:8s}: {res.stdout.strip() or res.stderr.strip()[-200:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", type=int, nargs="*", default=list(range(len(SHAPES))),
                        help="indices into SHAPES (0..3)")
    parser.add_argument("--chunk-mb", type=float, default=None,
                        help="override the conv im2col chunk size (MiB; large = no chunking)")
    parser.add_argument("--skip-accumulators", action="store_true")
    parser.add_argument("--skip-bits", action="store_true", help="skip the fp32_blas reproducibility check")
    parser.add_argument("--matmul-only", action="store_true",
                        help="only np.matmul and fp32_blas with quantization (no other accumulators, conv, bits)")
    args = parser.parse_args(argv)
    if args.chunk_mb is not None:
        conv._CHUNK_BYTES = int(args.chunk_mb * (1 << 20))
    print(header())
    print(f"# conv chunk {conv._CHUNK_BYTES / (1 << 20):g} MiB | "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}")
    for idx in args.shapes:
        if args.matmul_only:
            bench_shape(idx, args.repeats, accumulators=False)
            continue
        if not args.skip_accumulators:
            bench_shape(idx, args.repeats)
        bench_conv(idx, args.repeats)
    if not args.skip_bits and not args.matmul_only:
        blas_bits()


if __name__ == "__main__":
    main()
