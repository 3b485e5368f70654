"""One inference path (#14 item 4): evaluate (the retrospect stage's cache, batched by the
loader), the study's ``clean`` condition (in-memory pixels through the detector) and
``hrr-detect`` (files) give exactly the same probabilities for the same images, because all three
follow one seeding rule (io.image_seed: each image alone, its noise from its pixels and the seed)
and compute the probability the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from hrr_core.data.cache import RetrospectionDataset
from hrr_core.data.datasets import collate
from hrr_core.inference import DEFAULT_NOISE_SEED, load_detector
from hrr_core.io import image_seed, image_to_array, load_image
from hrr_core.pipeline.study import _score_condition
from hrr_core.retrospection import cache_key, compute_cache
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.training.loop import predict_loader


def _images(root, n=6):
    rows = []
    for k in range(n):
        side = (32, 48, 40)[k % 3]
        pixels = np.random.default_rng(100 + k).integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{k}.png")
        rows.append({"id": f"img{k}", "path": f"{k}.png", "label": k % 2, "width": side, "height": side})
    df = pd.DataFrame(rows)
    df.attrs["root"] = str(root)
    return df


def test_clean_equals_none_equals_hrr_detect_exactly(tiny_models, tmp_path):
    detector = load_detector(tiny_models["hrr"], "cpu")
    assert detector.retrospects and detector.noise_seed == DEFAULT_NOISE_SEED == RetrospectionConfig().seed
    df = _images(tmp_path)
    files = [str(tmp_path / p) for p in df["path"]]

    # evaluate: the cache (sorted ids, shard files of 4), read back one image per forward as score_split does
    rcfg = RetrospectionConfig(seed=detector.noise_seed, shard_size=4)
    compute_cache(df, detector.ldm, detector.config.msr, rcfg, tmp_path / "cache", log=lambda *_: None)
    data = RetrospectionDataset(df, tmp_path / "cache" / cache_key(detector.config.msr, rcfg))
    batches = torch.utils.data.DataLoader(data, batch_size=1, collate_fn=collate)
    ids, logits, _ = predict_loader(detector.model, batches, "cpu")
    none = torch.sigmoid(torch.as_tensor(np.asarray(logits, dtype=np.float64))).numpy()
    assert ids == df["id"].tolist()

    # the study's clean condition: decoded pixels, batched by shape (3 at a time), no transform
    arrays = [image_to_array(load_image(f)) for f in files]
    clean = _score_condition(detector, arrays, lambda a: a, batch_size=3)

    # hrr-detect: the files, in another order, other batch sizes, with decoding workers or without
    order = [5, 2, 0, 4, 1, 3]
    shuffled = detector.predict_paths([files[i] for i in order], batch_size=5).results["prob_generated"].to_numpy()
    detect = np.empty(len(files))
    detect[order] = shuffled

    assert np.array_equal(clean, none), np.abs(clean - none).max()
    assert np.array_equal(detect, none), np.abs(detect - none).max()


def test_image_seed_is_content_and_seed_only():
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert image_seed(a, 1) == image_seed(a.copy(), 1)
    assert image_seed(a, 1) != image_seed(a, 2)
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert image_seed(a, 1) != image_seed(b, 1)
    assert image_seed(a.reshape(4, 16, 3), 1) != image_seed(a, 1)  # the shape is part of the content
    assert 0 <= image_seed(a, 1) < 2**64
