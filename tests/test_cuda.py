"""The CUDA kernels (fp8emu.cuda) give the CPU's bits: every preset x mode x input dtype, the
exact-SR fallbacks, decode, grid independence, and the wrappers' errors.

On a machine without a GPU these run under Numba's CUDA simulator (``tests/conftest.py``
sets ``NUMBA_ENABLE_CUDASIM=1`` unless you set it yourself; export ``NUMBA_ENABLE_CUDASIM=0``
to run them on a GPU).  The simulator runs each GPU thread as a Python thread, so the arrays
are small; the GPU-sized checks are ``benchmarks/cuda_check.py``.
"""

import importlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("numba_cuda", reason="numba-cuda not installed (pip install fp8emu[cuda])")

from numba import cuda  # noqa: E402

import fp8emu  # noqa: E402
from fp8emu import _cuda_kernels, _random, spec  # noqa: E402
from fp8emu import cuda as fc  # noqa: E402
from fp8emu.format import Format, RoundMode, Specials  # noqa: E402
from fp8emu.formats import ALL_FORMATS, e4m3fn, e5m2, e8m0fnu  # noqa: E402

from strategies import FLOAT_DTYPES, any_format, float_bits, floats_of, round_modes  # noqa: E402
from test_kernels import MASK, _unmix64  # noqa: E402

Q = importlib.import_module("fp8emu.quantize")   # the module (fp8emu.quantize is the function)

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
MODES = list(RoundMode)
SEED, STREAM = 20241130, -7


def _inputs(fmt, dtype, n=203):
    """Specials, boundaries of ``fmt``, tiny values (the exact-SR deep path) and random values
    spread over ``fmt``'s range, as ``dtype``; ``n`` is no multiple of the grid's step."""
    rng = np.random.default_rng(fmt.bits * 100 + fmt.man_bits)
    fin = fmt.finite_values()
    top = float(np.max(np.abs(fin)))
    edge = [0.0, -0.0, np.inf, -np.inf, np.nan, top, -top, top * 1.07, -top * 1.5, 1e-40, -3e-39, 1e-20,
            2.0**-149, 1e-300, 65504.0, 3e38]
    k = n - len(edge)
    picks = rng.choice(fin, k)
    scale = 1 + rng.uniform(-0.6, 0.6, k) * 2.0 ** -rng.integers(0, 6, k)
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.concatenate([np.array(edge), picks * scale]).astype(dtype)
    return x


def _host_view(x):
    return x.view(np.uint16) if x.dtype == BF16 else x


def _bits(a):
    """Bit patterns (NaN-safe, -0-aware comparison of float arrays)."""
    a = np.asarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _gpu(x):
    return cuda.to_device(np.ascontiguousarray(_host_view(x)))


def _kw(mode, sr_bits=None):
    return dict(rounding=mode, seed=SEED if mode is RoundMode.STOCHASTIC else None, stream=STREAM,
                sr_bits=sr_bits if mode is RoundMode.STOCHASTIC else None)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_encode_and_quantize_equal_cpu_every_format_and_mode(fmt, dtype):
    x = _inputs(fmt, dtype)
    xd = _gpu(x)
    x_dtype = "bfloat16" if np.dtype(dtype) == BF16 else None
    for mode in MODES:
        for sat in (False, True):
            kw = _kw(mode)
            want = fp8emu.encode(x, fmt, saturate=sat, **kw)
            got = fc.encode(xd, fmt, saturate=sat, x_dtype=x_dtype, **kw).copy_to_host()
            assert got.dtype == want.dtype and np.array_equal(got, want), (fmt, dtype, mode, sat)
            try:
                wantq = fp8emu.quantize(x, fmt, saturate=sat, **kw)
            except ValueError:          # the dtype cannot hold fmt's values: both refuse
                with pytest.raises(ValueError, match="cannot hold"):
                    fc.quantize(xd, fmt, saturate=sat, x_dtype=x_dtype, **kw)
                continue
            gotq = fc.quantize(xd, fmt, saturate=sat, x_dtype=x_dtype, **kw).copy_to_host()
            assert np.array_equal(_bits(gotq), _bits(wantq)), (fmt, dtype, mode, sat)


