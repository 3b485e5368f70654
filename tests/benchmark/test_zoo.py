"""The generator pool and the shipped zoo: pool photos never reach a detector split, generators
only see pool photos, every family retrains at toy size through the shipping code, and stale or
leaky shipped weights are refused."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from hrr_core.benchmark.build import BenchmarkConfig, make_real_set, pool_photos
from hrr_core.benchmark.generators import ShippedZooError, build_generator, load_shipped, smoke_zoo
from hrr_core.benchmark.splits import POOL, generator_pool
from hrr_core.benchmark.zoo import main as zoo_main
from hrr_core.benchmark.zoo import train_family
from hrr_core.confutil import to_dict
from hrr_core.paths import resolve
from hrr_core.schema import config_from_dict

V2 = ("vae", "ldm_img2img", "ldm_inpaint", "pixel_ddpm", "gan_upsampler", "gan_sr", "vqgan")
TRAINED = tuple(f for f in V2 if f != "ldm_inpaint")  # ldm_inpaint ships in ldm_img2img's folder


def test_generator_pool_is_a_stable_share_that_never_takes_excluded_groups():
    groups = [f"g{i}" for i in range(400)]
    pool = generator_pool(groups, 0.25, seed=0, exclude=["g1", "g2"])
    assert 70 < len(pool) < 130 and not {"g1", "g2"} & pool
    more = generator_pool(groups + [f"new{i}" for i in range(100)], 0.25, seed=0, exclude=["g1", "g2"])
    assert {g for g in more if g.startswith("g")} == pool  # adding photos moves no photo in or out
    assert generator_pool(groups, 0.0, seed=0) == set()
    assert generator_pool(groups, 0.25, seed=1) != pool
    with pytest.raises(ValueError, match="generator_pool"):
        generator_pool(groups, 1.0, seed=0)


@pytest.fixture()
def flat_photos():
    """24 photos in 20 groups, each one flat colour (its index), so a crop names its photo."""
    ids = [f"p{i:02d}" for i in range(24)]
    table = pd.DataFrame({"id": ids, "group": [f"g{min(i, 19):02d}" for i in range(24)], "is_grey": False})
    return table, (lambda row: np.full((200, 240, 3), int(row["id"][1:]) * 10, np.uint8))


def test_pool_photos_only_train_generators_and_never_reach_a_split(flat_photos):
    table, load = flat_photos
    cfg = BenchmarkConfig(
        crop_sizes=(32,),
        crops_per_size=1,
        short_side_range=(64, 96),
        gen_train_crops=30,
        gen_train_size=32,
        generator_pool=0.3,
    )
    pool = set(pool_photos(table, cfg)["id"])
    assert pool and len(pool) < len(table)
    real = make_real_set(table, load, cfg)
    in_splits = {c.photo_id for crops in real.crops.values() for c in crops}
    assert not pool & in_splits and in_splits | pool == set(table["id"])
    assert {real.photo_split[p] for p in pool} == {POOL}
    seen = {int(round(float(v) * 255 / 10)) for v in real.gen_train[:, 0, 0, 0]}
    assert seen == {int(p[1:]) for p in pool}  # generators trained on every pool photo and nothing else
    v1 = make_real_set(
        table,
        load,
        BenchmarkConfig(
            crop_sizes=(32,), crops_per_size=1, short_side_range=(64, 96), gen_train_crops=30, gen_train_size=32
        ),
    )
    train = {c.photo_id for c in v1.crops["train"]}
    assert {int(round(float(v) * 255 / 10)) for v in v1.gen_train[:, 0, 0, 0]} <= {int(p[1:]) for p in train}


def test_inpaint_changes_only_inside_its_recorded_box():
    zoo = smoke_zoo()
    gen = build_generator("ldm_inpaint", zoo, {})
    x = torch.rand(6, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    gen.fit(x, torch.device("cpu"), torch.Generator().manual_seed(0))
    y = gen.generate(x, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert len(gen.masks) == 6
    for img, fake, (top, left, h, w) in zip(x, y, gen.masks):
        inside = torch.zeros(40, 48, dtype=torch.bool)
        inside[top : top + h, left : left + w] = True
        assert torch.equal(fake[:, ~inside], img[:, ~inside])
        assert (fake[:, inside] - img[:, inside]).abs().max() > 1e-3
        assert 0.3 * 40 - 1 <= h <= 0.6 * 40 + 1 and 0.3 * 48 - 1 <= w <= 0.6 * 48 + 1


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, make_params):
    """Every v2 family trained at toy size through the shipping code, on the real seed set's pool."""
    out = tmp_path_factory.mktemp("zoo")
    params = make_params(
        benchmark={
            "seed_dir": str(resolve("data/seed")),
            "generator_pool": 0.25,
            "gen_train_crops": 8,
            "gen_train_size": 32,
            "max_photos": 9,
            "families": list(V2),
        },
        zoo=to_dict(smoke_zoo()),
    )
    cfg = config_from_dict(params)
    shared, cards = {}, {}
    for name in TRAINED:
        cards[name] = train_family(name, cfg, resolve("."), out, shared, f"toy {name}", log=lambda *a: None)
    return cfg, out, cards, params


