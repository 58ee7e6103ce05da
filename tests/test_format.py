"""Format: finfo-style invariants for every preset, agreement with ml_dtypes, validation errors."""

import math

import numpy as np
import pytest

from fp8emu.format import Format, RoundMode, Specials
from fp8emu.formats import ALL_FORMATS, PRESETS, e4m3b11fnuz, e4m3fn, e5m2, get_format

from oracles import ml_dtype


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_finfo_invariants(fmt):
    vals = fmt.values()
    finite = vals[np.isfinite(vals)]
    assert fmt.max == finite.max()
    assert fmt.num_codes == 1 << fmt.bits == len(vals)
    pos = finite[finite > 0]
    assert fmt.min_subnormal == pos.min()
    assert fmt.min_normal == 2.0**fmt.emin
    assert fmt.eps == 2.0**-fmt.man_bits
    assert (fmt.min_subnormal < fmt.min_normal) == (fmt.subnormals and fmt.man_bits > 0)
    assert fmt.decode_code(fmt.max_code) == fmt.max
    # the next value above 1 is 1 + eps
    assert pos[pos > 1].min() == 1 + fmt.eps if fmt.max > 1 else True
    if fmt.has_nan:
        assert math.isnan(fmt.decode_code(fmt.nan_code))
    if fmt.has_inf:
        assert fmt.decode_code(fmt.inf_code) == math.inf
        assert fmt.decode_code(fmt.inf_code | fmt.sign_mask) == -math.inf
    else:
        assert not np.isinf(vals).any()
    if fmt.signed:   # sign symmetry of the code space
        mags = np.abs(vals[: fmt.num_codes // 2])
        negs = np.abs(vals[fmt.num_codes // 2:])
        both = ~np.isnan(mags) & ~np.isnan(negs)
        assert np.array_equal(mags[both], negs[both])
    assert fmt.has_negative_zero == any(v == 0 and math.copysign(1, v) < 0 for v in vals)
    # every value fits float32 exactly
    assert np.array_equal(finite.astype(np.float32).astype(np.float64), finite)
    assert fmt.finite_values().tolist() == sorted(set((finite + 0.0).tolist()))


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_agrees_with_ml_dtypes(fmt):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dt = ml_dtype(fmt)
    if dt is None:
        pytest.skip(f"ml_dtypes has no {fmt.name}")
    fi = ml_dtypes.finfo(dt)
    assert float(fi.max) == fmt.max
    assert float(fi.smallest_normal) == fmt.min_normal
    assert float(fi.smallest_subnormal) == fmt.min_subnormal
    assert float(fi.eps) == fmt.eps
    codes = np.arange(fmt.num_codes, dtype=np.uint8 if fmt.bits <= 8 else np.uint16)
    with np.errstate(invalid="ignore"):
        theirs = codes.view(dt).astype(np.float64)
    ours = fmt.values()
    assert np.array_equal(np.isnan(theirs), np.isnan(ours))
    ok = ~np.isnan(ours)
    assert np.array_equal(theirs[ok], ours[ok])
    assert np.array_equal(np.signbit(theirs[ok]), np.signbit(ours[ok]))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(exp_bits=0, man_bits=3), ValueError, "exp_bits=0"),
    (dict(exp_bits=9, man_bits=3), ValueError, "exp_bits=9"),
    (dict(exp_bits=8, man_bits=24), ValueError, "man_bits=24"),
    (dict(exp_bits=0, man_bits=3, specials="fn", subnormals=False), ValueError, "exp_bits=0"),
    (dict(exp_bits=4, man_bits=3, tie_rule="even_exponent"), ValueError, "man_bits=0"),
    (dict(exp_bits=4, man_bits=0, specials="fn", tie_rule="sideways"), ValueError, "tie_rule"),
    (dict(exp_bits=4, man_bits=-1), ValueError, "man_bits"),
    (dict(exp_bits=4, man_bits=3, specials="bogus"), ValueError, "specials"),
    (dict(exp_bits=4, man_bits=3, specials="fnuz", signed=False), ValueError, "sign bit"),
    (dict(exp_bits=4, man_bits=0, specials="ieee"), ValueError, "man_bits >= 1"),
    (dict(exp_bits=4, man_bits=3, has_zero=False), ValueError, "subnormals=False"),
    # (with subnormals, e1m2 is a format: its finite values are exponent field 0's subnormals)
    (dict(exp_bits=1, man_bits=2, specials="ieee", subnormals=False), ValueError, "no finite normal"),
    (dict(exp_bits=8, man_bits=3, bias=-10), ValueError, "float32"),
    (dict(exp_bits=8, man_bits=3, bias=300), ValueError, "float32"),
    (dict(exp_bits=4.0, man_bits=3), TypeError, "exp_bits"),
    (dict(exp_bits=4, man_bits=3, bias=1.5), TypeError, "bias"),
])
def test_format_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Format(**kwargs)


def test_get_format_names():
    assert get_format("e5m2") is e5m2
    assert get_format(" E4M3FN ") is e4m3fn
    assert get_format("float8_e4m3fn") is e4m3fn
    assert get_format(e5m2) is e5m2
    assert get_format("e4m3b11fnuz") is e4m3b11fnuz
    f = get_format("e3m3b2fnuz")
    assert (f.exp_bits, f.man_bits, f.bias, f.specials) == (3, 3, 2, Specials.FNUZ)
    g = get_format("e5m3")
    assert g.specials is Specials.IEEE and g.bias == 15
    u = get_format("e4m3fnu")
    assert not u.signed and u.bits == 7
    for name, fmt in PRESETS.items():       # binary8p4sf is e4m3fnuz: the first preset's name wins
        assert get_format(name) is fmt and get_format(fmt.name) is fmt
    with pytest.raises(ValueError, match="unknown format 'e4m3x'"):
        get_format("e4m3x")
    with pytest.raises(ValueError, match="presets"):
        get_format("fp9")
    with pytest.raises(TypeError, match="Format or a format name"):
        get_format(8)


def test_round_mode_parse():
    assert RoundMode.parse("rne") is RoundMode.NEAREST_EVEN
    assert RoundMode.parse("SR") is RoundMode.STOCHASTIC
    assert RoundMode.parse(RoundMode.UP) is RoundMode.UP
    assert RoundMode.parse("toward-zero") is RoundMode.TOWARD_ZERO
    with pytest.raises(ValueError, match="ambiguous"):
        RoundMode.parse("nearest")
    with pytest.raises(ValueError, match="allowed"):
        RoundMode.parse("sideways")


def test_hash_survives_pickling_between_processes():
    """A format caches its hash, and the cache travels with a pickle (Dask sweeps send formats
    to other processes): the cached value must be what every process computes, whatever its
    PYTHONHASHSEED (str hashes differ between processes; the enums must not hash by them)."""
    import os
    import pickle
    import subprocess
    import sys

    fmts = [e4m3fn, e5m2, get_format("e8m0fnu"), Format(4, 3, specials="fnuz", bias=11), Format(3, 0, specials="fn",
                                                                                           tie_rule="even_exponent")]
    code = ("import pickle, sys; from fp8emu.formats import get_format; from fp8emu.format import Format; "
            f"fmts = pickle.loads({pickle.dumps(fmts)!r}); [hash(f) for f in fmts]; "
            "sys.stdout.buffer.write(pickle.dumps(fmts))")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        sent = pickle.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                           check=True).stdout)
        for f, g in zip(fmts, sent):
            assert g == f and hash(g) == hash(f) and {f: 1}[g] == 1
