"""TestFloat-style conversion test vectors: generation, the line format, reading and writing.

Text format v2 (one case per line, like Berkeley TestFloat's ``testfloat_gen``, and readable as
written by Verilog's ``$readmemh`` and a C ``fscanf`` loop)::

    // fp8emu test vectors v2
    // source=float32 format=e4m3fn exp_bits=4 man_bits=3 bias=7 subnormals=1 specials=fn signed=1 has_zero=1
    // rounding=nearest_even saturate=0 tininess=after level=1 seed=0 cases=1548
    // words: input expected flags   (flags: 01 inexact, 02 underflow, 04 overflow, 10 invalid)
    3F880000 38 01
    ...
    // end: 1548 cases

Each line holds fixed-width hex words separated by one space:

* ``input``: the source bit pattern, zero-padded to the source width (4 digits for
  float16/bfloat16, 8 for float32, 16 for float64);
* ``expected``: the code fp8emu produces, zero-padded to the format width (2 digits up to 8 bits);
* ``flags``: the exception flags, 2 digits (``01`` inexact, ``02`` underflow, ``04`` overflow,
  ``10`` invalid; SoftFloat's bit numbering, see :mod:`fp8emu.verify.flags`).

Stochastic-rounding vectors have four words, ``input down up flags``: a correct result is
``down`` or ``up`` (the neighbours below and above in magnitude, ``up`` already saturated or
turned into Inf/NaN as the format and ``saturate`` say), and the flags leave out overflow, which
depends on the draw.  Lines starting with ``//`` are comments; the header's ``key=value`` tokens
are read back by :func:`read_vectors`, which also reads format v1 (the same lines with ``#``
comments).  ``.npz`` files hold the same columns as arrays plus the header as JSON.  A case is
one input: level 2 never repeats one.

The header's ``cases=N`` and the last line, ``// end: N cases``, make a cut-off file detectable:
:func:`read_vectors` refuses a file whose end line is missing or disagrees with the lines read,
whose last line has no newline, or whose words are shorter than fp8emu writes them
(``allow_no_end_line`` accepts format v1 and earlier v2 files, which have no end line).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import pathlib
from fractions import Fraction
from typing import Iterator

import numpy as np

from ..format import Format, RoundMode, Specials
from ..quantize import decode, encode
from .flags import OVERFLOW, exception_flags
from .textio import (Column, FileFormatError, Table, check_complete, check_last_line, display_name, end_line,
                     hex_lines, is_npz, load_npz, parse_table, read_bytes, write_bytes)

__all__ = ["VectorSet", "SOURCES", "source_dtype", "rounding_boundaries", "boundary_inputs", "generate",
           "exhaustive_chunks", "write_vectors", "read_vectors", "vectors_from_bytes", "vector_columns",
           "write_results", "read_results", "results_from_bytes", "result_columns", "format_header", "parse_format",
           "up_probability"]

SOURCES = ("float16", "bfloat16", "float32", "float64")
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
LEVELS = ("1", "2", "exhaustive")


def source_dtype(name: str | np.dtype) -> np.dtype:
    """The NumPy dtype of a source name (``float16``, ``bfloat16``, ``float32``, ``float64``).

    Args:
        name: a source name or dtype.

    Raises:
        ValueError: for any other name or dtype.
    """
    if isinstance(name, str) and name.strip().lower() in ("bfloat16", "bf16"):
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    try:
        dt = np.dtype(name)
    except TypeError:
        dt = None
    if dt is not None and dt.name in SOURCES:
        return dt
    raise ValueError(f"source={name!r} is not supported; allowed: {', '.join(SOURCES)}")


def _uint(dt: np.dtype) -> type:
    return _UINT[dt.itemsize]


@dataclasses.dataclass
class VectorSet:
    """Test vectors: inputs as source bit patterns, expected codes and flags, and the settings.

    ``expected_up`` is set only for stochastic rounding (``expected`` is then the round-down code).
    """

    source: str
    fmt: Format
    rounding: RoundMode
    saturate: bool
    tininess: str
    inputs: np.ndarray
    expected: np.ndarray
    flags: np.ndarray
    expected_up: np.ndarray | None = None
    level: str = ""
    seed: int = 0

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the source."""
        return source_dtype(self.source)

    def values(self) -> np.ndarray:
        """The inputs as source-dtype floats."""
        return self.inputs.view(self.dtype)

    def __len__(self) -> int:
        return int(self.inputs.size)


