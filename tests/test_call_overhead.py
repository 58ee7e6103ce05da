"""The per-call shortcuts of encode/quantize/decode (issue 19's small-call pass): plans cached per
arguments, the float32 kernels looked up once, the random keys jitted, the thread count switched
through the threading layer.  Each must change nothing but the time: the same checks of every
argument on every call, the same bits."""

import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fp8emu
from fp8emu import _kernels, _random
from fp8emu.format import RoundMode
from fp8emu.formats import get_format

Q = sys.modules["fp8emu.quantize"]
MASK = (1 << 64) - 1


@pytest.fixture
def cold_plans(monkeypatch):
    monkeypatch.setattr(Q, "_PLANS", {})
    return Q._PLANS


BAD_CALLS = [
    # (keyword arguments that are valid, the one that is not, the error)
    (dict(saturate=True), dict(saturate=1), TypeError),            # 1 == True as a dict key
    (dict(saturate=False), dict(saturate=0), TypeError),
    (dict(rounding="stochastic", sr_bits=1), dict(rounding="stochastic", sr_bits=True), ValueError),
    (dict(rounding="stochastic", sr_bits=8), dict(rounding="stochastic", sr_bits=8.0), ValueError),
    (dict(seed=3), dict(seed=3.0), TypeError),
    (dict(seed=3), dict(seed=True), TypeError),
    (dict(rounding="stochastic", seed=3), dict(rounding="stochastic", seed="3"), TypeError),
    (dict(stream=0), dict(stream=None), TypeError),
    (dict(stream=1), dict(stream=True), TypeError),
    (dict(rounding="stochastic", stream=1), dict(rounding="stochastic", stream=1.0), TypeError),
    (dict(nan_policy="raise"), dict(nan_policy="bogus"), ValueError),
    (dict(rounding="nearest_even"), dict(rounding="nearest"), ValueError),
]


@pytest.mark.parametrize("fn", [fp8emu.encode, fp8emu.quantize], ids=lambda f: f.__name__)
@pytest.mark.parametrize("good, bad, error", BAD_CALLS)
def test_a_cached_plan_still_checks_every_argument(cold_plans, fn, good, bad, error):
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    with pytest.raises(error):
        fn(x, "e5m2", **bad)                # cold
    fn(x, "e5m2", **good)
    fn(x, "e5m2", **good)
    assert cold_plans
    with pytest.raises(error):
        fn(x, "e5m2", **bad)                # after the valid call's plan is cached


def test_nan_policy_raise_is_checked_on_every_call_with_a_cached_plan(cold_plans):
    x = np.ones(10, np.float32)
    fp8emu.quantize(x, "e3m2fnnone", nan_policy="raise")
    x[4] = np.nan
    with pytest.raises(ValueError, match="1 NaN input"):
        fp8emu.quantize(x, "e3m2fnnone", nan_policy="raise")


def _inputs(dtype):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_normal(3000) * 4.0 ** rng.integers(-12, 12, 3000),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -6e4, 448.0, 57344.0]])
    with np.errstate(over="ignore"):
        return x.astype(dtype)


