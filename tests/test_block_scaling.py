"""Block scaling as hardware does it: the MX scale rules (floor, ceil, even, rceil) against an
independent reference written from their documented descriptions, in exact Fractions.

Nothing here uses fp8emu's rounding: the element grids are built from each format's
definition (OCP MX v1.0 table), rounding is a search for the nearest grid value (ties to the
even grid index, which is the even code), and float32 rounding is done on Fractions.
"""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from fp8emu.scaling import ScaleRule, mx_quantize

F = Fraction
INF, NAN = float("inf"), float("nan")

# element format -> (exponent bits, fraction bits, bias, largest finite value), OCP MX v1.0 section 5
ELEMENT_DEFS = {
    "e4m3fn": (4, 3, 7, F(448)),
    "e5m2": (5, 2, 15, F(57344)),
    "e3m2fn": (3, 2, 3, F(28)),
    "e2m3fn": (2, 3, 1, F(15, 2)),
    "e2m1fn": (2, 1, 1, F(6)),
    "int8": (1, 6, 1, F(127, 64)),          # k / 64, |k| <= 127
}
EMAX = {"e4m3fn": 8, "e5m2": 15, "e3m2fn": 4, "e2m3fn": 2, "e2m1fn": 2, "int8": 0}
RULES = ["floor", "ceil", "even", "rceil"]


def grid(name: str) -> list[Fraction]:
    """Non-negative values of an element format in increasing order (index parity = code parity)."""
    w, p, bias, top = ELEMENT_DEFS[name]
    vals = [F(k, 2 ** p) * F(2) ** (1 - bias) for k in range(2 ** p)]                  # subnormals
    for field in range(1, 2 ** w):
        vals += [F(2 ** p + k, 2 ** p) * F(2) ** (field - bias) for k in range(2 ** p)]
    return [v for v in vals if v <= top]


_GRIDS = {name: grid(name) for name in ELEMENT_DEFS}


def round_to_grid(v: Fraction, name: str) -> Fraction:
    """Round to nearest, ties to even index, saturating at the largest value."""
    g = _GRIDS[name]
    a = abs(v)
    if a >= g[-1]:
        r = g[-1]
    else:
        hi = next(i for i, x in enumerate(g) if x >= a)
        lo = hi - 1 if g[hi] != a else hi
        d_lo, d_hi = a - g[lo], g[hi] - a
        r = g[lo] if d_lo < d_hi or (d_lo == d_hi and lo % 2 == 0) else g[hi]
    return -r if v < 0 else r


def floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while F(2) ** e > a:
        e -= 1
    while F(2) ** (e + 1) <= a:
        e += 1
    return e


def ceil_log2(a: Fraction) -> int:
    e = floor_log2(a)
    return e if F(2) ** e == a else e + 1


def to_f32(a: Fraction) -> Fraction | float:
    """IEEE binary32 round-to-nearest-even of a non-negative rational (inf on overflow)."""
    if a == 0:
        return F(0)
    q = F(2) ** (max(floor_log2(a), -126) - 23)            # float32 quantum at a (subnormals: 2^-149)
    k = a / q
    n = math.floor(k)
    if k - n > F(1, 2) or (k - n == F(1, 2) and n % 2 == 1):
        n += 1
    r = n * q
    return INF if r >= F(2) ** 128 else r


def ref_mx_block(vals: list[float], name: str, rule: str) -> tuple[int, list[Fraction] | None]:
    """(E8M0 scale code, element values) of one block, from the rule's documented description."""
    if any(math.isnan(v) or math.isinf(v) for v in vals):
        return 0xFF, None
    w, p, bias, top = ELEMENT_DEFS[name]
    amax = max(abs(F(v)) for v in vals)
    if amax == 0:
        e = -127
    elif rule == "floor":                   # OCP MX v1.0: floor(log2 amax) - emax
        e = floor_log2(amax) - EMAX[name]
    elif rule == "ceil":
        e = ceil_log2(amax) - EMAX[name]
    elif rule == "even":                    # amax rounded to p fraction bits (halfway up), then floor
        q = F(2) ** (floor_log2(amax) - p)
        e = floor_log2(math.floor(amax / q + F(1, 2)) * q) - EMAX[name]
    else:                                   # rceil: round_up_E8M0(fl32(amax * fl32(1 / max)))
        d = to_f32(amax * to_f32(1 / top))
        e = 128 if d == INF else (-127 if d == 0 else ceil_log2(d))
    e = max(e, -127)
    if e > 127:
        return 0xFF, None
    return e + 127, [round_to_grid(F(v) / F(2) ** e, name) * F(2) ** e for v in vals]


