"""fp8emu's training recipes on any ``torch.nn`` model: :func:`apply_recipe`.

The recipe is the NumPy engine's :class:`~fp8emu.Recipe` object; every rule comes from it and
from the objects it makes: each Conv2d/Linear gets the recipe's
:class:`~fp8emu.autograd.LayerQuant` (:meth:`~fp8emu.Recipe.layer_quant`: specs, seed, SR
streams, per-tensor/delayed/MX scaling), the master weights use the recipe's format, rounding,
seed and :func:`fp8emu.optim.master_stream`, and the loss scaler is the recipe's own
(:class:`TorchLossScaler` only applies its scale to torch tensors).

A quantized layer runs fp8emu's own quantized-GEMM rules
(:func:`fp8emu.autograd.qgemm.quantized_forward` / ``quantized_backward``: operands rounded,
GEMM, rescale, result rounded; errors and both gradients in the backward pass) on the torch
tensors themselves (:mod:`fp8emu.torch._arrays` registers their operations), with PyTorch
computing the float32 products (:class:`TorchProducts`; the NumPy engine uses OpenBLAS: the
same products, summed in another order).  On the CPU every rounding is the NumPy kernel on a
zero-copy view; on a CUDA device it is the same routine compiled for the GPU
(:mod:`fp8emu.cuda`), launched on PyTorch's current stream with no copy to the host: the same
bits on both devices for the same inputs.  What leaves a GPU: the amax of per-tensor/delayed
scaling (one float per rounding), MX/NVFP4 block scaling (rounded on the host), and what
statistics observers (:func:`fp8emu.autograd.add_observer`, which see the torch layers too)
receive.

Layer ``i``'s SR stream for step ``t`` is the NumPy engine's, with ``i`` the layer's position
among the model's Conv2d/Linear modules in definition order (``named_modules``), so the same
model quantizes the same tensors with the same random bits in both backends.  "first"/"last" in a recipe's exempt list mean execution order, found by running a
sample batch through the model (or pass an explicit ``exempt`` list).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..autograd import LayerQuant
from ..autograd.qgemm import quantized_backward, quantized_forward
from ..format import RoundMode
from ..loss_scale import LossScaler
from ..optim import master_stream
from ..recipes import Recipe, get_recipe
from ..formats import get_format
from ._arrays import TORCH_OPS   # (importing it registers torch.Tensor's array operations)
from .functional import quantize

__all__ = ["apply_recipe", "TorchRecipe", "MasterWeights", "TorchLossScaler", "TorchProducts", "gemm_layers",
           "execution_order"]

_GEMMS = (nn.Conv2d, nn.Linear)


def gemm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's Conv2d and Linear modules with their names, in definition order.

    Args:
        model: the torch model.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _GEMMS)]


def execution_order(model: nn.Module, sample: Any) -> list[str]:
    """Names of the model's Conv2d/Linear modules in the order a forward pass of ``sample`` calls them.

    Runs ``model(sample)`` once without gradients in eval mode (batch-norm statistics and the
    recipe's step counters are untouched); modules it never calls follow in definition order.

    Args:
        model: the torch model.
        sample: an input batch (a tuple is unpacked into the call's arguments).
    """
    names = {m: n for n, m in gemm_layers(model)}
    order: list[str] = []

    def hook(module, args):
        if names[module] not in order:
            order.append(names[module])

    handles = [m.register_forward_pre_hook(hook) for m in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*sample) if isinstance(sample, tuple) else model(sample)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return order + [n for n in names.values() if n not in order]


def _in_gemm_dtype(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The operands in float32 (float64 if one is float64): the GEMMs are float32 whatever the
    model's dtype.  PyTorch's float16/bfloat16 GEMMs would round their result to that dtype, which
    the products of scaled format values overflow (one e5m2 x e4m3fn product reaches 2^24.6,
    float16's max is 65504); format values convert exactly."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return [t.to(dtype) for t in tensors]


def _conv2d_padding(module: nn.Conv2d) -> tuple[int, int, int, int]:
    """A Conv2d's zero padding as ``(top, bottom, left, right)``, its string forms resolved as PyTorch does.

    ``"valid"`` is no padding; ``"same"`` pads ``dilation * (kernel - 1)`` in total per spatial
    dimension, the smaller half first (odd totals, e.g. an even kernel, pad one more at the
    bottom/right).

    Args:
        module: the torch Conv2d.
    """
    if module.padding == "valid":
        return (0, 0, 0, 0)
    if module.padding == "same":
        th, tw = (d * (k - 1) for d, k in zip(module.dilation, module.kernel_size))
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = module.padding
    return (ph, ph, pw, pw)


@dataclass(frozen=True)
class TorchProducts:
    """The three products of a torch Conv2d/Linear, computed by PyTorch on the operands' device.

    A :class:`fp8emu.autograd.qgemm.GemmProducts` for :func:`~fp8emu.autograd.qgemm.quantized_forward`
    and :func:`~fp8emu.autograd.qgemm.quantized_backward` (the rules: which tensor is rounded
    how, scales, SR steps), which keep torch tensors throughout (:mod:`fp8emu.autograd.arrays`);
    only the float32 GEMMs are PyTorch's (float64 for float64 models; float16 and bfloat16
    operands are multiplied in float32, and the products are float32).  The formats and
    accumulator arguments are unused: :func:`apply_recipe` refuses recipes whose accumulator is
    not PyTorch's float32.  A Conv2d's ``padding="same"``/``"valid"`` is resolved as PyTorch
    does (:func:`_conv2d_padding`); where it is asymmetric (``"same"`` with an odd total) the
    convolutions run on the explicitly padded input, and the input gradient is cropped back.

    Args:
        module: the torch Conv2d or Linear (its geometry).
    """

    module: nn.Module

    def _symmetric_padding(self) -> tuple[int, int] | None:
        """``(ph, pw)`` when the Conv2d pads each side of a dimension alike, else None."""
        top, bottom, left, right = _conv2d_padding(self.module)
        return (top, left) if (top, left) == (bottom, right) else None

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = _conv2d_padding(self.module)
        return F.pad(x, (left, right, top, bottom))

    def forward(self, x, w, x_fmt, w_fmt, accumulator):
        """See :meth:`fp8emu.autograd.qgemm.GemmProducts.forward` (here ``F.linear``/``F.conv2d``)."""
        m = self.module
        x, w = _in_gemm_dtype(x, w)
        if isinstance(m, nn.Linear):
            return F.linear(x, w)
        padding = self._symmetric_padding()
        if padding is None:
            x, padding = self._padded(x), (0, 0)
        return F.conv2d(x, w, None, m.stride, padding, m.dilation, m.groups)

    def grad_input(self, gy, w, x_shape, gy_fmt, w_fmt, accumulator):
        """See :meth:`fp8emu.autograd.qgemm.GemmProducts.grad_input` (here PyTorch's input gradient)."""
        m = self.module
        gy, w = _in_gemm_dtype(gy, w)
        if isinstance(m, nn.Linear):
            return gy @ w
        padding = self._symmetric_padding()
        if padding is not None:
            return torch.nn.grad.conv2d_input(x_shape, w, gy, m.stride, padding, m.dilation, m.groups)
        top, bottom, left, right = _conv2d_padding(m)
        n, c, h, wd = x_shape
        gx = torch.nn.grad.conv2d_input((n, c, h + top + bottom, wd + left + right), w, gy, m.stride, 0,
                                        m.dilation, m.groups)
        return gx[:, :, top:top + h, left:left + wd].contiguous()

    def grad_weight(self, x, gy, w_shape, x_fmt, gy_fmt, accumulator):
        """See :meth:`fp8emu.autograd.qgemm.GemmProducts.grad_weight` (here PyTorch's weight gradient)."""
        m = self.module
        x, gy = _in_gemm_dtype(x, gy)
        if isinstance(m, nn.Linear):
            return gy.t() @ x
        padding = self._symmetric_padding()
        if padding is None:
            x, padding = self._padded(x), (0, 0)
        return torch.nn.grad.conv2d_weight(x, w_shape, gy, m.stride, padding, m.dilation, m.groups)


class _QuantizedGemm(torch.autograd.Function):
    """One Conv2d/Linear under a LayerQuant: fp8emu's quantized_forward/backward on torch tensors."""

    @staticmethod
    def forward(ctx, x, w, b, products, lq, training):
        bias = None
        if b is not None:
            bias = b.detach().reshape((1, -1, 1, 1) if isinstance(products.module, nn.Conv2d) else (-1,))
        y, saved = quantized_forward(lq, products, x.detach().contiguous(), w.detach(), bias, training=training)
        ctx.products, ctx.lq, ctx.saved, ctx.has_bias = products, lq, saved, b is not None
        ctx.dtypes = (x.dtype, w.dtype)
        return y.to(x.dtype)       # the float32 result (float16/bfloat16 models), rounded once, as PyTorch's GEMMs do

    @staticmethod
    def backward(ctx, g):
        gx, gw = quantized_backward(ctx.lq, ctx.products, ctx.saved, g.contiguous(),
                                    need_input=ctx.needs_input_grad[0], need_weight=ctx.needs_input_grad[1])
        gx = None if gx is None else gx.to(ctx.dtypes[0])
        gw = None if gw is None else gw.to(ctx.dtypes[1])
        gb = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(dim=(0, 2, 3)) if isinstance(ctx.products.module, nn.Conv2d) else g.sum(dim=0)
        return gx, gw, gb, None, None, None


def _quantized_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear) and x.ndim != 2:
        lead = x.shape[:-1]
        return _quantized_forward(module, x.reshape(-1, x.shape[-1])).reshape(*lead, module.out_features)
    if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
        raise ValueError(f"fp8emu.torch: Conv2d {module.fp8emu_quant.name!r} has padding_mode="
                         f"{module.padding_mode!r}; only 'zeros' is supported")
    if isinstance(module, nn.Conv2d) and x.ndim == 3:      # unbatched (C, H, W), as torch's Conv2d takes it
        return _quantized_forward(module, x.unsqueeze(0)).squeeze(0)
    products = TorchProducts(module)
    # the SR step counts forwards with gradients enabled, as in the NumPy engine
    return _QuantizedGemm.apply(x, module.weight, module.bias, products, module.fp8emu_quant, torch.is_grad_enabled())


def _any_nonfinite(grads: Sequence[torch.Tensor]) -> bool:
    """Whether any element of ``grads`` is Inf or NaN, with one host sync per device.

    Each gradient's float64 sum is finite exactly when all its elements are (float32 values
    cannot overflow a float64 sum); the sums of a device are added on the device (still
    finite unless one is not: Inf - Inf is NaN) and only that verdict comes to the host.
    """
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for g in grads:
        by_device.setdefault(g.device, []).append(g.sum(dtype=torch.float64))
    return any(not bool(torch.isfinite(torch.stack(sums).sum())) for sums in by_device.values())


class TorchLossScaler:
    """One of fp8emu's loss scalers (the recipe's) applied to torch tensors.

    The scale and its schedule (static, dynamic, enhanced with a floor) are the wrapped
    :class:`~fp8emu.loss_scale.LossScaler`'s: this class multiplies the loss, unscales the
    gradients, skips steps with Inf/NaN gradients and reports the outcome to ``scaler.update``.

    Args:
        scaler: the fp8emu loss scaler.
    """

    def __init__(self, scaler: LossScaler) -> None:
        self.scaler = scaler

    @property
    def scale_value(self) -> float:
        """The wrapped scaler's current scale."""
        return self.scaler.scale_value

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss * scale`` (call ``.backward()`` on the result).

        Args:
            loss: the loss tensor.
        """
        return loss * self.scaler.scale_value

    def unscale_(self, params: Iterable[torch.Tensor]) -> bool:
        """Divide every gradient by the scale in place; return True if any is Inf or NaN.

        One host sync per device holding gradients (the verdict), not one per gradient.

        Args:
            params: the parameters whose ``.grad`` to unscale (those without a gradient are skipped).
        """
        grads = [p.grad for p in params if p.grad is not None]
        found_inf = _any_nonfinite(grads)
        inv = 1.0 / self.scaler.scale_value
        if inv != 1.0:
            for g in grads:
                g.mul_(inv)
        return found_inf

    def step(self, optimizer: Any) -> bool:
        """unscale_ the optimizer's gradients, step unless Inf/NaN, update the scale; return whether it stepped.

        Args:
            optimizer: a ``torch.optim`` optimizer or :class:`MasterWeights` (its ``param_groups``
                hold the parameters).
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        found = self.unscale_(params)
        if not found:
            optimizer.step()
        self.scaler.update(found)
        return not found

    def state_dict(self) -> dict[str, Any]:
        """The wrapped scaler's :meth:`~fp8emu.loss_scale.LossScaler.state_dict`.

        Returns:
            Its numeric state.
        """
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the wrapped scaler's state.

        Args:
            state: what :meth:`state_dict` returned.

        Raises:
            KeyError: a key the scaler does not have.
        """
        self.scaler.load_state_dict(state)

    def __repr__(self) -> str:
        return f"TorchLossScaler({self.scaler!r})"


class MasterWeights:
    """A torch optimizer whose parameters stay representable in a master format (FP16 in the paper).

    The optimizer updates in float32; after each step every parameter that has a gradient is
    rounded back into ``fmt`` (stochastic rounding: seed ``seed``, stream
    :func:`fp8emu.optim.master_stream` of the step and the parameter's index), as fp8emu's own
    optimizers do.  The parameters start rounded to nearest.

    Args:
        optimizer: any ``torch.optim`` optimizer.
        fmt: the master format (None: plain float32, no write-back).
        rounding: the write-back rounding.
        seed: seed of the stochastic write-back.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, fmt: Any, rounding: RoundMode | str = RoundMode.NEAREST_EVEN,
                 seed: int = 0) -> None:
        self.optimizer, self.rounding, self.seed = optimizer, RoundMode.parse(rounding), int(seed)
        self.fmt = None if fmt is None else get_format(fmt)
        self.steps = 0
        if fmt is not None:
            with torch.no_grad():
                for p in self.params:
                    p.copy_(quantize(p, fmt))

    @property
    def params(self) -> list[torch.Tensor]:
        """Every parameter of the optimizer's groups, in order (the write-back's indices)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimizer's ``param_groups`` (LR schedules set ``group["lr"]`` there)."""
        return self.optimizer.param_groups

    @property
    def lr(self) -> float:
        """The learning rate of the first group; setting it sets every group's."""
        return float(self.optimizer.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(value)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The wrapped optimizer's ``zero_grad``.

        Args:
            set_to_none: drop the gradients (True) rather than zero them.
        """
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        """The optimizer's step, then the master write-back."""
        self.optimizer.step()
        self.steps += 1
        if self.fmt is None:
            return
        stochastic = self.rounding is RoundMode.STOCHASTIC
        for i, p in enumerate(self.params):
            if p.grad is not None:   # in place, through the rules' array operations (no operator dispatch)
                TORCH_OPS.quantize(p.data, self.fmt, out=p.data, rounding=self.rounding,
                                   seed=self.seed if stochastic else None, sr_bits=None, saturate=False,
                                   stream=master_stream(self.steps, i))

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state and the step count (the write-back streams depend on it).

        Returns:
            ``{"optimizer", "steps"}``.
        """
        return {"optimizer": self.optimizer.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Args:
            state: what :meth:`state_dict` returned.
        """
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])


