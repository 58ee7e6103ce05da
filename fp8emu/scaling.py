"""Tensor scaling: power-of-two scales (per tensor, per channel), delayed scaling with an amax
history (the rule the training engine uses), and OCP Microscaling (MX v1.0) block scaling.

Conventions (docs/spec.md, "Scaling conventions").  A *scale* here is always the **dequantization** factor:
``x ~ scale * q`` with ``q = quantize(x / scale, fmt)`` (TransformerEngine calls it
``scale_inv``; its ``scale`` is ``1 / scale``).  Scales are powers of two, so dividing and
multiplying by them is exact (in float64; only float32 overflow/underflow could round), and
:func:`fp8emu.matmul` takes them as ``a_scale`` / ``b_scale``.

amax-based choice: the smallest power of two ``s`` with ``amax / s <= fmt.max``, times
``2^margin``.  ``amax == 0`` gives ``s = 1``; per-tensor and per-channel scales of a NaN/Inf
amax are 1; :class:`DelayedScaling` states its own rule (first step, NaN/Inf amaxes).

MX (OCP Microscaling Formats v1.0): blocks of 32 consecutive elements
along one axis share an E8M0 scale ``X = 2^e``::

    amax == 0        -> e = -127 (the smallest scale; all elements are zero)
    otherwise        -> e = rule(amax), clamped below at -127; e > 127 -> the NaN scale (0xFF)
    elements         = Q_elem(v / X, rounding, saturating)       # one rounding each

The rule (:class:`ScaleRule`) defaults to OCP's ``floor(log2 amax) - emax_elem``, which can
leave ``amax / X`` up to ``2^(emax_elem+1)``, above the element max (E4M3: up to 512 vs 448),
so elements saturate (microxcaling does the same); ``ceil``, ``even`` and ``rceil`` are the
other rules libraries and NVIDIA hardware use.
A block holding NaN or Inf gets the NaN scale: every value of the block dequantizes to NaN
(OCP leaves the other elements undefined; NaN is the conservative choice).  Element formats:
``e4m3fn``, ``e5m2``, ``e3m2fn``, ``e2m3fn``, ``e2m1fn`` and ``int8`` (two's complement with an
implicit ``2^-6``: values ``k / 64``, ``|k| <= 127``; -128 is never produced, so negation stays
exact; emax 0, as in microxcaling).  Inputs may be float16, bfloat16, float32 or float64: the
results depend only on the values.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .format import Format, RoundMode, Specials
from .formats import get_format
from .quantize import INPUT_LAYOUTS, decode, encode, quantize

__all__ = [
    "pow2_scale", "all_powers_of_two", "amax", "amax_scale", "scaled_quantize", "DelayedScaling",
    "MX_BLOCK", "MX_ELEMENT_FORMATS", "MXINT8", "ScaleRule", "MXTensor", "mx_quantize", "mx_dequantize",
    "NVFP4_BLOCK", "NVFP4Tensor", "nvfp4_quantize", "nvfp4_dequantize",
]


# ---- power-of-two scales ----------------------------------------------------------------------------
#: The exponents of the scales :func:`pow2_scale` returns: ``2^k`` and its reciprocal ``2^-k`` are
#: both float64 numbers (quantizing divides by the scale, dequantizing multiplies by it).
_SCALE_EXPONENTS = range(-1023, 1024)


def pow2_scale(amax_value: float, fmt: Format | str, *, margin: int = 0) -> float:
    """The smallest power of two ``s`` with ``amax / s <= fmt.max``, times ``2^margin``.

    Exact: the exponent comes from comparing the float64 significands of ``amax`` and
    ``fmt.max`` (no logarithms, no rounded intermediate).  The result is clamped to
    ``2^-1023 .. 2^1023``, the powers of two whose reciprocals are float64 numbers too
    (quantizing divides by the scale, dequantizing multiplies by it).  Clamping up (an amax
    far below ``fmt.max``, e.g. ``pow2_scale(5e-324, "e4m3fn")`` or
    ``pow2_scale(1e-300, "float32")``, or a margin below -2000) only makes ``amax / s`` smaller;
    clamping down (a margin lifting the scale past ``2^1023``, e.g.
    ``pow2_scale(1e308, "e4m3fn", margin=10)``) leaves less headroom than asked for, and only
    for formats whose max is below 2 can ``amax / s`` then exceed ``fmt.max``.

    Args:
        amax_value: the largest magnitude to represent (>= 0, finite).
        fmt: the target format (Format or name).
        margin: extra power-of-two headroom (the result is multiplied by ``2^margin``).

    Returns:
        The scale (1.0 for ``amax == 0``), a power of two in ``2^-1023 .. 2^1023``.

    Raises:
        ValueError: a negative or non-finite amax (callers decide what a NaN/Inf amax means,
            see :class:`DelayedScaling`).
        TypeError: a non-int ``margin``.
    """
    fmt = get_format(fmt)
    a = float(amax_value)
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"amax must be finite and >= 0, got {amax_value!r}")
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)):
        raise TypeError(f"margin must be an int, got {type(margin).__name__}")
    if a == 0.0:
        return 1.0
    # amax = ma * 2^ea and max = mm * 2^em with significands in [0.5, 1): amax / 2^e <= max holds
    # for e >= ea - em when ma <= mm, else for e >= ea - em + 1
    ma, ea = math.frexp(a)
    mm, em = math.frexp(fmt.max)
    e = ea - em + (ma > mm) + int(margin)
    e = min(max(e, _SCALE_EXPONENTS.start), _SCALE_EXPONENTS.stop - 1)
    return math.ldexp(1.0, e)


def all_powers_of_two(values: npt.ArrayLike) -> bool:
    """Whether every element of ``values`` is a positive finite power of two (an exact scale).

    Args:
        values: a number or an array of numbers.

    Returns:
        True when all elements are ``2^k`` for integers ``k`` (float64 range).
    """
    v = np.asarray(values, dtype=np.float64)
    mant, _ = np.frexp(v)
    return bool(np.all(np.isfinite(v)) and np.all(v > 0) and np.all(mant == 0.5))


def amax(x: npt.ArrayLike, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
    """max |x| over all axes except ``axis`` (kept, with keepdims) -- or over everything for ``axis=None``.

    NaN anywhere in a reduction gives NaN (np.max semantics); a reduction over no elements
    gives 0 (an empty array, or empty channels: ``amax(np.zeros((4, 0)), axis=0)`` is four zeros).

    Args:
        x: float array (NumPy's float dtypes, or ml_dtypes' bfloat16 as :func:`fp8emu.quantize` takes it).
        axis: the kept (channel) axis or axes; None reduces everything.

    Returns:
        A 0-d array (``axis=None``) or an array with ``x``'s dimensions, extent 1 except along ``axis``.

    Raises:
        TypeError: ``x`` is not a float array.
    """
    arr = np.asarray(x)
    if arr.dtype.kind != "f" and arr.dtype.name not in INPUT_LAYOUTS:   # bfloat16's kind is "V"
        raise TypeError(f"x must be a float array, got dtype {arr.dtype}")
    if axis is None:
        return np.max(np.abs(arr)) if arr.size else np.float64(0.0)
    keep = tuple(ax % arr.ndim for ax in np.atleast_1d(axis))
    reduce = tuple(ax for ax in range(arr.ndim) if ax not in keep)
    # initial=0: the maximum of no elements; it changes no other result (|x| >= 0, NaN still wins)
    return np.max(np.abs(arr), axis=reduce, keepdims=True, initial=0.0)


def amax_scale(x: npt.ArrayLike, fmt: Format | str, *, axis: int | tuple[int, ...] | None = None,
               margin: int = 0) -> np.ndarray:
    """Power-of-two dequantization scales from the amax of ``x``: per tensor (``axis=None``,
    a 0-d array) or per channel along ``axis`` (shape broadcastable to ``x``).

    For a matmul ``a (M, K) @ b (K, N)``: per-row ``amax_scale(a, f, axis=0)`` is (M, 1),
    per-column ``amax_scale(b, f, axis=1)`` is (1, N) -- the shapes ``matmul`` accepts.
    Channels whose amax is NaN/Inf get scale 1.

    Args:
        x: float array.
        fmt: the target format (Format or name).
        axis: the channel axis (or axes) that keep their own scale; None for one scale.
        margin: extra power-of-two headroom.

    Returns:
        float64 scales, powers of two.
    """
    am = np.asarray(amax(x, axis), dtype=np.float64)
    out = np.ones_like(am)
    for idx in np.ndindex(am.shape):
        if math.isfinite(am[idx]):
            out[idx] = pow2_scale(am[idx], fmt, margin=margin)
    return out


def scaled_quantize(x: npt.ArrayLike, fmt: Format | str, scale: Any, *, rounding: RoundMode | str = "nearest_even",
                    saturate: bool = False, seed: int | None = None, stream: int = 0) -> np.ndarray:
    """``quantize(x / scale, fmt)`` (float64 division: exact for power-of-two scales), as float32.

    The dequantized tensor is ``scale * result`` (exact in float64).

    Args:
        x: float array.
        fmt: the target format (Format or name).
        scale: positive powers of two, broadcastable to ``x`` (e.g. from :func:`amax_scale`).
        rounding: rounding mode (RoundMode or name).
        saturate: clamp overflow to +-max.
        seed, stream: stochastic rounding (see :func:`fp8emu.quantize`).

    Returns:
        float32 values of ``fmt``.

    Raises:
        ValueError: a scale that is not a positive finite power of two.
    """
    s = np.asarray(scale, dtype=np.float64)
    if not all_powers_of_two(s):
        raise ValueError("scale must hold positive finite powers of two")
    q = quantize(np.asarray(x, dtype=np.float64) / s, fmt, rounding=rounding, saturate=saturate, seed=seed,
                 stream=stream)
    return q.astype(np.float32)


# ---- delayed scaling ----------------------------------------------------------------------------------
@dataclass
class DelayedScaling:
    """Delayed per-tensor scaling: a tensor's scale comes from the amaxes of the tensors before it.

    This is the one implementation of the rule; the training engine's ``scaling="delayed"``
    (:class:`fp8emu.autograd.QuantSpec`) keeps one instance per layer and tensor class.  For
    each tensor, :meth:`scale_for` does, in this order:

    1. the *reference* amax: the tensor's own amax when nothing is recorded yet (the first
       step, so a fresh scaler never rounds a tensor with a scale that ignores it), otherwise
       ``max(history)`` (``amax_compute_algo="max"``) or the most recent entry
       (``"most_recent"``);
    2. the scale ``pow2_scale(reference, fmt, margin=margin)`` (1.0 for a zero reference, and
       1.0 for a NaN/Inf reference, which can only happen on the first step);
    3. the tensor's amax is appended to the history (at most ``history_len`` entries, the
       oldest dropped) **only if it is finite**: one overflowing step (NaN/Inf gradients that
       loss scaling will skip anyway) does not poison the scales of the next ``history_len``
       steps.

    TransformerEngine differs in two ways: it starts from scale 1 with a zero-filled history,
    and it records NaN/Inf amaxes (then keeps the previous scale while they are in the window).

    Args:
        fmt: the target format (Format or name).
        history_len: amax history length (TransformerEngine's ``amax_history_len``).
        amax_compute_algo: ``"max"`` or ``"most_recent"``.
        margin: extra power-of-two headroom: scales are multiplied by ``2^margin``.

    Raises:
        ValueError: ``history_len < 1`` or an unknown ``amax_compute_algo``.
    """

    fmt: Format
    history_len: int = 1024
    amax_compute_algo: str = "max"
    margin: int = 0
    _history: deque = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fmt = get_format(self.fmt)
        if isinstance(self.history_len, bool) or not isinstance(self.history_len, (int, np.integer)) \
                or self.history_len < 1:
            raise ValueError(f"history_len must be an int >= 1, got {self.history_len!r}")
        if self.amax_compute_algo not in ("max", "most_recent"):
            raise ValueError(f"amax_compute_algo={self.amax_compute_algo!r}; allowed: 'max', 'most_recent'")
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, np.integer)):
            raise TypeError(f"margin must be an int, got {type(self.margin).__name__}")
        self._history = deque(maxlen=int(self.history_len))

    @property
    def history(self) -> tuple[float, ...]:
        """The recorded (finite) amaxes, oldest first."""
        return tuple(self._history)

    def scale_for(self, amax_value: float, *, record: bool = True) -> float:
        """The dequantization scale of a tensor whose amax is ``amax_value``; then record it.

        Args:
            amax_value: max |x| of the tensor about to be quantized (NaN/Inf allowed).
            record: append the amax to the history (False: use the history as it is, e.g. to
                evaluate a model without the evaluation data changing later scales).

        Returns:
            A power of two ``s``; quantize ``x / s`` and dequantize with ``s``.
        """
        a = float(amax_value)
        if not self._history:
            ref = a
        else:
            ref = max(self._history) if self.amax_compute_algo == "max" else self._history[-1]
        if record:
            self.record(a)
        return pow2_scale(ref, self.fmt, margin=self.margin) if math.isfinite(ref) else 1.0

    def record(self, amax_value: float) -> None:
        """Append an amax to the history without quantizing anything (NaN/Inf are ignored).

        Args:
            amax_value: max |x| of a tensor.
        """
        a = float(amax_value)
        if math.isfinite(a):
            self._history.append(a)

    def quantize(self, x: npt.ArrayLike, *, rounding: RoundMode | str = "nearest_even", saturate: bool = True,
                 seed: int | None = None, stream: int = 0) -> tuple[np.ndarray, float]:
        """Quantize ``x`` with the scale of :meth:`scale_for` (which records its amax).

        Args:
            x: float array.
            rounding: rounding mode (RoundMode or name).
            saturate: clamp overflow to +-max; on by default, as a delayed scale can lag a
                growing tensor.
            seed: stochastic rounding seed (see :func:`fp8emu.quantize`).
            stream: stochastic rounding stream (see :func:`fp8emu.quantize`).

        Returns:
            ``(q, scale)``: float32 values of the format with ``x ~ scale * q``.
        """
        s = self.scale_for(float(amax(x)))
        return scaled_quantize(x, self.fmt, s, rounding=rounding, saturate=saturate, seed=seed, stream=stream), s

    def state_dict(self) -> list[float]:
        """The history (oldest first), for checkpoints."""
        return list(self._history)

    def load_state_dict(self, history: list[float]) -> None:
        """Restore a history saved by :meth:`state_dict` (only the last ``history_len`` entries are kept).

        Args:
            history: amaxes, oldest first.
        """
        self._history = deque((float(a) for a in history), maxlen=int(self.history_len))


# ---- MX block scaling ----------------------------------------------------------------------------------
MX_BLOCK = 32
#: MXINT8's element grid as a Format: sign-magnitude k/64, |k| <= 127 (exponent field 0: k < 64 as
#: subnormals of quantum 2^-6; field 1: 1 + t/64).  Codes are converted to two's complement int8.
MXINT8 = Format(1, 6, bias=1, specials=Specials.NONE, name="mxint8")
MX_ELEMENT_FORMATS: dict[str, Format] = {name: get_format(name) for name in
                                          ("e4m3fn", "e5m2", "e3m2fn", "e2m3fn", "e2m1fn")}
MX_ELEMENT_FORMATS["int8"] = MXINT8
_SCALE_NAN = 0xFF


class ScaleRule(str, enum.Enum):
    """How an MX block's E8M0 scale exponent ``e`` (scale ``X = 2^e``) is chosen from its amax.

    ``emax`` is the element format's largest exponent (E4M3 8, E5M2 15, E3M2 4, E2M3 2,
    E2M1 2, INT8 0), ``p`` its fraction bits.  Every rule then clamps ``e`` below at -127 and
    gives the NaN scale for ``e > 127``; ``amax == 0`` gives ``e = -127``.

    * ``FLOOR``: ``floor(log2 amax) - emax`` (OCP MX v1.0 section 6.3; microxcaling; torchao
      ``ScaleCalculationMode.FLOOR``).  ``amax / X`` can reach ``2^(emax+1)``: elements saturate.
    * ``CEIL``: ``ceil(log2 amax) - emax`` (torchao ``CEIL``: one more when the float32
      mantissa of amax is nonzero).  ``amax / X <= 2^emax``: never saturates, but can lose the
      top binade.
    * ``EVEN``: ``floor(log2 amax') - emax`` with ``amax'`` = amax rounded to ``p`` fraction
      bits, halfway cases up (torchao ``EVEN``: adds half an element ulp to the float32 bits
      and truncates): the scale steps up only when the block max would round to
      ``2^(emax+1)`` anyway.  Saturates where the element max is below ``(2 - 2^-p) 2^emax``
      (E4M3FN: 448 < 480).
    * ``RCEIL``: ``ceil(log2 d)`` with the float32 descale ``d = fl32(amax * fl32(1 / max))``
      (cuBLAS/cuDNN "1D block quantization": ``scale = round_up(amax / max)``; torchao
      ``RCEIL`` and TransformerEngine's MXFP8 cast round ``d`` up to E8M0, PTX
      ``cvt.rp.satfinite.ue8m0x2.f32``, which saturates at 2^127 where fp8emu, like torchao's
      float32 bit arithmetic, gives the NaN scale).  ``amax / X <= max`` up to the float32 rounding of ``d``:
      never saturates.  With float64 inputs whose amax is not a float32 value the float64
      product is rounded to float32 (hardware takes float32/bfloat16, where the product is
      exact and only the float32 rounding happens).
    """

    FLOOR = "floor"
    CEIL = "ceil"
    EVEN = "even"
    RCEIL = "rceil"

    @classmethod
    def parse(cls, rule: "ScaleRule | str") -> "ScaleRule":
        """The rule for an enum member or its name (case-insensitive).

        Raises:
            ValueError: unknown name (the message lists the allowed ones).
        """
        if isinstance(rule, cls):
            return rule
        if isinstance(rule, str):
            try:
                return cls(rule.strip().lower())
            except ValueError:
                pass
        raise ValueError(f"scale_rule={rule!r} is unknown; allowed: {', '.join(repr(m.value) for m in cls)}")


def _element_format(elem: Format | str) -> Format:
    if isinstance(elem, str) and elem.strip().lower() in ("int8", "mxint8"):
        return MXINT8
    fmt = get_format(elem)
    if fmt not in MX_ELEMENT_FORMATS.values():
        raise ValueError(f"MX element format {fmt.name!r} is not one of OCP MX v1.0's: "
                         f"{', '.join(MX_ELEMENT_FORMATS)}")
    return fmt


@dataclass(frozen=True)
class MXTensor:
    """An MX-quantized tensor: element codes plus one E8M0 scale per block of ``block`` along ``axis``.

    Attributes:
        elements: uint8 element codes of ``elem_fmt`` (int8 two's complement for MXINT8),
            shaped like the original tensor.
        scales: uint8 E8M0 codes (``e + 127``; 0xFF = NaN), the original shape with
            ``axis`` replaced by the number of blocks ``ceil(n / block)``.
        elem_fmt: the element Format (:data:`MXINT8` for int8).
        axis: the blocked axis (non-negative).
        block: block length (32 in OCP MX).
        scale_rule: the :class:`ScaleRule` that chose the scales.
    """

    elements: np.ndarray
    scales: np.ndarray
    elem_fmt: Format
    axis: int
    block: int = MX_BLOCK
    scale_rule: ScaleRule = ScaleRule.FLOOR

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the quantized tensor (of ``elements``)."""
        return self.elements.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions of the quantized tensor."""
        return self.elements.ndim

    def dequantize(self, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
        """:func:`mx_dequantize` of this tensor.

        Args:
            dtype: the result's float dtype.

        Returns:
            The values, shaped like ``elements``.
        """
        return mx_dequantize(self, dtype=dtype)


def _float_input(x: npt.ArrayLike) -> np.ndarray:
    """``x`` as an array of one of the supported float dtypes (float16, bfloat16, float32, float64)."""
    arr = np.asarray(x)
    if arr.dtype.name not in INPUT_LAYOUTS:
        raise TypeError(f"x must be a float array ({', '.join(INPUT_LAYOUTS)}), got dtype {arr.dtype}")
    return arr


def _blocks(x: np.ndarray, axis: int, block: int) -> tuple[np.ndarray, int]:
    """Move ``axis`` last and zero-pad it to whole blocks: (..., nblocks, block), original length."""
    moved = np.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    nb = -(-n // block)
    if nb * block != n:
        pad = np.zeros(moved.shape[:-1] + (nb * block - n,), dtype=moved.dtype)
        moved = np.concatenate([moved, pad], axis=-1)
    return moved.reshape(moved.shape[:-1] + (nb, block)), n


def _mx_exponent(am: np.ndarray, fmt: Format, rule: ScaleRule) -> np.ndarray:
    """Unclamped scale exponents of finite positive block amaxes (float64) by ``rule``."""
    if rule is ScaleRule.RCEIL:
        # float32 descale as the hardware computes it; am is a float32 value for float32/bf16/
        # fp16 inputs, so the float64 product is exact and the cast is the one float32 rounding
        rcp = np.float64(np.float32(1.0) / np.float32(fmt.max))
        with np.errstate(over="ignore"):
            am = (am * rcp).astype(np.float32).astype(np.float64)
    elif rule is ScaleRule.EVEN:
        # amax rounded to the element's fraction bits, halfway up: the next binade once the
        # significand reaches 2 - 2^-(p+1)
        mant, ex = np.frexp(am)
        return np.where(mant >= 1.0 - 2.0 ** -(fmt.man_bits + 2), ex, ex - 1) - fmt.emax
    mant, ex = np.frexp(am)                                        # am = mant * 2^ex, mant in [0.5, 1)
    if rule is ScaleRule.FLOOR:
        return (ex - 1) - fmt.emax
    ceil_log2 = np.where(mant == 0.5, ex - 1, ex)
    if rule is ScaleRule.CEIL:
        return ceil_log2 - fmt.emax
    return np.where(am == 0, -127, np.where(np.isinf(am), 128, ceil_log2))   # RCEIL: descale 0 / inf


def mx_quantize(x: npt.ArrayLike, elem_fmt: Format | str, *, axis: int = -1, block: int = MX_BLOCK,
                rounding: RoundMode | str = "nearest_even", scale_rule: ScaleRule | str = ScaleRule.FLOOR,
                seed: int | None = None, stream: int = 0) -> MXTensor:
    """Quantize ``x`` to MX: blocks of ``block`` along ``axis`` share a power-of-two E8M0 scale.

    Args:
        x: float array (float16, bfloat16 (ml_dtypes), float32, float64); equal values give
            bit-identical results whatever the dtype.
        elem_fmt: ``"e4m3fn"``, ``"e5m2"``, ``"e3m2fn"``, ``"e2m3fn"``, ``"e2m1fn"`` or ``"int8"``.
        axis: the blocked axis (the reduction axis of the GEMM that will consume it).
        block: block length (OCP: 32); a last partial block is allowed.
        rounding: element rounding mode (elements always saturate); ``"stochastic"`` uses
            ``seed``/``stream`` with element indices in C order of ``x``.
        scale_rule: how the scale exponent is chosen (:class:`ScaleRule`; default ``"floor"``,
            OCP MX v1.0).

    Returns:
        An :class:`MXTensor`.  Scale rule, NaN/Inf and saturation: see the module docstring.

    Raises:
        TypeError: ``x`` is not a supported float array.
        ValueError: unknown element format or scale rule, bad ``axis`` or ``block``.
    """
    fmt = _element_format(elem_fmt)
    rule = ScaleRule.parse(scale_rule)
    arr = _float_input(x)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis={axis} is out of range for a {arr.ndim}-d array")
    ax = axis % arr.ndim
    v = arr.astype(np.float64)
    blocks, n = _blocks(v, ax, int(block))
    with np.errstate(invalid="ignore"):
        am = np.max(np.abs(blocks), axis=-1)                      # NaN if any NaN
    bad = ~np.isfinite(am)
    am = np.where(bad, 1.0, am)
    e = np.where(am == 0, -127, np.maximum(_mx_exponent(am, fmt, rule), -127))
    nan_scale = bad | (e > 127)
    e = np.where(nan_scale, 0, e)
    scaled = np.where(nan_scale[..., None], 0.0, blocks / np.exp2(e)[..., None])    # exact in float64
    scaled = np.moveaxis(scaled.reshape(scaled.shape[:-2] + (-1,))[..., :n], -1, ax)
    codes = encode(np.ascontiguousarray(scaled), fmt, rounding=rounding, saturate=True, seed=seed, stream=stream)
    if fmt is MXINT8:
        codes = _sign_magnitude_to_int8(codes)
    scales = np.where(nan_scale, _SCALE_NAN, e + 127).astype(np.uint8)
    return MXTensor(codes, np.moveaxis(scales, -1, ax), fmt, ax, int(block), rule)


def _sign_magnitude_to_int8(codes: np.ndarray) -> np.ndarray:
    """MXINT8 codes ``S kkkkkkk`` (sign-magnitude, k = |value| * 64) -> two's complement int8."""
    mag = (codes & 0x7F).astype(np.int16)
    return np.where(codes & 0x80, -mag, mag).astype(np.int8)


def mx_dequantize(mx: MXTensor, *, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Values ``element * 2^(scale - 127)`` (NaN where the block scale is NaN), as ``dtype``.

    Computed in float64 (exact); the cast to float32 is exact unless a value leaves float32's
    range (possible only for hand-made codes), where it rounds/overflows as a float32 cast does.

    Args:
        mx: an :class:`MXTensor`.
        dtype: the result's float dtype.

    Returns:
        The values, shaped like ``mx.elements``.

    Raises:
        TypeError: ``mx`` is not an MXTensor.
        ValueError: scales that do not match the elements' blocks.
    """
    if not isinstance(mx, MXTensor):
        raise TypeError(f"mx must be an MXTensor, got {type(mx).__name__}")
    if mx.elem_fmt is MXINT8 or mx.elem_fmt == MXINT8:
        vals = mx.elements.astype(np.float64) / 64.0
    else:
        vals = decode(mx.elements, mx.elem_fmt, dtype=np.float64)
    blocks, n = _blocks(vals, mx.axis, mx.block)
    sc = np.moveaxis(mx.scales, mx.axis, -1)
    if sc.shape != blocks.shape[:-1]:
        raise ValueError(f"scales have shape {mx.scales.shape}, which does not match {blocks.shape[-2]} blocks "
                         f"of {mx.block} along axis {mx.axis} of elements {mx.elements.shape}")
    factor = np.where(sc == _SCALE_NAN, np.nan, np.exp2(sc.astype(np.float64) - 127.0))
    out = (blocks * factor[..., None]).reshape(blocks.shape[:-2] + (-1,))[..., :n]
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(np.moveaxis(out, -1, mx.axis)).astype(dtype)


# ---- NVFP4 two-level block scaling ----------------------------------------------------------------------
NVFP4_BLOCK = 16
_E2M1, _E4M3 = get_format("e2m1fn"), get_format("e4m3fn")
_F32 = np.float32
_F32_MAX = _F32(np.finfo(np.float32).max)


@dataclass(frozen=True)
class NVFP4Tensor:
    """An NVFP4 tensor: E2M1 element codes, one E4M3 scale per block, one float32 tensor scale.

    Attributes:
        elements: uint8 E2M1 codes (``S EE M`` in the low 4 bits), shaped like the original tensor.
        scales: uint8 E4M3FN codes of the block decode scales, the original shape with each
            blocked axis replaced by its number of blocks (``ceil(n / 16)``); 0x7F = NaN.
        tensor_scale: the float32 per-tensor *encode* scale ``S_enc = fl32(448 * 6 / amax)``.
        amax: the float32 amax of the whole tensor.
        axes: the blocked axes: one (16-element blocks) or two (16x16 tiles), non-negative.
        block: the block length along each blocked axis (16).
    """

    elements: np.ndarray
    scales: np.ndarray
    tensor_scale: np.float32
    amax: np.float32
    axes: tuple[int, ...]
    block: int = NVFP4_BLOCK

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the quantized tensor (of ``elements``)."""
        return self.elements.shape

    @property
    def decode_scale(self) -> np.float32:
        """The per-tensor decode scale ``S_dec = fl32(1 / S_enc)``."""
        with np.errstate(divide="ignore"):
            return _F32(1.0) / _F32(self.tensor_scale)

    def dequantize(self, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
        """:func:`nvfp4_dequantize` of this tensor.

        Args:
            dtype: the result's float dtype.
        """
        return nvfp4_dequantize(self, dtype=dtype)


def _tiles(x: np.ndarray, axes: tuple[int, ...], block: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Move ``axes`` last, zero-pad each to whole blocks and split it: (..., nb0, block[, nb1, block])."""
    k = len(axes)
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - k, x.ndim)))
    sizes = moved.shape[x.ndim - k:]
    padded = [-(-n // block) * block for n in sizes]
    if list(sizes) != padded:
        moved = np.pad(moved, [(0, 0)] * (x.ndim - k) + [(0, p - n) for n, p in zip(sizes, padded)])
    split = moved.shape[:x.ndim - k] + sum(((p // block, block) for p in padded), ())
    return moved.reshape(split), tuple(sizes)


def _untile(t: np.ndarray, axes: tuple[int, ...], sizes: tuple[int, ...]) -> np.ndarray:
    """Undo :func:`_tiles` (drop the padding, move the axes back)."""
    k = len(axes)
    lead = t.shape[:t.ndim - 2 * k]
    flat = t.reshape(lead + tuple(t.shape[t.ndim - 2 * k + 2 * i] * t.shape[t.ndim - 2 * k + 2 * i + 1]
                                  for i in range(k)))
    flat = flat[(Ellipsis,) + tuple(slice(0, n) for n in sizes)]
    return np.moveaxis(flat, tuple(range(flat.ndim - k, flat.ndim)), axes)


def _block_axes(ndim: int, axis: int | tuple[int, ...]) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else tuple(axis)
    if not 1 <= len(axes) <= 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise ValueError(f"axis must be an int (16-element blocks) or a pair of ints (16x16 tiles), got {axis!r}")
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"axis={axis!r} is out of range for a {ndim}-d array")
    out = tuple(int(a) % ndim for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"axis={axis!r} names the same axis twice")
    return out


def nvfp4_quantize(x: npt.ArrayLike, *, axis: int | tuple[int, int] = -1,
                   rounding: RoundMode | str = "nearest_even", seed: int | None = None,
                   stream: int = 0) -> NVFP4Tensor:
    """Quantize ``x`` to NVFP4: E2M1 elements, an E4M3 decode scale per block of 16, a float32 tensor scale.

    NVIDIA's two-level scheme, in the float32 operation order of TransformerEngine's NVFP4
    reference quantizer (which TransformerEngine holds byte-exact to its CUDA kernel)::

        x      = x as float32                               # bf16/fp16 exact; float64 rounds (RNE, Inf beyond)
        A      = max |x| over the tensor
        S_enc  = min(fl32(448 * 6 / A), FLT_MAX); 1 if it is 0        # A = 0 -> FLT_MAX
        S_dec  = fl32(1 / S_enc)
        d_b    = E4M3_RNE(clamp(fl32(amax_b * fl32(S_enc * fl32(1 / 6))), <= 448))   # stored scale
        e_b    = min(fl32(1 / fl32(d_b * S_dec)), FLT_MAX)                           # d_b = 0 -> FLT_MAX
        q      = E2M1(clamp(fl32(x * e_b), -6, 6), rounding)                         # element
        value  = q * d_b * S_dec                                                     # dequantize

    Args:
        x: float16, bfloat16 (ml_dtypes), float32 or float64 array (at least 1-d; 2-d for tiles).
        axis: an int: blocks of 16 consecutive elements along it (activations, gradients: the
            GEMM's reduction axis); a pair of ints: 16x16 tiles over those two axes (weights,
            so that the transposed weight of the backward GEMM has the same blocks).  The
            last block or tile may be partial (zero-padded for its amax).
        rounding: element rounding (``"nearest_even"``; ``"stochastic"`` as NVIDIA's recipe
            uses for gradients, random bits from ``seed``/``stream`` and the C-order index).
        seed: stochastic rounding seed.
        stream: stochastic rounding stream.

    Returns:
        An :class:`NVFP4Tensor`.

    Non-finite input (as the float32 sequence above gives): a NaN anywhere makes ``A`` NaN,
    so every block scale is NaN (0x7F) and the whole tensor dequantizes to NaN (element codes
    0).  +-Inf without NaN makes ``S_enc = 1``: the Inf saturates to +-6 with block scale 448
    (it dequantizes to +-2688) and the other blocks are scaled as if the amax were 2688 -- so
    check gradients for overflow *before* quantizing them.  All-zero blocks get scale 0 and
    zero elements; an all-zero tensor has ``S_enc = FLT_MAX``.  A nonzero block whose scale
    rounds to 0 in E4M3 dequantizes to zeros (its element codes saturate, as in the source).

    Raises:
        TypeError: ``x`` is not a supported float array.
        ValueError: bad ``axis``, or ``x`` is 0-d.
    """
    arr = _float_input(x)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension")
    axes = _block_axes(arr.ndim, axis)
    with np.errstate(over="ignore"):
        x32 = arr.astype(np.float32)
    tiles, sizes = _tiles(x32, axes, NVFP4_BLOCK)
    inner = tuple(range(tiles.ndim - 2 * len(axes) + 1, tiles.ndim, 2))     # the within-block dims
    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        a = _F32(np.max(np.abs(x32))) if x32.size else _F32(0.0)
        s_enc = np.minimum(_F32(448.0 * 6.0) / a, _F32_MAX)
        s_enc = _F32(1.0) if s_enc == 0 else s_enc
        s_dec = _F32(1.0) / s_enc
        amax_b = np.max(np.abs(tiles), axis=inner, keepdims=True)          # NaN if any NaN
        d = np.minimum(amax_b * (s_enc * (_F32(1.0) / _F32(6.0))), _F32_MAX)
        d_codes = encode(np.minimum(d, _F32(448.0)), _E4M3)
        d_val = decode(d_codes, _E4M3, dtype=np.float32)
        e_b = np.minimum(_F32(1.0) / (d_val * s_dec), _F32_MAX)
        scaled = np.clip(tiles * e_b, _F32(-6.0), _F32(6.0))
    scaled = np.ascontiguousarray(_untile(scaled, axes, sizes))
    codes = encode(scaled, _E2M1, rounding=rounding, saturate=True, seed=seed, stream=stream)
    codes = np.where(np.isnan(scaled), np.uint8(0), codes)
    scales = _untile(d_codes, axes, tuple(-(-n // NVFP4_BLOCK) for n in sizes))
    return NVFP4Tensor(codes, np.ascontiguousarray(scales), _F32(s_enc), _F32(a), axes)


def nvfp4_dequantize(t: NVFP4Tensor, *, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Values ``element * block scale * S_dec`` (NaN where the block scale is NaN), as ``dtype``.

    The product is exact in float64 (2 + 4 + 24 significant bits); the cast to ``dtype`` is
    the one rounding.  (NVIDIA's GEMMs apply the two tensors' factor as
    ``alpha = amax_a * amax_b / (448 * 6)^2`` instead of ``S_dec_a * S_dec_b``; the two agree
    up to float32 rounding.)

    Args:
        t: an :class:`NVFP4Tensor`.
        dtype: the result's float dtype.

    Raises:
        TypeError: ``t`` is not an NVFP4Tensor.
        ValueError: its scales do not match its elements' blocks.
    """
    if not isinstance(t, NVFP4Tensor):
        raise TypeError(f"t must be an NVFP4Tensor, got {type(t).__name__}")
    vals, sizes = _tiles(decode(t.elements, _E2M1, dtype=np.float64), t.axes, t.block)
    nb = tuple(-(-n // t.block) for n in sizes)
    sc = np.moveaxis(t.scales, t.axes, tuple(range(t.scales.ndim - len(t.axes), t.scales.ndim)))
    if sc.shape != vals.shape[:vals.ndim - 2 * len(t.axes)] + nb:
        raise ValueError(f"scales have shape {t.scales.shape}, which does not match blocks of {t.block} along "
                         f"axes {t.axes} of elements {t.elements.shape}")
    d = decode(sc, _E4M3, dtype=np.float64)
    d = d.reshape(d.shape[:d.ndim - len(t.axes)] + sum(((n, 1) for n in nb), ()))
    out = _untile(vals * d * np.float64(t.decode_scale), t.axes, sizes)
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(out).astype(dtype)
