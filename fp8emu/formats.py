"""The format catalogue: presets under the names everyone already uses, and name parsing.

Add a format by adding one line here.  Import presets explicitly
(``from fp8emu.formats import e5m2``); the package does not star-export them.

Preset names follow the LLVM / ml_dtypes convention (``e4m3fn``, ``e5m2fnuz``, ``e8m0fnu``;
the MX element presets ``e2m1fn``, ``e2m3fn``, ``e3m2fn`` have no NaN at all) and IEEE P3109's
(``binary8p3se``: K = 8 bits, precision P = 3, signed, extended).  Any other format is named
by the naming grammar of :meth:`Format.grammar_name` (documented in ``docs/formats.md``),
which :func:`get_format` parses: ``get_format(f.name) == f`` for every valid format.
"""

from __future__ import annotations

import re
import warnings

from .format import Format, Specials, TieRule

__all__ = [
    "e5m2", "e4m3fn", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz", "e4m3", "e3m4", "e2m3fn", "e3m2fn",
    "e2m1fn", "e8m0fnu", "float16", "bfloat16", "tf32", "e8m13", "float32", "ALL_FORMATS", "WIDE_FORMATS", "FP8_FORMATS",
    "P3109_FORMATS", "CATALOGUE", "PRESETS", "get_format", "make_format", "p3109",
]

# The seed paper's 1-5-2 (Mellempudi et al. 2019) is OCP E5M2.
e5m2 = Format(5, 2, name="e5m2")
e4m3fn = Format(4, 3, specials=Specials.FN, name="e4m3fn")
e4m3fnuz = Format(4, 3, bias=8, specials=Specials.FNUZ, name="e4m3fnuz")
e5m2fnuz = Format(5, 2, bias=16, specials=Specials.FNUZ, name="e5m2fnuz")
e4m3b11fnuz = Format(4, 3, bias=11, specials=Specials.FNUZ, name="e4m3b11fnuz")
e4m3 = Format(4, 3, name="e4m3")  # IEEE-like, max 240 (ml_dtypes float8_e4m3)
e3m4 = Format(3, 4, name="e3m4")  # IEEE-like, max 15.5 (ml_dtypes float8_e3m4)
e2m3fn = Format(2, 3, specials=Specials.NONE, name="e2m3fn")  # MX FP6
e3m2fn = Format(3, 2, specials=Specials.NONE, name="e3m2fn")  # MX FP6
e2m1fn = Format(2, 1, specials=Specials.NONE, name="e2m1fn")  # MX FP4
e8m0fnu = Format(8, 0, bias=127, subnormals=False, specials=Specials.FN, signed=False, has_zero=False,
                 name="e8m0fnu")  # MX shared scale: 2^-127 .. 2^127, 0xFF = NaN, no zero
float16 = Format(5, 10, name="float16")
bfloat16 = Format(8, 7, name="bfloat16")
tf32 = Format(8, 10, name="tf32")        # NVIDIA TensorFloat-32: float32's range, 10 mantissa bits
e8m13 = Format(8, 13, name="e8m13")      # "FP22": a tensor-core accumulator width
float32 = Format(8, 23, name="float32")  # quantize(float32 array, float32) is x, NaNs canonicalised


def p3109(k: int, p: int, signed: bool = True, extended: bool = True) -> Format:
    """The IEEE P3109 interim report's format ``binary{k}p{p}`` with its own rules.

    Bias ``floor(2^(k - p - 1))`` (signed) or ``2^(k - p)`` (unsigned); subnormals; no
    negative zero.  Signed finite: the single NaN at the negative-zero code (``fnuz``);
    signed extended: also +-Inf at the two all-ones magnitudes (``Specials.EXTENDED``);
    unsigned finite: NaN at the all-ones code (``fn``); unsigned extended: +Inf just below
    it.  ``P = 1`` breaks ``nearest_even`` ties to the even exponent code
    (``TieRule.EVEN_EXPONENT``); signed ``P = K`` formats have no exponent field.

    Args:
        k: width in bits, 2..32 (the report defines 3..15; what fits a :class:`Format` works).
        p: precision (significand bits including the implicit one), 1..k (1..k-1 when unsigned... see Raises).
        signed: with a sign bit.
        extended: with Inf (the report's "extended" domain) or finite.

    Returns:
        The format, named ``binary{k}p{p}{s|u}{e|f}`` unless a preset has the same fields.

    Raises:
        ValueError: for ``k``/``p`` outside the ranges above or fields no Format can hold: an
            exponent field wider than 8 bits (unsigned ``k - p > 8``...), or a single finite
            magnitude (signed extended ``k = 2``: 0, +-Inf and NaN only).
    """
    fmt = Format(**_p3109_fields(k, p, signed, extended),
                 name=f"binary{k}p{p}{'s' if signed else 'u'}{'e' if extended else 'f'}")
    # The same fields as an earlier preset: that preset (and its name), as for every Format.
    earlier = globals().get("CATALOGUE", ALL_FORMATS + WIDE_FORMATS)
    return next((f for f in earlier if f == fmt), fmt)


