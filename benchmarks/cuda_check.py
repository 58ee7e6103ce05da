"""GPU evidence for fp8emu.cuda: the same bits as the CPU, and the speed against a device copy.

Run on a machine with an NVIDIA GPU, PyTorch and numba-cuda::

    python -m benchmarks.cuda_check --out results.json            # full sizes (H200: ~3 min)
    NUMBA_ENABLE_CUDASIM=1 python -m benchmarks.cuda_check --small  # the script's own smoke test

Checks (each writes its numbers into the JSON as soon as it ends, so a cut-off run keeps them):

* ``sweep``: all 2^32 float32 patterns -> e4m3fn and e5m2 (RNE, not saturating) on the GPU,
  SHA-256 of the codes in input order with NaN codes written as 0x7F, against the hashes of
  the H200 hardware conversion (the same hashes as tests/test_sweep_2pow32.py).
* ``sr``: 2^26 stochastic roundings (exact probabilities and sr_bits=8; e5m2 and e4m3fn) of
  float32 values on the GPU against the CPU, same seed and stream.
* ``presets``: every preset x rounding mode on 2^24 random float32 inputs (half random bit
  patterns: NaN payloads, Inf, subnormals; half values spread over the format's range),
  encode and quantize, against the CPU; float16, bfloat16 and float64 inputs on 2^22.
* ``torch``: the ``fp8emu.torch`` operators on CUDA tensors against CPU tensors (encode,
  quantize, decode; six formats, four dtypes, three modes) and one layer's quantized weights,
  activations and SR-quantized error (``fake_quant``) from the same values on both devices.
* ``bench``: quantize float32 -> e4m3fn -> float32 of 1 GiB (RNE and stochastic) and encode,
  against ``torch.Tensor.copy_`` of the same bytes and PyTorch's native
  ``.to(torch.float8_e4m3fn).to(torch.float32)``, all in this run; CUDA events around
  ``reps`` back-to-back calls (launch overhead overlaps the previous kernel), median of 5.
* ``variants``: the same quantize (RNE, exact SR, ``sr_bits=8``) for each kernel variant of
  :data:`VARIANTS` (launch geometry, elements per thread, per-mode float32 kernels, loop index
  type), next to the copy and PyTorch's round trip, each variant's bits checked against the
  default kernel's and the default's against the CPU; prints a table (H200: about a minute).
  Not in the default ``--only`` list: ``python -m benchmarks.cuda_check --only variants``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np
from numba import cuda

H200_SHA256 = {
    "e4m3fn": "440f26d6c947a242265ec3d2966282cef45a608311a657d7a75f7be8339fad6f",
    "e5m2": "90cf5f0c927c22f532215b823afade32c59112ec7c80de2f5169efa46b5237af",
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Results(dict):
    """A dict written to ``path`` (atomically) after every change."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def put(self, key, value):
        self[key] = value
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self, f, indent=1, default=str)
            os.replace(tmp, self.path)


@cuda.jit
def _iota(out, start):
    """``out[i] = start + i`` (uint32): the sweep's inputs, made on the GPU."""
    i0, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(i0, out.shape[0], step):
        out[i] = np.uint32(start + i)


def check_sweep(res, chunk_log2: int, small: bool) -> None:
    """All 2^32 float32 patterns (or a 2^24 prefix with --small) through fp8emu.cuda.encode."""
    import fp8emu.cuda as fc
    from fp8emu.formats import e4m3fn, e5m2

    total = 1 << (12 if small else 32)
    chunk = min(1 << chunk_log2, total)
    bits = cuda.device_array(chunk, np.uint32)
    codes = cuda.device_array(chunk, np.uint8)
    host = cuda.pinned_array(chunk, np.uint8) if not fc.simulated() else np.empty(chunk, np.uint8)
    out = {}
    for fmt in (e4m3fn, e5m2):
        h = hashlib.sha256()
        t0 = time.perf_counter()
        gpu_s = 0.0
        for start in range(0, total, chunk):
            blocks, threads = fc.launch_config(chunk)
            _iota[blocks, threads](bits, np.uint32(start))
            t1 = time.perf_counter()
            fc.encode(bits.view(np.float32), fmt, out=codes)
            cuda.synchronize()
            gpu_s += time.perf_counter() - t1
            codes.copy_to_host(host)
            c = np.asarray(host)
            c[c == fmt.nan_code] = 0x7F
            h.update(c.data)
        digest = h.hexdigest()
        out[fmt.name] = {"inputs": total, "sha256": digest, "expected": H200_SHA256[fmt.name],
                         "match": digest == H200_SHA256[fmt.name] if total == 1 << 32 else None,
                         "seconds_total": round(time.perf_counter() - t0, 2),
                         "seconds_encode_incl_launch": round(gpu_s, 3)}
        _log(f"sweep {fmt.name}: {out[fmt.name]}")
        res.put("sweep", out)


