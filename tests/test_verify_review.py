"""Dot-product vectors and checks: results that are not float32 values, formats wider than 16
bits, and ulp distances across zero."""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pytest

from fp8emu import decode
from fp8emu.formats import get_format
from fp8emu.verify.dot import (_distinct_rows, _structured, check_dot, dot_results_from_bytes, generate_dot,
                               read_dot, write_dot)
from fp8emu.verify.textio import FileFormatError


@pytest.fixture(scope="module")
def vs():
    return generate_dot("e5m2", k=4, level=1)  # NaN and Inf operands: NaN and Inf results


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# results given as floats: only float32 values are results
# ---------------------------------------------------------------------------------------------
def test_float64_result_one_float64_ulp_off_is_refused(vs):
    """A nonzero expected value + 1 float64 ulp is not that float32 value; rounding it to float32
    first made it pass."""
    wide = vs.expected.astype(np.float64)
    i = int(np.flatnonzero(np.isfinite(wide) & (wide != 0))[0])
    wide[i] = np.nextafter(wide[i], np.inf)
    with pytest.raises(ValueError, match=rf"1 of {len(vs)} float64 values are not float32 values "
                                         rf"\(first: element {i} = {re.escape(repr(float(wide[i])))},"):
        check_dot(vs, wide)
    with pytest.raises(FileFormatError, match=rf"dev.npz: array 'results': 1 of {len(vs)} float64 values"):
        dot_results_from_bytes(_npz(results=wide), vs, "dev.npz")


def test_float64_results_holding_float32_values_pass(vs):
    """A harness that stores float32 results in a float64 array (NaN and Inf included) passes."""
    wide = vs.expected.astype(np.float64)
    assert np.isnan(wide).any() and np.isinf(wide).any()
    assert check_dot(vs, wide).ok
    index, bits = dot_results_from_bytes(_npz(results=wide), vs, "dev.npz")
    assert index is None and check_dot(vs, bits).ok
    assert check_dot(vs, vs.expected.view(np.int32)).ok  # float32 patterns viewed as int32


@pytest.mark.parametrize("results, match", [
    (np.full(8, 1e39), r"float32 would make inf"),                      # past float32's range
    (np.full(8, -1, np.int64), r"element 0 = -1 is not a float32 bit pattern"),
    (np.full(8, 2 ** 32, np.uint64), r"element 0 = 4294967296 is not a float32 bit pattern"),
    (np.full(8, 1j), r"dtype complex128: give float32 values or uint32 bit patterns"),
])
def test_results_that_are_not_float32_are_refused(vs, results, match):
    with pytest.raises(ValueError, match=match):
        check_dot(vs, results)
    with pytest.raises(FileFormatError, match=match):
        dot_results_from_bytes(_npz(results=results), vs, "dev.npz")


# ---------------------------------------------------------------------------------------------
# formats wider than 16 bits: rows that differ above bit 15 are different dot products
# ---------------------------------------------------------------------------------------------
def test_distinct_rows_compares_every_code_bit():
    fmt = get_format("e8m13")
    a = np.array([[0x00001, 0x10001], [0x10001, 0x00001], [0x00001, 0x00001]], dtype=fmt.code_dtype)
    b = np.ones_like(a)
    kept_a, kept_b = _distinct_rows(a, b)
    assert np.array_equal(kept_a, a) and np.array_equal(kept_b, b)
    again_a, _ = _distinct_rows(np.concatenate([a, a]), np.concatenate([b, b]))
    assert np.array_equal(again_a, a)  # the repeats go, the first occurrences stay in order


@pytest.mark.parametrize("name", ["e8m13", "float32", "bfloat16", "e4m3fn"])
def test_structured_cases_all_survive_deduplication(name):
    """Level 1's structured rows are all different; none may be dropped (for float32 the 16-bit
    codes of -0 and 0, of Inf and NaN collided; for e8m13 Inf with 1)."""
    fmt = get_format(name)
    sa, sb = _structured(fmt, fmt, 4)
    da, db = _distinct_rows(sa, sb)
    assert np.array_equal(da, sa) and np.array_equal(db, sb)
    vs = generate_dot(name, accumulator="lowp:float32", k=4, level=1)
    assert len(vs) == len(sa)
    values = decode(vs.a, fmt, dtype=np.float64)
    assert np.isinf(values).any() == (fmt.inf_code is not None)
    assert (np.signbit(values) & (values == 0)).all(axis=1).any() == fmt.has_negative_zero


def test_wide_format_vectors_round_trip(tmp_path):
    vs = generate_dot("e8m13", accumulator="lowp:float32", k=3, level=2, count=40, seed=2)
    rows = np.concatenate([vs.a, vs.b], axis=1).astype(np.uint64)
    assert len({r.tobytes() for r in rows}) == len(vs) == 40 + len(_structured(vs.a_fmt, vs.b_fmt, 3)[0])
    back = read_dot(write_dot(vs, tmp_path / "wide.txt"))
    assert np.array_equal(back.a, vs.a) and np.array_equal(back.b, vs.b)
    assert check_dot(back, vs.expected.view(np.uint32)).ok


def test_dedup_leaves_8_and_16_bit_vectors_unchanged():
    """The kept rows for codes below 2^16 are those a 16-bit comparison kept (the sets do not move)."""
    for a_fmt, b_fmt in [("e4m3fn", "e5m2"), ("float16", "bfloat16")]:
        vs = generate_dot(a_fmt, b_fmt, accumulator="lowp:float32", k=2, level=2, count=300, seed=4)
        rows16 = np.concatenate([vs.a.astype(np.uint16), vs.b.astype(np.uint16)], axis=1)
        assert len(np.unique(rows16, axis=0)) == len(vs)
    small = generate_dot("e2m1fn", accumulator="fp32_sequential", k=2, count=200, seed=1)
    assert len(small) == 200 + len(_structured(small.a_fmt, small.b_fmt, 2)[0])


# ---------------------------------------------------------------------------------------------
# ulp distance in the report: across zero it counts float32 steps, not int32 pattern differences
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expected, got, ulps", [
    (1.0, np.nextafter(np.float32(1.0), np.float32(2.0)), 1),
    (2.0 ** -149, -(2.0 ** -149), 2),                       # smallest subnormals: +1 and -1 steps from 0
    (0.001953125, -0.001953125, 2 * int(np.float32(0.001953125).view(np.int32))),
    (-0.0, 2.0 ** -148, 2),                                 # -0 is 0 steps from +0
])
def test_ulp_distance_across_zero(vs, expected, got, ulps):
    one_case = dataclasses.replace(vs, a=vs.a[:1], b=vs.b[:1], expected=np.array([expected], np.float32))
    rep = check_dot(one_case, np.array([got], np.float32))
    assert rep.by_class["accumulation"] == 1
    assert rep.failures[0].endswith(f", {ulps} ulp apart"), rep.failures[0]
