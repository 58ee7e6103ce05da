"""Neural-network modules on the autograd engine: `Module`, layers, and ResNet-18/34/50.

Layer and parameter names follow PyTorch/torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``downsample.0``, ``fc``; ``weight``, ``bias``, ``running_mean``, ``running_var``), so state
dicts line up with PyTorch models key by key.  ``Conv2d`` and ``Linear`` carry a ``quant``
attribute (a :class:`~fp8emu.autograd.LayerQuant` or None) that a recipe sets
(:meth:`fp8emu.recipes.Recipe.apply`); nothing else in a model knows about quantization.

Initialisation draws from a module-level generator: call :func:`manual_seed` first for
reproducible weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._checks import check_int, check_real
from .autograd import LayerQuant, Tensor, ops

__all__ = [
    "manual_seed", "Parameter", "Module", "Linear", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "Flatten", "Dropout", "Identity", "Sequential", "BasicBlock", "Bottleneck", "ResNet",
    "resnet18", "resnet34", "resnet50", "gemm_layers",
]

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the generator that initialises new layers.

    Args:
        seed: the seed of ``numpy.random.default_rng`` (layers built after the call use it).
    """
    global _rng
    _rng = np.random.default_rng(seed)


class Parameter(Tensor):
    """A float32 tensor that a module owns and an optimizer updates (``requires_grad=True``).

    Args:
        data: the initial values (converted to C-contiguous float32).
        requires_grad: whether backward computes its gradient.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(np.ascontiguousarray(data, dtype=np.float32), requires_grad=requires_grad)


class Module:
    """Base class: registers Parameters, buffers (NumPy arrays) and sub-modules by attribute name."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting {name}")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter | Module) or name in self._buffer_names():
            self.__dict__.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffer_names():
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _buffer_names(self) -> set[str]:
        return self.__dict__.setdefault("_buffer_keys", set())

    def __getattr__(self, name: str) -> Any:
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Register a non-trainable array saved in the state dict (e.g. running statistics).

        Args:
            name: the attribute name (later assignments to it replace the buffer).
            value: the array.
        """
        self._buffer_names().add(name)
        self._buffers[name] = value

    # ---- traversal --------------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """The direct sub-modules.

        Yields:
            ``(attribute name, module)`` pairs in definition order.
        """
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules, in definition order.

        Yields:
            Each sub-module.
        """
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and every descendant, depth first in definition order.

        Args:
            prefix: the name of this module (its descendants' names are dotted below it).

        Yields:
            ``(dotted name, module)`` pairs, this module first.
        """
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant (as :meth:`named_modules`, without names).

        Yields:
            Each module, this one first.
        """
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter of this module and its descendants.

        Args:
            prefix: the name of this module (the parameters' names are dotted below it).

        Yields:
            ``(dotted name, parameter)`` pairs.
        """
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> list[Parameter]:
        """Every parameter of this module and its descendants (for an optimizer).

        Returns:
            The parameters, in :meth:`named_parameters` order.
        """
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """Every buffer of this module and its descendants.

        Yields:
            ``(dotted name, array)`` pairs.
        """
        for mname, m in self.named_modules():
            for bname, b in m._buffers.items():
                yield (f"{mname}.{bname}" if mname else bname), b

    # ---- modes, gradients ---------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (or evaluation mode) on this module and every descendant.

        Args:
            mode: True for training (batch statistics, dropout), False for evaluation.

        Returns:
            This module.
        """
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Set evaluation mode (``train(False)``).

        Returns:
            This module.
        """
        return self.train(False)

    def zero_grad(self) -> None:
        """Drop the gradient of every parameter (``grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ---- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers (in place, keeping dtypes).

        Args:
            state: dotted name -> array, as :meth:`state_dict` returns.
            strict: refuse missing or unexpected keys (False: load the keys both have).

        Raises:
            KeyError: with ``strict``, when keys are missing or unexpected (all are listed).
            ValueError: when an array's shape differs from the parameter's.
        """
        own = dict(self.named_parameters())
        own_buffers = dict(self.named_buffers())
        missing = [k for k in list(own) + list(own_buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in own_buffers]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, value in state.items():
            target = own[key].data if key in own else own_buffers.get(key)
            if target is None:
                continue
            arr = np.asarray(value)
            if arr.shape != target.shape:
                raise ValueError(f"load_state_dict: {key} has shape {arr.shape} in the state dict but "
                                 f"{target.shape} in the model")
            target[...] = arr

    # ---- calling -------------------------------------------------------------------------------------------
    def forward(self, *args: Any) -> Any:  # pragma: no cover - abstract
        """The module's computation (subclasses define it; calling the module calls it).

        Args:
            *args: the inputs.

        Returns:
            The output.

        Raises:
            NotImplementedError: on the base class.
        """
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The arguments shown inside the module's ``repr`` (empty here).

        Returns:
            A string.
        """
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            lines.append(f"  ({name}): " + repr(m).replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else lines[0] + ")"


def _uniform(bound: float, shape: tuple[int, ...]) -> np.ndarray:
    return _rng.uniform(-bound, bound, shape).astype(np.float32)


class Linear(Module):
    """``y = x @ weight.T + bias``; PyTorch's default initialisation (U(+-1/sqrt(fan_in))).

    Args:
        in_features: the input width (>= 1).
        out_features: the output width (>= 1).
        bias: whether the layer has a bias.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        in_features, out_features = check_int("in_features", in_features, low=1), check_int("out_features", out_features, low=1)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(bound, (out_features, in_features)))
        self.bias = Parameter(_uniform(bound, (out_features,))) if bias else None
        self.quant: LayerQuant | None = None

    def forward(self, x: Tensor) -> Tensor:
        """``x @ weight.T + bias``, quantized by ``quant`` when a recipe set it.

        Args:
            x: the input tensor of shape (N, in_features).

        Returns:
            The output tensor.
        """
        return ops.linear(x, self.weight, self.bias, self.quant)

    def extra_repr(self) -> str:
        """``in_features, out_features, bias=...``.

        Returns:
            A string.
        """
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution, NCHW/OIHW; PyTorch's default initialisation.

    Args:
        in_channels: input channels (divisible by ``groups``).
        out_channels: output channels (divisible by ``groups``).
        kernel_size: the square kernel's side.
        stride: the stride.
        padding: zero padding on each side.
        dilation: the kernel dilation.
        groups: the number of channel groups.
        bias: whether the layer has a bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        in_channels, out_channels = check_int("in_channels", in_channels, low=1), check_int("out_channels", out_channels, low=1)
        kernel_size, stride = check_int("kernel_size", kernel_size, low=1), check_int("stride", stride, low=1)
        padding, dilation = check_int("padding", padding), check_int("dilation", dilation, low=1)
        groups = check_int("groups", groups, low=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels={out_channels} must be "
                             f"divisible by groups={groups}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * kernel_size * kernel_size
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform(bound, (out_channels, in_channels // groups, kernel_size, kernel_size)))
        self.bias = Parameter(_uniform(bound, (out_channels,))) if bias else None
        self.quant: LayerQuant | None = None

    def forward(self, x: Tensor) -> Tensor:
        """The convolution of ``x``, quantized by ``quant`` when a recipe set it.

        Args:
            x: the input tensor (NCHW, ``in_channels`` channels).

        Returns:
            The output tensor.
        """
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                          dilation=self.dilation, groups=self.groups, quant=self.quant)

    def extra_repr(self) -> str:
        """The channel counts and convolution settings.

        Returns:
            A string.
        """
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, bias={self.bias is not None}")


class BatchNorm2d(Module):
    """Batch normalization over (N, H, W); running statistics as buffers (PyTorch semantics).

    Args:
        num_features: the number of channels.
        eps: added to the variance before the square root.
        momentum: the weight of the batch statistics in the running statistics' update.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        num_features = check_int("num_features", num_features, low=1)
        eps, momentum = check_real("eps", eps, low=0, low_open=True), check_real("momentum", momentum, low=0, high=1)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32))
        self.bias = Parameter(np.zeros(num_features, np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    def forward(self, x: Tensor, relu: bool = False) -> Tensor:
        """Normalize ``x``; ``relu=True`` applies a ReLU in the same fused pass.

        Training mode normalizes by the batch statistics and updates the running ones;
        evaluation mode uses the running statistics.

        Args:
            x: an NCHW tensor with ``num_features`` channels.
            relu: apply a ReLU to the result.

        Returns:
            The normalized tensor, shaped like ``x``.
        """
        if self.training:
            self.num_batches_tracked += 1
        return ops.batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var,
                                training=self.training, momentum=self.momentum, eps=self.eps, relu=relu)

    def extra_repr(self) -> str:
        """``num_features, eps=..., momentum=...``.

        Returns:
            A string.
        """
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ReLU(Module):
    """Rectified linear unit, ``max(x, 0)``."""

    def forward(self, x: Tensor) -> Tensor:
        """``max(x, 0)``.

        Args:
            x: the input tensor.

        Returns:
            The output tensor.
        """
        return ops.relu(x)


class MaxPool2d(Module):
    """Max pooling over square windows (NCHW).

    Args:
        kernel_size: the window side.
        stride: the step between windows (None: ``kernel_size``).
        padding: implicit padding on each side.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__()
        kernel_size, padding = check_int("kernel_size", kernel_size, low=1), check_int("padding", padding)
        stride = kernel_size if stride is None else check_int("stride", stride, low=1)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        """The maximum over each pooling window.

        Args:
            x: the input tensor (NCHW).

        Returns:
            The output tensor.
        """
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(MaxPool2d):
    """Average pooling over square windows (NCHW); arguments as :class:`MaxPool2d`."""

    def forward(self, x: Tensor) -> Tensor:
        """The mean over each pooling window (padding counts as zeros).

        Args:
            x: the input tensor (NCHW).

        Returns:
            The output tensor.
        """
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Adaptive average pooling; only ``output_size=1`` (global average, keeping H = W = 1).

    Args:
        output_size: 1 or ``(1, 1)``.

    Raises:
        ValueError: another output size.
    """

    def __init__(self, output_size: int | tuple[int, int] = 1) -> None:
        super().__init__()
        if output_size not in (1, (1, 1)):
            raise ValueError(f"AdaptiveAvgPool2d supports output_size=1 only, got {output_size!r}")

    def forward(self, x: Tensor) -> Tensor:
        """The mean over H and W, shaped (N, C, 1, 1).

        Args:
            x: the input tensor (NCHW).

        Returns:
            The output tensor.
        """
        y = ops.global_avg_pool2d(x)
        return ops.reshape(y, y.shape + (1, 1))


class Flatten(Module):
    """Merge the dimensions from ``start_dim`` on into one.

    Args:
        start_dim: the first dimension to merge.
    """

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with the dimensions from ``start_dim`` on merged into one.

        Args:
            x: the input tensor.

        Returns:
            The output tensor.
        """
        return ops.flatten(x, self.start_dim)


class Dropout(Module):
    """Dropout whose mask of call ``i`` is drawn from ``(seed, i)`` (reproducible).

    Args:
        p: the probability of zeroing an element, ``0 <= p < 1``.
        seed: the seed of the masks.
    """

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout p={p} must be in [0, 1)")
        self.p, self.seed, self.calls = p, seed, 0

    def forward(self, x: Tensor) -> Tensor:
        """In training mode, zero each element with probability ``p`` and scale the rest by
        ``1 / (1 - p)``; in evaluation mode, ``x`` itself.

        Args:
            x: the input tensor.

        Returns:
            The output tensor.
        """
        if not self.training:
            return x
        self.calls += 1
        return ops.dropout(x, self.p, seed=hash((self.seed, self.calls)) & 0x7FFFFFFF, training=True)


class Identity(Module):
    """Returns its input (a placeholder layer)."""

    def forward(self, x: Tensor) -> Tensor:
        """``x`` itself.

        Args:
            x: the input tensor.

        Returns:
            The output tensor.
        """
        return x


class Sequential(Module):
    """Modules applied in order, named ``"0"``, ``"1"``, ... (as in PyTorch).

    Args:
        *layers: the modules, in order.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: Any) -> Any:
        """The layers applied in order.

        Args:
            x: the input tensor.

        Returns:
            The output tensor.
        """
        for layer in self._modules.values():
            x = layer(x)
        return x


# ---- ResNet -------------------------------------------------------------------------------------------------
def _shortcut(in_planes: int, out_planes: int, stride: int) -> "Sequential | None":
    """The 1x1 projection (conv + bn) of a residual block whose shape changes, else None."""
    if stride == 1 and in_planes == out_planes:
        return None
    return Sequential(Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), BatchNorm2d(out_planes))


class BasicBlock(Module):
    """Two 3x3 convolutions with batch norm and a residual connection (ResNet-18/34).

    Args:
        in_planes: the input channels.
        planes: the block's width (its output has ``planes * expansion`` channels).
        stride: the stride of the first 3x3 convolution (and of the projection shortcut).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

        Args:
            x: the input tensor (NCHW).

        Returns:
            The output tensor.
        """
        out = self.bn1(self.conv1(x), relu=True)
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return ops.add_relu(out, shortcut)


class Bottleneck(Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a residual connection (ResNet-50).

    Args:
        in_planes: the input channels.
        planes: the block's width (its output has ``planes * expansion`` channels).
        stride: the stride of the 3x3 convolution (and of the projection shortcut).
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``relu(bn3(conv3(...)) + shortcut(x))`` after the 1x1 and 3x3 stages.

        Args:
            x: the input tensor (NCHW).

        Returns:
            The output tensor.
        """
        out = self.bn1(self.conv1(x), relu=True)
        out = self.bn2(self.conv2(out), relu=True)
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return ops.add_relu(out, shortcut)


class ResNet(Module):
    """ResNet (He et al. 2016) with torchvision's layer names.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)``.
        num_classes: outputs of the final ``fc``.
        in_channels: input image channels.
        width: channels of the first stage (64 in the paper); stages use width * (1, 2, 4, 8).
        cifar_stem: a 3x3 stride-1 first convolution and no max-pool (for 32x32 inputs),
            instead of the ImageNet 7x7 stride-2 convolution followed by a 3x3 max-pool.
    """

    def __init__(self, block: type, layers: tuple[int, ...], num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64, cifar_stem: bool = False) -> None:
        super().__init__()
        if min(num_classes, in_channels, width) < 1 or len(layers) != 4:
            raise ValueError(f"ResNet: num_classes={num_classes}, in_channels={in_channels}, width={width} must "
                             f"be >= 1 and layers must have 4 entries, got {layers}")
        if cifar_stem:
            self.conv1 = Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(width)
        self.relu = ReLU()
        self.maxpool = Identity() if cifar_stem else MaxPool2d(3, stride=2, padding=1)
        planes, self._in = width, width
        for i, n in enumerate(layers):
            setattr(self, f"layer{i + 1}", self._stage(block, planes * 2 ** i, n, 1 if i == 0 else 2))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc = Linear(width * 8 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, Conv2d):  # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu")
                fan_out = m.out_channels * m.kernel_size ** 2 // m.groups
                m.weight.data[...] = _rng.normal(0.0, math.sqrt(2.0 / fan_out), m.weight.shape)

    def _stage(self, block: type, planes: int, n: int, stride: int) -> Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(block(self._in, planes, s))
            self._in = planes * block.expansion
        return Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        """The class logits of an image batch.

        Args:
            x: the input tensor of images (NCHW).

        Returns:
            The output tensor.
        """
        x = self.maxpool(self.bn1(self.conv1(x), relu=True))  # bn1 + relu fused
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x)))


def resnet18(num_classes: int = 1000, in_channels: int = 3, width: int = 64, cifar_stem: bool = False) -> ResNet:
    """ResNet-18 (basic blocks, stages (2, 2, 2, 2)).

    Args:
        num_classes: outputs of the final ``fc``.
        in_channels: input image channels.
        width: channels of the first stage.
        cifar_stem: the 3x3 stride-1 stem without max-pool, for 32x32 inputs.

    Returns:
        A new :class:`ResNet` (initialised from the :func:`manual_seed` generator).
    """
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, width, cifar_stem)


def resnet34(num_classes: int = 1000, in_channels: int = 3, width: int = 64, cifar_stem: bool = False) -> ResNet:
    """ResNet-34 (basic blocks, stages (3, 4, 6, 3)).

    Args:
        num_classes: outputs of the final ``fc``.
        in_channels: input image channels.
        width: channels of the first stage.
        cifar_stem: the 3x3 stride-1 stem without max-pool, for 32x32 inputs.

    Returns:
        A new :class:`ResNet` (initialised from the :func:`manual_seed` generator).
    """
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, width, cifar_stem)


def resnet50(num_classes: int = 1000, in_channels: int = 3, width: int = 64, cifar_stem: bool = False) -> ResNet:
    """ResNet-50 (bottleneck blocks, stages (3, 4, 6, 3)).

    Args:
        num_classes: outputs of the final ``fc``.
        in_channels: input image channels.
        width: channels of the first stage.
        cifar_stem: the 3x3 stride-1 stem without max-pool, for 32x32 inputs.

    Returns:
        A new :class:`ResNet` (initialised from the :func:`manual_seed` generator).
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, width, cifar_stem)


def gemm_layers(model: Module) -> list[tuple[str, Module]]:
    """The model's Conv2d and Linear layers with their names, in definition order.

    Args:
        model: the model.

    Returns:
        ``(dotted name, layer)`` pairs.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Conv2d | Linear)]
