"""fp8emu.matmul: quantization, codes, batching, scales, output rounding, stochastic streams, bad input."""

import importlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fp8emu import decode, encode, matmul, quantize
from fp8emu.accumulators import fp32_blas, fp32_pairwise, fp32_sequential, lowp
from fp8emu.formats import bfloat16, e4m3fn, e5m2, float16

from oracles_gemm import dot_sequential, matmul_by


def _ab(m=6, k=20, n=5, seed=0, scale=4.0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((m, k)) * scale).astype(np.float32),
            (rng.standard_normal((k, n)) * scale).astype(np.float32))


def test_float32_default_is_np_matmul():
    a, b = _ab()
    np.testing.assert_array_equal(matmul(a, b), np.matmul(a, b))
    assert matmul(a, b).dtype == np.float32


def test_quantized_operands_then_the_accumulator_order():
    a, b = _ab(seed=1)
    got = matmul(a, b, a_fmt=e4m3fn, b_fmt="e5m2", saturate=True, accumulator=fp32_sequential)
    qa, qb = quantize(a, e4m3fn, saturate=True), quantize(b, e5m2, saturate=True)
    np.testing.assert_array_equal(got, matmul_by(dot_sequential, qa, qb))
    assert not np.array_equal(got, matmul(a, b, accumulator=fp32_sequential))  # quantization did something


def test_codes_are_decoded_not_rounded():
    a, b = _ab(seed=2)
    ca, cb = encode(a, e4m3fn, saturate=True), encode(b, e5m2)
    assert ca.dtype == np.uint8
    np.testing.assert_array_equal(matmul(ca, cb, a_fmt=e4m3fn, b_fmt=e5m2, accumulator=fp32_pairwise),
                                  matmul(a, b, a_fmt=e4m3fn, b_fmt=e5m2, saturate=True, accumulator=fp32_pairwise))
    c16 = encode(a, float16)
    assert c16.dtype == np.uint16
    np.testing.assert_array_equal(matmul(c16, b, a_fmt=float16), decode(c16, float16) @ b)


@pytest.mark.parametrize("sa, sb", [((7,), (7, 4)), ((3, 5, 7), (7, 2)), ((2, 1, 4, 7), (3, 7, 6)),
                                    ((5, 7), (7,)), ((7,), (2, 7, 3)), ((1, 3, 7), (4, 1, 7, 2))])
def test_batched_shapes_like_np_matmul(sa, sb):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    want = np.matmul(a, b)
    got = matmul(a, b, accumulator=fp32_sequential)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batched_slices_equal_2d_calls():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 4, 9)).astype(np.float32)
    b = rng.standard_normal((9, 5)).astype(np.float32)
    got = matmul(a, b, a_fmt=e5m2, b_fmt=e5m2, accumulator=fp32_sequential)
    for i in range(3):
        np.testing.assert_array_equal(got[i], matmul(a[i], b, a_fmt=e5m2, b_fmt=e5m2, accumulator=fp32_sequential))


@pytest.mark.parametrize("a_scale, b_scale", [(2.0 ** -4, None), (None, 8.0), (0.5, 2.0 ** 10),
                                              ("rows", "cols")])
def test_power_of_two_scales_are_exact(a_scale, b_scale):
    a, b = _ab(seed=5, scale=300.0)
    if a_scale == "rows":
        a_scale = np.exp2(np.arange(6) - 3.0)[:, None]
        b_scale = np.exp2(np.arange(5) + 1.0)
    got = matmul(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn, a_scale=a_scale, b_scale=b_scale, accumulator=fp32_sequential)
    sa = 1.0 if a_scale is None else np.asarray(a_scale)
    sb = 1.0 if b_scale is None else np.asarray(b_scale)
    qa = quantize(a.astype(np.float64) / sa, e4m3fn).astype(np.float32)
    qb = quantize(b.astype(np.float64) / sb, e4m3fn).astype(np.float32)
    want = (matmul_by(dot_sequential, qa, qb).astype(np.float64) * (sa * np.broadcast_to(sb, (1, 5)))).astype(
        np.float32)
    np.testing.assert_array_equal(got, want)


