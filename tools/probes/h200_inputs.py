"""Inputs of the H200 FP8 GEMM probes, rebuilt identically on the GPU machine and in the tests.

Pure NumPy on purpose (no fp8emu, no torch): the probe script ``h200_probe.py`` imports it on
the device, and ``tests/test_nvidia_*.py`` import it to regenerate the operands of a recorded
probe from its parameters, so the recordings under ``tests/data/`` hold outputs only.

Every probe is a pair of uint8 code matrices ``(a, bt)`` of shapes (M, K) and (N, K), C = a @ bt.T,
in the OCP encodings ``e4m3fn`` / ``e5m2`` (as torch.float8_e4m3fn / float8_e5m2 and ml_dtypes).

Designed probes ("vector" probes) put one hand-made test vector pair per diagonal output
(row i of ``a`` with row i of ``bt``); the off-diagonal outputs are extra random-looking data
points that the model must match as well.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["FMT", "decode_table", "encode_exact", "random_codes", "random_rows", "vector_probe", "boundary_probe",
           "VECTOR_PROBES", "crc"]

# (exp_bits, man_bits, bias, first non-finite magnitude code)
FMT = {"e4m3fn": (4, 3, 7, 0x7F), "e5m2": (5, 2, 15, 0x7C)}


def decode_table(fmt: str) -> np.ndarray:
    """float64 value of each of the 256 codes (NaN/Inf codes give NaN)."""
    ebits, mbits, bias, bad = FMT[fmt]
    codes = np.arange(256)
    mag = codes & 0x7F
    e = mag >> mbits
    m = mag & ((1 << mbits) - 1)
    val = np.where(e == 0, m * 2.0 ** (1 - bias - mbits), (m + (1 << mbits)) * 2.0 ** (e - bias - mbits))
    val = np.where(codes & 0x80, -val, val)
    return np.where(mag >= bad, np.nan, val)


def encode_exact(values, fmt: str) -> np.ndarray:
    """uint8 codes of values that are exactly representable in ``fmt`` (ValueError otherwise)."""
    table = decode_table(fmt)
    codes = np.array([c for c in range(256) if not np.isnan(table[c]) and c != 0x80])
    order = np.argsort(table[codes])
    vals, codes = table[codes][order], codes[order]
    flat = np.asarray(values, dtype=np.float64).ravel()
    idx = np.clip(np.searchsorted(vals, flat), 0, len(vals) - 1)
    bad = vals[idx] != flat
    if bad.any():
        raise ValueError(f"value {flat[bad][0]!r} is not exact in {fmt}")
    out = codes[idx].astype(np.uint8)
    return out.reshape(np.shape(values))


def crc(*arrays: np.ndarray) -> int:
    """CRC32 of the arrays' bytes (checks that a regeneration matches the recording)."""
    value = 0
    for arr in arrays:
        value = zlib.crc32(np.ascontiguousarray(arr).tobytes(), value)
    return value


def random_codes(seed: int, shape: tuple[int, int], fmt: str, dist: str) -> np.ndarray:
    """Random finite codes drawn on the code level (no rounding involved).

    Args:
        seed: PCG64 seed (an int or a SeedSequence).
        shape: output shape.
        fmt: ``"e4m3fn"`` or ``"e5m2"``.
        dist: ``"normal"`` (exponents within 2^-3..2^1 of 1, like N(0,1) data), ``"wide"`` (every
            finite code, subnormals included), ``"sub"`` (half subnormals, half the lowest three
            binades), ``"cancel"`` (half magnitudes near 2^4, half near 2^-4, random signs).
            About 3% of the elements are zero in every distribution.
    """
    ebits, mbits, bias, bad = FMT[fmt]
    rng = np.random.Generator(np.random.PCG64(seed))
    n = int(np.prod(shape))
    sign = rng.integers(0, 2, n, dtype=np.int64) << 7
    man = rng.integers(0, 1 << mbits, n, dtype=np.int64)
    if dist == "normal":
        exp = rng.integers(bias - 3, bias + 2, n, dtype=np.int64)
    elif dist == "wide":
        mag = rng.integers(1, bad, n, dtype=np.int64)
        exp, man = mag >> mbits, mag & ((1 << mbits) - 1)
    elif dist == "sub":
        exp = np.where(rng.integers(0, 2, n) == 0, 0, rng.integers(1, 4, n, dtype=np.int64))
    elif dist == "cancel":
        exp = np.where(rng.integers(0, 2, n) == 0, bias + 4, bias - 4) + rng.integers(-1, 2, n, dtype=np.int64)
    else:
        raise ValueError(f"dist={dist!r}; allowed: 'normal', 'wide', 'sub', 'cancel'")
    codes = sign | (exp << mbits) | man
    codes = np.where(rng.random(n) < 0.03, 0, codes)
    return codes.astype(np.uint8).reshape(shape)


