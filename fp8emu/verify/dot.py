"""Dot-product (GEMM) test vectors for a chosen accumulator, and checking results against them.

Text format v2 (one case per line of fixed-width hex words, like the conversion vectors)::

    // fp8emu dot-product vectors v2
    // a_format=e4m3fn a_exp_bits=4 a_man_bits=3 a_bias=7 a_subnormals=1 a_specials=fn a_signed=1 a_has_zero=1
    // b_format=e5m2 b_exp_bits=5 b_man_bits=2 b_bias=15 b_subnormals=1 b_specials=ieee b_signed=1 b_has_zero=1
    // accumulator=fp32_sequential k=4 level=2 seed=0 cases=2043
    // words: a[0..3] b[0..3] expected_float32
    38 38 38 38 3C 3C 3C 3C 40800000
    ...
    // end: 2043 cases

The first K words are the codes of ``a``, the next K those of ``b`` (``ceil(bits / 4)`` hex
digits each: 2 for 8-bit formats, 4 for 16-bit ones), the last is the bit pattern of
``fp8emu.matmul`` on those codes with that accumulator.  A case is one line, identified by its
0-based row index.  A device's results file has one float32 word per line in the vectors'
order, or ``index result`` per line in any order, or the vectors' words with the device's
result last (the case is found by its operands).  Format v1 (``#`` comments, the K codes of
each operand concatenated into one word) is still read.  The header's ``cases=N`` and the end
line ``// end: N cases`` make a cut-off file detectable, as for the conversion vectors (v1 files
have no end line: ``allow_no_end_line``).

Accumulators are named by a spec string: ``fp32_sequential``, ``fp32_pairwise``,
``fp32_blocked:<block>``, ``lowp:<format>:<chunk>`` (Wang et al.'s chunked accumulation),
``nvidia_hopper_fp8`` and ``nvidia_hopper_fp8:fast`` (the H200 model).  ``fp32_blas`` is
refused: its summation order is unspecified, so it has no bit-exact expected value.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib

import numpy as np

from ..format import Format
from ..formats import get_format
from .textio import (Column, FileFormatError, Table, check_complete, check_last_line, display_name, end_line,
                     hex_lines, is_npz, load_npz, parse_table, read_bytes, write_bytes)
from .vectors import format_header, parse_format

__all__ = ["DotVectorSet", "accumulator_from_spec", "generate_dot", "write_dot", "read_dot", "dot_from_bytes",
           "is_dot_vectors", "dot_columns", "read_dot_results", "dot_results_from_bytes", "check_dot", "DotReport"]

DOT_HEADER = "fp8emu dot-product vectors v2"


def accumulator_from_spec(spec: str):
    """The accumulator a spec string names (see the module docstring).

    Args:
        spec: the accumulator spec string.

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
        """The dot-product length K."""
        return int(self.a.shape[1])

    def __len__(self) -> int:
        return int(self.a.shape[0])


def _finite_codes(fmt: Format) -> np.ndarray:
    """The finite codes of ``fmt``; for formats wider than 16 bits (no value table, up to 2^32
    codes) every exponent field with the mantissas 0, 1, the middle one and the two largest,
    both signs."""
    if fmt.bits <= 16:
        vals = fmt.values()
        return np.flatnonzero(np.isfinite(vals)).astype(fmt.code_dtype)
    m = fmt.man_bits
    mants = np.unique(np.array([0, 1, 1 << (m - 1) if m else 0, max((1 << m) - 2, 0), (1 << m) - 1]))
    mags = ((np.arange((fmt.max_code >> m) + 1)[:, None] << m) | mants[None, :]).reshape(-1)
    mags = mags[mags <= fmt.max_code]
    codes = np.concatenate([mags, mags | fmt.sign_mask]) if fmt.signed else mags
    return np.unique(codes[[not fmt.is_nan_code(int(c)) for c in codes]]).astype(fmt.code_dtype)


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