# ---- format <-> header ----------------------------------------------------------------------
def format_header(fmt: Format) -> str:
    """The header fields that rebuild ``fmt`` exactly (custom formats included).

    Args:
        fmt: the format.
    """
    return (f"format={fmt.name} exp_bits={fmt.exp_bits} man_bits={fmt.man_bits} bias={fmt.bias} "
            f"subnormals={int(fmt.subnormals)} specials={fmt.specials.value} signed={int(fmt.signed)} "
            f"has_zero={int(fmt.has_zero)} tie_rule={fmt.tie_rule.value}")


# ---- boundary cases -------------------------------------------------------------------------------
def _grid_points(fmt: Format) -> tuple[list[Fraction], list[Fraction]]:
    """Non-negative representable values and the ties between neighbours; for formats wider
    than 10 bits only the three lowest and highest values of each binade and their ties
    (computed from codes for formats wider than 16 bits, which have no value table)."""
    if fmt.bits > 16:
        return _grid_points_from_codes(fmt)
    vals = sorted({Fraction(v) for v in fmt.finite_values() if v >= 0})
    pairs = list(zip(vals, vals[1:]))
    if fmt.num_codes > 1024:
        keep = set()
        for e in range(fmt.emin - 1, fmt.emax + 1):  # (emin - 1: the subnormal range)
            lo, hi = (Fraction(2) ** e, Fraction(2) ** (e + 1)) if e >= fmt.emin else (0, Fraction(2) ** fmt.emin)
            binade = [v for v in vals if lo <= v < hi]
            keep.update(binade[:3] + binade[-3:])
        vals = sorted(keep)
        pairs = [(a, b) for a, b in pairs if a in keep or b in keep]
    return vals, [(a + b) / 2 for a, b in pairs]


def _grid_points_from_codes(fmt: Format) -> tuple[list[Fraction], list[Fraction]]:
    """:func:`_grid_points`' binade ends for formats of more than 1024 codes, from the codes
    themselves (no table): per exponent field the three lowest and highest codes up to max."""
    m, top = fmt.man_bits, fmt.max_code
    kept = set()
    for e_field in range((top >> m) + 1):
        lo, hi = e_field << m, min(((e_field + 1) << m) - 1, top)
        kept.update(c for c in (lo, lo + 1, lo + 2, hi - 2, hi - 1, hi) if lo <= c <= hi)
    near = {c + d for c in kept for d in (-1, 0, 1) if 0 <= c + d <= top}
    value = {c: Fraction(fmt.decode_code(c)) for c in near}     # non-canonical zeros decode to 0
    keep_vals = {value[c] for c in kept}
    allv = sorted(set(value.values()))
    pairs = [(a, b) for a, b in zip(allv, allv[1:]) if a in keep_vals or b in keep_vals]
    return sorted(keep_vals), [(a + b) / 2 for a, b in pairs]


def rounding_boundaries(fmt: Format, source: str | np.dtype = "float32") -> np.ndarray:
    """Positive source values at which rounding to ``fmt`` changes, sorted (source dtype).

    The representable values of ``fmt``, the midpoints between neighbours (the ties), the
    overflow threshold ``max + ulp/2``, ``max + ulp``, and half the smallest positive value, each
    converted to the nearest value of ``source`` (a tie the source cannot hold becomes its
    nearest source value).  For formats wider than 10 bits, only the ends of each binade.

    Args:
        fmt: the target format.
        source: the source dtype or its name.
    """
    dt = source_dtype(source)
    return _boundaries(fmt, dt.name).view(dt)


_BOUNDARY_CACHE: dict = {}


def _boundaries(fmt: Format, dt_name: str) -> np.ndarray:
    key = (fmt, dt_name)
    if key not in _BOUNDARY_CACHE:
        dt = source_dtype(dt_name)
        grid, ties = _grid_points(fmt)
        ulp_top = Fraction(2) ** fmt.max_ulp_exp           # the spacing just below max (also with no exponent field)
        points = set(grid) | set(ties)
        points.update({Fraction(fmt.max) + ulp_top / 2, Fraction(fmt.max) + ulp_top, Fraction(fmt.min_subnormal) / 2})
        f64 = np.array([float(p) for p in sorted(points)])  # exact: at most man_bits + 2 significant bits
        with np.errstate(over="ignore"):
            vals = f64.astype(dt)
        vals = vals[np.isfinite(vals)]
        _BOUNDARY_CACHE[key] = np.unique(vals.view(_uint(dt)))
    return _BOUNDARY_CACHE[key]


