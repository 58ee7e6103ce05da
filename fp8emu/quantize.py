"""Public array API: ``encode`` (floats -> codes), ``decode`` (codes -> floats) and ``quantize``
(fake quantization: floats -> nearest format values, same dtype).

Inputs may be float16, bfloat16 (the ml_dtypes dtype), float32 or float64 of any shape,
strides and byte order.  Each element is rounded exactly once from its own exact value
(float64 never passes through float32).  Semantics: see :func:`fp8emu.spec.round_scalar`
and ``docs/rounding.md``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from . import _kernels
from ._random import call_keys, new_seed, seeded_call_keys
from .format import Format, NanPolicy, RoundMode, Specials, TieRule
from .formats import get_format

__all__ = ["encode", "decode", "quantize", "INPUT_LAYOUTS", "kernel_arguments", "KernelArguments", "InputLayout",
           "SRKeys"]

class InputLayout(NamedTuple):
    """The bit layout of a supported float input dtype (what the kernels' parameters start with)."""

    width: int      # bits
    man_bits: int   # fraction bits
    bias: int       # exponent bias
    uint: type      # the unsigned dtype its bits are viewed as


class SRKeys(NamedTuple):
    """The keys of one call's stochastic-rounding words (docs/spec.md, "The random words")."""

    base: np.uint64   # mix64(mix64(seed) ^ mix64(stream + GAMMA)); word j's key is mix64(base + (j + 1) * GAMMA)
    key0: np.uint64   # word 0's key, which nearly every element uses alone


#: dtype name -> the bit layout of the supported float inputs (its keys are the input dtypes
#: every rounding function accepts).
INPUT_LAYOUTS: Mapping[str, InputLayout] = MappingProxyType({
    "float16": InputLayout(16, 10, 15, np.uint16),
    "bfloat16": InputLayout(16, 7, 127, np.uint16),
    "float32": InputLayout(32, 23, 127, np.uint32),
    "float64": InputLayout(64, 52, 1023, np.uint64),
})


def __getattr__(name: str):
    # SUPPORTED_DTYPES was public: old callers keep a working value, with a warning
    if name == "SUPPORTED_DTYPES":
        import warnings
        warnings.warn("fp8emu.quantize.SUPPORTED_DTYPES is deprecated; use tuple(fp8emu.quantize.INPUT_LAYOUTS)",
                      DeprecationWarning, stacklevel=2)
        return tuple(INPUT_LAYOUTS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _input_info(dtype: np.dtype, argname: str = "x") -> InputLayout:
    name = np.dtype(dtype).name
    if np.dtype(dtype).kind not in "fV" or name not in INPUT_LAYOUTS:
        raise TypeError(f"{argname} has dtype {np.dtype(dtype)}; allowed: float16, bfloat16 (ml_dtypes), "
                        "float32, float64")
    return INPUT_LAYOUTS[name]


#: Native-order input dtypes seen so far -> their layout and the dtype of its bit patterns (the
#: dtype objects themselves: a dict lookup costs 0.06 us where ``np.dtype(...).name`` took 1 us a
#: call; a view as a dtype object 0.13 us, as a type 0.17).
_LAYOUT_OF_NATIVE: dict = {}


def _as_array(x, argname: str = "x") -> np.ndarray:
    """``x`` as an ndarray; an array-like of integers or bools is refused (not converted).
    Subclasses (a masked array, a matrix, a memmap) are viewed as plain arrays: the kernels take
    nothing else (a masked array's mask is not applied: every element is rounded)."""
    if type(x) is np.ndarray:
        return x
    x = np.asarray(x)
    if x.dtype.kind in "iub":
        raise TypeError(f"{argname} must be a float array (float16, bfloat16, float32, float64), got {x.dtype}")
    return x


def _as_bits(x, argname: str = "x") -> tuple[np.ndarray, InputLayout]:
    """(1-d C-contiguous native-order unsigned view of ``x``, input info)."""
    x = _as_array(x, argname)
    known = _LAYOUT_OF_NATIVE.get(x.dtype)
    if known is None:
        info = _input_info(x.dtype, argname)
        known = info, np.dtype(info.uint)
        if x.dtype.isnative:
            _LAYOUT_OF_NATIVE[x.dtype] = known
        else:
            x = x.astype(x.dtype.newbyteorder("="))
    # ravel: a view of a C-contiguous array, 0.04 us against reshape's 0.11
    flat = x.ravel() if x.flags.c_contiguous else np.ascontiguousarray(x).ravel()
    return flat.view(known[1]), known[0]


@lru_cache(maxsize=None)
def _format_params(fmt: Format, mode: RoundMode, saturate: bool) -> tuple[int, ...]:
    """The format part of the kernels' parameter tuple (``_kernels.PARAMS`` from ``m`` to
    ``neg_ovf``): fields and the codes of the special outcomes."""
    sign = fmt.sign_mask
    nan = fmt.nan_code if fmt.nan_code is not None else sign
    pos_max, neg_max = fmt.max_code, fmt.max_code | sign
    always_sat = saturate or fmt.specials is Specials.NONE
    if fmt.has_inf:
        pos_inf, neg_inf = fmt.inf_code, fmt.inf_code | sign
    else:
        pos_inf = neg_inf = nan
    if always_sat:
        pos_inf, neg_inf = pos_max, neg_max
    # round-to-odd never overflows: like toward_zero it keeps +-max (only Inf inputs give Inf)
    pos_ovf = pos_max if (always_sat or mode in (RoundMode.TOWARD_ZERO, RoundMode.DOWN, RoundMode.ODD)) else pos_inf
    neg_ovf = neg_max if (always_sat or mode in (RoundMode.TOWARD_ZERO, RoundMode.UP, RoundMode.ODD)) else neg_inf
    if fmt.has_zero:
        pos_zero, neg_zero = 0, (sign if fmt.has_negative_zero else 0)
    elif fmt.has_nan:
        pos_zero = neg_zero = nan
    else:               # no zero and no NaN: the smallest magnitude, with the zero's sign
        pos_zero, neg_zero = 0, sign
    neg_unsigned = nan if fmt.has_nan else 0
    if not fmt.signed:          # unsigned: -Inf is a negative number
        neg_inf = neg_unsigned
    no_neg_zero = fmt.signed and fmt.has_zero and not fmt.has_negative_zero      # fnuz, extended
    return (fmt.man_bits, fmt.emin, int(fmt.subnormals), int(fmt.has_zero), int(no_neg_zero),
            int(fmt.signed), sign, fmt.max_code, nan, pos_inf, neg_inf, pos_zero, neg_zero, neg_unsigned,
            pos_ovf, neg_ovf)


def _mode_code(fmt: Format, mode: RoundMode) -> int:
    """The kernels' mode number: nearest_even ties by the code's lowest bit get their own
    (``man_bits == 0`` with ``TieRule.EVEN_EXPONENT``)."""
    if mode is RoundMode.NEAREST_EVEN and fmt.man_bits == 0 and fmt.tie_rule is TieRule.EVEN_EXPONENT:
        return _kernels.MODE_NEAREST_EVEN_CODE
    return _kernels.MODE_CODES[mode.value]


def _resolve_rounding(fmt, rounding, saturate, sr_bits) -> tuple[Format, RoundMode, bool, int]:
    """(format, mode, saturate, sr_bits or 0) from a call's arguments, validated."""
    fmt = get_format(fmt)
    mode = RoundMode.parse(rounding)
    if not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be a bool, got {type(saturate).__name__}")
    if sr_bits is not None:
        if isinstance(sr_bits, bool) or not isinstance(sr_bits, (int, np.integer)) or not 1 <= sr_bits <= 32:
            raise ValueError(f"sr_bits={sr_bits!r} is invalid; allowed: None (exact probabilities) or an int 1..32")
        if mode is not RoundMode.STOCHASTIC:
            raise ValueError(f"sr_bits={sr_bits} needs rounding='stochastic', got rounding={mode.value!r}")
    return fmt, mode, bool(saturate), (0 if sr_bits is None else int(sr_bits))


#: The keys of a call in a deterministic mode (the kernels take them and do not use them).
_NO_KEYS = SRKeys(*map(np.uint64, call_keys(0)))


def _call_keys(mode: RoundMode, seed, stream) -> SRKeys:
    """The call's stochastic-rounding keys (``seed`` and ``stream`` are checked in every mode)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int (or None), got {type(seed).__name__}")
    if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)):
        raise TypeError(f"stream must be an int, got {type(stream).__name__}")
    if mode is not RoundMode.STOCHASTIC:
        return _NO_KEYS
    return SRKeys(*seeded_call_keys(new_seed() if seed is None else seed, stream))


def _resolve(fmt, rounding, saturate, seed, sr_bits, stream):
    fmt, mode, saturate, r = _resolve_rounding(fmt, rounding, saturate, sr_bits)
    return fmt, mode, saturate, _call_keys(mode, seed, stream), r


class _Plan(NamedTuple):
    """What an :func:`encode` or :func:`quantize` call resolves before it reads the data: a
    function of its arguments other than the data, ``seed`` and ``stream``, so it is cached
    (:func:`_plan_of`)."""

    fmt: Format
    mode: RoundMode
    saturate: bool
    sr_bits: int
    check_nans: bool            # nan_policy="raise" into a format without NaN: count NaN inputs first
    out_dtype: np.dtype         # quantize: the input dtype in native order; encode: the code dtype
    lut: object                 # quantize: the decode table, or the decode parameters of a wide format
    route: "_F32Route | None"   # the float32 kernels, where they take the call (_f32_route)
    # the per-element kernels and their arguments (_per_element_kernels), where a call below
    # _SMALL_LANE_BELOW elements runs nothing else (_round_into's small-call lane); else None
    per_element: "_PerElement | None"
    # float32 inputs into a format that holds every float32 value: the results of +Inf, -Inf,
    # +NaN, -NaN for _kernels._copy_f32_finite (built by the kernels, kept); else None
    copy_specials: "np.ndarray | None"
    # encode of float32 inputs into a format whose codes are float32's top bits: quantize's
    # value kernels (:func:`_run_top_bits`; where they fail, the rest of _run_kernels); else None
    top_bits: "_F32Route | None"


def _plan(op: str, fmt, rounding, saturate, sr_bits, dtype: np.dtype, nan_policy) -> _Plan:
    fmt, mode, saturate, r = _resolve_rounding(fmt, rounding, saturate, sr_bits)
    info = _input_info(dtype)
    try:
        policy = NanPolicy(nan_policy)
    except ValueError:
        allowed = ", ".join(repr(p.value) for p in NanPolicy)
        raise ValueError(f"nan_policy={nan_policy!r} is unknown; allowed: {allowed}") from None
    check_nans = policy is NanPolicy.RAISE and not fmt.has_nan
    values = op == "quantize"
    if values:
        out_dtype = _without_metadata(dtype).newbyteorder("=")
        # formats wider than 16 bits have no table: the kernel builds each value from its code
        lut = _decode_params(fmt, out_dtype) if fmt.bits > 16 else _lut(fmt, out_dtype)
    else:
        out_dtype, lut = np.dtype(fmt.code_dtype), None
    route = _f32_route(values, fmt, mode, saturate, r, info)
    per_element = copy_specials = top_bits = None
    if route is None and not _not_per_element_route(values, fmt, info):
        per_element = _per_element_kernels(*_element_kernels(values, fmt), lut, info, fmt, mode, saturate, r)
    elif route is None and (info.width, info.man_bits) == (32, 23) and _holds_float32(fmt):
        kernel_dtype = np.dtype(info.uint if values else out_dtype)
        copy_specials = _kept_table(("f32-specials", op, kernel_dtype.str, fmt, mode, saturate, r),
                                    _special_patterns_f32, kernel_dtype,
                                    (*_element_kernels(values, fmt), lut, info, fmt, mode, saturate, r, _NO_KEYS))
    elif route is None and not values and (info.width, info.man_bits) == (32, 23) and _codes_are_f32_top_bits(fmt):
        top_bits = _f32_route(True, fmt, mode, saturate, r, info)
    return _Plan(fmt, mode, saturate, r, check_nans, out_dtype, lut, route, per_element, copy_specials, top_bits)


#: Plans by their arguments; at most :data:`_PLANS_KEEP` (then the dict starts again).
_PLANS: dict = {}
_PLANS_KEEP = 512


def _cached(plans: dict, key: tuple, make, *args):
    """``make(*args)``, kept in ``plans`` under ``key`` (at most :data:`_PLANS_KEEP` entries,
    then the dict starts again); an unhashable argument is not kept: ``make`` says what is wrong
    with it."""
    try:
        plan = plans.get(key)
    except TypeError:
        return make(*args)
    if plan is None:
        plan = make(*args)
        if len(plans) >= _PLANS_KEEP:
            plans.clear()
        plans[key] = plan
    return plan


def _plan_of(op: str, fmt, rounding, saturate, sr_bits, dtype: np.dtype, nan_policy) -> _Plan:
    """:func:`_plan`, cached: a small call spent about 8 us resolving its arguments before.

    The key holds the types of ``saturate`` and ``sr_bits`` beside their values: ``1 == True``
    and ``8.0 == 8`` as dict keys, but the first of each is refused.  Arguments that are equal
    as keys otherwise give the same plan (a format and its name, a mode and its value)."""
    # the format's name as well: formats that differ only by name are equal, and a plan's
    # messages name its format
    key = (op, fmt, getattr(fmt, "name", None), rounding, type(saturate), saturate, type(sr_bits), sr_bits, dtype,
           nan_policy)
    return _cached(_PLANS, key, _plan, op, fmt, rounding, saturate, sr_bits, dtype, nan_policy)


class KernelArguments(NamedTuple):
    """What the rounding kernels take for one call (for kernels built on them: accumulators, GPU).

    Attributes:
        params: the kernels' parameter tuple (``_kernels.PARAMS``: input layout, format, the
            codes of the special outcomes, mode, random bits).
        keys: the call's stochastic-rounding keys (zeros unless the mode is stochastic).
        values: the value of every code of the format, as the input dtype (the decode table;
            empty for formats wider than 16 bits, whose values are built from the code).
        value_params: the parameters that build a code's value as the input dtype without a
            table (``_kernels.DECODE_PARAMS``, for ``_kernels._value_bits``; empty when
            ``kernel_arguments`` was called with ``values=False``).
        kernel: which rounding kernel is valid: ``"f32"`` (float32 inputs, ``params_f32``),
            ``"fast"`` (``_kernels._round_fast``) or ``"generic"``.
        params_f32: the float32 kernels' tuple (``_kernels.PARAMS_F32``) when ``kernel`` is
            ``"f32"``, else None.
        deep_limit: float32 magnitude patterns below this (and nonzero) drop more than 64 bits
            in the format (0: none do); the float32 stochastic kernels treat them apart.
        params_f32_values: the float32 value kernels' tuple (``_kernels._value_f32``, as
            :func:`quantize` of float32 uses them; valid for more formats than ``params_f32``),
            or None (not float32, not ``values``, or not valid).
        deep_limit32: as ``deep_limit`` for more than 32 dropped bits (exact stochastic
            rounding by the random word's high half is valid for the other elements).
    """

    params: tuple[int, ...]
    keys: SRKeys
    values: np.ndarray
    value_params: tuple[int, ...]
    kernel: str = "generic"
    params_f32: tuple[np.int32, ...] | None = None
    deep_limit: int = 0
    params_f32_values: tuple[np.int32, ...] | None = None
    deep_limit32: int = 0


def kernel_arguments(fmt: Format | str, dtype: npt.DTypeLike, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
                     saturate: bool = False, seed: int | None = None, sr_bits: int | None = None,
                     stream: int = 0, values: bool = True) -> KernelArguments:
    """The rounding kernels' arguments for rounding ``dtype`` inputs into ``fmt`` (validated as :func:`encode` does).

    Args:
        fmt: the target format (Format or name).
        dtype: the input dtype (float16, bfloat16, float32 or float64).
        rounding, saturate, seed, sr_bits, stream: as for :func:`encode`.
        values: whether the kernels produce values of ``dtype`` (as :func:`quantize`): then the
            decode table and parameters are built, and a format whose values ``dtype`` cannot
            hold is refused. False: codes only (as :func:`encode`), any format.

    Returns:
        A :class:`KernelArguments`.

    Raises:
        TypeError: an unsupported dtype or argument type.
        ValueError: bad ``rounding`` or ``sr_bits``, or a format whose values ``dtype`` cannot hold.
    """
    dt = np.dtype(dtype)
    info = _input_info(dt, "dtype")
    fmt, mode, saturate, keys, r = _resolve(fmt, rounding, saturate, seed, sr_bits, stream)
    if values:
        table = _lut(fmt, dt).view(dt) if fmt.bits <= 16 else np.empty(0, dt)
        # with a table the kernels read values from it, as quantize() does: the parameters are
        # then unused and the conservative representability check must not refuse the format
        value_params = _decode_params(fmt, dt, check=fmt.bits > 16)
    else:
        table, value_params = np.empty(0, dt), ()
    p32 = _params_f32(fmt, mode, saturate, r, bool(values)) if dt.name == "float32" else None
    kernel = "f32" if p32 is not None else "fast" if _fast_ok(fmt, mode, info.bias) else "generic"
    p32v = _params_f32(fmt, mode, saturate, r, True, True) if values and dt.name == "float32" else None
    return KernelArguments(_params(info, fmt, mode, saturate, r), keys, table, value_params, kernel, p32,
                           _deep_limit(fmt), p32v, _deep_limit(fmt, 32))


def _params(info: InputLayout, fmt: Format, mode: RoundMode, saturate: bool, sr_bits: int) -> tuple[int, ...]:
    # pad: at least 16 fraction bits and at least one dropped bit (m <= 23)
    return (info.width, info.man_bits, info.bias, max(0, 16 - info.man_bits, fmt.man_bits + 1 - info.man_bits),
            *_format_params(fmt, mode, saturate), _mode_code(fmt, mode), sr_bits)


@lru_cache(maxsize=None)
def _params_f32(fmt: Format, mode: RoundMode, saturate: bool, sr_bits: int, with_values: bool,
                value_kernel: bool = False, cpu_kernels: bool = False) -> tuple[np.int32, ...] | None:
    """The float32 kernels' tuple (``_kernels.PARAMS_F32``), or None where they are not valid
    (no subnormals or no zero, ``emin < -126``, the smallest subnormal not a normal float32,
    ``man_bits = 23``, where no bit would be dropped, or a mode only the generic kernel has).
    ``value_kernel``: for the value kernels only (``_kernels._quantize_f32``, and
    ``_kernels._quantize_f32_sr`` with the word's high half), which are also valid where the
    smallest subnormal is a float32 subnormal (bfloat16-like formats; no float32 input drops
    more than 32 bits there, so ``_deep_limit(fmt, 32)`` is 0 and SR takes the high half).
    ``cpu_kernels``: for the CPU value and codes kernels, not the GPU's (``_kernels._round_f32``),
    which in the deterministic modes also take formats without subnormals (with a zero: below
    ``2^emin`` their only values are 0 and ``2^emin``, which is how those kernels round any
    format below its smallest subnormal ``q``, so ``q`` is ``2^emin`` there; ``_kernels._fadd_ok``
    and ``_flat_ok`` tell the two kinds apart by it) and nearest_even ties by the code's parity
    (``man_bits == 0`` with ``TieRule.EVEN_EXPONENT``: ``_kernels.MODE_NEAREST_EVEN_CODE``), and
    formats with ``emin = -127`` (``_kernels._value_f32``'s ``low``: e8m0fnu, binary8p1ue/uf),
    the value and the codes kernels alike, where an unsigned ``man_bits = 0`` format may lack a
    zero (e8m0fnu: a zero input is NaN, every other input below ``2^-127`` rounds to it)."""
    q_exp = fmt.emin - fmt.man_bits if fmt.subnormals else fmt.emin
    mode_code = _mode_code(fmt, mode)
    # man_bits <= 21: the ``low`` kernels' shift count in float32's subnormal range is
    # 22 - m, and a kernel that drops no bit still adds nearest_even's kept bit (m = 22 with
    # emin = -127 rounded 2^-149 up to 2^-148); such formats take the generic kernel
    low = cpu_kernels and fmt.emin == -127 and fmt.man_bits <= 21
    if not ((fmt.subnormals or (cpu_kernels and mode is not RoundMode.STOCHASTIC))
            and (fmt.has_zero or (low and not fmt.signed and fmt.man_bits == 0))
            and (fmt.emin >= -126 or low) and q_exp >= (-149 if value_kernel or low else -126) and fmt.man_bits <= 22
            and (mode_code <= 5 or (cpu_kernels and mode_code == _kernels.MODE_NEAREST_EVEN_CODE))):
        return None
    (m, emin, _, _, fnuz, signed, sign, max_mag, nan, pinf, ninf, _, _, negu, povf, novf) = \
        _format_params(fmt, mode, saturate)
    codes = (nan, pinf, ninf, povf, novf, negu)
    if with_values:     # the CPU kernels: float32 patterns of the special outcomes and the largest finite value
        values = tuple(int(np.array(fmt.decode_code(c), np.float32).view(np.uint32)) for c in (*codes, max_mag))
    else:               # the GPU kernels (codes only, by _kernels._round_f32)
        values = (0,) * 7
    return tuple(np.int32(v if v < 2**31 else v - 2**32) for v in (
        m, emin, max_mag, sign, fnuz, signed, int(fmt.has_negative_zero), _mode_code(fmt, mode),
        sr_bits, (q_exp + 127) << 23 if q_exp >= -126 else 1 << (q_exp + 149), *codes, *values,
        int(fmt.has_zero)))


def _fast_ok(fmt: Format, mode: RoundMode, in_bias: int) -> bool:
    """Whether ``_kernels._round_fast`` is valid: subnormals, ``emin`` at or above the input's
    (input subnormals need no normalisation) and a mode it has (not odd, not code-parity ties)."""
    return fmt.subnormals and fmt.emin >= 1 - in_bias and _mode_code(fmt, mode) <= 5


def _deep_limit(fmt: Format, word_bits: int = 64) -> int:
    """Float32 magnitude patterns below this (and nonzero) have more than ``word_bits`` dropped
    bits in ``fmt``: ``max(E, 1) < emin - m + 150 - word_bits`` for the biased exponent E (see
    ``_round_f32``).  64: more than one random word; 32: more than its high half."""
    e_lim = fmt.emin - fmt.man_bits + 150 - word_bits
    return e_lim << 23 if e_lim >= 2 else 0


class _PerElement(NamedTuple):
    """The per-element kernels of a call and their arguments (:func:`_per_element_kernels`)."""

    fast: object                # _round_fast's kernel for the mode (SR: fast_sr), or None where not valid
    generic: object
    tables: tuple               # (lut,) for quantize's values, () for encode's codes
    prm: tuple                  # _params
    copy_in_place: bool         # exact SR: a tie reruns the generic kernel, which reads the input again


def _element_kernels(values: bool, fmt: Format) -> tuple:
    """(fast, fast_sr, generic): encode's codes kernels or quantize's value kernels (formats
    wider than 16 bits: no fast kernel, the wide one builds each value from its code)."""
    if not values:
        return _kernels._encode_fast, _kernels._encode_fast_sr, _kernels._encode_generic
    if fmt.bits > 16:
        return None, None, _kernels._quantize_wide
    return _kernels._quantize_fast, _kernels._quantize_fast_sr, _kernels._quantize_generic


def _per_element_kernels(fast, fast_sr, generic, lut, info: InputLayout, fmt: Format, mode: RoundMode,
                         saturate: bool, sr_bits: int) -> _PerElement:
    """What :func:`_run_per_element` runs: ``_round_fast``'s kernel where it is valid
    (:func:`_fast_ok`; stochastic rounding: ``fast_sr``), else the generic one only."""
    stochastic = mode is RoundMode.STOCHASTIC
    if fast is None or not _fast_ok(fmt, mode, info.bias):
        fast = None
    elif stochastic:
        fast = fast_sr
    return _PerElement(fast, generic, () if lut is None else (lut,), _params(info, fmt, mode, saturate, sr_bits),
                       stochastic and not sr_bits)


def _run_per_element(kernels: _PerElement, bits, target, keys: SRKeys, sized) -> None:
    """Round ``bits`` into ``target`` on the per-element kernels (``sized(kernel)``: the kernel
    to call): the fast one, and the generic one where it is not valid or after an SR tie."""
    fast, generic, tables, prm, copy_in_place = kernels
    if fast is not None:
        if copy_in_place and np.shares_memory(bits, target):
            # In place: after a tie the generic kernel re-reads every input, which the fast
            # kernel has overwritten by then; keep the inputs (ties cannot be known earlier).
            bits = bits.copy()
        if sized(fast)(bits, target, *tables, prm, keys.key0) == 0:
            return
    sized(generic)(bits, target, *tables, prm, *keys)


def _not_per_element_route(values: bool, fmt: Format, info: InputLayout) -> bool:
    """Whether a call that the float32 kernels do not take runs something other than the
    per-element kernels at any size: float32 inputs into a format that holds every float32
    value (a copy), or encode's codes that are the top bits of float32 patterns (the value
    kernels' results shifted) where the value kernels take the call (the call's plan, :func:`_plan`)."""
    if (info.width, info.man_bits) != (32, 23):
        return False
    return _holds_float32(fmt) or (not values and _codes_are_f32_top_bits(fmt))


def _run(*args, **kwargs) -> None:
    """:func:`_run_kernels` on one thread for small arrays (``_kernels.SERIAL_BELOW``): it runs
    the kernels' serial twins there, and the tables it builds on first use on one thread."""
    _kernels.one_thread_below(args[3].size, _run_kernels, *args, **kwargs)


class _F32Route(NamedTuple):
    """The float32 kernels' part of a call (:func:`_f32_route`): their tuple and the compiled
    kernels that :func:`_run_kernels` may run, looked up once per arguments."""

    src: int                # the input as the kernels read it (``_kernels.SRC_*``)
    p32: np.ndarray         # ``_kernels.PARAMS_F32`` as the kernels take it (``_kernels.p32_array``)
    deterministic: object   # (bits, out, p32, key0): a deterministic mode
    sr_hi32: object         # (bits, out, p32, key0, thr32, in_place) -> ties: r-bit SR, or exact SR by the
                            # word's high half (chunks with an element below thr32 + 1 on the whole word)
    sr_w64: object          # (bits, out, p32, key0): exact SR by the whole word
    hi32_always: bool       # r-bit SR, or no input of this dtype drops more than 32 bits: no check
    lim32: int              # _deep_limit(fmt, 32)
    lim64: int              # _deep_limit(fmt)
    values: bool            # quantize's value kernels (else encode's codes kernels)


_NO_CHECK = np.uint32(0)


@lru_cache(maxsize=None)
def _f32_route(values: bool, fmt: Format, mode: RoundMode, saturate: bool, sr_bits: int,
               info: InputLayout) -> _F32Route | None:
    """The float32 kernels for ``info``'s inputs (float32, and float16 and bfloat16 converted
    in their loops, exactly), or None where they cannot take the call (:func:`_params_f32`).
    ``values``: quantize's value kernels (valid for more formats: q a float32 subnormal, where
    no element drops more than 32 bits), else encode's codes kernels."""
    src = _F32_SOURCES.get((info.width, info.man_bits))
    p32 = None if src is None else _params_f32(fmt, mode, saturate, sr_bits, True, values, cpu_kernels=True)
    if p32 is None:
        return None
    lim32, lim64 = _deep_limit(fmt, 32), _deep_limit(fmt)
    hi32_always = bool(sr_bits) or lim32 == 0 or _SMALLEST_F32_BITS[src] >= lim32
    det = sr_hi32 = sr_w64 = None
    if mode is not RoundMode.STOCHASTIC:
        det = (_kernels._quantize_f32_kernel if values else _kernels._encode_f32_kernel)(p32, src)
    elif values:
        sr_hi32 = _kernels._quantize_f32_sr_kernel(p32, src, True)
        sr_w64 = _kernels._quantize_f32_sr_kernel(p32, src, False)
    else:
        sr_hi32 = _kernels._encode_f32_sr_kernel(p32, src, True)
        codes_w64 = _kernels._encode_f32_sr_kernel(p32, src, False)

        def sr_w64(bits, out, p, key0):
            _kernels.sized(codes_w64, bits.size)(bits, out, p, key0, _NO_CHECK, False)
    return _F32Route(src, _kernels.p32_array(p32), det, sr_hi32, sr_w64, hi32_always, lim32, lim64, values)


#: 16-bit inputs (float16, bfloat16) rounded by a deterministic mode where the float32 kernels
#: cannot take them (no subnormals, modes of the generic kernel only, ...): each of the 2^16
#: input patterns has one result, so a call looks its results up in a table of all 2^16 (one
#: gather per element) instead of rounding each element.  Where the float32 kernels can,
#: converting in their loop is faster still (e5m2 quantize of 4 M float16 0.95 ms against the
#: table's 2.46 ms, Intel CI host, 1 thread).  The table is built once per (operation, output
#: dtype, format, mode, saturation, input layout) by the kernels themselves on every pattern,
#: so it holds exactly their bits; a call builds it when it has at least 2^16 elements, and one
#: on fewer uses it once it is kept (:func:`_table_worth`).  Never below this many elements
#: (tests set it to 2^62 to run the per-element kernels):
_TABLE16_MIN = 1 << 10
#: Built tables, at most :data:`_TABLE16_KEEP` of them and :data:`_TABLE_BYTES_KEEP` bytes in
#: all (the oldest go first): 8 KiB-2.5 MiB each (float64 stochastic classes of e4m3fn the largest).
_TABLE16: dict = {}
_TABLE16_KEEP = 64
_TABLE_BYTES_KEEP = 64 << 20
_TABLE16_LOCK = threading.Lock()      # eviction walks the dict; other threads may insert


#: float32 and float64 inputs rounded by a deterministic mode where no arithmetic kernel takes
#: them (float32: e8m0fnu, the binary8p1 formats, round-to-odd, ...; float64: formats without
#: subnormals, code-parity ties, round-to-odd), into a format where :func:`_class_bits` is not
#: None: the call looks its results up in a table of at most 2^17 input classes (one gather
#: per element, ``_kernels._lookup_sticky``) instead of running the per-element generic kernel
#: (10-40x faster at 4 M float32 elements).  The table is built once per (operation, output
#: dtype, format, mode, saturation, input width) by the kernels themselves on one input of each
#: class (:func:`_kept_table`), so a call builds it only when it has at least as many elements
#: as the table has classes (building costs about what rounding that many elements one by one
#: does); a call on fewer uses a table that is kept already.  Never below this many elements
#: (tests set it to 2^62 to run the per-element kernels):
_TABLE_F32_MIN = 1 << 10

#: Calls below this many elements that the float32 kernels do not take run the per-element
#: kernels' twins straight from :func:`_round_into` (``_Plan.per_element``): no table is worth
#: it below the tables' floors (:func:`_table_worth`).
_SMALL_LANE_BELOW = min(_TABLE16_MIN, _TABLE_F32_MIN)


def _table_worth(n: int, entries: int, key: tuple, floor: int) -> bool:
    """Whether a call on ``n`` elements looks its results up in the table of ``entries``
    entries kept (or to be kept) under ``key``: at least ``floor`` elements, and the table
    kept already or ``n >= entries`` (so building it at most doubles the call's time)."""
    return n >= floor and (n >= entries or key in _TABLE16)


#: The input layouts whose classes :func:`_class_bits` can decide, by width: float32, float64.
_CLASS_DTYPES = {32: np.float32, 64: np.float64}


def _class_width(info: InputLayout) -> int | None:
    """32 or 64 for float32 or float64 inputs (the layouts of the class tables), else None."""
    return info.width if (info.width, info.man_bits) in ((32, 23), (64, 52)) else None


@lru_cache(maxsize=None)
def _class_bits(fmt: Format, width: int = 32) -> int | None:
    """The fewest top bits ``k`` (sign and exponent, 9 or 12, up to 16) of a float32 (``width``
    32) or float64 (64) input that, with whether any of its low ``width - k`` bits is set,
    decide every deterministic rounding of it into ``fmt``; None when 16 do not.

    A deterministic rounding is a step function of the input: its value changes only at the
    format's values and at the midpoints of neighbouring values (ties; the same for both
    signs), the overflow steps included (``max + ulp/2`` and ``max + ulp``; those beyond
    the input's range lie above every finite input).  When each of those is an input pattern
    with its low ``width - k`` bits zero, no step lies strictly between two such neighbouring
    patterns; the patterns ``t << (width - k) | l`` with ``l >= 1`` all lie strictly inside one
    such gap (patterns are monotone in the magnitude), so they share one result, and ``l = 0``
    is the step pattern itself.  NaN patterns give the format's NaN outcome whatever their
    payload.  Checked on the format's own values (formats of at most 16 bits), not on its
    fields: for float32 e8m0fnu takes 11 bits (its midpoint 1.5 * 2^-127 is a float32
    subnormal), a format with ``m`` fraction bits and float32's range ``10 + m``; for float64
    ``13 + m``.  The fewer the bits, the smaller the table of ``2^(k + 1)`` classes (8 KiB for
    e8m0fnu and float32 against 512 KiB at 16 bits), which its gathers then read from L1
    instead of L2.
    """
    if fmt.bits > 16:
        return None
    dtype = _CLASS_DTYPES[width]
    with np.errstate(invalid="ignore"):
        values = decode(np.arange(fmt.num_codes, dtype=np.int64).astype(fmt.code_dtype), fmt, dtype=np.float64)
    mags = np.unique(np.abs(values[np.isfinite(values)]))
    mags = np.union1d(mags, [0.0])
    top = float(mags[-1])
    ulp = 2.0 ** (math.frexp(top)[1] - 1 - fmt.man_bits)
    steps = np.concatenate([mags, (mags[:-1] + mags[1:]) / 2, [top + ulp / 2, top + ulp]])
    # steps beyond the input's largest finite value: no finite input reaches them, and the
    # class of the largest pattern's gap holds finite inputs only
    steps = steps[steps <= float(np.finfo(dtype).max)]
    as_input = steps.astype(dtype)
    if not np.all(as_input.astype(np.float64) == steps):
        return None
    patterns = as_input.view(np.uint32 if width == 32 else np.uint64).astype(np.uint64)
    for k in range(9 if width == 32 else 12, 17):
        if np.all((patterns & np.uint64((1 << (width - k)) - 1)) == 0):
            return k
    return None


def _f32_class_bits(fmt: Format) -> int | None:
    """:func:`_class_bits` for float32 inputs."""
    return _class_bits(fmt, 32)


def _f32_sticky_ok(fmt: Format) -> bool:
    """Whether a table of float32 input classes decides every deterministic rounding into
    ``fmt`` (:func:`_class_bits`: at most 16 top bits and a sticky bit)."""
    return _class_bits(fmt, 32) is not None


@lru_cache(maxsize=None)
def _holds_float32(fmt: Format) -> bool:
    """Whether every finite float32 value is a value of ``fmt`` (float32 itself, or a wider
    format): rounding a finite float32 input into it changes nothing (``-0`` kept only where
    the format has it), so every mode is a copy apart from Inf and NaN."""
    return (fmt.man_bits >= 23 and fmt.subnormals and fmt.has_zero and fmt.signed and fmt.has_negative_zero
            and fmt.emin <= -126 and fmt.emin - fmt.man_bits <= -149 and fmt.max >= float(np.finfo(np.float32).max))


@lru_cache(maxsize=None)
def _codes_are_f32_top_bits(fmt: Format) -> bool:
    """Whether the code of each value of ``fmt`` is the top ``fmt.bits`` bits of the value's
    float32 pattern, and its NaN code float32's quiet NaN's (bfloat16, tf32, e8m13: float32's
    sign and exponent fields, a shorter fraction, Inf, NaN and subnormals)::

        float32 | s | E (8) | fraction: m bits | 23 - m zero bits |
        code    | s | E (8) | fraction: m bits |

    Then ``encode`` of a float32 input is ``quantize``'s value kernel and a shift (the codes
    kernels do not take these formats: their smallest subnormal is a float32 subnormal).
    Checked on the format's own decoding: every code of a format of at most 16 bits, else every
    sign and exponent with seven fractions (both ends, the middle)."""
    if not (fmt.signed and fmt.exp_bits == 8 and fmt.bias == 127 and fmt.man_bits < 23 and fmt.subnormals
            and fmt.has_inf and fmt.has_nan and fmt.bits == 9 + fmt.man_bits):
        return False
    shift = np.uint32(23 - fmt.man_bits)
    m = fmt.man_bits
    if fmt.num_codes <= 1 << 16:
        codes = np.arange(fmt.num_codes, dtype=np.uint32)
    else:       # every sign and exponent with the fractions at both ends and around the middle
        fractions = np.unique(np.array([0, 1, 2, (1 << (m - 1)) - 1, 1 << (m - 1), (1 << m) - 2, (1 << m) - 1],
                                       dtype=np.uint32))
        codes = ((np.arange(512, dtype=np.uint32)[:, None] << np.uint32(m)) | fractions).ravel()
    exact = decode(codes, fmt, dtype=np.float64)
    nan = np.isnan(exact)
    as_f32 = decode(codes[~nan], fmt, dtype=np.float32)
    return bool(np.array_equal(as_f32.astype(np.float64), exact[~nan])
                and np.array_equal(as_f32.view(np.uint32), codes[~nan] << shift)
                and (np.uint32(fmt.nan_code) << shift) == np.uint32(0x7FC00000))


def _kept(key: tuple, build):
    """``build()``, made on first use and kept under ``key`` (the 16-bit tables, the float32
    class tables, the float32 specials and the stochastic class tables; at most
    :data:`_TABLE16_KEEP` and :data:`_TABLE_BYTES_KEEP` bytes, the oldest go first)."""
    kept = _TABLE16.get(key)
    if kept is None:
        kept = build()
        size = _table_bytes(kept)
        with _TABLE16_LOCK:
            while _TABLE16 and (len(_TABLE16) >= _TABLE16_KEEP
                                or sum(map(_table_bytes, _TABLE16.values())) + size > _TABLE_BYTES_KEEP):
                _TABLE16.pop(next(iter(_TABLE16)))
            _TABLE16[key] = kept
    return kept


def _table_bytes(kept) -> int:
    """The bytes of a kept table: an array, or a named tuple of arrays and tags."""
    if isinstance(kept, np.ndarray):
        return kept.nbytes
    return sum(part.nbytes for part in kept if isinstance(part, np.ndarray))


def _kept_table(key: tuple, patterns, dtype: np.dtype, kernel_args: tuple) -> np.ndarray:
    """The kernels' results (``kernel_args``: :func:`_run_kernels`' arguments but the arrays) on
    the input patterns that ``patterns()`` returns, built on first use and kept under ``key``
    (:func:`_kept`).  Built by the kernels themselves, so they hold exactly their bits."""
    def build() -> np.ndarray:
        inputs = patterns()
        table = np.empty(inputs.size, dtype)
        fast, fast_sr, generic, lut, info, fmt, mode, saturate, sr_bits, keys = kernel_args
        # the parallel kernels (on the caller's thread count): a table of 2^16 patterns or
        # fewer classes is below SERIAL_BELOW, yet built once for many calls
        _run_kernels(fast, fast_sr, generic, inputs, table, lut, info, fmt, mode, saturate, sr_bits, keys, twins=False)
        table.flags.writeable = False
        return table
    return _kept(key, build)


class _SRClassTables(NamedTuple):
    """Stochastic rounding by input class (``_kernels._sr_class_kernel``): per class of
    :func:`_class_patterns`, the result toward the interval's lower end and away from it,
    and the two shift counts that left-align the input's dropped fraction in the kernel's word."""

    lo: np.ndarray          # the output dtype
    hi: np.ndarray
    shifts: np.ndarray      # uint32: a | b << 8 (see _kernels._sr_class_kernel)
    kind: str               # "hi32", "rbits" or "w64": the kernel that takes them


def _sr_drop_bits(fmt: Format, patterns: np.ndarray, info: InputLayout = INPUT_LAYOUTS["float32"]) -> np.ndarray:
    """How many low bits of each input pattern's significand (``T | (E != 0) << M``, float32's
    24 bits, float64's 53 by ``info``) the quantum of its interval in ``fmt`` spans:
    ``q - (max(E, 1) - B - M)`` for the quantum ``2^q`` of the format at ``|x|`` (its binade
    ``e >= emin``: ``e - m``; below: ``emin - m`` with subnormals, ``emin`` without: the
    interval from zero to ``2^emin``), ``B`` and ``M`` the input's bias and fraction bits."""
    width, man, bias, uint = info.width, info.man_bits, info.bias, info.uint
    biased = ((patterns >> uint(man)) & uint((1 << (width - 1 - man)) - 1)).astype(np.int64)
    fraction = (patterns & uint((1 << man) - 1)).astype(np.int64)
    # the binade of |x|: from E, or from the fraction's top bit for a subnormal input
    top = np.frexp(np.maximum(fraction, 1).astype(np.float64))[1] - 1
    binade = np.where(biased > 0, biased - bias, top - (bias - 1 + man))
    below = fmt.emin - fmt.man_bits if fmt.subnormals else fmt.emin
    quantum = np.where(binade >= fmt.emin, binade - fmt.man_bits, below)
    return quantum + bias + man - np.maximum(biased, 1)


def _sr_ends(fmt: Format, saturate: bool, sr_bits: int, patterns: np.ndarray, info: InputLayout) -> tuple:
    """The generic kernel's codes for ``patterns`` (``info``'s inputs, the positive ones first:
    the sign is the top bit) rounded with stochastic rounding's own tuple (so its overflow and
    special outcomes) but the mode set to toward zero, and to away from zero (up for positive
    inputs, down for negative ones)."""
    prm = list(_params(info, fmt, RoundMode.STOCHASTIC, saturate, sr_bits))
    at = _kernels.PARAMS.index("mode")
    toward, up, down = (_kernels.MODE_CODES[name] for name in ("toward_zero", "up", "down"))
    half = patterns.size // 2
    codes = []
    for modes in ((toward, toward), (up, down)):    # toward zero; away (positive, negative half)
        out = np.empty(patterns.size, fmt.code_dtype)
        for part, mode in zip((slice(0, half), slice(half, None)), modes):
            prm[at] = mode
            _kernels._encode_generic(patterns[part], out[part], tuple(prm), np.uint64(0), np.uint64(0))
        codes.append(out)
    return codes[0], codes[1]


def _sr_class_tables(fmt: Format, saturate: bool, sr_bits: int, k: int, dtype: np.dtype,
                     lut: np.ndarray | None, width: int = 32) -> _SRClassTables:
    """The tables of ``_kernels._sr_class_kernel`` for ``k`` class bits (:func:`_class_bits`) of
    float32 (``width`` 32) or float64 (64) inputs, codes (``lut`` None) or values (``lut[code]``) in ``dtype``: per class, the results toward
    zero and away from it of one input of the class (:func:`_sr_ends`; the input has a low bit
    set, so something is dropped and away is away).  Within a class every input lies in one
    interval of the format's neighbours (its ends are class boundaries) and has the same biased
    exponent, so the two results and the dropped-bit count ``d`` (:func:`_sr_drop_bits`) are the
    class's.  The kernel: ``"rbits"`` for ``sr_bits``, else ``"hi32"`` where no class drops more
    than 32 bits and ``"w64"`` where one does."""
    info = INPUT_LAYOUTS["float32" if width == 32 else "float64"]
    patterns = _class_patterns(k, width)
    codes = _sr_ends(fmt, saturate, sr_bits, patterns, info)
    # where nothing is dropped (lo == hi) any d does: 1
    drop = np.where(codes[0] != codes[1], _sr_drop_bits(fmt, patterns, info), 1)
    kind = "rbits" if sr_bits else ("hi32" if int(drop.max()) <= 32 else "w64")
    # the word the fraction is aligned in: float64's kernel always aligns it in 64 bits (its
    # 53-bit significand outlives a 31-bit right shift) and takes the top half for 32-bit kinds
    word = 64 if kind == "w64" or width == 64 else 32
    a = np.where(drop <= word, word - drop, 0)
    b = np.where(drop <= word, 0, np.minimum(drop - word, word - 1))
    shifts = (a | b << 8).astype(np.uint32)
    lo, hi = (c.astype(dtype) if lut is None else lut[c].astype(dtype) for c in codes)
    for table in (lo, hi, shifts):
        table.flags.writeable = False
    return _SRClassTables(lo, hi, shifts, kind)


class _SRPatternTables(NamedTuple):
    """Stochastic rounding of 16-bit inputs by pattern (``_kernels._sr_pattern16_kernel``)."""

    lo: np.ndarray          # the output dtype, per pattern
    hi: np.ndarray
    frac: np.ndarray        # uint32: floor(dropped fraction * 2^32)
    kind: str               # "hi32", "rbits", or "w64": a fraction needs more than 32 bits (not taken)


def _sr_pattern16_tables(fmt: Format, saturate: bool, sr_bits: int, info: InputLayout, dtype: np.dtype,
                         lut: np.ndarray | None) -> _SRPatternTables:
    """The tables of ``_kernels._sr_pattern16_kernel`` for float16 or bfloat16 inputs (``info``):
    each pattern's results toward zero and away from it (:func:`_sr_ends`) and its dropped
    fraction's first 32 bits, from its float32 pattern (exact)::

        sig = T | (E != 0) << 23  (24 bits), d = _sr_drop_bits(...)
        frac = ((sig << 32) >> min(d, 63)) mod 2^32     (64-bit arithmetic: sig * 2^(32 - d),
                                                          the kept bits above bit 31 dropped)

    exact when ``d <= 32`` or the low ``d - 32`` bits of ``sig`` are zero."""
    patterns = _all_patterns16()
    codes = _sr_ends(fmt, saturate, sr_bits, patterns, info)
    if info.man_bits == 10:
        f32 = patterns.view(np.float16).astype(np.float32).view(np.uint32)
    else:
        f32 = patterns.astype(np.uint32) << np.uint32(16)
    dropped = codes[0] != codes[1]
    d = np.where(dropped, _sr_drop_bits(fmt, f32), 1).astype(np.uint64)
    biased = (f32 >> np.uint32(23)) & np.uint32(0xFF)
    sig = ((f32 & np.uint32(0x7FFFFF)) | np.where(biased != 0, np.uint32(1 << 23), np.uint32(0))).astype(np.uint64)
    frac = ((sig << np.uint64(32)) >> np.minimum(d, np.uint64(63))) & np.uint64(0xFFFFFFFF)
    below = np.minimum(np.maximum(d, np.uint64(32)) - np.uint64(32), np.uint64(63))
    exact = (d <= 32) | ((sig & ((np.uint64(1) << below) - np.uint64(1))) == 0)
    kind = "rbits" if sr_bits else ("hi32" if bool(np.all(exact | ~dropped)) else "w64")
    lo, hi = (c.astype(dtype) if lut is None else lut[c].astype(dtype) for c in codes)
    frac = frac.astype(np.uint32)
    for table in (lo, hi, frac):
        table.flags.writeable = False
    return _SRPatternTables(lo, hi, frac, kind)


def _all_patterns16() -> np.ndarray:
    """Every 16-bit input pattern: the 16-bit tables' inputs."""
    return np.arange(1 << 16, dtype=np.uint16)


def _class_patterns(k: int = 16, width: int = 32) -> np.ndarray:
    """One input pattern (float32 or float64: ``width``) of each class of
    ``_kernels._lookup_sticky`` with ``k`` top bits: class ``2 t + s`` (top ``k`` bits ``t``, a
    low bit set ``s``) as ``t << (width - k) | s``."""
    uint = np.uint32 if width == 32 else np.uint64
    tops = np.arange(1 << k, dtype=uint) << uint(width - k)
    patterns = np.empty(2 << k, uint)
    patterns[0::2] = tops
    patterns[1::2] = tops | uint(1)
    return patterns


def _special_patterns_f32() -> np.ndarray:
    """+Inf, -Inf, +NaN and -NaN: the inputs of ``_kernels._copy_f32_finite``'s specials."""
    return np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000], np.uint32)


