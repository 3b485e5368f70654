import numpy as np
import pytest

from hrr_core.benchmark.splits import assign_splits, sample_crops


def test_splits_cover_every_group_once_and_are_seeded():
    groups = [f"g{i}" for i in range(20)] + ["g0", "g1"]  # repeats: several photos in one group
    a = assign_splits(groups, (0.6, 0.2, 0.2), seed=3)
    assert set(a) == {f"g{i}" for i in range(20)}
    assert sorted(a.values()).count("val") == 4 and sorted(a.values()).count("test") == 4
    assert a == assign_splits(list(reversed(groups)), (0.6, 0.2, 0.2), seed=3)  # order-free
    assert a != assign_splits(groups, (0.6, 0.2, 0.2), seed=4)


def test_splits_reject_too_few_or_bad_fractions():
    with pytest.raises(ValueError, match="at least 3"):
        assign_splits(["a", "b"], (0.6, 0.2, 0.2), 0)
    with pytest.raises(ValueError, match="positive"):
        assign_splits(["a", "b", "c"], (1, 0, 0), 0)


def test_crops_sizes_and_determinism():
    photo = (np.random.default_rng(0).random((600, 800, 3)) * 255).astype(np.uint8)
    a = sample_crops(photo, "p", [64, 96], 3, (256, 400), np.random.default_rng(1))
    b = sample_crops(photo, "p", [64, 96], 3, (256, 400), np.random.default_rng(1))
    assert [c.pixels.shape for c in a] == [(64, 64, 3)] * 3 + [(96, 96, 3)] * 3
    assert all((x.pixels == y.pixels).all() for x, y in zip(a, b))
    assert all(256 <= c.short_side <= 400 for c in a)


def test_crops_never_upsample_and_refuse_tiny_photos():
    photo = np.zeros((100, 120, 3), np.uint8)
    crops = sample_crops(photo, "p", [64], 2, (256, 512), np.random.default_rng(0))
    assert all(c.short_side == 100 for c in crops)
    with pytest.raises(ValueError, match="too small"):
        sample_crops(photo, "p", [128], 1, (256, 512), np.random.default_rng(0))
