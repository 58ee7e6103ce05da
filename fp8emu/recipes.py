"""Quantization as a policy: the `Recipe` dataclass and the named recipes.

A recipe says, per tensor class (:data:`fp8emu.autograd.TENSOR_CLASSES`), which
:class:`QuantSpec` the GEMMs/convolutions of a model use, which accumulator sums their
products, which layers are exempt (the paper keeps the first conv and the last FC in FP32),
the master-weight format and rounding, and which loss scaler to use.  ``recipe.apply(model)``
attaches a :class:`LayerQuant` to every Conv2d/Linear; nothing else in the model changes.

Named recipes (:func:`get_recipe`):

================== ==============================================================================
``fp32``            no quantization (float32 everywhere, BLAS accumulation)
``paper-e5m2``      Mellempudi et al. 2019 (docs/recipes.md): E5M2 for weights, activations,
                    outputs (RNE) and errors, input gradients, weight gradients (stochastic);
                    FP32 accumulation; FP16 master weights written back with SR; enhanced loss
                    scaling (initial 2^13, floor 2^7 -- S2FP8's reproduction needed ~100 on CIFAR
                    ResNets; the paper's constants are not published; raise the floor with ``replace(scaler=...)``); first conv
                    and last FC exempt
``hfp8``            Sun et al. 2019: forward E4M3 with bias 11 -- we use ``e4m3b11fnuz`` (max 30,
                    min subnormal 2^-13, the ml_dtypes/XLA format; HFP8's exact special-value
                    convention is not published), saturating RNE; backward E5M2 SR;
                    FP32 accumulation (the paper's FP16 chunked accumulation is
                    ``replace(accumulator=lowp(...))``); dynamic loss scaling; FP32 master
``ocp-fp8``         Micikevicius et al. 2022 / OCP: E4M3FN forward, E5M2 backward, per-tensor
                    delayed scaling (amax history 16) with saturation; no loss scaling
``mxfp8``           OCP MX: E4M3FN forward, E5M2 backward, blocks of 32 along the channel
                    axis sharing an E8M0 scale (the backward GEMMs reuse the forward blocks)
``mxfp8-rceil``     mxfp8 with NVIDIA's scale rule (``rceil``: the E8M0 scale is amax / max
                    rounded up, as cuBLAS, TransformerEngine and the MXFP8 pre-training
                    recipe use) instead of OCP's ``floor``
``nvfp4``           NVIDIA's NVFP4 training recipe ("Pretraining LLMs with NVFP4", 2025) for
                    the GEMM inputs: activations NVFP4 (16-element blocks along channels,
                    RNE), weights NVFP4 in 16x16 tiles (RNE), errors NVFP4 with stochastic
                    rounding; E4M3 block scales and a float32 tensor scale
                    (:func:`fp8emu.scaling.nvfp4_quantize`).  Higher precision (float32):
                    the GEMM outputs, input and weight gradients, master weights and optimizer
                    state, every non-GEMM op (batch norm, ReLU, pooling, softmax), and the
                    first conv and last FC (the paper keeps its final layers in BF16).  Not
                    emulated: the random Hadamard transform the paper applies to the
                    weight-gradient GEMM's inputs, and the re-blocking of the backward GEMMs
                    along their own reduction axes (they reuse the forward blocks).  No loss
                    scaling.
``paper-e5m2-nols`` ablation: no loss scaling
``paper-e5m2-dynls`` ablation: plain dynamic loss scaling (no floor)
``paper-e5m2-rne``  ablation: RNE for the backward tensors too
``paper-e5m2-nols-rne`` ablation: both (no loss scaling and RNE backward)
``paper-e5m2-fp32master`` ablation: FP32 master weights
``paper-e5m2-all``  ablation: first conv and last FC quantized too
================== ==============================================================================
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import optim
from .accumulators import Accumulator
from .autograd import TENSOR_CLASSES, LayerQuant, QuantSpec, Tensor
from .format import Format, RoundMode
from .formats import e2m1fn, e4m3b11fnuz, e4m3fn, e5m2, float16
from .loss_scale import DynamicScaler, EnhancedScaler, LossScaler, StaticScaler
from .nn import Module, gemm_layers

__all__ = ["QuantSpec", "Recipe", "RECIPES", "get_recipe", "register_recipe"]

_OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW}


@dataclass(frozen=True)
class Recipe:
    """A quantized-training policy (see the module docstring).

    Args:
        name: registry name.
        weights, activations, errors, weight_grads: QuantSpec or None per tensor class.
        outputs: quantize the GEMM result (forward), or None.
        input_grads: quantize the input gradient the GEMM computes, or None.
        accumulator: accumulator of every GEMM (None: float32 BLAS).
        exempt: layers kept in float32: module names, integer positions among the GEMM
            layers (negative counts from the end), ``"first"`` or ``"last"``.
        master_format: format the parameters stay representable in (None: float32).
        master_rounding: rounding of the master write-back.
        scaler: factory of the loss scaler.
        seed: seed of every stochastic rounding of the recipe (SR streams: see LayerQuant).
        description: one line for listings.
    """

    name: str
    weights: QuantSpec | None = None
    activations: QuantSpec | None = None
    errors: QuantSpec | None = None
    weight_grads: QuantSpec | None = None
    outputs: QuantSpec | None = None
    input_grads: QuantSpec | None = None
    accumulator: Accumulator | None = None
    exempt: tuple[str | int, ...] = ("first", "last")
    master_format: Format | None = None
    master_rounding: RoundMode = RoundMode.NEAREST_EVEN
    scaler: Callable[[], LossScaler] = functools.partial(StaticScaler, 1.0)
    seed: int = 0
    description: str = ""

    def specs(self) -> dict[str, QuantSpec | None]:
        """Tensor class -> its QuantSpec (None: float32), in :data:`TENSOR_CLASSES` order."""
        return {c: getattr(self, c) for c in TENSOR_CLASSES}

    @property
    def quantizes(self) -> bool:
        """Whether any tensor class is quantized."""
        return any(s is not None for s in self.specs().values())

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with some fields changed (e.g. ``replace(exempt=())``).

        Args:
            **changes: field names and their new values.

        Returns:
            The new recipe.
        """
        return dataclasses.replace(self, **changes)

    def exempt_names(self, model: Module) -> set[str]:
        """Names of the GEMM layers this recipe keeps in float32.

        Args:
            model: the model whose Conv2d/Linear layers are matched.

        Returns:
            The module names.

        Raises:
            ValueError: an exempt entry names no GEMM layer of the model.
        """
        return self.exempt_among([n for n, _ in gemm_layers(model)])

    def exempt_among(self, layers: list[str]) -> set[str]:
        """Which of ``layers`` (GEMM layer names, first to last) this recipe keeps in float32.

        Args:
            layers: the model's GEMM layer names in order.

        Raises:
            ValueError: an exempt entry names none of ``layers`` or is out of range.
        """
        out = set()
        for e in self.exempt:
            if e == "first" or e == "last":
                if layers:
                    out.add(layers[0] if e == "first" else layers[-1])
            elif isinstance(e, int):
                if not -len(layers) <= e < len(layers):
                    raise ValueError(f"recipe {self.name}: exempt position {e} is out of range "
                                     f"({len(layers)} GEMM layers)")
                out.add(layers[e])
            elif e in layers:
                out.add(e)
            else:
                raise ValueError(f"recipe {self.name}: exempt layer {e!r} is not a Conv2d/Linear of the model; "
                                 f"its GEMM layers are {layers}")
        return out

    def apply(self, model: Module, seed: int | None = None) -> dict[str, LayerQuant | None]:
        """Attach this recipe's LayerQuant to every Conv2d/Linear of ``model``; return them by name.

        Exempt layers get a LayerQuant without specs (float32 operands, same accumulator), or
        None when the recipe has no accumulator.

        Args:
            model: the model to quantize (its Conv2d/Linear layers get ``.quant``).
            seed: the stochastic-rounding seed; None keeps the recipe's.

        Returns:
            Layer name -> its LayerQuant (or None).

        Raises:
            ValueError: the accumulator cannot take the recipe's formats, or a bad exempt entry.
        """
        exempt = self.exempt_names(model)
        seed = self.seed if seed is None else int(seed)
        if self.accumulator is not None:  # can it take these operands? (raises ValueError if not)
            fwd, bwd = self.activations or self.weights, self.errors
            self.accumulator.check_operands(fwd and fwd.fmt, self.weights and self.weights.fmt)
            self.accumulator.check_operands(bwd and bwd.fmt, self.weights and self.weights.fmt)
            self.accumulator.check_operands(self.activations and self.activations.fmt, bwd and bwd.fmt)
        attached: dict[str, LayerQuant | None] = {}
        for index, (name, layer) in enumerate(gemm_layers(model)):
            lq = self.layer_quant(name, index, exempt=name in exempt, seed=seed)
            layer.quant = lq
            attached[name] = lq
        return attached

    def layer_quant(self, name: str, index: int, *, exempt: bool = False, seed: int | None = None) -> LayerQuant | None:
        """The LayerQuant of one GEMM layer (what :meth:`apply` attaches; other backends use it too).

        Args:
            name: the layer's name.
            index: its position among the model's GEMM layers (enters the SR streams).
            exempt: keep it in float32.
            seed: overrides the recipe's seed.

        Returns:
            The LayerQuant, or None for an exempt layer when the recipe has no accumulator.
        """
        specs = {} if exempt else {k: v for k, v in self.specs().items() if v is not None}
        if not specs and self.accumulator is None:
            return None
        # accumulators that do not use the formats (float32 ones) were checked in apply(); they get
        # the already exact operands without formats, so the GEMM layer does not round them again
        acc = self.accumulator
        return LayerQuant(name=name, index=index, specs=specs, accumulator=acc,
                          seed=self.seed if seed is None else int(seed),
                          pass_formats=acc is not None and acc.uses_operand_formats)

    def make_optimizer(self, params: Iterable[Tensor], *, optimizer: str | type = "sgd", seed: int | None = None,
                       **kw: Any) -> optim.Optimizer:
        """An optimizer with this recipe's master-weight format and rounding (SGD by default).

        The stochastic write-back uses the seed ``2 * seed + 1`` (``seed`` defaults to the
        recipe's), so its random bits never coincide with the layers' (which use ``seed``).

        Args:
            params: the parameters to optimize.
            optimizer: ``"sgd"``, ``"adam"``, ``"adamw"`` or an Optimizer class.
            seed: the recipe seed (None: the recipe's).
            **kw: the optimizer's arguments (``lr``, ``momentum``, ...).

        Returns:
            The optimizer.

        Raises:
            ValueError: unknown optimizer name.
        """
        if isinstance(optimizer, str):
            if optimizer not in _OPTIMIZERS:
                raise ValueError(f"optimizer={optimizer!r} is unknown; allowed: {', '.join(_OPTIMIZERS)}")
            optimizer = _OPTIMIZERS[optimizer]
        return optimizer(params, master_format=self.master_format, master_rounding=self.master_rounding,
                         seed=self.master_seed(seed), **kw)

    def master_seed(self, seed: int | None = None) -> int:
        """The seed of the master-weight write-back: ``2 * seed + 1`` (``seed`` defaults to the recipe's).

        Args:
            seed: the recipe seed (None: the recipe's).
        """
        return 2 * (self.seed if seed is None else int(seed)) + 1

    def make_scaler(self) -> LossScaler:
        """A fresh loss scaler of this recipe."""
        return self.scaler()

    def state_dict(self, model: Module) -> dict[str, Any]:
        """The per-layer state (SR step counters, amax histories) of the model's attached layers.

        Args:
            model: a model this recipe was applied to.

        Returns:
            Layer name -> :meth:`LayerQuant.state_dict`.
        """
        return {name: layer.quant.state_dict() for name, layer in gemm_layers(model) if layer.quant is not None}

    def load_state_dict(self, model: Module, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into the layers of ``model`` (after :meth:`apply`).

        Args:
            model: the model.
            state: what :meth:`state_dict` returned.
        """
        for name, layer in gemm_layers(model):
            if layer.quant is not None and name in state:
                layer.quant.load_state_dict(state[name])

    def describe(self) -> str:
        """A few lines: the spec of every tensor class and the other settings."""
        rows = [f"recipe {self.name}: {self.description}"]
        rows += [f"  {c:<13} {s if s is not None else 'float32'}" for c, s in self.specs().items()]
        acc = "float32 BLAS" if self.accumulator is None else self.accumulator.name
        master = "float32" if self.master_format is None else f"{self.master_format.name}/{self.master_rounding.value}"
        scaler = self.scaler()
        rows.append(f"  accumulator   {acc}; exempt {list(self.exempt)}; master {master}; loss scaler {scaler!r}")
        return "\n".join(rows)


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry under ``recipe.name`` (replacing one of the same name).

    Args:
        recipe: the recipe.

    Returns:
        ``recipe``.
    """
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str | Recipe) -> Recipe:
    """The named recipe (or the recipe itself).

    Args:
        name: a registered name (see :data:`RECIPES`) or a Recipe.

    Returns:
        The recipe.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
        TypeError: neither a str nor a Recipe.
    """
    if isinstance(name, Recipe):
        return name
    if not isinstance(name, str):
        raise TypeError(f"recipe must be a name or a Recipe, got {type(name).__name__}")
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; available: {', '.join(RECIPES)}") from None