#: Inputs the float32 kernels take, by (width, fraction bits): float32, and float16 and bfloat16
#: converted in their loops.
_F32_SOURCES = {(32, 23): _kernels.SRC_F32, (16, 10): _kernels.SRC_F16, (16, 7): _kernels.SRC_BF16}
#: The float32 pattern of each source's smallest nonzero magnitude: float16's 2^-24, none
#: below float32's subnormals for the others.
_SMALLEST_F32_BITS = {_kernels.SRC_F32: 1, _kernels.SRC_F16: 103 << 23, _kernels.SRC_BF16: 1}


def _smallest_magnitude(bits: np.ndarray, src: int) -> int:
    """The smallest ``(f32 bits & 0x7FFFFFFF) - 1`` mod 2^32 over the array as float32 bits
    (zeros wrap to 2^32 - 1), as ``_kernels._min_f32_mag`` of the converted array."""
    if src == _kernels.SRC_F32:
        return int(_kernels.sized(_kernels._min_f32_mag, bits.size)(bits))
    mag = (int(_kernels.sized(_kernels._min_mag16, bits.size)(bits)) + 1) & 0xFFFF      # the smallest nonzero magnitude, 0: none
    if mag == 0:
        return 2**32 - 1
    if src == _kernels.SRC_BF16:
        return (mag << 16) - 1
    return int(np.array(mag, np.uint16).view(np.float16).astype(np.float32).view(np.uint32)) - 1


