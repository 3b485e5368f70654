"""Image backbones shared by HRR (one backbone applied to every scale), the CNNSpot-style
baseline and the plain CNN detector: :class:`BackboneConfig` and :func:`build_backbone`.

Every backbone takes images (B, in_channels, H, W) with the RGB channels in [0, 1] (extra
channels, e.g. a residual, after them), normalises internally, accepts any H, W >= 32, and has

    .out_dim                      pooled feature size D
    forward(x)          -> (B, D) globally average-pooled features
    forward_features(x) -> (B, D, h, w) final feature map (h, w = ceil(H / 32) ... for the big nets)

Implementations: :mod:`hrr_core.models.efficientnet`, :mod:`hrr_core.models.resnet`.
"""

from __future__ import annotations

from torch import nn

from hrr_core.models.efficientnet import EfficientNetLite0, efficientnet_lite0
from hrr_core.models.resnet import ResNet, SmallResNet, load_resnet_weights, resnet
from hrr_core.schema.models import BackboneConfig  # noqa: F401 (config lives in the schema)

__all__ = ["BackboneConfig", "build_backbone", "EfficientNetLite0", "ResNet", "SmallResNet", "count_parameters"]


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """Build the backbone ``cfg`` describes (weights loaded strictly when pretrained)."""
    common = dict(in_channels=cfg.in_channels, drop_rate=cfg.drop_rate, instance_norm_early=cfg.instance_norm_early)
    if cfg.name == "efficientnet_lite0":
        return efficientnet_lite0(pretrained=cfg.pretrained, weights_path=cfg.weights_path, **common)
    if cfg.name.startswith("resnet"):
        weights = cfg.weights_path if cfg.pretrained else None
        return resnet(int(cfg.name.removeprefix("resnet")), weights_path=weights, **common)
    if cfg.name == "small_resnet":
        model = SmallResNet(width=cfg.width, depth=cfg.depth, **common)
        return load_resnet_weights(model, cfg.weights_path) if cfg.pretrained else model
    raise ValueError(f"unknown backbone name {cfg.name!r}; use one of efficientnet_lite0, resnet18/34/50, small_resnet")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