def _distinct_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dot products ``(a[i], b[i])`` without repeats, each kept where it first occurs.

    Codes are compared as uint64: formats go up to 32 bits, and a narrower type would merge
    rows that differ in the high bits (for codes below 2^16 the kept rows are the same as with
    any wider type, so vectors of 8- and 16-bit formats do not change).
    """
    rows = np.concatenate([a.astype(np.uint64), b.astype(np.uint64)], axis=1)
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.sort(first)
    return a[keep], b[keep]


def _random_fill(a_fmt: Format, b_fmt: Format, a: np.ndarray, b: np.ndarray, count: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``a``/``b`` followed by ``count`` new distinct random rows of finite codes, drawn in rounds
    from ``rng`` until there are enough (so the rows depend only on the seed).

    Raises:
        ValueError: fewer than ``count`` distinct rows exist besides those of ``a``/``b``.
    """
    fa, fb = _finite_codes(a_fmt), _finite_codes(b_fmt)
    n0, k = a.shape
    if count > (fa.size * fb.size) ** k - n0:
        raise ValueError(f"count={count}: there are only {(fa.size * fb.size) ** k - n0} other dot products "
                         f"of length {k} with finite codes")
    while a.shape[0] < n0 + count:
        need = n0 + count - a.shape[0]
        ra = fa[rng.integers(0, fa.size, (need, k))]
        rb = fb[rng.integers(0, fb.size, (need, k))]
        a, b = _distinct_rows(np.concatenate([a, ra]), np.concatenate([b, rb]))
    return a[:n0 + count], b[:n0 + count]