def _run_f32(route: _F32Route, bits, target, stochastic: bool, keys: SRKeys) -> bool:
    """Round by the float32 kernels of ``route``; False when the generic kernel must redo the
    call: in exact stochastic rounding an element that drops more than 64 bits drew a first
    word equal to their first 64 while more follow (probability 2^-64 per such element; the
    generic kernel draws further words).  The word's high half decides unless a nonzero element
    drops more than 32 bits (exact SR only): its chunk of ``_kernels._SR_CHUNK`` elements is
    then decided on the whole word.  A call below ``_kernels.SERIAL_BELOW`` elements runs the
    kernels' serial twins (``_kernels.sized``).

    Out of place the kernel finds such chunks while rounding and redoes them.  In place it reads
    each chunk's magnitudes first and rounds a deep chunk through a scratch, so a tied chunk
    keeps its inputs; the generic kernel's redo of the whole array then rounds those and leaves
    the others' rounded values as they are (a value of the format drops no bits).  encode in
    place (32-bit codes over float32 inputs: the codes are not such values) reads the whole
    input first instead."""
    p32, key0, n = route.p32, keys.key0, bits.size
    if not stochastic:
        _kernels.sized(route.deterministic, n)(bits, target, p32, key0)
        return True
    sr_hi32 = _kernels.sized(route.sr_hi32, n)
    if route.hi32_always:
        sr_hi32(bits, target, p32, key0, _NO_CHECK, False)
        return True
    thr32 = np.uint32(route.lim32 - 1)
    in_place = np.shares_memory(bits, target)       # then the same elements (_direct_target)
    if not in_place or route.values:
        return sr_hi32(bits, target, p32, key0, thr32, in_place) == 0
    low = _smallest_magnitude(bits, route.src)
    if route.lim64 != 0 and low < route.lim64 - 1:
        return False
    if low >= route.lim32 - 1:
        sr_hi32(bits, target, p32, key0, _NO_CHECK, False)
    else:
        _kernels.sized(route.sr_w64, n)(bits, target, p32, key0)
    return True