DTYPES = ["float32", "float16", "bfloat16"]
FORMATS = ["e5m2", "e4m3fn", "e4m3fnuz", "e2m1fn", "e3m2fnnone", "bfloat16", "e8m0fnu", "binary8p3se"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("mode", ["nearest_even", "toward_zero", "up", "down", "nearest_away", "stochastic"])
def test_the_cached_kernel_gives_the_routed_bits(dtype, name, mode):
    """The plan's float32 kernels (looked up once per arguments) against the routed call
    (:func:`_run_kernels`) and against the generic kernel, for encode and quantize, out of place
    and in place."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    dt = np.dtype(dtype)
    fmt = get_format(name)
    x = _inputs(dt)
    bits, info = Q._as_bits(x)
    rm = RoundMode.parse(mode)
    kw = dict(rounding=mode, seed=5 if rm is RoundMode.STOCHASTIC else None, saturate=False)
    keys = Q._call_keys(rm, kw["seed"], 0)
    codes = np.empty(bits.shape, fmt.code_dtype)
    Q._run_kernels(None, None, _kernels._encode_generic, bits, codes, None, info, fmt, rm, False, 0, keys)
    assert np.array_equal(fp8emu.encode(x, fmt, **kw), codes)
    routed = np.empty(bits.shape, fmt.code_dtype)
    Q._run_kernels(_kernels._encode_fast, _kernels._encode_fast_sr, _kernels._encode_generic, bits, routed, None,
                   info, fmt, rm, False, 0, keys, f32=True)
    assert np.array_equal(routed, codes)
    try:
        lut = Q._lut(fmt, dt)
    except ValueError:
        return                              # dt cannot hold the format's values: quantize refuses it
    want = lut[codes]
    got = fp8emu.quantize(x, fmt, **kw)
    assert np.array_equal(got.view(lut.dtype), want)
    inplace = x.copy()
    assert fp8emu.quantize(inplace, fmt, out=inplace, **kw) is inplace
    assert np.array_equal(inplace.view(lut.dtype), want)
    assert Q._plan_of("quantize", fmt, mode, False, None, dt, "allow").route is \
        Q._f32_route(True, fmt, rm, False, 0, info)


@pytest.mark.parametrize("fn", ["encode", "quantize"])
@pytest.mark.parametrize("inplace", [False, True])
def test_exact_sr_beyond_64_dropped_bits_falls_back_to_the_generic_kernel(fn, inplace):
    """float32 subnormals drop up to 133 bits in e5m2: the float32 kernels give the call up and
    the generic kernel, which draws further words, rounds it; the bits are the generic kernel's."""
    fmt = get_format("e5m2")
    x = np.random.default_rng(8).standard_normal(5000).astype(np.float32)
    x[[7, 4000]] = np.array([1, 0x80000003], np.uint32).view(np.float32)    # +-2^-149, -3 * 2^-149
    x[100:200] *= np.float32(2.0 ** -40)                                   # 41-64 dropped bits: the whole word
    bits, info = Q._as_bits(x)
    keys = Q._call_keys(RoundMode.STOCHASTIC, 9, 4)
    codes = np.empty(bits.shape, fmt.code_dtype)
    Q._run_kernels(None, None, _kernels._encode_generic, bits, codes, None, info, fmt, RoundMode.STOCHASTIC,
                   False, 0, keys)
    want = codes if fn == "encode" else Q._lut(fmt, np.dtype(np.float32))[codes].view(np.float32)
    y = x.copy()
    kw = dict(rounding="stochastic", seed=9, stream=4)
    if fn == "encode":
        got = fp8emu.encode(y, fmt, **kw)
    else:
        got = fp8emu.quantize(y, fmt, out=y if inplace else None, **kw)
    assert np.array_equal(got.view(np.uint8 if fn == "encode" else np.uint32),
                          want.view(np.uint8 if fn == "encode" else np.uint32))


def test_plans_are_evicted_and_stay_correct(monkeypatch, cold_plans):
    monkeypatch.setattr(Q, "_PLANS_KEEP", 4)
    x = _inputs(np.float32)
    for _ in range(2):
        for name in FORMATS:
            want = fp8emu.decode(fp8emu.encode(x, name, saturate=True), name, dtype=np.float64)
            got = fp8emu.quantize(x.astype(np.float64), name, saturate=True)
            assert np.array_equal(got, want, equal_nan=True)
            assert len(cold_plans) <= 4


def test_equal_arguments_share_a_plan(cold_plans):
    x = np.ones(4, np.float32)
    fp8emu.quantize(x, "e5m2", rounding="nearest_even")
    fp8emu.quantize(x, "e5m2", rounding=RoundMode.NEAREST_EVEN)
    fp8emu.quantize(x, get_format("e5m2"), rounding="nearest_even")     # a Format is not its name
    assert len(cold_plans) == 2
    fp8emu.quantize(x, "e5m2", saturate=np.bool_(False))                  # another type: its own plan
    assert len(cold_plans) == 3


def test_unhashable_arguments_get_the_precise_error(cold_plans):
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="fmt must be a Format or a format name"):
        fp8emu.quantize(x, ["e5m2"])
    with pytest.raises(ValueError, match="not a rounding mode"):
        fp8emu.quantize(x, "e5m2", rounding=["nearest_even"])
    assert not cold_plans


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-2**70, 2**70), st.integers(0, MASK)),
       st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, 1, -1, 2**63, MASK])))
