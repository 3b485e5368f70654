import numpy as np
import pandas as pd
import pytest
import torch

from hrr_core.evaluation.retrospection_check import residual_channels, residual_features, retrospection_check


class _Cache:
    """Stands in for a RetrospectionDataset: item i -> {"inputs": (K, 6, S, S)} (image, then residual)."""

    def __init__(self, tensors):
        self.tensors = tensors

    def __getitem__(self, i):
        return {"inputs": self.tensors[i]}


def _rows_and_cache(gap: float, n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, tensors = [], []
    for k in range(n):
        split, label = ("train", "val")[k % 2], (k // 2) % 2
        scale = 0.10 - gap * label  # fakes: a smaller residual when gap > 0
        image = torch.rand(2, 3, 16, 16)
        residual = torch.from_numpy(np.abs(rng.normal(0, scale, (2, 3, 16, 16)))).float()
        tensors.append(torch.cat([image, residual], dim=1))
        rows.append({"id": f"i{k}", "split": split, "label": label, "generator": "real" if label == 0 else "g"})
    return pd.DataFrame(rows), _Cache(tensors)


def test_a_residual_that_separates_the_classes_gives_a_high_probe_ap():
    rows, cache = _rows_and_cache(gap=0.05)
    out = retrospection_check(rows, cache, "residual+image", (1.0, 2.0))
    assert out["probe"]["val_ap"] > 0.95 and out["probe"]["val_ap_by_generator"]["g"] > 0.95
    assert out["mean_abs_residual"]["val"]["fake"][0] < out["mean_abs_residual"]["val"]["real"][0]
    assert out["features"][:3] == ["x1_mean", "x1_std", "x1_high_freq"] and out["n"] == {"train": 20, "val": 20}


def test_a_residual_without_class_information_gives_a_probe_near_chance():
    rows, cache = _rows_and_cache(gap=0.0, n=200)
    out = retrospection_check(rows, cache, "residual+image", (1.0, 2.0))
    assert abs(out["probe"]["val_ap"] - out["probe"]["chance_ap"]) < 0.2


def test_test_rows_are_refused_and_representations_without_residual_are_skipped():
    rows, cache = _rows_and_cache(gap=0.05)
    with pytest.raises(ValueError, match="train and val splits only"):
        retrospection_check(rows.assign(split="test"), cache, "residual+image", (1.0, 2.0))
    assert "skipped" in retrospection_check(rows, cache, "recon", (1.0, 2.0))


def test_residual_channels_and_features_shapes():
    rep = torch.rand(3, 2, 6, 8, 8)  # tiled: (T, K, C', S, S)
    res = residual_channels(rep, "residual+image")
    assert res.shape == (2, 3, 8, 8) and torch.allclose(res, rep[:, :, 3:].mean(0))
    assert residual_channels(rep[0, :, :3], "residual").shape == (2, 3, 8, 8)
    feats = residual_features(res)
    assert feats.shape == (6,) and 0 <= feats[2] <= 1
