"""SAFE (Li et al. 2025): the truncated ResNet trunk on Haar DWT high-frequency bands, cropped
not resized, with its train-time augmentations (colour jitter, rotation, patch masking)."""

import numpy as np

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.safe import build_safe, safe_augment


def _augment(cfg, seed: int):
    rng = np.random.default_rng(seed)
    return lambda arr: safe_augment(arr, rng, cfg.augment)


SPEC = MethodSpec(name="safe", build=build_safe, train_transform=_augment)
