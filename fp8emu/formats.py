"""The format catalogue: presets under the names everyone already uses, and name parsing.

Add a format by adding one line here.  Import presets explicitly
(``from fp8emu.formats import e5m2``); the package does not star-export them.

Suffixes (LLVM / ml_dtypes convention): none = IEEE-like (Inf and NaNs), ``fn`` = finite
(no Inf; for 8-bit formats NaN at the all-ones code, for the 4/6-bit MX element formats
no NaN at all), ``fnuz`` = finite, no negative zero, one NaN at ``0x80``, ``fnu`` =
finite and unsigned, ``bNN`` = exponent bias NN.
"""

from __future__ import annotations

import re
import warnings

from .format import Format, Specials

__all__ = [
    "e5m2", "e4m3fn", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz", "e4m3", "e3m4", "e2m3fn", "e3m2fn",
    "e2m1fn", "e8m0fnu", "float16", "bfloat16", "ALL_FORMATS", "FP8_FORMATS", "PRESETS",
    "get_format", "make_format",
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

ALL_FORMATS: tuple[Format, ...] = (e5m2, e4m3fn, e4m3fnuz, e5m2fnuz, e4m3b11fnuz, e4m3, e3m4,
                                   e2m3fn, e3m2fn, e2m1fn, e8m0fnu, float16, bfloat16)
FP8_FORMATS: tuple[Format, ...] = tuple(f for f in ALL_FORMATS if f.bits == 8)
PRESETS: dict[str, Format] = {f.name: f for f in ALL_FORMATS}
_ALIASES = {"fp16": "float16", "half": "float16", "f16": "float16", "bf16": "bfloat16",
            "fp8_e5m2": "e5m2", "fp8_e4m3": "e4m3fn", "bf8": "e5m2", "hf8": "e4m3fn",
            "float8_e5m2": "e5m2", "float8_e4m3fn": "e4m3fn", "float8_e4m3fnuz": "e4m3fnuz",
            "float8_e5m2fnuz": "e5m2fnuz", "float8_e4m3b11fnuz": "e4m3b11fnuz", "float8_e4m3": "e4m3",
            "float8_e3m4": "e3m4", "float6_e2m3fn": "e2m3fn", "float6_e3m2fn": "e3m2fn",
            "float4_e2m1fn": "e2m1fn", "float8_e8m0fnu": "e8m0fnu", "mxfp4": "e2m1fn"}
_NAME_RE = re.compile(r"^e(?P<e>\d+)m(?P<m>\d+)(?:b(?P<b>-?\d+))?(?P<suffix>fnuz|fnu|fn)?$")


def make_format(exp_bits: int, man_bits: int, *, bias: int | None = None, subnormals: bool = True,
                specials: Specials | str = Specials.IEEE, signed: bool = True, has_zero: bool = True,
                name: str = "") -> Format:
    """Build a :class:`Format` from keyword fields (deprecated: call ``Format(...)`` directly).

    Args:
        exp_bits, man_bits, bias, subnormals, specials, signed, has_zero, name: the
            :class:`Format` fields of the same names.

    Returns:
        ``Format(exp_bits, man_bits, bias=..., ...)``.
    """
    warnings.warn("fp8emu.formats.make_format is deprecated; use fp8emu.Format(...) with the same arguments",
                  DeprecationWarning, stacklevel=2)
    return Format(exp_bits, man_bits, bias=bias, subnormals=subnormals, specials=Specials(specials),
                  signed=signed, has_zero=has_zero, name=name)


def get_format(fmt: Format | str) -> Format:
    """Return a :class:`Format` for a Format, a preset name, an alias, or a name like ``"e4m3b11fnuz"``.

    Names not in the catalogue are parsed as ``e<w>m<t>[b<bias>][fn|fnuz|fnu]``: no suffix is
    IEEE-like, ``fn`` puts NaN at the all-ones code, ``fnuz`` at ``0x80``, ``fnu`` is unsigned
    and finite.

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
    key = fmt.strip().lower()
    key = _ALIASES.get(key, key)
    if key in PRESETS:
        return PRESETS[key]
    match = _NAME_RE.match(key)
    if match is None:
        raise ValueError(f"unknown format {fmt!r}; presets: {', '.join(PRESETS)}; "
                         "or a name like 'e4m3', 'e5m2fnuz', 'e4m3b11fnuz'")
    suffix = match["suffix"] or ""
    specials = {"": Specials.IEEE, "fn": Specials.FN, "fnuz": Specials.FNUZ, "fnu": Specials.FN}[suffix]
    return Format(int(match["e"]), int(match["m"]), bias=None if match["b"] is None else int(match["b"]),
                  specials=specials, signed=suffix != "fnu", name=key)
