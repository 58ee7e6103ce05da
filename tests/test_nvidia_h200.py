"""The H200 FP8 GEMM model against the dev recording, its slow twin, its parameters and its inputs.

Dev data: ``tests/data/h200_fp8_gemm_dev.*`` (copy of ../shared/data; 90 cases of
``torch._scaled_mm`` on an H200, torch 2.11.0+cu130, both ``use_fast_accum`` modes).
"""

from __future__ import annotations

import gzip
import itertools
import subprocess
import sys

import numpy as np
import pytest

import fp8emu
from fp8emu.accumulators import fp32_sequential, nvidia, nvidia_hopper_fp8
from fp8emu.accumulators.nvidia import (CUBLASLT_13_1_H200, CublasLtSplitRule, NvidiaHopperFP8,
                                        compare_to_recording, hopper_reference_dot, split_ranges)
from fp8emu.formats import e4m3fn, e5m2, float16, get_format

import nvidia_h200_helpers as h

DEV_KEYS = [c["key"] for c in h.dev()[1]]


def _decode(codes, fmt):
    return get_format(fmt).values()[codes].astype(np.float32)


def _bits_equal(x, y):
    return np.array_equal(np.asarray(x, np.float32).view(np.int32), np.asarray(y, np.float32).view(np.int32))


# ---------------------------------------------------------------------------------------------
# the dev recording, bit for bit
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, fast", h.MODES)
@pytest.mark.parametrize("key", DEV_KEYS)
def test_dev_case_bit_exact(key, mode, fast):
    case, a, bt, outs = h.dev_case(key)
    rep = compare_to_recording(a, bt, outs[mode], case["a_fmt"], case["b_fmt"], fast)
    assert rep["match"] == 1.0, (key, mode, case, rep)


def test_dev_split_case_is_the_split_kernel():
    """M = N = 16, K = 16384: cuBLASLt splits K 6 ways; without the split the fast mode fails."""
    case, a, bt, outs = h.dev_case(next(c["key"] for c in h.dev()[1] if c["K"] == 16384))
    assert (case["M"], case["N"]) == (16, 16)
    assert CUBLASLT_13_1_H200.splits(16, 16, 16384) == 6
    unsplit = compare_to_recording(a, bt, outs["fast"], case["a_fmt"], case["b_fmt"], True,
                                   model=nvidia_hopper_fp8(True, split_k=1))
    assert unsplit["match"] < 0.05
    split = compare_to_recording(a, bt, outs["fast"], case["a_fmt"], case["b_fmt"], True)
    assert split["match"] == 1.0 and split["split_k"] == 6 and split["measured_shape"]


@pytest.mark.parametrize("key", ["c006", "c035", "c072"])
def test_dev_through_fp8emu_matmul(key):
    """The model plugs into fp8emu.matmul as an accumulator (codes in, same bits out)."""
    case, a, bt, outs = h.dev_case(key)
    for mode, fast in h.MODES:
        got = fp8emu.matmul(a, np.ascontiguousarray(bt.T), a_fmt=case["a_fmt"], b_fmt=case["b_fmt"],
                            accumulator=nvidia_hopper_fp8(fast))
        assert _bits_equal(got, outs[mode]), (key, mode)


def test_sequential_fp32_matches_almost_none():
    """For contrast: one FP32 rounding per product and per add (in K order) is not the GPU."""
    arrays, cases = h.dev()
    rates = {}
    for case in cases:
        _, a, bt, outs = h.dev_case(case["key"])
        fa, fb = get_format(case["a_fmt"]), get_format(case["b_fmt"])
        seq = fp32_sequential.matmul_2d(_decode(a, fa), np.ascontiguousarray(_decode(bt, fb).T), a_fmt=fa, b_fmt=fb)
        for mode, _ in h.MODES:
            rates[(case["key"], mode, case["K"])] = float(np.mean(seq.view(np.int32) == outs[mode].view(np.int32)))
    # measured (max over the cases of a K): 74% at K = 16 (a short sum of FP8 products often fits
    # 14 bits, so truncation does nothing), 4.5% at K = 128, 1.4% at 256, 0.15% at 1024, 0.1% at
    # 4096, 0 at 16384; the model matches 100% everywhere.
    assert max(r for (_, _, K), r in rates.items() if K >= 1024) < 0.002
    assert max(r for (_, _, K), r in rates.items() if K >= 128) < 0.05
    assert max(rates.values()) < 0.8


