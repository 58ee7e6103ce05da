"""Per-layer quantization policy of the GEMM/conv ops: `QuantSpec` and `LayerQuant`.

A :class:`QuantSpec` says how one tensor class is rounded (format, rounding, saturation,
random bits, scaling).  A :class:`LayerQuant` is what one Conv2d/Linear layer carries: a spec
(or ``None`` = keep float32) per tensor class, the accumulator of its GEMMs, and the seed
material of stochastic rounding.  Recipes (:mod:`fp8emu.recipes`) build them; the ops in
:mod:`fp8emu.autograd.ops` apply them through :mod:`fp8emu.autograd.qgemm`.

Tensor classes (the names of the paper and of the authors' toolkit):

=============== ========================================================= ==========
class           tensor                                                    pass
=============== ========================================================= ==========
activations     input X of the GEMM/conv                                  forward
weights         weights W                                                 forward
outputs         result Y (after bias), when output quantization is on     forward
errors          incoming gradient dY (the "error")                        backward
input_grads     dX computed by the GEMM, before it flows on               backward
weight_grads    dW computed by the GEMM                                   backward
=============== ========================================================= ==========

Stochastic rounding is reproducible: the random bits of a tensor are a pure function of
``(seed, stream)`` with ``stream = (step << 24) | (layer index << 4) | class id``, where
``step`` counts this layer's forward passes with gradients enabled (one per training
step), so a run replays exactly from a seed and a step number.  Ids 0-5 are the classes above
in order; a stochastic accumulator's GEMMs draw from ids 6-8 (``qgemm.accumulator_stream``).

Scaling (``QuantSpec.scaling``): ``"none"``; ``"tensor"`` (current per-tensor power-of-two
scale from this tensor's amax); ``"delayed"`` (:class:`fp8emu.scaling.DelayedScaling`, one
per layer and class: the scale comes from the max over the last ``history`` finite amaxes,
or from this tensor's own amax on the first step; then this tensor's amax is recorded); ``"mx"`` (OCP MX: blocks of ``block`` elements along the channel
axis share a power-of-two scale chosen by ``scale_rule``, elements saturate); ``"nvfp4"``
(NVIDIA's NVFP4, :func:`fp8emu.scaling.nvfp4_quantize`: E2M1 elements, an E4M3 scale per 16
elements along the channel axis -- or per 16x16 tile over axes 0 and 1 with ``tile_2d`` --
and a float32 tensor scale).
With ``"none"``, ``"tensor"`` and ``"delayed"`` the GEMM receives values exact in the format
and the product of the scales is applied to its float32 result (exact: powers of two); with
``"mx"`` and ``"nvfp4"`` the GEMM receives the dequantized float32 values (each block's
values are format values times the block's scale).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import scaling as _scaling
from .._checks import check_int
from ..quantize import encode as _encode
from .arrays import NUMPY_OPS, ArrayOps, array_ops
from ._kernels import threads_for
from ..accumulators import Accumulator
from ..format import Format, RoundMode
from ..formats import get_format

__all__ = ["QuantSpec", "LayerQuant", "TENSOR_CLASSES", "add_observer", "remove_observer"]

TENSOR_CLASSES: tuple[str, ...] = ("activations", "weights", "outputs", "errors", "input_grads", "weight_grads")
_CLASS_ID = {name: i for i, name in enumerate(TENSOR_CLASSES)}
_SCALINGS = ("none", "tensor", "delayed", "mx", "nvfp4")
_BLOCK_SCALINGS = ("mx", "nvfp4")  # the GEMM gets dequantized values; observers get per-element scales

#: Functions called as ``fn(layer, tclass, x, q, spec)`` after every quantization (statistics).
_observers: list[Callable[..., None]] = []


def add_observer(fn: Callable[..., None]) -> None:
    """Call ``fn(layer: LayerQuant, tclass: str, x, q, spec)`` after each quantization.

    Args:
        fn: the observer (e.g. a :class:`fp8emu.stats.QuantStats`); it is called in the order
            of registration.

    ``x`` is the input, ``q`` the dequantized result, and ``layer.last_scale`` the
    dequantization scale of this call: a number (1.0 without scaling; the power of two of
    per-tensor and delayed scaling), or under MX and NVFP4 an array shaped like ``x`` holding
    each element's scale (the block scale, times NVFP4's tensor scale), so that
    ``fmt.max * last_scale`` is the largest magnitude ``q`` can take.
    """
    _observers.append(fn)


def remove_observer(fn: Callable[..., None]) -> None:
    """Undo :func:`add_observer` (no error if ``fn`` is not registered).

    Args:
        fn: the observer to remove.
    """
    if fn in _observers:
        _observers.remove(fn)


@dataclass(frozen=True)
class QuantSpec:
    """How one tensor class is rounded.

    Args:
        fmt: target format (Format or name).
        rounding: a :class:`RoundMode` or its name (``"nearest_even"``, ``"stochastic"``, ...).
        saturate: clamp overflow to +-max instead of Inf/NaN.
        sr_bits: random bits per stochastic rounding (None: exact probabilities).
        scaling: ``"none"``, ``"tensor"``, ``"delayed"`` or ``"mx"`` (module docstring).
        history: amax history length of delayed scaling.
        margin: delayed/tensor scaling leave ``2^margin`` head-room below the format's max.
        block: MX block size.
        scale_rule: how MX block scales are chosen (:class:`fp8emu.scaling.ScaleRule` or its
            name: ``"floor"`` (OCP MX v1.0, the default), ``"ceil"``, ``"even"``, ``"rceil"``).
        tile_2d: NVFP4 only: 16x16 tiles over axes 0 and 1 (weights: (out, in) of a Linear,
            (O, C) of a conv at each kernel position) instead of 16-element blocks along axis 1.

    Raises:
        ValueError: unknown scaling, format or scale rule, ``"nvfp4"`` with a format other
            than ``e2m1fn``, ``tile_2d`` without ``"nvfp4"``, or a bad history/block.
    """

    fmt: Format
    rounding: RoundMode = RoundMode.NEAREST_EVEN
    saturate: bool = False
    sr_bits: int | None = None
    scaling: str = "none"
    history: int = 16
    margin: int = 0
    block: int = 32
    scale_rule: _scaling.ScaleRule = _scaling.ScaleRule.FLOOR
    tile_2d: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "fmt", get_format(self.fmt))
        object.__setattr__(self, "rounding", RoundMode.parse(self.rounding))
        object.__setattr__(self, "scale_rule", _scaling.ScaleRule.parse(self.scale_rule))
        if self.scaling not in _SCALINGS:
            raise ValueError(f"QuantSpec.scaling={self.scaling!r} is unknown; allowed: {', '.join(_SCALINGS)}")
        if self.scaling == "nvfp4" and self.fmt.name != "e2m1fn":
            raise ValueError(f"QuantSpec.scaling='nvfp4' has E2M1 elements: fmt must be 'e2m1fn', "
                             f"not {self.fmt.name!r}")
        if self.tile_2d and self.scaling != "nvfp4":
            raise ValueError("QuantSpec.tile_2d=True needs scaling='nvfp4'")
        if self.sr_bits is not None and self.rounding is not RoundMode.STOCHASTIC:
            raise ValueError(f"QuantSpec.sr_bits={self.sr_bits} needs rounding='stochastic'")
        check_int("QuantSpec.history", self.history, low=1)
        check_int("QuantSpec.block", self.block, low=1)
        check_int("QuantSpec.margin", self.margin, low=-(1 << 20))  # any int; NaN or 0.5 would fail much later
        if self.sr_bits is not None:
            check_int("QuantSpec.sr_bits", self.sr_bits, low=1)

    @property
    def stochastic(self) -> bool:
        """Whether the rounding is stochastic."""
        return self.rounding is RoundMode.STOCHASTIC

    def __str__(self) -> str:
        extra = f", sr_bits={self.sr_bits}" if self.sr_bits else ""
        extra += ", saturate" if self.saturate else ""
        extra += f", {self.scaling} scaling" if self.scaling != "none" else ""
        if self.scaling == "mx" and self.scale_rule is not _scaling.ScaleRule.FLOOR:
            extra += f" ({self.scale_rule.value} scales)"
        extra += " (16x16 tiles)" if self.tile_2d else ""
        return f"{self.fmt.name}/{self.rounding.value}{extra}"


@dataclass(eq=False)
class LayerQuant:
    """The quantization policy and state of one Conv2d/Linear layer.

    Args:
        name: the layer's module name (for statistics and errors).
        index: the layer's position among the model's GEMM layers (enters the SR streams).
        specs: tensor class -> QuantSpec or None (missing classes are not quantized).
        accumulator: how the layer's GEMMs sum (None: the default float32 BLAS).
        seed: the recipe seed of stochastic rounding.
        pass_formats: tell the accumulator the operands' formats (hardware models need them;
            the float32 software accumulators do not, and the GEMM layer would round the
            already exact operands again).
    """

    name: str = ""
    index: int = 0
    specs: dict[str, QuantSpec | None] = field(default_factory=dict)
    accumulator: Accumulator | None = None
    seed: int = 0
    pass_formats: bool = True
    step: int = 0
    last_inv: float = 1.0
    last_scale: float | np.ndarray = field(default=1.0, repr=False)  # for observers, see add_observer
    _amax: dict[str, _scaling.DelayedScaling] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for key in self.specs:
            if key not in _CLASS_ID:
                raise ValueError(f"unknown tensor class {key!r}; allowed: {', '.join(TENSOR_CLASSES)}")

    def spec(self, tclass: str) -> QuantSpec | None:
        """The rounding of one tensor class.

        Args:
            tclass: one of :data:`TENSOR_CLASSES`.

        Returns:
            Its :class:`QuantSpec`, or None when the class is not quantized.
        """
        return self.specs.get(tclass)

    @property
    def quantized(self) -> bool:
        """Whether any tensor class of this layer is quantized."""
        return any(s is not None for s in self.specs.values())

    def fmt_for_gemm(self, tclass: str) -> Format | None:
        """The format to announce to the accumulator for an operand of this class (None if plain).

        Args:
            tclass: the operand's tensor class (one of :data:`TENSOR_CLASSES`).

        Returns:
            The class's format, or None when the class is not quantized, is block-scaled (the
            GEMM gets dequantized values) or the layer does not pass formats.
        """
        s = self.specs.get(tclass)
        if s is None or s.scaling in _BLOCK_SCALINGS or not self.pass_formats:
            return None
        return s.fmt

    def stream(self, step: int, tclass: str) -> int:
        """The stochastic-rounding stream of one tensor class at one step (unique per step, layer
        index and class, so no two roundings of a run share random words).

        Args:
            step: the training step.
            tclass: one of :data:`TENSOR_CLASSES`.

        Returns:
            ``step << 24 | (index & 0xFFFFF) << 4 | class number``.
        """
        return (int(step) << 24) | ((int(self.index) & 0xFFFFF) << 4) | _CLASS_ID[tclass]

    def quantize(self, x: Any, tclass: str, step: int, inplace: bool = False, *,
                 record_amax: bool = True) -> tuple[Any, float]:
        """Round ``x`` by the spec of ``tclass``; return ``(q, inv)`` with ``x ~ q * inv``.

        ``x`` is a NumPy array or any array type registered in :mod:`fp8emu.autograd.arrays`
        (``q`` is of the same type, on the same device).

        ``q`` is ``x`` itself when the class is not quantized (``inv`` = 1.0).  With
        per-tensor or delayed scaling ``q`` holds format values and ``inv`` is a power of two.
        ``inplace`` lets the rounding overwrite ``x`` (for arrays nobody else holds); it is
        ignored while observers (statistics) need the unrounded input.

        Args:
            x: the array to round.
            tclass: its tensor class (one of :data:`TENSOR_CLASSES`).
            step: the training step (selects the stochastic-rounding stream).
            inplace: allow the rounding to overwrite ``x``.
            record_amax: with delayed scaling, add ``x``'s amax to the class's history (False
                for a forward pass that is not a training step: evaluation must not change
                the scales of later training steps).

        Returns:
            ``(q, inv)``: the rounded tensor and its dequantization scale.
        """
        s = self.specs.get(tclass)
        if s is None:
            return x, 1.0
        seed = self.seed if s.stochastic else None
        kw: dict[str, Any] = dict(rounding=s.rounding, saturate=s.saturate, seed=seed, sr_bits=s.sr_bits,
                                  stream=self.stream(step, tclass))
        ops = array_ops(x)
        with threads_for(ops.size(x)):
            q, inv = self._round(ops, x, s, tclass, kw, inplace, record_amax)
        if _observers:
            self.last_inv = inv  # the dequantization scale of this call, for observers
            if s.scaling not in _BLOCK_SCALINGS:  # block scalings set it in _round
                self.last_scale = inv
            xh, qh = ops.to_host(x), ops.to_host(q)   # observers get NumPy arrays (copies from a GPU)
            deq = qh if inv == 1.0 else NUMPY_OPS.scale_(np.array(qh, copy=True), inv)   # as the GEMM rules rescale
            for fn in list(_observers):
                fn(self, tclass, xh, deq, s)
        return q, inv

    def _round(self, ops: ArrayOps, x: Any, s: QuantSpec, tclass: str, kw: dict[str, Any],
               inplace: bool, record_amax: bool = True) -> tuple[Any, float]:
        inv = 1.0
        if s.scaling in _BLOCK_SCALINGS:
            # block scaling runs on the host (NumPy) for every array type; the result returns to x's device
            xh = ops.to_host(x)
            t = (_mx_quantize if s.scaling == "mx" else _nvfp4_quantize)(xh, s, kw)
            q = ops.from_host(t.dequantize(dtype=xh.dtype), x)
            if _observers:
                self.last_scale = _element_scales(t, getattr(t, "elem_fmt", s.fmt))
        elif s.scaling == "none":
            q = ops.quantize(x, s.fmt, out=x if inplace and not _observers and ops.contiguous(x) else None, **kw)
        else:
            amax = ops.amax(x)
            if s.scaling == "delayed":
                inv = self._delayed(tclass, s).scale_for(amax, record=record_amax)
            else:
                inv = _scaling.pow2_scale(amax, s.fmt, margin=s.margin) if math.isfinite(amax) else 1.0
            q = ops.quantize_scaled(x, 1.0 / inv, s.fmt, **kw)
        return q, inv

    def _delayed(self, tclass: str, s: QuantSpec) -> _scaling.DelayedScaling:
        """The delayed scaler of one tensor class (created on first use)."""
        ds = self._amax.get(tclass)
        if ds is None:
            ds = self._amax[tclass] = _scaling.DelayedScaling(s.fmt, history_len=s.history, margin=s.margin)
        return ds

    def state_dict(self) -> dict[str, Any]:
        """The step counter and the amax histories of delayed scaling (for checkpoints)."""
        return {"step": self.step, "amax": {k: v.state_dict() for k, v in self._amax.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Args:
            state: what :meth:`state_dict` returned (amax histories of classes this layer no
                longer scales are kept, as delayed scaling of that class).
        """
        self.step = int(state["step"])
        for k, v in state.get("amax", {}).items():
            spec = self.specs.get(k) or QuantSpec("e5m2", scaling="delayed")  # a class this recipe no longer scales
            self._delayed(k, spec).load_state_dict(v)