def _source_specials(dt: np.dtype) -> np.ndarray:
    """Bit patterns of the source's own edge cases: zeros' neighbours, extremes, Inf, NaN payloads."""
    nbits = dt.itemsize * 8
    man = np.finfo(dt).nmant if dt.kind == "f" else 7
    exp_all = ((1 << (nbits - 1 - man)) - 1) << man
    quiet = 1 << (man - 1)
    pats = [0, 1, 2, (1 << man) - 1, 1 << man, exp_all - 1,  # 0, min/max subnormal, min normal, max finite
            exp_all,  # Inf
            exp_all | quiet, exp_all | quiet | 1, exp_all | ((1 << man) - 1),  # quiet NaNs
            exp_all | 1, exp_all | (quiet >> 1)]  # signaling NaNs (payload only in the low bits / one bit)
    return np.array(pats, dtype=np.uint64)


def boundary_inputs(fmt: Format, source: str | np.dtype = "float32", *, ulps: int = 1) -> np.ndarray:
    """Level-1 inputs: every rounding boundary of ``fmt`` and its neighbours ``+-1..ulps`` source
    ulps, both signs, plus the source's zeros, extremes, Inf and NaN payloads (bit patterns).

    Args:
        fmt: the target format.
        source: the source dtype or its name.
        ulps: how many source ulps on each side of a boundary.
    """
    dt = source_dtype(source)
    nbits = dt.itemsize * 8
    b = _boundaries(fmt, dt.name).astype(np.int64)
    near = np.concatenate([b + k for k in range(-ulps, ulps + 1)])
    pos_inf = int(_source_specials(dt)[6])
    near = near[(near >= 0) & (near < pos_inf)].astype(np.uint64)
    mags = np.unique(np.concatenate([near, _source_specials(dt)]))
    sign = np.uint64(1 << (nbits - 1))
    return np.concatenate([mags, mags | sign]).astype(_uint(dt))


def _random_inputs(fmt: Format, dt: np.dtype, count: int, rng: np.random.Generator) -> np.ndarray:
    """Half uniform source bit patterns, half values spread over the format's range."""
    nbits = dt.itemsize * 8
    n1 = count // 2
    raw = rng.integers(0, 1 << nbits, size=n1, dtype=np.uint64) if nbits < 64 else \
        rng.integers(0, 2 ** 63, size=n1, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n1).astype(np.uint64)
    if fmt.bits > 16:       # no value table: values of random finite magnitude codes
        grid = decode(rng.integers(0, fmt.max_code + 1, size=count - n1), fmt, dtype=np.float64)
        k = np.arange(count - n1)
    else:
        grid = fmt.finite_values()
        k = rng.integers(0, grid.size, size=count - n1)
    spread = grid[k] * (1 + rng.uniform(-0.25, 0.25, size=k.size)) * rng.choice([-1.0, 1.0], size=k.size)
    with np.errstate(over="ignore"):
        near = spread.astype(dt).view(_uint(dt))
    return np.concatenate([raw.astype(_uint(dt)), near])


def first_occurrences(values: np.ndarray) -> np.ndarray:
    """``values`` without repeats, each kept where it first occurs.

    Args:
        values: a 1-D array.
    """
    _, first = np.unique(values, return_index=True)
    return values[np.sort(first)]


def _distinct_random_inputs(fmt: Format, dt: np.dtype, count: int, rng: np.random.Generator,
                            taken: np.ndarray) -> np.ndarray:
    """``count`` random inputs (see :func:`_random_inputs`), none repeated and none in ``taken``:
    drawn in rounds from the same generator until there are enough, so the result depends only
    on the seed.

    Raises:
        ValueError: the source has fewer than ``count`` patterns outside ``taken``.
    """
    nbits = dt.itemsize * 8
    if nbits < 64 and count > (1 << nbits) - taken.size:
        raise ValueError(f"count={count}: {dt.name} has only {(1 << nbits) - taken.size} inputs besides the "
                         f"{taken.size} level-1 cases (use level='exhaustive')")
    parts, have = [], 0
    used = set(taken.tolist()) if nbits > 16 else None  # 16-bit sources: a table of every pattern
    seen = None if used is not None else np.zeros(1 << nbits, bool)
    if seen is not None:
        seen[taken] = True
    while have < count:
        need = count - have
        # the first round draws exactly what is asked, keeping the half-and-half mix of
        # _random_inputs; later rounds fill the gaps left by repeats, in batches
        size = need if not parts else max(need, 1024)
        cand = first_occurrences(_random_inputs(fmt, dt, size, rng))
        if seen is not None:
            cand = cand[~seen[cand]][:need]
            seen[cand] = True
        else:
            cand = np.array([c for c in cand.tolist() if c not in used], dtype=cand.dtype)[:need]
            used.update(cand.tolist())
        parts.append(cand)
        have += cand.size
    return np.concatenate(parts) if parts else np.zeros(0, _uint(dt))