# ---------------------------------------------------------------------------------------------
# each parameter is sharp: its neighbours lose most of the dev data (and of the designed probes)
# ---------------------------------------------------------------------------------------------
SHARP_KEYS = ["c004", "c006", "c007", "c034", "c036", "c065", "c068"]
VARIANTS = {
    "kept_frac_bits=12": dict(kept_frac_bits=12),
    "kept_frac_bits=14": dict(kept_frac_bits=14),
    "step=16": dict(step=16),
    "term_rounding=nearest_even": dict(term_rounding="nearest_even"),
    "sum_rounding=nearest_even": dict(sum_rounding="nearest_even"),
    "include_acc_in_alignment=False": dict(include_acc_in_alignment=False),
    "promotion_interval=64": dict(promotion_interval=64),
    "promotion_interval=256": dict(promotion_interval=256),
}


def _dev_rate(model_for_mode, modes=h.MODES):
    hit = tot = 0
    for key in SHARP_KEYS:
        case, a, bt, outs = h.dev_case(key)
        for mode, fast in modes:
            rep = compare_to_recording(a, bt, outs[mode], case["a_fmt"], case["b_fmt"], fast,
                                       model=model_for_mode(fast))
            hit += rep["n"] - rep["mismatches"]
            tot += rep["n"]
    return hit / tot


def test_sharpness_cases_cover_long_k():
    assert {h.dev_case(k)[0]["K"] for k in SHARP_KEYS} >= {128, 512, 1024}


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_neighbour_drops_match_rate(variant):
    params = VARIANTS[variant]
    modes = [m for m in h.MODES if not (m[1] and "promotion_interval" in params)]
    assert _dev_rate(lambda fast: nvidia_hopper_fp8(fast), modes) == 1.0
    rate = _dev_rate(lambda fast: nvidia_hopper_fp8(fast, **params), modes)
    assert rate < 0.6, (variant, rate)  # measured 0.06 .. 0.53


def test_subnormal_rule_is_sharp_on_its_probe():
    """The dev data barely exercises subnormals; the designed probe does."""
    a, bt, a_fmt, b_fmt, outs = h.vector_case("subnormal")
    for mode, fast in h.MODES:
        assert compare_to_recording(a, bt, outs[mode], a_fmt, b_fmt, fast)["match"] == 1.0
        alt = compare_to_recording(a, bt, outs[mode], a_fmt, b_fmt, fast,
                                   model=nvidia_hopper_fp8(fast, subnormal_exponent="actual"))
        assert alt["match"] < 0.99


# ---------------------------------------------------------------------------------------------
# the fast kernel and its slow readable twin (exact rationals) agree bit for bit
# ---------------------------------------------------------------------------------------------
TWIN_MODELS = [
    NvidiaHopperFP8(),
    NvidiaHopperFP8(promotion_interval=None),
    NvidiaHopperFP8(promotion_interval=64, step=16),
    NvidiaHopperFP8(term_rounding="nearest_even", sum_rounding="nearest_even"),
    NvidiaHopperFP8(include_acc_in_alignment=False, promotion_interval=None),
    NvidiaHopperFP8(subnormal_exponent="actual", kept_frac_bits=6),
]


FORMAT_PAIRS = [(e4m3fn, e4m3fn), (e4m3fn, e5m2), (e5m2, e4m3fn), (e5m2, e5m2), (float16, e4m3fn)]


def _random_values(rng, fmt, shape):
    """Finite values of fmt: all codes alike (subnormals included), wide exponent spread, 10% zeros."""
    vals = fmt.values()
    vals = vals[np.isfinite(vals)]
    out = rng.choice(vals, shape).astype(np.float32)
    out[rng.random(shape) < 0.1] = 0
    return out


