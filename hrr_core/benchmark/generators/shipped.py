"""Loading the shipped generator zoo (``data/zoo/<family>/``, written by
:mod:`hrr_core.benchmark.zoo`): the weights are used only when their training recipe equals
params.yaml's and every photo they saw is in today's generator pool."""

from __future__ import annotations

import json
from pathlib import Path

from hrr_core.benchmark.generators.families import build_generator
from hrr_core.schema.zoo import SHARED_MODEL

CARD = "card.json"


class ShippedZooError(RuntimeError):
    """The shipped weights are missing, stale (another recipe) or saw a photo outside the pool."""


GENERATION_KEYS = ("gen_batch_size", "strength", "ddim_steps", "mask_min", "mask_max")


def recipe_of(config: dict) -> dict:
    """What training depends on in a generator's ``config_dict()``: the model section (``ldm`` and
    its adversary) for diffusion-backed families, else every field but the generation settings
    (``GENERATION_KEYS``; those may change without retraining)."""
    config = json.loads(json.dumps(config))
    model = config.get("model_config", config["config"])
    if "ldm" in model:
        return {k: model[k] for k in ("ldm", "adv_weight", "adv_start") if k in model}
    return {k: v for k, v in config["config"].items() if k not in GENERATION_KEYS}


def load_shipped(name: str, zoo_cfg, zoo_dir: Path, pool_ids, device="cpu"):
    """The shipped generator ``name`` (config checked against ``zoo_cfg``) and its card; raises
    :class:`ShippedZooError` when it is missing or saw a photo outside ``pool_ids``. A family that
    shares another's model (``SHARED_MODEL``, e.g. ``ldm_inpaint``) loads that family's folder."""
    owner = SHARED_MODEL.get(name, name)
    folder = Path(zoo_dir) / owner
    retrain = f"python -m hrr_core.benchmark.zoo train --family {owner} (or set benchmark.zoo: train)"
    if not (folder / CARD).is_file():
        raise ShippedZooError(f"no shipped weights for family {owner!r} in {folder}; train them: {retrain}")
    card = json.loads((folder / CARD).read_text())
    outside = sorted(set(card["photos"]) - set(pool_ids))
    if outside:
        raise ShippedZooError(
            f"{folder} was trained on {outside[:5]}, photos outside today's generator pool (they may be "
            f"detector photos); retrain: {retrain}"
        )
    gen = build_generator(name, zoo_cfg, {})
    saved = json.loads((folder / "generator.json").read_text())
    want = recipe_of(gen.config_dict())
    if saved.get("family") != owner or recipe_of(saved) != want:
        raise ShippedZooError(
            f"{folder} was trained with recipe {recipe_of(saved)}, params.yaml asks for {want}; retrain: {retrain}"
        )
    gen._load_modules(folder, device)
    return gen, card
