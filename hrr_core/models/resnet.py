"""ResNets in plain torch: torchvision's ResNet-18/34/50/101/152 (same architecture and state-dict
keys, so a torchvision ``.pth`` or ``.safetensors`` file from a local path loads strictly) and a
small from-scratch :class:`SmallResNet` for tiny runs.

Provenance: He et al., "Deep Residual Learning" (CVPR 2016); layout, key names and init follow
``torchvision.models.resnet`` (v1.5: the stride sits on the 3x3 conv of a Bottleneck).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hrr_core.models.backbone_common import (
    DropPath,
    InputNormalization,
    early_norm,
    global_pool,
    init_conv_bn,
    load_state_dict_checked,
    read_state_dict,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# depth -> (block type, blocks per stage)
RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """torchvision's projection shortcut (keys ``downsample.0`` conv, ``downsample.1`` BN)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """3x3 -> 3x3 residual block (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, drop_path: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(in_ch, width, stride)
        self.drop_path = DropPath(drop_path)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))  # (B, width, H/s, W/s)
        h = self.bn2(self.conv2(h))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(skip + self.drop_path(h))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels) residual block (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, drop_path: float = 0.0):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = _downsample(in_ch, out_ch, stride)
        self.drop_path = DropPath(drop_path)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))  # (B, width, H, W)
        h = F.relu(self.bn2(self.conv2(h)))  # (B, width, H/s, W/s)
        h = self.bn3(self.conv3(h))  # (B, 4 width, H/s, W/s)
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(skip + self.drop_path(h))


class _ResNetBase(nn.Module):
    """Shared body of both ResNets: normalise -> stem -> early norm -> layer1..4 -> pool."""

    def _make_layers(
        self,
        block: type,
        in_ch: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        strides: Sequence[int],
        drop_rate: float,
    ) -> int:
        total, i = sum(blocks), 0
        for stage, (width, n, stride) in enumerate(zip(widths, blocks, strides), start=1):
            layer = []
            for r in range(n):
                layer.append(block(in_ch, width, stride if r == 0 else 1, drop_path=drop_rate * i / total))
                in_ch, i = width * block.expansion, i + 1
            setattr(self, f"layer{stage}", nn.Sequential(*layer))
        return in_ch

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            init_conv_bn(m)
            if zero_init_residual and isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.last_bn().weight)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, out_dim, h, w) final feature map."""
        x = self.early_norm(self._stem(self.normalize(x)))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, out_dim) globally pooled features."""
        return global_pool(self.forward_features(x))


class ResNet(_ResNetBase):
    """torchvision-compatible ResNet. ``forward(x)``: (B, C, H, W) in [0, 1] -> (B, out_dim).

    depth: 18, 34, 50, 101 or 152. num_classes: 0 for a backbone (no ``fc``), 1000 to keep an
    ImageNet head (:meth:`classify`). in_channels > 3 adds extra input channels.
    drop_rate: stochastic depth, rising linearly over the blocks.
    instance_norm_early: InstanceNorm2d(affine=False) on the stem output (conv1/bn1/relu/maxpool).
    """

    def __init__(
        self,
        depth: int = 50,
        num_classes: int = 0,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        instance_norm_early: bool = False,
    ):
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        kind, blocks = RESNET_LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.in_channels, self.num_classes = in_channels, num_classes
        self.normalize = InputNormalization(IMAGENET_MEAN, IMAGENET_STD, in_channels)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.early_norm = early_norm(instance_norm_early, 64)
        self.out_dim = self._make_layers(block, 64, (64, 128, 256, 512), blocks, (1, 2, 2, 2), drop_rate)
        if num_classes > 0:
            self.fc = nn.Linear(self.out_dim, num_classes)
        self._init_weights(zero_init_residual=False)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        return F.max_pool2d(x, 3, stride=2, padding=1)  # (B, 64, H/4, W/4)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, num_classes) logits (needs num_classes > 0)."""
        if self.num_classes == 0:
            raise ValueError("this ResNet was built without a head; use num_classes=1000")
        return self.fc(self.forward(x))


class SmallResNet(_ResNetBase):
    """Small from-scratch ResNet for tiny/smoke runs: 3x3 stride-1 stem (keeps full-resolution
    high frequencies for one layer), then four BasicBlock stages of ``width * (1, 2, 4, 8)``
    channels, each halving resolution, ``depth`` blocks per stage. Width 24, depth 1: ~0.7 M
    parameters, out_dim 192. Residual branches start at zero (zero-init last BN)."""

    def __init__(
        self,
        width: int = 24,
        depth: int = 1,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        instance_norm_early: bool = False,
    ):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"SmallResNet needs width >= 1 and depth >= 1, got width={width}, depth={depth}")
        self.in_channels = in_channels
        self.normalize = InputNormalization(IMAGENET_MEAN, IMAGENET_STD, in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.early_norm = early_norm(instance_norm_early, width)
        widths = tuple(width * m for m in (1, 2, 4, 8))
        self.out_dim = self._make_layers(BasicBlock, width, widths, (depth,) * 4, (2, 2, 2, 2), drop_rate)
        self._init_weights(zero_init_residual=True)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))  # (B, width, H, W)


def load_resnet_weights(model: ResNet | SmallResNet, path: str | os.PathLike) -> ResNet | SmallResNet:
    """Load a torchvision-format state dict (``.pth`` weights-only or ``.safetensors``) strictly.
    The file's ``fc`` is dropped only when the model has no head; a 3-channel ``conv1`` is
    extended when the model takes more channels."""
    drop = ("fc.",) if getattr(model, "num_classes", 0) == 0 else ()
    load_state_dict_checked(model, read_state_dict(path), str(path), first_conv="conv1.weight", drop_prefixes=drop)
    return model


def resnet(depth: int = 50, weights_path: str | os.PathLike | None = None, **kwargs) -> ResNet:
    """Build a torchvision-compatible ResNet (kwargs as :class:`ResNet`), optionally loading
    weights from a local file (nothing is downloaded)."""
    model = ResNet(depth, **kwargs)
    if weights_path is not None:
        load_resnet_weights(model, weights_path)
    return model