@pytest.mark.parametrize("model", TWIN_MODELS, ids=lambda m: repr(m)[15:60])
@pytest.mark.parametrize("pair", range(len(FORMAT_PAIRS)))
def test_fast_kernel_equals_slow_twin(model, pair):
    rng = np.random.default_rng(pair)
    fa, fb = FORMAT_PAIRS[pair]
    M, N = 2, 3
    K = int(rng.choice([1, 31, 33, 96, 200, 300]))
    split_k = int(rng.integers(1, 4))
    a, b = _random_values(rng, fa, (M, K)), _random_values(rng, fb, (K, N))
    if pair % 2:  # a cancelling pair of large terms makes c small and the alignment wide
        a[:, 0], b[0, :], a[:, 1], b[1, :] = fa.max, fb.max / 2, -fa.max, fb.max / 2
    m = NvidiaHopperFP8(**{**model.__dict__, "split_k": split_k, "split_granule": model.step * 2})
    fast = m.matmul_2d(a, b, a_fmt=fa, b_fmt=fb)
    for i in range(M):
        for j in range(N):
            slow = hopper_reference_dot(a[i], b[:, j], a_fmt=fa, b_fmt=fb, model=m, split_k=split_k)
            assert _bits_equal(fast[i, j], slow), (i, j, fast[i, j], slow, K, split_k)


@pytest.mark.parametrize("model", TWIN_MODELS[:5], ids=lambda m: repr(m)[15:60])
def test_fast_kernel_equals_slow_twin_on_wide_rows(model):
    """Full vector lanes, the 8/4/1-wide K passes and the column tiles (N past _COL_TILE).

    Runs of zeros in a make the nonzero K count per step take every remainder; columns at
    both ends and at the tile boundary are checked against the twin.
    """
    rng = np.random.default_rng(7)
    fa, fb = e4m3fn, e5m2
    M, K, N = 3, 75, nvidia._COL_TILE + 21
    a, b = _random_values(rng, fa, (M, K)), _random_values(rng, fb, (K, N))
    a[0, 3:9] = 0
    a[1, rng.random(K) < 0.5] = 0
    a[:, 40], b[40, :] = fa.max, fb.max / 4  # a large term: a wide alignment for the rest of its step
    fast = model.matmul_2d(a, b, a_fmt=fa, b_fmt=fb)
    t = nvidia._COL_TILE
    for j in [0, 1, 7, 8, 15, 16, 17, t - 1, t, t + 1, N - 1]:
        for i in range(M):
            slow = hopper_reference_dot(a[i], b[:, j], a_fmt=fa, b_fmt=fb, model=model,
                                        split_k=model.splits_for_formats(M, N, K, fa, fb))
            assert _bits_equal(fast[i, j], slow), (i, j, fast[i, j], slow)


ACC_EXCLUDED_MODELS = [
    NvidiaHopperFP8(include_acc_in_alignment=False, promotion_interval=None, split_k=1),
    NvidiaHopperFP8(include_acc_in_alignment=False, promotion_interval=None, split_k=1,
                    term_rounding="nearest_even", sum_rounding="nearest_even"),
    NvidiaHopperFP8(include_acc_in_alignment=False, promotion_interval=None, split_k=1, kept_frac_bits=6,
                    sum_rounding="nearest_even", subnormal_exponent="actual"),
]


