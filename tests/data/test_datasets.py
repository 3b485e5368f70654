import numpy as np
import pandas as pd
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from hrr_core.data.datasets import ManifestImageDataset, SizeBucketBatchSampler, collate


def make(tmp_path):
    rows = []
    for k, size in enumerate([32, 48, 32, 48, 32]):
        Image.fromarray((np.random.default_rng(k).random((size, size, 3)) * 255).astype(np.uint8)).save(
            tmp_path / f"{k}.png"
        )
        rows.append({"id": f"i{k}", "path": f"{k}.png", "label": k % 2, "width": size, "height": size})
    df = pd.DataFrame(rows)
    df.attrs["root"] = str(tmp_path)
    return df


def test_batches_share_one_size_and_cover_everything(tmp_path):
    ds = ManifestImageDataset(make(tmp_path))
    sampler = SizeBucketBatchSampler(ds.sizes, batch_size=2, shuffle=True, seed=0)
    seen = []
    for batch in DataLoader(ds, batch_sampler=sampler, collate_fn=collate):
        assert batch["inputs"].ndim == 4 and batch["labels"].shape == (len(batch["ids"]),)
        seen += batch["ids"]
    assert sorted(seen) == [f"i{k}" for k in range(5)]


def test_sampler_order_depends_on_epoch_only():
    sizes = [(32, 32)] * 10 + [(48, 48)] * 10
    a = SizeBucketBatchSampler(sizes, 3, shuffle=True, seed=1)
    b = SizeBucketBatchSampler(sizes, 3, shuffle=True, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)


def test_mixed_sizes_in_a_batch_are_refused(tmp_path):
    ds = ManifestImageDataset(make(tmp_path))
    with pytest.raises(ValueError, match="mixes image shapes"):
        collate([ds[0], ds[1]])
