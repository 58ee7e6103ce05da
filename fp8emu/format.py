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
* ``E == 0`` without subnormals: ``(-1)^S * 0`` (non-zero ``T`` is a non-canonical zero)
* specials per :class:`Specials`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["Format", "Specials", "RoundMode"]


class Specials(str, enum.Enum):
    """Which codes are Inf/NaN (the LLVM/ml_dtypes suffix convention).

    * ``IEEE``: the all-ones exponent holds +-Inf (mantissa 0) and NaNs (mantissa != 0),
      like IEEE 754 and OCP E5M2.
    * ``FN``: finite; only the all-ones code (exponent and mantissa) is NaN, like OCP E4M3
      (``e4m3fn``) and E8M0 (``e8m0fnu``, where it is the only code of the top binade).
    * ``FNUZ``: finite, one NaN at the negative-zero code (``0x80``), no -0 (Graphcore/AMD).
    * ``NONE``: no Inf and no NaN; every code is a number (OCP MX FP6/FP4 elements).
    """

    IEEE = "ieee"
    FN = "fn"
    FNUZ = "fnuz"
    NONE = "none"


class RoundMode(str, enum.Enum):
    """Rounding modes.  Accepts the value string or an alias (see :meth:`parse`)."""

    NEAREST_EVEN = "nearest_even"
    NEAREST_AWAY = "nearest_away"
    TOWARD_ZERO = "toward_zero"
    UP = "up"
    DOWN = "down"
    STOCHASTIC = "stochastic"

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


_ROUND_ALIASES = {
    "rne": "nearest_even", "even": "nearest_even", "rn": "nearest_even", "nearest_ties_to_even": "nearest_even",
    "rna": "nearest_away", "ties_away": "nearest_away", "nearest_ties_away": "nearest_away",
    "rtz": "toward_zero", "trunc": "toward_zero", "truncate": "toward_zero",
    "rtp": "up", "ceil": "up", "toward_positive": "up",
    "rtn": "down", "floor": "down", "toward_negative": "down",
    "sr": "stochastic",
}