def generate_dot(a_fmt: Format | str, b_fmt: Format | str | None = None, *, accumulator: str = "fp32_sequential",
                 k: int = 32, level: str | int = 2, count: int = 1000, seed: int = 0) -> DotVectorSet:
    """Generate dot-product vectors with ``fp8emu.matmul``'s results as the expected values.

    Args:
        a_fmt: format of the first operand.
        b_fmt: format of the second operand (default: ``a_fmt``).
        accumulator: accumulator spec string (see the module docstring).
        k: dot-product length (>= 2).
        level: ``1`` (structured cases) or ``2`` (level 1 plus ``count`` random finite codes).
        count: random dot products at level 2 (distinct: no case repeats another).
        seed: seed of the random codes.

    Raises:
        ValueError: bad ``k``, ``level``, ``count`` or accumulator.
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
    a, b = _distinct_rows(a, b)
    if level == "2":
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"count={count!r} must be an int >= 0")
        a, b = _random_fill(a_fmt, b_fmt, a, b, int(count), np.random.default_rng(seed))
    def run(a, b):
        with np.errstate(all="ignore"):
            return matmul(a[:, None, :], b[:, :, None], a_fmt=a_fmt, b_fmt=b_fmt, accumulator=acc).reshape(-1)
    from ..quantize import decode
    special = ~np.isfinite(decode(a, a_fmt, dtype=np.float64)).all(axis=1) | \
        ~np.isfinite(decode(b, b_fmt, dtype=np.float64)).all(axis=1)
    try:
        y = run(a, b)
    except ValueError:  # accumulators that take finite operands only (the tensor-core model)
        a, b = a[~special], b[~special]
        y = run(a, b)
    return DotVectorSet(a_fmt, b_fmt, accumulator, a, b, np.ascontiguousarray(y, np.float32), level, seed)


# ---- files ------------------------------------------------------------------------------------------
def _code_digits(fmt: Format) -> int:
    return (fmt.bits + 3) // 4


def dot_columns(vs: DotVectorSet) -> list[Column]:
    """The words of a dot-product vectors line (v2): ``a[0..K-1] b[0..K-1] expected``.

    Args:
        vs: the vectors (their formats and K decide the words).
    """
    return ([Column(f"a[{i}]", vs.a_fmt.bits) for i in range(vs.k)] + [Column(f"b[{i}]", vs.b_fmt.bits)
                                                                         for i in range(vs.k)]
            + [Column("expected", 32)])


def _prefixed(prefix: str, fmt: Format) -> str:
    return " ".join(prefix + tok for tok in format_header(fmt).split())


def write_dot(vs: DotVectorSet, path: str | os.PathLike) -> pathlib.Path:
    """Write dot-product vectors as text (format v2, see the module docstring) or ``.npz``, atomically.

    Args:
        vs: the vectors.
        path: the file (``.npz`` for NumPy's format, any other name for text), or ``-`` for stdout.

    Returns:
        The path written (``Path("-")`` for stdout).
    """
    if str(path) != "-" and pathlib.Path(path).suffix == ".npz":
        meta = {"version": 2, "a_format": format_header(vs.a_fmt), "b_format": format_header(vs.b_fmt),
                "accumulator": vs.accumulator, "level": vs.level, "seed": vs.seed}
        buf = io.BytesIO()
        np.savez_compressed(buf, a=vs.a, b=vs.b, expected=vs.expected.view(np.uint32), meta=np.array(json.dumps(meta)))
        return write_bytes(path, [buf.getvalue()])
    head = (f"// {DOT_HEADER}\n// {_prefixed('a_', vs.a_fmt)}\n// {_prefixed('b_', vs.b_fmt)}\n"
            f"// accumulator={vs.accumulator} k={vs.k} level={vs.level} seed={vs.seed} cases={len(vs)}\n"
            f"// words: a[0..{vs.k - 1}] b[0..{vs.k - 1}] expected_float32\n")
    da, db = _code_digits(vs.a_fmt), _code_digits(vs.b_fmt)
    cols = [(vs.a[:, i], da) for i in range(vs.k)] + [(vs.b[:, i], db) for i in range(vs.k)]
    return write_bytes(path, [head.encode(), hex_lines(cols + [(vs.expected.view(np.uint32), 8)]),
                              end_line(len(vs))])


def is_dot_vectors(data: bytes) -> bool:
    """True when ``data`` is dot-product vectors, text (v1 or v2) or ``.npz``.

    Args:
        data: the content of a file.
    """
    if is_npz(data):
        try:
            return "a" in load_npz(data, "")
        except FileFormatError:
            return False
    first = data[:200].split(b"\n", 1)[0].strip().lstrip(b"/#").strip()
    return first.startswith(DOT_HEADER.rsplit(" ", 1)[0].encode())


def _split_meta(table_header: list[str]) -> tuple[dict, dict, dict]:
    """The a-format, b-format and other header fields (v1: one line each; v2: a_/b_ prefixes)."""
    fa, fb, rest = {}, {}, {}
    for h in table_header:
        line_is = "a" if h.startswith("a_format=") else "b" if h.startswith("b_format=") else None
        for tok in h.split():
            if "=" not in tok:
                continue
            key, v = tok.split("=", 1)
            if key.startswith(("a_", "b_")):
                (fa if key[0] == "a" else fb)[key[2:]] = v
            elif line_is:  # v1: the unprefixed fields of the a_/b_format line
                (fa if line_is == "a" else fb)[key] = v
            else:
                rest[key] = v
    return fa, fb, rest


def dot_from_bytes(data: bytes, name: str = "<vectors>", *, allow_no_end_line: bool = False) -> DotVectorSet:
    """Dot-product vectors from the content of a file: text (v1 or v2) or ``.npz``.

    Text must be whole (see :func:`~fp8emu.verify.textio.check_complete`).

    Args:
        data: the file's content.
        name: the file's name for error messages.
        allow_no_end_line: accept text without the end line (v1, or v2 from an fp8emu that did not
            write one); a file cut exactly at a line boundary then goes unnoticed.

    Returns:
        The :class:`DotVectorSet`.

    Raises:
        FileFormatError: not dot-product vectors, a malformed header or line, a cut-off file, or
            no cases.
    """
    if is_npz(data):
        return _dot_from_npz(load_npz(data, name), name)
    table = parse_table(data, name)
    if not table.header or not table.header[0].startswith(DOT_HEADER.rsplit(" ", 1)[0]):
        raise FileFormatError(name, "not an fp8emu dot-product vectors file", 1)
    ma, mb, meta = _split_meta(table.header)
    fa, fb = parse_format(ma, name, 2), parse_format(mb, name, 3)
    try:
        k = int(meta["k"])
        accumulator_from_spec(meta["accumulator"])
        if k < 2:
            raise ValueError(f"k={k} must be >= 2")
    except KeyError as exc:
        raise FileFormatError(name, f"the header lacks {exc.args[0]}", 4) from None
    except ValueError as exc:
        raise FileFormatError(name, f"invalid header: {exc}", 4) from None
    vs = DotVectorSet(fa, fb, meta["accumulator"], np.zeros((0, k), fa.code_dtype), np.zeros((0, k), fb.code_dtype),
                      np.zeros(0, np.float32), meta.get("level", ""), int(meta.get("seed", 0)))
    if len(table):
        check_complete(table, allow_no_end_line, "v1" if table.header[0].endswith("v1") else "v2")
    if table.header[0].endswith("v1"):
        a, b, y = _v1_rows(table, vs)
    else:
        cols = table.columns(dot_columns(vs), exact=True)
        a = np.stack(cols[:k], axis=1) if len(table) else np.zeros((0, k), np.uint64)
        b = np.stack(cols[k:2 * k], axis=1) if len(table) else np.zeros((0, k), np.uint64)
        y = cols[-1]
    if not len(table):
        raise FileFormatError(name, "no test cases (the file has a header only)")
    vs.a, vs.b = a.astype(fa.code_dtype), b.astype(fb.code_dtype)
    vs.expected = y.astype(np.uint32).view(np.float32)
    return vs


def _v1_rows(table: Table, vs: DotVectorSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a v1 file: the K codes of each operand concatenated into one hex word."""
    k = vs.k
    da, db = (2 if f.bits <= 8 else 4 for f in (vs.a_fmt, vs.b_fmt))
    table.columns([Column("a_codes", 4 * da * k), Column("b_codes", 4 * db * k), Column("expected", 32)])
    rows = table.rows if table.rows is not None else [bytes(r[:-1]).split() for r in table.fast]
    lines = table.lines or list(range(table.first_line, table.first_line + len(rows)))
    out_a, out_b, y = [], [], []
    for r, ln in zip(rows, lines):
        for word, d, fmt, dest in ((r[0], da, vs.a_fmt, out_a), (r[1], db, vs.b_fmt, out_b)):
            if len(word) != d * k:
                raise FileFormatError(table.name, f"{len(word)} hex digits, expected {d * k} ({k} codes)", ln)
            codes = [int(word[i * d:(i + 1) * d], 16) for i in range(k)]
            if max(codes) >= fmt.num_codes:
                raise FileFormatError(table.name, f"a code is out of range for {fmt.name}", ln)
            dest.append(codes)
        y.append(int(r[2], 16))
    return np.array(out_a, np.uint64).reshape(-1, k), np.array(out_b, np.uint64).reshape(-1, k), np.array(y, np.uint64)


def _dot_from_npz(z: dict, name: str) -> DotVectorSet:
    missing = [key for key in ("meta", "a", "b", "expected") if key not in z]
    if missing:
        raise FileFormatError(name, f"not an fp8emu dot-product .npz (no array {', '.join(missing)})")
    try:
        meta = json.loads(str(z["meta"]))
        fa, fb = ({t.split("=", 1)[0]: t.split("=", 1)[1] for t in str(meta[key]).split() if "=" in t}
                  for key in ("a_format", "b_format"))
        acc = str(meta["accumulator"])
        accumulator_from_spec(acc)
    except (ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(name, f"unreadable 'meta' array ({exc})") from None
    a_fmt, b_fmt = parse_format(fa, name), parse_format(fb, name)
    a, b, y = (np.asarray(z[key]) for key in ("a", "b", "expected"))
    if a.ndim != 2 or a.shape != b.shape or y.shape != (a.shape[0],) or a.shape[0] == 0 or a.shape[1] < 2:
        raise FileFormatError(name, f"arrays a {a.shape}, b {b.shape}, expected {y.shape}: need (n, K), (n, K), "
                              "(n,) with n >= 1, K >= 2")
    for arr, fmt, key in ((a, a_fmt, "a"), (b, b_fmt, "b")):
        if arr.dtype.kind not in "ui" or (arr < 0).any() or (arr >= fmt.num_codes).any():
            raise FileFormatError(name, f"array {key!r} holds values that are not {fmt.name} codes")
    return DotVectorSet(a_fmt, b_fmt, acc, a.astype(a_fmt.code_dtype), b.astype(b_fmt.code_dtype),
                        y.astype(np.uint32).view(np.float32), str(meta.get("level", "")), int(meta.get("seed", 0)))


def read_dot(path: str | os.PathLike, *, allow_no_end_line: bool = False) -> DotVectorSet:
    """Read dot-product vectors written by :func:`write_dot` (text v1/v2 or ``.npz``).

    Args:
        path: the file, or ``-`` for stdin.
        allow_no_end_line: accept text without the end line (see :func:`dot_from_bytes`).

    Returns:
        The :class:`DotVectorSet`.

    Raises:
        FileFormatError: (a ValueError) not dot-product vectors, malformed lines, a cut-off file.
    """
    return dot_from_bytes(read_bytes(path), display_name(path), allow_no_end_line=allow_no_end_line)


def dot_results_from_bytes(data: bytes, vs: DotVectorSet, name: str = "<results>"
                           ) -> tuple[np.ndarray | None, np.ndarray]:
    """``(index, results)`` of a dot-product results file for ``vs``.

    Lines hold one word (the float32 result; line ``i`` answers case ``i``), two words
    (``index result``, the case's 0-based index in hex, any order), or the vectors' own words
    (``a[..] b[..] result``: the case is found by its operands).  ``index`` is None for the
    first kind and -1 where an echoed case is not among the vectors.  ``.npz``: an array
    ``results`` (uint32 bit patterns, float32 values, or wider floats holding float32 values
    exactly), optionally ``index``.

    Args:
        data: the content of the results file.
        vs: the vectors the results answer.
        name: the file's name, for messages.

    Returns:
        ``(index or None, results as uint32 bit patterns)``.

    Raises:
        FileFormatError: malformed lines, an index out of range, more results than cases, an
            ``.npz`` array ``results`` with a value that is not a float32 value or bit pattern.
    """
    n = len(vs)
    if is_npz(data):
        z = load_npz(data, name)
        if "results" not in z:
            raise FileFormatError(name, "a dot-product results .npz needs an array 'results'")
        try:
            y = _float32_bits(np.asarray(z["results"]).reshape(-1), "array 'results'")
        except ValueError as exc:
            raise FileFormatError(name, str(exc)) from None
        index = np.asarray(z["index"]).reshape(-1).astype(np.int64) if "index" in z else None
        if index is not None and (index.shape != y.shape or ((index < 0) | (index >= n)).any()):
            raise FileFormatError(name, f"array 'index' must match 'results' and lie in 0..{n - 1}")
        if index is None and y.size > n:
            raise FileFormatError(name, f"{y.size} results for {n} cases")
        return index, y.astype(np.uint32)
    table = parse_table(data, name)
    ncols = table.ncols()
    result = Column("result", 32)
    if ncols is None or ncols == 1:
        (y,) = table.columns([result])
        check_last_line(table, [result])
        if y.size > n:
            ln = table.lines[n] if table.rows is not None else table.first_line + n
            raise FileFormatError(name, f"more results than the {n} cases of the vectors (one per line, in order)",
                                  ln)
        return None, y.astype(np.uint32)
    if ncols == 2:
        index, y = table.columns([Column("index", 32), result])
        check_last_line(table, [Column("index", 1), result])  # the index has no fixed width
        bad = np.flatnonzero(index >= n)
        if bad.size:
            ln = table.lines[bad[0]] if table.rows is not None else table.first_line + int(bad[0])
            raise FileFormatError(name, f"index {int(index[bad[0]]):X} is past the last case ({n - 1:X})", ln)
        return index.astype(np.int64), y.astype(np.uint32)
    layout = dot_columns(vs)[:-1] + [result]
    cols = table.columns(layout)
    check_last_line(table, layout)
    return _index_by_operands(vs, np.stack(cols[:-1], axis=1)), cols[-1].astype(np.uint32)


def _value_order(bits: int) -> int:
    """A float32 bit pattern as an integer in the order of the values, one apart per float32 step.

    Sign-magnitude read as an integer: -0 and +0 are both 0, so the ulp distance of ``-x`` and
    ``x`` is twice ``x``'s pattern (subtracting the int32 patterns gives about 2^31 across signs).
    """
    return -(bits & 0x7FFFFFFF) if bits & 0x80000000 else bits


def _float32_bits(results: np.ndarray, what: str) -> np.ndarray:
    """The uint32 bit patterns of results given as float values or as uint32 bit patterns.

    A float array of another width (float64, say, written by a harness) is taken only where
    every value is a float32 value: rounding it to float32 first would make a wrong result (one
    ulp of float64 off the expected value) pass.  NaNs of any payload stay NaN.

    Args:
        results: 1-D results as an array of floats or of integers (bit patterns; int32 is
            read as the same 32 bits, other integers must lie in 0..0xFFFFFFFF).
        what: how to name the array in messages.

    Raises:
        ValueError: a float that float32 cannot hold exactly, an integer outside
            0..0xFFFFFFFF, or another dtype; the message names the first offending element.
    """
    if results.dtype.kind == "f":
        with np.errstate(over="ignore"):  # a value past float32's range is reported below, not warned
            as32 = results.astype(np.float32)
        inexact = np.flatnonzero(~((as32.astype(results.dtype) == results) | np.isnan(results)))
        if inexact.size:
            i = int(inexact[0])
            raise ValueError(f"{what}: {inexact.size} of {results.size} {results.dtype} values are not float32 "
                             f"values (first: element {i} = {float(results[i])!r}, which float32 would make "
                             f"{float(as32[i])!r}); results must be float32 values, or wider floats that hold "
                             "float32 values exactly")
        return as32.view(np.uint32)
    if results.dtype == np.int32:  # float32 patterns viewed as int32 (x.view(np.int32)): the same bits
        return results.view(np.uint32)
    if results.dtype.kind in "ui":
        wide = results.astype(np.int64) if results.dtype.kind == "i" else results.astype(np.uint64)
        outside = np.flatnonzero((wide < 0) | (wide > 0xFFFFFFFF)) if results.dtype.kind == "i" else \
            np.flatnonzero(wide > 0xFFFFFFFF)
        if outside.size:
            i = int(outside[0])
            raise ValueError(f"{what} element {i} = {int(results[i])} is not a float32 bit pattern "
                             "(0..0xFFFFFFFF)")
        return results.astype(np.uint32)
    raise ValueError(f"{what} has dtype {results.dtype}: give float32 values or uint32 bit patterns")


def _index_by_operands(vs: DotVectorSet, operands: np.ndarray) -> np.ndarray:
    """The case of each row of operand codes (-1 when the vectors have no such case)."""
    keys = {row.tobytes(): i for i, row in
            enumerate(np.concatenate([vs.a, vs.b], axis=1).astype(np.uint64))}
    return np.array([keys.get(row.tobytes(), -1) for row in operands.astype(np.uint64)], dtype=np.int64)


def read_dot_results(path: str | os.PathLike, vs: DotVectorSet) -> tuple[np.ndarray | None, np.ndarray]:
    """:func:`dot_results_from_bytes` of a file.

    Args:
        path: the results file, or ``-`` for stdin.
        vs: the vectors the results answer.
    """
    return dot_results_from_bytes(read_bytes(path), vs, display_name(path))


@dataclasses.dataclass
class DotReport:
    """Outcome of :func:`check_dot`: coverage, mismatches by class, failing rows."""

    cases: int
    covered: int
    results: int
    mismatches: int
    by_class: dict[str, int]
    failures: list[str]
    unmatched: int = 0
    missing_rows: list[int] = dataclasses.field(default_factory=list)
    allow_partial: bool = False

    @property
    def missing(self) -> int:
        """How many cases have no result."""
        return self.cases - self.covered

    @property
    def ok(self) -> bool:
        """Every case present (or ``allow_partial`` and at least one) and no mismatch."""
        return (self.mismatches == 0 and self.unmatched == 0 and self.covered > 0
                and (self.missing == 0 or self.allow_partial))

    def format(self, max_failures: int = 10) -> str:
        """The human-readable report ``fp8emu check`` prints.

        Args:
            max_failures: how many mismatches to list.
        """
        lines = [f"{'PASS' if self.ok else 'FAIL'}: {self.covered} of {self.cases} cases checked "
                 f"({self.results} results), {self.mismatches} mismatches"]
        lines += coverage_lines(self.missing, [f"row {i}" for i in self.missing_rows[:1]] + [str(i) for i in self.missing_rows[1:]], self.allow_partial,
                                self.unmatched, "results whose operands are not a case of the vectors")
        lines += [f"  {c:12s} {n}" for c, n in self.by_class.items() if n]
        lines += [f"  {f}" for f in self.failures[:max_failures]]
        if self.mismatches > min(len(self.failures), max_failures):
            lines.append(f"  ... {self.mismatches - min(len(self.failures), max_failures)} more (--max-failures)")
        return "\n".join(lines)


def coverage_lines(missing: int, first_missing: list[str], allow_partial: bool, unmatched: int,
                   unmatched_what: str) -> list[str]:
    """The report lines on missing cases and on results that match no case.

    Args:
        missing: how many cases have no result.
        first_missing: how to name the first few of them.
        allow_partial: whether missing cases are allowed.
        unmatched: how many results match no case.
        unmatched_what: how to name those results.
    """
    lines = []
    if missing:
        lines.append(f"missing: {missing} cases have no result (first: {', '.join(first_missing)}"
                     + (", ..." if missing > len(first_missing) else "") + ")"
                     + ("; allowed by --allow-partial" if allow_partial else "; --allow-partial checks only those present"))
    if unmatched:
        lines.append(f"{unmatched_what}: {unmatched}")
    return lines


def check_dot(vs: DotVectorSet, results: np.ndarray, *, index: np.ndarray | None = None, max_failures: int = 20,
              allow_partial: bool = False) -> DotReport:
    """Compare a device's float32 results (values or uint32 bit patterns) with dot-product vectors.

    Args:
        vs: the vectors.
        results: the device's results.
        index: the case of each result (-1: not a case of the vectors), or None when result
            ``i`` answers case ``i`` (then there may be fewer results than cases).
        max_failures: how many failing rows to keep.
        allow_partial: pass even when some cases have no result (coverage is still reported).

    Classes: ``nan`` (exactly one is NaN), ``overflow`` (an Inf on either side), ``signed_zero``,
    ``accumulation`` (everything else; the report gives the distance in float32 ulps).

    Raises:
        ValueError: more results than cases without ``index``, or ``index`` of another length;
            results that are not float32 values (a float64 result float32 cannot hold exactly)
            or bit patterns.
    """
    r = np.asarray(results).reshape(-1)
    got = _float32_bits(r, "results").view(np.float32)
    if index is None:
        if got.size > len(vs):
            raise ValueError(f"{got.size} results for {len(vs)} cases (result i answers case i)")
        index = np.arange(got.size)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if index.shape != got.shape or (index >= len(vs)).any():
        raise ValueError(f"index must give a case (0..{len(vs) - 1} or -1) for each of the {got.size} results")
    found = index >= 0
    covered = np.zeros(len(vs), bool)
    covered[index[found]] = True
    rows, got = index[found], got[found]
    e = vs.expected[rows]
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
            ulps = abs(_value_order(int(eb[i])) - _value_order(int(gb[i]))) if c == "accumulation" else None
            fails.append(f"[{c}] row {rows[i]}: expected {ev!r} ({int(eb[i]):08X}), got {gv!r} ({int(gb[i]):08X})"
                         + (f", {ulps} ulp apart" if ulps is not None else ""))
    return DotReport(len(vs), int(covered.sum()), int(r.size), int(bad.size), cls, fails,
                     unmatched=int(np.count_nonzero(~found)), missing_rows=np.flatnonzero(~covered)[:5].tolist(),
                     allow_partial=allow_partial)