def random_rows(seed: int, rows, K: int, fmt: str, dist: str) -> np.ndarray:
    """Rows ``rows`` of a random-code matrix whose row r is ``random_codes((seed, r), (1, K), ...)``.

    Lets a test rebuild only the sampled rows of a large recorded operand.
    """
    return np.concatenate([random_codes(np.random.SeedSequence([seed, int(r)]), (1, K), fmt, dist)
                           for r in rows]) if len(rows) else np.zeros((0, K), np.uint8)


# ----------------------------------------------------------------------------------------
# Designed test vectors.  Each builder returns a list of (a_values, b_values) of length K,
# exact in e4m3fn (a) and e4m3fn / e5m2 (b); magnitudes are chosen so the prediction of every
# parameter differs from its neighbours (see docs/h200.md).
# ----------------------------------------------------------------------------------------
def _vec(K, entries_a, entries_b=None):
    a = np.zeros(K)
    b = np.ones(K)
    for k, v in entries_a.items():
        a[k] = v
    for k, v in (entries_b or {}).items():
        b[k] = v
    return a, b


def _vectors_step(K=256):
    # L = 2^8 at p, t = 2^-6 at every k < p: the tiny terms of earlier 32-steps are summed exactly
    # before L's step; those of L's own step fall below 2^(8-13) and are truncated away.
    # Expected: 256 + 2^-6 * step * floor(p / step).
    return [_vec(K, {**{k: 2.0 ** -6 for k in range(p)}, p: 256.0}) for p in range(K)]


def _vectors_kept_bits(K=64):
    out = []
    # term truncation: L = 2^8 at k=0, t = +-(1 + f/8) 2^-j at k=1, j = 2..6, and the subnormals m 2^-9.
    mags = [(1 + f / 8) * 2.0 ** -j for j in range(2, 7) for f in range(8)] + [m * 2.0 ** -9 for m in range(1, 8)]
    for t in mags:
        for s in (1.0, -1.0):
            out.append(_vec(K, {0: 256.0, 1: s * t}))
    # normalisation truncation: 2^8 + 2^8 + m 2^-5 -> 2^9 + m 2^-5 needs 14 bits of 2^-4 units.
    for m in range(1, 8):
        for s in (1.0, -1.0):
            out.append(_vec(K, {0: s * 256.0, 1: s * 256.0, 2: s * m * 2.0 ** -5}))
    # un-normalised product exponent: 1.5*1.5 - 1.5*1.5 + t: t = 2^-13 survives only when the
    # reference exponent is e(a)+e(b) = 0 (not the normalised 1).
    for t in (2.0 ** -12, 1.5 * 2.0 ** -13, 2.0 ** -13, 2.0 ** -14):
        out.append(_vec(K, {0: 1.5, 1: -1.5, 2: t / 2.0 ** -6}, {0: 1.5, 1: 1.5, 2: 2.0 ** -6}))
    return out


def _vectors_subnormal(K=64):
    out = []
    # a0 = m 2^-9 (e4m3 subnormal) times b0 = 2^8 -> m/2, rule exponent -6 + 8 = 2 (unit 2^-11);
    # the true exponent would be -1..1 (unit 2^-14..2^-12).  t = a1 * 2^-6 with a1 = (1+f/8) 2^-6.
    for m in range(1, 8):
        for f in (0, 3, 7):
            t_a = (1 + f / 8) * 2.0 ** -6
            out.append(_vec(K, {0: m * 2.0 ** -9, 1: t_a}, {0: 256.0, 1: 2.0 ** -6}))
    return out


def _vectors_subnormal_e5m2(K=64):
    out = []
    # b0 = m 2^-16 (e5m2 subnormal) times a0 = 2^8 -> m 2^-8, rule exponent 8 - 14 = -6 (unit 2^-19);
    # t = a1 * 2^-14 with a1 = (1+f/8) 2^-6 lies in [2^-20, 2^-19): lost under the rule.
    for m in range(1, 4):
        for f in (0, 3, 7):
            out.append(_vec(K, {0: 256.0, 1: (1 + f / 8) * 2.0 ** -6}, {0: m * 2.0 ** -16, 1: 2.0 ** -14}))
    return out


def _vectors_promotion(K=640):
    # L = 2^8 at k=0, t = 2^-6 at p: lost inside the tensor core, kept once promoted to FP32.
    ps = sorted(set(range(1, K, 5)) | {31, 32, 63, 64, 127, 128, 129, 255, 256, 383, 384, 511, 512, K - 1})
    return [_vec(K, {0: 256.0, p: 2.0 ** -6}) for p in ps]