def _p3109_fields(k: int, p: int, signed: bool, extended: bool) -> dict:
    """The :class:`Format` fields of :func:`p3109` (arguments checked there), without a name."""
    for label, val in (("k", k), ("p", p)):
        if isinstance(val, bool) or not isinstance(val, int):
            raise TypeError(f"p3109(): {label} must be an int, got {type(val).__name__}")
    for label, val in (("signed", signed), ("extended", extended)):
        if not isinstance(val, bool):
            raise TypeError(f"p3109(): {label} must be a bool, got {type(val).__name__}")
    if not (2 <= k <= 32 and 1 <= p <= k):
        raise ValueError(f"p3109(k={k}, p={p}): need 2 <= k <= 32 and 1 <= p <= k")
    man_bits = p - 1
    if extended:
        specials = Specials.EXTENDED
    else:
        specials = Specials.FNUZ if signed else Specials.FN
    return dict(exp_bits=k - man_bits - int(signed), man_bits=man_bits,
                bias=(1 << (k - p - 1) if k - p - 1 >= 0 else 0) if signed else 1 << (k - p),
                specials=specials, signed=signed, tie_rule=TieRule.EVEN_EXPONENT if man_bits == 0 else TieRule.UP)


#: The presets of at most 16 bits (each has a table of all its values, ``Format.values()``).
ALL_FORMATS: tuple[Format, ...] = (e5m2, e4m3fn, e4m3fnuz, e5m2fnuz, e4m3b11fnuz, e4m3, e3m4,
                                   e2m3fn, e3m2fn, e2m1fn, e8m0fnu, float16, bfloat16)
#: The presets wider than 16 bits (handled arithmetically, no value table).
WIDE_FORMATS: tuple[Format, ...] = (tf32, e8m13, float32)
FP8_FORMATS: tuple[Format, ...] = tuple(f for f in ALL_FORMATS if f.bits == 8)
#: The 32 binary8 formats of the P3109 interim report (p = 1..8, signed/unsigned, extended/finite).
#: (``binary8p4sf`` and ``binary8p3sf`` are the presets ``e4m3fnuz`` and ``e5m2fnuz``.)
_P3109_PRESETS: dict[str, Format] = {f"binary8p{p}{'s' if s else 'u'}{'e' if e else 'f'}": p3109(8, p, s, e)
                                     for p in range(1, 9) for s in (True, False) for e in (True, False)}
P3109_FORMATS: tuple[Format, ...] = tuple(_P3109_PRESETS.values())
#: Every preset, in catalogue order: a format's default name is the first preset with its fields.
CATALOGUE: tuple[Format, ...] = ALL_FORMATS + WIDE_FORMATS + tuple(f for f in P3109_FORMATS if f not in ALL_FORMATS)
PRESETS: dict[str, Format] = {f.name: f for f in CATALOGUE} | _P3109_PRESETS
_ALIASES = {"fp16": "float16", "half": "float16", "f16": "float16", "bf16": "bfloat16",
            "fp8_e5m2": "e5m2", "fp8_e4m3": "e4m3fn", "bf8": "e5m2", "hf8": "e4m3fn",
            "float8_e5m2": "e5m2", "float8_e4m3fn": "e4m3fn", "float8_e4m3fnuz": "e4m3fnuz",
            "float8_e5m2fnuz": "e5m2fnuz", "float8_e4m3b11fnuz": "e4m3b11fnuz", "float8_e4m3": "e4m3",
            "float8_e3m4": "e3m4", "float6_e2m3fn": "e2m3fn", "float6_e3m2fn": "e3m2fn",
            "float4_e2m1fn": "e2m1fn", "float8_e8m0fnu": "e8m0fnu", "mxfp4": "e2m1fn"}
_NAME_RE = re.compile(r"^e(?P<e>\d+)m(?P<m>\d+)(?:b(?P<b>-?\d+))?(?P<sp>fnuz|fnnone|fn|ext|)(?P<u>u?)"
                      r"(?P<flags>(?:_nosub|_nozero|_evenexp)*)$")
