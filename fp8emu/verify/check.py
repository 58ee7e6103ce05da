"""Check a device-under-test's results against fp8emu test vectors (TestFloat's ``testfloat_ver``).

Every mismatch is put in one class, tested in this order:

* ``nan``: the input is NaN, or both expected and got are NaN codes (another NaN encoding; see
  ``nan="any"``), or exactly one of them is a NaN code and the case is no overflow (NaN handling);
* ``overflow``: the input is +-Inf, the expected flags have overflow, or |x| or either result
  is at or past ``max`` (saturation vs Inf/NaN, the threshold tie);
* ``signed_zero``: both results are zeros of different sign;
* ``subnormal``: ``|x|`` or either result is below the smallest normal (flush-to-zero, the
  subnormal quantum);
* ``rounding``: everything else (ties, double rounding, wrong direction);
* ``flags``: the codes agree but the reported flags differ (only when the results have flags).

Coverage is part of the verdict: a case is one input of the vectors, and every case needs a
result (``allow_partial`` relaxes this, and the report still counts the cases left out).
Results may come in any order and repeat an input.  With ``nan="any"`` any NaN code of the
format is accepted where a NaN is expected (TestFloat makes exact NaN checking optional too).

Stochastic-rounding vectors are checked for membership of every result in ``{down, up}``
(a miss is classified as above against the nearer of the two), and, over all draws, for
bias.  The distribution tests need ``min_draws`` results (default 20) for every input that is
not exact, so that the per-input test below has inputs to work on; with fewer the check fails
and says how many draws are missing.  The bias: ``z = (ups - sum p) / sqrt(sum p (1 - p))`` with ``p`` the exact probability of rounding
up; ``|z| > z_max`` (default 5) is a failure.  A second statistic catches a deterministic
rounding posing as stochastic (unbiased on the whole but never random): the per-input
chi-square ``sum (ups_i - n_i p_i)^2 / (n_i p_i (1 - p_i))`` over the inputs with
``n_i p_i >= 5`` and ``n_i (1 - p_i) >= 5`` (where the chi-square approximation holds),
normalised to ``(chi2 - df) / sqrt(2 df)``; above ``z_max`` is a failure.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ..format import RoundMode
from ..quantize import decode
from .flags import flag_names
from .dot import DotReport, check_dot, coverage_lines, dot_from_bytes, dot_results_from_bytes, is_dot_vectors
from .textio import display_name, read_bytes
from .vectors import VectorSet, results_from_bytes, up_probability, vectors_from_bytes

__all__ = ["CLASSES", "NAN_MODES", "MIN_DRAWS", "CheckReport", "check", "check_files", "classify"]

CLASSES = ("rounding", "overflow", "nan", "subnormal", "signed_zero", "flags")
NAN_MODES = ("exact", "any")
MIN_DRAWS = 20


@dataclasses.dataclass
class CheckReport:
    """Outcome of :func:`check`: coverage, counts by class, failing rows, and for stochastic
    rounding the draw counts and the bias tests."""

    cases: int
    covered: int
    results: int
    mismatches: int
    by_class: dict[str, int]
    failures: list[dict]
    unmatched: int = 0
    missing_inputs: list[str] = dataclasses.field(default_factory=list)
    allow_partial: bool = False
    bias_z: float | None = None
    dispersion_z: float | None = None
    bias_failed: bool = False
    min_draws: int | None = None  # stochastic rounding: draws needed per inexact input
    short_inputs: int = 0  # ... inputs that have fewer
    fewest_draws: int | None = None

    @property
    def missing(self) -> int:
        """Cases without a result."""
        return self.cases - self.covered

    @property
    def ok(self) -> bool:
        """Every case has a result (or ``allow_partial`` and at least one has), all results are
        right, and the stochastic tests (when they apply) pass."""
        return (self.mismatches == 0 and self.unmatched == 0 and not self.bias_failed and self.short_inputs == 0
                and self.covered > 0 and (self.missing == 0 or self.allow_partial))

    def format(self, max_failures: int = 10) -> str:
        """The human-readable report ``fp8emu check`` prints.

        Args:
            max_failures: how many mismatches to list.
        """
        lines = [f"{'PASS' if self.ok else 'FAIL'}: {self.covered} of {self.cases} cases checked "
                 f"({self.results} results), {self.mismatches} mismatches"]
        lines += coverage_lines(self.missing, [f"input {i}" for i in self.missing_inputs[:1]] + self.missing_inputs[1:], self.allow_partial,
                                self.unmatched, "results whose input is not in the vectors")
        for cls in CLASSES:
            if self.by_class.get(cls):
                lines.append(f"  {cls:12s} {self.by_class[cls]}")
        if self.short_inputs:
            lines.append(f"stochastic rounding: the bias tests need at least {self.min_draws} draws (results) of "
                         f"every inexact input; {self.short_inputs} inputs have fewer (fewest: {self.fewest_draws})."
                         f" Repeat each input {self.min_draws} times in the results, or lower --min-draws")
        if self.bias_z is not None or self.dispersion_z is not None:
            z = lambda v: f"{v:+.2f}" if v is not None else "n/a"  # noqa: E731
            lines.append(f"stochastic bias z-score: {z(self.bias_z)}, per-input dispersion z-score: "
                         f"{z(self.dispersion_z)}" + ("  (FAIL)" if self.bias_failed else ""))
        for f in self.failures[:max_failures]:
            lines.append(f"  [{f['class']}] input {f['input']} ({f['x']!r}): expected {f['expected']} "
                         f"({f['expected_value']!r}, flags {f['expected_flags']}), got {f['got']} "
                         f"({f['got_value']!r}" + (f", flags {f['got_flags']})" if f.get("got_flags") else ")"))
        shown = min(len(self.failures), max_failures)
        if self.mismatches > shown:
            lines.append(f"  ... {self.mismatches - shown} more (--max-failures)")
        return "\n".join(lines)


def classify(vs: VectorSet, x: np.ndarray, expected: np.ndarray, got: np.ndarray,
             exp_flags: np.ndarray) -> np.ndarray:
    """The class name of each mismatch (see the module docstring for the classes and their order).

    Args:
        vs: the vectors (their format and source).
        x: the inputs of the mismatches, as source-dtype values.
        expected: the expected codes.
        got: the device's codes.
        exp_flags: the expected flags.

    Returns:
        An object array of class names, one per mismatch.
    """
    fmt = vs.fmt
    nan_code = np.vectorize(fmt.is_nan_code, otypes=[bool])
    ev = decode(expected, fmt, dtype=np.float64)
    gv = decode(got, fmt, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ax = np.abs(x.astype(np.float64))
    e_nan = nan_code(expected) if expected.size else np.zeros(0, bool)
    g_nan = nan_code(got) if got.size else np.zeros(0, bool)
    out = np.full(expected.shape, "rounding", dtype=object)
    with np.errstate(invalid="ignore"):
        sub = (ax < fmt.min_normal) | (np.abs(ev) < fmt.min_normal) | (np.abs(gv) < fmt.min_normal)
        zero = (ev == 0) & (gv == 0)
        over = (np.isinf(ax) | ((exp_flags & 0x04) != 0) | (ax >= fmt.max) | (np.abs(ev) >= fmt.max)
                | (np.abs(gv) >= fmt.max))
    out[sub] = "subnormal"
    out[zero] = "signed_zero"
    out[e_nan != g_nan] = "nan"
    out[over & ~zero] = "overflow"
    out[(e_nan & g_nan) | np.isnan(ax)] = "nan"  # two NaN codes: an encoding convention, not overflow handling
    return out


def _match(vs: VectorSet, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into the vectors of each result input (the first line holding it), and whether found."""
    keys, first = np.unique(vs.inputs.astype(np.uint64), return_index=True)
    if keys.size == 0:
        return np.full(inputs.shape, -1), np.zeros(inputs.shape, bool)
    pos = np.clip(np.searchsorted(keys, inputs), 0, keys.size - 1)
    found = keys[pos] == inputs
    return np.where(found, first[pos], -1), found