def exhaustive_chunks(source: str | np.dtype, chunk: int = 1 << 22, start: int = 0,
                      stop: int | None = None) -> Iterator[np.ndarray]:
    """Every bit pattern of a 16- or 32-bit source, in chunks (``start``/``stop`` limit the range).

    Args:
        source: a 16- or 32-bit source dtype or its name.
        chunk: patterns per chunk.
        start: the first pattern.
        stop: one past the last pattern (None: all).

    Raises:
        ValueError: for float64 (2^64 patterns).
    """
    dt = source_dtype(source)
    if dt.itemsize > 4:
        raise ValueError(f"level='exhaustive' needs a 16- or 32-bit source, got source={dt.name!r}")
    stop = (1 << (dt.itemsize * 8)) if stop is None else stop
    for lo in range(start, stop, chunk):
        yield np.arange(lo, min(lo + chunk, stop), dtype=np.uint64).astype(_uint(dt))


def _expected(inputs: np.ndarray, dt: np.dtype, fmt: Format, mode: RoundMode, saturate: bool, tininess: str):
    x = inputs.view(dt)
    if mode is not RoundMode.STOCHASTIC:
        return encode(x, fmt, rounding=mode, saturate=saturate), exception_flags(x, fmt, rounding=mode,
                                                                                  tininess=tininess), None
    with np.errstate(invalid="ignore"):
        neg = np.signbit(x.astype(np.float64))
    down = encode(x, fmt, rounding="toward_zero", saturate=saturate)
    up = np.where(neg, encode(x, fmt, rounding="down", saturate=saturate),
                  encode(x, fmt, rounding="up", saturate=saturate))
    with np.errstate(invalid="ignore"):  # at or past max + ulp both neighbours overflow
        past = np.abs(x.astype(np.float64)) >= fmt.max + math.ldexp(1.0, fmt.max_ulp_exp)
    down = np.where(past, up, down)
    flags = exception_flags(x, fmt, rounding=mode, tininess=tininess) & ~np.uint8(OVERFLOW)
    return down, flags, up.astype(down.dtype)


def generate(fmt: Format, source: str | np.dtype = "float32", *, rounding: RoundMode | str = "nearest_even",
             saturate: bool = False, level: str | int = 1, seed: int = 0, count: int = 10000, tininess: str = "after",
             inputs: np.ndarray | None = None) -> VectorSet:
    """Generate conversion test vectors with fp8emu's results as the expected values.

    Args:
        fmt: target format.
        source: source dtype name (float16, bfloat16, float32, float64).
        rounding: rounding mode; stochastic gives ``down``/``up`` columns.
        saturate: saturating conversion.
        level: ``1`` (boundary cases), ``2`` (level 1 plus ``count`` distinct seeded random inputs) or
            ``"exhaustive"`` (every pattern of a 16-bit source; use :func:`write_vectors` with
            ``level="exhaustive"`` to stream a float32 source to a file).
        seed: seed of the level-2 random inputs.
        count: number of random inputs at level 2 (none repeats another or a level-1 case).
        tininess: ``"after"`` or ``"before"`` rounding, for the underflow flag.
        inputs: explicit source bit patterns instead of a level.

    Raises:
        ValueError: unknown level/source/rounding, exhaustive for a float32/float64 source, a
            ``count`` that is negative or more than the source's patterns left.
    """
    dt = source_dtype(source)
    mode = RoundMode.parse(rounding)
    level = str(level)
    if inputs is None:
        if level not in LEVELS:
            raise ValueError(f"level={level!r}; allowed: 1, 2, 'exhaustive'")
        if level == "exhaustive":
            if dt.itemsize != 2:
                raise ValueError(f"level='exhaustive' in memory needs a 16-bit source, got {dt.name}; "
                                 "write_vectors() streams float32 to a file")
            inputs = next(exhaustive_chunks(dt, chunk=1 << 16))
        else:
            inputs = boundary_inputs(fmt, dt)
            if level == "2":
                if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
                    raise ValueError(f"count={count!r} must be an int >= 0")
                rng = np.random.default_rng(seed)
                inputs = np.concatenate([inputs, _distinct_random_inputs(fmt, dt, int(count), rng, inputs)])
    inputs = np.ascontiguousarray(inputs, dtype=_uint(dt))
    expected, flags, up = _expected(inputs, dt, fmt, mode, saturate, tininess)
    return VectorSet(dt.name, fmt, mode, bool(saturate), tininess, inputs, expected, flags, up, level, seed)