def _random_f32(n: int, fmt, rng) -> np.ndarray:
    """Half random bit patterns, half values spread over ``fmt``'s range (ties included)."""
    raw = rng.integers(0, 1 << 32, n // 2, dtype=np.uint64).astype(np.uint32).view(np.float32)
    fin = fmt.finite_values()
    fin = fin[np.isfinite(fin)]
    m = n - n // 2
    picks = rng.choice(fin, m)
    scale = 1 + rng.uniform(-1, 1, m) * 2.0 ** -rng.integers(0, 12, m)
    scale[: m // 8] = 1.0                           # exact values
    with np.errstate(over="ignore", invalid="ignore"):
        vals = (picks * scale).astype(np.float32)
    ties = ((fin[:-1] + fin[1:]) / 2).astype(np.float32)
    vals[m // 8: m // 8 + min(len(ties), m // 8)] = rng.choice(ties, min(len(ties), m // 8))
    x = np.concatenate([raw, vals])
    rng.shuffle(x)
    return x


def _compare(name, gpu, cpu) -> dict:
    g = np.ascontiguousarray(gpu).view(np.uint8)
    c = np.ascontiguousarray(cpu).view(np.uint8)
    bad = int(np.count_nonzero(g != c))
    return {"case": name, "elements": int(np.asarray(cpu).size), "mismatched_bytes": bad}


def check_sr(res, n: int) -> None:
    import fp8emu
    import fp8emu.cuda as fc
    from fp8emu.formats import e4m3fn, e5m2

    rng = np.random.default_rng(15)
    rows = []
    for fmt in (e5m2, e4m3fn):
        x = _random_f32(n, fmt, rng)
        x[:64] = np.float32(1e-42)                  # the deep path (more than 64 dropped bits)
        xd = cuda.to_device(x)
        for sr_bits in (None, 8):
            for seed, stream in ((1234, 0), (2**64 - 1, -99)):
                kw = dict(rounding="stochastic", seed=seed, stream=stream, sr_bits=sr_bits)
                t = time.perf_counter()
                g = fc.encode(xd, fmt, **kw).copy_to_host()
                tg = time.perf_counter() - t
                t = time.perf_counter()
                c = fp8emu.encode(x, fmt, **kw)
                tc = time.perf_counter() - t
                row = _compare(f"encode {fmt.name} sr_bits={sr_bits} seed={seed} stream={stream}", g, c)
                row.update(gpu_s=round(tg, 3), cpu_s=round(tc, 3))
                rows.append(row)
                gq = fc.quantize(xd, fmt, **kw).copy_to_host()
                rows.append(_compare(f"quantize {fmt.name} sr_bits={sr_bits} seed={seed} stream={stream}", gq,
                                     fp8emu.quantize(x, fmt, **kw)))
                _log(str(rows[-2]) + " " + str(rows[-1]))
                res.put("sr", rows)


def check_presets(res, n32: int, n_other: int, names=None) -> None:
    import ml_dtypes
    import fp8emu
    import fp8emu.cuda as fc
    from fp8emu.format import RoundMode
    from fp8emu.formats import ALL_FORMATS

    rows = []
    bf16 = np.dtype(ml_dtypes.bfloat16)
    for fmt in ALL_FORMATS:
        if names and fmt.name not in names:
            continue
        rng = np.random.default_rng(16 + ALL_FORMATS.index(fmt))       # the same inputs in any split
        x32 = _random_f32(n32, fmt, rng)
        inputs = [("float32", x32, None, True)]
        for name, dt in (("float16", np.float16), ("bfloat16", bf16), ("float64", np.float64)):
            with np.errstate(over="ignore", invalid="ignore"):
                xo = _random_f32(n_other, fmt, rng).astype(dt)
            if dt == np.float64:    # bits below float32's precision, too
                xo = xo * (1 + rng.uniform(-2.0**-30, 2.0**-30, xo.size))
            inputs.append((name, xo, "bfloat16" if dt == bf16 else None, name == "float64"))
        for name, x, x_dtype, with_quantize in inputs:
            host = x.view(np.uint16) if x_dtype else x
            xd = cuda.to_device(host)
            for mode in RoundMode:
                for sat in (False, True):
                    kw = dict(rounding=mode, saturate=sat, seed=7 if mode is RoundMode.STOCHASTIC else None,
                              stream=3)
                    row = _compare(f"encode {fmt.name} {name} {mode.value} sat={sat}",
                                   fc.encode(xd, fmt, x_dtype=x_dtype, **kw).copy_to_host(),
                                   fp8emu.encode(x, fmt, **kw))
                    rows.append(row)
                    if with_quantize and not sat:
                        try:
                            cq = fp8emu.quantize(x, fmt, **kw)
                        except ValueError:
                            continue
                        rows.append(_compare(f"quantize {fmt.name} {name} {mode.value}",
                                             fc.quantize(xd, fmt, x_dtype=x_dtype, **kw).copy_to_host(), cq))
            bad = [r for r in rows if r["mismatched_bytes"]]
            _log(f"presets {fmt.name} {name}: {len(rows)} cases so far, {len(bad)} with mismatches")
            res.put("presets", {"cases": len(rows), "failed": bad,
                                "elements_float32": n32, "elements_other": n_other, "rows": rows})


_LAYER_DEVICES = ("cpu", "cuda")


def check_torch(res, n: int) -> None:
    """fp8emu.torch operators on CUDA tensors against the same operators on CPU tensors, and one
    layer's quantized operands and quantized error (fake_quant forward + SR gradient)."""
    import torch
    import fp8emu.torch as ft
    from fp8emu.autograd import QuantSpec

    gen = torch.Generator().manual_seed(14)
    rows = []

    def same(name, a, b):
        a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
        ok = a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a.view(torch.uint8), b.view(torch.uint8)))
        rows.append({"case": name, "elements": a.numel(), "equal": ok})

    for fmt in ("e5m2", "e4m3fn", "e4m3fnuz", "e2m1fn", "e8m0fnu", "bfloat16"):
        for dt in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
            x = (torch.randn(n, generator=gen, dtype=torch.float64) * 2.0 ** torch.randint(-20, 20, (n,),
                 generator=gen)).to(dt)
            xc = x.cuda()
            for mode in ("nearest_even", "stochastic", "toward_zero"):
                kw = dict(rounding=mode, seed=5 if mode == "stochastic" else None, stream=-3)
                c_cpu = ft.encode(x, fmt, **kw)
                same(f"encode {fmt} {dt} {mode}", ft.encode(xc, fmt, **kw), c_cpu)
                try:
                    q_cpu = ft.quantize(x, fmt, **kw)
                except ValueError:
                    continue
                same(f"quantize {fmt} {dt} {mode}", ft.quantize(xc, fmt, **kw), q_cpu)
            if dt != torch.float16 or fmt not in ("e8m0fnu", "bfloat16"):      # float16 holds the rest
                same(f"decode {fmt} -> {dt}", ft.decode(c_cpu.cuda(), fmt, dtype=dt), ft.decode(c_cpu, fmt, dtype=dt))
    # one layer: weights and activations e5m2 RNE forward, the error e5m2 SR backward (paper-e5m2)
    w = torch.randn(64, 128, generator=gen) * 0.05
    a = torch.randn(32, 128, generator=gen)
    g = torch.randn(32, 64, generator=gen) * 1e-6
    outs = {}
    for dev in _LAYER_DEVICES:
        wd, ad = w.to(dev).requires_grad_(), a.to(dev).requires_grad_()
        qw = ft.fake_quant(wd, "e5m2", QuantSpec("e5m2", "stochastic"), seed=11, stream=1)
        qa = ft.fake_quant(ad, "e5m2", QuantSpec("e5m2", "stochastic"), seed=11, stream=2)
        y = qa @ qw.t()
        y.backward(g.to(dev))
        outs[dev] = (qw, qa, wd.grad, ad.grad)
    for k, name in enumerate(("weights e5m2 RNE", "activations e5m2 RNE")):
        same(f"layer {name}", outs[_LAYER_DEVICES[1]][k], outs[_LAYER_DEVICES[0]][k])
    # the errors reaching the layer's inputs are quantized by SR: compare the codes of the same
    # upstream error (the matmul products themselves come from cuBLAS vs the CPU BLAS)
    err = g @ w                                                   # the same float32 error on both
    same("layer error e5m2 SR codes",
         ft.encode(err.cuda(), "e5m2", rounding="stochastic", seed=11, stream=2),
         ft.encode(err, "e5m2", rounding="stochastic", seed=11, stream=2))
    bad = [r for r in rows if not r["equal"]]
    _log(f"torch: {len(rows)} cases, {len(bad)} not equal: {bad[:5]}")
    res.put("torch", {"cases": len(rows), "failed": bad, "rows": rows})


def _time_cuda(fn, reps: int, trials: int = 5) -> float:
    """Median over ``trials`` of the GPU time per call of ``reps`` back-to-back calls (s)."""
    import torch
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(trials):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3 / reps)
    return float(np.median(times))


