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
    check_against_reference(hard_blocks(name, rng, 1000), name, rule)


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


# ---- NVFP4 -----------------------------------------------------------------------------------------------
# The reference follows the documented float32 sequence (TransformerEngine's NVFP4 reference quantizer;
# the NVFP4 pretraining paper's appendix) on Fractions, rounding each step with to_f32.

E4M3_GRID = grid("e4m3fn")
FLT_MAX = F(2 ** 24 - 1, 2 ** 24) * F(2) ** 128


def f32s(a):
    """Signed float32 rounding (inf stays inf)."""
    if isinstance(a, float):
        return a
    r = to_f32(abs(a))
    return r if a >= 0 or r == INF else -r


def rne_e4m3(a: Fraction) -> Fraction:
    g = E4M3_GRID
    hi = next((i for i, v in enumerate(g) if v >= a), len(g) - 1)
    if g[hi] == a or hi == 0:
        return g[hi]
    lo = hi - 1
    return g[lo] if a - g[lo] < g[hi] - a or (a - g[lo] == g[hi] - a and lo % 2 == 0) else g[hi]


def fmin(a, b):
    return b if a == INF or a > b else a


def ref_nvfp4(x: np.ndarray, axes: tuple[int, ...]):
    """(block decode scales as Fractions/NaN per block index, dequantized values) of a float32 array."""
    x = x.astype(np.float32)
    if np.isnan(x).any():
        return None
    xs = {idx: (F(float(v)) if np.isfinite(v) else float(v)) for idx, v in np.ndenumerate(x)}
    mags = [abs(v) for v in xs.values()]
    a = INF if INF in mags or -INF in mags else max(mags, default=F(0))
    s_enc = INF if a == 0 else (F(0) if a == INF else to_f32(F(2688) / a))
    s_enc = fmin(s_enc, FLT_MAX)
    s_enc = F(1) if s_enc == 0 else s_enc
    s_dec = to_f32(1 / s_enc)
    mult = to_f32(s_enc * to_f32(F(1, 6)))
    block_of = lambda idx: tuple(idx[ax] // 16 if ax in axes else idx[ax] for ax in range(x.ndim))
    amax_b = {}
    for idx, v in xs.items():
        b = block_of(idx)
        m = INF if v in (INF, -INF) else abs(v)
        amax_b[b] = m if b not in amax_b or m == INF or (amax_b[b] != INF and m > amax_b[b]) else amax_b[b]
    d = {}
    for b, m in amax_b.items():
        dd = INF if m == INF else to_f32(m * mult)
        d[b] = rne_e4m3(min(fmin(dd, FLT_MAX), F(448)))
    out = {}
    for idx, v in xs.items():
        db = d[block_of(idx)]
        den = to_f32(db * s_dec)
        e = FLT_MAX if den == 0 else fmin(to_f32(1 / den), FLT_MAX)
        s = (INF if v > 0 else -INF) if v in (INF, -INF) else f32s(v * e)
        s = max(min(s, F(6)), F(-6)) if s not in (INF, -INF) else (F(6) if s == INF else F(-6))
        out[idx] = round_to_grid(s, "e2m1fn") * db * s_dec
    return d, out


def check_nvfp4(x: np.ndarray, axis=-1) -> None:
    from fp8emu.scaling import nvfp4_quantize
    t = nvfp4_quantize(x, axis=axis)
    deq = t.dequantize(np.float64)
    ref = ref_nvfp4(np.asarray(x, dtype=np.float64).astype(np.float32), t.axes)
    if ref is None:
        assert np.isnan(deq).all() and (t.scales == 0x7F).all() and not t.elements.any()
        return
    d, out = ref
    sc = decode_e4m3(t.scales)
    for b, want in d.items():
        assert np.isfinite(sc[b]) and F(float(sc[b])) == want, (b, sc[b], want)
    for idx, want in out.items():
        assert F(float(deq[idx])) == want, (idx, float(np.asarray(x)[idx]), float(deq[idx]), want)


def decode_e4m3(codes: np.ndarray) -> np.ndarray:
    """E4M3FN codes -> float64 from the format's definition (0x7F / 0xFF = NaN)."""
    c = codes.astype(np.int64)
    e, m = (c >> 3) & 0xF, c & 7
    v = np.where(e == 0, m / 8 * 2.0 ** -6, (1 + m / 8) * 2.0 ** (e - 7))
    v = np.where((c & 0x7F) == 0x7F, np.nan, v)
    return np.where(c & 0x80, -v, v)


def nvfp4_cases(rng: np.random.Generator, shape=(3, 48)) -> list[np.ndarray]:
    """float32 tensors (at least 3 x 41) around NVFP4's boundaries: zeros, subnormals, E2M1 ties,
    tensor amax just below a power of two, E4M3 scale boundaries, Inf and NaN."""
    cases = []
    base = lambda: (rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 20)).astype(np.float32)
    x = base(); x[:, :16] = 0.0; cases.append(x)                                 # an all-zero block
    cases.append(np.zeros(shape, np.float32))                                   # an all-zero tensor
    x = base(); x[0, 3:9] = rng.integers(-50, 50, 6) * 2.0 ** -149; cases.append(x)   # float32 subnormals
    cases.append((rng.integers(-2 ** 20, 2 ** 20, shape) * 2.0 ** -149).astype(np.float32))  # only subnormals
    # ties: A = 2688 * 2^k makes S_enc = 2^-k; power-of-two block scales; elements on E2M1 midpoints
    k = int(rng.integers(-30, 30))
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    x = rng.choice(mids, shape) * rng.choice([-1.0, 1.0], shape)
    x *= (2.0 ** rng.integers(-8, 7, (shape[0], -(-shape[1] // 16)))).repeat(16, axis=1)[:, :shape[1]]
    x[0, 0] = 6.0 * 448.0
    cases.append((x * 2.0 ** k).astype(np.float32))
    x = base(); x.flat[0] = np.nextafter(np.float32(2.0 ** 7), np.float32(0)); cases.append(
        np.clip(x, -x.flat[0], x.flat[0]))                                     # amax just below 2^7
    x = base(); x.flat[5] = np.float32(2688.0) * np.float32(1 + 2.0 ** -22); cases.append(x)
    # block amaxes on E4M3 rounding boundaries relative to A
    x = base(); a = float(np.abs(x).max())
    x[:, 16] = [a * float(m) / 448 for m in rng.choice(np.array([float(v) for v in E4M3_GRID[1:]]), shape[0])]
    x[:, 32] = x[:, 16] * np.float32(1 + 2.0 ** -4)
    cases.append(x.astype(np.float32))
    # block amaxes whose scale lands within a few float32 ulps of an E4M3 midpoint (the order of
    # the float32 operations decides the E4M3 rounding there)
    x = base(); x[0, 0] = 2688.0 * 2.0 ** int(rng.integers(-10, 10)); a = np.float32(abs(x[0, 0]))
    e4 = np.array([float(v) for v in E4M3_GRID])
    for row in range(shape[0]):
        for col in range(16, shape[1], 16):
            j = int(rng.integers(1, len(e4) - 1))
            t = np.float32((e4[j] + e4[j + 1]) / 2 / 448.0 * a)
            for _ in range(int(rng.integers(0, 3))):
                t = np.nextafter(t, np.float32(rng.choice([0.0, np.inf])))
            x[row, col:col + 16] = np.clip(x[row, col:col + 16], -t, t)
            x[row, col] = t
    cases.append(x.astype(np.float32))
    x = base(); x[1, 20] = np.inf; cases.append(x)
    x = base(); x[2, 40] = -np.inf; x[0, 0] = np.inf; cases.append(x)
    x = base(); x[1, 1] = np.nan; cases.append(x)
    return cases


@pytest.mark.parametrize("axis", [-1, 0, (0, 1), (1, 0)])
def test_nvfp4_matches_independent_reference(axis):
    rng = np.random.default_rng(zlib.crc32(repr(axis).encode()))
    for x in nvfp4_cases(rng):
        check_nvfp4(x, axis)


@pytest.mark.slow
@pytest.mark.parametrize("axis", [-1, 0, (0, 1)])
def test_nvfp4_matches_independent_reference_many(axis):
    rng = np.random.default_rng(99)
    for _ in range(8):
        for x in nvfp4_cases(rng, shape=(int(rng.integers(3, 40)), int(rng.integers(41, 90)))):
            check_nvfp4(x, axis)


def test_nvfp4_same_values_any_dtype_same_bits():
    from fp8emu.scaling import nvfp4_quantize
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((4, 64)) * 2.0 ** rng.integers(-8, 8, (4, 64))).astype(ml_dtypes.bfloat16)
    x = x.astype(np.float16).astype(np.float64)                  # exact in all four dtypes
    x[0, :16] = 0.0
    for axis in (-1, (0, 1)):
        for rounding in ("nearest_even", "stochastic"):
            outs = [nvfp4_quantize(x.astype(dt), axis=axis, rounding=rounding, seed=1) for dt in DTYPES]
            for o in outs[1:]:
                assert np.array_equal(o.elements, outs[0].elements) and np.array_equal(o.scales, outs[0].scales)
                assert o.tensor_scale == outs[0].tensor_scale
        check_nvfp4(x.astype(ml_dtypes.bfloat16), axis)


def test_nvfp4_shapes_and_tiles():
    from fp8emu.scaling import nvfp4_quantize
    rng = np.random.default_rng(2)
    w = rng.standard_normal((40, 3, 35)).astype(np.float32)
    t1 = nvfp4_quantize(w, axis=1)
    assert t1.scales.shape == (40, 1, 35) and t1.elements.shape == w.shape and t1.axes == (1,)
    t2 = nvfp4_quantize(w, axis=(0, 2))
    assert t2.scales.shape == (3, 3, 3) and t2.axes == (0, 2)
    # a 16x16 tile shares one scale: transposing the tensor and the axes gives the same tile scales
    t3 = nvfp4_quantize(np.ascontiguousarray(w.transpose(2, 1, 0)), axis=(2, 0))
    np.testing.assert_array_equal(t3.dequantize(), t2.dequantize().transpose(2, 1, 0))
    assert t2.dequantize().dtype == np.float32 and t2.dequantize(np.float64).dtype == np.float64


def test_nvfp4_hand_checked():
    """A = 2688 makes S_enc = 1: the block decode scale is E4M3(amax_b / 6) and elements are E2M1(x / d)."""
    from fp8emu.scaling import nvfp4_quantize
    x = np.zeros(48, np.float32)
    x[0], x[1], x[2] = 2688.0, 1000.0, -300.0          # block 0: d = 448; 1000/448 = 2.23 -> 2; -0.67 -> -0.5
    x[16], x[17] = 3.0, 0.375                          # block 1: d = fl32(3 * fl32(1/6)) = 0.5 -> 6, 0.75 -> 1 (tie to even)
    t = nvfp4_quantize(x)
    assert t.tensor_scale == 1.0 and t.decode_scale == 1.0
    assert decode_e4m3(t.scales).tolist() == [448.0, 0.5, 0.0]
    assert t.dequantize()[[0, 1, 2, 16, 17]].tolist() == [2688.0, 896.0, -224.0, 3.0, 0.5]
    assert t.elements[[0, 1, 2, 16, 17]].tolist() == [0x7, 0x4, 0x9, 0x7, 0x2]


def test_nvfp4_stochastic_elements_stay_between_neighbours():
    from fp8emu.scaling import nvfp4_quantize
    x = np.linspace(-1, 1, 160).astype(np.float32).reshape(10, 16)
    rne = nvfp4_quantize(x)
    a, b = nvfp4_quantize(x, rounding="stochastic", seed=4), nvfp4_quantize(x, rounding="stochastic", seed=4)
    assert np.array_equal(a.elements, b.elements) and np.array_equal(a.scales, rne.scales)
    # the scaled element lies between RNE's neighbours: stochastic codes are at most one step away
    assert np.abs((a.elements & 7).astype(int) - (rne.elements & 7)).max() == 1
    assert np.all(((a.elements ^ rne.elements) & 8 == 0) | ((a.elements | rne.elements) & 7 == 0))


@pytest.mark.parametrize("call, err, match", [
    (lambda t: t.nvfp4_quantize(np.ones(4, np.int32)), TypeError, "float array"),
    (lambda t: t.nvfp4_quantize(np.float32(1.0)), ValueError, "at least one dimension"),
    (lambda t: t.nvfp4_quantize(np.ones((2, 2)), axis=2), ValueError, "out of range"),
    (lambda t: t.nvfp4_quantize(np.ones((2, 2)), axis=(0, 0)), ValueError, "same axis twice"),
    (lambda t: t.nvfp4_quantize(np.ones((2, 2)), axis=(0, 1, 1)), ValueError, "pair of ints"),
    (lambda t: t.nvfp4_dequantize(np.ones(4)), TypeError, "NVFP4Tensor"),
    (lambda t: t.NVFP4Tensor(np.zeros(32, np.uint8), np.zeros(1, np.uint8), np.float32(1), np.float32(1), (0,))
     .dequantize(), ValueError, "does not match"),
])
def test_nvfp4_bad_input(call, err, match):
    import fp8emu.scaling as t
    with pytest.raises(err, match=match):
        call(t)