# ---- files ----------------------------------------------------------------------------------------
VECTORS_V2 = "fp8emu test vectors v2"
RESULTS_V2 = "fp8emu results v2"
FLAGS_LEGEND = "(flags: 01 inexact, 02 underflow, 04 overflow, 10 invalid)"


def _words(vs: VectorSet) -> str:
    return "input down up flags" if vs.expected_up is not None else "input expected flags"


def _header(vs: VectorSet, cases: int | None) -> str:
    """The header; ``cases``: the number of case lines (None: unknown, left out)."""
    count = "" if cases is None else f" cases={cases}"
    return (f"// {VECTORS_V2}\n"
            f"// source={vs.source} {format_header(vs.fmt)}\n"
            f"// rounding={vs.rounding.value} saturate={int(vs.saturate)} tininess={vs.tininess} "
            f"level={vs.level or 'custom'} seed={vs.seed}{count}\n"
            f"// words: {_words(vs)}   {FLAGS_LEGEND}\n")


def vector_columns(vs: VectorSet) -> list[Column]:
    """The words of a vectors line: the input (source width), the code(s) (format width), the flags.

    Args:
        vs: the vectors (their source, format and rounding decide the words).
    """
    code = vs.fmt.bits
    cols = [Column("input", vs.dtype.itemsize * 8), Column("down" if vs.expected_up is not None else "expected", code)]
    if vs.expected_up is not None:
        cols.append(Column("up", code))
    return cols + [Column("flags", 5)]


def _hex_lines(vs: VectorSet, inputs, expected, flags, up) -> bytes:
    arrays = [inputs, expected] + ([up] if up is not None else []) + [flags]
    return hex_lines([(a, c.digits) for a, c in zip(arrays, vector_columns(vs))])


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_vectors(vs: VectorSet, path: str | os.PathLike, *,
                  stream_chunks: Iterator[np.ndarray] | None = None, stream_cases: int | None = None) -> pathlib.Path:
    """Write vectors as text (format v2; any suffix but ``.npz``, ``-`` for stdout) or ``.npz``.

    The file is written atomically.  ``stream_chunks``: an iterator of input chunks (see
    :func:`exhaustive_chunks`) whose expected results are computed and appended chunk by chunk,
    for inputs too many to hold (text only); ``vs`` then supplies the settings and its own rows
    come first.  Text ends with the line ``// end: N cases`` (and the header says ``cases=N``), so
    that a reader can tell a cut-off file from a whole one.

    Args:
        vs: the vectors.
        path: the file (``.npz`` for NumPy's format, any other name for text), or ``-`` for stdout.
        stream_chunks: more inputs, chunk by chunk, whose results are computed while writing.
        stream_cases: how many inputs ``stream_chunks`` yields, for the header's ``cases=N`` (None:
            the header leaves it out, the end line still counts them).

    Returns:
        The path written (``Path("-")`` for stdout).

    Raises:
        ValueError: streamed chunks into an ``.npz``, or ``stream_chunks`` yielded another number of
            inputs than ``stream_cases`` (no file is left under ``path``).
    """
    if str(path) != "-" and pathlib.Path(path).suffix == ".npz":
        if stream_chunks is not None:
            raise ValueError("streamed (exhaustive float32) vectors can only be written as text")
        meta = {"version": 2, "source": vs.source, "format": format_header(vs.fmt), "rounding": vs.rounding.value,
                "saturate": vs.saturate, "tininess": vs.tininess, "level": vs.level, "seed": vs.seed}
        arrays = dict(inputs=vs.inputs, expected=vs.expected, flags=vs.flags, meta=np.array(json.dumps(meta)))
        if vs.expected_up is not None:
            arrays["expected_up"] = vs.expected_up
        return write_bytes(path, [_npz_bytes(arrays)])

    def chunks():
        declared = None if stream_chunks is not None and stream_cases is None else len(vs) + (stream_cases or 0)
        yield _header(vs, declared).encode()
        yield _hex_lines(vs, vs.inputs, vs.expected, vs.flags, vs.expected_up)
        written = len(vs)
        for chunk in stream_chunks or ():
            exp, fl, up = _expected(chunk, vs.dtype, vs.fmt, vs.rounding, vs.saturate, vs.tininess)
            yield _hex_lines(vs, chunk, exp, fl, up)
            written += chunk.size
        if declared is not None and written != declared:  # the header would lie: no file
            raise ValueError(f"stream_chunks yielded {written - len(vs)} inputs, stream_cases says {stream_cases}")
        yield end_line(written)
    return write_bytes(path, chunks())


