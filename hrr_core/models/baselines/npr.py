"""NPR (Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
Generalizable Deepfake Detection", CVPR 2024; code: chuangchuangtan/NPR-DeepfakeDetection).

Generators up-sample, which ties each pixel to its 2x2 neighbours. NPR exposes that
relationship as the neighbouring-pixel residual  NPR(x) = x - up_x2(down_x0.5(x))  (nearest
both ways, i.e. every pixel minus the top-left pixel of its 2x2 block) and classifies it with
a truncated ResNet trained from scratch.

Faithful (official ``networks/resnet.py``): the residual is taken on the ImageNet-normalised
image (so it equals the raw residual divided by the channel std; the mean cancels), scaled by
2/3, then the shared truncated ResNet-50 of :mod:`hrr_core.models.baselines.trunk` (conv1 3x3/2,
layer1 3 x 64, layer2 4 x 128, GAP, Linear(512, 1); Kaiming init; no pretrained weights).

Differs: odd heights/widths are cropped to even (bottom row / right column dropped) before the
residual, as the official code's commented-out branch does (its active path fails on odd
sizes); ``width``, ``blocks`` and ``block`` make a smaller network for CPU runs (width 64,
blocks (3, 4), bottleneck = official). Inputs: (B, 3, H, W) in [0, 1], H, W >= 32 (the net
itself runs from 8 px; 32 is the project-wide minimum).
"""

from __future__ import annotations

import torch
from torch import nn

from hrr_core.models.baselines.trunk import TruncatedResNet
from hrr_core.models.resnet import IMAGENET_STD
from hrr_core.schema.baselines import NPRConfig  # noqa: F401 (config lives in the schema)

NPR_SCALE = 2.0 / 3.0  # the official input scaling of the residual


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


class NPRTransform(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> NPR residual (B, 3, H', W'), / ImageNet std, x 2/3."""

    out_channels = 3

    def __init__(self, normalize: bool = True):
        super().__init__()
        inv_std = torch.tensor([1.0 / s for s in IMAGENET_STD]) if normalize else torch.ones(3)
        self.register_buffer("inv_std", inv_std.view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return npr_residual(x) * self.inv_std * NPR_SCALE


def NPR(cfg: NPRConfig) -> TruncatedResNet:
    """The NPR detector: images (B, 3, H >= 32, W >= 32) in [0, 1] -> DetectorOutput(logits (B,),
    features (B, D)); D = 8 width for bottleneck blocks (512 at width 64), 2 width for basic."""
    return TruncatedResNet(cfg, NPRTransform(cfg.normalize))