@pytest.mark.parametrize("model", ACC_EXCLUDED_MODELS, ids=lambda m: repr(m)[15:90])
@pytest.mark.parametrize("fmt", [e4m3fn, float16], ids=str)
def test_fast_kernel_equals_slow_twin_with_huge_c_left_out_of_alignment(model, fmt):
    """With c left out of the alignment, a large c is aligned to the unit of much smaller products.

    Step 1 makes c large (a plain value, or a power of two so that a small negative term moves
    the sum into the binade below); step 2 adds 32 tiny products of one sign, mixed signs, or
    signs that cancel.  In product units c passes 2^24 (float32 sums would round), and for
    float16 operands 2^52 (float64 sums would too).
    """
    big = [fmt.max, 256.0, 18.0]
    tiny = fmt.min_normal
    rng = np.random.default_rng(11)
    K = 64
    for b0, signs, multiples in itertools.product(big, ("minus", "plus", "mixed", "cancel"), ([1], [1, 2, 3])):
        a = np.zeros((1, K), np.float32)
        b = np.ones((K, 1), np.float32)
        a[0, 0] = b[0, 0] = b0
        sign = {"minus": -np.ones(32), "plus": np.ones(32), "mixed": rng.choice([-1.0, 1.0], 32),
                "cancel": np.repeat([1.0, -1.0], 16)}[signs]
        a[0, 32:] = sign * tiny
        b[32:, 0] = tiny * rng.choice(multiples, 32)  # all equal: a sum far below c's float64 ulp
        fast = model.matmul_2d(a, b, a_fmt=fmt, b_fmt=fmt)[0, 0]
        slow = hopper_reference_dot(a[0], b[:, 0], a_fmt=fmt, b_fmt=fmt, model=model, split_k=1)
        assert _bits_equal(fast, slow), (b0, signs, multiples, fast, slow)


def test_huge_c_left_out_of_alignment_by_hand():
    """c = 448^2 = 200704, then 32 products -2^-12: the exact sum 200703.992... truncates to 200688."""
    m = NvidiaHopperFP8(include_acc_in_alignment=False, promotion_interval=None, split_k=1)
    a = np.zeros((1, 64), np.float32)
    b = np.ones((64, 1), np.float32)
    a[0, 0] = b[0, 0] = 448.0
    a[0, 32:], b[32:, 0] = -2.0 ** -6, 2.0 ** -6
    assert m.matmul_2d(a, b, a_fmt=e4m3fn, b_fmt=e4m3fn)[0, 0] == 200688.0


def _split_operand_numpy(x, fmt, sub_rule):
    """Slow twin of nvidia._split_operand by frexp/ldexp on whole arrays: ("ok", x, 2^e(x)),
    ("NaN",) or ("inexact", index of the first inexact element)."""
    if not np.isfinite(x).all():
        return ("NaN",)
    val = x.astype(np.float32)
    _, expo = np.frexp(val)
    e_true = expo - 1
    normal = np.abs(val) >= fmt.min_normal
    lsb = np.where(normal, e_true - fmt.man_bits, fmt.emin - fmt.man_bits)
    sig = np.ldexp(val, -lsb)
    bad = (sig != np.trunc(sig)) | (np.abs(sig) >= 2.0 ** fmt.precision) | (np.abs(val) > fmt.max)
    if bad.any():
        return "inexact", tuple(int(i) for i in np.argwhere(bad)[0])
    e = np.where(normal | (sub_rule == "actual"), e_true, fmt.emin)
    return "ok", val, np.where(val == 0, 0.0, np.ldexp(1.0, e)).astype(np.float32)