def bench(res, log2n: int, reps: int) -> None:
    import torch
    import fp8emu.cuda as fc

    n = 1 << log2n
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, device="cuda", generator=gen) * 100
    y = torch.empty_like(x)
    codes = torch.empty(n, dtype=torch.uint8, device="cuda")
    xv, yv, cv = cuda.as_cuda_array(x), cuda.as_cuda_array(y), cuda.as_cuda_array(codes)
    nbytes = x.numel() * 4
    rows = {}

    def put(name, seconds, moved):
        rows[name] = {"ms": round(seconds * 1e3, 4), "GB_per_s": round(moved / seconds / 1e9, 1)}
        _log(f"bench {name}: {rows[name]}")

    put("copy (torch copy_, read+write)", _time_cuda(lambda: y.copy_(x), reps), 2 * nbytes)
    put("fp8emu quantize e4m3fn nearest_even", _time_cuda(lambda: fc.quantize(xv, "e4m3fn", out=yv), reps), 2 * nbytes)
    put("fp8emu quantize e4m3fn stochastic (sr_bits=None)",
        _time_cuda(lambda: fc.quantize(xv, "e4m3fn", rounding="stochastic", seed=1, out=yv), reps), 2 * nbytes)
    put("fp8emu quantize e5m2 stochastic (sr_bits=None)",
        _time_cuda(lambda: fc.quantize(xv, "e5m2", rounding="stochastic", seed=1, out=yv), reps), 2 * nbytes)
    put("fp8emu quantize e4m3fn stochastic sr_bits=8",
        _time_cuda(lambda: fc.quantize(xv, "e4m3fn", rounding="stochastic", seed=1, sr_bits=8, out=yv), reps),
        2 * nbytes)
    put("fp8emu encode e4m3fn nearest_even", _time_cuda(lambda: fc.encode(xv, "e4m3fn", out=cv), reps),
        nbytes + n)
    put("torch .to(float8_e4m3fn).to(float32)",
        _time_cuda(lambda: x.to(torch.float8_e4m3fn).to(torch.float32), reps), 2 * nbytes)
    put("torch .to(float8_e4m3fn) (encode)", _time_cuda(lambda: x.to(torch.float8_e4m3fn), reps), nbytes + n)
    copy = rows["copy (torch copy_, read+write)"]["ms"]
    ratios = {k: round(copy / v["ms"], 3) for k, v in rows.items()}
    # same RNE bits as PyTorch's cast (both non-saturating RNE; PyTorch keeps the sign of a
    # NaN from overflow, fp8emu returns the one NaN code 0x7F: compare with NaNs canonicalised)
    fc.encode(xv, "e4m3fn", out=cv)
    theirs = x.to(torch.float8_e4m3fn).view(torch.uint8)
    canon = lambda c: torch.where((c & 0x7F) == 0x7F, torch.full_like(c, 0x7F), c)  # noqa: E731
    agree = bool(torch.equal(canon(codes), canon(theirs)))
    res.put("bench", {"elements": n, "bytes_in": nbytes, "reps": reps, "rows": rows,
                      "rate_vs_copy (copy_ms / ms)": ratios, "rne_codes_equal_torch_cast": agree,
                      "device": torch.cuda.get_device_name()})