def _validated(vs: VectorSet, inputs, codes, flags) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The results as uint64 arrays, each value checked against its word's width."""
    arrays = [np.asarray(a).reshape(-1) for a in (inputs, codes)] + ([] if flags is None else
                                                                      [np.asarray(flags).reshape(-1)])
    if len({a.size for a in arrays}) != 1:
        raise ValueError(f"inputs, codes and flags differ in length: {[a.size for a in arrays]}")
    for a, what, bits in zip(arrays, ("inputs", "codes", "flags"), (vs.dtype.itemsize * 8, vs.fmt.bits, 5)):
        if a.dtype.kind not in "ui":
            raise ValueError(f"{what} must be unsigned integers (bit patterns), got dtype {a.dtype}")
        bad = np.flatnonzero((a < 0) | ((a.astype(np.uint64) >> np.uint64(bits)) != 0) if bits < 64 else a < 0)
        if bad.size:
            raise ValueError(f"{what}[{bad[0]}] = {int(a[bad[0]]):#x} is out of range ({bits}-bit words)"
                             + (f" ({vs.fmt.name} codes)" if what == "codes" else ""))
    out = [a.astype(np.uint64) for a in arrays]
    return out[0], out[1], out[2] if flags is not None else None


def check(vs: VectorSet, inputs: np.ndarray, codes: np.ndarray, flags: np.ndarray | None = None, *,
          max_failures: int = 20, z_max: float = 5.0, nan: str = "exact", allow_partial: bool = False,
          min_draws: int = MIN_DRAWS) -> CheckReport:
    """Compare results (``inputs`` as source bit patterns, ``codes``, optional ``flags``) with vectors.

    Results are matched to the vectors' cases by input bit pattern, so they may come in any
    order and (for stochastic rounding) repeat an input many times.

    Args:
        vs: the test vectors.
        inputs: the inputs the device saw (bit patterns, unsigned ints of at most the source width).
        codes: the device's output codes (each less than ``2**fmt.bits``).
        flags: the device's flags, or None to check the codes only.
        max_failures: how many failing rows to keep in the report (>= 0).
        z_max: bias z-score limit for stochastic rounding (finite, > 0).
        nan: ``"exact"`` (a NaN result must be the expected code) or ``"any"`` (any NaN code of
            the format is accepted where a NaN is expected).
        allow_partial: pass even when some cases have no result (the report still counts them).
        min_draws: stochastic rounding: results needed per inexact input (>= 1).

    Returns:
        A :class:`CheckReport`; ``report.ok`` is the verdict.

    Raises:
        ValueError: a bad option, arrays of different lengths, or a value wider than its word.
    """
    if isinstance(max_failures, bool) or not isinstance(max_failures, (int, np.integer)) or max_failures < 0:
        raise ValueError(f"max_failures={max_failures!r} must be an int >= 0")
    if not (isinstance(z_max, (int, float)) and math.isfinite(z_max) and z_max > 0):
        raise ValueError(f"z_max={z_max!r} must be a finite number > 0")
    if nan not in NAN_MODES:
        raise ValueError(f"nan={nan!r}; allowed: {', '.join(NAN_MODES)}")
    if isinstance(min_draws, bool) or not isinstance(min_draws, (int, np.integer)) or min_draws < 1:
        raise ValueError(f"min_draws={min_draws!r} must be an int >= 1")
    inputs, codes, flags = _validated(vs, inputs, codes, flags)
    idx, found = _match(vs, inputs)
    unmatched = int(np.count_nonzero(~found))
    idx, inputs, codes = idx[found], inputs[found], codes[found]
    flags = None if flags is None else flags[found]
    covered = np.zeros(len(vs), bool)
    covered[idx] = True
    _, first = np.unique(vs.inputs, return_index=True)  # a (v1) file may repeat an input: one case
    missing = np.sort(first[~covered[first]])
    iw, cw = vs.dtype.itemsize * 2, (vs.fmt.bits + 3) // 4
    expected = vs.expected[idx].astype(np.uint64)
    is_nan = _nan_codes(vs.fmt)
    sr = vs.rounding is RoundMode.STOCHASTIC
    bias_z = disp_z = fewest = None
    short = 0
    if sr:
        up = vs.expected_up[idx].astype(np.uint64)
        ok_code = (codes == expected) | (codes == up)
        if nan == "any":
            ok_code |= is_nan[codes] & (is_nan[expected] | is_nan[up])
        p = up_probability(vs)[idx]
        went_up = ok_code & (codes == up) & (up != expected)
        var = float(np.sum(p * (1 - p) * ok_code))
        if var > 0:
            bias_z = float((np.count_nonzero(went_up) - np.sum(p * ok_code)) / math.sqrt(var))
        disp_z = _dispersion(idx, went_up, ok_code, p)
        draws = np.bincount(idx, minlength=len(vs))
        inexact = covered & (vs.expected != vs.expected_up)
        short = int(np.count_nonzero(inexact & (draws < min_draws)))
        fewest = int(draws[inexact].min()) if inexact.any() else None
        bad_code = ~ok_code
        # a miss is reported against the nearer neighbour
        with np.errstate(invalid="ignore"):
            got_v = decode(codes, vs.fmt, dtype=np.float64)
            nearer_up = np.abs(got_v - decode(up, vs.fmt, dtype=np.float64)) < np.abs(
                got_v - decode(expected, vs.fmt, dtype=np.float64))
        expected = np.where(nearer_up, up, expected)
    else:
        bad_code = codes != expected
        if nan == "any":
            bad_code &= ~(is_nan[codes] & is_nan[expected])
    exp_flags = vs.flags[idx].astype(np.uint64)
    bad_flags = ~bad_code & (flags != exp_flags) if flags is not None and not sr else np.zeros(codes.shape, bool)
    bad = bad_code | bad_flags
    x = vs.values()[idx[bad]]
    cls = classify(vs, x, expected[bad].astype(vs.fmt.code_dtype), codes[bad].astype(vs.fmt.code_dtype),
                   exp_flags[bad])
    cls[bad_flags[bad]] = "flags"
    by_class = {c: int(np.count_nonzero(cls == c)) for c in CLASSES}
    failures = []
    rows = np.flatnonzero(bad)[:max_failures]
    for j, r in enumerate(rows):
        e, g = int(expected[r]), int(codes[r])
        failures.append({
            "class": cls[j], "input": f"{int(inputs[r]):0{iw}X}", "x": float(x[j]),
            "expected": f"{e:0{cw}X}", "expected_value": vs.fmt.decode_code(e),
            "expected_flags": flag_names(int(exp_flags[r])),
            "got": f"{g:0{cw}X}", "got_value": vs.fmt.decode_code(g),
            "got_flags": flag_names(int(flags[r])) if flags is not None else None,
        })
    return CheckReport(cases=int(first.size), covered=int(first.size - missing.size), results=int(found.size),
                       mismatches=int(np.count_nonzero(bad)), by_class=by_class, failures=failures,
                       unmatched=unmatched, missing_inputs=[f"{int(v):0{iw}X}" for v in vs.inputs[missing[:5]]],
                       allow_partial=allow_partial, bias_z=bias_z, dispersion_z=disp_z,
                       bias_failed=any(z is not None and abs(z) > z_max for z in (bias_z, disp_z)),
                       min_draws=min_draws if sr else None, short_inputs=short, fewest_draws=fewest)


