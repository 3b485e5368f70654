"""Which methods read cached representations from the retrospection cache, under which key,
and through which diffusion model: HRR (MSR representations) and DIRE (reconstruction
residuals). The stages call these so that both share one cache, one loader and one card path.

Keys (folders under ``data/retrospection/``) are :func:`hrr_core.retrospection.representation_key`
of the method's representation config (HRR: ``model.msr``; DIRE: ``model.representation``),
the retrospection LDM's identity and ``retrospection.seed``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from hrr_core.paths import resolve
from hrr_core.retrospection import Representation, cache_key, compute_representation_cache, representation_key


def is_dire(cfg, method: str) -> bool:
    m = cfg.method(method)
    return m.kind == "baseline" and m.baseline == "dire"


def dire_methods(cfg) -> list[str]:
    """Methods of ``methods:`` whose inputs are cached DIRE residuals."""
    return [name for name in cfg.methods if is_dire(cfg, name)]


def uses_retrospection_ldm(cfg) -> bool:
    """True when some DIRE method reconstructs through the retrospection LDM (no ``ldm_path``)."""
    return any(cfg.model_config(m).representation.ldm_path is None for m in dire_methods(cfg))


def dire_ldm_dir(cfg, method: str, retrospection_ldm: Path) -> Path:
    """The folder of the diffusion model a DIRE method reconstructs through: its own
    ``representation.ldm_path``, or the retrospection LDM the retrospect stage trained."""
    path = cfg.model_config(method).representation.ldm_path
    return resolve(path) if path is not None else Path(retrospection_ldm)


def cache_folder(cfg, method: str, retrospection_root: Path) -> Path | None:
    """The cache folder a method's loader reads, or None for methods that read images."""
    m = cfg.method(method)
    if m.kind == "hrr":
        return Path(retrospection_root) / cache_key(cfg.model_config(method).msr, cfg.retrospection_config())
    if is_dire(cfg, method):
        rep = cfg.model_config(method).representation
        return Path(retrospection_root) / representation_key("dire", rep, cfg.retrospection_config())
    return None


def card_ldm_dir(cfg, method: str, retrospection_ldm: Path) -> Path | None:
    """The diffusion model a method's detector card must carry to score new images, or None."""
    m = cfg.method(method)
    if m.kind == "hrr":
        return Path(retrospection_ldm) if cfg.model_config(method).msr.resolved().retrospection else None
    if is_dire(cfg, method):
        return dire_ldm_dir(cfg, method, retrospection_ldm)
    return None


def compute_dire_cache(cfg, method: str, rows: pd.DataFrame, retrospection_ldm, root: Path, device: torch.device,
                       log=print) -> dict:
    """Cache DIRE residuals of ``rows`` for ``method`` (only the missing ones), reconstructing
    through ``retrospection_ldm`` (a loaded LatentDiffusion) or the method's ``ldm_path``."""
    from hrr_core.models.baselines import dire_images
    from hrr_core.models.baselines.common import load_ldm

    rep = cfg.model_config(method).representation
    if rep.ldm_path is not None:
        ldm = load_ldm(rep.ldm_path, device)
    elif retrospection_ldm is None:
        raise ValueError(f"methods.{method}: DIRE without representation.ldm_path needs the retrospection LDM; "
                         "the retrospect stage trains it (dvc repro retrospect)")
    else:
        ldm = retrospection_ldm
    representation = Representation("dire", rep, lambda images, _generator: dire_images(images, ldm, rep))
    return compute_representation_cache(rows, representation, cfg.retrospection_config(), root, device, log)