def test_scale_brings_values_into_range():
    a = np.full((2, 4), 5000.0, dtype=np.float32)   # above e4m3fn max 448
    b = np.ones((4, 3), dtype=np.float32)
    assert np.isnan(matmul(a, b, a_fmt=e4m3fn)).all()
    np.testing.assert_array_equal(matmul(a, b, a_fmt=e4m3fn, a_scale=16.0), np.full((2, 3), 4 * 16 * 320.0))


def test_output_rounding():
    a, b = _ab(seed=6)
    y = matmul(a, b, a_fmt=e5m2, b_fmt=e5m2, accumulator=fp32_sequential)
    y8 = matmul(a, b, a_fmt=e5m2, b_fmt=e5m2, accumulator=fp32_sequential, out_fmt=e5m2, out_rounding="toward_zero")
    np.testing.assert_array_equal(y8, quantize(y, e5m2, rounding="toward_zero"))


def test_stochastic_operands_streams_and_seeds():
    a, b = _ab(seed=7)
    kw = dict(a_fmt=e5m2, b_fmt=e5m2, rounding="stochastic", accumulator=fp32_sequential)
    y1 = matmul(a, b, seed=3, stream=10, **kw)
    np.testing.assert_array_equal(y1, matmul(a, b, seed=3, stream=10, **kw))
    assert not np.array_equal(y1, matmul(a, b, seed=4, stream=10, **kw))
    qa = quantize(a, e5m2, rounding="stochastic", seed=3, stream=10)
    qb = quantize(b, e5m2, rounding="stochastic", seed=3, stream=11)
    np.testing.assert_array_equal(y1, matmul_by(dot_sequential, qa, qb))


def test_stochastic_accumulator_gets_the_call_stream_and_batch_offsets():
    rng = np.random.default_rng(8)
    a1 = quantize(rng.standard_normal((3, 40)).astype(np.float32), e5m2)
    b = quantize(rng.standard_normal((40, 4)).astype(np.float32), e5m2)
    acc = lowp(bfloat16, 8, "stochastic")
    a = np.stack([a1, a1])
    y = matmul(a, b, accumulator=acc, seed=1, stream=5)
    np.testing.assert_array_equal(y, matmul(a, b, accumulator=acc, seed=1, stream=5))
    assert not np.array_equal(y[0], y[1])         # each slice has its own element indices
    np.testing.assert_array_equal(y[0], acc.matmul_2d(a1, b, seed=1, stream=8))
    np.testing.assert_array_equal(y[1], acc.matmul_2d(a1, b, seed=1, stream=8, index0=12))


def test_stochastic_accumulator_with_its_own_seed_numbers_elements_over_the_batch():
    """Without a call seed the accumulator's own seed and stream are used, but the element indices
    still run over the whole batched result (docs/accumulators.md): the slices draw different bits."""
    rng = np.random.default_rng(8)
    a1 = quantize(rng.standard_normal((3, 40)).astype(np.float32), e5m2)
    b = quantize(rng.standard_normal((40, 4)).astype(np.float32), e5m2)
    acc = lowp(bfloat16, 8, "stochastic", seed=5, stream=2)
    y = matmul(np.stack([a1, a1]), b, accumulator=acc)
    assert not np.array_equal(y[0], y[1])
    np.testing.assert_array_equal(y[0], acc.matmul_2d(a1, b))
    np.testing.assert_array_equal(y[1], acc.matmul_2d(a1, b, index0=12))


def test_nan_and_inf_propagate_as_ieee():
    a, b = _ab(seed=9)
    a[1, 3] = np.nan
    a[2, 0] = np.inf
    b[0, 4] = 0.0
    y = matmul(a, b, accumulator=fp32_sequential)
    assert np.isnan(y[1]).all()
    assert np.isnan(y[2, 4])                       # Inf * 0
    assert np.isinf(y[2, :4]).all()
    y8 = matmul(a, b, a_fmt=e4m3fn, saturate=True, accumulator=fp32_sequential)
    assert np.isnan(y8[1]).all() and np.isfinite(y8[2]).all()   # saturating cast: Inf -> 448, NaN stays NaN