def _nan_codes(fmt) -> np.ndarray:
    """``is_nan[code]`` for every code of ``fmt``."""
    return np.isnan(decode(np.arange(fmt.num_codes, dtype=np.uint64).astype(fmt.code_dtype), fmt, dtype=np.float64))


def _dispersion(idx: np.ndarray, went_up: np.ndarray, drawn: np.ndarray, p: np.ndarray) -> float | None:
    """Normalised per-input chi-square of the up-counts (None when no input was drawn often enough)."""
    n = np.bincount(idx, weights=drawn.astype(np.float64))
    ups = np.bincount(idx, weights=went_up.astype(np.float64), minlength=n.size)
    pi = np.zeros(n.size)
    pi[idx] = p
    use = (n * pi >= 5) & (n * (1 - pi) >= 5)
    df = int(np.count_nonzero(use))
    if df == 0:
        return None
    chi2 = float(np.sum((ups[use] - n[use] * pi[use]) ** 2 / (n[use] * pi[use] * (1 - pi[use]))))
    return (chi2 - df) / math.sqrt(2 * df)


def check_files(vectors_path: str | os.PathLike, results_path: str | os.PathLike, *, max_failures: int = 20,
                z_max: float = 5.0, nan: str = "exact", allow_partial: bool = False,
                min_draws: int = MIN_DRAWS, allow_no_end_line: bool = False) -> CheckReport | DotReport:
    """Check a results file against a vectors file (either may be ``-``, stdin, but not both).

    The kind of each file is read from its content: conversion or dot-product vectors, text
    (format v1 or v2) or ``.npz``.  Conversion results are ``input code [flags]`` per line (or
    an ``.npz`` with ``inputs``, ``codes``, ``flags``); dot-product results are described in
    :mod:`fp8emu.verify.dot`.

    Args:
        vectors_path: the vectors file (``-``: stdin).
        results_path: the results file (``-``: stdin).
        max_failures: how many mismatches the report lists.
        z_max: largest accepted |z| of a stochastic-rounding frequency test.
        nan: ``"exact"`` (the NaN code must match) or ``"any"`` (any NaN code passes).
        allow_partial: accept results that cover only some cases.
        min_draws: fewest draws per stochastic case for a frequency test.
        allow_no_end_line: accept text vectors without the end line ``// end: N cases`` (format v1,
            or v2 from an fp8emu that did not write one); a vectors file cut exactly at a line
            boundary then goes unnoticed.

    Returns:
        A :class:`CheckReport`, or a :class:`~fp8emu.verify.dot.DotReport` for dot products.

    Raises:
        FileFormatError: (a ValueError) an unreadable, malformed or cut-off file, with file and line.
        ValueError: both paths are ``-``, or a bad option.
    """
    if str(vectors_path) == "-" and str(results_path) == "-":
        raise ValueError("only one of the vectors and the results can come from stdin ('-')")
    vdata, vname = read_bytes(vectors_path), display_name(vectors_path)
    rdata, rname = read_bytes(results_path), display_name(results_path)
    if is_dot_vectors(vdata):
        dvs = dot_from_bytes(vdata, vname, allow_no_end_line=allow_no_end_line)
        index, y = dot_results_from_bytes(rdata, dvs, rname)
        return check_dot(dvs, y, index=index, max_failures=max_failures, allow_partial=allow_partial)
    vs = vectors_from_bytes(vdata, vname, allow_no_end_line=allow_no_end_line)
    inputs, codes, flags = results_from_bytes(rdata, vs, rname)
    return check(vs, inputs, codes, flags, max_failures=max_failures, z_max=z_max, nan=nan,
                 allow_partial=allow_partial, min_draws=min_draws)