@pytest.mark.parametrize("sr_bits", [1, 7, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", [e5m2, e4m3fn, e8m0fnu], ids=str)
def test_stochastic_sr_bits_equal_cpu(fmt, dtype, sr_bits):
    x = _inputs(fmt, dtype)
    kw = _kw(RoundMode.STOCHASTIC, sr_bits)
    assert np.array_equal(fc.encode(_gpu(x), fmt, **kw).copy_to_host(), fp8emu.encode(x, fmt, **kw))
    assert np.array_equal(_bits(fc.quantize(_gpu(x), fmt, **kw).copy_to_host()), _bits(fp8emu.quantize(x, fmt, **kw)))


def test_exact_sr_deep_float32_elements_take_the_generic_routine():
    """Float32 values below 2^-50 have more than 64 dropped bits in e4m3fn: the float32 kernel
    hands them to _round_bits.  Same codes as the CPU, which takes its generic kernel."""
    x = np.array([1e-40, -2e-45, 3e-20, 0.5, 1e-38, -7e-16] * 7, np.float32)
    assert fp8emu._kernels._count_f32_deep(x.view(np.uint32), Q._deep_limit(e4m3fn)) == 5 * 7
    for seed in range(3):
        kw = dict(rounding="stochastic", seed=seed)
        assert np.array_equal(fc.encode(_gpu(x), e4m3fn, **kw).copy_to_host(), fp8emu.encode(x, e4m3fn, **kw))


@pytest.mark.parametrize("specialized", [False, True], ids=["mode read per element", "per-mode kernel"])
@pytest.mark.parametrize("x,dtype,path", [(2.0**-30 * 1.2345, np.float64, "fast"),
                                          (1e-300, np.float64, "fast"),
                                          (2.0**-40 * 1.75, np.float32, "f32"), (1e-40, np.float32, "f32")])
def test_exact_sr_tie_falls_back_to_more_words(x, dtype, path, specialized):
    """Word 0 forced equal to the first 64 dropped bits (key_0 chosen by inverting mix64, as in
    test_kernels): the GPU thread must call _round_bits, which compares words 1, 2, ...;
    the result equals the exact spec for every element."""
    fmt = e4m3fn
    xs = np.array([x, x, x], dtype=dtype)
    v = spec.to_fraction(xs[0])
    e = spec._floor_log2(v)
    qe = max(e, fmt.emin) - fmt.man_bits
    f = v / spec.Fraction(2) ** qe
    f -= int(f)
    c0 = int(f * (1 << 64))
    i = 1
    ctr = ((i + 1) * _random.GAMMA) & MASK
    kb = 0x5EED5EED5EED5EED
    k0 = (_unmix64(c0) - ctr) & MASK
    key_j = lambda j: _random.mix64_py(kb + (j + 1) * _random.GAMMA)  # noqa: E731
    words = lambda idx: (lambda j: _random.mix64_py(((k0 if j == 0 else key_j(j)) + ((idx + 1) * _random.GAMMA)) & MASK))  # noqa: E731,E501
    want = [spec.round_scalar(xs[j], fmt, "stochastic", sr_words=words(j)) for j in range(3)]
    info = Q.INPUT_LAYOUTS[np.dtype(dtype).name]
    prm = Q._params(info, fmt, RoundMode.STOCHASTIC, False, 0)
    p32 = Q._params_f32(fmt, RoundMode.STOCHASTIC, False, 0, False) if path == "f32" else fc._P32_UNUSED
    lim = np.uint32(Q._deep_limit(fmt) - 1) if path == "f32" else np.uint32(0)
    bits = cuda.to_device(xs.view(info[3]))
    out = cuda.device_array(3, np.uint8)
    kernel = (_cuda_kernels.kernel(path, True, False, mode=5) if specialized
              else _cuda_kernels.kernel(path, True, False))
    fc._launch(kernel, 3, None, bits, out, fc._placeholder(0), p32, prm, np.uint64(kb), np.uint64(k0), lim)
    assert out.copy_to_host().tolist() == want


@pytest.mark.parametrize("tuning", [dict(specialize=1, unsigned=1), dict(specialize=1), dict(unsigned=1),
                                    dict(ilp=1), dict(ilp=3), dict(ilp=8),
                                    dict(specialize=1, unsigned=1, value_kernels=1),
                                    dict(specialize=1, unsigned=1, value_kernels=1, fixed_block=1),
                                    dict(fixed_block=1, ilp=3)], ids=str)
def test_kernel_variants_equal_cpu(tuning):
    """The benchmark's kernel variants (``benchmarks.cuda_check --only variants``): the loop's
    elements per thread, unsigned indices, one float32 kernel per mode instead of the mode read
    per element; each gives the CPU's bits (the default is every other test's)."""
    with fc._tuned(**tuning) as t:
        assert all(getattr(t, k) == v for k, v in tuning.items())
        for fmt, dtype in [(e4m3fn, np.float32), (e5m2, np.float32), (e8m0fnu, np.float32), (e5m2, np.float16)]:
            x = _inputs(fmt, dtype, n=101 + 8 * t.ilp)
            for mode in MODES:
                for sr_bits in ([None, 5] if mode is RoundMode.STOCHASTIC else [None]):
                    kw = _kw(mode, sr_bits)
                    got = fc.encode(_gpu(x), fmt, **kw).copy_to_host()
                    assert np.array_equal(got, fp8emu.encode(x, fmt, **kw)), (tuning, fmt, dtype, mode, sr_bits)
                    if fmt is not e8m0fnu:
                        got = fc.quantize(_gpu(x), fmt, **kw).copy_to_host()
                        assert np.array_equal(_bits(got), _bits(fp8emu.quantize(x, fmt, **kw))), (tuning, fmt, mode)
    assert fc._TUNING == fc._Tuning()


def test_tuning_from_the_environment_is_checked():
    assert fc._parse_tuning("") == fc._Tuning()
    assert fc._parse_tuning(" threads=512, ilp=8 ,specialize=1") == fc._Tuning(threads=512, ilp=8, specialize=True)
    for bad, msg in [("threads=100", "multiple of 32"), ("ilp=0", "1..16"), ("blocks_per_sm=99", "no cap"),
                     ("threads", "name=integer"), ("warps=4", "name=integer"), ("ilp=-1", "name=integer")]:
        with pytest.raises(ValueError, match=msg):
            fc._parse_tuning(bad)
    with pytest.raises(ValueError, match="1..16"):
        with fc._tuned(ilp=17):
            pass
    assert fc._TUNING == fc._Tuning()


def test_result_does_not_depend_on_the_grid(monkeypatch):
    """One thread or 2 blocks x 8 threads: element i always gets word(i)."""
    x = _inputs(e5m2, np.float32)
    kw = _kw(RoundMode.STOCHASTIC)
    a = fc.quantize(_gpu(x), e5m2, **kw).copy_to_host()
    monkeypatch.setattr(fc, "launch_config", lambda n, per_thread=1: (1, 1))
    b = fc.quantize(_gpu(x), e5m2, **kw).copy_to_host()
    assert np.array_equal(_bits(a), _bits(b)) and np.array_equal(_bits(a), _bits(fp8emu.quantize(x, e5m2, **kw)))


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_decode_every_code_equals_cpu(fmt):
    codes = np.arange(fmt.num_codes).astype(fmt.code_dtype)
    if fmt.num_codes > 512:     # 16-bit formats: both ends and a stride through the middle
        codes = np.concatenate([codes[:256], codes[256:-256:61], codes[-256:]])
    for dtype in (np.float32, np.float64, np.float16, "bfloat16"):
        try:
            want = fp8emu.decode(codes, fmt, dtype=BF16 if dtype == "bfloat16" else dtype)
        except ValueError:
            with pytest.raises(ValueError, match="cannot hold"):
                fc.decode(cuda.to_device(codes), fmt, dtype=dtype)
            continue
        got = fc.decode(cuda.to_device(codes), fmt, dtype=dtype).copy_to_host()
        assert np.array_equal(_bits(got), _bits(want)), (fmt, dtype)
        got32 = fc.decode(cuda.to_device(codes.astype(np.int32)), fmt, dtype=dtype).copy_to_host()
        assert np.array_equal(_bits(got32), _bits(got))


def test_decode_rejects_codes_out_of_range():
    with pytest.raises(ValueError, match=r"out of range for e2m1fn \(0..15\)"):
        fc.decode(cuda.to_device(np.array([3, 16], np.uint8)), "e2m1fn")
    with pytest.raises(ValueError, match="out of range"):
        fc.decode(cuda.to_device(np.array([-1], np.int16)), "e5m2")
    with pytest.raises(TypeError, match="integer"):
        fc.decode(cuda.to_device(np.zeros(2, np.float32)), "e5m2")


def test_non_native_byte_order_is_refused():
    """The kernels read and write native patterns: a byte-swapped device array (input, codes or
    ``out``) or a swapped ``dtype`` for decode is refused, not read as other values (it gave
    zeros, or swapped values, before)."""
    swapped = np.dtype(">f4") if np.little_endian else np.dtype("<f4")
    x = np.array([1.0, 2.5, 3.3], np.float32)
    for fn in (fc.quantize, fc.encode):
        with pytest.raises(TypeError, match="not in native byte order"):
            fn(cuda.to_device(x.astype(swapped)), e4m3fn)
    with pytest.raises(TypeError, match="not in native byte order"):
        fc.quantize(cuda.to_device(x), e4m3fn, out=cuda.to_device(np.zeros(3, swapped)))
    codes = cuda.to_device(fp8emu.encode(x, e4m3fn))
    with pytest.raises(TypeError, match="not in native byte order"):
        fc.decode(codes, e4m3fn, dtype=swapped)
    with pytest.raises(TypeError, match="not in native byte order"):
        fc.decode(cuda.to_device(fp8emu.encode(x, e4m3fn).astype(">u2" if np.little_endian else "<u2")), e4m3fn)
    assert np.array_equal(fc.decode(codes, e4m3fn).copy_to_host(), fp8emu.quantize(x, e4m3fn))


def test_shapes_out_and_in_place():
    x = _inputs(e4m3fn, np.float32, n=60).reshape(3, 4, 5)
    want = fp8emu.quantize(x, e4m3fn)
    xd = _gpu(x)
    got = fc.encode(xd, e4m3fn)
    assert got.shape == (3, 4, 5) and np.array_equal(got.copy_to_host(), fp8emu.encode(x, e4m3fn))
    out = cuda.device_array((3, 4, 5), np.uint8)
    assert fc.encode(xd, e4m3fn, out=out) is out
    assert fc.quantize(xd, e4m3fn, out=xd) is xd                    # in place
    assert np.array_equal(_bits(xd.copy_to_host()), _bits(want))
    assert fc.decode(fc.encode(_gpu(x), e4m3fn), e4m3fn).shape == (3, 4, 5)
    empty = fc.quantize(cuda.to_device(np.zeros((0, 3), np.float32)), e4m3fn)
    assert empty.shape == (0, 3)


def test_errors_are_precise():
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="host array; use fp8emu.encode"):
        fc.encode(x, e5m2)
    with pytest.raises(TypeError, match="CUDA device array"):
        fc.quantize(object(), e5m2)
    with pytest.raises(TypeError, match="dtype int32"):
        fc.encode(cuda.to_device(np.ones(4, np.int32)), e5m2)
    with pytest.raises(TypeError, match="cannot hold bfloat16 bits"):
        fc.encode(cuda.to_device(x), e5m2, x_dtype="bfloat16")
    with pytest.raises(TypeError, match="dtype float16 but x_dtype='bfloat16'"):
        fc.encode(cuda.to_device(x.astype(np.float16)), e5m2, x_dtype="bfloat16")
    with pytest.raises(TypeError, match="x_dtype='int8' is not supported"):
        fc.encode(cuda.to_device(x), e5m2, x_dtype="int8")
    with pytest.raises(ValueError, match="shape"):
        fc.encode(cuda.to_device(x), e5m2, out=cuda.device_array(3, np.uint8))
    with pytest.raises(TypeError, match="expected uint8"):
        fc.encode(cuda.to_device(x), e5m2, out=cuda.device_array(4, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        fc.encode(cuda.to_device(np.ones(8, np.float32))[::2], e5m2)     # a strided view (.T copies on a GPU)
    with pytest.raises(ValueError, match="sr_bits"):
        fc.encode(cuda.to_device(x), e5m2, sr_bits=3)


def test_torch_operators_have_cuda_kernels():
    """fp8emu.torch registers fp8emu.cuda as the CUDA implementation of its operators (a CUDA
    tensor reaches these kernels; without the registration PyTorch would refuse it)."""
    torch = pytest.importorskip("torch")
    import fp8emu.torch  # noqa: F401
    for op in ("encode", "decode", "quantize"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fp8emu::{op}", "CUDA"), op
    if torch.cuda.is_available() and not fc.simulated():
        x = torch.linspace(-300, 300, 1001, device="cuda")
        kw = dict(rounding="stochastic", seed=3, stream=4)
        assert torch.equal(fp8emu.torch.encode(x, "e5m2", **kw).cpu(), fp8emu.torch.encode(x.cpu(), "e5m2", **kw))


def test_cuda_training_turns_tf32_off_and_asks_for_deterministic_kernels(monkeypatch):
    torch = pytest.importorskip("torch")
    from fp8emu.torch import train as ttrain
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        ttrain.cuda_numerics()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        import os
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic) = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


@settings(max_examples=60)
@given(any_format(), st.sampled_from(FLOAT_DTYPES), st.data(), round_modes, st.booleans(),
       st.sampled_from([None, 1, 9, 32]), st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**64 - 1))
def test_any_format_any_bits_equal_cpu(fmt, dtype, data, mode, saturate, sr_bits, seed, stream):
    """Random formats (any width, bias, specials, subnormals on/off) and any input bit patterns:
    the GPU path the wrapper picks gives the CPU's codes and values."""
    xs = data.draw(st.lists(st.one_of(float_bits(dtype), floats_of(fmt, dtype)), min_size=1, max_size=40))
    _gpu_equals_cpu(np.array(xs, dtype=dtype), fmt, mode, saturate, sr_bits, seed, stream)


def _gpu_equals_cpu(x, fmt, mode, saturate, sr_bits, seed, stream):
    """encode and quantize of ``x`` on the GPU give the CPU's codes and values (or the CPU refuses quantize)."""
    kw = dict(rounding=mode, saturate=saturate, seed=seed, stream=stream,
              sr_bits=sr_bits if mode is RoundMode.STOCHASTIC else None)
    assert np.array_equal(fc.encode(_gpu(x), fmt, **kw).copy_to_host(), fp8emu.encode(x, fmt, **kw))
    try:
        want = fp8emu.quantize(x, fmt, **kw)
    except ValueError:
        return
    assert np.array_equal(_bits(fc.quantize(_gpu(x), fmt, **kw).copy_to_host()), _bits(want))


def test_cuda_step_check_tool_runs_cpu_against_cpu():
    """tools/cuda_step_check.py (a GPU-vs-CPU training step) on two CPU runs: everything equal."""
    pytest.importorskip("torch")
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "tools" / "cuda_step_check.py"), "--devices", "cpu,cpu",
                          "--batch", "4", "--size", "12"], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "weights       0 of" in res.stdout and "activations: identical" in res.stdout


