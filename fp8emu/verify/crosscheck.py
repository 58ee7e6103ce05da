"""Run the same test vectors through the installed peer libraries and explain every disagreement.

Peers (each used only if importable): ml_dtypes (NumPy ``astype``), PyTorch (``Tensor.to``),
gfloat (``round_ndarray`` + ``encode_ndarray`` on float64 values).  For each peer, format and
source dtype the report counts the inputs whose code differs from fp8emu's and attributes each
to the first explanation that reproduces the peer's code:

* ``saturates``: the peer's code equals fp8emu's *saturating* conversion;
* ``double rounding via float32``: equals fp8emu applied to the input first rounded to float32;
* ``NaN sign/code``: both are NaN, with different codes (a NaN-encoding convention);
* ``NaN handling``: exactly one of them is NaN (or the input is NaN), the input has no finite value
  in the format (NaN, Inf, or fp8emu gives NaN/Inf for it) and the peer gives NaN, ±Inf, ±max, ±0
  or the smallest magnitude -- anything else (1.0 to NaN, an overflow to 16.0) is unexplained;
* ``signed zero``: both are zeros of different sign;
* ``sign dropped``: an unsigned format, a negative input, and the peer encodes ``|x|``;
* ``zero to min``: a format without zero, a zero input, and the peer gives the smallest value;
* ``tie with 1-bit precision``: an exact midpoint in a format with ``man_bits = 0`` (``e8m0fnu``):
  both neighbours have significand 1, so "even" needs a convention (fp8emu takes the larger,
  whose integral significand on the finer grid is 2);
* ``peer refuses``: the peer raises or returns no valid code;
* ``unexplained``: none of the above (printed with an example: a bug in one of the two).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform

import numpy as np

from ..format import Format
from ..formats import PRESETS
from ..quantize import encode
from .vectors import generate, source_dtype

__all__ = ["PEERS", "available_peers", "compare_peer", "crosscheck_report", "peer_codes"]

# fp8emu preset -> dtype / format name in each peer
_ML_DTYPES = {"e5m2": "float8_e5m2", "e4m3fn": "float8_e4m3fn", "e4m3fnuz": "float8_e4m3fnuz",
              "e5m2fnuz": "float8_e5m2fnuz", "e4m3b11fnuz": "float8_e4m3b11fnuz", "e4m3": "float8_e4m3",
              "e3m4": "float8_e3m4", "e2m3fn": "float6_e2m3fn", "e3m2fn": "float6_e3m2fn", "e2m1fn": "float4_e2m1fn",
              "e8m0fnu": "float8_e8m0fnu", "bfloat16": "bfloat16"}
_TORCH = {"e5m2": "float8_e5m2", "e4m3fn": "float8_e4m3fn", "e4m3fnuz": "float8_e4m3fnuz",
          "e5m2fnuz": "float8_e5m2fnuz", "e8m0fnu": "float8_e8m0fnu", "float16": "float16", "bfloat16": "bfloat16"}
_GFLOAT = {"e5m2": "format_info_ocp_e5m2", "e4m3fn": "format_info_ocp_e4m3", "e2m3fn": "format_info_ocp_e2m3",
           "e3m2fn": "format_info_ocp_e3m2", "e2m1fn": "format_info_ocp_e2m1", "e8m0fnu": "format_info_ocp_e8m0",
           "float16": "format_info_binary16", "bfloat16": "format_info_bfloat16"}
PEERS = {"ml_dtypes": _ML_DTYPES, "torch": _TORCH, "gfloat": _GFLOAT}
_SOURCES = {"ml_dtypes": ("float16", "bfloat16", "float32", "float64"), "torch": ("float32", "float64", "bfloat16"),
            "gfloat": ("float32", "float64")}


def available_peers() -> list[str]:
    """The peer libraries importable here."""
    return [p for p in PEERS if importlib.util.find_spec(p) is not None]


def _version(peer: str) -> str:
    try:
        return importlib.metadata.version(peer)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _gfloat_codes(name: str, x: np.ndarray) -> np.ndarray:
    import gfloat
    import gfloat.formats
    fi = getattr(gfloat.formats, name)
    v = x.astype(np.float64)
    sat = not (fi.num_infs or fi.num_nans)  # gfloat refuses sat=False for formats without Inf/NaN
    out = np.full(v.shape, -1, dtype=np.int64)
    ok = ~np.isnan(v) if fi.num_nans == 0 else np.ones(v.shape, bool)  # ... and NaN for formats without NaN
    out[ok] = gfloat.encode_ndarray(fi, gfloat.round_ndarray(fi, v[ok], sat=sat)).astype(np.int64)
    return out


def peer_codes(peer: str, fmt: Format, x: np.ndarray) -> np.ndarray:
    """The codes ``peer`` produces for ``x`` with its default conversion (int64; -1 where it refuses).

    Args:
        peer: the peer library's name.
        fmt: the format.
        x: the inputs.

    Raises:
        KeyError: the peer has no such format.
    """
    name = PEERS[peer][fmt.name]
    mask = (1 << fmt.bits) - 1
    with np.errstate(all="ignore"):
        if peer == "ml_dtypes":
            import ml_dtypes
            out = x.astype(getattr(ml_dtypes, name)).view(np.uint8 if fmt.bits <= 8 else np.uint16)
        elif peer == "torch":
            import torch
            if x.dtype.name == "bfloat16":
                t = torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16)
            else:
                t = torch.from_numpy(np.ascontiguousarray(x))
            out = t.to(getattr(torch, name)).view(torch.uint8 if fmt.bits <= 8 else torch.int16).numpy()
        else:
            return _gfloat_codes(name, x)
    return np.asarray(out).astype(np.int64) & mask


def compare_peer(peer: str, fmt: Format, source: str, inputs_bits: np.ndarray) -> dict:
    """Disagreements of ``peer`` with fp8emu's non-saturating RNE on ``inputs_bits``, by reason.

    Args:
        peer: the peer library's name.
        fmt: the format.
        source: the source dtype name.
        inputs_bits: the inputs as bit patterns.
    """
    dt = source_dtype(source)
    x = inputs_bits.view(dt)
    ours = encode(x, fmt)
    theirs = peer_codes(peer, fmt, x)
    diff = ours != theirs
    reasons: dict[str, list] = {}
    if not diff.any():
        return {"n": int(x.size), "diff": 0, "reasons": reasons}
    sat = encode(x, fmt, saturate=True)
    with np.errstate(all="ignore"):
        absx = encode(np.abs(x), fmt)
    with np.errstate(all="ignore"):
        via32 = encode(x.astype(np.float32), fmt) if dt.itemsize > 4 else ours
        xf = x.astype(np.float64)
    is_nan = np.vectorize(fmt.is_nan_code, otypes=[bool])
    vals = fmt.values()
    for i in np.flatnonzero(diff):
        o, t = int(ours[i]), int(theirs[i])
        if t < 0:
            why = "peer refuses"
        elif t == sat[i]:
            why = "saturates"
        elif dt.itemsize > 4 and t == via32[i]:
            why = "double rounding via float32"
        elif not fmt.signed and xf[i] < 0 and t == absx[i]:
            why = "sign dropped"
        elif not fmt.has_zero and xf[i] == 0 and t == 0:
            why = "zero to min"
        elif is_nan(o) and is_nan(t):
            why = "NaN sign/code"
        elif (np.isnan(xf[i]) or is_nan(o) != is_nan(t)) and _special_pair(fmt, xf[i], vals[o], vals[t]):
            why = "NaN handling"
        elif vals[o] == 0 and vals[t] == 0:
            why = "signed zero"
        elif fmt.man_bits == 0 and np.isfinite(xf[i]) and not np.isnan(vals[t]) and \
                abs(xf[i]) == (abs(vals[o]) + abs(vals[t])) / 2:
            why = "tie with 1-bit precision"
        else:
            why = "unexplained"
        reasons.setdefault(why, []).append((xf[i], o, t))
    return {"n": int(x.size), "diff": int(diff.sum()), "reasons": reasons}


def _special_pair(fmt: Format, x: float, ours: float, theirs: float) -> bool:
    """Whether a NaN disagreement is a convention, not a bug: the input has no finite value in
    the format (NaN, Inf, out of range, or outside an unsigned / zero-less format's domain, where
    fp8emu gives NaN or Inf), and the peer's value is one a convention maps such inputs to (NaN,
    ±Inf, ±max or ±0).  A peer that turns 1.0 into NaN, or an overflow into 16.0, is unexplained.
    """
    special_input = not np.isfinite(x) or np.isnan(ours) or np.isinf(ours)
    special_peer = (np.isnan(theirs) or np.isinf(theirs) or theirs == 0
                    or abs(theirs) == fmt.max or abs(theirs) == fmt.min_subnormal)
    return bool(special_input and special_peer)


_EXPLAIN = {
    "saturates": "the peer clamps overflow to ±max; fp8emu's default is non-saturating (Inf/NaN), "
                 "`saturate=True` matches it",
    "double rounding via float32": "the peer narrows float64 to float32 first; the second rounding "
                                   "breaks ties the exact value does not have",
    "NaN sign/code": "both are NaN; the peer keeps the input's sign or payload, fp8emu gives the canonical code",
    "NaN handling": "one side maps an input without a finite value in the format (NaN, Inf, out of "
                    "range) differently, to NaN, ±Inf, ±max, ±0 or the smallest magnitude",
    "signed zero": "zeros of different sign",
    "sign dropped": "unsigned format: the peer encodes |x| for a negative x, fp8emu gives NaN (invalid)",
    "zero to min": "format without zero: the peer encodes 0 as the smallest value, fp8emu gives NaN (invalid)",
    "tie with 1-bit precision": "exact midpoint between two powers of two in a format without mantissa bits; "
                                "the neighbours differ only in the exponent, so ties-to-even needs a convention",
    "peer refuses": "the peer gives no code: gfloat raises for NaN into a format without NaN, and its "
                    "encoder returns -1 for results e8m0 cannot hold (0)",
    "unexplained": "not explained by the rules above",
}


def _example(fmt: Format, rows: list) -> str:
    x, o, t = rows[0]
    w = (fmt.bits + 3) // 4
    peer = "error" if t < 0 else f"0x{t:0{w}X} ({fmt.decode_code(t)!r})"
    return f"x={x!r}: peer {peer}, fp8emu 0x{o:0{w}X} ({fmt.decode_code(o)!r})"


def crosscheck_report(*, count: int = 20000, seed: int = 0, peers: list[str] | None = None,
                      formats: list[str] | None = None) -> str:
    """The Markdown report: one row per (peer, format, source) with the disagreements by reason.

    Args:
        count: random cases per vector set (on top of the level-1 boundary cases).
        seed: seed of the random cases.
        peers: which peers (default: every installed one).
        formats: which fp8emu presets (default: every preset a peer supports).
    """
    peers = available_peers() if peers is None else peers
    lines = ["# Cross-library report", "",
             "<!-- GENERATED by `fp8emu crosscheck --out docs/results/crosscheck.md`: do not edit by hand. -->", "",
             "Every case is a level-2 test vector (boundary cases ±1 source ulp, Inf, NaN payloads, plus "
             f"{count} seeded random inputs, seed {seed}) converted by the peer's default cast and by "
             "fp8emu's `encode(x, fmt)` (round to nearest even, non-saturating). A disagreement is attributed "
             "to the first explanation that reproduces the peer's code.", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}; "
             + ", ".join(f"{p} {_version(p)}" for p in peers) + ".", "",
             "| peer | format | source | cases | disagree | reasons (count) | example |",
             "|---|---|---|---|---|---|---|"]
    seen_reasons: set[str] = set()
    for peer in peers:
        for name, _ in PEERS[peer].items():
            if formats is not None and name not in formats:
                continue
            fmt = PRESETS[name]
            for source in _SOURCES[peer]:
                if fmt.bits == 16 and source_dtype(source).itemsize <= 2:
                    continue
                vs = generate(fmt, source, level=2, count=count, seed=seed)
                res = compare_peer(peer, fmt, source, vs.inputs)
                reasons = res["reasons"]
                seen_reasons.update(reasons)
                why = "; ".join(f"{k} ({len(v)})" for k, v in sorted(reasons.items(), key=lambda kv: -len(kv[1])))
                ex = ""
                if reasons:
                    key = "unexplained" if "unexplained" in reasons else max(reasons, key=lambda k: len(reasons[k]))
                    ex = _example(fmt, reasons[key])
                lines.append(f"| {peer} | `{name}` | {source} | {res['n']} | {res['diff']} | {why or '–'} | {ex} |")
    lines += ["", "## Reasons", ""]
    for k, text in _EXPLAIN.items():
        lines.append(f"* **{k}**: {text}." + ("" if k in seen_reasons else " (not seen in this run)"))
    return "\n".join(lines) + "\n"
