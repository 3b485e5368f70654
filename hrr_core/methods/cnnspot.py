"""CNNSpot (Wang et al. 2020): ResNet-style classifier with blur + JPEG train-time augmentation."""

import numpy as np

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.cnnspot import build_cnnspot, cnnspot_augment


def _augment(cfg, seed: int):
    rng = np.random.default_rng(seed)
    return lambda arr: cnnspot_augment(arr, rng, cfg.augment)


SPEC = MethodSpec(name="cnnspot", build=build_cnnspot, train_transform=_augment)
