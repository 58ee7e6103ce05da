"""Dot-product (GEMM) test vectors for a chosen accumulator, and checking results against them.

Line format (text)::

    # fp8emu dot-product vectors v1
    # a_format=e4m3fn exp_bits=4 man_bits=3 bias=7 subnormals=1 specials=fn signed=1 has_zero=1
    # b_format=e5m2 exp_bits=5 man_bits=2 bias=15 subnormals=1 specials=ieee signed=1 has_zero=1
    # accumulator=fp32_sequential k=16 level=2 seed=0
    # columns: a_codes b_codes expected_float32
    38383838... 3C3C3C3C... 41800000

``a_codes``/``b_codes`` are the K operand codes of one dot product, concatenated in hex
(2 digits per code for formats of at most 8 bits, 4 above); ``expected_float32`` is the bit
pattern of ``fp8emu.matmul`` on those codes with that accumulator.  A device's results file
has one ``expected_float32``-style hex word per line, in the same order (or the three columns).

Accumulators are named by a spec string: ``fp32_sequential``, ``fp32_pairwise``,
``fp32_blocked:<block>``, ``lowp:<format>:<chunk>`` (Wang et al.'s chunked accumulation),
``nvidia_hopper_fp8`` and ``nvidia_hopper_fp8:fast`` (the H200 model).  ``fp32_blas`` is
refused: its summation order is unspecified, so it has no bit-exact expected value.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from ..format import Format
from ..formats import get_format
from .vectors import _parse_meta, format_header, parse_format

__all__ = ["DotVectorSet", "accumulator_from_spec", "generate_dot", "write_dot", "read_dot", "check_dot",
           "DotReport"]

DOT_HEADER = "# fp8emu dot-product vectors v1"


def accumulator_from_spec(spec: str):
    """The accumulator a spec string names (see the module docstring).

    Raises:
        ValueError: unknown or non-reproducible accumulator, or bad parameters.
    """
    from ..accumulators import fp32_blocked, fp32_pairwise, fp32_sequential, lowp
    name, *params = spec.strip().split(":")
    try:
        if name == "fp32_sequential" and not params:
            return fp32_sequential
        if name == "fp32_pairwise" and not params:
            return fp32_pairwise
        if name == "fp32_blocked" and len(params) <= 1:
            return fp32_blocked(int(params[0]) if params else 32)
        if name == "lowp" and 1 <= len(params) <= 2:
            return lowp(params[0], int(params[1]) if len(params) > 1 else 64)
        if name == "nvidia_hopper_fp8" and params in ([], ["fast"]):
            from ..accumulators.nvidia import nvidia_hopper_fp8
            return nvidia_hopper_fp8(fast_accum=params == ["fast"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"accumulator={spec!r}: {exc}") from None
    hint = " (its summation order is unspecified: no bit-exact expected value)" if name == "fp32_blas" else ""
    raise ValueError(f"accumulator={spec!r} is not supported{hint}; allowed: fp32_sequential, fp32_pairwise, "
                     "fp32_blocked:<block>, lowp:<format>[:<chunk>], nvidia_hopper_fp8[:fast]")


@dataclasses.dataclass
class DotVectorSet:
    """Dot-product vectors: operand codes (count, K), expected float32 results (count,)."""

    a_fmt: Format
    b_fmt: Format
    accumulator: str
    a: np.ndarray
    b: np.ndarray
    expected: np.ndarray
    level: str = ""
    seed: int = 0

    @property
    def k(self) -> int:
        return int(self.a.shape[1])

    def __len__(self) -> int:
        return int(self.a.shape[0])


def _finite_codes(fmt: Format) -> np.ndarray:
    vals = fmt.values()
    return np.flatnonzero(np.isfinite(vals)).astype(fmt.code_dtype)


def _structured(a_fmt: Format, b_fmt: Format, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Level-1 cases: zeros and signed zeros, max products, cancellation, absorption of small
    terms by a large partial sum, subnormal products, and one NaN/Inf operand where the format
    has them."""
    def code(fmt, v):
        from ..quantize import encode
        return int(encode(np.array([v], np.float64), fmt, saturate=True)[0])
    rows = []
    one_a, one_b = code(a_fmt, 1.0), code(b_fmt, 1.0)
    zero_a, zero_b = code(a_fmt, 0.0), code(b_fmt, 0.0)
    mx_a, mx_b = a_fmt.max_code, b_fmt.max_code
    sub_a, sub_b = (1, 1)
    neg = lambda fmt, c: c | fmt.sign_mask  # noqa: E731
    full = lambda c: [c] * k  # noqa: E731
    rows.append((full(zero_a), full(zero_b)))
    if a_fmt.has_negative_zero:
        rows.append((full(neg(a_fmt, zero_a)), full(one_b)))  # -0 * 1 summed: -0 or +0?
    rows.append((full(mx_a), full(mx_b)))  # the largest sum
    rows.append(([mx_a] + [neg(a_fmt, mx_a)] + [one_a] * (k - 2), [mx_b] * 2 + [one_b] * (k - 2)))  # cancellation
    rows.append(([mx_a] + [one_a] * (k - 1), [mx_b] + [sub_b] * (k - 1)))  # absorption of tiny terms
    rows.append((full(sub_a), full(sub_b)))  # products below float32's normals? exact in float64
    rows.append(([one_a] * k, [one_b, neg(b_fmt, one_b)] * (k // 2) + [one_b] * (k % 2)))  # alternating signs
    for fmt, other in ((a_fmt, b_fmt),):
        if fmt.nan_code is not None:
            rows.append(([fmt.nan_code] + [one_a] * (k - 1), full(one_b)))
        if fmt.inf_code is not None:
            rows.append(([fmt.inf_code] + [one_a] * (k - 1), full(one_b)))
            rows.append(([fmt.inf_code, neg(fmt, fmt.inf_code)] + [one_a] * (k - 2), full(one_b)))  # Inf - Inf
    a = np.array([r[0] for r in rows], dtype=a_fmt.code_dtype)
    b = np.array([r[1] for r in rows], dtype=b_fmt.code_dtype)
    return a, b


def generate_dot(a_fmt: Format | str, b_fmt: Format | str | None = None, *, accumulator: str = "fp32_sequential",
                 k: int = 32, level: str | int = 2, count: int = 1000, seed: int = 0) -> DotVectorSet:
    """Generate dot-product vectors with ``fp8emu.matmul``'s results as the expected values.

    Args:
        a_fmt: format of the first operand.
        b_fmt: format of the second operand (default: ``a_fmt``).
        accumulator: accumulator spec string (see the module docstring).
        k: dot-product length (>= 2).
        level: ``1`` (structured cases) or ``2`` (level 1 plus ``count`` random finite codes).
        count: random dot products at level 2.
        seed: seed of the random codes.

    Raises:
        ValueError: bad ``k``, ``level`` or accumulator.
    """
    from ..gemm import matmul
    a_fmt = get_format(a_fmt)
    b_fmt = a_fmt if b_fmt is None else get_format(b_fmt)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k={k!r} must be an int >= 2")
    level = str(level)
    if level not in ("1", "2"):
        raise ValueError(f"level={level!r}; allowed: 1, 2 (dot products have no exhaustive level)")
    acc = accumulator_from_spec(accumulator)
    a, b = _structured(a_fmt, b_fmt, k)
    if level == "2":
        rng = np.random.default_rng(seed)
        fa, fb = _finite_codes(a_fmt), _finite_codes(b_fmt)
        a = np.concatenate([a, fa[rng.integers(0, fa.size, (count, k))]])
        b = np.concatenate([b, fb[rng.integers(0, fb.size, (count, k))]])
    def run(a, b):
        with np.errstate(all="ignore"):
            return matmul(a[:, None, :], b[:, :, None], a_fmt=a_fmt, b_fmt=b_fmt, accumulator=acc).reshape(-1)
    special = ~np.isfinite(a_fmt.values()[a]).all(axis=1) | ~np.isfinite(b_fmt.values()[b]).all(axis=1)
    try:
        y = run(a, b)
    except ValueError:  # accumulators that take finite operands only (the tensor-core model)
        a, b = a[~special], b[~special]
        y = run(a, b)
    return DotVectorSet(a_fmt, b_fmt, accumulator, a, b, np.ascontiguousarray(y, np.float32), level, seed)


def _hex_rows(codes: np.ndarray, digits: int) -> list[str]:
    return ["".join(f"{int(c):0{digits}X}" for c in row) for row in codes]


def write_dot(vs: DotVectorSet, path: str | os.PathLike) -> pathlib.Path:
    """Write dot-product vectors as text (see the module docstring for the line format)."""
    path = pathlib.Path(path)
    da, db = (vs.a_fmt.bits + 3) // 4 if vs.a_fmt.bits > 8 else 2, (vs.b_fmt.bits + 3) // 4 if vs.b_fmt.bits > 8 else 2
    with open(path, "w") as fh:
        fh.write(f"{DOT_HEADER}\n# a_{format_header(vs.a_fmt)}\n# b_{format_header(vs.b_fmt)}\n"
                 f"# accumulator={vs.accumulator} k={vs.k} level={vs.level} seed={vs.seed}\n"
                 "# columns: a_codes b_codes expected_float32\n")
        for ra, rb, y in zip(_hex_rows(vs.a, da), _hex_rows(vs.b, db), vs.expected.view(np.uint32)):
            fh.write(f"{ra} {rb} {int(y):08X}\n")
    return path


def is_dot_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the dot-product vectors header."""
    with open(path) as fh:
        return fh.readline().strip() == DOT_HEADER


def read_dot(path: str | os.PathLike) -> DotVectorSet:
    """Read dot-product vectors written by :func:`write_dot`.

    Raises:
        ValueError: not a dot-product vectors file, or malformed rows.
    """
    header, rows = [], []
    with open(path) as fh:
        for line in fh:
            s = line.strip()
            if s.startswith("#"):
                header.append(s)
            elif s:
                rows.append(s.split())
    if not header or header[0] != DOT_HEADER:
        raise ValueError(f"{path}: not an fp8emu dot-product vectors file")
    fa, fb = (parse_format({k.removeprefix(p): v for k, v in _parse_meta([line]).items()})
              for p, line in (("a_", header[1]), ("b_", header[2])))
    meta = _parse_meta([header[3]])
    k = int(meta["k"])

    def codes(col, fmt):
        d = len(col) // k
        return np.array([int(col[i * d:(i + 1) * d], 16) for i in range(k)], dtype=fmt.code_dtype)
    a = np.array([codes(r[0], fa) for r in rows], dtype=fa.code_dtype).reshape(-1, k)
    b = np.array([codes(r[1], fb) for r in rows], dtype=fb.code_dtype).reshape(-1, k)
    y = np.array([int(r[2], 16) for r in rows], dtype=np.uint32).view(np.float32)
    return DotVectorSet(fa, fb, meta["accumulator"], a, b, y, meta.get("level", ""), int(meta.get("seed", 0)))


@dataclasses.dataclass
class DotReport:
    """Outcome of :func:`check_dot`."""

    total: int
    mismatches: int
    by_class: dict[str, int]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def format(self, max_failures: int = 10) -> str:
        lines = [f"checked {self.total} dot products: {'PASS' if self.ok else 'FAIL'}", f"mismatches: {self.mismatches}"]
        lines += [f"  {c:12s} {n}" for c, n in self.by_class.items() if n]
        lines += [f"  {f}" for f in self.failures[:max_failures]]
        return "\n".join(lines)


def check_dot(vs: DotVectorSet, results: np.ndarray, *, max_failures: int = 20) -> DotReport:
    """Compare a device's float32 results (values or uint32 bit patterns) with dot-product vectors.

    Classes: ``nan`` (exactly one is NaN), ``overflow`` (an Inf on either side), ``signed_zero``,
    ``accumulation`` (everything else; the report gives the distance in float32 ulps).
    """
    r = np.asarray(results)
    got = r.astype(np.uint32).view(np.float32) if r.dtype.kind == "u" else r.astype(np.float32)
    if got.shape != vs.expected.shape:
        raise ValueError(f"results has {got.size} values, the vectors {vs.expected.size}")
    e = vs.expected
    eb, gb = e.view(np.uint32), got.view(np.uint32)
    same = (eb == gb) | (np.isnan(e) & np.isnan(got))
    bad = np.flatnonzero(~same)
    cls = {"nan": 0, "overflow": 0, "signed_zero": 0, "accumulation": 0}
    fails = []
    for i in bad:
        ev, gv = float(e[i]), float(got[i])
        if np.isnan(ev) or np.isnan(gv):
            c = "nan"
        elif np.isinf(ev) or np.isinf(gv):
            c = "overflow"
        elif ev == 0 and gv == 0:
            c = "signed_zero"
        else:
            c = "accumulation"
        cls[c] += 1
        if len(fails) < max_failures:
            ulps = abs(int(eb[i].view(np.int32)) - int(gb[i].view(np.int32))) if c == "accumulation" else None
            fails.append(f"[{c}] row {i}: expected {ev!r} ({int(eb[i]):08X}), got {gv!r} ({int(gb[i]):08X})"
                         + (f", {ulps} ulp apart" if ulps is not None else ""))
    return DotReport(int(e.size), int(bad.size), cls, fails)
