"""TestFloat-style conversion test vectors: generation, the line format, reading and writing.

Line format (text, one case per line, like Berkeley TestFloat's ``testfloat_gen``)::

    # fp8emu test vectors v1
    # source=float32 format=e4m3fn exp_bits=4 man_bits=3 bias=7 subnormals=1 specials=fn signed=1 has_zero=1
    # rounding=nearest_even saturate=0 tininess=after level=1 seed=0
    # columns: input expected flags
    3F880000 38 01

* ``input``: the source bit pattern in hex, zero-padded to the source width (4 digits for
  float16/bfloat16, 8 for float32, 16 for float64);
* ``expected``: the code fp8emu produces, in hex, zero-padded to the format width;
* ``flags``: the exception flags in hex (``01`` inexact, ``02`` underflow, ``04`` overflow,
  ``10`` invalid; SoftFloat's bit numbering, see :mod:`fp8emu.verify.flags`).

Stochastic-rounding vectors have four columns, ``input down up flags``: a correct result is
``down`` or ``up`` (the neighbours below and above in magnitude, ``up`` already saturated or
turned into Inf/NaN as the format and ``saturate`` say), and the flags leave out overflow, which
depends on the draw.  Lines starting with ``#`` are comments; the header keys are read back by
:func:`read_vectors`.  ``.npz`` files hold the same columns as arrays plus the header as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from fractions import Fraction
from typing import Iterator

import numpy as np

from ..format import Format, RoundMode, Specials
from ..quantize import encode
from .flags import OVERFLOW, exception_flags

__all__ = ["VectorSet", "SOURCES", "source_dtype", "rounding_boundaries", "boundary_inputs", "generate",
           "exhaustive_chunks", "write_vectors", "read_vectors", "write_results", "format_header", "parse_format"]

SOURCES = ("float16", "bfloat16", "float32", "float64")
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
LEVELS = ("1", "2", "exhaustive")


def source_dtype(name: str | np.dtype) -> np.dtype:
    """The NumPy dtype of a source name (``float16``, ``bfloat16``, ``float32``, ``float64``).

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
        return source_dtype(self.source)

    def values(self) -> np.ndarray:
        """The inputs as source-dtype floats."""
        return self.inputs.view(self.dtype)

    def __len__(self) -> int:
        return int(self.inputs.size)


# ---- format <-> header ----------------------------------------------------------------------
def format_header(fmt: Format) -> str:
    """The header fields that rebuild ``fmt`` exactly (custom formats included)."""
    return (f"format={fmt.name} exp_bits={fmt.exp_bits} man_bits={fmt.man_bits} bias={fmt.bias} "
            f"subnormals={int(fmt.subnormals)} specials={fmt.specials.value} signed={int(fmt.signed)} "
            f"has_zero={int(fmt.has_zero)}")


def parse_format(meta: dict) -> Format:
    """Rebuild a Format from header fields (see :func:`format_header`)."""
    return Format(int(meta["exp_bits"]), int(meta["man_bits"]), bias=int(meta["bias"]),
                  subnormals=meta["subnormals"] == "1", specials=Specials(meta["specials"]),
                  signed=meta["signed"] == "1", has_zero=meta.get("has_zero", "1") == "1", name=meta["format"])


# ---- boundary cases -------------------------------------------------------------------------------
def _grid_points(fmt: Format) -> tuple[list[Fraction], list[Fraction]]:
    """Non-negative representable values and the ties between neighbours; for formats wider
    than 10 bits only the three lowest and highest values of each binade and their ties."""
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


def rounding_boundaries(fmt: Format, source: str | np.dtype = "float32") -> np.ndarray:
    """Positive source values at which rounding to ``fmt`` changes, sorted (source dtype).

    The representable values of ``fmt``, the midpoints between neighbours (the ties), the
    overflow threshold ``max + ulp/2``, ``max + ulp``, and half the smallest positive value, each
    converted to the nearest value of ``source`` (a tie the source cannot hold becomes its
    nearest source value).  For formats wider than 10 bits, only the ends of each binade.
    """
    dt = source_dtype(source)
    return _boundaries(fmt, dt.name).view(dt)


_BOUNDARY_CACHE: dict = {}