def _run_top_bits(values: _F32Route, fmt: Format, bits, target, stochastic: bool, keys: SRKeys) -> bool:
    """Encode float32 ``bits`` into a format whose codes are float32's top bits
    (:func:`_codes_are_f32_top_bits`) by quantize's value kernels (``values``) and a shift; False
    where :func:`_run_f32` is (the generic kernel must then redo the call)."""
    # the value kernel's float32 bits, then their top bits: into the codes themselves where
    # they are 32-bit (the kernel takes an output over its input), else a scratch
    scratch = target if target.dtype.itemsize == 4 else np.empty(bits.size, np.uint32)
    if not _run_f32(values, bits, scratch, stochastic, keys):
        return False
    np.right_shift(scratch, np.uint32(23 - fmt.man_bits), out=target, casting="unsafe")
    return True


def _run_kernels(fast, fast_sr, generic, bits, target, lut, info, fmt, mode, saturate, sr_bits, keys,
                 f32=False, table_key=None, twins=True) -> None:
    """Run the fastest kernel that is valid, else (or after an SR tie) the generic one.

    ``f32``: the float32 kernels (:func:`_f32_route`; quantize's value kernels when ``lut`` is
    given, else encode's codes kernels) may take the call: float32, float16 and bfloat16 inputs
    (the 16-bit ones converted to float32 bits in the loop, exactly) when :func:`_params_f32`
    allows; exact stochastic rounding takes them only when no element can need a second random
    word, and decides by the word's high half (32-bit lanes) where no element drops more than
    32 bits.  With an output apart from the input, the check runs inside the rounding pass (the
    generic kernel reruns when it fails); otherwise a read pass checks first (the output may
    overwrite the input).  float64 inputs cannot be checked first, so their exact stochastic rounding in
    place reads a copy of the input.

    With ``table_key`` (the operation and its output, for :func:`_kept_table`), a 16-bit input
    that the float32 kernels cannot take, in a deterministic mode, looks its results up in the
    table of all 2^16 patterns; a float32 input where the float32 kernels cannot take it, or
    any float64 one, in the table of its classes (``_kernels._lookup_sticky``,
    :func:`_class_bits`); stochastic rounding of 16-bit inputs by pattern, and of float32 and
    float64 ones by class (their tables and the random word).  (The copy into a format that
    holds every float32 value and encode into one whose codes are float32's top bits come from
    the call's plan: :func:`_round_into`.)  Each table is used
    when :func:`_table_worth` (large enough calls, or the table kept already).  Below
    ``_kernels.SERIAL_BELOW`` elements each kernel runs as its serial twin (``_kernels.sized``),
    unless ``twins`` is False (the tables' builds).
    """
    stochastic = mode is RoundMode.STOCHASTIC
    route = _f32_route(lut is not None, fmt, mode, saturate, sr_bits, info) if f32 else None
    kernel_args = (fast, fast_sr, generic, lut, info, fmt, mode, saturate, sr_bits, keys)
    n = bits.size

    def sized(kernel):          # a call below SERIAL_BELOW elements runs the serial twin
        return _kernels.sized(kernel, n) if twins else kernel
    tag = (table_key, target.dtype.str, fmt, mode, saturate)      # the tables' key
    if route is None and table_key is not None and info.width == 16 and not stochastic \
            and _table_worth(bits.size, 1 << 16, key := (*tag, tuple(info)), _TABLE16_MIN):
        table = _kept_table(key, _all_patterns16, target.dtype, kernel_args)
        sized(_kernels._decode)(bits, target, table)
        return
    width = _class_width(info)
    if route is None and table_key is not None and not stochastic and width is not None \
            and (k := _class_bits(fmt, width)) is not None \
            and _table_worth(bits.size, 2 << k, key := ("sticky", *tag, width, k), _TABLE_F32_MIN):
        # float64: also where the per-element fast kernel takes the call (e5m2 RNE of 4 M
        # elements 19.1 -> 4.1 ms on a Zen 3, 7.5 -> 5.6 ms on a Xeon, 1 thread: a gather from a
        # table of at most 2^17 classes is faster than the 64-bit integer rounding)
        table = _kept_table(key, lambda: _class_patterns(k, width), target.dtype, kernel_args)
        _kernels._lookup_sticky(bits, target, table, width - k)
        return
    src = _F32_SOURCES.get((info.width, info.man_bits))
    if route is None and table_key is not None and stochastic and info.width == 16 and src is not None \
            and _table_worth(bits.size, 1 << 16, key := ("sr-patterns16", *tag, tuple(info), sr_bits),
                             _TABLE16_MIN):
        # keyed by the input layout too: quantize's float16 and bfloat16 values share a dtype
        tables = _kept(key, lambda: _sr_pattern16_tables(fmt, saturate, sr_bits, info, target.dtype, lut))
        if tables.kind != "w64":
            sized(_kernels._sr_pattern16_kernel(tables.kind == "rbits"))(
                bits, target, tables.lo, tables.hi, tables.frac, keys.key0, np.uint32(sr_bits))
            return
    # float32 (16-bit ones converted in the loop; by class where not by pattern) or float64
    sr_width = 32 if src is not None else (64 if width == 64 else None)
    if route is None and table_key is not None and stochastic and sr_width is not None \
            and (k := _class_bits(fmt, sr_width)) is not None \
            and _table_worth(bits.size, 2 << k, key := ("sr-classes", *tag, tuple(info), sr_bits, k),
                             _TABLE_F32_MIN):
        # keyed by the input layout too: quantize's float16 and bfloat16 values share a dtype
        tables = _kept(key, lambda: _sr_class_tables(fmt, saturate, sr_bits, k, target.dtype, lut, sr_width))
        if tables.kind == "w64" and np.shares_memory(bits, target):
            bits = bits.copy()      # a tie redoes the call on the generic kernel, which reads it
        # the twins of the class and pattern kernels gather from their tables with noalias
        # arrays (_kernels.noalias_twin): without, they stayed scalar and ran 25 % slower
        kernel = sized(_kernels._sr_class_kernel(sr_width - k, tables.kind, src, sr_width))
        if kernel(bits, target, tables.lo, tables.hi, tables.shifts, keys.key0, np.uint32(sr_bits)) == 0:
            return
    if route is not None and _run_f32(route, bits, target, stochastic, keys):
        return
    _run_per_element(_per_element_kernels(fast, fast_sr, generic, lut, info, fmt, mode, saturate, sr_bits),
                     bits, target, keys, sized)


