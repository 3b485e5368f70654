"""Spectrum baseline: a standardised logistic regression on global frequency and colour
statistics, the detector family of Durall et al. ("Watch your up-convolution", CVPR 2020:
azimuthally averaged power spectrum + a linear classifier) and Frank et al. ("Leveraging
frequency analysis for deep fake image recognition", ICML 2020: DCT coefficients + logistic
regression).

Features (per image, any size >= 32): the 24-bin radially averaged log-power spectrum and 12
colour statistics of :func:`hrr_core.benchmark.difficulty.spectrum_features` (the same features
as the benchmark's difficulty score), plus, with ``dct: true``, 63 JPEG-style block-DCT
statistics: log mean |coefficient| of each AC frequency of the 8x8 orthonormal DCT of the grey
image, relative to the three lowest AC frequencies (contrast-invariant).

Faithful: the principle (a linear model on spectra) of both papers. Differs: Durall uses a
1-D spectrum with an SVM/LR on it; Frank classifies the full log-DCT of fixed-size images; ours
pools over blocks so it takes any size, and adds colour statistics. Stored as the fitted arrays
(scaler mean/scale, coef, intercept) in safetensors; scoring needs numpy only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hrr_core.benchmark.difficulty import spectrum_features
from hrr_core.models.baselines.common import (
    LinearLogit,
    check_labels,
    load_arrays,
    load_config,
    save_arrays,
    save_config,
    sigmoid,
)
from hrr_core.schema.baselines import SpectrumLRConfig  # noqa: F401 (config lives in the schema)

DCT_BLOCK = 8
ARRAYS_FILE = "spectrum_lr.safetensors"


def _as_list(images: torch.Tensor | Sequence) -> list[np.ndarray]:
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        images = list(images)
    out = []
    for img in images:
        a = img.detach().cpu().float().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, np.float32)
        if a.ndim != 3 or a.shape[0] != 3 or min(a.shape[1:]) < 32:
            raise ValueError(f"expected (3, H, W) images in [0, 1] with H, W >= 32, got shape {a.shape}")
        out.append(a)
    return out


def block_dct_features(gray: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (63,) log mean |AC coefficient| of the 8x8 block DCT, minus the mean
    of the three lowest AC frequencies. H, W are cropped to multiples of 8."""
    from scipy.fft import dctn

    h, w = (s - s % DCT_BLOCK for s in gray.shape)
    blocks = gray[:h, :w].reshape(h // DCT_BLOCK, DCT_BLOCK, w // DCT_BLOCK, DCT_BLOCK)  # (h/8, 8, w/8, 8)
    blocks = blocks.transpose(0, 2, 1, 3)  # (h/8, w/8, 8, 8)
    coef = dctn(blocks, axes=(-2, -1), norm="ortho")  # (h/8, w/8, 8, 8)
    logmag = np.log(np.abs(coef).mean(axis=(0, 1)) + 1e-8).ravel()  # (64,) row-major (u, v)
    ac = logmag[1:]  # (63,) drop DC
    low = logmag[[1, DCT_BLOCK, DCT_BLOCK + 1]].mean()  # (0,1), (1,0), (1,1)
    return ac - low


def spectrum_lr_features(images: torch.Tensor | Sequence, dct: bool = True) -> np.ndarray:
    """(N, 3, H, W) tensor or list of (3, H_i, W_i) images in [0, 1] -> (N, 36 [+ 63]) float64."""
    imgs = _as_list(images)
    base = spectrum_features(imgs)  # (N, 36)
    if not dct:
        return base
    extra = np.stack([block_dct_features(img.mean(0)) for img in imgs])  # (N, 63)
    return np.concatenate([base, extra], axis=1)


class SpectrumLR:
    """``fit(images_or_features, labels)`` then ``score(images) -> (B,) probabilities``."""

    def __init__(self, cfg: SpectrumLRConfig):
        self.cfg = cfg
        self.linear: LinearLogit | None = None

    def features(self, images: torch.Tensor | Sequence) -> np.ndarray:
        return spectrum_lr_features(images, self.cfg.dct)

    def fit(self, images_or_features, labels) -> "SpectrumLR":
        """images (N, 3, H, W) / a list of (3, H, W), or precomputed features (N, D) from
        :meth:`features`; labels 0 = real, 1 = generated."""
        is_features = isinstance(images_or_features, np.ndarray) and images_or_features.ndim == 2
        x = images_or_features.astype(np.float64) if is_features else self.features(images_or_features)
        y = check_labels(labels, x.shape[0])
        self.linear = LinearLogit.fit(x, y, self.cfg.C, self.cfg.max_iter, self.cfg.seed)
        return self

    def score(self, images: torch.Tensor | Sequence) -> np.ndarray:
        """(B, 3, H, W) in [0, 1] (or a list) -> (B,) probability of being generated."""
        if self.linear is None:
            raise ValueError("SpectrumLR is not fitted; call fit(images, labels) or SpectrumLR.load(dir)")
        return sigmoid(self.linear.logits(self.features(images)))

    def save(self, directory: str | os.PathLike) -> Path:
        if self.linear is None:
            raise ValueError("SpectrumLR is not fitted; nothing to save")
        d = save_config(directory, self.cfg)
        save_arrays(d / ARRAYS_FILE, self.linear.arrays())
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "SpectrumLR":
        cfg, _ = load_config(directory, SpectrumLRConfig)
        model = cls(cfg)
        model.linear = LinearLogit(**load_arrays(Path(directory) / ARRAYS_FILE))
        return model