def test_zero_exponent_format_into_float16_equals_cpu():
    """e0m11fnu has 11 significant bits and no implicit bit: float16 holds its values exactly,
    so the CPU quantizes into float16 from its table; the GPU path must not refuse it (it did,
    through the conservative field check for table-free value building)."""
    fmt = fp8emu.formats.get_format("e0m11fnu")
    x = np.linspace(0, 2, 301, dtype=np.float16)
    want = fp8emu.quantize(x, fmt)
    assert np.array_equal(_bits(fc.quantize(_gpu(x), fmt).copy_to_host()), _bits(want))


# ---- formats wider than 16 bits: no table, the kernels build each value from its code ---------------
def _wide_inputs(fmt, dtype, rng, n=120):
    """Values within a few ulps of ``fmt``'s midpoints (random binades, both signs), ``fmt``'s largest
    values and beyond, tiny values (exact SR's deep path) and specials, as ``dtype``."""
    m = fmt.man_bits
    e = rng.integers(fmt.emin - m - 2, fmt.emax + 2, n)
    k = rng.integers(1 << m, 1 << (m + 1), n)
    with np.errstate(over="ignore", under="ignore"):
        mid = np.ldexp((2 * k + 1).astype(np.float64), e - m - 1).astype(dtype)
        edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, fmt.max, -fmt.max, fmt.max * 1.5, 1e-40, -3e-39, 1e-300,
                         2.0**-149, 65504.0, 3e38], np.float64).astype(dtype)
    bits = _host_view(mid).view(np.dtype(f"u{np.dtype(dtype).itemsize}"))
    off = rng.integers(-3, 4, n).astype(np.int64)
    nudged = (bits.astype(np.int64) + off).astype(bits.dtype).view(dtype)
    x = np.concatenate([edge, np.where(np.isfinite(nudged.astype(np.float64)), nudged, mid)])
    return (x * rng.choice(np.array([-1, 1], dtype), x.size)).astype(dtype)


