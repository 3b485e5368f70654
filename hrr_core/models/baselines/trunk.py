"""The truncated ResNet-50 that NPR, SAFE, BSF and the FreqNet-style input share, trained from
scratch, with the input transform as a pluggable module.

Provenance: the NPR code (chuangchuangtan/NPR-DeepfakeDetection, ``networks/resnet.py``) cuts a
ResNet-50 after layer2 and swaps the 7x7 stem for a 3x3 stride-2 conv; SAFE (Li et al., KDD
2025) and BSF ("Beyond Semantic Features", pixel-level mapping) reuse that skeleton and change
only what the network sees. So one trunk, many inputs:

    images (B, 3, H, W) in [0, 1] -> transform -> (B, C_in, H', W')
      -> conv1 3x3/2 (width, no bias) -> BN -> ReLU -> maxpool 3/2
      -> layer1 (blocks[0] Bottlenecks, width) -> layer2 (blocks[1] Bottlenecks, 2 width, stride 2)
      -> global average pool (B, D) -> dropout -> Linear(D, 1) -> logits (B,)

D = 8 width for Bottlenecks (512 at the official width 64), 2 width for basic blocks. At the
official width/blocks and C_in = 3: 1.44 M parameters (the papers' count). Blocks are the
project's plain-torch torchvision-layout :class:`~hrr_core.models.resnet.Bottleneck`; Kaiming
init; no pretrained weights. A transform is any ``nn.Module`` with an ``out_channels`` attribute;
it should hold no persistent state, so the state-dict keys are those of the trunk alone
(``conv1``, ``bn1``, ``layer1``, ``layer2``, ``head``: unchanged from the NPR module before it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hrr_core.models.backbone_common import init_conv_bn
from hrr_core.models.baselines.common import check_images
from hrr_core.models.outputs import DetectorOutput
from hrr_core.models.resnet import BasicBlock, Bottleneck
from hrr_core.schema.baselines import TrunkConfig  # noqa: F401 (config lives in the schema)


def _stage(block: type, in_ch: int, width: int, n: int, stride: int) -> tuple[nn.Sequential, int]:
    layers = []
    for r in range(n):
        layers.append(block(in_ch, width, stride if r == 0 else 1))
        in_ch = width * block.expansion
    return nn.Sequential(*layers), in_ch


class TruncatedResNet(nn.Module):
    """``transform`` then the trunk: images (B, 3, H, W) in [0, 1], H, W >= 32 ->
    DetectorOutput(logits (B,), features (B, D))."""

    def __init__(self, cfg: TrunkConfig, transform: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.transform = transform
        block = Bottleneck if cfg.block == "bottleneck" else BasicBlock
        w = cfg.width
        self.conv1 = nn.Conv2d(int(transform.out_channels), w, 3, stride=2, padding=1, bias=False)
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
        r = self.transform(x)  # (B, C_in, H', W')
        h = F.relu(self.bn1(self.conv1(r)))  # (B, w, H'/2, W'/2)
        h = F.max_pool2d(h, 3, stride=2, padding=1)  # (B, w, H'/4, W'/4)
        h = self.layer2(self.layer1(h))  # (B, D, H'/8, W'/8)
        features = h.mean(dim=(2, 3))  # (B, D)
        logits = self.head(self.dropout(features)).squeeze(1)  # (B,)
        return DetectorOutput(logits=logits, features=features)