#: The kernel variants that ``variants`` times: name -> ``fp8emu.cuda._Tuning`` fields.  "default"
#: is what fp8emu launches (the float32 quantize kernels on the CPU's value routines, one per
#: mode, unsigned indices, the block size a constant, 16 blocks of 256 per multiprocessor); the
#: others are the kernels before each of those steps and other launch geometries.
VARIANTS = {
    "default": {},
    "mode read per element, signed index (the first kernels)": dict(specialize=0, unsigned=0, value_kernels=0,
                                                                    fixed_block=0, blocks_per_sm=8),
    "per-mode kernels, unsigned index": dict(specialize=1, unsigned=1, value_kernels=0, fixed_block=0,
                                             blocks_per_sm=8),
    "value kernels": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=0, blocks_per_sm=8),
    "value kernels, fixed block": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1, blocks_per_sm=8),
    "value kernels, fixed block, ilp 8": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1, ilp=8,
                                              blocks_per_sm=8),
    "value kernels, fixed block, ilp 2": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1, ilp=2,
                                              blocks_per_sm=8),
    "value kernels, fixed block, no block cap": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1,
                                                     blocks_per_sm=0),
    "value kernels, fixed block, 256 x 16": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1,
                                                 blocks_per_sm=16),
    "value kernels, fixed block, 512 x 8": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1,
                                                threads=512, blocks_per_sm=8),
    "value kernels, fixed block, 128 x 32": dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1,
                                                 threads=128, blocks_per_sm=32),
}