_RNE, _SR = RoundMode.NEAREST_EVEN, RoundMode.STOCHASTIC
_E5_RNE, _E5_SR = QuantSpec(e5m2, _RNE), QuantSpec(e5m2, _SR)

register_recipe(Recipe("fp32", exempt=(), description="float32 everywhere (no quantization)"))
_PAPER = register_recipe(Recipe(
    "paper-e5m2", weights=_E5_RNE, activations=_E5_RNE, outputs=_E5_RNE, errors=_E5_SR, input_grads=_E5_SR,
    weight_grads=_E5_SR, master_format=float16, master_rounding=_SR,
    scaler=functools.partial(EnhancedScaler, 2.0 ** 13, floor=2.0 ** 7),
    description="Mellempudi et al. 2019: E5M2 everywhere, SR backward, FP16 SR master, enhanced loss scaling"))
register_recipe(_PAPER.replace(name="paper-e5m2-nols", scaler=functools.partial(StaticScaler, 1.0),
                               description="paper-e5m2 without loss scaling"))
register_recipe(_PAPER.replace(name="paper-e5m2-dynls", scaler=functools.partial(DynamicScaler, 2.0 ** 13),
                               description="paper-e5m2 with plain dynamic loss scaling (no floor)"))
register_recipe(_PAPER.replace(name="paper-e5m2-rne", errors=_E5_RNE, input_grads=_E5_RNE, weight_grads=_E5_RNE,
                               description="paper-e5m2 with RNE for the backward tensors"))