def _raise_on_nans(bits: np.ndarray, info: InputLayout, fmt: Format) -> None:
    """Raise when ``bits`` holds a NaN (``nan_policy="raise"`` into a format without NaN)."""
    in_w, in_m = info[0], info[1]
    inf_bits = ((1 << (in_w - 1 - in_m)) - 1) << in_m
    mags = bits & bits.dtype.type((1 << (in_w - 1)) - 1)
    count = int(np.count_nonzero(mags > bits.dtype.type(inf_bits)))
    if count:
        raise ValueError(f"{count} NaN input(s) but {fmt.name} has no NaN (nan_policy='raise'; "
                         "with nan_policy='allow' a NaN becomes the sign-bit-only code)")


def _round_into(op: str, x, fmt, rounding, saturate, seed, sr_bits, stream, out, nan_policy) -> np.ndarray:
    """:func:`encode` (``op="encode"``) or :func:`quantize` (``op="quantize"``), arguments as theirs."""
    arr = _as_array(x)
    plan = _plan_of(op, fmt, rounding, saturate, sr_bits, arr.dtype, nan_policy)
    keys = _call_keys(plan.mode, seed, stream)
    bits, info = _as_bits(arr)
    if plan.check_nans:
        _raise_on_nans(bits, info, plan.fmt)
    values = op == "quantize"
    # quantize writes the input's bit patterns (its unsigned view), encode the codes
    kernel_dtype = bits.dtype if values else plan.out_dtype
    user_out = out
    if out is not None:
        _check_out(out, arr.shape, plan.out_dtype)
        out = _plain(out)
    into_out = out is not None and _direct_target(out, arr)      # else a temporary, copied into out
    if into_out:
        target = out.ravel()        # a view: out is C-contiguous
        target = target.view(kernel_dtype) if values else target
    else:
        target = np.empty(bits.shape, kernel_dtype)
    stochastic, route = plan.mode is RoundMode.STOCHASTIC, plan.route
    if route is not None and not stochastic:    # _run_f32's first case without its frame (0.2 us)
        _kernels.sized(route.deterministic, bits.size)(bits, target, route.p32, keys.key0)
    elif plan.copy_specials is not None:         # a copy but for Inf and NaN, at any size
        _kernels.sized(_kernels._copy_f32_finite, bits.size)(bits, target, plan.copy_specials)
    elif plan.top_bits is not None and _run_top_bits(plan.top_bits, plan.fmt, bits, target, stochastic, keys):
        pass
    elif route is None and plan.per_element is not None and (n := bits.size) < _SMALL_LANE_BELOW:
        # a small call that no table takes, on the per-element kernels' serial twins, without
        # _run_kernels' routing (about 10 us a call)
        _run_per_element(plan.per_element, bits, target, keys, lambda kernel: _kernels.sized(kernel, n))
    elif route is None or not _run_f32(route, bits, target, True, keys):
        # the per-element kernels: what the float32 kernels do not take (other inputs, formats
        # or modes), and exact SR of a call with an element beyond 64 dropped bits
        _run(*_element_kernels(values, plan.fmt), bits, target, plan.lut if values else None, info, plan.fmt,
             plan.mode, plan.saturate, plan.sr_bits, keys, table_key=op)
    if into_out:
        return user_out
    result = target.view(plan.out_dtype) if values else target
    if out is None:
        return result if arr.ndim == 1 else result.reshape(arr.shape)
    np.copyto(out, result.reshape(arr.shape))
    return user_out