_WIDE = [*fp8emu.formats.WIDE_FORMATS, Format(5, 17), Format(8, 16, bias=128, specials="fn"),
         Format(5, 13, specials="fn"), Format(6, 20, specials="extended", signed=False),
         Format(4, 14, subnormals=False, specials="fnuz"), Format(8, 10, bias=128, specials="none")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, BF16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fmt", _WIDE, ids=str)
def test_wide_formats_quantize_equals_cpu_every_mode(fmt, dtype):
    """quantize into a format wider than 16 bits (no value table): the CPU's values, every mode and
    saturation, or both refuse a dtype that cannot hold the format's values."""
    assert fmt.bits > 16
    x = _wide_inputs(fmt, dtype, np.random.default_rng(fmt.bits * 7 + fmt.man_bits))
    xd = _gpu(x)
    x_dtype = "bfloat16" if np.dtype(dtype) == BF16 else None
    for mode in MODES:
        for sat in (False, True):
            kw = _kw(mode)
            try:
                want = fp8emu.quantize(x, fmt, saturate=sat, **kw)
            except ValueError:
                with pytest.raises(ValueError, match="cannot hold"):
                    fc.quantize(xd, fmt, saturate=sat, x_dtype=x_dtype, **kw)
                continue
            got = fc.quantize(xd, fmt, saturate=sat, x_dtype=x_dtype, **kw).copy_to_host()
            assert np.array_equal(_bits(got), _bits(want)), (fmt, dtype, mode, sat)


def test_wide_quantize_exact_sr_deep_elements_and_in_place():
    """e5m17 from float32 with exact SR (the float32 path): elements below 2^-72 drop more than 64
    bits, take _round_bits and then the table-free value; in place (out=x) too."""
    x = np.array([1e-40, -2e-45, 3e-30, 0.7, -1e-38, 1.5e-44, 2.5] * 5, np.float32)
    fmt = Format(5, 17)
    assert Q.kernel_arguments(fmt, np.float32, rounding="stochastic", seed=0).kernel == "f32"
    assert Q._deep_limit(fmt) > 0 and fp8emu._kernels._count_f32_deep(x.view(np.uint32), Q._deep_limit(fmt)) == 25
    for seed in range(3):
        kw = dict(rounding="stochastic", seed=seed, stream=seed + 5)
        want = fp8emu.quantize(x, fmt, **kw)
        xd = _gpu(x)
        assert fc.quantize(xd, fmt, out=xd, **kw) is xd
        assert np.array_equal(_bits(xd.copy_to_host()), _bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", _WIDE, ids=str)
def test_wide_decode_equals_cpu(fmt, dtype):
    rng = np.random.default_rng(fmt.bits)
    codes = np.concatenate([np.arange(64), fmt.num_codes - 1 - np.arange(64), rng.integers(0, fmt.num_codes, 300),
                            [fmt.max_code, fmt.max_code | fmt.sign_mask, fmt.sign_mask]]).astype(fmt.code_dtype)
    try:
        want = fp8emu.decode(codes, fmt, dtype=dtype)
    except ValueError:
        with pytest.raises(ValueError, match="cannot hold"):
            fc.decode(cuda.to_device(codes), fmt, dtype=dtype)
        return
    got = fc.decode(cuda.to_device(codes), fmt, dtype=dtype).copy_to_host()
    assert np.array_equal(_bits(got), _bits(want))
    bad = codes.astype(np.int64)
    bad[7] = fmt.num_codes
    with pytest.raises(ValueError, match="out of range"):
        fc.decode(cuda.to_device(bad), fmt, dtype=dtype)


@st.composite
def _wide_formats(draw):
    """A random valid Format of 17 to 32 bits (exponent width, bias, specials, subnormals, sign)."""
    while True:
        w = draw(st.integers(1, 11))
        signed = draw(st.booleans())
        m = draw(st.integers(17, 32)) - w - int(signed)
        default_bias = (1 << (w - 1)) - 1
        try:
            fmt = Format(w, m, bias=draw(st.integers(default_bias - 3, default_bias + 3)),
                         subnormals=draw(st.booleans()), specials=draw(st.sampled_from(list(Specials))), signed=signed)
        except ValueError:
            continue
        if fmt.bits > 16:
            return fmt


@settings(max_examples=40, suppress_health_check=[HealthCheck.large_base_example])
@given(_wide_formats(), st.sampled_from([np.float32, np.float64]), st.data(), round_modes, st.booleans(),
       st.sampled_from([None, 1, 9, 32]), st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**64 - 1))
def test_any_wide_format_any_bits_equal_cpu(fmt, dtype, data, mode, saturate, sr_bits, seed, stream):
    """Random formats wider than 16 bits and any input bit patterns: the CPU's codes and values."""
    xs = data.draw(st.lists(float_bits(dtype), min_size=1, max_size=30))
    x = np.concatenate([np.array(xs, dtype=dtype), _wide_inputs(fmt, dtype, np.random.default_rng(seed % 1000), 10)])
    _gpu_equals_cpu(x, fmt, mode, saturate, sr_bits, seed, stream)


# ------------------------------------------------------------------------------- out= (review fixes)

def _fresh_gpu_equals_cpu(got, want):
    assert np.array_equal(_bits(got), _bits(want)), int(np.sum(_bits(got) != _bits(want)))


@pytest.mark.parametrize("shift", [1, -1, 3])
def test_quantize_into_out_overlapping_x_gives_the_cpus_bits(shift):
    """``out`` over the same buffer as ``x`` shifted by some elements: a thread would overwrite
    input another has yet to read (the kernel raced and returned wrong bits); now the result goes
    through a temporary, as the CPU's does."""
    n = 40
    buf = (np.random.default_rng(0).standard_normal(n + abs(shift)) * 10).astype(np.float32)
    at_x, at_out = (0, shift) if shift > 0 else (-shift, 0)
    want = fp8emu.quantize(buf[at_x:at_x + n], e4m3fn)
    host = buf.copy()
    fp8emu.quantize(host[at_x:at_x + n], e4m3fn, out=host[at_out:at_out + n])      # the CPU's handling
    _fresh_gpu_equals_cpu(host[at_out:at_out + n], want)
    d = cuda.to_device(buf)
    out = d[at_out:at_out + n]
    assert fc.quantize(d[at_x:at_x + n], e4m3fn, out=out) is out
    _fresh_gpu_equals_cpu(d.copy_to_host()[at_out:at_out + n], want)


def test_encode_into_the_bytes_of_its_own_input_gives_the_cpus_codes():
    """uint8 codes written over the first bytes of the float32 input (same start, other element
    size): not the in-place case, so a temporary."""
    x = (np.random.default_rng(1).standard_normal(40) * 10).astype(np.float32)
    d = cuda.to_device(x)
    codes = d.view(np.uint8)[:40]
    assert fc.encode(d, e4m3fn, out=codes) is codes
    assert np.array_equal(codes.copy_to_host(), fp8emu.encode(x, e4m3fn))


def test_decode_into_memory_holding_its_codes_gives_the_cpus_values():
    codes = np.random.default_rng(2).integers(0, 0x7F, 40).astype(np.uint8)
    out = cuda.device_array(40, np.float32)
    codes_in_out = out.view(np.uint8)[:40]
    codes_in_out.copy_to_device(codes)
    assert fc.decode(codes_in_out, e4m3fn, out=out) is out
    _fresh_gpu_equals_cpu(out.copy_to_host(), fp8emu.decode(codes, e4m3fn))


def test_only_partial_overlap_takes_a_temporary():
    """In place (the identical buffer, same element size) writes directly; disjoint arrays too."""
    d = cuda.to_device(np.zeros(16, np.float32))
    other = cuda.to_device(np.zeros(8, np.float32))
    overlaps = fc._overlaps_other_than_identical
    assert not overlaps(d, d)
    assert not overlaps(d[:8], d[8:]) and not overlaps(d[:8], other)
    assert not overlaps(d.view(np.uint32), d)                        # same bytes, same element size
    assert overlaps(d[1:9], d[:8]) and overlaps(d[:8], d[4:12])
    assert overlaps(d.view(np.uint8)[:16], d[:4])                    # same start, other element size
    assert not overlaps(d[:0], d[:0])


def test_out_of_another_kind_is_refused_as_on_the_cpu():
    """The CPU refuses an ``out`` whose dtype is not the result's (an int32 ``out`` for float32
    values would receive float bit patterns); the GPU now does too, in the CPU's words."""
    x = np.linspace(-3, 3, 9, dtype=np.float32)
    xd = cuda.to_device(x)
    codes = np.arange(9, dtype=np.uint8)
    cases = [(fp8emu.quantize, fc.quantize, x, xd, np.int32, "float32"),
             (fp8emu.quantize, fc.quantize, x, xd, np.uint32, "float32"),
             (fp8emu.encode, fc.encode, x, xd, np.int8, "uint8"),
             (fp8emu.decode, fc.decode, codes, cuda.to_device(codes), np.int32, "float32")]
    for cpu, gpu, host, dev, wrong, expected in cases:
        message = f"out has dtype {np.dtype(wrong)}; expected {expected}"
        with pytest.raises(TypeError, match=message):
            cpu(host, e4m3fn, out=np.empty(9, wrong))
        with pytest.raises(TypeError, match=message):
            gpu(dev, e4m3fn, out=cuda.device_array(9, wrong))


def test_bfloat16_bits_may_come_as_int16_or_uint16():
    """The PyTorch bridge passes bfloat16 tensors as their int16 bits: that ``out`` stays accepted
    (and gives the CPU's bits); other dtypes for bfloat16 bits are refused."""
    x = np.linspace(-3, 3, 9, dtype=np.float32).astype(BF16)
    codes = fp8emu.encode(x, e4m3fn)
    want_values = fp8emu.decode(codes, e4m3fn, dtype=BF16).view(np.uint16)
    want_rounded = fp8emu.quantize(x, e4m3fn).view(np.uint16)
    for bits in (np.int16, np.uint16):
        out = cuda.device_array(9, bits)
        fc.decode(cuda.to_device(codes), e4m3fn, dtype="bfloat16", out=out)
        assert np.array_equal(out.copy_to_host().view(np.uint16), want_values)
        for x_bits in (np.int16, np.uint16):
            out = cuda.device_array(9, bits)
            fc.quantize(cuda.to_device(x.view(x_bits)), e4m3fn, x_dtype="bfloat16", out=out)
            assert np.array_equal(out.copy_to_host().view(np.uint16), want_rounded)
    with pytest.raises(TypeError, match=r"out has dtype float16; expected uint16 or int16 \(the bits of bfloat16\)"):
        fc.decode(cuda.to_device(codes), e4m3fn, dtype="bfloat16", out=cuda.device_array(9, np.float16))
    with pytest.raises(TypeError, match="out has dtype uint32; expected uint16 or int16"):
        fc.quantize(cuda.to_device(x.view(np.uint16)), e4m3fn, x_dtype="bfloat16", out=cuda.device_array(9, np.uint32))


@pytest.mark.parametrize("name", ["encode", "quantize", "decode"])
def test_host_out_names_the_function_called(name):
    x = cuda.to_device(np.ones(4, np.uint8 if name == "decode" else np.float32))
    host_out = np.empty(4, np.uint8 if name == "encode" else np.float32)
    with pytest.raises(TypeError, match=rf"out is a host array; use fp8emu\.{name} for host arrays"):
        getattr(fc, name)(x, e4m3fn, out=host_out)
