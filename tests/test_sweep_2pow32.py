"""All 2^32 float32 inputs for e4m3fn and e5m2 (non-saturating RNE): codes bit-identical to
ml_dtypes, and the SHA-256 of the codes in input order (NaN outputs written as 0x7F) equal to
the H200 hashes of SPEC.md.  Chunked (2^24 inputs at a time) to bound memory."""

import hashlib

import numpy as np
import pytest

import fp8emu
from fp8emu.formats import e4m3fn, e5m2

H200_SHA256 = {
    "e4m3fn": "440f26d6c947a242265ec3d2966282cef45a608311a657d7a75f7be8339fad6f",
    "e5m2": "90cf5f0c927c22f532215b823afade32c59112ec7c80de2f5169efa46b5237af",
}
CHUNK = 1 << 24


def _all_float32_patterns():
    """``(chunk number, its 2^24 float32 patterns as uint32)`` for all 2^32 patterns in order,
    chunk by chunk in one buffer (bounded memory)."""
    u = np.arange(CHUNK, dtype=np.uint32)
    for chunk in range(1 << 32 >> 24):
        if chunk:
            u += np.uint32(CHUNK)
        yield chunk, u


def _sweep(fmt, ml_dt=None):
    h = hashlib.sha256()
    codes = np.empty(CHUNK, np.uint8)
    mismatches = 0
    for chunk, u in _all_float32_patterns():
        x = u.view(np.float32)
        fp8emu.encode(x, fmt, out=codes)
        codes[codes == fmt.nan_code] = 0x7F          # every NaN output as 0x7F
        h.update(codes.data)
        if ml_dt is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                theirs = x.astype(ml_dt).view(np.uint8).copy()
            nan = np.isnan(theirs.view(ml_dt).astype(np.float32))
            theirs[nan] = 0x7F
            mismatches += int(np.count_nonzero(theirs != codes))
    return h.hexdigest(), mismatches


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [e4m3fn, e5m2], ids=str)
def test_all_float32_inputs_match_h200_and_ml_dtypes(fmt):
    try:
        import ml_dtypes
        ml_dt = np.dtype(getattr(ml_dtypes, "float8_" + fmt.name))
    except ImportError:
        ml_dt = None
    digest, mismatches = _sweep(fmt, ml_dt)
    assert mismatches == 0
    assert digest == H200_SHA256[fmt.name]


# (format, rounding, saturate): the float32 value kernel's variants (lean / not, -0 or not,
# q a float32 subnormal for bfloat16, no subnormals, m = 0 with ties to the even code, emin = -127
# with and without zero) and every deterministic mode on e5m2.
_VALUE_CASES = ([("e5m2", m, False) for m in ("nearest_even", "nearest_away", "toward_zero", "up", "down")]
                + [("bfloat16", m, False) for m in ("nearest_even", "toward_zero", "up")]
                + [("e4m3fn", "nearest_even", False), ("e4m3fn", "toward_zero", True), ("e4m3fnuz", "nearest_even", False),
                   ("e2m1fn", "nearest_even", False), ("e3m2fn", "up", False), ("e5m2", "down", True)]
                + [("e4m3_nosub", "nearest_even", False), ("e5m2_nosub", "up", False), ("e8m7_nosub", "nearest_even", False),
                   ("binary8p1se", "nearest_even", False)]
                + [("e8m0fnu", "nearest_even", False), ("e8m0fnu", "down", True), ("binary8p1ue", "nearest_even", False)])


@pytest.mark.slow
@pytest.mark.parametrize("name,rounding,saturate", _VALUE_CASES, ids=lambda v: str(v))
def test_all_float32_inputs_quantize_equals_decoded_encode(name, rounding, saturate):
    """encode of all 2^32 float32 inputs (the codes kernel: the value kernels' rounding, then the
    code of the value; the generic kernel for bfloat16) equals the generic kernel's codes (an
    independent algorithm: integer code arithmetic, branches), and quantize (the float32 value
    kernel) equals the table value of those codes, for each deterministic mode."""
    import importlib
    Q = importlib.import_module("fp8emu.quantize")
    from fp8emu import _kernels
    fmt = fp8emu.get_format(name)
    _, mode, _, keys, _ = Q._resolve(fmt, rounding, saturate, 0, None, 0)
    prm = Q._params(Q.INPUT_LAYOUTS["float32"], fmt, mode, saturate, 0)
    lut = fp8emu.decode(np.arange(fmt.num_codes), fmt, dtype=np.float32).view(np.uint32)
    lut = np.where(np.isnan(lut.view(np.float32)), np.uint32(0x7FC00000), lut)
    codes = np.empty(CHUNK, fmt.code_dtype)
    want = np.empty(CHUNK, fmt.code_dtype)
    values = np.empty(CHUNK, np.float32)
    bad = 0
    for chunk, u in _all_float32_patterns():
        x = u.view(np.float32)
        _kernels._encode_generic(u, want, prm, *keys)
        fp8emu.encode(x, fmt, rounding=rounding, saturate=saturate, out=codes)
        fp8emu.quantize(x, fmt, rounding=rounding, saturate=saturate, out=values)
        bad += int(np.count_nonzero(codes != want))
        bad += int(np.count_nonzero(values.view(np.uint32) != lut[want]))
    assert bad == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["e5m2", "e3m2fn", "binary8p1uf"])