@lru_cache(maxsize=None)
def _decode_params(fmt: Format, dtype: np.dtype, *, check: bool = True) -> tuple[int, ...]:
    """:data:`_kernels.DECODE_PARAMS` for building ``dtype`` patterns from codes of ``fmt``.

    Raises ValueError (unless ``check`` is False) when some value of ``fmt`` may not be exactly
    representable in ``dtype`` (checked conservatively on the fields: precision, largest binade,
    smallest quantum; a zero-exponent-bit format, which has no implicit bit, can be refused
    although it fits).
    """
    out_w, out_m, out_bias, _ = INPUT_LAYOUTS[dtype.name]
    if check and (fmt.man_bits > out_m or fmt.emax > out_bias or fmt.emin - fmt.man_bits < 1 - out_bias - out_m):
        raise ValueError(f"{fmt.name} has values that {dtype.name} cannot hold exactly "
                         f"(range {fmt.min_subnormal:g}..{fmt.max:g}, {fmt.man_bits} mantissa bits); use "
                         "encode()/decode() with a wider float dtype instead")
    sign = fmt.sign_mask
    # the NaN at the negative-zero code (fnuz, signed extended), or NaN magnitude(s)
    nan_code = sign if fmt.signed and fmt.nan_code == sign else -1
    nan_mag = fmt.nan_code & ~sign if fmt.nan_code is not None and nan_code < 0 else -1
    inf_mag = fmt.inf_code if fmt.has_inf else -1
    return (fmt.man_bits, fmt.bias, int(fmt.subnormals), int(fmt.has_zero), sign, nan_code, nan_mag, inf_mag,
            out_w, out_m, out_bias)