@pytest.mark.parametrize("fmt", [e4m3fn, e5m2, float16, get_format("e2m1"), get_format("e3m4")], ids=str)
@pytest.mark.parametrize("sub_rule", ["min_normal", "actual"])
def test_split_operand_equals_numpy_twin(fmt, sub_rule):
    """Every value of the format (both signs), then float32 bit patterns of every kind one at a
    time (NaN, Inf, float32 subnormals, values off the format's grid or past its max)."""
    rng = np.random.default_rng(3)
    vals = fmt.values()
    vals = vals[np.isfinite(vals)].astype(np.float32)
    cases = [np.concatenate([vals, -vals]).reshape(2, -1)]
    patterns = rng.integers(0, 2 ** 32, 2000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    extra = np.float32([fmt.max, fmt.min_normal, fmt.min_normal / 2, 1e-45, 3e-39, 1e30, -0.0])
    cases += [np.array([[v]], np.float32) for v in np.concatenate([patterns, extra])]
    near = np.concatenate([vals, -vals]).reshape(2, -1).copy()
    near[1, 5] = np.nextafter(near[1, 5], np.float32(np.inf))  # first inexact element of a 2-D array
    near[1, 9] = np.nan  # a NaN anywhere wins over the inexact value
    cases += [near, near[:, :9]]
    for x in cases:
        want = _split_operand_numpy(x, fmt, sub_rule)
        try:
            got = nvidia._split_operand(x, fmt, "x", sub_rule)
        except ValueError as e:
            assert want[0] != "ok", (x, str(e))
            assert ("NaN" in str(e)) if want[0] == "NaN" else f"x[{want[1]}]" in str(e), (want, str(e))
            continue
        assert want[0] == "ok", (x, want)
        assert _bits_equal(got[0], want[1]) and _bits_equal(got[1], want[2]), x


# ---------------------------------------------------------------------------------------------
# kernel choice
# ---------------------------------------------------------------------------------------------
def test_split_ranges():
    assert [lo for lo, _ in split_ranges(16384, 6)][1:] == [2816, 5632, 8448, 11264, 14080]
    assert split_ranges(16384, 6)[-1] == (14080, 16384)
    assert split_ranges(8208, 3) == [(0, 2816), (2816, 5632), (5632, 8208)]
    assert split_ranges(256, 4) == [(0, 128), (128, 256)]  # fewer ranges than asked
    assert split_ranges(100, 1) == [(0, 100)]
    with pytest.raises(ValueError, match="split_k"):
        split_ranges(100, 0)


def test_split_table_is_the_logged_one():
    """Every numSplitsK in both cuBLASLt logs (both modes, three format pairs) is what the rule says."""
    sys.path.insert(0, str(h.ROOT / "tools" / "probes"))
    import make_split_table
    logged = make_split_table.read_logs()
    assert len(logged) > 6000
    for (M, N, K, a_fmt, b_fmt, fast), s in logged.items():
        assert CUBLASLT_13_1_H200.splits(M, N, K, fast, a_fmt, b_fmt) == s, (M, N, K, a_fmt, b_fmt, fast)
        assert CUBLASLT_13_1_H200.is_measured(M, N, K)
    assert subprocess.run([sys.executable, str(h.ROOT / "tools" / "probes" / "make_split_table.py"), "--check"]
                          ).returncode == 0, "fp8emu/accumulators/_h200_splits.py is stale"


def test_split_rule_fallback():
    """Off the table: (K tiles - 1) // 20, within the measured neighbours of the shape."""
    rule = CUBLASLT_13_1_H200
    assert rule.is_measured(16, 16, 40960) and rule.splits(16, 16, 40960) == 15  # the K sweep
    assert not rule.is_measured(32, 16, 40960)
    assert rule.splits(32, 16, 40960) == 15                 # 319 // 20; table: 12 @32k, 19 @48k
    assert rule.splits(256, 256, 40960) == 3                # clamped by the measured 3 and 3
    assert rule.splits(1024, 1024, 40960) == 1              # 1024 x 1024 (measured at 65536 only) never splits
    assert rule.splits(16, 16, 512) == 1
    bare = CublasLtSplitRule()
    assert bare.splits(16, 16, 16384) == 6 and bare.splits(16, 16, 4096) == 1
    for m, n, k, s in rule.table:  # the bare formula is the table for small outputs, K <= 64k
        if m <= 64 and n <= 64 and k <= 65536:
            assert bare.splits(m, n, k) == s, (m, n, k)


def test_split_rule_fallback_rounds_up_to_a_measured_output():
    """Off the table (M, N) is rounded up to the smallest measured (m >= M, n >= N), past the
    table to the largest measured output; never the bare base rule (which gave 1024 x 2048 x
    32768 12 splits while 1000 x 1000 got 1: a larger output with more splits)."""
    rule = CUBLASLT_13_1_H200
    assert rule.measured_output_for(520, 520) == (640, 640)
    assert rule.measured_output_for(16, 100) == (16, 128)      # 2,048 outputs, before 48 x 112
    assert rule.measured_output_for(100, 600) == (640, 640)
    for M, N in [(1024, 2048), (2048, 1024), (2048, 2048), (16, 4096), (4096, 16)]:
        assert rule.measured_output_for(M, N) == (1024, 1024), (M, N)
    for M, N, K in [(1000, 1000, 32768), (1024, 2048, 32768), (2048, 2048, 32768), (2048, 1024, 65536),
                    (1024, 1024, 131072), (520, 520, 32768)]:
        assert not rule.is_measured(M, N, K) and rule.splits(M, N, K) == 1, (M, N, K)
    assert rule.splits(16, 100, 32768) == 12                     # 16 x 128 measured 12 at 32768
    # every fallback lies within the measured values of the output it rounds up to
    rng = np.random.default_rng(5)
    for M, N, K in zip(rng.integers(1, 3000, 300), rng.integers(1, 3000, 300), rng.integers(1, 300_000, 300)):
        M, N, K = int(M), int(N), int(K)
        if rule.is_measured(M, N, K):
            continue
        row = rule._by_mn[rule.measured_output_for(M, N)]
        below = [s for k, s in row if k <= K]
        above = [s for k, s in row if k >= K]
        lo, hi = (below[-1] if below else 1), (above[0] if above else max(s for _, s in row))
        assert min(lo, hi) <= rule.splits(M, N, K) <= max(lo, hi), (M, N, K)
    with pytest.raises(ValueError, match="split table is empty"):
        CublasLtSplitRule().measured_output_for(16, 16)


def test_base_rule_on_the_k_sweep():
    """At every K = 128 t for small outputs, numSplitsK = max(1, (t - 1) // 20) (to K = 65536 at least)."""
    sys.path.insert(0, str(h.ROOT / "tools" / "probes"))
    import make_split_table
    sweep = make_split_table.read_logs(("sweep",))
    assert len(sweep) == 6 * 1024 * 2
    for (M, N, K, _, _, fast), s in sweep.items():
        if M <= 64 and N <= 64 and K <= 65536:
            assert s == max(1, (K // 128 - 1) // 20), (M, N, K, fast)
    assert sweep[(128, 128, 128 * 300, "e4m3fn", "e4m3fn", False)] == 11  # larger outputs: capped


def test_table_is_for_the_1mib_workspace():
    """With CUBLASLT_WORKSPACE_SIZE = 32 MiB cuBLASLt splits larger outputs more: the rule is per workspace."""
    sys.path.insert(0, str(h.ROOT / "tools" / "probes"))
    import make_split_table
    ws = make_split_table.read_logs(("ws",))
    differ = {k[:3] for k, s in ws.items() if s != CUBLASLT_13_1_H200.splits(*k[:3], k[5])}
    assert len(differ) == 19 and all(M * N >= 64 * 512 for M, N, _ in differ)
    assert all(ws[k] == CUBLASLT_13_1_H200.splits(*k[:3]) for k in ws if k[0] * k[1] <= 64 * 64)
    with gzip.open(h.PROBES / "ws_log.txt.gz", "rt") as f:
        assert "workSpaceSizeInBytes=33554432" in f.read()


def test_factory_fixes_split_for_shape():
    assert nvidia_hopper_fp8(True, 16, 16, 16384).split_k == 6
    assert nvidia_hopper_fp8(False, 64, 256, 65536, b_fmt="e5m2").split_k == 12
    assert nvidia_hopper_fp8(False, 64, 256, 65536).split_k == 15
    assert nvidia_hopper_fp8(False).split_k is None and nvidia_hopper_fp8(False).promotion_interval == 128
    assert nvidia_hopper_fp8(True).promotion_interval is None


def test_versions_recorded():
    env = h.env()
    assert env["torch"] == "2.11.0+cu130" and env["cublasLt_version"] == 130100
    assert "130100" in CUBLASLT_13_1_H200.version and env["torch"] in CUBLASLT_13_1_H200.version
    with gzip.open(h.PROBES / "cublaslt_log.txt.gz", "rt") as f:
        assert "maxWorkspaceSizeinBytes=1048576" in f.read(200_000)


# ---------------------------------------------------------------------------------------------
# inputs and parameters are checked
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_raise():
    acc = nvidia_hopper_fp8()
    a = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="a_fmt"):
        acc.matmul_2d(a, a.T.copy(), a_fmt=None, b_fmt=e4m3fn)
    with pytest.raises(ValueError, match=r"not exactly representable in e4m3fn"):
        acc.matmul_2d(a * 1.1, a.T.copy(), a_fmt=e4m3fn, b_fmt=e4m3fn)
    with pytest.raises(ValueError, match="NaN"):
        acc.matmul_2d(a * np.nan, a.T.copy(), a_fmt=e4m3fn, b_fmt=e4m3fn)
    with pytest.raises(ValueError, match="shape"):
        acc.matmul_2d(a, a, a_fmt=e4m3fn, b_fmt=e4m3fn)
    with pytest.raises(ValueError, match="exact float32"):
        acc.matmul_2d(a, a.T.copy(), a_fmt="bfloat16", b_fmt="bfloat16")


@pytest.mark.parametrize("params, match", [
    (dict(step=0), "step"), (dict(kept_frac_bits=20), "kept_frac_bits"), (dict(term_rounding="up"), "term_rounding"),
    (dict(promotion_interval=100), "promotion_interval"), (dict(split_k=0), "split_k"),
    (dict(split_granule=48), "split_granule"), (dict(subnormal_exponent="zero"), "subnormal_exponent"),
])
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        NvidiaHopperFP8(**params)


def test_compare_to_recording_reports_mismatch():
    case, a, bt, outs = h.dev_case("c006")
    out = outs["acc"].copy()
    out[0, 0] = np.nextafter(out[0, 0], np.float32(np.inf))
    out[1, 2] = np.nextafter(out[1, 2], np.float32(np.inf))
    rep = compare_to_recording(a, bt, out, case["a_fmt"], case["b_fmt"], False)
    assert rep["mismatches"] == 2 and rep["max_ulp"] == 1 and rep["match"] == 1 - 2 / out.size
    with pytest.raises(ValueError, match="shapes"):
        compare_to_recording(a, bt, out[:3], case["a_fmt"], case["b_fmt"], False)


def test_compare_to_recording_max_ulp_across_zero():
    """max_ulp counts float32 steps: -x and x are 2 * bits(x) apart, -0 and +0 none (a mismatch
    still); subtracting int32 patterns gave 2^31 for both."""
    a = np.zeros((1, 32), np.uint8)
    bt = np.zeros((1, 32), np.uint8)
    a[0, 0], bt[0, 0] = 0x38, 0x01  # 1.0 * 2^-9 = 0.001953125 (e4m3fn)
    x = np.float32(0.001953125)
    rep = compare_to_recording(a, bt, np.array([[-x]], np.float32), "e4m3fn", "e4m3fn")
    assert rep["mismatches"] == 1 and rep["max_ulp"] == 2 * int(x.view(np.int32))
    zero_a = np.zeros((1, 32), np.uint8)
    rep = compare_to_recording(zero_a, bt, np.array([[-0.0]], np.float32), "e4m3fn", "e4m3fn")
    assert rep["mismatches"] == 1 and rep["max_ulp"] == 0
    tiny = np.array([[-(2.0 ** -149)]], np.float32)  # one step below -0: one step below +0 too
    assert compare_to_recording(zero_a, bt, tiny, "e4m3fn", "e4m3fn")["max_ulp"] == 1


def test_model_is_thread_count_independent():
    import numba
    case, a, bt, outs = h.dev_case("c007")
    x, y = _decode(a, case["a_fmt"]), np.ascontiguousarray(_decode(bt, case["b_fmt"]).T)
    acc = nvidia_hopper_fp8(False)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = acc.matmul_2d(x, y, a_fmt=get_format(case["a_fmt"]), b_fmt=get_format(case["b_fmt"]))
    finally:
        numba.set_num_threads(before)
    two = acc.matmul_2d(x, y, a_fmt=get_format(case["a_fmt"]), b_fmt=get_format(case["b_fmt"]))
    assert _bits_equal(one, two) and _bits_equal(one, outs["acc"])
