"""The shipped generator zoo: every family trained once, at a long budget, on the generator pool
only, and committed under ``benchmark.zoo_dir`` (``data/zoo/<family>/``) with a model card.

    python -m hrr_core.benchmark.zoo train --profile full                 # every family of the profile
    python -m hrr_core.benchmark.zoo train --profile full --family vae    # one family
    python -m hrr_core.benchmark.zoo check --profile full                 # shipped weights match params?
    python -m hrr_core.benchmark.zoo train --profile full --retrospection # HRR's retrospection LDM

The recipe is the profile's ``zoo:`` section (architecture, steps, seeds) and its ``benchmark:``
section (which photos form the pool, crop size and count). ``prepare`` with
``benchmark.zoo: shipped`` loads these weights instead of training (:func:`load_shipped`) and
refuses weights whose recipe differs from params.yaml, or that saw a photo outside today's pool.
``benchmark.zoo: train`` trains the same code inside the stage (the smoke profile does, at toy
size). Layout of one family's folder::

    generator.json      the family and its config (checked on load)
    *.safetensors       weights (LatentDiffusion families: model/ with vae/ and unet/)
    card.json           photos seen, crops, steps, losses, validation PSNR, wall time, command
    MODEL_CARD.md       the same, for people
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hrr_core.benchmark.build import photo_table, pool_crops, pool_photos
from hrr_core.benchmark.generators.shipped import CARD, load_shipped
from hrr_core.benchmark.photos import load_seed_photo, load_seed_table
from hrr_core.confutil import to_dict
from hrr_core.data.transforms import to_uint8
from hrr_core.io import atomic_dir, atomic_write_json, atomic_write_text
from hrr_core.paths import resolve
from hrr_core.runtime import resolve_device
from hrr_core.schema import Config, load_config
from hrr_core.schema.zoo import SHARED_MODEL

MODEL_CARD = "MODEL_CARD.md"
VAL_CROPS = 128


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))


def validation_psnr(gen, val: torch.Tensor, device, seed: int) -> dict:
    """Median and mean PSNR (dB, on uint8 pixels) of ``gen``'s fakes against their crops."""
    fakes = gen.generate(val, device, torch.Generator().manual_seed(seed))
    vals = [psnr(to_uint8(r), to_uint8(f)) for r, f in zip(val, fakes)]
    return {"median_db": round(float(np.median(vals)), 3), "mean_db": round(float(np.mean(vals)), 3), "n": len(vals)}


def _environment(device) -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "machine": platform.machine(),
    }


def _pool(cfg: Config, root: Path) -> tuple[pd.DataFrame, callable]:
    seed_dir = resolve(cfg.benchmark.seed_dir, root)
    table = photo_table(load_seed_table(seed_dir), cfg.benchmark)
    pool = pool_photos(table, cfg.benchmark)
    return pool, (lambda row: load_seed_photo(seed_dir, row))


def train_family(name: str, cfg: Config, root: Path, out_dir: Path, shared: dict, command: str, log=print) -> dict:
    """Train family ``name`` on the generator pool of ``cfg`` and write it (atomically) to ``out_dir``."""
    from hrr_core.benchmark.generators import build_generator

    pool, load = _pool(cfg, root)
    train = pool_crops(pool, load, cfg.benchmark)
    val_cfg = cfg.benchmark.__class__(**{**to_dict(cfg.benchmark), "gen_train_crops": VAL_CROPS})
    val = pool_crops(pool, load, val_cfg, stream="val")
    device = resolve_device(cfg.device)
    gen = build_generator(name, cfg.zoo_config(), shared)
    log(f"{name}: training on {len(train)} crops of {len(pool)} pool photos ({device})")
    t0 = time.perf_counter()
    stats = gen.fit(train.to(device), device, torch.Generator().manual_seed(cfg.seed))
    seconds = time.perf_counter() - t0
    quality = validation_psnr(gen, val, device, cfg.seed + 1)
    card = {
        "family": name,
        "photos": sorted(pool["id"]),
        "groups": sorted(set(pool["group"])),
        "train_crops": int(len(train)),
        "crop_size": cfg.benchmark.gen_train_size,
        "validation": {"crops": int(len(val)), "what": "other crops of the pool photos", "psnr": quality},
        "fit": stats,
        "wall_seconds": round(seconds, 1),
        "shares_model_of": SHARED_MODEL.get(name),
        "environment": _environment(device),
        "command": command,
    }
    with atomic_dir(out_dir / name) as tmp:
        gen.save(tmp)
        atomic_write_json(tmp / CARD, card)
        atomic_write_text(tmp / MODEL_CARD, model_card(card, gen.config_dict()))
    log(f"{name}: {seconds:.0f}s, validation PSNR median {quality['median_db']:.2f} dB")
    return card


RETRO_DIR = "data/retrospection_ldm"