def check_against_reference(x: np.ndarray, name: str, rule: str, block: int = 32) -> None:
    mx = mx_quantize(x, name, scale_rule=rule, block=block)
    deq = mx.dequantize(np.float64)
    flat = np.asarray(x, dtype=np.float64)
    for b in range(mx.scales.shape[-1]):
        vals = [float(v) for v in flat[b * block:(b + 1) * block]]
        code, elems = ref_mx_block(vals, name, rule)
        assert int(mx.scales[b]) == code, (name, rule, vals, int(mx.scales[b]), code)
        got = deq[b * block:(b + 1) * block]
        if elems is None:
            assert np.isnan(got).all()
        else:
            assert [F(float(g)) for g in got] == elems, (name, rule, vals)


def hard_blocks(name: str, rng: np.random.Generator, n_blocks: int) -> np.ndarray:
    """float32 blocks of 32 built around the boundaries of every rule."""
    w, p, bias, top = ELEMENT_DEFS[name]
    g = _GRIDS[name]
    mids = [(a + b) / 2 for a, b in zip(g, g[1:])]
    out = []
    for i in range(n_blocks):
        kind = i % 8
        e = int(rng.integers(-135, 100))
        blk = rng.standard_normal(32) * 2.0 ** e
        if kind == 0:                       # zeros and float32 subnormals
            blk[rng.random(32) < 0.5] = 0.0
            blk[:4] = rng.integers(-(2 ** 23), 2 ** 23, 4) * 2.0 ** -149
        elif kind == 1:                     # element ties at the block's own scale
            s = e - EMAX[name]
            blk = np.array([float(mids[j]) for j in rng.integers(0, len(mids), 32)]) * 2.0 ** s
            blk *= rng.choice([-1.0, 1.0], 32)
            blk[0] = float(top) * 2.0 ** s
        elif kind == 2:                     # amax just below a power of two
            blk[0] = float(np.nextafter(np.float32(2.0 ** e), np.float32(0)))
            blk = np.clip(blk, -abs(blk[0]), abs(blk[0]))
        elif kind == 3:                     # EVEN's boundary: significand 2 - 2^-(p+1), +- one float32 ulp
            edge = np.float32((2 - 2.0 ** -(p + 1)) * 2.0 ** e)
            blk[0] = [edge, np.nextafter(edge, np.float32(0)), np.nextafter(edge, np.float32(np.inf))][i % 3]
            blk = np.clip(blk, -abs(blk[0]), abs(blk[0]))
        elif kind in (4, 7):                # RCEIL's boundary: max * 2^k +- float32 ulps
            edge = np.float32(float(top) * 2.0 ** (e // 2))
            steps = int(rng.integers(-8, 9))
            for _ in range(abs(steps)):
                edge = np.nextafter(edge, np.float32(np.inf if steps > 0 else 0))
            blk[0] = edge
            blk = np.clip(blk, -abs(blk[0]), abs(blk[0]))
        elif kind == 5:                     # the E8M0 range ends
            blk *= 2.0 ** (-e + int(rng.choice([-140, -133, -126, 120, 125, 127])))
        elif kind == 6:                     # non-finite
            blk[int(rng.integers(32))] = rng.choice([INF, -INF, NAN])
        out.append(blk)
    with np.errstate(over="ignore"):
        return np.concatenate(out).astype(np.float32)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(ELEMENT_DEFS))
def test_rules_match_independent_reference(name, rule):
    rng = np.random.default_rng(zlib.crc32(f'{name}/{rule}'.encode()))
    check_against_reference(hard_blocks(name, rng, 48), name, rule)


@pytest.mark.slow
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(ELEMENT_DEFS))
def test_rules_match_independent_reference_many(name, rule):
    rng = np.random.default_rng(1000 + zlib.crc32(f'{name}/{rule}'.encode()))
    check_against_reference(hard_blocks(name, rng, 2000), name, rule)