class TorchRecipe:
    """What :func:`apply_recipe` attached to a model (use it to build the optimizer and scaler).

    Attributes:
        recipe: the fp8emu Recipe.
        model: the model.
        layers: layer name -> its LayerQuant (None: left in plain float32).
        order: the Conv2d/Linear names in execution order (definition order without a sample).
        exempt: names of the layers kept in float32.
    """

    def __init__(self, recipe: Recipe, model: nn.Module, layers: dict[str, LayerQuant | None], order: list[str],
                 exempt: set[str]) -> None:
        self.recipe, self.model, self.layers, self.order, self.exempt = recipe, model, layers, order, exempt

    def make_optimizer(self, params: Iterable[torch.Tensor] | None = None, *, optimizer: str | type = "sgd",
                       seed: int | None = None, **kw: Any) -> MasterWeights:
        """A torch optimizer (``"sgd"``, ``"adam"``, ``"adamw"`` or a class) with the recipe's master weights.

        Args:
            params: the parameters (default: the model's).
            optimizer: name or ``torch.optim`` class.
            seed: overrides the recipe seed (the write-back uses :meth:`Recipe.master_seed`).
            **kw: the optimizer's arguments (``lr``, ``momentum``, ...).

        Raises:
            ValueError: unknown optimizer name.
        """
        if isinstance(optimizer, str):
            classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
            if optimizer not in classes:
                raise ValueError(f"optimizer={optimizer!r} is unknown; allowed: {', '.join(classes)}")
            optimizer = classes[optimizer]
        opt = optimizer(list(self.model.parameters() if params is None else params), **kw)
        return MasterWeights(opt, self.recipe.master_format, self.recipe.master_rounding, self.recipe.master_seed(seed))

    def make_scaler(self) -> TorchLossScaler:
        """The recipe's loss scaler for torch losses."""
        return TorchLossScaler(self.recipe.make_scaler())

    def state_dict(self) -> dict[str, Any]:
        """Per-layer SR step counters and amax histories."""
        return {name: lq.state_dict() for name, lq in self.layers.items() if lq is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (layers absent from ``state`` keep their state).

        Args:
            state: layer name -> that layer's state, as :meth:`state_dict` returns.
        """
        for name, lq in self.layers.items():
            if lq is not None and name in state:
                lq.load_state_dict(state[name])

    def remove(self) -> None:
        """Detach the recipe: the layers compute in plain float32 again."""
        for name, m in gemm_layers(self.model):
            if name in self.layers and "forward" in vars(m):
                del m.forward
                del m.fp8emu_quant

    def __repr__(self) -> str:
        quantized = sum(lq is not None and lq.quantized for lq in self.layers.values())
        return (f"TorchRecipe({self.recipe.name!r}, {quantized} of {len(self.layers)} GEMM layers quantized, "
                f"exempt {sorted(self.exempt)})")


def apply_recipe(model: nn.Module, recipe: Recipe | str, *, sample: Any = None,
                 exempt: Sequence[str | int] | None = None, seed: int | None = None) -> TorchRecipe:
    """Quantize every Conv2d/Linear of ``model`` as fp8emu's ``recipe`` says.

    Args:
        model: any ``torch.nn.Module``.
        recipe: a :class:`~fp8emu.Recipe` or a registered name (``"paper-e5m2"``, ``"hfp8"``, ...).
        sample: a sample batch (a tensor, or a tuple of the forward's arguments); needed when the
            exempt list says ``"first"``/``"last"``, which mean execution order.
        exempt: replaces the recipe's exempt list: module names, ``"first"``/``"last"`` or
            positions in execution order.
        seed: overrides the recipe's SR seed.

    Returns:
        A :class:`TorchRecipe` (its ``make_optimizer`` and ``make_scaler`` give the recipe's
        master weights and loss scaler).

    Raises:
        ValueError: the recipe needs an accumulator other than float32 (PyTorch's GEMMs sum in
            float32), "first"/"last" without a sample, an exempt name that is not a Conv2d/Linear
            of the model, or a model already carrying a recipe.
    """
    recipe = get_recipe(recipe)
    if recipe.accumulator is not None:
        raise ValueError(f"recipe {recipe.name}: accumulator {recipe.accumulator.name} is not available with PyTorch's "
                         "float32 GEMMs; use the NumPy engine for it")
    if exempt is not None:
        recipe = recipe.replace(exempt=tuple(exempt))
    layers = gemm_layers(model)
    if any("fp8emu_quant" in vars(m) for _, m in layers):
        raise ValueError("the model already carries a recipe: call .remove() on the first apply_recipe's result")
    needs_order = any(e in ("first", "last") or isinstance(e, int) for e in recipe.exempt)
    if sample is not None:
        order = execution_order(model, sample)
    elif needs_order and layers:
        raise ValueError(f"recipe {recipe.name} exempts {list(recipe.exempt)}, which refers to execution order: pass "
                         "sample=<a batch> to find it, or exempt=[layer names]")
    else:
        order = [n for n, _ in layers]
    exempted = recipe.exempt_among(order)
    attached: dict[str, LayerQuant | None] = {}
    for index, (name, m) in enumerate(layers):
        lq = recipe.layer_quant(name, index, exempt=name in exempted, seed=seed)
        attached[name] = lq
        if lq is not None:
            m.fp8emu_quant = lq
            m.forward = functools.partial(_quantized_forward, m)
    return TorchRecipe(recipe, model, attached, order, exempted)