register_recipe(_PAPER.replace(name="paper-e5m2-nols-rne", scaler=functools.partial(StaticScaler, 1.0),
                               errors=_E5_RNE, input_grads=_E5_RNE, weight_grads=_E5_RNE,
                               description="paper-e5m2 without loss scaling and with RNE for the backward tensors"))
register_recipe(_PAPER.replace(name="paper-e5m2-fp32master", master_format=None, master_rounding=_RNE,
                               description="paper-e5m2 with float32 master weights"))
register_recipe(_PAPER.replace(name="paper-e5m2-all", exempt=(),
                               description="paper-e5m2 with the first conv and last FC quantized too"))
_HF_FWD = QuantSpec(e4m3b11fnuz, _RNE, saturate=True)
register_recipe(Recipe(
    "hfp8", weights=_HF_FWD, activations=_HF_FWD, errors=_E5_SR, weight_grads=_E5_SR,
    scaler=functools.partial(DynamicScaler, 2.0 ** 13),
    description="Sun et al. 2019: E4M3 bias 11 (e4m3b11fnuz) forward, E5M2 SR backward"))
_OCP_FWD = QuantSpec(e4m3fn, _RNE, saturate=True, scaling="delayed")
_OCP_BWD = QuantSpec(e5m2, _RNE, saturate=True, scaling="delayed")
register_recipe(Recipe(
    "ocp-fp8", weights=_OCP_FWD, activations=_OCP_FWD, errors=_OCP_BWD, weight_grads=_OCP_BWD,
    description="OCP FP8: E4M3FN forward, E5M2 backward, per-tensor delayed scaling"))