def _vectors_acc_alignment(K=128):
    out = []
    # c = 2^8 after step 0; step 1 holds n tiny products 2^-6: with c in the alignment group they are
    # truncated away; without it they would sum to n 2^-6 and survive.
    for n in (1, 2, 4, 8, 16, 32):
        out.append(_vec(K, {0: 256.0, **{32 + k: 2.0 ** -6 for k in range(n)}}))
        out.append(_vec(K, {0: 256.0, **{96 + k: 2.0 ** -6 for k in range(n)}}))
    return out


VECTOR_PROBES = {
    # name: (builder, a_fmt, b_fmt)
    "step": (_vectors_step, "e4m3fn", "e4m3fn"),
    "kept_bits": (_vectors_kept_bits, "e4m3fn", "e4m3fn"),
    "subnormal": (_vectors_subnormal, "e4m3fn", "e4m3fn"),
    "subnormal_e5m2": (_vectors_subnormal_e5m2, "e4m3fn", "e5m2"),
    "promotion": (_vectors_promotion, "e4m3fn", "e4m3fn"),
    "acc_alignment": (_vectors_acc_alignment, "e4m3fn", "e4m3fn"),
}


def vector_probe(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes (a, bt) of a designed probe: test vector pair i sits on output (i, i).

    M = N = number of vectors rounded up to a multiple of 16 (padding rows are zero).
    """
    builder, a_fmt, b_fmt = VECTOR_PROBES[name]
    vecs = builder()
    T = len(vecs)
    K = len(vecs[0][0])
    M = -(-T // 16) * 16
    a = np.zeros((M, K))
    b = np.zeros((M, K))
    for i, (va, vb) in enumerate(vecs):
        a[i], b[i] = va, vb
    return encode_exact(a, a_fmt), encode_exact(b, b_fmt)


def boundary_probe(kind: str, M: int, N: int, K: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GEMM ``g`` of a split-boundary map: codes (a, bt) and the boundary tested by each output.

    Outputs are grouped by (i mod R, n mod C), R = min(M, 16), C = min(N, 16); group q = r*C + c
    of GEMM g tests boundary index t = g*R*C + q.  Each boundary owns distinct k positions, so an
    output sees only its own boundary's products.

    * ``"trunc"``: b = 32 (t + 1); L = 2^16 at k = b-1, s = 2^-4 at k = b.  Inside one tensor-core
      accumulation s is truncated away (2^-20 relative); the output exceeds 2^16 iff the kernel
      starts a new FP32-reduced partial sum (a split, or a promotion) at b.
    * ``"assoc"``: b = 128 (t + 1); L = 2^16 at b-1, x = y = 2^-8 at b and b+129.  Summed in FP32 in
      order, L + x + y = L (two ties to even); as separate partial (x + y) it gives L (1 + 2^-23).

    Returns:
        a (M, K) uint8, bt (N, K) uint8 (e4m3fn codes), and bnd (M, N) int64: the boundary b of each
        output, or -1 where the output tests nothing.
    """
    R, C = min(M, 16), min(N, 16)
    ri = np.arange(M) % R
    cn = np.arange(N) % C
    big, small, tiny = encode_exact([256.0, 0.25, 2.0 ** -4], "e4m3fn")
    a = np.zeros((M, K), dtype=np.uint8)
    b = np.zeros((N, K), dtype=np.uint8)
    bnd = np.full((M, N), -1, dtype=np.int64)
    stride = 32 if kind == "trunc" else 128
    if kind not in ("trunc", "assoc"):
        raise ValueError(f"kind={kind!r}; allowed: 'trunc', 'assoc'")
    for q in range(R * C):
        t = g * R * C + q
        pos = stride * (t + 1)
        r, c = divmod(q, C)
        rows, cols = ri == r, cn == c
        if kind == "trunc":
            if pos >= K:
                continue
            a[rows, pos - 1], b[cols, pos - 1] = big, big
            a[rows, pos], b[cols, pos] = small, small
        else:
            if pos + 129 >= K:
                continue
            a[rows, pos - 1], b[cols, pos - 1] = big, big
            for k in (pos, pos + 129):
                a[rows, k], b[cols, k] = tiny, tiny
        bnd[np.ix_(rows, cols)] = pos
    return a, b, bnd


def boundary_gemm_count(kind: str, M: int, N: int, K: int) -> int:
    stride = 32 if kind == "trunc" else 128
    n_bnd = max(0, (K - 1) // stride)
    per = min(M, 16) * min(N, 16)
    return -(-n_bnd // per)