def result_columns(vs: VectorSet, flags: bool) -> list[Column]:
    """The words of a results line for ``vs``: ``input code [flags]``.

    Args:
        vs: the vectors the results answer.
        flags: whether the line has a flags word.
    """
    return [Column("input", vs.dtype.itemsize * 8), Column("code", vs.fmt.bits)] + ([Column("flags", 5)] if flags
                                                                                     else [])


def write_results(path: str | os.PathLike, inputs: np.ndarray, codes: np.ndarray, source: str | np.dtype,
                  fmt: Format, flags: np.ndarray | None = None) -> pathlib.Path:
    """Write a device-under-test's results as text, one ``input code [flags]`` line per result.

    Use this (or print the same words from your own harness) to feed :func:`fp8emu.verify.check.check_files`.

    Args:
        path: the file, or ``-`` for stdout.
        inputs: the source bit patterns the device saw.
        codes: the device's codes.
        source: the source dtype (sets the input words' width).
        fmt: the target format (sets the code words' width).
        flags: the device's flags, or None for ``input code`` lines.

    Returns:
        The path written (``Path("-")`` for stdout).
    """
    dt = source_dtype(source)
    iw, cw = dt.itemsize * 2, (fmt.bits + 3) // 4
    cols = [(np.asarray(inputs).reshape(-1), iw), (np.asarray(codes).reshape(-1), cw)]
    if flags is not None:
        cols.append((np.asarray(flags).reshape(-1), 2))
    head = f"// {RESULTS_V2}\n// words: input code" + (" flags\n" if flags is not None else "\n")
    return write_bytes(path, [head.encode(), hex_lines(cols)])


def _header_line(table: Table, key: str) -> int:
    """The 1-based line of the header line holding ``key=`` (1 when none does)."""
    for i, h in enumerate(table.header):
        if any(tok.startswith(key + "=") for tok in h.split()):
            return i + 1
    return 1


def parse_format(meta: dict, name: str = "header", line: int | None = None) -> Format:
    """Rebuild a Format from header fields (see :func:`format_header`).

    Args:
        meta: the header fields.
        name: the file's name for error messages.
        line: the header's line number for error messages.

    Returns:
        The :class:`~fp8emu.format.Format`.

    Raises:
        FileFormatError: a field is missing or invalid (``name``/``line`` locate it).
    """
    missing = [k for k in ("format", "exp_bits", "man_bits", "bias", "subnormals", "specials", "signed")
               if k not in meta]
    if missing:
        raise FileFormatError(name, f"the header lacks {', '.join(missing)}", line)
    try:
        return Format(int(meta["exp_bits"]), int(meta["man_bits"]), bias=int(meta["bias"]),
                      subnormals=_flag(meta["subnormals"]), specials=Specials(meta["specials"]),
                      signed=_flag(meta["signed"]), has_zero=_flag(meta.get("has_zero", "1")),
                      tie_rule=meta.get("tie_rule", "up"), name=meta["format"])
    except ValueError as exc:
        raise FileFormatError(name, f"invalid format in the header: {exc}", line) from None


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"{text!r} is not 0 or 1")
    return text == "1"


