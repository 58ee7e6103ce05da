"""A small float format as data: the `Format` dataclass and the vocabulary around it.

A format is a handful of primary fields (exponent and mantissa widths, bias, whether
subnormals exist, which codes are special, whether there is a sign bit).  Everything
else -- ``max``, ``min_normal``, ``eps``, the NaN code, the value of every code -- is a
derived, finfo-style property.  No code anywhere branches on a format's *name*.

Bit-field symbols follow IEEE 754 / gfloat: ``k`` = :attr:`Format.bits`,
``p`` = precision = ``man_bits + 1``, ``w`` = ``exp_bits``.

Code layout (signed formats; unsigned ones drop the sign bit)::

    bit  k-1 | k-2 ... m | m-1 ... 0
         S   | exponent  | mantissa (fraction, t = p - 1 = man_bits bits)

Value of a code with exponent field ``E`` and mantissa field ``T``:

* ``E > 0`` (or any ``E`` when the format has no zero): ``(-1)^S * 2^(E - bias) * (1 + T / 2^m)``
* ``E == 0`` with subnormals: ``(-1)^S * 2^(1 - bias) * (T / 2^m)``
* ``E == 0`` without subnormals: ``(-1)^S * 0`` (non-zero ``T`` is a non-canonical zero;
  ``+0`` whatever ``S`` in formats without -0, ``fnuz`` and signed ``extended``)
* specials per :class:`Specials`.

A format may have no exponent field at all (``exp_bits = 0``, P3109's signed ``P = K``
formats): every code is then ``E == 0`` with subnormals, ``(-1)^S * 2^(1 - bias) * T / 2^m``.
Likewise the specials may fill every code with ``E >= 1`` (one exponent bit: P3109's
``binary2p2ue`` = {0, 0.5, +Inf, NaN}, or an IEEE-like ``e1m2``): every finite value is then
subnormal, and ``emax = emin - 1``.
Formats of up to 32 bits are allowed; every value is exactly a float32 value (so ``man_bits
<= 23``).  Formats wider than 16 bits are handled arithmetically everywhere (no 2^k table).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["Format", "Specials", "RoundMode", "TieRule", "NanPolicy"]


class Specials(str, enum.Enum):
    """Which codes are Inf/NaN (the LLVM/ml_dtypes suffix convention).

    * ``IEEE``: the all-ones exponent holds +-Inf (mantissa 0) and NaNs (mantissa != 0),
      like IEEE 754 and OCP E5M2.
    * ``FN``: finite; only the all-ones code (exponent and mantissa) is NaN, like OCP E4M3
      (``e4m3fn``) and E8M0 (``e8m0fnu``, where it is the only code of the top binade).
    * ``FNUZ``: finite, one NaN at the negative-zero code (``0x80``), no -0 (Graphcore/AMD).
    * ``NONE``: no Inf and no NaN; every code is a number (OCP MX FP6/FP4 elements).
    * ``EXTENDED``: IEEE P3109's extended layout.  Signed: the single NaN at the
      negative-zero code (``0x80`` for 8 bits, no -0), +Inf at the all-ones magnitude
      (``0x7F``) and -Inf at the all-ones code (``0xFF``).  Unsigned: NaN at the all-ones
      code (``0xFF``), +Inf just below it (``0xFE``).  (P3109's *finite* formats are
      ``FNUZ`` when signed and ``FN`` when unsigned.)
    """

    IEEE = "ieee"
    FN = "fn"
    FNUZ = "fnuz"
    NONE = "none"
    EXTENDED = "extended"


class TieRule(str, enum.Enum):
    """How ``nearest_even`` breaks a tie when the format has no mantissa bits (``man_bits == 0``).

    With ``man_bits == 0`` every non-zero value has significand 1 (odd), so "ties to even"
    needs a rule.  Formats with ``man_bits >= 1`` must use ``UP`` (the field has no effect there).

    * ``UP``: the significand rule applied as for any other format, which rounds a tie
      between two non-zero values up in magnitude (1.5 -> 2, 6 -> 8) and the tie between 0
      and the smallest value to 0.  OCP E8M0 (``e8m0fnu``) and ml_dtypes do this.
    * ``EVEN_EXPONENT``: the tie goes to the neighbour whose code (the biased exponent
      field, zero counting as code 0) is even: IEEE P3109's rule for ``P = 1`` (with
      P3109's even biases 1.5 -> 1, 6 -> 4).
    """

    UP = "up"
    EVEN_EXPONENT = "even_exponent"


class NanPolicy(str, enum.Enum):
    """What ``encode``/``quantize`` do with a NaN input when the format has no NaN code.

    * ``ALLOW``: the NaN becomes the sign-bit-only code (``-0`` in a signed format, like
      ml_dtypes; ``+0`` in an unsigned one): the NaN disappears silently.
    * ``RAISE``: raise ``ValueError`` instead (formats that have a NaN are not affected).
    """

    ALLOW = "allow"
    RAISE = "raise"


class RoundMode(str, enum.Enum):
    """Rounding modes.  Accepts the value string or an alias (see :meth:`parse`)."""

    NEAREST_EVEN = "nearest_even"
    NEAREST_AWAY = "nearest_away"
    TOWARD_ZERO = "toward_zero"
    UP = "up"
    DOWN = "down"
    STOCHASTIC = "stochastic"
    ODD = "odd"

    @classmethod
    def parse(cls, mode: "RoundMode | str") -> "RoundMode":
        """Return the mode for an enum member, value string or alias.

        Raises:
            ValueError: for an unknown name.  ``"nearest"`` is refused on purpose: some
                libraries mean ties-to-even by it, others (microxcaling) ties-away.
        """
        if isinstance(mode, cls):
            return mode
        if isinstance(mode, str):
            key = mode.strip().lower().replace("-", "_")
            if key in _ROUND_ALIASES:
                return cls(_ROUND_ALIASES[key])
            try:
                return cls(key)
            except ValueError:
                pass
            hint = " ('nearest' is ambiguous: say 'nearest_even' or 'nearest_away')" if key == "nearest" else ""
        else:
            hint = ""
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"rounding={mode!r} is not a rounding mode{hint}; allowed: {allowed} "
                         f"(aliases: {', '.join(sorted(_ROUND_ALIASES))})")


def _catalogue() -> tuple:
    """The preset catalogue, looked up lazily (it is built from Formats; while it is being
    built every preset passes its own name)."""
    import sys
    return getattr(sys.modules.get(__package__ + ".formats"), "CATALOGUE", ())


#: Naming grammar: the specials token (see :meth:`Format.grammar_name`).
_SPECIALS_TOKEN = {Specials.IEEE: "", Specials.FN: "fn", Specials.FNUZ: "fnuz", Specials.NONE: "fnnone",
                   Specials.EXTENDED: "ext"}

_ROUND_ALIASES = {
    "rne": "nearest_even", "even": "nearest_even", "rn": "nearest_even", "nearest_ties_to_even": "nearest_even",
    "rna": "nearest_away", "ties_away": "nearest_away", "nearest_ties_away": "nearest_away",
    "rtz": "toward_zero", "trunc": "toward_zero", "truncate": "toward_zero",
    "rtp": "up", "ceil": "up", "toward_positive": "up",
    "rtn": "down", "floor": "down", "toward_negative": "down",
    "sr": "stochastic",
    "rodd": "odd", "round_to_odd": "odd", "to_odd": "odd",
}


@dataclass(frozen=True)
class Format:
    """A binary floating-point format of at most 32 bits.

    Args:
        exp_bits: exponent field width ``w``, 0..8 (0: every code is a subnormal number).
        man_bits: stored mantissa (fraction) width ``t``, 0..23; ``bits`` must stay <= 32.
        bias: exponent bias; ``None`` means the IEEE default ``2^(w-1) - 1`` (0 when ``w = 0``).
        subnormals: whether exponent field 0 encodes subnormal numbers.  Without them the
            representable set is ``{0} U normals`` and rounding is to that set.
        specials: the Inf/NaN convention, a :class:`Specials` or its string value.
        signed: ``False`` drops the sign bit (``e8m0fnu``); negative inputs become NaN.
        has_zero: ``False`` makes exponent field 0 an ordinary normal binade, as in
            E8M0 (whose smallest value is ``2^-127``); requires ``subnormals=False``.
        tie_rule: the ``nearest_even`` tie rule when ``man_bits == 0`` (:class:`TieRule`).
        name: display name; when omitted, the name of the first catalogue preset with the
            same fields, else the name the naming grammar gives (see ``docs/formats.md``),
            which :func:`fp8emu.formats.get_format` parses back to an equal format.  A name
            that is a format name (preset, alias, P3109 or grammar name) of other fields --
            such as the one ``dataclasses.replace(e4m3fn, bias=9)`` carries over -- is
            replaced by that default name, so a format name always denotes its format; any
            other display name (``"mxint8"``) is kept as given.

    Equality and hashing compare the fields, never the name.

    Raises:
        ValueError: when the fields describe no usable format (see the message).
        TypeError: when a field has the wrong type.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    subnormals: bool = True
    specials: Specials = Specials.IEEE
    signed: bool = True
    has_zero: bool = True
    tie_rule: TieRule = TieRule.UP
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for fld in ("exp_bits", "man_bits"):
            val = getattr(self, fld)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
                raise TypeError(f"Format.{fld} must be an int, got {type(val).__name__}")
            object.__setattr__(self, fld, int(val))
        for fld in ("subnormals", "signed", "has_zero"):  # "no" would be truthy: refuse, not guess
            val = getattr(self, fld)
            if not isinstance(val, (bool, np.bool_)):
                raise TypeError(f"Format.{fld} must be a bool, got {type(val).__name__} {val!r}")
            object.__setattr__(self, fld, bool(val))
        if not 0 <= self.exp_bits <= 8:
            raise ValueError(f"Format.exp_bits={self.exp_bits} is out of range: allowed 0..8")
        if not 0 <= self.man_bits <= 23:
            raise ValueError(f"Format.man_bits={self.man_bits} is out of range: allowed 0..23 "
                             "(every value must be a float32 value)")
        for enum_cls, fld in ((Specials, "specials"), (TieRule, "tie_rule")):
            try:
                object.__setattr__(self, fld, enum_cls(getattr(self, fld)))
            except ValueError:
                allowed = ", ".join(repr(s.value) for s in enum_cls)
                raise ValueError(f"Format.{fld}={getattr(self, fld)!r} is unknown; allowed: {allowed}") from None
        default_bias = (1 << (self.exp_bits - 1)) - 1 if self.exp_bits else 0
        bias = default_bias if self.bias is None else self.bias
        if isinstance(bias, bool) or not isinstance(bias, (int, np.integer)):
            raise TypeError(f"Format.bias must be an int or None, got {type(bias).__name__}")
        object.__setattr__(self, "bias", int(bias))
        if self.bits > 32:
            raise ValueError(f"Format e{self.exp_bits}m{self.man_bits} has {self.bits} bits; at most 32 are supported")
        if self.specials is Specials.FNUZ and not self.signed:
            raise ValueError("Format.specials='fnuz' needs a sign bit (its NaN is the negative-zero code)")
        if self.specials is Specials.IEEE and self.man_bits == 0:
            raise ValueError("Format.specials='ieee' needs man_bits >= 1 (with no mantissa there is no NaN code)")
        if not self.has_zero and self.subnormals:
            raise ValueError("Format.has_zero=False needs subnormals=False (exponent field 0 is then a normal binade)")
        if not self.has_zero and self.signed and self.specials in (Specials.FNUZ, Specials.EXTENDED):
            raise ValueError(f"Format.specials={self.specials.value!r} puts NaN at the negative-zero code, "
                             "which needs has_zero=True")
        if self.tie_rule is not TieRule.UP and self.man_bits != 0:
            raise ValueError(f"Format.tie_rule={self.tie_rule.value!r} applies only to man_bits=0 "
                             f"(got man_bits={self.man_bits}); use 'up'")
        if self.exp_bits == 0:
            if self.specials is Specials.IEEE or not (self.subnormals and self.has_zero):
                raise ValueError("Format.exp_bits=0 needs subnormals=True, has_zero=True and specials other "
                                 "than 'ieee' (every code is a subnormal number)")
        elif self.emax < self.emin and not (self.subnormals and self.has_zero):
            # Specials fill every code of exponent field >= 1 (IEEE e1m2; P3109's binary2p2ue,
            # e1m1 with +Inf and NaN): the finite values are exponent field 0's, which must
            # then be subnormal numbers (like exp_bits = 0), not zeros only.
            raise ValueError(f"Format e{self.exp_bits}m{self.man_bits} with specials={self.specials.value!r} "
                             "has no finite normal binade, and without subnormals (and a zero) exponent "
                             "field 0 holds no other values")
        if self.max_code < 1:
            raise ValueError(f"Format e{self.exp_bits}m{self.man_bits} with specials={self.specials.value!r} has "
                             "fewer than two finite magnitudes")
        # Every value must be exactly representable in float32 (decode's default dtype): its
        # top binade and its smallest quantum.
        if self.emax > 127 or self.emin - self.man_bits < -149:
            raise ValueError(f"Format.bias={self.bias} puts values outside float32's range "
                             f"(exponents {self.emin - self.man_bits}..{self.emax}; float32 allows -149..127)")
        if not isinstance(self.name, str):
            raise TypeError(f"Format.name must be a str, got {type(self.name).__name__}")
        if not self.name or self._name_denotes_other_fields():
            object.__setattr__(self, "name", self._default_name())

    def __hash__(self) -> int:
        # Computed once: the dataclass's own hash built a tuple of the eight fields on each
        # call (0.27 us; every encode/quantize/decode call looks its plan up by format).  Ints
        # only (the enums by position, not by their str hash, which differs between
        # processes), as the cached value travels with a pickled format.
        try:
            return self.__dict__["_hash"]
        except KeyError:
            h = hash((self.exp_bits, self.man_bits, self.bias, self.subnormals, list(Specials).index(self.specials),
                      self.signed, self.has_zero, list(TieRule).index(self.tie_rule)))
            object.__setattr__(self, "_hash", h)
            return h

    # ---- naming ---------------------------------------------------------------------
    def _name_denotes_other_fields(self) -> bool:
        """Whether the given name is a format name (preset, alias, P3109 or grammar name) of
        other fields, or of fields no format holds, like the name ``dataclasses.replace``
        carries over (``replace(e4m3fn, bias=9)`` would be called ``e4m3fn``).  A display
        name that is no format name (``"mxint8"``) denotes nothing and is kept."""
        import sys
        fields_of_name = getattr(sys.modules.get(__package__ + ".formats"), "_fields_of_name", None)
        if fields_of_name is None:      # the catalogue is being built: a preset's name is its own
            return False
        try:
            named = fields_of_name(self.name)
        except ValueError:              # a format name, but of no valid format ("e9m3")
            return True
        return named is not None and named != self

    def _default_name(self) -> str:
        for preset in _catalogue():
            if preset == self:
                return preset.name
        return self.grammar_name()

    def grammar_name(self) -> str:
        """The name the naming grammar gives these fields (presets aside).

        ``e<w>m<t>[b<bias>]<specials>[u][_nosub|_nozero][_evenexp]`` with specials ``""``
        (ieee), ``fn``, ``fnuz``, ``fnnone`` (none) or ``ext`` (extended).  The bias is written
        when it is not the default, or when the name without it is a preset's name (a preset
        may have other fields: ``e4m3fnuz`` is the bias-8 preset, so the bias-7 format is
        ``e4m3b7fnuz``).
        """
        tail = _SPECIALS_TOKEN[self.specials] + ("" if self.signed else "u")
        if not self.has_zero:
            tail += "_nozero"
        elif not self.subnormals:
            tail += "_nosub"
        if self.tie_rule is TieRule.EVEN_EXPONENT:
            tail += "_evenexp"
        default_bias = (1 << (self.exp_bits - 1)) - 1 if self.exp_bits else 0
        short = f"e{self.exp_bits}m{self.man_bits}{tail}"
        if self.bias == default_bias and all(p.name != short for p in _catalogue()):
            return short
        return f"e{self.exp_bits}m{self.man_bits}b{self.bias}{tail}"

    def __str__(self) -> str:
        return self.name

    # ---- widths -----------------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Total storage width ``k``."""
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def num_codes(self) -> int:
        """``2^bits``: the number of codes (bit patterns), NaN codes included."""
        return 1 << self.bits

    @property
    def precision(self) -> int:
        """``p``: significand bits including the implicit one."""
        return self.man_bits + 1

    @property
    def sign_mask(self) -> int:
        """The sign bit of a code (0 for unsigned formats)."""
        return (1 << (self.bits - 1)) if self.signed else 0

    @property
    def code_dtype(self) -> np.dtype:
        """The smallest of uint8, uint16, uint32 that holds a code."""
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16 if self.bits <= 16 else np.uint32)

    # ---- exponent range ------------------------------------------------------------------
    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias if self.has_zero else -self.bias

    @property
    def _top_specials(self) -> int:
        """How many magnitude codes at the top (all-ones end) are Inf/NaN."""
        if self.specials is Specials.IEEE:
            return 1 << self.man_bits                   # the whole all-ones exponent binade
        if self.specials is Specials.FN:
            return 1                                    # NaN at the all-ones code
        if self.specials is Specials.EXTENDED:
            return 1 if self.signed else 2             # +Inf (signed); +Inf and NaN (unsigned)
        return 0

    @property
    def top_exp_field(self) -> int:
        """Largest exponent field that holds finite numbers."""
        return self.max_code >> self.man_bits

    @property
    def emax(self) -> int:
        """Exponent of the largest finite binade (``emin - 1`` when every finite value is
        subnormal, below ``2^emin``: ``exp_bits == 0``, or specials fill exponent fields >= 1)."""
        return self.top_exp_field - self.bias

    @property
    def max_mantissa(self) -> int:
        """Largest mantissa field of the top finite binade."""
        return self.max_code & ((1 << self.man_bits) - 1)

    @property
    def min_subnormal_exp(self) -> int:
        """Exponent of the smallest positive value (the subnormal quantum when subnormals exist)."""
        return self.emin - self.man_bits if self.subnormals else self.emin

    # ---- finfo-style values ----------------------------------------------------------------
    @property
    def max(self) -> float:
        """Largest finite value."""
        if self.top_exp_field == 0 and self.has_zero:     # every finite value is subnormal
            return math.ldexp(self.max_mantissa, self.emin - self.man_bits)
        return math.ldexp(1.0 + self.max_mantissa / (1 << self.man_bits), self.emax)

    @property
    def max_ulp_exp(self) -> int:
        """Exponent of the spacing of the values just below ``max`` (the top quantum)."""
        return max(self.emax, self.emin) - self.man_bits

    @property
    def min_normal(self) -> float:
        """``2^emin``: the smallest positive normal value, when the format has normal values.

        A format whose finite values are all subnormal (``exp_bits == 0``, like P3109's
        ``binary8p8se``, or every finite code in exponent field 0, like ``p3109(2, 2,
        signed=False)``) has none; ``2^emin`` is then the first value above the range, larger
        than :attr:`max` (the gfloat / ``numpy.finfo`` convention: ``emin`` from the bias
        alone).  Without a zero (``has_zero=False``) it is the smallest positive value.
        """
        return math.ldexp(1.0, self.emin)

    smallest_normal = min_normal

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (equal to ``min_normal`` without subnormals)."""
        return math.ldexp(1.0, self.min_subnormal_exp)

    @property
    def eps(self) -> float:
        """``2^-man_bits``: the spacing of normal values in the binade ``[1, 2)``, relative to 1.

        The gfloat / ``numpy.finfo`` convention, from ``man_bits`` alone.  It is the distance
        from 1.0 to the next larger value only when 1.0 and ``1 + eps`` are both normal values
        of the format (``emin <= 0`` and ``1 + eps <= max``).  Where 1.0 is subnormal
        (``emin > 0``: ``binary8p8se``, whose gap above 1.0 is ``2^-6`` while ``eps`` is
        ``2^-7``) or not a value at all, the gap above 1.0 is larger or absent.
        """
        return math.ldexp(1.0, -self.man_bits)

    @property
    def has_inf(self) -> bool:
        """Whether the format has +-Inf."""
        return self.specials in (Specials.IEEE, Specials.EXTENDED)

    @property
    def has_nan(self) -> bool:
        """Whether the format has NaN codes."""
        return self.specials is not Specials.NONE

    @property
    def has_negative_zero(self) -> bool:
        """Whether -0 is a code of its own (not in unsigned, ``fnuz`` or zero-less formats)."""
        return self.signed and self.has_zero and self.specials not in (Specials.FNUZ, Specials.EXTENDED)

    # ---- special codes -------------------------------------------------------------------------
    @property
    def max_code(self) -> int:
        """Code of ``+max``."""
        return (1 << (self.exp_bits + self.man_bits)) - 1 - self._top_specials

    @property
    def inf_code(self) -> int | None:
        """Code of ``+Inf`` (None if the format has no Inf)."""
        if not self.has_inf:
            return None
        if self.specials is Specials.EXTENDED:
            return self.max_code + 1
        return ((1 << self.exp_bits) - 1) << self.man_bits

    @property
    def nan_code(self) -> int | None:
        """The canonical NaN code every NaN input encodes to (None if the format has no NaN).

        IEEE: positive quiet NaN (top mantissa bit set); FN and unsigned EXTENDED: the
        positive all-ones code; FNUZ and signed EXTENDED: ``0x80`` (the negative-zero code).
        """
        if self.specials is Specials.IEEE:
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials is Specials.FN or (self.specials is Specials.EXTENDED and not self.signed):
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials in (Specials.FNUZ, Specials.EXTENDED):
            return self.sign_mask
        return None

    def is_nan_code(self, code: int) -> bool:
        """Whether ``code`` is a NaN of this format.

        Args:
            code: a code (bit pattern) as an int.
        """
        mag = code & ~self.sign_mask & (self.num_codes - 1)
        if self.specials is Specials.IEEE:
            return (mag >> self.man_bits) == (1 << self.exp_bits) - 1 and (mag & ((1 << self.man_bits) - 1)) != 0
        if self.specials is Specials.FN or (self.specials is Specials.EXTENDED and not self.signed):
            return mag == (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials in (Specials.FNUZ, Specials.EXTENDED):
            return code == self.sign_mask
        return False

    def is_inf_code(self, code: int) -> bool:
        """Whether ``code`` is +Inf or -Inf.

        Args:
            code: a code (bit pattern) as an int.
        """
        return self.has_inf and (code & ~self.sign_mask & (self.num_codes - 1)) == self.inf_code

    # ---- decoding (exact, slow; the kernels build their tables from this) ---------------------
    def decode_code(self, code: int) -> float:
        """Exact value of one code as a Python float (NaN for NaN codes).

        Args:
            code: a code (bit pattern) as an int.

        Raises:
            ValueError: when ``code`` is outside ``0 .. num_codes - 1``.
        """
        code = int(code)
        if not 0 <= code < self.num_codes:
            raise ValueError(f"code {code} is out of range for {self.name} (0..{self.num_codes - 1})")
        if self.is_nan_code(code):
            return math.nan
        sign = -1.0 if code & self.sign_mask else 1.0
        mag = code & ~self.sign_mask
        e_field = mag >> self.man_bits
        t = mag & ((1 << self.man_bits) - 1)
        if self.is_inf_code(code):
            return sign * math.inf
        if e_field == 0 and self.has_zero:
            if not self.subnormals:
                # a (non-canonical, when t != 0) zero: -0 only where the format has a -0;
                # fnuz and signed extended formats read the sign-set ones as +0
                return sign * 0.0 if self.has_negative_zero else 0.0
            return sign * math.ldexp(t, self.emin - self.man_bits)
        return sign * math.ldexp((1 << self.man_bits) | t, e_field - self.bias - self.man_bits)

    @cached_property
    def _values(self) -> np.ndarray:
        if self.bits > 16:
            raise ValueError(f"{self.name} has {self.bits} bits: a table of all {self.num_codes} values is not "
                             "built for formats wider than 16 bits (decode codes with fp8emu.decode instead)")
        vals = np.array([self.decode_code(c) for c in range(self.num_codes)], dtype=np.float64)
        vals.setflags(write=False)
        return vals

    def values(self) -> np.ndarray:
        """All codes decoded, indexed by code (float64, read-only; NaN for NaN codes).

        Raises:
            ValueError: for formats wider than 16 bits (the table would have up to 2^32 entries).
        """
        return self._values

    def finite_values(self) -> np.ndarray:
        """The sorted distinct finite values (a signed zero appears once, as +0).

        Raises:
            ValueError: for formats wider than 16 bits.
        """
        v = self._values
        return np.unique(v[np.isfinite(v)] + 0.0)

    def describe(self) -> dict:
        """A row for tables: fields and derived properties."""
        return {
            "name": self.name, "bits": self.bits, "exp_bits": self.exp_bits, "man_bits": self.man_bits,
            "bias": self.bias, "signed": self.signed, "subnormals": self.subnormals,
            "specials": self.specials.value, "has_zero": self.has_zero, "tie_rule": self.tie_rule.value, "max": self.max, "min_normal": self.min_normal,
            "min_subnormal": self.min_subnormal, "eps": self.eps, "emin": self.emin, "emax": self.emax,
            "inf_code": self.inf_code, "nan_code": self.nan_code, "negative_zero": self.has_negative_zero,
        }
