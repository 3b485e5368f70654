"""BSF-style pixel-value mapping ("Beyond Semantic Features: Pixel-level Mapping for Generalized
AI-Generated Image Detection", 2025), as benchmarked in AIGIBench.

Detectors overfit to semantic and colour cues of the training generator. A fixed mapping of the
256 pixel values scrambles the value distribution (and with it the semantics a network reads
from smooth intensity gradients) while keeping which neighbouring pixels are equal or differ:
the high-frequency, local traces of generation survive. The mapped image goes into the shared
truncated ResNet-50 trained from scratch (:mod:`hrr_core.models.baselines.trunk`).

Ours (a substitute reading of the paper's pre-processing): the mapping is a seeded random
permutation of {0..255}, one for all channels or one per channel (``per_channel``), applied to
the 8-bit value round(255 x); fixed (never trained, never resampled), so train and test see the
same map and the checkpoint needs no extra state (the table is rebuilt from ``seed``). The
paper's exact mapping family and its detector back-end may differ; its AIGIBench Setting II
numbers (ACC 78.8 / AP 81.1) are for the authors' pipeline, not this one.
"""

from __future__ import annotations

import torch
from torch import nn

from hrr_core.models.baselines.trunk import TruncatedResNet
from hrr_core.schema.baselines import BSFConfig  # noqa: F401 (config lives in the schema)


def value_permutation(seed: int, channels: int) -> torch.Tensor:
    """(channels, 256) int64 tables, each a permutation of 0..255 drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(256, generator=g) for _ in range(channels)])


class PixelValueMapping(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]: each 8-bit value v of channel c
    replaced by table[c, v] / 255 (a fixed lookup; no gradient reaches the input)."""

    out_channels = 3

    def __init__(self, table: torch.Tensor):
        super().__init__()
        if table.shape[-1] != 256 or table.shape[0] not in (1, 3):
            raise ValueError(f"expected a (1 or 3, 256) value table, got {tuple(table.shape)}")
        self.register_buffer("table", table.expand(3, 256).to(torch.float32) / 255.0, persistent=False)  # (3, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = (x.detach() * 255.0).round().clamp(0, 255).long()  # (B, 3, H, W) 8-bit values
        b, c, h, w = v.shape
        flat = v.permute(1, 0, 2, 3).reshape(c, -1)  # (3, B H W)
        mapped = torch.gather(self.table, 1, flat)  # (3, B H W)
        return mapped.reshape(c, b, h, w).permute(1, 0, 2, 3).contiguous()  # (B, 3, H, W)


def build_bsf(cfg: BSFConfig) -> TruncatedResNet:
    """The BSF-style detector: images (B, 3, H >= 32, W >= 32) in [0, 1] -> DetectorOutput."""
    return TruncatedResNet(cfg, PixelValueMapping(value_permutation(cfg.seed, 3 if cfg.per_channel else 1)))