def _settings(meta: dict, name: str, line: int) -> tuple[np.dtype, RoundMode, bool, str]:
    try:
        dt = source_dtype(meta["source"])
        mode = RoundMode.parse(meta["rounding"])
        saturate = _flag(meta.get("saturate", "0"))
        tininess = meta.get("tininess", "after")
        if tininess not in ("after", "before"):
            raise ValueError(f"tininess={tininess!r}; allowed: after, before")
        int(meta.get("seed", 0))
    except KeyError as exc:
        raise FileFormatError(name, f"the header lacks {exc.args[0]}", line) from None
    except ValueError as exc:
        raise FileFormatError(name, f"invalid header: {exc}", line) from None
    return dt, mode, saturate, tininess


def vectors_from_bytes(data: bytes, name: str = "<vectors>", *, allow_no_end_line: bool = False) -> VectorSet:
    """Conversion vectors from the content of a file: text (v1 or v2) or ``.npz``.

    Text must be whole (see :func:`~fp8emu.verify.textio.check_complete`): every word as wide as
    fp8emu writes it, a newline after the last line, and the end line ``// end: N cases``.

    Args:
        data: the file's content.
        name: the file's name for error messages.
        allow_no_end_line: accept text without the end line (format v1, or v2 from an fp8emu that
            did not write one); a file cut exactly at a line boundary then goes unnoticed.

    Returns:
        The :class:`VectorSet`.

    Raises:
        FileFormatError: not conversion vectors, a malformed header or line (with its line
            number), a cut-off file, or no cases at all.
    """
    if is_npz(data):
        return _vectors_from_npz(load_npz(data, name), name)
    table = parse_table(data, name)
    if not table.header or not table.header[0].startswith("fp8emu test vectors"):
        what = "dot-product vectors (check them as such)" if table.header and "dot-product" in table.header[0] \
            else "not an fp8emu vectors file (the first line is not '// fp8emu test vectors v2')"
        raise FileFormatError(name, what, 1)
    fline = _header_line(table, "format")
    fmt = parse_format(table.meta, name, fline)
    dt, mode, saturate, tininess = _settings(table.meta, name, _header_line(table, "rounding"))
    vs = VectorSet(dt.name, fmt, mode, saturate, tininess, np.zeros(0, _uint(dt)), np.zeros(0, fmt.code_dtype),
                   np.zeros(0, np.uint8), np.zeros(0, fmt.code_dtype) if mode is RoundMode.STOCHASTIC else None,
                   table.meta.get("level", ""), int(table.meta.get("seed", 0)))
    if not len(table):
        raise FileFormatError(name, "no test cases (the file has a header only)")
    check_complete(table, allow_no_end_line, "v1" if table.header[0].endswith("v1") else "v2")
    cols = table.columns(vector_columns(vs), exact=True)
    vs.inputs = cols[0].astype(_uint(dt))
    vs.expected = cols[1].astype(fmt.code_dtype)
    vs.flags = cols[-1].astype(np.uint8)
    if vs.expected_up is not None:
        vs.expected_up = cols[2].astype(fmt.code_dtype)
    return vs


