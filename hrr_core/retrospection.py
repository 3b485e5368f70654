"""HRR's retrospection: the frozen LDM (trained once on train-split reals, or a pretrained
one) and the MSR representations computed through it. They are cached by
:mod:`hrr_core.data.cache` (layout, keys, reading), which HRR's MSR representations and DIRE's
reconstruction residuals share; see that module for the cache layout and determinism.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import torch

from hrr_core.data.cache import (
    Representation,
    compute_representation_cache,
    ldm_digest,
    representation_key,
)
from hrr_core.io import PICKLE_SUFFIXES, atomic_dir, atomic_write_json, sha256_file
from hrr_core.models.ldm import LatentDiffusion, load_ldm, train_denoiser, train_vae
from hrr_core.models.msr import MSRConfig, retrospect_each
from hrr_core.paths import resolve
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.shard import wait_until


def msr_representation(msr: MSRConfig, ldm: LatentDiffusion | None) -> Representation:
    """What the cache stores for HRR: MSR through ``ldm``, one (K, C', S, S) tensor per image
    ((T, K, C', S, S) with T tiles under ``msr.anchor: native``), keyed by the resolved MSR
    config (the one definition the cache, its key and the registry use)."""

    def fn(images, generator):
        return retrospect_each(images, ldm, msr, generator)  # each (K, C', S, S) or (T, K, C', S, S)

    return Representation("msr", msr.resolved(), fn, msr.num_scales, ldm)


def cache_key(msr: MSRConfig, cfg: RetrospectionConfig) -> str:
    """The folder name of one MSR configuration's cache (changes with the MSR config, the LDM
    and the seed; not with batch or shard sizes)."""
    rep = msr_representation(msr, None)
    return representation_key(rep.name, rep.config, cfg)


META_FILE = "retrospection_meta.json"  # written last: the saved LDM is complete and of the config it names


def _pretrained_digest(cfg: RetrospectionConfig) -> str:
    """sha256 (16 hex) of every file of the pretrained VAE and UNet folders (names and bytes)."""
    h = hashlib.sha256()
    for part in (cfg.pretrained_vae_dir, cfg.pretrained_unet_dir):
        if part is None:
            continue
        root = resolve(part)
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(root)}:{sha256_file(f)}\n".encode())
    return h.hexdigest()[:16]


def _digest_of(cfg: RetrospectionConfig) -> str:
    """What the saved LDM's meta file must carry: the config's digest, and for a pretrained model
    also the digest of its files (a replaced checkpoint at the same path is copied again)."""
    if cfg.pretrained_unet_dir is None:
        return ldm_digest(cfg)
    return f"{ldm_digest(cfg)}:{_pretrained_digest(cfg)}"


def _saved_for(cfg: RetrospectionConfig, out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a completely saved LDM of ``cfg`` (its meta file carries the digest)."""
    try:
        return json.loads((Path(out_dir) / META_FILE).read_text()).get("digest") == _digest_of(cfg)
    except (OSError, ValueError):
        return False


def _copy_pretrained(cfg: RetrospectionConfig, out_dir: Path) -> dict:
    """Copy the pretrained VAE/UNet folders into ``out_dir`` (a diffusers layout: ``vae/``,
    ``unet/``) with the meta file, atomically: the model every detector card then carries."""
    stats = {"source": "pretrained", "vae_dir": cfg.pretrained_vae_dir, "unet_dir": cfg.pretrained_unet_dir}
    skip = shutil.ignore_patterns(*(f"*{s}" for s in PICKLE_SUFFIXES))  # pickles are never loaded
    with atomic_dir(out_dir) as tmp:
        for name, part in (("vae", cfg.pretrained_vae_dir), ("unet", cfg.pretrained_unet_dir)):
            if part is not None:
                shutil.copytree(resolve(part), tmp / name, ignore=skip)
        atomic_write_json(tmp / META_FILE, {"digest": _digest_of(cfg), "stats": stats})
    return stats


def prepare_ldm(
    cfg: RetrospectionConfig, train_images: list[torch.Tensor], out_dir: Path, device: torch.device
) -> tuple[LatentDiffusion, dict]:
    """The LDM of ``cfg`` saved in ``out_dir`` and loaded from there: the pretrained one (its VAE
    and UNet folders copied in once), or the one trained earlier with the same config, or train it
    on ``train_images`` ((3, H, W) in [0, 1], train split only) and save it to ``out_dir``."""
    meta = out_dir / META_FILE
    if cfg.pretrained_unet_dir is not None:  # copied once into out_dir; loaded from there, as a card loads it
        stats = json.loads(meta.read_text())["stats"] if _saved_for(cfg, out_dir) else _copy_pretrained(cfg, out_dir)
        return load_ldm(out_dir, device), stats
    if _saved_for(cfg, out_dir):
        return LatentDiffusion.load(out_dir, device), json.loads(meta.read_text())["stats"]
    generator = torch.Generator().manual_seed(cfg.ldm.seed)
    ldm = LatentDiffusion.create(cfg.ldm).to(device)
    stats: dict = {"source": "trained", "n_train_images": len(train_images)}
    if ldm.vae is not None:
        stats["vae"] = train_vae(ldm.vae, train_images, cfg.ldm, device, generator)
    stats["unet"] = train_denoiser(ldm.unet, train_images, cfg.ldm, device, generator, vae=ldm.vae)
    meta.unlink(missing_ok=True)  # the files below stop matching it; written again once they are complete
    ldm.save(out_dir)
    atomic_write_json(meta, {"digest": _digest_of(cfg), "stats": stats})
    # the saved model, reloaded: the cache is computed by exactly what a detector card carries and loads
    return LatentDiffusion.load(out_dir, device), stats


def wait_for_ldm(cfg: RetrospectionConfig, out_dir: Path, poll_s: float = 1.0, timeout_s: float | None = None) -> None:
    """Wait until :func:`prepare_ldm` (on rank 0 of a sharded run) has saved the LDM of ``cfg``
    in ``out_dir``: its ``retrospection_meta.json`` carries the config's digest."""
    wait_until(
        lambda: _saved_for(cfg, out_dir), f"the retrospection LDM of this config in {out_dir}", poll_s, timeout_s
    )


def compute_cache(
    rows: pd.DataFrame, ldm: LatentDiffusion | None, msr: MSRConfig, cfg: RetrospectionConfig, root: Path, log=print
) -> dict:
    """Make sure the MSR representation of every image of ``rows`` (a manifest slice) is cached
    under ``root/<cache_key>``; compute only the missing ones. Returns cost figures."""
    return compute_representation_cache(
        rows, msr_representation(msr, ldm), cfg, root, ldm.device if ldm is not None else torch.device("cpu"), log
    )
