"""NPR (Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
Generalizable Deepfake Detection", CVPR 2024; code: chuangchuangtan/NPR-DeepfakeDetection).

Generators up-sample, which ties each pixel to its 2x2 neighbours. NPR exposes that
relationship as the neighbouring-pixel residual  NPR(x) = x - up_x2(down_x0.5(x))  (nearest
both ways, i.e. every pixel minus the top-left pixel of its 2x2 block) and classifies it with
a truncated ResNet trained from scratch.

Faithful (official ``networks/resnet.py``): the residual is taken on the ImageNet-normalised
image (so it equals the raw residual divided by the channel std; the mean cancels), scaled by
2/3, then conv1 3x3 stride 2 (64 channels, no bias) -> BN -> ReLU -> maxpool 3/2 -> layer1
(64-wide Bottlenecks, 3 blocks) -> layer2 (128-wide, stride 2, 4 blocks) -> global average pool
-> Linear(512, 1); Kaiming init; no pretrained weights.

Differs: odd heights/widths are cropped to even (bottom row / right column dropped) before the
residual, as the official code's commented-out branch does (its active path fails on odd
sizes); ``width``, ``blocks`` and ``block`` make a smaller network for CPU runs (width 64,
blocks (3, 4), bottleneck = official). Inputs: (B, 3, H, W) in [0, 1], H, W >= 32 (the net
itself runs from 8 px; 32 is the project-wide minimum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hrr_core.confutil import check
from hrr_core.models.backbone_common import init_conv_bn
from hrr_core.models.baselines.common import check_images
from hrr_core.models.outputs import DetectorOutput
from hrr_core.models.resnet import IMAGENET_STD, BasicBlock, Bottleneck

NPR_SCALE = 2.0 / 3.0  # the official input scaling of the residual


@dataclass(frozen=True)
class NPRConfig:
    """width: channels of conv1/layer1 (layer2 doubles it); blocks: residual blocks in
    (layer1, layer2); block: bottleneck (official, 4x expansion) or basic; normalize: divide the
    residual by the ImageNet std as the official pipeline does; dropout: before the head."""

    width: int = 64
    blocks: tuple[int, int] = (3, 4)
    block: Literal["bottleneck", "basic"] = "bottleneck"
    normalize: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check(1 <= self.width <= 512, "width", "an integer in [1, 512]", self.width)
        check(all(1 <= b <= 32 for b in self.blocks), "blocks", "two integers in [1, 32]", self.blocks)
        check(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)", self.dropout)


def crop_to_even(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H - H % 2, W - W % 2) (drops the last row / column when odd)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % 2, : w - w % 2]


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """Neighbouring-pixel residual: (B, C, H, W) -> (B, C, H', W') with H', W' the even crops.

    Equals ``x - interpolate(interpolate(x, 0.5, 'nearest'), 2, 'nearest')`` of the official
    code: nearest down-sampling by 2 keeps the top-left pixel of every 2x2 block, nearest
    up-sampling copies it back over the block. Exactly zero on images constant within 2x2 blocks.
    """
    x = crop_to_even(x)  # (B, C, H', W')
    anchor = x[..., ::2, ::2]  # (B, C, H'/2, W'/2) top-left of each block
    up = anchor.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (B, C, H', W')
    return x - up


def _stage(block: type, in_ch: int, width: int, n: int, stride: int) -> tuple[nn.Sequential, int]:
    layers = []
    for r in range(n):
        layers.append(block(in_ch, width, stride if r == 0 else 1))
        in_ch = width * block.expansion
    return nn.Sequential(*layers), in_ch


class NPR(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> DetectorOutput(logits (B,), features (B, D)); D = 8 width
    for bottleneck blocks (512 at the official width 64), 2 width for basic blocks."""

    def __init__(self, cfg: NPRConfig):
        super().__init__()
        self.cfg = cfg
        inv_std = torch.tensor([1.0 / s for s in IMAGENET_STD]) if cfg.normalize else torch.ones(3)
        self.register_buffer("inv_std", inv_std.view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)
        block = Bottleneck if cfg.block == "bottleneck" else BasicBlock
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layer1, ch = _stage(block, w, w, cfg.blocks[0], 1)
        self.layer2, ch = _stage(block, ch, 2 * w, cfg.blocks[1], 2)
        self.out_dim = ch
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(ch, 1)
        for m in self.modules():
            init_conv_bn(m)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        check_images(x)
        r = npr_residual(x) * self.inv_std * NPR_SCALE  # (B, 3, H', W')
        h = F.relu(self.bn1(self.conv1(r)))  # (B, w, H'/2, W'/2)
        h = F.max_pool2d(h, 3, stride=2, padding=1)  # (B, w, H'/4, W'/4)
        h = self.layer2(self.layer1(h))  # (B, D, H'/8, W'/8)
        features = h.mean(dim=(2, 3))  # (B, D)
        logits = self.head(self.dropout(features)).squeeze(1)  # (B,)
        return DetectorOutput(logits=logits, features=features)
