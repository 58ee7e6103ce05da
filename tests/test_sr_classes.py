"""Stochastic rounding by input class (``fp8emu.quantize._sr_class_tables`` and
``fp8emu._kernels._sr_class_kernel``): float32, float16 and bfloat16 inputs into formats the
float32 kernels do not take (e8m0fnu, binary8p1ue/uf, formats without subnormals), and float64
inputs into every format whose classes decide (``_class_bits(fmt, 64)``: e5m2 and e4m3fn too),
on calls with at least as many elements as the table has classes (or once it is kept).  Checked against the per-element generic kernel on every
class with several members, against the exact oracle (``fp8emu.spec.round_scalar`` with the
element's words), and on forced ties beyond 64 dropped bits (the call is then redone)."""

from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest

import fp8emu
from fp8emu import Format, _random, spec
from fp8emu.formats import get_format

Q = importlib.import_module("fp8emu.quantize")
K = importlib.import_module("fp8emu._kernels")
MASK = (1 << 64) - 1

NO_SUBNORMALS_E4M3 = Format(4, 3, subnormals=False)
NO_SUBNORMALS_E5M2 = Format(5, 2, subnormals=False)
#: (format, the kind its exact SR takes): without the float32 kernels (the fixture below), all go to the tables
CASES = [("e8m0fnu", "hi32"), ("binary8p1ue", "hi32"), ("binary8p1uf", "hi32"),
         (NO_SUBNORMALS_E4M3, "w64"), (NO_SUBNORMALS_E5M2, "w64")]
DTYPES = [np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float64)]


@pytest.fixture(autouse=True)
def _tables_not_float32_kernels(monkeypatch):
    """The float32 kernels take binary8p1ue/uf's stochastic rounding (their ``emin = -127``
    kernels, tested in test_kernels.py): set them aside for those formats, so that these tests
    hold the tables."""
    route = Q._f32_route
    monkeypatch.setattr(Q, "_f32_route", lambda values, fmt, *a: None if fmt.emin == -127 else route(values, fmt, *a))
    monkeypatch.setattr(Q, "_PLANS", {})


def _members(k: int, seed: int = 0) -> np.ndarray:
    """Every class of ``k`` top bits: its base pattern, its base with the lowest bit set, the
    top of its range and random members, at least two and 2^17 elements in all (float32 bits)."""
    rng = np.random.default_rng(seed)
    tops = np.arange(1 << k, dtype=np.uint32) << np.uint32(32 - k)
    low = np.uint32((1 << (32 - k)) - 1)
    rand = [rng.integers(0, 1 << 32, 1 << k, dtype=np.uint64).astype(np.uint32) & low
            for _ in range(max(2, (1 << (17 - k)) - 3))]
    return np.concatenate([tops, tops | np.uint32(1), tops | low, *(tops | r for r in rand)])


def _members64(k: int, seed: int = 0) -> np.ndarray:
    """:func:`_members` of float64 patterns: every class, at least five members each."""
    rng = np.random.default_rng(seed)
    tops = np.arange(1 << k, dtype=np.uint64) << np.uint64(64 - k)
    low = np.uint64((1 << (64 - k)) - 1)
    rand = [rng.integers(0, 1 << 63, 1 << k, dtype=np.uint64) & low for _ in range(max(2, (1 << (17 - k)) - 3))]
    return np.concatenate([tops, tops | np.uint64(1), tops | low, *(tops | r for r in rand)]).view(np.float64)


