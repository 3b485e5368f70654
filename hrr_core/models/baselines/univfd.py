"""UnivFD (Ojha et al., "Towards Universal Fake Image Detectors that Generalize Across
Generative Models", CVPR 2023; code: WisconsinAIVision/UniversalFakeDetect).

A linear probe on a frozen, generically pretrained encoder: the feature space was never
trained to separate real from fake, so it does not overfit one generator's fingerprint.

Faithful (``encoder: clip``): CLIP ViT-L/14's image embedding (768-d, after the visual
projection, as ``clip.encode_image``) loaded with transformers'
``CLIPVisionModelWithProjection.from_pretrained(clip_path)`` from a local folder; CLIP's
mean/std normalisation; a 224 px centre crop (``clip_input: center_crop``; images smaller than
224 are first resized, shorter side to 224, bilinear with antialias); one trainable
Linear(768, 1) initialised N(0, 0.02); BCE. The encoder is frozen (requires_grad False, eval
mode kept through ``train()``), so only the head learns.

Differs: the offline default encoder is the frozen ImageNet EfficientNet-Lite0 (1280-d pooled
features, any input size >= 32), as no CLIP weights can be downloaded; this is a linear probe
on ImageNet features, the baseline UnivFD itself compares against, not UnivFD's numbers.
``transformers`` is needed only for ``encoder: clip`` (``pip install transformers``).
Checkpoints hold the frozen encoder too (about 1.2 GB for ViT-L/14).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hrr_core.models.backbones import BackboneConfig, build_backbone
from hrr_core.models.baselines.common import check_images
from hrr_core.models.outputs import DetectorOutput
from hrr_core.paths import resolve
from hrr_core.schema.baselines import UnivFDConfig  # noqa: F401 (config lives in the schema)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def fit_square(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size). resize: bilinear (antialiased when shrinking);
    center_crop: resize the shorter side up to ``size`` if needed, then crop the centre."""
    if mode == "resize":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    h, w = x.shape[-2:]
    if min(h, w) < size:
        s = size / min(h, w)
        h, w = max(size, round(h * s)), max(size, round(w * s))
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)  # (B, C, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]  # (B, C, size, size)


class CLIPImageEncoder(nn.Module):
    """Local transformers CLIP vision tower: (B, 3, H, W) in [0, 1] -> (B, projection_dim)."""

    def __init__(self, path: str, input_mode: str = "center_crop"):
        super().__init__()
        try:
            from transformers import CLIPVisionModelWithProjection
        except ImportError as exc:
            raise ImportError(
                "UnivFD with encoder: clip needs transformers; `pip install transformers` "
                "or use encoder: efficientnet_lite0"
            ) from exc
        self.model = CLIPVisionModelWithProjection.from_pretrained(str(resolve(path)), local_files_only=True)
        self.size = int(self.model.config.image_size)
        self.out_dim = int(self.model.config.projection_dim)
        self.input_mode = input_mode
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (fit_square(x, self.size, self.input_mode) - self.mean) / self.std  # (B, 3, S, S)
        return self.model(pixel_values=x).image_embeds  # (B, projection_dim)


def build_encoder(cfg: UnivFDConfig) -> nn.Module:
    """The frozen feature extractor ``cfg`` names (module with ``.out_dim``)."""
    if cfg.encoder == "clip":
        return CLIPImageEncoder(cfg.clip_path, cfg.clip_input)
    return build_backbone(
        BackboneConfig(name="efficientnet_lite0", pretrained=True, weights_path=cfg.lite0_weights_path)
    )


class UnivFD(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> DetectorOutput(logits (B,), features (B, D)); only
    ``head`` has trainable parameters."""

    def __init__(self, cfg: UnivFDConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg)
        self.encoder.requires_grad_(False)
        self.dropout = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(self.encoder.out_dim, 1)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)
        self.train()

    def train(self, mode: bool = True) -> "UnivFD":
        """Train the head only; the encoder stays in eval mode (frozen BN statistics)."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        check_images(x)
        with torch.no_grad():
            features = self.encoder(x).float()  # (B, D)
        logits = self.head(self.dropout(features)).squeeze(1)  # (B,)
        return DetectorOutput(logits=logits, features=features)