@pytest.mark.parametrize("call, err, match", [
    (lambda a, b: matmul(a, b.T), ValueError, "shape mismatch"),
    (lambda a, b: matmul(np.ones((2, 3, 20)), np.ones((4, 20, 5))), ValueError, "batch dimensions"),
    (lambda a, b: matmul(a.astype(np.int32), b), TypeError, "float array"),
    (lambda a, b: matmul(a.astype(np.complex64), b), TypeError, "float array"),
    (lambda a, b: matmul(a > 0, b), TypeError, "float array"),
    (lambda a, b: matmul(encode(a, float16), b, a_fmt=e5m2), TypeError, "uint16 codes but e5m2"),
    (lambda a, b: matmul(a, b, a_fmt=e4m3fn, a_scale=np.ones(20)), ValueError, "extent 1 along the contraction"),
    (lambda a, b: matmul(a, b, b_scale=np.ones((20, 1))), ValueError, "extent 1 along the contraction"),
    (lambda a, b: matmul(a, b, a_scale=np.ones((7, 1))), ValueError, "a_scale has shape"),
    (lambda a, b: matmul(a, b, a_scale=3.0), ValueError, "powers of two"),
    (lambda a, b: matmul(a, b, a_scale=-2.0), ValueError, "powers of two"),
    (lambda a, b: matmul(a, b, a_scale=np.inf), ValueError, "powers of two"),
    (lambda a, b: matmul(a, b, a_fmt=bfloat16, b_fmt=bfloat16), ValueError, "cannot represent"),
    (lambda a, b: matmul(a, b, accumulator="fp32_blas"), TypeError, "Accumulator"),
    (lambda a, b: matmul(a, b, a_fmt="e9m9"), ValueError, "e9m9|exp_bits"),
    (lambda a, b: matmul(a, b, a_fmt=e5m2, rounding="nearest"), ValueError, "ambiguous"),
    (lambda a, b: matmul(np.float32(1.0), b), ValueError, "at least one dimension"),
])
def test_bad_input(call, err, match):
    a, b = _ab()
    with pytest.raises(err, match=match):
        call(a, b)


def test_nvfp4_operand_is_refused_by_name():
    """An NVFP4Tensor (not a scalar, as the old message said) is refused, saying what to pass instead."""
    from fp8emu.scaling import nvfp4_dequantize, nvfp4_quantize
    a, b = _ab()
    t = nvfp4_quantize(a)
    with pytest.raises(TypeError, match=r"a is an NVFP4Tensor.*nvfp4_dequantize\(a\).*a_fmt=None"):
        matmul(t, b)
    with pytest.raises(TypeError, match=r"b is an NVFP4Tensor"):
        matmul(b.T, nvfp4_quantize(b, axis=0))
    np.testing.assert_array_equal(matmul(nvfp4_dequantize(t), b, accumulator=fp32_sequential),
                                  matmul(t.dequantize(), b, accumulator=fp32_sequential))


@pytest.mark.parametrize("kw", [dict(a_fmt=e4m3fn, b_fmt=e5m2),
                                dict(a_fmt=e5m2, b_fmt=e5m2, rounding="stochastic", seed=4, stream=2),
                                dict()])
