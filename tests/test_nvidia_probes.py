"""Our own H200 probes (tools/probes/, recorded in tests/data/h200_probes/): each parameter of the
model is read off a designed probe by a hand prediction that does not use the model, the split
boundaries off the boundary maps, and the model reproduces every recorded output bit for bit.

Recorded with torch 2.11.0+cu130 / cuBLASLt 13.1.0 (130100) on an H200 (h200_env.json).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from fp8emu.accumulators.nvidia import (CUBLASLT_13_1_H200, CublasLtSplitRule, compare_to_recording,
                                        nvidia_hopper_fp8, split_ranges)

import nvidia_h200_helpers as h

H = h.H


def _trunc(x: float, unit: float) -> float:
    """x cut toward zero to a multiple of unit."""
    return math.copysign(math.floor(abs(x) / unit) * unit, x)


def _diag(name: str, mode: str) -> np.ndarray:
    a, bt, _, _, outs = h.vector_case(name)
    T = len(H.VECTOR_PROBES[name][0]())
    return outs[mode].diagonal()[:T].astype(np.float64)


# ---------------------------------------------------------------------------------------------
# hand predictions: one parameter per probe
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["acc", "fast"])
def test_step_is_32(mode):
    """L = 2^8 at k = p, 2^-6 at every k < p: only the tiny terms of earlier 32-steps survive."""
    got = _diag("step", mode)
    p = np.arange(len(got))
    assert np.array_equal(got, 256 + 2.0 ** -6 * 32 * (p // 32))
    assert not np.array_equal(got, 256 + 2.0 ** -6 * 16 * (p // 16))
    assert not np.array_equal(got, 256 + 2.0 ** -6 * 64 * (p // 64))


@pytest.mark.parametrize("mode", ["acc", "fast"])
def test_kept_bits_13_and_truncation(mode):
    vecs = H.VECTOR_PROBES["kept_bits"][0]()
    got = _diag("kept_bits", mode)
    unit = 2.0 ** (8 - 13)
    want, alt_rne, alt_12 = [], [], []
    for a, b in vecs:
        terms = [x * y for x, y in zip(a, b) if x * y != 0]
        if len(terms) == 2 and terms[0] == 256.0:        # 2^8 + t: t cut to 13 bits below 2^8
            want.append(256 + _trunc(terms[1], unit))
            alt_rne.append(256 + round(terms[1] / unit) * unit)
            alt_12.append(256 + _trunc(terms[1], 2 * unit))
        elif len(terms) == 3 and abs(terms[0]) == 256.0:  # +-(2^9 + m 2^-5): the normalised sum is cut
            total = sum(terms)
            want.append(_trunc(total, 2.0 ** (9 - 13)))
            alt_rne.append(round(total / 2.0 ** -4) * 2.0 ** -4)
            alt_12.append(_trunc(total, 2.0 ** (9 - 12)))
        else:                                             # 2.25 - 2.25 + t: reference exponent 0, not 1
            t = terms[-1]
            want.append(_trunc(t, 2.0 ** -13))
            alt_rne.append(_trunc(t, 2.0 ** -12))         # (normalised product exponent instead)
            alt_12.append(_trunc(t, 2.0 ** -12))
    assert np.array_equal(got, want)
    assert not np.array_equal(got, alt_rne) and not np.array_equal(got, alt_12)


@pytest.mark.parametrize("mode", ["acc", "fast"])
def test_subnormal_operand_takes_min_normal_exponent(mode):
    """m 2^-9 (E4M3 subnormal) x 2^8 aligns as 2^(-6+8): t = (1+f/8) 2^-12 is cut away entirely."""
    vecs = H.VECTOR_PROBES["subnormal"][0]()
    got = _diag("subnormal", mode)
    want, actual = [], []
    for a, b in vecs:
        big, t = a[0] * b[0], a[1] * b[1]
        want.append(big + _trunc(t, 2.0 ** (-6 + 8 - 13)))
        e_true = math.floor(math.log2(a[0])) + 8
        actual.append(big + _trunc(t, 2.0 ** (max(e_true, -12) - 13)))
    assert np.array_equal(got, want)
    assert not np.array_equal(got, actual)


@pytest.mark.parametrize("mode", ["acc", "fast"])
def test_subnormal_e5m2_operand_takes_min_normal_exponent(mode):
    vecs = H.VECTOR_PROBES["subnormal_e5m2"][0]()
    got = _diag("subnormal_e5m2", mode)
    assert np.array_equal(got, [a[0] * b[0] for a, b in vecs])  # t in [2^-20, 2^-19) lost: unit 2^-19


def test_promotion_every_128():
    """2^8 at k = 0, 2^-6 at k = p: lost inside the tensor core, kept once promoted to FP32."""
    vecs = H.VECTOR_PROBES["promotion"][0]()
    p = np.array([int(np.flatnonzero(a)[1]) for a, _ in vecs])
    assert np.array_equal(_diag("promotion", "acc"), np.where(p >= 128, 256 + 2.0 ** -6, 256.0))
    assert np.array_equal(_diag("promotion", "fast"), np.full(len(p), 256.0))


@pytest.mark.parametrize("mode", ["acc", "fast"])
def test_accumulator_takes_part_in_alignment(mode):
    """c = 2^8, then n tiny products 2^-6 in a later step: all cut away (n 2^-6 would survive)."""
    assert np.array_equal(_diag("acc_alignment", mode), np.full(12, 256.0))


# ---------------------------------------------------------------------------------------------
# split boundaries: where the probes kept their small term is where split_ranges cuts K
# ---------------------------------------------------------------------------------------------
def _grid():
    keys = {k.rsplit("_", 2)[0] for k in h.bounds() if k.startswith("trunc_")}
    return sorted(tuple(int(v) for v in k.split("_")[1:4]) for k in keys)


def test_boundary_maps_cover_the_grid():
    grid = _grid()
    assert len(grid) == 245 and (16, 16, 16384) in grid and (256, 256, 65536) in grid


@pytest.mark.parametrize("M, N, K", _grid())
def test_split_boundaries(M, N, K):
    rec = h.bounds()
    cuts = {lo for lo, _ in split_ranges(K, CUBLASLT_13_1_H200.splits(M, N, K))} - {0}
    for kind in ("trunc", "assoc"):
        for mode in ("acc", "fast"):
            key = f"{kind}_{M}_{N}_{K}_{mode}"
            pos, keep, tot, other = (rec[f"{key}_{f}"] for f in ("pos", "keep", "tot", "other"))
            assert not other.any() and ((keep == 0) | (keep == tot)).all(), key  # every output agrees
            kept = set(pos[keep == tot].tolist())
            if kind == "trunc" and mode == "acc":  # every FP32 promotion keeps it too
                assert kept == {int(b) for b in pos if b % 128 == 0 or b in cuts}, key
            else:
                assert kept == cuts & set(pos.tolist()), key


# ---------------------------------------------------------------------------------------------
# the model against every recorded probe output
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(H.VECTOR_PROBES))
@pytest.mark.parametrize("mode, fast", h.MODES)
def test_model_matches_vector_probe(name, mode, fast):
    a, bt, a_fmt, b_fmt, outs = h.vector_case(name)
    rep = compare_to_recording(a, bt, outs[mode], a_fmt, b_fmt, fast)
    assert rep["match"] == 1.0, (name, mode, rep)


def _random_params(name):
    _, cases = h.random_set(name)
    out = []
    for c in cases:
        heavy = c["K"] * (c["M"] + c["N"]) > 1_100_000  # regenerating the inputs dominates
        ident = f"{c['key']}-{c['M']}x{c['N']}x{c['K']}-{c['a_fmt']}-{c['b_fmt']}-{c['dist']}"
        out.append(pytest.param(name, c, id=ident, marks=[pytest.mark.slow] if heavy else []))
    return out


@pytest.mark.parametrize("name, case", _random_params("h200_probe_random") + _random_params("h200_probe_check"))
def test_model_matches_random_probe(name, case):
    a, bt, outs = h.random_case(name, case)
    for mode, fast in h.MODES:
        model = nvidia_hopper_fp8(fast, case["M"], case["N"], case["K"], a_fmt=case["a_fmt"], b_fmt=case["b_fmt"])
        rep = compare_to_recording(a, bt, outs[mode], case["a_fmt"], case["b_fmt"], fast, model=model)
        assert rep["match"] == 1.0, (case, mode, rep)


# ---------------------------------------------------------------------------------------------
# holdout: 32 shapes first kept off the split table (now in it)
# ---------------------------------------------------------------------------------------------
HOLDOUT = h.random_set("h200_probe_holdout")[1]


@pytest.mark.parametrize("case", HOLDOUT, ids=lambda c: f"{c['M']}x{c['N']}x{c['K']}")
def test_model_matches_holdout_probe(case):
    """With cuBLASLt's split count (now in the table) the model is exact at unseen shapes too,
    up to 99 splits (16 x 16 x 262144)."""
    a, bt, outs = h.holdout_case(case)  # 16 sampled rows / columns: the shape comes from the case
    M, N, K = case["M"], case["N"], case["K"]
    assert CUBLASLT_13_1_H200.is_measured(M, N, K)
    for mode, fast in h.MODES:
        rep = compare_to_recording(a, bt, outs[mode], "e4m3fn", "e4m3fn", fast, model=nvidia_hopper_fp8(fast, M, N, K))
        assert rep["match"] == 1.0, (case, mode, rep)


def test_fallback_rule_out_of_sample():
    """The fallback without the holdout rows: right for 10 of the 25 shapes it had not seen (small
    outputs and no-split shapes); wrong for larger outputs and for K > 131072 (99, not 102, splits
    at 16 x 16 x 262144).  Fast accumulation then misses nearly every output, the non-fast mode
    (FP32 partials of 'normal' data, exact sums) still matched these samples."""
    sys.path.insert(0, str(h.ROOT / "tools" / "probes"))
    import make_split_table
    logged = make_split_table.read_logs(("cublaslt", "rule", "sweep"))
    table = tuple(sorted({k[:3] + (v,) for k, v in logged.items() if k[3:5] == ("e4m3fn", "e4m3fn")}))
    before = CublasLtSplitRule(table=table, format_overrides=CUBLASLT_13_1_H200.format_overrides)
    shapes = sorted({(c["M"], c["N"], c["K"]) for c in HOLDOUT})
    unseen = [s for s in shapes if not before.is_measured(*s)]
    right = [s for s in unseen if before.splits(*s) == CUBLASLT_13_1_H200.splits(*s)]
    assert len(unseen) == 25 and len(right) == 10, (len(unseen), right)
    assert all(m * n <= 176 * 176 or CUBLASLT_13_1_H200.splits(m, n, k) == 1 for m, n, k in right)