def _kernel_resources(fmt, kw: dict) -> dict:
    """Registers and local memory per thread of the kernel that ``fc.quantize(x, fmt, **kw)``
    of float32 launches under the current tuning (after its first call compiled it)."""
    import fp8emu.cuda as fc
    from fp8emu.format import RoundMode
    from fp8emu.quantize import kernel_arguments
    sr_bits = kw.get("sr_bits")
    args = kernel_arguments(fmt, np.dtype(np.float32), rounding=kw.get("rounding", "nearest_even"), saturate=False,
                            seed=kw.get("seed"), sr_bits=sr_bits, stream=kw.get("stream", 0), values=True)
    stochastic = RoundMode.parse(kw.get("rounding", "nearest_even")) is RoundMode.STOCHASTIC
    k = fc._kernel_and_constants(fmt, "float32", args, stochastic, sr_bits, True)[0]
    try:
        regs = list(k.get_regs_per_thread().values())
        local = list(k.get_local_mem_per_thread().values())
    except Exception as exc:                 # the simulator has no such figures
        return {"resources": repr(exc)[:100]}
    return {"regs": regs[0] if len(regs) == 1 else regs, "local_bytes": local[0] if len(local) == 1 else local}


def variants(res, log2n: int, reps: int, names=None, timed: bool = True) -> None:
    """Each kernel variant (launch geometry, loop, per-mode kernels) on quantize float32 -> e4m3fn ->
    float32 of ``2**log2n`` elements: nearest-even, exact SR and ``sr_bits=8``, timed as ``bench``
    does, next to the device copy and PyTorch's round trip; every variant's output must equal
    the default kernel's on up to 2^22 inputs of every kind (and the default's the CPU's).
    ``timed=False`` (the simulator): the bit checks only, on ``2**log2n`` inputs."""
    import fp8emu
    import fp8emu.cuda as fc
    from fp8emu.formats import e4m3fn

    n = 1 << log2n
    modes = {"nearest_even": dict(), "stochastic": dict(rounding="stochastic", seed=1, stream=3),
             "stochastic sr_bits=8": dict(rounding="stochastic", seed=1, stream=3, sr_bits=8)}
    copy_ms = torch_ms = None
    if timed:
        import torch
        gen = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(n, device="cuda", generator=gen) * 100        # bench's input
        y = torch.empty_like(x)
        xv, yv = cuda.as_cuda_array(x), cuda.as_cuda_array(y)
        copy_ms = _time_cuda(lambda: y.copy_(x), reps) * 1e3
        torch_ms = _time_cuda(lambda: x.to(torch.float8_e4m3fn).to(torch.float32), reps) * 1e3
        _log(f"variants: copy {copy_ms:.4f} ms, torch round trip {torch_ms:.4f} ms ({copy_ms / torch_ms:.3f}x copy)")
    # the bit check's input: random patterns, format values, ties, and values below 2^-50 (exact SR's
    # _round_bits fallback in the float32 kernels)
    rng = np.random.default_rng(5)
    cx = _random_f32(min(n, 1 << 22), e4m3fn, rng)
    cx[: cx.size // 16] *= np.float32(2.0 ** -60)
    cxv, cyv = cuda.to_device(cx), cuda.device_array(cx.size, np.float32)
    ref = {}
    with fc._tuned():
        for mode, kw in modes.items():
            ref[mode] = fc.quantize(cxv, "e4m3fn", **kw).copy_to_host()
            if not np.array_equal(ref[mode].view(np.uint32), fp8emu.quantize(cx, "e4m3fn", **kw).view(np.uint32)):
                raise AssertionError(f"variants: the default kernel differs from the CPU ({mode})")
    rows = []
    for name, fields in VARIANTS.items():
        if names and name not in names:
            continue
        row = {"variant": name}
        t0 = time.perf_counter()
        with fc._tuned(**fields) as tuning:
            row["tuning"] = tuning._asdict()
            for mode, kw in modes.items():
                row[f"{mode} equal"], row[f"{mode} ms"], row[f"{mode} x copy"] = False, float("nan"), float("nan")
                try:
                    got = fc.quantize(cxv, "e4m3fn", out=cyv, **kw).copy_to_host()     # compiles; checked
                    row[f"{mode} equal"] = bool(np.array_equal(got.view(np.uint32), ref[mode].view(np.uint32)))
                    if timed:
                        row[f"{mode} kernel"] = _kernel_resources(e4m3fn, kw)
                    if timed:
                        ms = _time_cuda(lambda: fc.quantize(xv, "e4m3fn", out=yv, **kw), reps) * 1e3
                        row[f"{mode} ms"] = round(ms, 4)
                        row[f"{mode} x copy"] = round(copy_ms / ms, 3)
                except Exception as exc:    # e.g. too many registers for the block size: say so, go on
                    row[f"{mode} error"] = repr(exc)[:300]
                    _log(f"variant {name}, {mode}: {exc!r}")
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        _log(f"variant {name}: " + ", ".join(f"{m} {row.get(m + ' x copy', '-')}x"
                                               f"{'' if row[m + ' equal'] else ' DIFFERS'} {row.get(m + ' kernel', '')}"
                                               for m in modes))
    # a launch that failed (e.g. too many registers for the block size) is reported, not a difference
    errors = {r["variant"]: [m for m in modes if m + " error" in r] for r in rows
              if any(m + " error" in r for m in modes)}
    failed = [r["variant"] for r in rows if not all(r[m + " equal"] or m + " error" in r for m in modes)]
    table = ""
    if timed:
        lines = [f"| variant | {' | '.join(f'{m} ms (x copy)' for m in modes)} | same bits |",
                 "|---|" + "---:|" * len(modes) + "---|",
                 f"| device copy (torch copy_) | {copy_ms:.4f} (1.000) |" + " |" * (len(modes) - 1) + " |",
                 f"| torch .to(float8_e4m3fn).to(float32) | {torch_ms:.4f} ({copy_ms / torch_ms:.3f}) |"
                 + " |" * (len(modes) - 1) + " |"]
        for r in rows:
            cells = " | ".join(f"{r[m + ' ms']:.4f} ({r[m + ' x copy']:.3f})" for m in modes)
            lines.append(f"| {r['variant']} | {cells} | {all(r[m + ' equal'] for m in modes)} |")
        table = "\n".join(lines)
        print(table, flush=True)
    _log(f"variants: {len(rows)} checked against the default kernel, {len(failed)} differ: {failed}; "
         f"launch errors: {errors}")
    res.put("variants", {"elements": n, "check_elements": int(cx.size), "reps": reps, "copy_ms": copy_ms,
                         "torch_round_trip_ms": torch_ms, "rows": rows, "table": table, "failed": failed,
                         "errors": errors})


def _spawn_preset_workers(args):
    import subprocess
    from fp8emu.formats import ALL_FORMATS
    # heaviest first, dealt round-robin: the 16-bit formats and e8m0fnu compile the most kernels
    names = [f.name for f in ALL_FORMATS]
    wanted = set(filter(None, args.formats.split(",")))
    names = [n for n in names if n in wanted] if wanted else names
    groups = [names[k::args.workers] for k in range(args.workers)]
    base = args.out or "cuda_check.json"
    procs = []
    env = dict(os.environ, NUMBA_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // (args.workers + 1))))
    for k, group in enumerate(groups):
        if not group:
            continue
        out = f"{base}.presets{k}"
        cmd = [sys.executable, "-m", "benchmarks.cuda_check", "--only", "presets", "--formats", ",".join(group),
               "--out", out] + (["--small"] if args.small else [])
        log = open(out + ".log", "w")
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), out, log))
    _log(f"presets: {len(procs)} workers: {groups}")
    return procs