def _boundaries(fmt: Format, dt_name: str) -> np.ndarray:
    key = (fmt, dt_name)
    if key not in _BOUNDARY_CACHE:
        dt = source_dtype(dt_name)
        grid, ties = _grid_points(fmt)
        ulp_top = Fraction(2) ** (fmt.emax - fmt.man_bits)
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
    ulps, both signs, plus the source's zeros, extremes, Inf and NaN payloads (bit patterns)."""
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
    grid = fmt.finite_values()
    k = rng.integers(0, grid.size, size=count - n1)
    spread = grid[k] * (1 + rng.uniform(-0.25, 0.25, size=k.size)) * rng.choice([-1.0, 1.0], size=k.size)
    with np.errstate(over="ignore"):
        near = spread.astype(dt).view(_uint(dt))
    return np.concatenate([raw.astype(_uint(dt)), near])


def exhaustive_chunks(source: str | np.dtype, chunk: int = 1 << 22, start: int = 0,
                      stop: int | None = None) -> Iterator[np.ndarray]:
    """Every bit pattern of a 16- or 32-bit source, in chunks (``start``/``stop`` limit the range).

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
        past = np.abs(x.astype(np.float64)) >= fmt.max + math.ldexp(1.0, fmt.emax - fmt.man_bits)
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
        level: ``1`` (boundary cases), ``2`` (level 1 plus ``count`` seeded random inputs) or
            ``"exhaustive"`` (every pattern of a 16-bit source; use :func:`write_vectors` with
            ``level="exhaustive"`` to stream a float32 source to a file).
        seed: seed of the level-2 random inputs.
        count: number of random inputs at level 2.
        tininess: ``"after"`` or ``"before"`` rounding, for the underflow flag.
        inputs: explicit source bit patterns instead of a level.

    Raises:
        ValueError: unknown level/source/rounding, exhaustive for a float32/float64 source.
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
                inputs = np.concatenate([inputs, _random_inputs(fmt, dt, count, np.random.default_rng(seed))])
    inputs = np.ascontiguousarray(inputs, dtype=_uint(dt))
    expected, flags, up = _expected(inputs, dt, fmt, mode, saturate, tininess)
    return VectorSet(dt.name, fmt, mode, bool(saturate), tininess, inputs, expected, flags, up, level, seed)


# ---- files ----------------------------------------------------------------------------------------
def _header(vs: VectorSet) -> str:
    cols = "input down up flags" if vs.expected_up is not None else "input expected flags"
    return ("# fp8emu test vectors v1\n"
            f"# source={vs.source} {format_header(vs.fmt)}\n"
            f"# rounding={vs.rounding.value} saturate={int(vs.saturate)} tininess={vs.tininess} "
            f"level={vs.level or 'custom'} seed={vs.seed}\n"
            f"# columns: {cols}   (flags: 01 inexact, 02 underflow, 04 overflow, 10 invalid)\n")


_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def _hex_columns(columns: list[tuple[np.ndarray, int]]) -> bytes:
    """Lines of space-separated upper-case hex columns, ``(values, digits)`` each, as ASCII bytes.

    Vectorised: every digit is a 4-bit slice ``(v >> 4*j) & 0xF`` looked up in ``_HEX``, written
    into one (n, line length) uint8 array; no per-line Python.
    """
    n = columns[0][0].size
    width = sum(d for _, d in columns) + len(columns)  # digits, separators and the newline
    buf = np.empty((n, width), dtype=np.uint8)
    pos = 0
    for values, digits in columns:
        v = values.astype(np.uint64)
        for j in range(digits):
            buf[:, pos + j] = _HEX[((v >> np.uint64(4 * (digits - 1 - j))) & np.uint64(0xF)).astype(np.intp)]
        pos += digits
        buf[:, pos] = ord(" ")
        pos += 1
    buf[:, -1] = ord("\n")
    return buf.tobytes()


def _hex_lines(vs: VectorSet, inputs, expected, flags, up) -> bytes:
    if inputs.size == 0:
        return b""
    iw, cw = vs.dtype.itemsize * 2, (vs.fmt.bits + 3) // 4
    cols = [(inputs, iw), (expected, cw)] + ([(up, cw)] if up is not None else []) + [(flags, 2)]
    return _hex_columns(cols)


def write_vectors(vs: VectorSet, path: str | os.PathLike, *,
                  stream_chunks: Iterator[np.ndarray] | None = None) -> pathlib.Path:
    """Write vectors as text (``.txt`` or any other suffix) or ``.npz``.

    ``stream_chunks``: an iterator of input chunks (see :func:`exhaustive_chunks`) whose
    expected results are computed and appended chunk by chunk, for inputs too many to hold
    (text only); ``vs`` then supplies the settings and its own rows come first.
    """
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        if stream_chunks is not None:
            raise ValueError("streamed (exhaustive float32) vectors can only be written as text")
        meta = {"source": vs.source, "format": format_header(vs.fmt), "rounding": vs.rounding.value,
                "saturate": vs.saturate, "tininess": vs.tininess, "level": vs.level, "seed": vs.seed}
        arrays = dict(inputs=vs.inputs, expected=vs.expected, flags=vs.flags, meta=np.array(json.dumps(meta)))
        if vs.expected_up is not None:
            arrays["expected_up"] = vs.expected_up
        np.savez_compressed(path, **arrays)
        return path
    with open(path, "wb") as fh:
        fh.write(_header(vs).encode())
        fh.write(_hex_lines(vs, vs.inputs, vs.expected, vs.flags, vs.expected_up))
        for chunk in stream_chunks or ():
            exp, fl, up = _expected(chunk, vs.dtype, vs.fmt, vs.rounding, vs.saturate, vs.tininess)
            fh.write(_hex_lines(vs, chunk, exp, fl, up))
    return path


def write_results(path: str | os.PathLike, inputs: np.ndarray, codes: np.ndarray, source: str | np.dtype,
                  fmt: Format, flags: np.ndarray | None = None) -> pathlib.Path:
    """Write a device-under-test's results in the vectors line format (``input code [flags]``).

    Use this (or print the same columns from your own harness) to feed :func:`fp8emu.verify.check.check`.
    """
    dt = source_dtype(source)
    iw, cw = dt.itemsize * 2, (fmt.bits + 3) // 4
    cols = [(np.asarray(inputs).reshape(-1), iw), (np.asarray(codes).reshape(-1), cw)]
    if flags is not None:
        cols.append((np.asarray(flags).reshape(-1), 2))
    with open(path, "wb") as fh:
        fh.write(("# fp8emu results v1\n# columns: input code" + (" flags\n" if flags is not None else "\n")).encode())
        if cols[0][0].size:
            fh.write(_hex_columns(cols))
    return pathlib.Path(path)


def _parse_meta(lines: list[str]) -> dict:
    meta = {}
    for line in lines:
        for tok in line.lstrip("#").split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                meta[k] = v
    return meta


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _HEX_VALUE[_c] = _HEX_VALUE[ord(chr(_c).lower())] = _i


def _parse_fixed_width(data: bytes) -> list[np.ndarray] | None:
    """Columns of hex lines that all have the same layout (what fp8emu writes), vectorised;
    None when the lines differ in width or hold anything but hex digits and single spaces."""
    first = data.find(b"\n")
    width = first + 1
    if first <= 0 or len(data) % width:
        return None
    buf = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
    if not (buf[:, -1] == ord("\n")).all():
        return None
    spaces = np.flatnonzero(buf[0, :-1] == ord(" "))
    if not (buf[:, spaces] == ord(" ")).all():
        return None
    digits = _HEX_VALUE[buf[:, :-1]]
    bounds = [-1, *spaces.tolist(), width - 1]
    cols = []
    for lo, hi in zip(bounds, bounds[1:]):
        part = digits[:, lo + 1:hi]
        if part.shape[1] == 0 or part.shape[1] > 16 or (part == 255).any():
            return None
        v = np.zeros(part.shape[0], dtype=np.uint64)
        for j in range(part.shape[1]):
            v = (v << np.uint64(4)) | part[:, j].astype(np.uint64)
        cols.append(v)
    return cols


def _read_columns(path) -> tuple[dict, list[np.ndarray]]:
    """Header fields and hex columns of a text vectors/results file."""
    path = pathlib.Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    header = []
    while data.startswith(b"#"):  # the header: leading comment lines
        end = data.find(b"\n")
        line, data = (data, b"") if end < 0 else (data[:end], data[end + 1:])
        header.append(line.decode(errors="replace").strip())
    fast = _parse_fixed_width(data) if data else None
    if fast is not None:
        return _parse_meta(header), fast
    rows = []
    for line in data.decode(errors="replace").splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            header.append(s)
            continue
        rows.append(s.split())
    if rows and len({len(r) for r in rows}) != 1:
        raise ValueError(f"{path}: rows have different numbers of columns")
    ncol = len(rows[0]) if rows else 0
    try:
        cols = [np.array([int(r[c], 16) for r in rows], dtype=np.uint64) for c in range(ncol)]
    except ValueError as exc:
        raise ValueError(f"{path}: not a hex column file ({exc})") from None
    return _parse_meta(header), cols


def read_vectors(path: str | os.PathLike) -> VectorSet:
    """Read vectors written by :func:`write_vectors` (text or ``.npz``).

    Raises:
        ValueError: the file has no fp8emu header or malformed rows.
    """
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            fmeta = _parse_meta([meta["format"]])
            dt = source_dtype(meta["source"])
            fmt = parse_format(fmeta)
            up = z["expected_up"] if "expected_up" in z else None
            return VectorSet(dt.name, fmt, RoundMode.parse(meta["rounding"]), bool(meta["saturate"]),
                             meta["tininess"], z["inputs"].astype(_uint(dt)), z["expected"].astype(fmt.code_dtype),
                             z["flags"].astype(np.uint8), None if up is None else up.astype(fmt.code_dtype),
                             meta["level"], int(meta["seed"]))
    meta, cols = _read_columns(path)
    missing = [k for k in ("source", "format", "exp_bits", "rounding") if k not in meta]
    if missing:
        raise ValueError(f"{path}: not an fp8emu vectors file (header lacks {', '.join(missing)})")
    dt = source_dtype(meta["source"])
    fmt = parse_format(meta)
    mode = RoundMode.parse(meta["rounding"])
    want = 4 if mode is RoundMode.STOCHASTIC else 3
    if cols and len(cols) != want:
        raise ValueError(f"{path}: expected {want} columns for rounding={mode.value}, found {len(cols)}")
    if not cols:
        cols = [np.zeros(0, np.uint64)] * want
    up = cols[2].astype(fmt.code_dtype) if want == 4 else None
    return VectorSet(dt.name, fmt, mode, meta.get("saturate", "0") == "1", meta.get("tininess", "after"),
                     cols[0].astype(_uint(dt)), cols[1].astype(fmt.code_dtype), cols[-1].astype(np.uint8), up,
                     meta.get("level", ""), int(meta.get("seed", 0)))


def read_results(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(inputs, codes, flags or None)`` from a results file: text (``input code [flags]`` per
    line) or ``.npz`` with arrays ``inputs``, ``codes`` and optionally ``flags``."""
    if pathlib.Path(path).suffix == ".npz":
        with np.load(path) as z:
            missing = [k for k in ("inputs", "codes") if k not in z]
            if missing:
                raise ValueError(f"{path}: a results .npz needs arrays 'inputs' and 'codes' (missing {missing})")
            return (z["inputs"].astype(np.uint64).reshape(-1), z["codes"].astype(np.uint64).reshape(-1),
                    z["flags"].astype(np.uint64).reshape(-1) if "flags" in z else None)
    _, cols = _read_columns(path)
    if not cols:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), None
    if len(cols) not in (2, 3):
        raise ValueError(f"{path}: a results file has 2 or 3 columns (input code [flags]), found {len(cols)}")
    return cols[0], cols[1], (cols[2] if len(cols) == 3 else None)


def _sr_probability(vs: VectorSet) -> np.ndarray:
    """Exact probability of rounding up (magnitude) for each input of stochastic vectors (float64)."""
    fmt = vs.fmt
    with np.errstate(invalid="ignore"):
        a = np.abs(vs.values().astype(np.float64))
    from ..quantize import decode
    lo = np.abs(decode(vs.expected, fmt, dtype=np.float64))
    lg = np.floor(np.log2(np.where(lo > 0, lo, 1.0)))
    qe = np.where(lo >= fmt.min_normal, lg, fmt.emin) - (fmt.man_bits if fmt.subnormals else 0)
    qe = np.where((lo < fmt.min_normal) & ~np.bool_(fmt.subnormals), fmt.emin, qe)
    with np.errstate(invalid="ignore"):
        p = (a - lo) / np.exp2(qe)
    ok = np.isfinite(p) & (p >= 0) & (p <= 1) & (vs.expected != vs.expected_up)
    return np.where(ok, p, 0.0)