def test_all_float32_inputs_exact_sr_quantize_equals_generic_kernel(name):
    """Exact stochastic quantize (and encode) of all 2^32 float32 inputs (the float32 kernels:
    the word's high half, chunks with elements beyond 32 dropped bits redone on the whole word,
    the generic kernel after elements beyond 64) equals the generic kernel's values (and codes)
    with the same keys (an independent algorithm: branches, no float32 path).  Each 2^24-input call has its own
    seed; every 16th call runs in place too (the read pass first)."""
    import importlib
    Q = importlib.import_module("fp8emu.quantize")
    from fp8emu import _kernels
    fmt = fp8emu.get_format(name)
    lut = Q._lut(fmt, np.dtype(np.float32))
    prm = Q._params(Q.INPUT_LAYOUTS["float32"], fmt, fp8emu.RoundMode.STOCHASTIC, False, 0)
    values = np.empty(CHUNK, np.float32)
    want = np.empty(CHUNK, np.uint32)          # the table holds the values' bits
    codes, want_codes = np.empty(CHUNK, fmt.code_dtype), np.empty(CHUNK, fmt.code_dtype)
    bad = 0
    for chunk, u in _all_float32_patterns():
        x = u.view(np.float32)
        keys = Q._resolve(fmt, "stochastic", False, chunk, None, 0)[3]
        _kernels._quantize_generic(u, want, lut, prm, *keys)
        fp8emu.quantize(x, fmt, rounding="stochastic", seed=chunk, out=values)
        bad += int(np.count_nonzero(values.view(np.uint32) != want))
        _kernels._encode_generic(u, want_codes, prm, *keys)        # encode's codes kernel likewise
        fp8emu.encode(x, fmt, rounding="stochastic", seed=chunk, out=codes)
        bad += int(np.count_nonzero(codes != want_codes))
        if chunk % 16 == 0:
            y = x.copy()
            fp8emu.quantize(y, fmt, rounding="stochastic", seed=chunk, out=y)
            bad += int(np.count_nonzero(y.view(np.uint32) != want))
    assert bad == 0


@pytest.mark.slow
@pytest.mark.parametrize("name,rounding", [("e8m0fnu", "nearest_even"), ("binary8p1ue", "nearest_even"),
                                           ("e5m2", "odd"), ("float32", "nearest_even")])
def test_all_float32_inputs_table_and_copy_equal_the_generic_kernel(monkeypatch, name, rounding):
    """encode of all 2^32 float32 inputs where the float32 kernels cannot take them: through the
    table of 2^17 input classes (``_kernels._lookup_sticky``; ties to the even code for
    binary8p1ue, round-to-odd) or, into float32 itself, the copy with the specials of
    ``_kernels._copy_f32_finite``, equal to the generic kernel's codes."""
    import importlib
    Q = importlib.import_module("fp8emu.quantize")
    from fp8emu import _kernels
    fmt = fp8emu.get_format(name)
    mode = fp8emu.RoundMode(rounding)
    assert Q._holds_float32(fmt) if name == "float32" else Q._f32_sticky_ok(fmt)
    monkeypatch.setattr(Q, "_f32_route", lambda *a: None)     # e8m0fnu, binary8p1ue: the table, not the
    monkeypatch.setattr(Q, "_PLANS", {})                      # float32 kernels that take them now
    prm = Q._params(Q.INPUT_LAYOUTS["float32"], fmt, mode, False, 0)
    keys = Q._resolve(fmt, rounding, False, None, None, 0)[3]
    codes = np.empty(CHUNK, fmt.code_dtype)
    want = np.empty(CHUNK, fmt.code_dtype)
    bad = 0
    for chunk, u in _all_float32_patterns():
        _kernels._encode_generic(u, want, prm, *keys)
        fp8emu.encode(u.view(np.float32), fmt, rounding=rounding, out=codes)
        bad += int(np.count_nonzero(codes != want))
    assert bad == 0


