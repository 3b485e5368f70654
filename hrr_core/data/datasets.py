"""Torch datasets that stream images from a manifest (memory bounded by the manifest, not
the images), and a batch sampler that keeps every batch at one image size so detectors see
images at their stored size, never resized to a common one."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from hrr_core.data.manifest import absolute_paths
from hrr_core.data.transforms import to_tensor
from hrr_core.io import image_to_array, load_image


def load_images(paths: list[str]) -> list[torch.Tensor]:
    """(3, H, W) float tensors in [0, 1] of image files, at their stored size."""
    return [to_tensor(image_to_array(load_image(p))) for p in paths]


class ManifestImageDataset(Dataset):
    """Item ``i``: ``{"inputs": (3, H, W) float in [0, 1], "labels": float, "ids": str}``.

    ``transform`` maps the uint8 (H, W, 3) array to another array before conversion."""

    def __init__(
        self,
        manifest: pd.DataFrame,
        root: str | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.ids = manifest["id"].tolist()
        self.paths = absolute_paths(manifest, root).tolist()
        self.labels = manifest["label"].astype(np.float32).to_numpy()
        self.sizes = list(zip(manifest["height"].astype(int), manifest["width"].astype(int)))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        arr = image_to_array(load_image(self.paths[i]))
        if self.transform is not None:
            arr = self.transform(arr)
        return {"inputs": to_tensor(arr), "labels": torch.tensor(self.labels[i]), "ids": self.ids[i]}


def collate(items: list[dict]) -> dict:
    """Stack a same-size batch into ``{"inputs": (B, C, H, W), "labels": (B,), "ids": [...]}``."""
    shapes = {tuple(it["inputs"].shape) for it in items}
    if len(shapes) > 1:
        raise ValueError(
            f"a batch mixes image shapes {sorted(shapes)}; use SizeBucketBatchSampler or a fixed-size transform"
        )
    return {
        "inputs": torch.stack([it["inputs"] for it in items]),
        "labels": torch.stack([it["labels"] for it in items]).float(),
        "ids": [it["ids"] for it in items],
    }


class SizeBucketBatchSampler(Sampler[list[int]]):
    """Batches of indices that share one (H, W). With ``shuffle`` the order within and across
    buckets is drawn from ``seed + epoch`` (call :meth:`set_epoch`), so runs are reproducible
    and a resumed run sees the same order as an uninterrupted one."""

    def __init__(
        self, sizes: list[tuple[int, int]], batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sizes, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            sizes,
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(self.sizes):
            buckets.setdefault(s, []).append(i)
        batches = []
        for key in sorted(buckets):
            idx = np.asarray(buckets[key])
            if self.shuffle:
                idx = rng.permutation(idx)
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size].tolist()
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
