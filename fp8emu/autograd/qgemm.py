"""The quantized GEMM of a Linear or Conv2d layer: one implementation of its rules.

A layer's three products (forward ``y = x * w``, backward ``dx = dy * w`` and
``dw = x * dy``) are quantized the same way whatever the layer computes, by its
:class:`~fp8emu.autograd.LayerQuant` policy:

forward (:func:`quantized_forward`)
    1. ``x`` as class ``activations`` and ``w`` as class ``weights``, each to ``(q, scale)``
       with ``x ~ q * scale`` (scale 1 without scaling; a power of two otherwise);
    2. the product of the quantized operands, the operands' formats announced to the
       accumulator when the policy says so (:meth:`LayerQuant.fmt_for_gemm`);
    3. the float32 result times ``scale_x * scale_w`` (exact: powers of two), plus the bias;
    4. the result as class ``outputs`` (kept float32 when that class is not quantized), times
       its scale: the rounded results flow on dequantized.

backward (:func:`quantized_backward`)
    1. ``dy`` as class ``errors``;
    2. ``dx`` = product of the quantized ``dy`` and the *saved quantized* ``w``, times
       ``scale_dy * scale_w``, then rounded as class ``input_grads``;
    3. ``dw`` = product of the quantized ``dy`` and the *saved quantized* ``x``, times
       ``scale_dy * scale_x``, then rounded as class ``weight_grads``.

Every rounding of one training step uses the step number of its forward pass, so the
stochastic-rounding stream of a tensor is ``LayerQuant.stream(step, tensor class)`` in both
passes.  A stochastic accumulator (e.g. ``lowp("float16", 8, "stochastic")``) draws its
random bits with the layer's seed from one stream per GEMM: the layer's stream layout
``(step << 24) | (layer index << 4) | id`` with the ids after the six tensor classes' 0-5:
6 for the forward GEMM, 7 for ``dx``, 8 for ``dw`` (:data:`ACCUMULATOR_STREAM_IDS`,
:func:`accumulator_stream`).  So no two GEMMs of a run share random words, none shares them
with an operand rounding, and the same seed replays them exactly; the accumulator's own
``seed``/``stream`` fields are not used inside a layer (the layer's seed is the run's).
The layer-specific part is a :class:`GemmProducts` object: :data:`LINEAR_PRODUCTS`
(``x @ w.T``) or :class:`ConvProducts` (a 2-D convolution); a bridge to another framework
reuses these two functions with its own products and gets the same roundings.

The arrays may be NumPy arrays or any type registered in :mod:`fp8emu.autograd.arrays`
(``fp8emu.torch`` registers ``torch.Tensor``): every rounding and rescale goes through that
type's operations, so a bridge's tensors stay on their device from the operands to the
gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from .. import conv as _conv
from .. import gemm as _gemm
from ..accumulators import Accumulator
from ..format import Format
from .arrays import array_ops
from .quant import TENSOR_CLASSES, LayerQuant
from .tensor import is_grad_enabled

__all__ = ["SavedOperands", "GemmProducts", "LinearProducts", "ConvProducts", "LINEAR_PRODUCTS",
           "quantized_forward", "quantized_backward", "ACCUMULATOR_STREAM_IDS", "accumulator_stream"]

#: The id (low 4 bits of the layer's SR stream, after the tensor classes' ids 0-5) of the
#: stream a stochastic accumulator draws from in each of the layer's three GEMMs.
ACCUMULATOR_STREAM_IDS: dict[str, int] = {"forward": 6, "grad_input": 7, "grad_weight": 8}

#: fp8emu.matmul and the fp8emu.conv functions give a stochastic accumulator ``stream + 3``
#: (``stream`` .. ``stream + 2`` are their operand and output roundings, unused here: the
#: operands arrive quantized and the output is rounded by the layer).
_ACCUMULATOR_STREAM_OFFSET = 3


def accumulator_stream(lq: LayerQuant, step: int, gemm: str) -> int:
    """The SR stream a stochastic accumulator uses in one GEMM of a layer at one step.

    Args:
        lq: the layer's policy (its index enters the stream).
        step: the training step (the forward pass's, in the backward GEMMs too).
        gemm: ``"forward"``, ``"grad_input"`` or ``"grad_weight"``.

    Returns:
        ``step << 24 | (index & 0xFFFFF) << 4 | ACCUMULATOR_STREAM_IDS[gemm]``: the layer's
        stream layout (:meth:`LayerQuant.stream`) with an id no tensor class uses.
    """
    base = lq.stream(step, TENSOR_CLASSES[0]) & ~0xF   # the layer's stream without a class id
    return base | ACCUMULATOR_STREAM_IDS[gemm]


def _accumulator_keys(lq: LayerQuant, step: int, gemm: str) -> dict[str, int]:
    """The ``seed``/``stream`` keywords of one GEMM's products call: none for an accumulator
    that draws no random bits (float32 BLAS, PyTorch's products), so their calls and bits stay
    as they were."""
    acc = lq.accumulator
    if acc is None or not acc.accepts_rng:
        return {}
    return {"seed": lq.seed, "stream": accumulator_stream(lq, step, gemm) - _ACCUMULATOR_STREAM_OFFSET}


class SavedOperands(NamedTuple):
    """What the forward pass keeps for the backward pass.

    Attributes:
        x: the activations as the forward GEMM saw them (format values when quantized).
        w: the weights as the forward GEMM saw them.
        x_scale: dequantization scale of ``x`` (``activations ~ x * x_scale``).
        w_scale: dequantization scale of ``w``.
        step: the stochastic-rounding step of the forward pass (the backward pass reuses it).
    """

    x: np.ndarray
    w: np.ndarray
    x_scale: float
    w_scale: float
    step: int


class GemmProducts(Protocol):
    """The three products of one layer type on already-quantized float operands.

    ``*_fmt`` are the formats announced to the accumulator (None: plain float32), as
    :func:`fp8emu.matmul` takes them.  The operands already hold values of those formats, so
    the products pass ``quantized=True`` (a second rounding would return them unchanged, at
    the cost of a pass over each operand and a fresh array).

    When the accumulator draws random bits (``accumulator.accepts_rng``), each call also gets
    the keywords ``seed`` and ``stream`` to hand on as :func:`fp8emu.matmul` takes them (the
    accumulator then uses ``stream + 3``, see :func:`accumulator_stream`); products that only
    ever see other accumulators (e.g. PyTorch's float32 ones) need not accept them.
    """

    def forward(self, x: np.ndarray, w: np.ndarray, x_fmt: Format | None, w_fmt: Format | None,
                accumulator: Accumulator | None, *, seed: int | None = None, stream: int = 0) -> np.ndarray:
        """The layer's output ``y`` (float32) before scales and bias.

        Args:
            x: activations (format values when quantized).
            w: weights.
            x_fmt, w_fmt: the formats announced to the accumulator.
            accumulator: the layer's accumulator (None: float32 BLAS).
            seed, stream: a stochastic accumulator's keys (see the class).
        """

    def grad_input(self, gy: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...], gy_fmt: Format | None,
                   w_fmt: Format | None, accumulator: Accumulator | None, *, seed: int | None = None,
                   stream: int = 0) -> np.ndarray:
        """``dx`` of shape ``x_shape`` from the output gradient and the weights.

        Args:
            gy: the (quantized) output gradient.
            w: the weights the forward pass used.
            x_shape: the activations' shape.
            gy_fmt, w_fmt: the formats announced to the accumulator.
            accumulator: the layer's accumulator.
            seed, stream: a stochastic accumulator's keys (see the class).
        """

    def grad_weight(self, x: np.ndarray, gy: np.ndarray, w_shape: tuple[int, ...], x_fmt: Format | None,
                    gy_fmt: Format | None, accumulator: Accumulator | None, *, seed: int | None = None,
                    stream: int = 0) -> np.ndarray:
        """``dw`` of shape ``w_shape`` from the activations and the output gradient.

        Args:
            x: the activations the forward pass used.
            gy: the (quantized) output gradient.
            w_shape: the weights' shape.
            x_fmt, gy_fmt: the formats announced to the accumulator.
            accumulator: the layer's accumulator.
            seed, stream: a stochastic accumulator's keys (see the class).
        """


@dataclass(frozen=True)
class LinearProducts:
    """``y = x @ w.T`` with ``x`` (N, in) and ``w`` (out, in), through :func:`fp8emu.matmul`."""

    def forward(self, x, w, x_fmt, w_fmt, accumulator, *, seed=None, stream=0):
        """See :meth:`GemmProducts.forward`."""
        return _gemm.matmul(x, w.T, a_fmt=x_fmt, b_fmt=w_fmt, accumulator=accumulator, quantized=True, seed=seed,
                            stream=stream)

    def grad_input(self, gy, w, x_shape, gy_fmt, w_fmt, accumulator, *, seed=None, stream=0):
        """See :meth:`GemmProducts.grad_input`."""
        return _gemm.matmul(gy, w, a_fmt=gy_fmt, b_fmt=w_fmt, accumulator=accumulator, quantized=True, seed=seed,
                            stream=stream)

    def grad_weight(self, x, gy, w_shape, x_fmt, gy_fmt, accumulator, *, seed=None, stream=0):
        """See :meth:`GemmProducts.grad_weight`."""
        return _gemm.matmul(gy.T, x, a_fmt=gy_fmt, b_fmt=x_fmt, accumulator=accumulator, quantized=True, seed=seed,
                            stream=stream)


#: The products of a fully connected layer.
LINEAR_PRODUCTS = LinearProducts()


@dataclass(frozen=True)
class ConvProducts:
    """A 2-D convolution (NCHW, OIHW) through :mod:`fp8emu.conv`.

    Args:
        stride, padding, dilation: ``(h, w)`` pairs, as :func:`fp8emu.conv.conv2d` takes them.
        groups: number of channel groups.
    """

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def geometry(self) -> dict:
        """The keyword arguments of the :mod:`fp8emu.conv` functions."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x, w, x_fmt, w_fmt, accumulator, *, seed=None, stream=0):
        """See :meth:`GemmProducts.forward`."""
        return _conv.conv2d(x, w, accumulator=accumulator, x_fmt=x_fmt, w_fmt=w_fmt, quantized=True, seed=seed,
                            stream=stream, **self.geometry)

    def grad_input(self, gy, w, x_shape, gy_fmt, w_fmt, accumulator, *, seed=None, stream=0):
        """See :meth:`GemmProducts.grad_input`."""
        return _conv.conv2d_grad_input(gy, w, x_shape, accumulator=accumulator, gy_fmt=gy_fmt, w_fmt=w_fmt,
                                       quantized=True, seed=seed, stream=stream, **self.geometry)

    def grad_weight(self, x, gy, w_shape, x_fmt, gy_fmt, accumulator, *, seed=None, stream=0):
        """See :meth:`GemmProducts.grad_weight`."""
        return _conv.conv2d_grad_weight(x, gy, w_shape, accumulator=accumulator, x_fmt=x_fmt, gy_fmt=gy_fmt,
                                        quantized=True, seed=seed, stream=stream, **self.geometry)


def _scaled(y: Any, factor: float) -> Any:
    """``y * factor`` in place (exact: a power of two, unless float32 over/underflows)."""
    return array_ops(y).scale_(y, factor)


def quantized_forward(lq: LayerQuant, products: GemmProducts, x: np.ndarray, w: np.ndarray,
                      bias: np.ndarray | None = None, *,
                      training: bool | None = None) -> tuple[np.ndarray, SavedOperands]:
    """The forward pass of a quantized GEMM layer (steps 1-4 of the module docstring).

    Args:
        lq: the layer's policy and state.
        products: the layer type's products (:data:`LINEAR_PRODUCTS`, :class:`ConvProducts`).
        x: activations (float32 in training).
        w: weights.
        bias: added to the scaled product before the output rounding, broadcast against it
            (for a convolution shape it ``(1, O, 1, 1)``); None for no bias.
        training: whether this forward starts a new training step (advances ``lq.step``, the
            step of the stochastic-rounding streams, and adds the forward tensors' amaxes to
            the delayed-scaling histories; a forward that is not one, e.g. evaluation, uses
            the histories without changing them); None asks the engine
            (:func:`fp8emu.autograd.is_grad_enabled`).

    Returns:
        ``(y, saved)``: the float32 output and what :func:`quantized_backward` needs.
    """
    training = is_grad_enabled() if training is None else bool(training)
    if training:
        lq.step += 1
    step = lq.step
    xq, sx = lq.quantize(x, "activations", step, record_amax=training)
    wq, sw = lq.quantize(w, "weights", step, record_amax=training)
    y = _scaled(products.forward(xq, wq, lq.fmt_for_gemm("activations"), lq.fmt_for_gemm("weights"),
                                 lq.accumulator, **_accumulator_keys(lq, step, "forward")), sx * sw)
    if bias is not None:
        y += bias
    y = _scaled(*lq.quantize(y, "outputs", step, inplace=True, record_amax=training))   # format values * their scale
    return y, SavedOperands(xq, wq, sx, sw, step)


def quantized_backward(lq: LayerQuant, products: GemmProducts, saved: SavedOperands, gy: np.ndarray, *,
                       need_input: bool = True,
                       need_weight: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The backward pass of a quantized GEMM layer (steps 1-3 of the module docstring).

    Args:
        lq: the layer's policy (the one the forward pass used).
        products: the same products as the forward pass.
        saved: what :func:`quantized_forward` returned.
        gy: the gradient of the layer's output (the bias gradient is the caller's).
        need_input: compute ``dx``.
        need_weight: compute ``dw``.

    Returns:
        ``(dx, dw)``, None where not needed.
    """
    gq, sg = lq.quantize(gy, "errors", saved.step)
    fg, acc = lq.fmt_for_gemm("errors"), lq.accumulator
    gx = gw = None
    if need_input:
        gx = _scaled(products.grad_input(gq, saved.w, saved.x.shape, fg, lq.fmt_for_gemm("weights"), acc,
                                         **_accumulator_keys(lq, saved.step, "grad_input")),
                     sg * saved.w_scale)
        gx = _scaled(*lq.quantize(gx, "input_grads", saved.step, inplace=True))
    if need_weight:
        gw = _scaled(products.grad_weight(saved.x, gq, saved.w.shape, lq.fmt_for_gemm("activations"), fg, acc,
                                          **_accumulator_keys(lq, saved.step, "grad_weight")),
                     sg * saved.x_scale)
        gw = _scaled(*lq.quantize(gw, "weight_grads", saved.step, inplace=True))
    return gx, gw
