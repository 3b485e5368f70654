"""DIRE (Wang et al. 2023): a classifier on cached diffusion-reconstruction residuals; its card
carries the diffusion model it reconstructs through."""

from pathlib import Path

from hrr_core.confutil import to_dict
from hrr_core.data.cache import Representation
from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.dire import build_dire, dire_images
from hrr_core.paths import resolve


def _representation(cfg, ldm) -> Representation:
    rep = cfg.representation
    return Representation("dire", rep, lambda images, _generator: dire_images(images, ldm, rep), model=ldm)


def _ldm_dir(cfg, retrospection_ldm: Path) -> Path:
    """Its own ``representation.ldm_path``, or the retrospection LDM the retrospect stage trained."""
    path = cfg.representation.ldm_path
    return resolve(path) if path is not None else Path(retrospection_ldm)


def _card_preprocessing(cfg) -> dict:
    return {
        "dire": {
            "on_the_fly": True,
            "representation": to_dict(cfg.representation),
            "ldm_dir": "retrospection_ldm",
            "note": "residual |x - DDIM reconstruction(x)| computed per image size, deterministic",
        }
    }


SPEC = MethodSpec(
    name="dire",
    build=build_dire,
    reads="dire",
    representation=_representation,
    ldm_dir=_ldm_dir,
    card_preprocessing=_card_preprocessing,
)