def test_bfloat16_operands_are_taken_like_float16(kw):
    """ml_dtypes' bfloat16 operands (as fp8emu.quantize takes them): the bits of the same values in float32."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a, b = _ab(seed=12)
    ab = a.astype(ml_dtypes.bfloat16)
    want = matmul(ab.astype(np.float32), b, accumulator=fp32_sequential, **kw)
    np.testing.assert_array_equal(matmul(ab, b, accumulator=fp32_sequential, **kw), want)
    bb = b.astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(matmul(a, bb, accumulator=fp32_sequential, **kw),
                                  matmul(a, bb.astype(np.float32), accumulator=fp32_sequential, **kw))


def test_blas_with_fp8_operands_close_to_exact():
    a, b = _ab(m=16, k=512, n=8, seed=10)
    y = matmul(a, b, a_fmt=e4m3fn, b_fmt=e5m2, saturate=True, accumulator=fp32_blas)
    qa = quantize(a, e4m3fn, saturate=True).astype(np.float64)
    qb = quantize(b, e5m2, saturate=True).astype(np.float64)
    bound = 512 * 2.0 ** -24 / (1 - 512 * 2.0 ** -24) * (np.abs(qa) @ np.abs(qb))
    assert np.all(np.abs(y - qa @ qb) <= bound)


def test_quantized_flag_skips_the_rounding_pass():
    a, b = _ab(seed=11)
    qa, qb = quantize(a, e4m3fn, saturate=True), quantize(b, e5m2)
    want = matmul(a, b, a_fmt=e4m3fn, b_fmt=e5m2, saturate=True, accumulator=fp32_sequential)
    np.testing.assert_array_equal(matmul(qa, qb, a_fmt=e4m3fn, b_fmt=e5m2, quantized=True,
                                         accumulator=fp32_sequential), want)
    # not checked: unquantized values go through as they are (so the flag really skips rounding)
    np.testing.assert_array_equal(matmul(a, b, a_fmt=e4m3fn, b_fmt=e5m2, quantized=True,
                                         accumulator=fp32_sequential),
                                  matmul(a, b, accumulator=fp32_sequential))


@pytest.mark.parametrize("kw", [{}, {"saturate": True}, {"rounding": "toward_zero", "out_fmt": "e5m2"},
                                {"b_scale": 4.0}])
def test_large_operand_fused_blocks_equal_quantize_then_matmul(kw, monkeypatch):
    """A large ``a`` is quantized and multiplied a block of rows at a time (``_fused_blas_rows``);
    the result equals quantizing all of ``a`` first.  Operands chosen so every partial sum is
    exact in float32 (any summation order gives the same bits)."""
    gemm = importlib.import_module("fp8emu.gemm")
    monkeypatch.setattr(gemm, "CACHE_BLOCK_BYTES", 1 << 14)   # many blocks of uneven size
    monkeypatch.setattr(gemm, "_MIN_BLOCK_ROWS", 1)
    calls = []
    real = gemm._fused_blas_rows
    monkeypatch.setattr(gemm, "_fused_blas_rows", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(5)
    a = (rng.uniform(1, 64, (1000, 300)) * rng.choice([-1, 1], (1000, 300))).astype(np.float32)
    a[3, 4] = 1e6      # overflows e4m3fn: Inf/NaN or max, as the rounding says
    b = rng.integers(-8, 9, (300, 7)).astype(np.float32)
    y = matmul(a, b, a_fmt="e4m3fn", b_fmt="e5m2", **kw)
    assert calls, "the fused path was not taken"
    rounding, sat = kw.get("rounding", "nearest_even"), kw.get("saturate", False)
    sb = kw.get("b_scale", 1.0)
    want = np.matmul(quantize(a, "e4m3fn", rounding=rounding, saturate=sat),
                     quantize(b / np.float32(sb), "e5m2", rounding=rounding, saturate=sat)) * np.float32(sb)
    if "out_fmt" in kw:
        want = quantize(want, "e5m2")
    assert np.array_equal(y, want, equal_nan=True)


def _pipeline_possible(monkeypatch=None):
    """Skip unless the pipeline can run here; with ``monkeypatch``, let it run in this process
    even though pytest imported NumPy before fp8emu (these tests check bits, not speed)."""
    import numba

    import fp8emu
    if monkeypatch is not None:
        monkeypatch.setattr(fp8emu, "_OPENBLAS_SPIN_SET", True)
        monkeypatch.setenv("FP8EMU_GEMM_PIPELINE", "1")

    from fp8emu._blas import blas_threads
    threads = blas_threads()
    if threads is None or numba.get_num_threads() < 2 or threads < 2:
        pytest.skip("the two-worker pipeline needs NumPy's OpenBLAS and two threads of each")


def test_fused_blocks_pipeline_bits_equal_the_serial_loop_on_one_blas_thread(monkeypatch):
    """Many row blocks on two threads run on the two-worker pipeline (each block rounded and
    multiplied on one thread); its product has the bits of the serial loop at one OpenBLAS
    thread, for random operands whose sums round (not only exact ones), and OpenBLAS's thread
    count is back afterwards."""
    _pipeline_possible(monkeypatch)
    from fp8emu._blas import blas_threads
    gemm = importlib.import_module("fp8emu.gemm")
    monkeypatch.setattr(gemm, "CACHE_BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(gemm, "_MIN_BLOCK_ROWS", 1)
    ran = []
    real = gemm._run_pipeline
    monkeypatch.setattr(gemm, "_run_pipeline", lambda *a: ran.append(1) or real(*a))
    rng = np.random.default_rng(11)
    a = rng.standard_normal((3000, 257), dtype=np.float32)
    b = rng.standard_normal((257, 40), dtype=np.float32)
    before = blas_threads()
    y = matmul(a, b, a_fmt="e5m2", b_fmt="e4m3fn")
    assert ran, "the pipeline was not taken"
    assert blas_threads() == before
    blas_threads(1)
    try:
        serial = matmul(a, b, a_fmt="e5m2", b_fmt="e4m3fn")
    finally:
        blas_threads(before)
    assert len(ran) == 1, "one BLAS thread must keep the serial loop"
    assert np.array_equal(y, serial)
    want = np.matmul(quantize(a, "e5m2"), quantize(b, "e4m3fn"))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)


def test_fused_blocks_pipeline_only_when_fp8emu_set_openblas_spin_timeout():
    """The pipeline needs idle OpenBLAS workers to sleep: fp8emu first (OpenBLAS loads with its
    short spin timeout), NumPy first (the import has OpenBLAS re-read it and restart its
    workers) and a timeout of the user's own all allow it (given two threads); NumPy first
    while another Python thread runs (no restart then: the workers keep spinning) does not."""
    _pipeline_possible()
    probe = "import fp8emu.gemm as g; print(g._pipeline_ready(4))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    # two threads of each, whatever this process's environment says: in CI's full run the child
    # got one BLAS thread from it (an earlier test had left a thread cap in os.environ)
    env.update(FP8EMU_GEMM_PIPELINE="1", NUMBA_NUM_THREADS="2", OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    def run(code, **extra):
        return subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True,
                              check=True, cwd=pathlib.Path(__file__).resolve().parents[1]).stdout.strip()
    assert run("import numpy, " + probe.replace("import ", "", 1)) == "True"
    other_thread = "import threading, numpy; e = threading.Event(); threading.Thread(target=e.wait).start(); "
    assert run(other_thread + probe + "; e.set()") == "False"
    assert run(probe) == "True"
    assert run("import numpy, " + probe.replace("import ", "", 1), OPENBLAS_THREAD_TIMEOUT="4") == "True"


def test_fused_blocks_pipeline_is_opt_in_and_its_switch_is_checked(monkeypatch):
    """The serial loop unless FP8EMU_GEMM_PIPELINE=1 (the pipeline lost 15-30 % on a Xeon and
    changes bits on OpenBLAS's Haswell kernel); any other value than 0/1 is an error."""
    _pipeline_possible(monkeypatch)
    gemm = importlib.import_module("fp8emu.gemm")
    assert gemm._pipeline_ready(4)
    monkeypatch.delenv("FP8EMU_GEMM_PIPELINE")
    assert not gemm._pipeline_ready(4)
    monkeypatch.setenv("FP8EMU_GEMM_PIPELINE", "0")
    assert not gemm._pipeline_ready(4)
    monkeypatch.setenv("FP8EMU_GEMM_PIPELINE", "yes")
    with pytest.raises(ValueError, match="FP8EMU_GEMM_PIPELINE='yes': expected 1"):
        matmul(np.ones((5000, 300), np.float32), np.ones((300, 4), np.float32), a_fmt="e5m2", b_fmt="e5m2")


def test_fused_blocks_pipeline_error_propagates_and_restores_blas_threads(monkeypatch):
    _pipeline_possible(monkeypatch)
    from fp8emu._blas import blas_threads
    gemm = importlib.import_module("fp8emu.gemm")
    monkeypatch.setattr(gemm, "CACHE_BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(gemm, "_MIN_BLOCK_ROWS", 1)
    real = gemm._round_and_multiply
    seen = []

    def failing(*args):
        seen.append(args[6])
        if args[6] > 0 and len(seen) == 3:
            raise RuntimeError("planted failure in a block")
        return real(*args)

    monkeypatch.setattr(gemm, "_round_and_multiply", failing)
    before = blas_threads()
    a = np.ones((2000, 100), np.float32)
    with pytest.raises(RuntimeError, match="planted failure"):
        matmul(a, np.ones((100, 8), np.float32), a_fmt="e5m2", b_fmt="e5m2")
    assert blas_threads() == before


def test_block_rows_cache_sized_long_enough_bounded_and_even(monkeypatch):
    """Row blocks: ~4 MiB of ``a`` (to stay in cache; the size of a 32 MiB L3), at least 2048 rows
    (each sgemm call packs B again), at most 64 MiB, and spread evenly (no short last block)."""
    gemm = importlib.import_module("fp8emu.gemm")
    monkeypatch.setattr(gemm, "CACHE_BLOCK_BYTES", gemm._cache_block_bytes(32 << 20))
    rows = gemm.block_rows
    assert rows(131072, 576) == 2048                   # 4 MiB is 1820 rows: the minimum wins
    assert rows(131072, 64) == 16384                   # 4 MiB of short rows
    assert rows(2048, 4608) == 2048 and rows(100, 4608) == 100       # one block, one sgemm
    assert rows(4096, 1 << 16) == 256                  # 2048 rows would be 512 MiB: the 64 MiB cap
    assert rows(2049, 576) == 1025 and rows(5000, 576) == 1667      # evened out, not 2048 + 1
    for m in (1, 7, 2047, 2048, 2049, 10**5 + 3):
        for k in (1, 3, 576, 4608, 1 << 20):
            r = rows(m, k)
            blocks = -(-m // r)
            assert 1 <= r <= m and r * (blocks - 1) < m     # every block non-empty
            assert r * 4 * k <= max(gemm._MAX_BLOCK_BYTES, 4 * k)
            assert r * blocks - m < blocks                  # the last block is at most blocks - 1 rows short
    monkeypatch.setattr(gemm, "_MIN_BLOCK_ROWS", 1)
    assert rows(131072, 576) == 1796                  # 73 blocks of about 4 MiB


def test_block_bytes_follow_the_l3_size(tmp_path):
    """1/32 of the L3 that Linux reports (sysfs), between 4 and 16 MiB; 4 MiB where it reports
    none or something unreadable."""
    gemm = importlib.import_module("fp8emu.gemm")
    assert gemm._cache_block_bytes(None) == 4 << 20
    assert gemm._cache_block_bytes(32 << 20) == 4 << 20          # AMD Zen 3-5: one CCD's L3
    assert gemm._cache_block_bytes(300 << 20) == (300 << 20) // 32
    assert gemm._cache_block_bytes(480 << 20) == 15 << 20        # the Intel CI host
    assert gemm._cache_block_bytes(2 << 30) == 16 << 20
    assert gemm.CACHE_BLOCK_BYTES == gemm._cache_block_bytes(gemm._l3_bytes())   # this host's

    def index(name, level, kind, size):
        d = tmp_path / "cache" / name
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    index("index0", 1, "Data", "48K")
    index("index1", 1, "Instruction", "32K")
    index("index2", 2, "Unified", "2048K")
    index("index3", 3, "Unified", "491520K")
    (tmp_path / "cache" / "uevent").write_text("")
    assert gemm._l3_bytes(str(tmp_path / "cache")) == 491520 << 10
    (tmp_path / "cache" / "index3" / "size").write_text("32M\n")
    assert gemm._l3_bytes(str(tmp_path / "cache")) == 32 << 20
    (tmp_path / "cache" / "index3" / "size").write_text("lots\n")
    assert gemm._l3_bytes(str(tmp_path / "cache")) is None
    (tmp_path / "cache" / "index3" / "level").write_text("2\n")         # no level-3 cache
    assert gemm._l3_bytes(str(tmp_path / "cache")) is None
    assert gemm._l3_bytes(str(tmp_path / "nowhere")) is None


def test_quantized_operand_buffer_is_reused_not_returned():
    """``fp32_blas`` with float32 ``a`` quantizes it into a per-thread buffer that is reused;
    ``a`` of one block is exactly one sgemm of the quantized operands (same bits for any
    values), and no result aliases the buffer (a later call leaves it unchanged)."""
    gemm = importlib.import_module("fp8emu.gemm")
    rng = np.random.default_rng(12)
    results = []
    for m, k, n in [(50, 40, 7), (9, 300, 33), (50, 40, 7)]:
        a = rng.standard_normal((m, k), dtype=np.float32) * 100
        b = rng.standard_normal((k, n), dtype=np.float32)
        y = matmul(a, b, a_fmt="e5m2", b_fmt="e5m2")
        want = np.matmul(quantize(a, "e5m2"), quantize(b, "e5m2"))
        assert np.array_equal(y.view(np.int32), want.view(np.int32))
        assert not np.shares_memory(y, gemm._fused_buffer.a)
        results.append((y, y.copy()))
    for y, copy in results:
        assert np.array_equal(y, copy)


@pytest.mark.parametrize("case", ["fused", "sequential", "batch", "a_vec", "b_vec", "both_vec", "scale",
                                  "out_fmt", "codes"])
def test_out_receives_the_same_bits_and_is_returned(case):
    """``out=`` gives the bits of the call without it, on every path (fused quantize-then-sgemm,
    another accumulator, batches, vectors, scales and output rounding that follow the product,
    integer codes), and returns ``out`` itself."""
    rng = np.random.default_rng(21)
    a = rng.standard_normal((40, 24), dtype=np.float32) * 8
    b = rng.standard_normal((24, 9), dtype=np.float32)
    kw = dict(a_fmt="e4m3fn", b_fmt="e5m2")
    if case == "sequential":
        kw["accumulator"] = fp32_sequential
    elif case == "batch":
        a = rng.standard_normal((3, 40, 24), dtype=np.float32)
        b = rng.standard_normal((1, 24, 9), dtype=np.float32)
    elif case in ("a_vec", "both_vec"):
        a = a[0]
        b = b[:, 0] if case == "both_vec" else b
    elif case == "b_vec":
        b = b[:, 0]
    elif case == "scale":
        kw.update(a_scale=np.full((40, 1), 0.5), b_scale=4.0)
    elif case == "out_fmt":
        kw.update(out_fmt="e5m2", out_rounding="toward_zero")
    elif case == "codes":
        a = encode(a, "e4m3fn")
    want = matmul(a, b, **kw)
    out = np.full(want.shape, np.nan, dtype=np.float32)
    got = matmul(a, b, out=out, **kw)
    assert got is out
    assert np.array_equal(out.view(np.int32), want.view(np.int32))


def test_out_overlapping_an_operand_or_not_contiguous():
    """``out`` may be an operand (the product of the original values lands there, as with
    ``np.matmul``), byte-swapped or strided (then filled by a copy)."""
    rng = np.random.default_rng(22)
    a = rng.standard_normal((16, 16), dtype=np.float32)
    b = rng.standard_normal((16, 16), dtype=np.float32)
    want = matmul(a, b, a_fmt="e5m2", b_fmt="e5m2")
    a_copy = a.copy()
    assert matmul(a_copy, b, a_fmt="e5m2", b_fmt="e5m2", out=a_copy) is a_copy
    assert np.array_equal(a_copy, want)
    for out in (np.empty((16, 16), dtype=">f4"), np.empty((16, 32), dtype=np.float32)[:, ::2],
                np.empty((16, 16), dtype=np.float32, order="F")):
        assert matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", out=out) is out
        assert np.array_equal(out, want)


def test_out_of_the_wrong_kind_is_refused():
    a = np.ones((4, 3), dtype=np.float32)
    b = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(2, 4\); expected \(4, 2\)"):
        matmul(a, b, a_fmt="e5m2", b_fmt="e5m2", out=np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"out has shape \(1, 2\); expected \(2,\)"):
        matmul(a[0], b, out=np.empty((1, 2), np.float32))
    with pytest.raises(TypeError, match="out has dtype float64; expected float32"):
        matmul(a, b, out=np.empty((4, 2)))
    with pytest.raises(TypeError, match="out must be a numpy array, got list"):
        matmul(a, b, out=[[0.0] * 2] * 4)
    ro = np.empty((4, 2), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="out is read-only"):
        matmul(a, b, out=ro)