register_recipe(Recipe(
    "mxfp8", weights=QuantSpec(e4m3fn, scaling="mx"), activations=QuantSpec(e4m3fn, scaling="mx"),
    errors=QuantSpec(e5m2, scaling="mx"), weight_grads=QuantSpec(e5m2, scaling="mx"),
    description="OCP MX: E4M3FN forward, E5M2 backward, 32-element blocks along channels, E8M0 scales"))
_MX_E4_RCEIL = QuantSpec(e4m3fn, scaling="mx", scale_rule="rceil")
_MX_E5_RCEIL = QuantSpec(e5m2, scaling="mx", scale_rule="rceil")
register_recipe(RECIPES["mxfp8"].replace(
    name="mxfp8-rceil", weights=_MX_E4_RCEIL, activations=_MX_E4_RCEIL, errors=_MX_E5_RCEIL, weight_grads=_MX_E5_RCEIL,
    description="mxfp8 with NVIDIA's rceil scale rule (E8M0 scale = amax / max rounded up)"))
register_recipe(Recipe(
    "nvfp4", weights=QuantSpec(e2m1fn, scaling="nvfp4", tile_2d=True), activations=QuantSpec(e2m1fn, scaling="nvfp4"),
    errors=QuantSpec(e2m1fn, _SR, scaling="nvfp4"),
    description="NVIDIA NVFP4 GEMM inputs: activations 1x16, weights 16x16 tiles, errors 1x16 with SR; "
                "E4M3 block + FP32 tensor scales"))