@pytest.mark.slow
@pytest.mark.parametrize("name,sr_bits", [("e8m0fnu", None), ("binary8p1uf", 8), ("e4m3-nosub", None)])
def test_all_float32_inputs_sr_by_class_equal_the_generic_kernel(monkeypatch, name, sr_bits):
    """Stochastic encode of all 2^32 float32 inputs where the float32 kernels cannot take them:
    by input class (``_kernels._sr_class_kernel``: exact SR on the word's high half for e8m0fnu,
    r-bit SR for binary8p1uf, the whole word for e4m3 without subnormals) equal to the generic
    kernel's codes with the same keys.  Each 2^24-input call has its own seed; every 16th call
    quantizes in place too (values: the codes' table values)."""
    import importlib
    Q = importlib.import_module("fp8emu.quantize")
    from fp8emu import _kernels
    fmt = fp8emu.Format(4, 3, subnormals=False) if name == "e4m3-nosub" else fp8emu.get_format(name)
    layout = Q.INPUT_LAYOUTS["float32"]
    assert Q._f32_sticky_ok(fmt)
    assert (Q._f32_route(False, fmt, fp8emu.RoundMode.STOCHASTIC, False, sr_bits or 0, layout) is None) == (name != "binary8p1uf")
    monkeypatch.setattr(Q, "_f32_route", lambda *a: None)     # binary8p1uf: the classes, not the float32 kernels
    monkeypatch.setattr(Q, "_PLANS", {})
    prm = Q._params(layout, fmt, fp8emu.RoundMode.STOCHASTIC, False, sr_bits or 0)
    lut = Q._lut(fmt, np.dtype(np.float32)).view(np.uint32)
    codes = np.empty(CHUNK, fmt.code_dtype)
    want = np.empty(CHUNK, fmt.code_dtype)
    bad = 0
    for chunk, u in _all_float32_patterns():
        keys = Q._resolve(fmt, "stochastic", False, chunk, sr_bits, 0)[3]
        _kernels._encode_generic(u, want, prm, *keys)
        fp8emu.encode(u.view(np.float32), fmt, rounding="stochastic", seed=chunk, sr_bits=sr_bits, out=codes)
        bad += int(np.count_nonzero(codes != want))
        if chunk % 16 == 0:
            y = u.copy().view(np.float32)
            fp8emu.quantize(y, fmt, rounding="stochastic", seed=chunk, sr_bits=sr_bits, out=y)
            bad += int(np.count_nonzero(y.view(np.uint32) != lut[want]))
    assert bad == 0


@pytest.mark.slow
@pytest.mark.parametrize("name,rounding", [("bfloat16", "nearest_even"), ("bfloat16", "stochastic"),
                                           ("tf32", "toward_zero")])
def test_all_float32_inputs_encode_by_value_and_shift_equal_the_generic_kernel(name, rounding):
    """encode of all 2^32 float32 inputs into formats whose codes are the top bits of float32
    patterns (``quantize._codes_are_f32_top_bits``: the value kernel, then a shift) equal to
    the generic kernel's codes with the same keys; each 2^24-input call has its own seed."""
    import importlib
    Q = importlib.import_module("fp8emu.quantize")
    from fp8emu import _kernels
    fmt = fp8emu.get_format(name)
    assert Q._codes_are_f32_top_bits(fmt)
    prm = Q._params(Q.INPUT_LAYOUTS["float32"], fmt, fp8emu.RoundMode(rounding), False, 0)
    codes = np.empty(CHUNK, fmt.code_dtype)
    want = np.empty(CHUNK, fmt.code_dtype)
    bad = 0
    for chunk, u in _all_float32_patterns():
        keys = Q._resolve(fmt, rounding, False, chunk, None, 0)[3]
        _kernels._encode_generic(u, want, prm, *keys)
        fp8emu.encode(u.view(np.float32), fmt, rounding=rounding, seed=chunk, out=codes)
        bad += int(np.count_nonzero(codes != want))
    assert bad == 0