def test_every_family_retrains_at_toy_size_and_ships_a_card(shipped):
    cfg, out, cards, _ = shipped
    pool = set(pool_photos_of(cfg))
    for name in TRAINED:
        card = json.loads((out / name / "card.json").read_text())
        assert card == json.loads(json.dumps(cards[name]))
        assert set(card["photos"]) == pool and card["train_crops"] == 8
        assert card["validation"]["psnr"]["n"] > 0 and np.isfinite(card["validation"]["psnr"]["median_db"])
        assert "retrain" in (out / name / "MODEL_CARD.md").read_text().lower()
    for name in V2:
        gen, _ = load_shipped(name, cfg.zoo_config(), out, pool)
        y = gen.generate(torch.rand(2, 3, 32, 32), torch.device("cpu"), torch.Generator().manual_seed(0))
        assert y.shape == (2, 3, 32, 32)
    assert not (out / "ldm_inpaint").exists()  # loaded from ldm_img2img's folder


def pool_photos_of(cfg):
    from hrr_core.benchmark.build import photo_table
    from hrr_core.benchmark.photos import load_seed_table

    return pool_photos(photo_table(load_seed_table(resolve(cfg.benchmark.seed_dir)), cfg.benchmark), cfg.benchmark)[
        "id"
    ]


def test_shipped_weights_with_another_recipe_or_a_detector_photo_are_refused(shipped):
    from dataclasses import replace

    cfg, out, _, _ = shipped
    pool = set(pool_photos_of(cfg))
    zoo = cfg.zoo_config()
    with pytest.raises(ShippedZooError, match="recipe"):
        load_shipped("gan_sr", replace(zoo, gan_sr=replace(zoo.gan_sr, steps=4)), out, pool)
    load_shipped("gan_sr", replace(zoo, gan_sr=replace(zoo.gan_sr, gen_batch_size=3)), out, pool)  # generation only
    with pytest.raises(ShippedZooError, match="outside today's generator pool"):
        load_shipped("vae", zoo, out, pool - {sorted(pool)[0]})
    with pytest.raises(ShippedZooError, match="no shipped weights"):
        load_shipped("vae", zoo, out / "nowhere", pool)


def test_check_command_accepts_the_shipped_zoo_and_names_a_stale_one(shipped, tmp_path, capsys):
    import yaml

    _, out, _, params = shipped
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert zoo_main(["check", "--params", str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(V2)
    params["zoo"]["vqgan"]["steps"] = 5
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ShippedZooError, match="vqgan.*recipe"):
        zoo_main(["check", "--params", str(path), "--out", str(out), "--family", "vqgan"])


def test_training_progress_is_shown_about_twenty_times(capsys):
    import io
    import logging

    from hrr_core.models.ldm import log_progress
    from hrr_core.runtime import show_training_progress

    show_training_progress(io.StringIO())  # an earlier caller (another test, an earlier notebook cell)
    stream = io.StringIO()
    show_training_progress(stream)
    show_training_progress(stream)  # idempotent: one handler, on the latest stream
    handlers = logging.getLogger("hrr_core.train").handlers
    assert sum(getattr(h, "_hrr_progress", False) for h in handlers) == 1
    for step in range(200):
        log_progress("vae", step, 200, 0.5, 0.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20 and lines[-1].startswith("vae step 200/200 loss 0.5000")
    assert "left)" in lines[0]


def test_profile_full_builds_every_shipped_family_on_one_retrospection_model():
    """Profile full is benchmark v2: every family of the committed zoo (and only those), studied
    alone in the cross-generator matrix; the three diffusion-based methods share the shipped
    retrospection LDM (HRR and DIRE through models/retrospection_ldm, AEROBLADE through its VAE)."""
    from pathlib import Path

    from hrr_core.schema import load_config
    from hrr_core.schema.zoo import SHARED_MODEL

    root = Path(__file__).parents[2]
    cfg = load_config(root / "params.yaml", "full")
    shipped = {p.parent.name for p in (root / "data" / "zoo").glob("*/card.json")}
    families = set(cfg.benchmark.families)
    assert {SHARED_MODEL.get(f, f) for f in families} == shipped, (families, shipped)
    assert set(cfg.study.cross_train) == families and cfg.benchmark.zoo == "shipped"
    rcfg = cfg.retrospection_config()
    assert rcfg.pretrained_unet_dir == "data/retrospection_ldm/unet" and (root / rcfg.pretrained_unet_dir).is_dir()
    assert cfg.model_config("dire").representation.ldm_path is None  # the retrospect stage's copy of it
    assert cfg.model_config("aeroblade").vae_dirs == ("models/retrospection_ldm/vae",)