def _collect_preset_workers(res, procs):
    rows, failed = [], []
    for proc, out, log in procs:
        rc = proc.wait()
        log.close()
        try:
            with open(out) as f:
                part = json.load(f).get("presets", {})
        except (OSError, ValueError):
            part = {}
        rows += part.get("rows", [])
        failed += part.get("failed", [])
        if rc != 0 and not part.get("failed"):
            with open(out + ".log") as f:
                failed.append({"worker": out, "rc": rc, "log_tail": f.read()[-3000:]})
        for path in (out, out + ".log"):
            if os.path.exists(path):
                os.remove(path)
    res.put("presets", {"cases": len(rows), "failed": failed, "rows": rows})
    _log(f"presets: {len(rows)} cases, {len(failed)} failed")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="JSON file for the results (rewritten after each check)")
    ap.add_argument("--small", action="store_true", help="tiny sizes (a smoke test, e.g. on the CUDA simulator)")
    ap.add_argument("--only", default="sweep,sr,presets,torch,bench", help="comma-separated checks to run")
    ap.add_argument("--formats", default="", help="presets check: only these formats (comma-separated)")
    ap.add_argument("--variants", default="", help="variants check: only these variants ('|'-separated names of "
                                                   "VARIANTS)")
    ap.add_argument("--workers", type=int, default=0,
                    help="run the presets check in this many subprocesses (formats split between them) while "
                         "this process runs the sweep and SR checks: kernel compilation is per process and "
                         "CPU-bound; the benchmark runs after they have all finished")
    args = ap.parse_args(argv)
    import numba
    import fp8emu.cuda as fc
    res = Results(args.out)
    env = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
           "simulated": fc.simulated(), "argv": sys.argv}
    try:
        import numba_cuda
        env["numba_cuda"] = getattr(numba_cuda, "__version__", "?")
    except ImportError:
        pass
    try:
        import torch
        env["torch"] = torch.__version__
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    from benchmarks.timing import header
    env["host"] = header()
    print(env["host"], flush=True)
    res.put("env", env)
    _log(str(env))
    only = set(args.only.split(","))
    t0 = time.perf_counter()
    procs = []
    if "presets" in only and args.workers > 0:
        only.discard("presets")
        procs = _spawn_preset_workers(args)
    if "sweep" in only:
        check_sweep(res, 8 if args.small else 30, args.small)
    if "sr" in only:
        check_sr(res, 1 << (10 if args.small else 26))
    if "presets" in only:
        check_presets(res, 1 << (9 if args.small else 24), 1 << (8 if args.small else 22),
                      set(filter(None, args.formats.split(","))))
    if procs:
        _collect_preset_workers(res, procs)
    if "torch" in only and not fc.simulated():
        check_torch(res, 1 << (10 if args.small else 20))
    if "bench" in only and not fc.simulated():
        bench(res, 28, 20)
    if "variants" in only:
        variants(res, 10 if args.small else 28, 20, set(filter(None, args.variants.split("|"))),
                 timed=not fc.simulated())
    res.put("seconds", round(time.perf_counter() - t0, 1))
    failed = [r for r in res.get("sr", []) if r["mismatched_bytes"]] + res.get("presets", {}).get("failed", [])
    failed += res.get("torch", {}).get("failed", []) + res.get("variants", {}).get("failed", [])
    if "sweep" in res and not args.small:
        failed += [k for k, v in res["sweep"].items() if not v["match"]]
    _log(f"done in {res['seconds']} s; failures: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
