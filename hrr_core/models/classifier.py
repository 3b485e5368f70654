"""The plain CNN detector: one backbone + a linear head giving one real/generated logit.

The first real detector of the pipeline and the core of the CNNSpot-style baseline
(Wang et al., "CNN-generated images are surprisingly easy to spot... for now", CVPR 2020:
an ImageNet ResNet-50 fine-tuned as a binary classifier).
"""

from __future__ import annotations

import torch
from torch import nn

from hrr_core.models.backbones import build_backbone
from hrr_core.models.outputs import DetectorOutput
from hrr_core.schema.models import ClassifierConfig  # noqa: F401 (config lives in the schema)


class BinaryClassifier(nn.Module):
    """Images (B, C, H, W) in [0, 1] -> :class:`DetectorOutput` with logits (B,) (larger =
    generated) and the pooled backbone features (B, D)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.backbone.out_dim, 1)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        features = self.backbone(x)  # (B, D)
        logits = self.head(self.dropout(features)).squeeze(1)  # (B,)
        return DetectorOutput(logits=logits, features=features)