_P3109_RE = re.compile(r"^binary(?P<k>\d+)p(?P<p>\d+)(?P<s>[su])(?P<d>[ef])$")
_SPECIALS_OF_TOKEN = {"": Specials.IEEE, "fn": Specials.FN, "fnuz": Specials.FNUZ, "fnnone": Specials.NONE,
                      "ext": Specials.EXTENDED}


def make_format(exp_bits: int, man_bits: int, *, bias: int | None = None, subnormals: bool = True,
                specials: Specials | str = Specials.IEEE, signed: bool = True, has_zero: bool = True,
                tie_rule: TieRule | str = TieRule.UP, name: str = "") -> Format:
    """Build a :class:`Format` from keyword fields (deprecated: call ``Format(...)`` directly).

    Args:
        exp_bits, man_bits, bias, subnormals, specials, signed, has_zero, tie_rule, name: the
            :class:`Format` fields of the same names.

    Returns:
        ``Format(exp_bits, man_bits, bias=..., ...)``.
    """
    warnings.warn("fp8emu.formats.make_format is deprecated; use fp8emu.Format(...) with the same arguments",
                  DeprecationWarning, stacklevel=2)
    return Format(exp_bits, man_bits, bias=bias, subnormals=subnormals, specials=Specials(specials),
                  signed=signed, has_zero=has_zero, tie_rule=tie_rule, name=name)


def get_format(fmt: Format | str) -> Format:
    """Return a :class:`Format` for a Format, a preset name, an alias, or a grammar name.

    Preset names win.  Other names are parsed by the naming grammar
    ``e<w>m<t>[b<bias>]<specials>[u][_nosub|_nozero][_evenexp]`` (specials: nothing = IEEE-like,
    ``fn`` = NaN at the all-ones code, ``fnuz`` = NaN at ``0x80``, ``fnnone`` = no Inf and no
    NaN, ``ext`` = P3109 extended; ``u`` = unsigned; see ``docs/formats.md``) or as a P3109
    name ``binary<k>p<p><s|u><e|f>``.

    Args:
        fmt: a Format (returned as it is) or a name.

    Raises:
        ValueError: unknown or malformed name, or fields that describe no format.
        TypeError: ``fmt`` is neither a Format nor a str.
    """
    if isinstance(fmt, Format):
        return fmt
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a Format or a format name, got {type(fmt).__name__}")
    kind, what = _parse_name(fmt)
    if kind == "preset":
        return what
    if kind == "p3109":
        return p3109(*what)
    if kind == "grammar":
        return Format(**what)
    raise ValueError(f"unknown format {fmt!r}; presets: {', '.join(PRESETS)}; or a name like "
                     "'e4m3', 'e5m2fnuz', 'e4m3b11fnuz', 'e3m2fnnone', 'e8m0fnu_nozero', 'binary6p3sf' "
                     "(grammar: e<w>m<t>[b<bias>][fn|fnuz|fnnone|ext][u][_nosub|_nozero][_evenexp])")


def _parse_name(name: str) -> tuple[str, object]:
    """What a name says, without building a named Format: ``("preset", the preset)`` for a
    preset name or alias, ``("p3109", (k, p, signed, extended))``, ``("grammar", Format
    keyword fields)``, or ``("", None)`` for a name that is no format name (a display name)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in PRESETS:
        return "preset", PRESETS[key]
    match = _P3109_RE.match(key)
    if match is not None:
        return "p3109", (int(match["k"]), int(match["p"]), match["s"] == "s", match["d"] == "e")
    match = _NAME_RE.match(key)
    if match is None:
        return "", None
    flags = match["flags"]
    no_zero = "_nozero" in flags
    return "grammar", dict(exp_bits=int(match["e"]), man_bits=int(match["m"]),
                           bias=None if match["b"] is None else int(match["b"]),
                           subnormals=not (no_zero or "_nosub" in flags), specials=_SPECIALS_OF_TOKEN[match["sp"]],
                           signed=not match["u"], has_zero=not no_zero,
                           tie_rule=TieRule.EVEN_EXPONENT if "_evenexp" in flags else TieRule.UP)


def _fields_of_name(name: str) -> Format | None:
    """The format (fields only; its name is its default one) that ``name`` denotes, or None
    for a name that is no format name.  :class:`Format` checks a given name with it.

    Defined last in this module: :class:`Format` checks names only once it exists, after the
    catalogue is built (a preset's name is its own: ``e4m3fnuz`` read by the grammar alone
    would be the bias-7 format).

    Raises:
        ValueError: for a format name whose fields describe no format (``e9m3``).
    """
    kind, what = _parse_name(name)
    if kind == "preset":
        return what
    if kind == "p3109":
        return Format(**_p3109_fields(*what))     # not p3109(): that passes a name, checked here
    if kind == "grammar":
        return Format(**what)
    return None
