"""ResNets in PyTorch with the NumPy engine's architecture and names (torchvision is not needed).

``resnet18/34/50`` build the same networks as :func:`fp8emu.nn.resnet18` etc.: the same modules
under the same names in the same definition order (so state dicts move between the backends and
the Conv2d/Linear layers have the same indices, hence the same SR streams), the same 3x3 "CIFAR"
stem option and torchvision's initialisation.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet", "resnet18", "resnet34", "resnet50"]


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (ResNet-18/34).

    Args:
        in_planes: the input channels.
        planes: the block's width (its output has ``planes * expansion`` channels).
        stride: the stride of the first 3x3 convolution (and of the projection shortcut).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

        Args:
            x: the input batch (NCHW).

        Returns:
            The output tensor.
        """
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a residual connection (ResNet-50).

    Args:
        in_planes: the input channels.
        planes: the block's width (its output has ``planes * expansion`` channels).
        stride: the stride of the 3x3 convolution (and of the projection shortcut).
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn3(conv3(...)) + shortcut(x))`` after the 1x1 and 3x3 stages.

        Args:
            x: the input batch (NCHW).

        Returns:
            The output tensor.
        """
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """ResNet (He et al. 2016); the arguments of :class:`fp8emu.nn.ResNet`.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)``.
        num_classes: outputs of the final ``fc``.
        in_channels: input image channels.
        width: channels of the first stage; stages use width * (1, 2, 4, 8).
        cifar_stem: a 3x3 stride-1 first convolution and no max-pool (small images).

    Raises:
        ValueError: non-positive sizes or not 4 stages.
    """

    def __init__(self, block: type, layers: tuple[int, ...], num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64, cifar_stem: bool = False) -> None:
        super().__init__()
        if min(num_classes, in_channels, width) < 1 or len(layers) != 4:
            raise ValueError(f"ResNet: num_classes={num_classes}, in_channels={in_channels}, width={width} must "
                             f"be >= 1 and layers must have 4 entries, got {layers}")
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, stride=2, padding=1)
        self._in = width
        for i, n in enumerate(layers):
            setattr(self, f"layer{i + 1}", self._stage(block, width * 2 ** i, n, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block: type, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(block(self._in, planes, s))
            self._in = planes * block.expansion
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The class logits of an image batch.

        Args:
            x: the input batch (NCHW).

        Returns:
            The output tensor.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


#: depth -> (block, blocks per stage), as in fp8emu.nn
_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


def resnet(depth: int, num_classes: int = 1000, in_channels: int = 3, width: int = 64,
           cifar_stem: bool = False) -> ResNet:
    """ResNet-18, -34 or -50 (``depth``), the arguments of :func:`fp8emu.nn.resnet18`.

    Args:
        depth: 18, 34 or 50.
        num_classes: as :func:`fp8emu.nn.resnet18`.
        in_channels: as :func:`fp8emu.nn.resnet18`.
        width: as :func:`fp8emu.nn.resnet18`.
        cifar_stem: as :func:`fp8emu.nn.resnet18`.

    Raises:
        ValueError: another depth.
    """
    if depth not in _DEPTHS:
        raise ValueError(f"ResNet depth {depth} is not available; allowed: {', '.join(map(str, _DEPTHS))}")
    block, layers = _DEPTHS[depth]
    return ResNet(block, layers, num_classes, in_channels, width, cifar_stem)


resnet18 = functools.partial(resnet, 18)
resnet34 = functools.partial(resnet, 34)
resnet50 = functools.partial(resnet, 50)