def _inputs(fmt: Format, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    """At least 2^17 inputs of ``dtype`` covering every class of ``fmt``'s table (for 16-bit
    dtypes: every pattern of the dtype, and random ones)."""
    if dtype.itemsize == 8:
        return _members64(Q._class_bits(fmt, 64), seed)
    if dtype.itemsize == 4:
        return _members(Q._class_bits(fmt, 32), seed).view(np.float32)
    rng = np.random.default_rng(seed)
    patterns = np.concatenate([np.arange(1 << 16), rng.integers(0, 1 << 16, 1 << 16)]).astype(np.uint16)
    return patterns.view(dtype)


@pytest.fixture
def kinds(monkeypatch):
    """The kinds of class kernel the calls ran (``_sr_class_kernel`` spied on: ``(kind, ties)``,
    the kind prefixed ``"f64-"`` for float64 inputs; ``_sr_pattern16_kernel``: ``("p16-hi32" or
    "p16-rbits", 0)``)."""
    seen = []
    made, made16 = K._sr_class_kernel, K._sr_pattern16_kernel

    def spy(shift, kind, src=K.SRC_F32, width=32):
        kernel = made(shift, kind, src, width)

        def run(*args):
            ties = kernel(*args)
            seen.append((kind if width == 32 else "f64-" + kind, int(ties)))
            return ties
        return run

    def spy16(rbits):
        kernel = made16(rbits)

        def run(*args):
            kernel(*args)
            seen.append(("p16-rbits" if rbits else "p16-hi32", 0))
        return run
    monkeypatch.setattr(K, "_sr_class_kernel", spy)
    monkeypatch.setattr(K, "_sr_pattern16_kernel", spy16)
    return seen


def _generic(monkeypatch, fn, x, *args, **kwargs):
    """``fn`` on the per-element kernels (no table for any size)."""
    with monkeypatch.context() as patch:
        patch.setattr(Q, "_TABLE_F32_MIN", 1 << 62)
        patch.setattr(Q, "_TABLE16_MIN", 1 << 62)
        return fn(x, *args, **kwargs)


def _want_kind(fmt: Format, dtype: np.dtype, exact_kind: str, sr_bits) -> str:
    """The kernel a call takes: 16-bit inputs by pattern unless a fraction needs more than 32
    bits (bfloat16's subnormals into a format without subnormals: the classes' whole word).
    float64: the whole word (every class that rounds drops more than 32 bits)."""
    if dtype.itemsize == 8:
        return "f64-rbits" if sr_bits else "f64-w64"
    if dtype.itemsize == 4:
        return "rbits" if sr_bits else exact_kind
    if sr_bits:
        return "p16-rbits"
    deep = dtype == np.dtype(ml_dtypes.bfloat16) and not fmt.subnormals and fmt.has_zero
    return "w64" if deep else "p16-hi32"


def _quantizable(fmt, dtype) -> bool:
    try:
        Q._lut(get_format(fmt), dtype)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("fmt,exact_kind", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("sr_bits", [None, 1, 7, 32])
def test_classes_give_the_generic_kernels_bits(monkeypatch, kinds, fmt, exact_kind, dtype, sr_bits):
    fmt = get_format(fmt)
    x = _inputs(fmt, dtype)
    Q._TABLE16.clear()
    for saturate in (False, True):
        kw = dict(rounding="stochastic", seed=11, stream=3, sr_bits=sr_bits, saturate=saturate)
        codes = fp8emu.encode(x, fmt, **kw)
        np.testing.assert_array_equal(codes, _generic(monkeypatch, fp8emu.encode, x, fmt, **kw))
        if _quantizable(fmt, dtype):
            values = fp8emu.quantize(x, fmt, **kw)
            want = _generic(monkeypatch, fp8emu.quantize, x, fmt, **kw)
            np.testing.assert_array_equal(values.view(np.uint8), want.view(np.uint8))
            inplace = x.copy()
            assert fp8emu.quantize(inplace, fmt, out=inplace, **kw) is inplace
            np.testing.assert_array_equal(inplace.view(np.uint8), want.view(np.uint8))
    assert kinds and {kind for kind, _ in kinds} == {_want_kind(fmt, dtype, exact_kind, sr_bits)}


#: formats whose stochastic codes the float32 kernels do not make and whose rounding the
#: classes do not decide (a format's p = 8 steps need more than 16 bits): 16-bit inputs by pattern
WIDE = ["bfloat16", "tf32", "e8m13"]


@pytest.mark.parametrize("fmt", WIDE)
@pytest.mark.parametrize("dtype", DTYPES[1:3], ids=str)
@pytest.mark.parametrize("sr_bits", [None, 3, 32])
def test_16_bit_inputs_by_pattern_give_the_generic_kernels_codes(monkeypatch, kinds, fmt, dtype, sr_bits):
    x = _inputs(get_format(fmt), dtype, seed=2)
    Q._TABLE16.clear()
    for saturate in (False, True):
        kw = dict(rounding="stochastic", seed=12, stream=1, sr_bits=sr_bits, saturate=saturate)
        np.testing.assert_array_equal(fp8emu.encode(x, fmt, **kw), _generic(monkeypatch, fp8emu.encode, x, fmt, **kw))
    assert {kind for kind, _ in kinds} == {"p16-rbits" if sr_bits else "p16-hi32"}


@pytest.mark.parametrize("fmt", ["e8m0fnu", "bfloat16", NO_SUBNORMALS_E4M3], ids=str)
@pytest.mark.parametrize("dtype", DTYPES[1:3], ids=str)
def test_16_bit_inputs_by_pattern_match_the_exact_oracle(fmt, dtype):
    """Every pattern of the dtype, 1500 of them against ``spec.round_scalar`` with their words."""
    fmt = get_format(fmt)
    rng = np.random.default_rng(6)
    x = np.concatenate([np.arange(1 << 16), rng.integers(0, 1 << 16, 1 << 16)]).astype(np.uint16).view(dtype)
    seed, stream = 23, 2
    for sr_bits in (None, 5):
        codes = fp8emu.encode(x, fmt, rounding="stochastic", seed=seed, stream=stream, sr_bits=sr_bits)
        picks = rng.choice(x.size, 1500, replace=False)
        words0 = _random.words(seed, stream, picks)
        for i, w0 in zip(picks, words0):
            words = (lambda j, i=i, w0=w0: int(w0) if j == 0 else int(_random.words(seed, stream, [i], j)[0]))
            want = spec.round_scalar(x[i], fmt, "stochastic", sr_words=words, sr_bits=sr_bits)
            assert int(codes[i]) == want, (hex(x.view(np.uint16)[i]), sr_bits)


@pytest.mark.parametrize("fmt,dtype", [*((f, np.float32) for f, _ in CASES),
                                       *((f, np.float64) for f in [f for f, _ in CASES] + ["e5m2", "e4m3fn"])],
                         ids=str)
def test_classes_match_the_exact_oracle(kinds, fmt, dtype):
    """Elements spread over every binade (float64: random patterns, which are mostly far out of
    range, and half of them scaled normals), each against ``spec.round_scalar`` with its words."""
    fmt = get_format(fmt)
    rng = np.random.default_rng(5)
    n = 1 << 17
    if dtype is np.float32:
        bits = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    else:
        bits = rng.integers(0, 1 << 64, n, dtype=np.uint64)
        scaled = rng.standard_normal(n // 2) * np.exp2(rng.integers(-160, 160, n // 2))
        bits[: n // 2] = scaled.view(np.uint64)
    x = bits.view(dtype)
    seed, stream = 21, 4
    for sr_bits in (None, 4):
        codes = fp8emu.encode(x, fmt, rounding="stochastic", seed=seed, stream=stream, sr_bits=sr_bits)
        picks = rng.choice(n, 1500, replace=False)
        words0 = _random.words(seed, stream, picks)
        for i, w0 in zip(picks, words0):
            words = (lambda j, i=i, w0=w0: int(w0) if j == 0 else int(_random.words(seed, stream, [i], j)[0]))
            want = spec.round_scalar(x[i], fmt, "stochastic", sr_words=words, sr_bits=sr_bits)
            assert int(codes[i]) == want, (hex(bits[i]), sr_bits)
    exact_kind = dict((get_format(f).name, kind) for f, kind in CASES).get(fmt.name)
    assert {kind for kind, _ in kinds} == ({exact_kind, "rbits"} if dtype is np.float32 else {"f64-w64", "f64-rbits"})


def _unmix64(z: int) -> int:
    def unxorshift(v, s):
        out = v
        for _ in range(64 // s + 1):
            out = v ^ (out >> s)
        return out
    z = unxorshift(z, 31)
    z = (z * pow(_random._M2, -1, 1 << 64)) & MASK
    z = unxorshift(z, 27)
    z = (z * pow(_random._M1, -1, 1 << 64)) & MASK
    return unxorshift(z, 30)


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_tie_beyond_64_dropped_bits_redoes_the_call(kinds, inplace, dtype):
    """Force element ``j``'s first word to equal its first 64 dropped bits while more follow
    (invert mix64 to pick key_0): the class kernel reports the tie and the generic kernel,
    which draws further words, gives every element (in place too: it reads a copy)."""
    fmt = NO_SUBNORMALS_E4M3                        # below 2^-6 the interval is [0, 2^-6)
    n, j = 1 << 17, 777
    x = np.random.default_rng(8).standard_normal(n).astype(dtype)
    x[j] = dtype(2.0**-70 * 1.2345)                 # more than 64 dropped bits
    f = spec.to_fraction(x[j]) / spec.Fraction(2) ** fmt.emin
    c0 = int(f * (1 << 64))
    assert f * (1 << 64) != c0                      # bits remain after the first 64
    ctr = ((j + 1) * _random.GAMMA) & MASK
    key0 = (_unmix64(c0) - ctr) & MASK
    key_j = lambda jj: _random.mix64_py((base + (jj + 1) * _random.GAMMA) & MASK)  # noqa: E731

    def words(i):
        return lambda jj: _random.mix64_py(((key0 if jj == 0 else key_j(jj)) + (i + 1) * _random.GAMMA) & MASK)
    # a base key whose further words round element j away: the tie's first word alone says
    # toward zero, so redoing the call on the rounded values (not the inputs) would be seen
    toward = spec.round_scalar(x[j], fmt, "toward_zero")
    for base in range(0x5EED5EED5EED5EED, 0x5EED5EED5EED5EED + 64):
        if spec.round_scalar(x[j], fmt, "stochastic", sr_words=words(j)) != toward:
            break
    else:
        raise AssertionError("no base key rounds element j away")
    keys = Q.SRKeys(np.uint64(base), np.uint64(key0))
    uint = np.uint32 if dtype is np.float32 else np.uint64
    bits = x.view(uint).copy()
    target = bits if inplace else np.empty(n, fmt.code_dtype)
    if inplace:                                     # quantize in place: the values' lut
        lut = Q._lut(fmt, np.dtype(dtype)).view(uint)
        run = (K._quantize_fast, K._quantize_fast_sr, K._quantize_generic, lut, "quantize")
    else:
        run = (K._encode_fast, K._encode_fast_sr, K._encode_generic, None, "encode")
    fast, fast_sr, generic, lut, key = run
    Q._TABLE16.clear()
    Q._run(fast, fast_sr, generic, bits, target, lut, Q.INPUT_LAYOUTS[np.dtype(dtype).name], fmt,
           fp8emu.RoundMode.STOCHASTIC, False, 0, keys, table_key=key)
    assert kinds == [("w64" if dtype is np.float32 else "f64-w64", 1)]
    for i in (j, 0, j + 1, n - 1):
        want = spec.round_scalar(x[i], fmt, "stochastic", sr_words=words(i))
        got = target[i] if not inplace else int(np.flatnonzero(lut == target[i])[0])
        assert got == want, i


def test_small_calls_keep_the_generic_kernel_until_the_table_is_kept(kinds):
    """e8m0fnu's float32 classes: 2^12 (float64: 2^14).  Fewer elements do not build the tables,
    as many do; then fewer use them, down to ``_TABLE_F32_MIN`` (1024)."""
    assert Q._TABLE_F32_MIN == 1 << 10
    Q._TABLE16.clear()
    kw = dict(rounding="stochastic", seed=1)
    x = np.linspace(-3, 3, 1 << 14, dtype=np.float32)
    fp8emu.encode(x[: (1 << 12) - 1], "e8m0fnu", **kw)
    fp8emu.encode(x.astype(np.float64)[: (1 << 14) - 1], "e8m0fnu", **kw)
    fp8emu.encode(x, "e5m2", **kw)                  # the float32 kernels
    assert kinds == []
    fp8emu.encode(x[: 1 << 12], "e8m0fnu", **kw)
    fp8emu.encode(x.astype(np.float64), "e8m0fnu", **kw)
    assert kinds == [("hi32", 0), ("f64-w64", 0)]
    small = fp8emu.encode(x[:1024], "e8m0fnu", **kw), fp8emu.encode(x.astype(np.float64)[:1024], "e8m0fnu", **kw)
    fp8emu.encode(x[:1023], "e8m0fnu", **kw)
    assert kinds[2:] == [("hi32", 0), ("f64-w64", 0)]
    Q._TABLE16.clear()
    want = (fp8emu.encode(x[:1024], "e8m0fnu", **kw), fp8emu.encode(x.astype(np.float64)[:1024], "e8m0fnu", **kw))
    assert len(kinds) == 4
    np.testing.assert_array_equal(small[0], want[0])
    np.testing.assert_array_equal(small[1], want[1])


def test_same_bits_on_one_thread_and_two():
    import numba
    x = _members(11).view(np.float32)
    prev = numba.get_num_threads()
    got = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        try:
            got.append(fp8emu.quantize(x, "e8m0fnu", rounding="stochastic", seed=4))
        finally:
            numba.set_num_threads(prev)
    np.testing.assert_array_equal(got[0].view(np.uint32), got[1].view(np.uint32))


def test_drop_bits_of_a_few_classes():
    """``_sr_drop_bits`` on hand-worked patterns: how many of the significand's low bits the
    interval's quantum spans."""
    e8m0 = get_format("e8m0fnu")
    patterns = np.array([0x3F800000,    # 1.0: binade 0, quantum 2^0 -> the 23 fraction bits
                         0x00400000,    # 2^-127 (float32 subnormal): quantum 2^-127 = 2^22 ulps
                         0x7F000000],   # 2^127
                        np.uint32)
    assert Q._sr_drop_bits(e8m0, patterns).tolist() == [23, 22, 23]
    # no subnormals: below 2^-6 the quantum is 2^-6; 2^-70 has E = 57: 2^-6 / 2^(57 - 150)
    e4m3 = NO_SUBNORMALS_E4M3
    x = np.array([2.0**-70, 1.5, 2.0**-6], np.float32).view(np.uint32)
    assert Q._sr_drop_bits(e4m3, x).tolist() == [64 + 23, 20, 20]
    # float64: 52 fraction bits; its smallest subnormal 2^-1074 is one ulp of 2^-1022's binade
    f64 = Q.INPUT_LAYOUTS["float64"]
    x = np.array([1.0, 2.0**-127, 1.5, 5e-324, 2.0**-70], np.float64).view(np.uint64)
    assert Q._sr_drop_bits(e8m0, x[:2], f64).tolist() == [52, 52]
    assert Q._sr_drop_bits(e4m3, x[2:], f64).tolist() == [49, 1074 - 6, 64 + 52]


def test_float16_and_bfloat16_values_keep_their_own_tables():
    """quantize writes float16 and bfloat16 values as one dtype (uint16): the tables of one
    must not serve the other."""
    fmt = NO_SUBNORMALS_E4M3
    Q._TABLE16.clear()
    for dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)):
        x = np.linspace(-500, 500, 1 << 17).astype(dtype)
        got = fp8emu.quantize(x, fmt, rounding="stochastic", seed=2)
        want = fp8emu.quantize(x.astype(np.float32), fmt, rounding="stochastic", seed=2)
        np.testing.assert_array_equal(got.astype(np.float32), want)
