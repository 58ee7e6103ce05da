"""Check a device-under-test's results against fp8emu test vectors (TestFloat's ``testfloat_ver``).

Every mismatch is put in one class, tested in this order:

* ``nan``: the input is NaN, or exactly one of expected/got is a NaN code (NaN handling);
* ``overflow``: the input is +-Inf, the expected flags have overflow, or |x| or either result
  is at or past ``max`` (saturation vs Inf/NaN, the threshold tie);
* ``signed_zero``: both results are zeros of different sign;
* ``subnormal``: ``|x|`` or either result is below the smallest normal (flush-to-zero, the
  subnormal quantum);
* ``rounding``: everything else (ties, double rounding, wrong direction);
* ``flags``: the codes agree but the reported flags differ (only when the results have flags).

Stochastic-rounding vectors are checked for membership of every result in ``{down, up}``
(a miss is classified as above against the nearer of the two), and, over all draws, for
bias: ``z = (ups - sum p) / sqrt(sum p (1 - p))`` with ``p`` the exact probability of rounding
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
from .vectors import VectorSet, _sr_probability, read_results, read_vectors

__all__ = ["CLASSES", "CheckReport", "check", "check_files", "classify"]

CLASSES = ("rounding", "overflow", "nan", "subnormal", "signed_zero", "flags")


@dataclasses.dataclass
class CheckReport:
    """Outcome of :func:`check`: counts by class, failing rows, and the stochastic bias test."""

    total: int
    mismatches: int
    by_class: dict[str, int]
    failures: list[dict]
    bias_z: float | None = None
    dispersion_z: float | None = None
    bias_failed: bool = False
    unmatched: int = 0

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and not self.bias_failed and self.unmatched == 0

    def format(self, max_failures: int = 10) -> str:
        """The human-readable report ``fp8emu check`` prints."""
        lines = [f"checked {self.total} results: {'PASS' if self.ok else 'FAIL'}",
                 f"mismatches: {self.mismatches}"]
        for cls in CLASSES:
            if self.by_class.get(cls):
                lines.append(f"  {cls:12s} {self.by_class[cls]}")
        if self.unmatched:
            lines.append(f"results whose input is not in the vectors: {self.unmatched}")
        if self.bias_z is not None:
            lines.append(f"stochastic bias z-score: {self.bias_z:+.2f}, per-input dispersion z-score: "
                         f"{self.dispersion_z if self.dispersion_z is not None else float('nan'):+.2f}"
                         + ("  (FAIL)" if self.bias_failed else ""))
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
    """The class name of each mismatch (arrays of equal length; see the module docstring)."""
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
    out[np.isnan(ax)] = "nan"
    return out


def _match(vs: VectorSet, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into the vectors of each result input (-1 when absent)."""
    order = np.argsort(vs.inputs, kind="stable")
    keys = vs.inputs[order].astype(np.uint64)
    pos = np.clip(np.searchsorted(keys, inputs.astype(np.uint64)), 0, max(len(keys) - 1, 0))
    found = keys[pos] == inputs.astype(np.uint64) if len(keys) else np.zeros(inputs.shape, bool)
    return np.where(found, order[pos], -1), found


def check(vs: VectorSet, inputs: np.ndarray, codes: np.ndarray, flags: np.ndarray | None = None, *,
          max_failures: int = 20, z_max: float = 5.0) -> CheckReport:
    """Compare results (``inputs`` as source bit patterns, ``codes``, optional ``flags``) with vectors.

    Results are matched to vectors by input bit pattern, so they may come in any order and
    (for stochastic rounding) repeat an input many times.

    Args:
        vs: the test vectors.
        inputs: the inputs the device saw (bit patterns, any unsigned ints).
        codes: the device's output codes.
        flags: the device's flags, or None to check the codes only.
        max_failures: how many failing rows to keep in the report.
        z_max: bias z-score limit for stochastic rounding.
    """
    inputs = np.asarray(inputs).astype(np.uint64)
    codes = np.asarray(codes).astype(np.uint64)
    if inputs.shape != codes.shape:
        raise ValueError(f"inputs and codes differ in length: {inputs.shape} vs {codes.shape}")
    idx, found = _match(vs, inputs)
    unmatched = int(np.count_nonzero(~found))
    idx, inputs, codes = idx[found], inputs[found], codes[found]
    flags = None if flags is None else np.asarray(flags).astype(np.uint64)[found]
    expected = vs.expected[idx].astype(np.uint64)
    bias_z = disp_z = None
    if vs.rounding is RoundMode.STOCHASTIC:
        up = vs.expected_up[idx].astype(np.uint64)
        bad_code = (codes != expected) & (codes != up)
        ok_draw = ~bad_code
        p = _sr_probability(vs)[idx]
        var = float(np.sum(p * (1 - p) * ok_draw))
        if var > 0:
            bias_z = float((np.count_nonzero(ok_draw & (codes == up) & (up != expected)) - np.sum(p * ok_draw))
                           / math.sqrt(var))
        disp_z = _dispersion(idx, ok_draw & (codes == up) & (up != expected), ok_draw, p)
        # a miss is reported against the nearer neighbour
        with np.errstate(invalid="ignore"):
            got_v = decode(codes, vs.fmt, dtype=np.float64)
            nearer_up = np.abs(got_v - decode(up, vs.fmt, dtype=np.float64)) < np.abs(
                got_v - decode(expected, vs.fmt, dtype=np.float64))
        expected = np.where(nearer_up, up, expected)
    else:
        bad_code = codes != expected
    exp_flags = vs.flags[idx].astype(np.uint64)
    bad_flags = ~bad_code & (flags != exp_flags) if flags is not None and vs.rounding is not RoundMode.STOCHASTIC \
        else np.zeros(codes.shape, bool)
    bad = bad_code | bad_flags
    x = vs.values()[idx[bad]]
    cls = classify(vs, x, expected[bad].astype(vs.fmt.code_dtype), codes[bad].astype(vs.fmt.code_dtype),
                   exp_flags[bad])
    cls[bad_flags[bad]] = "flags"
    by_class = {c: int(np.count_nonzero(cls == c)) for c in CLASSES}
    failures = []
    iw, cw = vs.dtype.itemsize * 2, (vs.fmt.bits + 3) // 4
    rows = np.flatnonzero(bad)[:max_failures]
    for j, r in enumerate(rows):
        e, g = int(expected[r]), int(codes[r])
        failures.append({
            "class": cls[j], "input": f"{int(inputs[r]):0{iw}X}", "x": float(x[j]),
            "expected": f"{e:0{cw}X}", "expected_value": vs.fmt.decode_code(e),
            "expected_flags": flag_names(int(exp_flags[r])),
            "got": f"{g:0{cw}X}", "got_value": vs.fmt.decode_code(g) if g < vs.fmt.num_codes else float("nan"),
            "got_flags": flag_names(int(flags[r])) if flags is not None else None,
        })
    return CheckReport(total=int(inputs.size), mismatches=int(np.count_nonzero(bad)), by_class=by_class,
                       failures=failures, bias_z=bias_z, dispersion_z=disp_z,
                       bias_failed=any(z is not None and abs(z) > z_max for z in (bias_z, disp_z)),
                       unmatched=unmatched)


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
                z_max: float = 5.0) -> CheckReport:
    """:func:`check` on a vectors file and a results file (``input code [flags]`` per line)."""
    vs = read_vectors(vectors_path)
    inputs, codes, flags = read_results(results_path)
    return check(vs, inputs, codes, flags, max_failures=max_failures, z_max=z_max)