@dataclass(frozen=True)
class Format:
    """A binary floating-point format of at most 16 bits.

    Args:
        exp_bits: exponent field width ``w``, 1..8.
        man_bits: stored mantissa (fraction) width ``t``, 0..15; ``bits`` must stay <= 16.
        bias: exponent bias; ``None`` means the IEEE default ``2^(w-1) - 1``.
        subnormals: whether exponent field 0 encodes subnormal numbers.  Without them the
            representable set is ``{0} U normals`` and rounding is to that set.
        specials: the Inf/NaN convention, a :class:`Specials` or its string value.
        signed: ``False`` drops the sign bit (``e8m0fnu``); negative inputs become NaN.
        has_zero: ``False`` makes exponent field 0 an ordinary normal binade, as in
            E8M0 (whose smallest value is ``2^-127``); requires ``subnormals=False``.
        name: display name; derived from the fields when omitted.

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
        if not 1 <= self.exp_bits <= 8:
            raise ValueError(f"Format.exp_bits={self.exp_bits} is out of range: allowed 1..8")
        if self.man_bits < 0:
            raise ValueError(f"Format.man_bits={self.man_bits} must be >= 0")
        try:
            object.__setattr__(self, "specials", Specials(self.specials))
        except ValueError:
            allowed = ", ".join(repr(s.value) for s in Specials)
            raise ValueError(f"Format.specials={self.specials!r} is unknown; allowed: {allowed}") from None
        bias = (1 << (self.exp_bits - 1)) - 1 if self.bias is None else self.bias
        if isinstance(bias, bool) or not isinstance(bias, (int, np.integer)):
            raise TypeError(f"Format.bias must be an int or None, got {type(bias).__name__}")
        object.__setattr__(self, "bias", int(bias))
        if self.bits > 16:
            raise ValueError(f"Format e{self.exp_bits}m{self.man_bits} has {self.bits} bits; at most 16 are supported")
        if self.specials is Specials.FNUZ and not self.signed:
            raise ValueError("Format.specials='fnuz' needs a sign bit (its NaN is the negative-zero code)")
        if self.specials is Specials.IEEE and self.man_bits == 0:
            raise ValueError("Format.specials='ieee' needs man_bits >= 1 (with no mantissa there is no NaN code)")
        if not self.has_zero and self.subnormals:
            raise ValueError("Format.has_zero=False needs subnormals=False (exponent field 0 is then a normal binade)")
        if self.emax < self.emin:
            raise ValueError(f"Format e{self.exp_bits}m{self.man_bits} with specials={self.specials.value!r} "
                             "has no finite normal binade")
        # Every value must be exactly representable in float32 (decode's default dtype).
        if self.emax > 127 or self.min_subnormal_exp < -149:
            raise ValueError(f"Format.bias={self.bias} puts values outside float32's range "
                             f"(exponents {self.min_subnormal_exp}..{self.emax}; float32 allows -149..127)")
        if not self.name:
            object.__setattr__(self, "name", self._default_name())

    # ---- naming ---------------------------------------------------------------------
    def _default_name(self) -> str:
        base = f"e{self.exp_bits}m{self.man_bits}"
        if self.bias != (1 << (self.exp_bits - 1)) - 1:
            base += f"b{self.bias}"
        suffix = {Specials.IEEE: "", Specials.FN: "fn", Specials.FNUZ: "fnuz", Specials.NONE: "fn"}[self.specials]
        if not self.signed:
            suffix = (suffix or "f") + "u" if suffix != "fnuz" else suffix
        if not self.subnormals and self.has_zero:
            suffix += "_nosub"
        return base + suffix

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
        """uint8 for formats of at most 8 bits, else uint16."""
        return np.dtype(np.uint8) if self.bits <= 8 else np.dtype(np.uint16)

    # ---- exponent range ------------------------------------------------------------------
    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias if self.has_zero else -self.bias

    @property
    def top_exp_field(self) -> int:
        """Largest exponent field that holds finite numbers."""
        all_ones = (1 << self.exp_bits) - 1
        if self.specials is Specials.IEEE or (self.specials is Specials.FN and self.man_bits == 0):
            return all_ones - 1
        return all_ones

    @property
    def emax(self) -> int:
        """Exponent of the largest finite binade."""
        return self.top_exp_field - self.bias

    @property
    def max_mantissa(self) -> int:
        """Largest mantissa field of the top finite binade."""
        full = (1 << self.man_bits) - 1
        if self.specials is Specials.FN and self.man_bits > 0:
            return full - 1  # the all-ones code is NaN
        return full

    @property
    def min_subnormal_exp(self) -> int:
        """Exponent of the smallest positive value (the subnormal quantum when subnormals exist)."""
        return self.emin - self.man_bits if self.subnormals else self.emin

    # ---- finfo-style values ----------------------------------------------------------------
    @property
    def max(self) -> float:
        """Largest finite value."""
        return math.ldexp(1.0 + self.max_mantissa / (1 << self.man_bits), self.emax)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value, ``2^emin``."""
        return math.ldexp(1.0, self.emin)

    smallest_normal = min_normal

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (equal to ``min_normal`` without subnormals)."""
        return math.ldexp(1.0, self.min_subnormal_exp)

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger value, ``2^-man_bits``."""
        return math.ldexp(1.0, -self.man_bits)

    @property
    def has_inf(self) -> bool:
        """Whether the format has +-Inf."""
        return self.specials is Specials.IEEE

    @property
    def has_nan(self) -> bool:
        """Whether the format has NaN codes."""
        return self.specials is not Specials.NONE

    @property
    def has_negative_zero(self) -> bool:
        """Whether -0 is a code of its own (not in unsigned, ``fnuz`` or zero-less formats)."""
        return self.signed and self.has_zero and self.specials is not Specials.FNUZ

    # ---- special codes -------------------------------------------------------------------------
    @property
    def max_code(self) -> int:
        """Code of ``+max``."""
        return (self.top_exp_field << self.man_bits) | self.max_mantissa

    @property
    def inf_code(self) -> int | None:
        """Code of ``+Inf`` (None if the format has no Inf)."""
        if not self.has_inf:
            return None
        return ((1 << self.exp_bits) - 1) << self.man_bits

    @property
    def nan_code(self) -> int | None:
        """The canonical NaN code every NaN input encodes to (None if the format has no NaN).

        IEEE: positive quiet NaN (top mantissa bit set); FN: the positive all-ones code;
        FNUZ: ``0x80`` (the negative-zero code).
        """
        if self.specials is Specials.IEEE:
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials is Specials.FN:
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials is Specials.FNUZ:
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
        if self.specials is Specials.FN:
            return mag == (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials is Specials.FNUZ:
            return code == self.sign_mask
        return False

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
        if self.specials is Specials.IEEE and e_field == (1 << self.exp_bits) - 1:
            return sign * math.inf
        if e_field == 0 and self.has_zero:
            if not self.subnormals:
                return sign * 0.0
            return sign * math.ldexp(t, self.emin - self.man_bits)
        return sign * math.ldexp((1 << self.man_bits) | t, e_field - self.bias - self.man_bits)

    @cached_property
    def _values(self) -> np.ndarray:
        vals = np.array([self.decode_code(c) for c in range(self.num_codes)], dtype=np.float64)
        vals.setflags(write=False)
        return vals

    def values(self) -> np.ndarray:
        """All codes decoded, indexed by code (float64, read-only; NaN for NaN codes)."""
        return self._values

    def finite_values(self) -> np.ndarray:
        """The sorted distinct finite values (a signed zero appears once, as +0)."""
        v = self._values
        return np.unique(v[np.isfinite(v)] + 0.0)

    def describe(self) -> dict:
        """A row for tables: fields and derived properties."""
        return {
            "name": self.name, "bits": self.bits, "exp_bits": self.exp_bits, "man_bits": self.man_bits,
            "bias": self.bias, "signed": self.signed, "subnormals": self.subnormals,
            "specials": self.specials.value, "max": self.max, "min_normal": self.min_normal,
            "min_subnormal": self.min_subnormal, "eps": self.eps, "emin": self.emin, "emax": self.emax,
            "inf_code": self.inf_code, "nan_code": self.nan_code, "negative_zero": self.has_negative_zero,
        }
