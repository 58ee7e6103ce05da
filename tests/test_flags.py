"""Exception flags against an independent exact oracle (Fractions, neighbours found by bisecting
the format's value list), exhaustively over every float16 input for every preset."""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from fp8emu.format import Format, RoundMode
from fp8emu.formats import ALL_FORMATS, e2m1fn, e4m3fn, e4m3fnuz, e5m2, e8m0fnu, get_format
from fp8emu import decode, encode
from fp8emu.verify.flags import (INEXACT, INVALID, OVERFLOW, UNDERFLOW, encode_with_flags, exception_flags,
                                 flag_counts, flag_names, signaling_nan_mask)

DETERMINISTIC = [m for m in RoundMode if m is not RoundMode.STOCHASTIC]


class Oracle:
    """Flags of one input, from first principles (see fp8emu/verify/flags.py for the rules)."""

    def __init__(self, fmt: Format):
        self.fmt = fmt
        grid = sorted({Fraction(v) for v in fmt.values() if math.isfinite(v) and v >= 0})
        ulp = Fraction(2) ** (fmt.emax - fmt.man_bits)
        self.grid, self.ulp = grid, ulp
        self.max = Fraction(fmt.max)
        self.tiny = Fraction(2) ** fmt.emin

    def _odd(self, lo: Fraction, hi: Fraction) -> bool:
        """Whether lo's code is odd: its significand's parity, or for man_bits = 0 its exponent field's."""
        if self.fmt.man_bits == 0:
            return lo != 0 and (lo.numerator.bit_length() - lo.denominator.bit_length() + self.fmt.bias) % 2 == 1
        return (lo / (hi - lo)) % 2 == 1

    def _pick(self, lo: Fraction, hi: Fraction, a: Fraction, negative: bool, mode: RoundMode) -> Fraction:
        if a == lo:
            return lo
        if mode is RoundMode.NEAREST_EVEN:
            if a - lo != hi - a:
                return lo if a - lo < hi - a else hi
            return lo if (lo / (hi - lo)) % 2 == 0 else hi  # the neighbour with an even significand
        if mode is RoundMode.NEAREST_AWAY:
            return lo if a - lo < hi - a else hi
        if mode is RoundMode.TOWARD_ZERO:
            return lo
        if mode is RoundMode.ODD:       # keep an odd lower neighbour, else go up
            return lo if self._odd(lo, hi) else hi
        if mode is RoundMode.UP:
            return lo if negative else hi
        return hi if negative else lo  # DOWN

    def round_unbounded(self, a: Fraction, negative: bool, mode: RoundMode) -> Fraction:
        if a >= self.max:  # past max the grid continues with the top binade's spacing
            lo = self.max + ((a - self.max) // self.ulp) * self.ulp
            return self._pick(lo, lo + self.ulp, a, negative, mode)
        i = bisect.bisect_right(self.grid, a) - 1
        return self._pick(self.grid[i], self.grid[i + 1], a, negative, mode)

    def round_p(self, a: Fraction, negative: bool, mode: RoundMode) -> Fraction:
        e = a.numerator.bit_length() - a.denominator.bit_length()
        if Fraction(2) ** e > a:
            e -= 1
        q = Fraction(2) ** (e - self.fmt.man_bits)
        lo = (a // q) * q
        return self._pick(lo, lo + q, a, negative, mode)

    def flags(self, x: float, snan: bool, mode: RoundMode, tininess: str) -> int:
        f = self.fmt
        if math.isnan(x):
            return INVALID if snan or not f.has_nan else 0
        if math.isinf(x):
            return INVALID if not f.has_inf or (x < 0 and not f.signed) else 0
        if x == 0:
            return 0 if f.has_zero else INVALID
        if x < 0 and not f.signed:
            return INVALID
        a, neg = abs(Fraction(x)), x < 0
        r = self.round_unbounded(a, neg, mode)
        flags = 0
        if r > self.max:
            flags |= OVERFLOW | INEXACT
        if r != a:
            flags |= INEXACT
            tiny = a < self.tiny if tininess == "before" else self.round_p(a, neg, mode) < self.tiny
            if tiny:
                flags |= UNDERFLOW
        return flags


ALL_F16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
SNAN_F16 = signaling_nan_mask(ALL_F16)


def _oracle_flags(fmt, mode, tininess, xs=ALL_F16, snan=SNAN_F16):
    orc = Oracle(fmt)
    return np.array([orc.flags(float(v), bool(s), mode, tininess) for v, s in zip(xs, snan)], dtype=np.uint8)


def _assert_same(got, want, xs, fmt, mode):
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = bad[0]
        raise AssertionError(f"{fmt.name} {mode.value}: {bad.size} mismatches; first x={xs[i]!r} "
                             f"got {flag_names(got[i])} want {flag_names(want[i])}")


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
def test_exhaustive_float16_nearest_even(fmt):
    got = exception_flags(ALL_F16, fmt)
    _assert_same(got, _oracle_flags(fmt, RoundMode.NEAREST_EVEN, "after"), ALL_F16, fmt, RoundMode.NEAREST_EVEN)


@pytest.mark.parametrize("fmt", [e5m2, e4m3fn, e4m3fnuz, e2m1fn, e8m0fnu], ids=lambda f: f.name)
@pytest.mark.parametrize("mode", DETERMINISTIC[1:], ids=lambda m: m.value)
def test_exhaustive_float16_other_modes_fp8(fmt, mode):
    # every 5th float16 pattern (both signs, all binades, specials); the full sweep is marked slow
    xs, snan = ALL_F16[::5], SNAN_F16[::5]
    got = exception_flags(xs, fmt, rounding=mode, tininess="before")
    _assert_same(got, _oracle_flags(fmt, mode, "before", xs, snan), xs, fmt, mode)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("mode", DETERMINISTIC, ids=lambda m: m.value)
@pytest.mark.parametrize("tininess", ["after", "before"])
def test_exhaustive_float16_every_mode(fmt, mode, tininess):
    got = exception_flags(ALL_F16, fmt, rounding=mode, tininess=tininess)
    _assert_same(got, _oracle_flags(fmt, mode, tininess), ALL_F16, fmt, mode)


def test_exhaustive_float16_tininess_before_nearest_even():
    for fmt in (e5m2, e4m3fn):
        got = exception_flags(ALL_F16, fmt, tininess="before")
        _assert_same(got, _oracle_flags(fmt, RoundMode.NEAREST_EVEN, "before"), ALL_F16, fmt, RoundMode.NEAREST_EVEN)


def test_random_float64_and_float32_against_oracle():
    rng = np.random.default_rng(5)
    for dt in (np.float32, np.float64):
        xs = (rng.standard_normal(3000) * np.exp2(rng.integers(-20, 20, 3000))).astype(dt)
        for fmt in (e5m2, e4m3fn, e8m0fnu, get_format("float16")):
            for mode in (RoundMode.NEAREST_EVEN, RoundMode.UP):
                got = exception_flags(xs, fmt, rounding=mode)
                _assert_same(got, _oracle_flags(fmt, mode, "after", xs, np.zeros(xs.size, bool)), xs, fmt, mode)


@pytest.mark.parametrize("x, fmt, mode, want", [
    (1.0, e4m3fn, "nearest_even", 0),
    (1.0625, e4m3fn, "nearest_even", INEXACT),
    (464.0, e4m3fn, "nearest_even", INEXACT),  # ties to 448: max mantissa 110 is even
    (465.0, e4m3fn, "nearest_even", INEXACT | OVERFLOW),
    (470.0, e4m3fn, "toward_zero", INEXACT),  # 448 on the grid, 480 is past max
    (480.0, e4m3fn, "toward_zero", INEXACT | OVERFLOW),  # exact value of the NaN code: past max
    (61439.0, e5m2, "nearest_even", INEXACT),
    (61440.0, e5m2, "nearest_even", INEXACT | OVERFLOW),
    (2.0 ** -17, e5m2, "nearest_even", INEXACT | UNDERFLOW),  # ties to 0
    (2.0 ** -16, e5m2, "nearest_even", 0),  # exact subnormal: no underflow
    (float("inf"), e5m2, "nearest_even", 0),
    (float("inf"), e4m3fn, "nearest_even", INVALID),
    (float("-inf"), e2m1fn, "up", INVALID),
    (float("nan"), e4m3fn, "nearest_even", 0),
    (float("nan"), e2m1fn, "nearest_even", INVALID),
    (-0.0, e4m3fnuz, "nearest_even", 0),
    (-1e-30, e4m3fnuz, "nearest_even", INEXACT | UNDERFLOW),
    (-2.0, e8m0fnu, "nearest_even", INVALID),
    (0.0, e8m0fnu, "nearest_even", INVALID),
    (7.0, e2m1fn, "nearest_even", INEXACT | OVERFLOW),  # tie between 6 and 8 (past max): 8 is even
    (6.5, e2m1fn, "nearest_even", INEXACT),
])
def test_documented_cases(x, fmt, mode, want):
    got = exception_flags(np.array([x]), fmt, rounding=mode)[0]
    assert got == want, f"{x} -> {fmt.name}: got {flag_names(got)}, want {flag_names(want)}"


def test_tininess_after_differs_from_before():
    # just below 2^emin: rounds to 2^emin at p bits, so not tiny after rounding; the subnormal
    # result is still inexact
    x = np.array([2.0 ** -6 * (1 - 2.0 ** -6)])
    assert exception_flags(x, e4m3fn, tininess="after")[0] == INEXACT
    assert exception_flags(x, e4m3fn, tininess="before")[0] == INEXACT | UNDERFLOW


def test_signaling_nan_is_invalid_quiet_is_not():
    x = np.array([0x7C01, 0x7E00, 0xFD00, 0xFF00], dtype=np.uint16).view(np.float16)
    assert signaling_nan_mask(x).tolist() == [True, False, True, False]
    assert exception_flags(x, e5m2).tolist() == [INVALID, 0, INVALID, 0]
    xb = np.array([0x7F81, 0x7FC0], dtype=np.uint16).view(ml_dtypes.bfloat16)
    assert exception_flags(xb, e4m3fn).tolist() == [INVALID, 0]
    x64 = np.array([0x7FF0000000000001, 0x7FF8000000000000], dtype=np.uint64).view(np.float64)
    assert exception_flags(x64, e4m3fn).tolist() == [INVALID, 0]


def test_counts_and_names():
    f = np.array([0, INEXACT, INEXACT | UNDERFLOW, INEXACT | OVERFLOW, INVALID], dtype=np.uint8)
    assert flag_counts(f) == {"inexact": 3, "underflow": 1, "overflow": 1, "invalid": 1}
    assert flag_names(INEXACT | UNDERFLOW) == "inexact|underflow" and flag_names(0) == "-"


def test_bad_arguments():
    with pytest.raises(TypeError, match="x must be"):
        exception_flags(np.array([1, 2]), e5m2)
    with pytest.raises(ValueError, match="tininess"):
        exception_flags(np.array([1.0]), e5m2, tininess="during")
    with pytest.raises(ValueError, match="rounding"):
        exception_flags(np.array([1.0]), e5m2, rounding="nearest")
    with pytest.raises(ValueError, match="out must be"):
        exception_flags(np.array([1.0, 2.0]), e5m2, out=np.empty(3, np.uint8))


def test_out_and_shape():
    x = np.array([[1.0, 465.0], [np.inf, 0.1]], dtype=np.float32)
    out = np.empty((2, 2), np.uint8)
    res = exception_flags(x, e4m3fn, out=out)
    assert res is out and out.tolist() == [[0, INEXACT | OVERFLOW], [INVALID, INEXACT]]


def test_encode_with_flags_deterministic_matches_encode():
    x = ALL_F16[::3]
    codes, flags = encode_with_flags(x, e4m3fn, rounding="up", saturate=True)
    assert np.array_equal(codes, encode(x, e4m3fn, rounding="up", saturate=True))
    assert np.array_equal(flags, exception_flags(x, e4m3fn, rounding="up"))


E8M3_NONE = Format(8, 3, bias=128, specials="none")  # no Inf/NaN and no room for a 9th exponent bit
E7M3_NONE = Format(7, 3, bias=1, specials="none")    # a 9th exponent bit would leave float32's range
E0M3_NONE = Format(0, 3, specials="none")            # every value subnormal: spacing 2^(emin - 3) at max
SR_OVERFLOW_FORMATS = [e5m2, e4m3fn, e2m1fn, e4m3fnuz, e8m0fnu, get_format("float16"), get_format("bfloat16"),
                       get_format("e8m13"), get_format("float32"), E8M3_NONE, E7M3_NONE, E0M3_NONE]


@pytest.mark.parametrize("fmt", SR_OVERFLOW_FORMATS, ids=lambda f: f.name)
def test_stochastic_overflow_follows_the_draw(fmt):
    # inputs between max and max + ulp overflow only when the draw rounds up
    ulp = 2.0 ** (max(fmt.emax, fmt.emin) - fmt.man_bits)
    x = np.linspace(fmt.max, fmt.max + ulp, 4001)[1:-1].astype(np.float64)
    by_saturation = []
    for sat in (False, True):
        codes, flags = encode_with_flags(x, fmt, rounding="stochastic", seed=7, stream=3, saturate=sat)
        over = (flags & OVERFLOW) != 0
        by_saturation.append(over)
        assert 0.2 < over.mean() < 0.8
        if fmt.has_inf or fmt.has_nan:
            unsat = encode(x, fmt, rounding="stochastic", seed=7, stream=3)
            assert np.array_equal(over, ~np.isfinite(decode(unsat, fmt))), "overflow flag != non-finite result"
        if sat or not (fmt.has_inf or fmt.has_nan):
            assert np.all(decode(codes, fmt) == fmt.max)
    assert np.array_equal(*by_saturation), "the flags do not depend on saturate"
    # the draw probability: P(up) = (x - max) / ulp on average
    assert abs(over.mean() - 0.5) < 0.05
    assert np.all(flags & INEXACT)


def test_stochastic_overflow_from_narrow_sources():
    """float32 inputs past bfloat16's max (below 2^128): the same flags as from float64."""
    bf16 = get_format("bfloat16")
    x32 = np.arange(np.float32(bf16.max).view(np.uint32) + 1, np.float32(np.finfo(np.float32).max).view(np.uint32) + 1,
                    dtype=np.uint32).view(np.float32)
    codes32, flags32 = encode_with_flags(x32, bf16, rounding="stochastic", seed=2)
    codes64, flags64 = encode_with_flags(x32.astype(np.float64), bf16, rounding="stochastic", seed=2)
    assert np.array_equal(codes32, codes64) and np.array_equal(flags32, flags64)
    over = (flags32 & OVERFLOW) != 0
    assert over.any() and not over.all()
    assert np.array_equal(over, ~np.isfinite(decode(codes32, bf16)))


@pytest.mark.parametrize("fmt", [e2m1fn, get_format("e3m2fn"), E8M3_NONE, E7M3_NONE, E0M3_NONE,
                                 Format(1, 2, specials="none")], ids=lambda f: f.name)
def test_unsaturated_twin_draws_as_the_format_does(fmt):
    """Formats without Inf/NaN always saturate, so the draw past max is read from a twin format:
    it must hold the same top binade and round every value below max as the format does."""
    from fp8emu.verify.flags import _unsaturated_twin
    twin = _unsaturated_twin(fmt)
    assert twin.has_inf or twin.has_nan or twin.emax > fmt.emax
    ulp = 2.0 ** (max(fmt.emax, fmt.emin) - fmt.man_bits)
    x = np.linspace(2.0 ** fmt.emax, fmt.max + ulp, 5001)[:-1]
    x = np.concatenate([x, -x]) if fmt.signed else x
    below = np.abs(x) <= fmt.max
    for seed in (1, 2):
        mine = decode(encode(x, fmt, rounding="stochastic", seed=seed), fmt, dtype=np.float64)
        theirs = decode(encode(x, twin, rounding="stochastic", seed=seed), twin, dtype=np.float64)
        assert np.array_equal(mine[below], theirs[below])
        assert 0.2 < np.mean(~(np.abs(theirs[~below]) <= fmt.max)) < 0.8


@pytest.mark.parametrize("fmt", [get_format("binary8p8se"), Format(1, 3, bias=1)], ids=str)
def test_overflow_is_flagged_in_formats_without_normal_values(fmt):
    """Where every finite value is subnormal the spacing below max is the subnormal quantum; the
    overflow test counted max in the normal binade's units (twice too many), so an input just
    past max that rounds to Inf got underflow|inexact instead of overflow|inexact (a review)."""
    top = 2.0 ** fmt.max_ulp_exp
    x = np.array([fmt.max + 0.3 * top, fmt.max + 0.6 * top, fmt.max, fmt.max - top])
    up = exception_flags(x, fmt, rounding="up")
    assert up.tolist() == [OVERFLOW | INEXACT, OVERFLOW | INEXACT, 0, 0]
    assert not np.isfinite(decode(encode(x[:2], fmt, rounding="up"), fmt)).any()
    assert exception_flags(x, fmt).tolist()[1] == OVERFLOW | INEXACT       # nearest_even: 0.6 goes up


def test_stochastic_vectors_allow_both_neighbours_just_past_max_without_normal_values():
    """The vectors' expected codes of SR just past max: both max and the overflow code while the
    input is below max + the spacing below max (the subnormal quantum here; it took the normal
    binade's half-size one)."""
    from fp8emu.verify.vectors import _expected
    fmt = get_format("binary8p8se")
    x = np.array([fmt.max + 0.6 * 2.0 ** fmt.max_ulp_exp])
    down, _, up = _expected(x.view(np.uint64), np.dtype(np.float64), fmt, RoundMode.STOCHASTIC, False, "after")
    assert (int(down[0]), int(up[0])) == (0x7E, 0x7F)
