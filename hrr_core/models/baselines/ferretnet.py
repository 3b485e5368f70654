"""FerretNet-style detector (FerretNet, "Efficient Synthetic Image Detection via Local Pixel
Dependencies", NeurIPS 2025), a small network (~1 M parameters) trained from scratch.

A generator predicts every pixel jointly with its neighbours, so generated images are more
predictable from their surroundings than camera images (whose sensor noise is not). FerretNet
reads the "local pixel dependency" (LPD) residual: each pixel minus its reconstruction from its
8 neighbours by a median filter, per channel, and classifies it with depthwise-separable,
dilated convolutions.

Faithful: the LPD residual (3x3 median of the 8 neighbours, centre excluded); depthwise /
dilated convolutions; ~1.06 M parameters at the default widths (the paper's count); trained
from scratch (the paper uses Adam, lr 2e-4: set ``train.lr``).

Ours: the exact block layout. Stem conv 3x3 (stride 1, keeps the residual's full resolution for
one layer) -> stages of ``widths``, each opened by a stride-2 depthwise-separable conv and
followed by ``blocks`` Ferret blocks (two parallel depthwise 3x3 convs, dilation 1 and 2,
summed, then a pointwise conv; residual) -> global average pool -> Linear(D, 1). The median of
an even count (8) is the mean of the two middle values; borders are reflect-padded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hrr_core.models.backbone_common import init_conv_bn
from hrr_core.models.baselines.common import check_images
from hrr_core.models.outputs import DetectorOutput
from hrr_core.schema.baselines import FerretNetConfig  # noqa: F401 (config lives in the schema)


def median_residual(x: torch.Tensor) -> torch.Tensor:
    """LPD residual (B, C, H, W) -> (B, C, H, W): x minus the median of its 8 neighbours (3x3
    window without the centre, reflect-padded borders; median = mean of the 4th and 5th smallest)."""
    b, c, h, w = x.shape
    patches = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3)  # (B, C 9, H W)
    patches = patches.view(b, c, 9, h * w)
    neighbours = torch.cat([patches[:, :, :4], patches[:, :, 5:]], dim=2)  # (B, C, 8, H W), centre dropped
    mid = neighbours.sort(dim=2).values[:, :, 3:5].mean(dim=2)  # (B, C, H W)
    return x - mid.view(b, c, h, w)


def _separable(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (stride) -> pointwise 1x1 -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False),
        nn.Conv2d(in_ch, out_ch, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class FerretBlock(nn.Module):
    """Residual block: depthwise 3x3 dilation 1 + depthwise 3x3 dilation 2 (summed) -> BN -> ReLU
    -> pointwise 1x1 -> BN, added to the input, ReLU. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, ch: int):
        super().__init__()
        self.dw1 = nn.Conv2d(ch, ch, 3, padding=1, groups=ch, bias=False)
        self.dw2 = nn.Conv2d(ch, ch, 3, padding=2, dilation=2, groups=ch, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.pw = nn.Conv2d(ch, ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.dw1(x) + self.dw2(x)))  # (B, C, H, W)
        return F.relu(x + self.bn2(self.pw(h)))


class FerretNet(nn.Module):
    """Images (B, 3, H, W) in [0, 1], H, W >= 32 -> DetectorOutput(logits (B,), features (B, D)),
    D = widths[-1]."""

    def __init__(self, cfg: FerretNetConfig):
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(
            nn.Conv2d(3, cfg.stem, 3, padding=1, bias=False), nn.BatchNorm2d(cfg.stem), nn.ReLU(inplace=True)
        )
        stages, ch = [], cfg.stem
        for width, n in zip(cfg.widths, cfg.blocks):
            stages.append(nn.Sequential(_separable(ch, width, 2), *[FerretBlock(width) for _ in range(n)]))
            ch = width
        self.stages = nn.Sequential(*stages)
        self.out_dim = ch
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(ch, 1)
        for m in self.modules():
            init_conv_bn(m)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        check_images(x)
        r = median_residual(x)  # (B, 3, H, W)
        h = self.stages(self.stem(r))  # (B, D, H / 2^S, W / 2^S)
        features = h.mean(dim=(2, 3))  # (B, D)
        logits = self.head(self.dropout(features)).squeeze(1)  # (B,)
        return DetectorOutput(logits=logits, features=features)