@pytest.mark.parametrize("rule", RULES)
def test_float64_values_beyond_float32(rule):
    """float64 inputs: the scale can pass 2^127 (NaN scale) and blocks far below float32's range clamp at 2^-127."""
    x = np.array([2.0 ** 140, 1.0] + [0.0] * 30 + [3.0 * 2.0 ** -170] + [0.0] * 31)
    check_against_reference(x, "e4m3fn", rule)
    assert mx_quantize(x, "e4m3fn", scale_rule=rule).scales.tolist() == [0xFF, 0]


# one block under the four rules (docs/block-scaling.md): E4M3FN elements, amax 480, 300, 500
DOC_EXAMPLE = [480.0, 300.0, 500.0]


@pytest.mark.parametrize("amax, want", [
    (480.0, {"floor": (0, 448.0), "ceil": (1, 480.0), "even": (0, 448.0), "rceil": (1, 480.0)}),
    (300.0, {"floor": (0, 288.0), "ceil": (1, 288.0), "even": (0, 288.0), "rceil": (0, 288.0)}),
    (500.0, {"floor": (0, 448.0), "ceil": (1, 512.0), "even": (1, 512.0), "rceil": (1, 512.0)}),
])
def test_documented_example(amax, want):
    x = np.array([amax, 1.0, 0.0078125, -3.3], dtype=np.float32)
    for rule, (e, top) in want.items():
        mx = mx_quantize(x, "e4m3fn", scale_rule=rule)
        assert int(mx.scales[0]) - 127 == e and mx.dequantize()[0] == top, rule


def test_rceil_rounds_the_descale_in_float32():
    """MXINT8 (max 127/64): amax one float32 ulp above the max gives the descale fl32(amax * fl32(64/127))
    = 1.0 exactly, so RCEIL keeps X = 1 where the exact ceil(log2(amax / max)) would give X = 2."""
    amax = np.nextafter(np.float32(127 / 64), np.float32(2))
    x = np.array([amax, 0.5], dtype=np.float32)
    assert mx_quantize(x, "int8", scale_rule="rceil").scales[0] == 127
    assert mx_quantize(x, "int8", scale_rule="ceil").scales[0] == 128
    assert ref_mx_block([float(amax), 0.5], "int8", "rceil")[0] == 127


def test_scale_rule_parsing_and_errors():
    assert ScaleRule.parse(" RCEIL ") is ScaleRule.RCEIL and ScaleRule.parse(ScaleRule.EVEN) is ScaleRule.EVEN
    assert mx_quantize(np.ones(4), "e4m3fn", scale_rule="ceil").scale_rule is ScaleRule.CEIL
    with pytest.raises(ValueError, match="allowed: 'floor', 'ceil', 'even', 'rceil'"):
        mx_quantize(np.ones(4), "e4m3fn", scale_rule="round")
    with pytest.raises(TypeError, match="float array"):
        mx_quantize(np.ones(4, dtype=np.int16), "e4m3fn")


DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(ELEMENT_DEFS))
def test_same_values_any_dtype_same_bits(name, rule):
    """Values representable in every input dtype give bit-identical codes and scales."""
    rng = np.random.default_rng(7)
    x = hard_blocks(name, rng, 16).astype(ml_dtypes.bfloat16)
    with np.errstate(over="ignore"):
        x = x.astype(np.float64)
        x = np.where(np.isfinite(x.astype(np.float16)) | ~np.isfinite(x), x, 0.0)
        x = x.astype(np.float16).astype(np.float64)         # now exact in all four dtypes
    outs = [mx_quantize(x.astype(dt).reshape(4, 128), name, scale_rule=rule, axis=1,
                        rounding="stochastic", seed=3) for dt in DTYPES]
    for o in outs[1:]:
        assert np.array_equal(o.elements, outs[0].elements) and np.array_equal(o.scales, outs[0].scales)
    check_against_reference(x.astype(ml_dtypes.bfloat16), name, rule)