def _check_out(out, shape, dtype, argname="out") -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{argname} must be a numpy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{argname} has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype and out.dtype.newbyteorder("=") != np.dtype(dtype).newbyteorder("="):  # any byte order
        raise TypeError(f"{argname} has dtype {out.dtype}; expected {np.dtype(dtype)} (any byte order)")
    if not out.flags.writeable:
        raise ValueError(f"{argname} is read-only")


def _plain(out: np.ndarray) -> np.ndarray:
    """``out`` as a plain ndarray over its memory: a subclass's ``ravel`` or ``reshape`` may not
    flatten it (a matrix stays 2-d: a kernel then wrote past its end) and Numba refuses a
    masked array (whose data is then written, its mask left as it is)."""
    return out if type(out) is np.ndarray else np.asarray(out)


def _direct_target(out: np.ndarray, x) -> bool:
    """Whether the kernel may write into ``out`` directly (C-contiguous, native, and not
    overlapping ``x`` other than as the identical array)."""
    if not (out.flags.c_contiguous and out.dtype.isnative):
        return False
    if out is x:                # in place (1.7 us less than the test below)
        return True
    if isinstance(x, np.ndarray) and np.may_share_memory(out, x):
        return (x.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                and x.strides == out.strides and x.dtype.itemsize == out.dtype.itemsize)
    return True