def _element_scales(t: _scaling.MXTensor | _scaling.NVFP4Tensor, elem_fmt: Format) -> np.ndarray:
    """Each element's dequantization scale under block scaling, shaped like the elements (float64,
    NaN for a NaN block scale): the block scale, times the tensor scale for NVFP4.  Computed as
    the dequantized value of the same tensor with every element equal to 1 (exact in float64)."""
    one = int(_encode(np.float32(1.0), elem_fmt))
    return dataclasses.replace(t, elements=np.full_like(t.elements, one)).dequantize(dtype=np.float64)


def _mx_quantize(x: np.ndarray, s: QuantSpec, kw: dict[str, Any]) -> _scaling.MXTensor:
    """OCP MX along axis 1 (channels of NCHW/OIHW, features of (N, K)).

    The channel axis is the reduction axis of the forward GEMM (for convolutions, the C part
    of C*KH*KW); the backward GEMMs reuse these blocks (a simplification: real MX hardware
    re-blocks along their reduction axes).
    """
    return _scaling.mx_quantize(x, s.fmt, axis=1 if x.ndim > 1 else 0, block=s.block, rounding=kw["rounding"],
                                scale_rule=s.scale_rule, seed=kw["seed"], stream=kw["stream"])


def _nvfp4_quantize(x: np.ndarray, s: QuantSpec, kw: dict[str, Any]) -> _scaling.NVFP4Tensor:
    """NVFP4 along axis 1 (or 16x16 tiles over axes 0 and 1 with ``tile_2d``).

    As for MX, the backward GEMMs reuse these blocks; with 16x16 weight tiles that is exact
    for the weight (the transposed weight has the same tiles, NVIDIA's reason for them).
    """
    axis: int | tuple[int, int] = (0, 1) if s.tile_2d and x.ndim > 1 else (1 if x.ndim > 1 else 0)
    return _scaling.nvfp4_quantize(x, axis=axis, rounding=kw["rounding"], seed=kw["seed"], stream=kw["stream"])