def train_retrospection(cfg: Config, root: Path, out_dir: Path, command: str, log=print) -> dict:
    """Train HRR's retrospection LDM (``retrospection.ldm``) on the generator pool only and save it
    in diffusers layout (``vae/``, ``unet/``, ``scheduler/``) to ``out_dir``, with a card: the
    offline stand-in for Stable Diffusion, read through ``retrospection.pretrained_{vae,unet}_dir``."""
    from hrr_core.models.ldm import LatentDiffusion, train_denoiser, train_vae

    pool, load = _pool(cfg, root)
    train = pool_crops(pool, load, cfg.benchmark)
    val_cfg = cfg.benchmark.__class__(**{**to_dict(cfg.benchmark), "gen_train_crops": VAL_CROPS})
    val = pool_crops(pool, load, val_cfg, stream="val")
    device = resolve_device(cfg.device)
    lcfg = cfg.retrospection_config().ldm
    ldm = LatentDiffusion.create(lcfg).to(device)
    generator = torch.Generator().manual_seed(lcfg.seed)
    log(f"retrospection LDM: training on {len(train)} crops of {len(pool)} pool photos ({device})")
    t0 = time.perf_counter()
    stats = {}
    if ldm.vae is not None:
        stats["vae"] = train_vae(ldm.vae, train.to(device), lcfg, device, generator)
    stats["unet"] = train_denoiser(ldm.unet, train.to(device), lcfg, device, generator, vae=ldm.vae)
    seconds = time.perf_counter() - t0
    ldm.eval()
    with torch.no_grad():
        rec = ldm.decode(ldm.encode(val.to(device))).cpu() if ldm.vae is not None else val
    vals = [psnr(to_uint8(r), to_uint8(f)) for r, f in zip(val, rec)]
    card = {
        "family": "retrospection_ldm",
        "photos": sorted(pool["id"]),
        "groups": sorted(set(pool["group"])),
        "train_crops": int(len(train)),
        "crop_size": cfg.benchmark.gen_train_size,
        "validation": {
            "crops": int(len(val)),
            "what": "other crops of the pool photos; autoencoder round trip",
            "psnr": {"median_db": round(float(np.median(vals)), 3), "mean_db": round(float(np.mean(vals)), 3)},
        },
        "fit": stats,
        "wall_seconds": round(seconds, 1),
        "shares_model_of": None,
        "environment": _environment(device),
        "command": command,
    }
    with atomic_dir(out_dir) as tmp:
        ldm.save(tmp)
        atomic_write_json(tmp / CARD, card)
        atomic_write_text(tmp / MODEL_CARD, model_card(card, {"ldm": to_dict(lcfg)}))
    log(f"retrospection LDM: {seconds:.0f}s, autoencoder PSNR median {card['validation']['psnr']['median_db']:.2f} dB")
    return card


def model_card(card: dict, config: dict) -> str:
    fit = json.dumps(card["fit"], indent=2, sort_keys=True, default=float)
    return "\n".join(
        [
            f"# Generator `{card['family']}` of the embedded zoo",
            "",
            "Generated by `python -m hrr_core.benchmark.zoo`; do not edit by hand.",
            "",
            f"- Trained on {card['train_crops']} random {card['crop_size']} px crops of {len(card['photos'])} "
            f"photos in {len(card['groups'])} groups: the generator pool only (no detector photo).",
            f"- Photos: {', '.join(card['photos'])}",
            f"- Wall time: {card['wall_seconds']:.0f} s ({card['environment']['device']}, "
            f"{card['environment']['threads']} threads, torch {card['environment']['torch']}).",
            f"- Validation PSNR ({card['validation']['crops']} {card['validation']['what']}): median "
            f"{card['validation']['psnr']['median_db']:.2f} dB, mean {card['validation']['psnr']['mean_db']:.2f} dB.",
            *([f"- Shares the model of `{card['shares_model_of']}`."] if card.get("shares_model_of") else []),
            f"- Retrain: `{card['command']}`",
            "",
            "## Training (steps, losses, seconds)",
            "",
            "```json",
            fit,
            "```",
            "",
            "## Config",
            "",
            "```json",
            json.dumps(config, indent=2, sort_keys=True),
            "```",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrr_core.benchmark.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["train", "check"])
    parser.add_argument("--retrospection", action="store_true", help=f"train HRR's retrospection LDM into {RETRO_DIR}")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None, help="a profile of params.yaml (default: its `profile:`)")
    parser.add_argument("--family", action="append", help="repeatable; default: the profile's benchmark.families")
    parser.add_argument("--out", default=None, help="default: benchmark.zoo_dir")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.params).resolve().parent
    cfg = load_config(args.params, profile=args.profile)
    out = resolve(args.out or cfg.benchmark.zoo_dir, root)
    families = args.family or list(cfg.benchmark.families)
    if args.action == "check":
        pool, _ = _pool(cfg, root)
        for name in families:
            _, card = load_shipped(name, cfg.zoo_config(), out, set(pool["id"]))
            print(f"{name}: ok ({card['validation']['psnr']['median_db']:.2f} dB, {card['wall_seconds']:.0f} s)")
        return 0
    profile = f" --profile {args.profile}" if args.profile else ""
    if args.retrospection:
        train_retrospection(
            cfg,
            root,
            resolve(args.out or RETRO_DIR, root),
            f"python -m hrr_core.benchmark.zoo train{profile} --retrospection",
        )
        return 0
    shared: dict = {}
    for name in families:
        if name in SHARED_MODEL:  # its fakes come from the owner's model: shipped once, in the owner's folder
            print(f"{name}: uses the model of {SHARED_MODEL[name]} (data/zoo/{SHARED_MODEL[name]}); nothing to train")
            continue
        command = f"python -m hrr_core.benchmark.zoo train{profile} --family {name}"
        train_family(name, cfg, root, out, shared, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
