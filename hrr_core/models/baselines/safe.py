"""SAFE (Li et al., "Improving Synthetic Image Detection Towards Generalization: An Image
Transformation Perspective", KDD 2025; code: Ouxiang-Li/SAFE).

SAFE keeps the generators' high-frequency traces and removes what hides them: crop instead of
resize (resizing low-passes the traces away), the 2-D discrete wavelet transform's diagonal
band HH as the network's input, and train-time augmentations that break colour and orientation
shortcuts (colour jitter, random rotation, random patch masking). The network is the truncated
ResNet-50 NPR uses, trained from scratch (1.44 M parameters).

Faithful: the skeleton (:mod:`hrr_core.models.baselines.trunk`), the HH band per RGB channel at
half resolution as input, crop-not-resize, the three augmentations on training images only.

Differs: the paper's wavelet is bior1.3 (``pytorch_wavelets``); ours is the orthonormal 2-D Haar
DWT written in torch (same half-resolution HH sub-band layout, shorter filters, no boundary
extension since Haar needs none; odd sizes drop the last row / column). ``bands`` can add LL, LH,
HL. The augmentation strengths below are ours (documented defaults, not checked against the
official scripts); rotation uses nearest-neighbour resampling so it moves pixels without
interpolating (blurring) them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hrr_core.models.baselines.npr import crop_to_even
from hrr_core.models.baselines.trunk import TruncatedResNet
from hrr_core.schema.baselines import (  # noqa: F401 (config lives in the schema)
    HAAR_BANDS,  # noqa: E402,F401
    SAFEAugmentConfig,
    SAFEConfig,
)


def haar_dwt2(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One level of the orthonormal 2-D Haar DWT: (B, C, H, W) -> four (B, C, H//2, W//2) bands.

    With a, b / c, d the top-left, top-right / bottom-left, bottom-right pixels of each 2x2 block:
    LL = (a + b + c + d) / 2, LH = (a + b - c - d) / 2 (rows differ: horizontal edges),
    HL = (a - b + c - d) / 2 (columns differ: vertical edges), HH = (a - b - c + d) / 2
    (diagonal; equals PyWavelets' ``dwt2(x, 'haar')`` cD). Energy-preserving.
    """
    x = crop_to_even(x)  # (B, C, H', W')
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]  # (B, C, H'/2, W'/2) each
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return {"LL": (a + b + c + d) / 2, "LH": (a + b - c - d) / 2, "HL": (a - b + c - d) / 2, "HH": (a - b - c + d) / 2}


class HaarBands(nn.Module):
    """Images (B, 3, H, W) -> the chosen Haar bands stacked: (B, 3 len(bands), H//2, W//2)."""

    def __init__(self, bands: tuple[str, ...] = ("HH",)):
        super().__init__()
        self.bands = tuple(bands)
        self.out_channels = 3 * len(self.bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dwt = haar_dwt2(x)
        return torch.cat([dwt[b] for b in self.bands], dim=1)  # (B, 3 K, H/2, W/2)


def build_safe(cfg: SAFEConfig) -> TruncatedResNet:
    """The SAFE detector: images (B, 3, H >= 32, W >= 32) in [0, 1] -> DetectorOutput."""
    return TruncatedResNet(cfg, HaarBands(cfg.bands))


# ---------------------------------------------------------------------------------------------
# Train-time augmentation (numpy / PIL, one image at a time like cnnspot_augment)
# ---------------------------------------------------------------------------------------------


def _jitter(arr: np.ndarray, factors: np.ndarray, hue_shift: float) -> np.ndarray:
    """Brightness, contrast, saturation (factors (3,)) then hue shift, on (H, W, 3) uint8."""
    from PIL import Image

    x = arr.astype(np.float32)
    x = x * factors[0]
    grey_mean = (x @ np.array([0.299, 0.587, 0.114], np.float32)).mean()
    x = grey_mean + factors[1] * (x - grey_mean)
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]  # (H, W, 1)
    x = grey + factors[2] * (x - grey)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if hue_shift:
        hsv = np.asarray(Image.fromarray(out, "RGB").convert("HSV")).copy()  # (H, W, 3) uint8
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(hue_shift * 255))) % 256
        out = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"), dtype=np.uint8)
    return out


def _rotate(arr: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(arr, "RGB").rotate(degrees, resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0))
    return np.asarray(im, dtype=np.uint8)


def _mask_patches(arr: np.ndarray, patch: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Zero a random ``ratio`` of the ``patch`` x ``patch`` grid cells (partial cells at the edges count)."""
    h, w = arr.shape[:2]
    gh, gw = -(-h // patch), -(-w // patch)
    keep = rng.random((gh, gw)) >= ratio  # (gh, gw)
    mask = np.repeat(np.repeat(keep, patch, 0), patch, 1)[:h, :w]  # (H, W)
    return arr * mask[..., None].astype(np.uint8)


def safe_augment(arr: np.ndarray, rng: np.random.Generator, cfg: SAFEAugmentConfig) -> np.ndarray:
    """SAFE's train-time augmentation of one image: (H, W, 3) uint8 -> (H', W', 3) uint8
    (H' = W' = ``crop`` when set, else the same size).

    Order: random crop (when ``crop``), colour jitter, rotation, patch masking, each with its
    probability. Draws its scalars in a fixed order whatever is applied (crop offsets, u_jitter,
    3 factors, hue, u_rotate, angle, u_mask, ratio), then the mask cells; reproducible for a seed.
    """
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(
            f"safe_augment expects an (H, W, 3) uint8 array, got {desc}; convert with np.asarray(pil_image)"
        )
    h, w = arr.shape[:2]
    if cfg.crop is not None and min(h, w) < cfg.crop:
        raise ValueError(
            f"safe_augment: image {h}x{w} is smaller than crop={cfg.crop}; SAFE crops, never resizes: "
            "lower augment.crop or drop smaller images"
        )
    top, left = rng.random(2)
    u_jit, f = rng.random(), rng.uniform(-1.0, 1.0, 3)
    hue = rng.uniform(-cfg.hue, cfg.hue)
    u_rot, angle = rng.random(), rng.uniform(-cfg.rotate_degrees, cfg.rotate_degrees)
    u_mask, ratio = rng.random(), rng.uniform(0.0, cfg.mask_ratio)
    out = arr
    if cfg.crop is not None:
        y, x = int(top * (h - cfg.crop + 1)), int(left * (w - cfg.crop + 1))
        out = out[y : y + cfg.crop, x : x + cfg.crop]
    if u_jit < cfg.jitter_prob:
        factors = 1.0 + f * np.array([cfg.brightness, cfg.contrast, cfg.saturation])
        out = _jitter(out, factors.astype(np.float32), hue)
    if u_rot < cfg.rotate_prob:
        out = _rotate(out, angle)
    if u_mask < cfg.mask_prob:
        out = _mask_patches(out, cfg.mask_patch, ratio, rng)
    return np.ascontiguousarray(out)