def _vectors_from_npz(z: dict, name: str) -> VectorSet:
    missing = [k for k in ("meta", "inputs", "expected", "flags") if k not in z]
    if missing:
        raise FileFormatError(name, f"not an fp8emu vectors .npz (no array {', '.join(missing)})")
    try:
        meta = json.loads(str(z["meta"]))
        fmeta = {}
        for tok in str(meta["format"]).split():
            k, _, v = tok.partition("=")
            fmeta[k] = v
        meta = {k: str(int(v) if isinstance(v, bool) else v) for k, v in meta.items() if k != "format"}
    except (ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(name, f"unreadable 'meta' array ({exc})") from None
    fmt = parse_format(fmeta, name)
    dt, mode, saturate, tininess = _settings(meta, name, None)
    cols = [Column("inputs", dt.itemsize * 8), Column("expected", fmt.bits), Column("flags", 5)]
    arrays = [_npz_column(z, c, name) for c in cols]
    up = _npz_column(z, Column("expected_up", fmt.bits), name) if mode is RoundMode.STOCHASTIC else None
    if len({a.size for a in arrays + ([up] if up is not None else [])}) != 1:
        raise FileFormatError(name, "the arrays differ in length")
    if arrays[0].size == 0:
        raise FileFormatError(name, "no test cases")
    return VectorSet(dt.name, fmt, mode, saturate, tininess, arrays[0].astype(_uint(dt)),
                     arrays[1].astype(fmt.code_dtype), arrays[2].astype(np.uint8),
                     None if up is None else up.astype(fmt.code_dtype), meta.get("level", ""),
                     int(meta.get("seed", 0)))


def _npz_column(z: dict, col: Column, name: str) -> np.ndarray:
    """A 1-D uint64 array from an .npz, checked against the column's width."""
    if col.name not in z:
        raise FileFormatError(name, f"no array {col.name!r}")
    a = np.asarray(z[col.name]).reshape(-1)
    if a.dtype.kind not in "ui":
        raise FileFormatError(name, f"array {col.name!r} has dtype {a.dtype}, expected unsigned integers")
    bad = np.flatnonzero((a < 0) | ((a.astype(np.uint64) >> np.uint64(col.bits)) != 0 if col.bits < 64 else a < 0))
    if bad.size:
        raise FileFormatError(name, f"array {col.name!r}[{bad[0]}] = {int(a[bad[0]])} is out of range for a "
                              f"{col.bits}-bit word")
    return a.astype(np.uint64)


def read_vectors(path: str | os.PathLike, *, allow_no_end_line: bool = False) -> VectorSet:
    """Read conversion vectors written by :func:`write_vectors` (text v1/v2 or ``.npz``; ``-``: stdin).

    Args:
        path: the file, or ``-`` for stdin.
        allow_no_end_line: accept text without the end line (see :func:`vectors_from_bytes`).

    Returns:
        The :class:`VectorSet`.

    Raises:
        FileFormatError: (a ValueError) unreadable file, no fp8emu header, malformed lines, a
            cut-off file.
    """
    return vectors_from_bytes(read_bytes(path), display_name(path), allow_no_end_line=allow_no_end_line)


def results_from_bytes(data: bytes, vs: VectorSet, name: str = "<results>"
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(inputs, codes, flags or None)`` of a results file for the vectors ``vs``: text
    (``input code [flags]`` per line, v1 or v2 comments) or ``.npz`` (arrays ``inputs``, ``codes``,
    optionally ``flags``).  Every word is checked against its width: the input against the
    source's, the code against the format's.

    Args:
        data: the content of the results file.
        vs: the vectors the results answer.
        name: the file's name, for messages.

    Returns:
        ``(inputs, codes, flags or None)`` as uint64 arrays.

    Raises:
        FileFormatError: malformed content (with its line number), or a last line cut off
            mid-word.
    """
    if is_npz(data):
        z = load_npz(data, name)
        cols = result_columns(vs, "flags" in z)
        cols[0], cols[1] = Column("inputs", cols[0].bits), Column("codes", cols[1].bits)
        arrays = [_npz_column(z, c, name) for c in cols]
        if len({a.size for a in arrays}) != 1:
            raise FileFormatError(name, "the arrays differ in length")
        return arrays[0], arrays[1], arrays[2] if len(arrays) == 3 else None
    table = parse_table(data, name)
    n = table.ncols()
    layout = result_columns(vs, n == 3 or (n is not None and n > 3))
    cols = table.columns(layout)
    check_last_line(table, layout)  # a cut mid-word must not read as a shorter, maybe correct, word
    return cols[0], cols[1], cols[2] if len(cols) == 3 else None


def read_results(path: str | os.PathLike, vs: VectorSet) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`results_from_bytes` of a file.

    Args:
        path: the results file, or ``-`` for stdin.
        vs: the vectors the results answer.
    """
    return results_from_bytes(read_bytes(path), vs, display_name(path))


def up_probability(vs: VectorSet) -> np.ndarray:
    """The exact probability of rounding up (in magnitude) of each input of stochastic vectors
    (float64; 0 where the input is exact or not finite).

    Args:
        vs: stochastic-rounding vectors.
    """
    fmt = vs.fmt
    with np.errstate(invalid="ignore"):
        a = np.abs(vs.values().astype(np.float64))
    lo = np.abs(decode(vs.expected, fmt, dtype=np.float64))
    lg = np.floor(np.log2(np.where(lo > 0, lo, 1.0)))
    qe = np.where(lo >= fmt.min_normal, lg, fmt.emin) - (fmt.man_bits if fmt.subnormals else 0)
    qe = np.where((lo < fmt.min_normal) & ~np.bool_(fmt.subnormals), fmt.emin, qe)
    with np.errstate(invalid="ignore"):
        p = (a - lo) / np.exp2(qe)
    ok = np.isfinite(p) & (p >= 0) & (p <= 1) & (vs.expected != vs.expected_up)
    return np.where(ok, p, 0.0)