def test_jitted_call_keys_equal_the_python_ones(seed, stream):
    base, key0 = _random.seeded_call_keys(seed, stream)
    assert type(base) is np.uint64 and type(key0) is np.uint64
    assert (int(base), int(key0)) == _random.call_keys(_random.key_base(seed, stream))


def test_numpy_integer_seeds_and_streams_give_the_python_int_keys():
    for seed, stream in [(np.int64(-5), np.uint64(2**64 - 1)), (np.uint64(2**63), np.int32(-1))]:
        assert tuple(map(int, _random.seeded_call_keys(seed, stream))) == \
            _random.call_keys(_random.key_base(int(seed), int(stream)))


def test_the_threading_layers_count_is_numbas_count():
    get, set_ = _kernels.thread_count_functions()
    prev = numba.get_num_threads()
    assert get() == prev
    try:
        set_(1)
        assert numba.get_num_threads() == 1 and get() == 1
        numba.set_num_threads(prev)
        assert get() == prev
    finally:
        numba.set_num_threads(prev)


def test_decode_checks_the_range_where_the_code_dtype_is_wider_than_the_format():
    with pytest.raises(ValueError, match=r"out of range for e2m1fn \(0..15\)"):
        fp8emu.decode(np.array([3, 16], np.uint8), "e2m1fn")
    with pytest.raises(ValueError, match="out of range"):
        fp8emu.decode(np.array([256], np.uint16), "e5m2")
    with pytest.raises(ValueError, match="out of range"):
        fp8emu.decode(np.array([-1], np.int8), "e5m2")
    codes = np.arange(256, dtype=np.uint8)          # every uint8 is a code of an 8-bit format
    assert np.array_equal(fp8emu.decode(codes, "e5m2", dtype=np.float64), get_format("e5m2").values(),
                          equal_nan=True)


def test_cached_plans_keep_the_callers_format_name():
    """Formats that differ only by name are equal (and hash alike), but each call's messages name
    its own format: the plans are cached per name too."""
    named = fp8emu.Format(2, 1, specials=get_format("e2m1fn").specials, name="my_fp4")
    assert named == get_format("e2m1fn")
    for fmt in (get_format("e2m1fn"), named):
        with pytest.raises(ValueError, match=rf"out of range for {fmt.name} \(0..15\)"):
            fp8emu.decode(np.array([99], np.uint8), fmt)
        with pytest.raises(ValueError, match=rf"NaN input\(s\) but {fmt.name} has no NaN"):
            fp8emu.encode(np.array([np.nan], np.float32), fmt, nan_policy="raise")


@pytest.mark.parametrize("metadata_first", [True, False], ids=["metadata_first", "plain_first"])
def test_dtype_metadata_does_not_leak_through_cached_plans(metadata_first):
    """NumPy compares and hashes dtypes without their ``metadata``, so one plan serves a dtype with
    metadata and the plain one: the result dtype was the first caller's (a plain call's result
    carried another call's metadata).  Results carry none, whatever ran before."""
    meta = np.dtype(np.float32, metadata={"unit": "m"})
    plain = np.dtype(np.float32)
    Q._PLANS.clear()
    Q._DECODE_PLANS.clear()
    codes = np.array([60, 61], np.uint8)
    for dt in ((meta, plain) if metadata_first else (plain, meta)):
        for result in (fp8emu.quantize(np.ones(2, dt), "e5m2"), fp8emu.quantize(np.ones(2, dt), "e5m2", out=None),
                       fp8emu.decode(codes, "e5m2", dtype=dt)):
            assert result.dtype == plain and result.dtype.metadata is None