def encode(x: npt.ArrayLike, fmt: Format | str, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
           saturate: bool = False, seed: int | None = None, sr_bits: int | None = None, stream: int = 0,
           out: np.ndarray | None = None, nan_policy: NanPolicy | str = NanPolicy.ALLOW) -> np.ndarray:
    """Round floats into ``fmt`` and return the codes.

    Args:
        x: float16, bfloat16, float32 or float64 array-like (any shape/strides/byte order).
        fmt: a :class:`Format` or a format name (``"e4m3fn"``).
        rounding: a :class:`RoundMode` or its name/alias.
        saturate: clamp overflow and +-Inf to +-max (formats without Inf/NaN always do).
        seed: stochastic rounding seed (any int, taken mod 2^64).  ``None`` draws one from
            NumPy's global generator: not reproducible.
        sr_bits: ``None`` = exact probabilities; ``r`` in 1..32 = add ``r`` random bits and
            truncate (probability ``floor(f*2^r)/2^r``: biased toward zero by < 2^-r ulp).
        stream: independent random bits per stream for one seed (any int, mod 2^64).
        out: optional C-order output array of ``x``'s shape and ``fmt.code_dtype``.
        nan_policy: what a NaN input becomes when ``fmt`` has no NaN (:class:`NanPolicy`):
            ``"allow"`` (the sign-bit-only code, the NaN disappears) or ``"raise"``.

    Returns:
        Codes in ``fmt.code_dtype`` (uint8, uint16 or uint32), shaped like ``x``.

    Edge cases: NaN -> ``fmt.nan_code`` (formats without NaN: the sign-bit-only code);
    Inf -> +-Inf code, NaN (fn/fnuz) or +-max (saturating / no specials); overflow is decided
    after rounding (directed modes that round toward zero for that sign give +-max); -0 ->
    -0 code (fnuz and unsigned: +0); unsigned formats: negative numbers -> NaN; formats
    without zero: 0 -> NaN and tiny values -> the smallest value.

    Raises:
        TypeError: ``x`` is not one of the supported float dtypes, or ``out`` has the wrong dtype.
        ValueError: unknown format or rounding mode, bad ``sr_bits``, ``out`` shape mismatch, or a
            NaN input into a format without NaN with ``nan_policy="raise"``.
    """
    return _round_into("encode", x, fmt, rounding, saturate, seed, sr_bits, stream, out, nan_policy)


@lru_cache(maxsize=None)
def _lut(fmt: Format, dtype: np.dtype) -> np.ndarray:
    """Values of all codes of ``fmt`` as ``dtype`` bit patterns (NaN codes -> dtype's quiet NaN).

    Raises ValueError when some value of ``fmt`` is not exactly representable in ``dtype``.
    """
    vals = fmt.values()
    with np.errstate(over="ignore", invalid="ignore"):
        cast = vals.astype(dtype)
    finite = np.isfinite(vals)
    back = cast.astype(np.float64)
    if not np.array_equal(back[finite], vals[finite]) or not np.all(np.isfinite(back[finite])):
        raise ValueError(f"{fmt.name} has values that {np.dtype(dtype).name} cannot hold exactly "
                         f"(range {fmt.min_subnormal:g}..{fmt.max:g}, {fmt.man_bits} mantissa bits); use "
                         "encode()/decode() with a wider float dtype instead")
    nan = np.array(np.nan, dtype=np.float64).astype(dtype)
    cast[np.isnan(vals)] = nan
    bits = cast.view(INPUT_LAYOUTS[np.dtype(dtype).name].uint).copy()
    bits.setflags(write=False)
    return bits


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in INPUT_LAYOUTS:
        raise TypeError(f"dtype={dtype!r} is not supported; allowed: float16, bfloat16 (ml_dtypes), float32, float64")
    return _without_metadata(dt)


def _without_metadata(dt: np.dtype) -> np.dtype:
    """``dt`` without its ``metadata``: NumPy compares and hashes dtypes without it, so the
    cached plans would hand one call's metadata to every later call of an equal dtype; results
    carry none."""
    return dt if dt.metadata is None else np.dtype(dt.type).newbyteorder(dt.byteorder)


class _DecodePlan(NamedTuple):
    """What a :func:`decode` call resolves from ``fmt`` and ``dtype`` (cached: :func:`_decode_plan_of`)."""

    fmt: Format
    dtype: np.dtype             # the result's dtype, as asked (any byte order)
    native: np.dtype            # the dtype the kernel writes: ``dtype`` in native byte order
    pattern: np.dtype           # the unsigned dtype of ``native``'s bit patterns
    bits: int                   # the format's width: unsigned codes no wider need no range check
    kernel: object              # _kernels._decode (a table) or _kernels._decode_wide (built per code)
    table: object               # the table of ``native`` patterns, or the wide kernel's parameters


def _decode_plan(fmt, dtype) -> _DecodePlan:
    fmt = get_format(fmt)
    dt = _float_dtype(dtype)
    native = dt.newbyteorder("=")
    if fmt.bits > 16:           # no table: the kernel builds each value from its code
        kernel, table = _kernels._decode_wide, _decode_params(fmt, native)
    else:
        kernel, table = _kernels._decode, _lut(fmt, native)
    return _DecodePlan(fmt, dt, native, np.dtype(INPUT_LAYOUTS[native.name].uint), fmt.bits, kernel, table)


_DECODE_PLANS: dict = {}


def _decode_plan_of(fmt, dtype) -> _DecodePlan:
    """:func:`_decode_plan`, cached like :func:`_plan_of` (``np.dtype(...).name`` alone costs
    about 1.5 us, a third of a small call)."""
    return _cached(_DECODE_PLANS, (fmt, getattr(fmt, "name", None), dtype), _decode_plan, fmt, dtype)


def decode(codes: npt.ArrayLike, fmt: Format | str, *, dtype: npt.DTypeLike = np.float32,
           out: np.ndarray | None = None) -> np.ndarray:
    """Values of ``codes`` in ``fmt`` as ``dtype`` floats (exact; NaN codes -> quiet NaN).

    Args:
        codes: integer array-like of codes ``0 .. fmt.num_codes - 1``.
        fmt: a :class:`Format` or a format name.
        dtype: output float dtype (float16, bfloat16, float32, float64, either byte order) that
            holds every value of ``fmt`` exactly.
        out: optional output array of ``codes``' shape and ``dtype`` (either byte order).

    Raises:
        TypeError: non-integer codes or unsupported ``dtype``.
        ValueError: a code out of range, or ``dtype`` cannot hold ``fmt``'s values exactly.
    """
    plan = _decode_plan_of(fmt, dtype)
    c = codes if type(codes) is np.ndarray else np.asarray(codes)     # subclasses as plain arrays
    kind = c.dtype.kind
    if kind != "u" and kind != "i":
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    # unsigned codes no wider than the format's cannot be out of range: skip the two reductions
    if c.size and not (kind == "u" and c.dtype.itemsize * 8 <= plan.bits):
        lo, hi = 0 if kind == "u" else int(c.min()), int(c.max())
        if lo < 0 or hi >= plan.fmt.num_codes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"codes contains {bad}, out of range for {plan.fmt.name} (0..{plan.fmt.num_codes - 1})")
    flat = (c if c.flags.c_contiguous else np.ascontiguousarray(c)).reshape(-1)
    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    user_out = out
    if out is not None:
        _check_out(out, c.shape, plan.dtype)
        out = _plain(out)
        # the kernel writes native patterns; an out over the codes other than element for
        # element (a wider dtype over the same bytes) would overwrite codes not read yet: a
        # temporary then
        target = out.reshape(-1) if _direct_target(out, c) else np.empty(flat.shape, plan.native)
    else:
        target = np.empty(flat.shape, plan.native)
    _kernels.one_thread_below(flat.size, plan.kernel, flat, target.view(plan.pattern), plan.table)
    if out is None:
        result = target.reshape(c.shape)
        return result if plan.dtype.isnative else result.astype(plan.dtype)     # swapped at the end
    if not np.shares_memory(target, out):
        np.copyto(out, target.reshape(c.shape))
    return user_out


def quantize(x: npt.ArrayLike, fmt: Format | str, *, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
             saturate: bool = False, seed: int | None = None, sr_bits: int | None = None, stream: int = 0,
             out: np.ndarray | None = None, nan_policy: NanPolicy | str = NanPolicy.ALLOW) -> np.ndarray:
    """Fake quantization: round ``x`` into ``fmt`` and return the values in ``x``'s dtype.

    Same arguments and edge cases as :func:`encode` (one fused kernel, no code temporary);
    ``out`` may be ``x`` itself (in place).  NaN results are the dtype's positive quiet NaN;
    overflow gives +-Inf where ``fmt`` has Inf, NaN for fn/fnuz formats, +-max when saturating.
    ``quantize(x, "float32")`` of a float32 ``x`` returns ``x`` except that every NaN becomes
    the positive quiet NaN ``0x7FC00000``.

    Args:
        x, fmt, rounding, saturate, seed, sr_bits, stream, nan_policy: as for :func:`encode`.
        out: optional C-order output array of ``x``'s shape and dtype (may be ``x``).

    Raises:
        TypeError: unsupported dtype of ``x``/``out``.
        ValueError: as :func:`encode`; also when ``fmt`` has values that ``x``'s dtype cannot
            hold exactly (e.g. ``bfloat16`` into a float16 array): use encode/decode then.
    """
    return _round_into("quantize", x, fmt, rounding, saturate, seed, sr_bits, stream, out, nan_policy)
