"""DIRE and AEROBLADE through the real stages on a tiny hand-made benchmark: the retrospect stage
caches DIRE residuals in the shared cache (reused, not recomputed), train/evaluate read them
through the same loader as HRR, and load_detector scores raw images with both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hrr_core import methods
from hrr_core.data.cache import read_index
from hrr_core.data.transforms import to_tensor
from hrr_core.inference import load_detector
from hrr_core.io import image_to_array, load_image
from hrr_core.pipeline import evaluate, retrospect, train
from hrr_core.pipeline.common import cache_folder
from hrr_core.pipeline.paths import StagePaths
from hrr_core.pipeline.retrospect import cached_methods
from hrr_core.schema import config_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"name": "small_resnet", "pretrained": False, "width": 8}


def _params(**dire_repr) -> dict:
    return {
        "profile": "default",
        "seed": 0,
        "device": "cpu",
        "benchmark": {"out_dir": "data/embedded", "families": ["ldm_img2img", "vae"]},
        "study": {"cross_train": []},
        "zoo": {},
        "train": {"epochs": 1, "batch_size": 4, "max_steps": 2, "warmup_steps": 0, "log_every_steps": 1},
        "evaluate": {"n_boot": 0, "batch_size": 8, "by_size": False, "reference": None},
        "retrospection": {
            "ldm": {
                "space": "pixel",
                "unet_block_out_channels": [8, 8],
                "norm_num_groups": 4,
                "unet_steps": 2,
                "train_crop": 16,
                "unet_batch_size": 2,
                "max_train_timestep": 300,
                "seed": 7,
            },
        },
        "methods": {
            "dire": {
                "kind": "baseline",
                "baseline": "dire",
                "train_generators": ["ldm_img2img"],
                "model": {"representation": {"num_steps": 2, **dire_repr}, "classifier": {"backbone": SMALL}},
            },
            "aeroblade": {
                "kind": "baseline",
                "baseline": "aeroblade",
                "train_generators": ["ldm_img2img"],
                "model": {
                    "distance": "l2",
                    "autoencoder": {
                        "vae_block_out_channels": [8, 8],
                        "norm_num_groups": 4,
                        "vae_steps": 2,
                        "vae_batch_size": 2,
                        "train_crop": 16,
                    },
                },
            },
        },
    }


def _tiny_benchmark(root) -> pd.DataFrame:
    """Reals (noise) and two fake families (smoothed noise) in three splits, sizes 32 and 40."""
    folder = root / "data" / "embedded"
    folder.mkdir(parents=True)
    rows, rng = [], np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for k in range(4):
            size = (32, 40)[k % 2]
            for gen, label in (("real", 0), ("ldm_img2img", 1), ("vae", 1)):
                arr = rng.random((size, size, 3))
                if label:
                    arr = (arr + np.roll(arr, 1, 0) + np.roll(arr, 1, 1)) / 3
                name = f"{split}-{gen}-{k}"
                Image.fromarray((arr * 255).astype(np.uint8)).save(folder / f"{name}.png")
                rows.append(
                    {
                        "id": name,
                        "path": f"{name}.png",
                        "label": label,
                        "generator": gen,
                        "source": f"{split}{k}",
                        "split": split,
                        "width": size,
                        "height": size,
                        "format": "png",
                        "sha256": "",
                    }
                )
    df = pd.DataFrame(rows)
    df.to_csv(folder / "manifest.csv", index=False)
    return df


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    manifest = _tiny_benchmark(root)
    cfg = config_from_dict(_params())
    first = retrospect.run(cfg, StagePaths(root), echo=lambda *_: None)
    return root, cfg, manifest, first


def test_dire_cache_is_shared_keyed_and_reused(project, tmp_path):
    root, cfg, manifest, first = project
    paths = StagePaths(root)
    assert cached_methods(cfg) == ["dire"]
    folder = cache_folder(cfg, "dire", paths.retrospection)
    assert first["methods"]["dire"]["key"] == folder.name and first["ldm"]["source"] == "trained"
    index = read_index(folder)
    expected = len(manifest) - ((manifest["generator"] == "vae") & (manifest["split"] != "test")).sum()
    assert len(index) == first["methods"]["dire"]["computed"] == expected  # train/val of its generators + all test
    assert set(index["shape"]) == {"3x32x32", "3x40x40"}  # residuals at each image's own size
    again = retrospect.run(cfg, StagePaths(root), echo=lambda *_: None)
    assert again["methods"]["dire"]["computed"] == 0 and again["methods"]["dire"]["cached"] == expected
    other = config_from_dict(_params(quantize=False))
    assert cache_folder(other, "dire", paths.retrospection) != folder  # another representation config, another key
    assert (
        methods.spec_of(cfg, "dire").ldm_dir(cfg.model_config("dire"), paths.retrospection_ldm)
        == paths.retrospection_ldm
    )
    assert methods.spec_of(cfg, "aeroblade").ldm_dir(cfg.model_config("aeroblade"), paths.retrospection_ldm) is None


@pytest.mark.parametrize("method", ["dire", "aeroblade"])
def test_train_evaluate_and_load_detector(project, method):
    root, cfg, manifest, _ = project
    trained = train.run(cfg, StagePaths(root), method)
    assert trained["metrics"]["n_train"] == 8  # the 4 train reals + their 4 ldm_img2img fakes; no vae fakes
    evaluated = evaluate.run(cfg, StagePaths(root), method)
    scores = evaluated["scores"].set_index("id")["score"]
    assert len(scores) == (manifest["split"] == "test").sum() and np.isfinite(scores).all()
    detector = load_detector(root / "models" / method, "cpu")
    test = manifest[manifest["split"] == "test"]
    test = test[test["width"] == 32]
    images = [
        to_tensor(image_to_array(load_image(root / "data" / "embedded" / p))) for p in test["path"]
    ]  # (3, H, W) in [0, 1], decoded as every stage and hrr-detect decode
    probs = detector.predict_images(images)
    assert probs.shape == (len(images),) and np.isfinite(probs).all()
    # on-the-fly scoring matches the pipeline's scores: DIRE exactly (one inference path: each image
    # alone, rounded through the cache's float16); AEROBLADE to float rounding (batched reconstruction)
    if method == "dire":
        assert np.array_equal(probs, scores.loc[test["id"]].to_numpy())
    else:
        assert np.allclose(probs, scores.loc[test["id"]].to_numpy(), rtol=0, atol=1e-6)
    if method == "dire":
        assert (root / "models" / "dire" / "retrospection_ldm" / "ldm_config.json").is_file()
        assert detector.card["preprocessing"]["dire"]["representation"]["num_steps"] == 2
    else:
        assert (root / "models" / "aeroblade" / "best" / "autoencoder" / "config.json").is_file()


@pytest.mark.parametrize("method", ["dire", "aeroblade"])
def test_training_and_calibration_never_receive_a_test_row(project, method, monkeypatch):
    """No selection on test, by structure: every frame a fitting path (the training loop's
    loaders, a direct fit, the card's calibration scoring) receives during train@ is train/val."""
    from hrr_core.pipeline import common

    root, cfg, manifest, _ = project
    seen: list[set] = []
    real_loader, real_fit_scorer = common.loader, common._fit_scorer

    def spy_loader(cfg_, method_, df, *args, **kwargs):
        seen.append(set(df["split"]))
        return real_loader(cfg_, method_, df, *args, **kwargs)

    def spy_fit_scorer(cfg_, method_, train_df, val_df, out):
        seen.extend([set(train_df["split"]), set(val_df["split"])])
        return real_fit_scorer(cfg_, method_, train_df, val_df, out)

    monkeypatch.setattr(common, "loader", spy_loader)
    monkeypatch.setattr(common, "_fit_scorer", spy_fit_scorer)
    train.run(cfg, StagePaths(root), method)
    assert seen and set().union(*seen) <= {"train", "val"}, seen
    val = pd.read_csv(root / "models" / method / "val_scores.csv")
    assert set(manifest.set_index("id").loc[val["id"], "split"]) == {"val"}  # thresholds come from these
    with pytest.raises(ValueError, match="train and val splits only"):
        common.require_fit_splits(manifest, "a fit handed the whole manifest")


@pytest.mark.parametrize("method", ["dire", "aeroblade"])
def test_sharded_evaluate_writes_what_one_process_writes(project, method, monkeypatch):
    """evaluate under 2 ranks (rank 1 scores its half and leaves a part; rank 0 scores its half,
    merges and writes): the same scores and metrics as one process; the parts are gone after."""
    root, cfg, _, _ = project
    paths = StagePaths(root)
    train.run(cfg, paths, method)
    one = evaluate.run(cfg, paths, method)
    single_scores = (root / "results" / method / "scores.csv").read_text()
    single_metrics = (root / "metrics" / "evaluate" / f"{method}.json").read_text()
    for rank in (1, 0):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        out = evaluate.run(cfg, paths, method)
        if rank == 1:
            assert out == {} and (root / "results" / method / ".parts" / "rank-00001-of-00002.json").is_file()
    assert (root / "metrics" / "evaluate" / f"{method}.json").read_text() == single_metrics
    merged = pd.read_csv(root / "results" / method / "scores.csv")
    assert merged["id"].tolist() == one["scores"]["id"].tolist()
    if method == "dire":  # a cached representation: the same floats whatever the shard
        assert (root / "results" / method / "scores.csv").read_text() == single_scores
    else:
        assert np.allclose(merged["score"], one["scores"]["score"], rtol=0, atol=1e-6)
    assert not (root / "results" / method / ".parts").exists()
