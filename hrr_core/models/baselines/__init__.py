"""The baselines HRR must beat, one module each, behind one registry.

Two kinds (``BASELINE_KINDS``):
- trainable: ``nn.Module`` with ``forward(inputs) -> DetectorOutput`` (logits (B,), larger =
  generated), trained by the project's generic loop with ``bce_objective``. Inputs are images
  (B, 3, H, W) in [0, 1], H, W >= 32, except DIRE whose inputs are cached residuals
  ``dire_representation(x, ldm, num_steps)`` of the same shape. NPR, SAFE, BSF and FreqNet share
  one truncated ResNet-50 (:mod:`.trunk`) and differ in their input transform; SAFE and CNNSpot
  come with a train-time augmentation (``safe_augment``, ``cnnspot_augment``).
- scorer: ``fit(images_or_features, labels) -> self``, ``score(images) -> np.ndarray`` of
  probabilities, ``save(dir)`` / ``load(dir)`` (JSON + safetensors, no pickle). ``selfdesc`` is
  real-only: its ``fit`` uses the label-0 images alone, and ``calibrate(images, labels)``
  re-anchors it on validation reals.

``build_baseline(name, cfg)`` takes the baseline's config dataclass or a plain mapping (as in
params.yaml); extra keyword arguments are resources for the builder (AEROBLADE's
``autoencoders``). See docs/baselines.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hrr_core.confutil import from_dict
from hrr_core.models.baselines.aeroblade import AEROBLADE, AEROBLADEConfig
from hrr_core.models.baselines.bsf import BSFConfig, build_bsf
from hrr_core.models.baselines.cnnspot import CNNSpotAugmentConfig, CNNSpotConfig, build_cnnspot, cnnspot_augment
from hrr_core.models.baselines.dire import DIREConfig, DIREReprConfig, build_dire, dire_from_config, dire_images, dire_representation
from hrr_core.models.baselines.ferretnet import FerretNet, FerretNetConfig, median_residual
from hrr_core.models.baselines.freqnet import FreqNetConfig, build_freqnet
from hrr_core.models.baselines.npr import NPR, NPRConfig, npr_residual
from hrr_core.models.baselines.safe import SAFEAugmentConfig, SAFEConfig, build_safe, haar_dwt2, safe_augment
from hrr_core.models.baselines.selfdesc import SelfDescConfig, SelfDescription
from hrr_core.models.baselines.spectrum import SpectrumLR, SpectrumLRConfig, spectrum_lr_features
from hrr_core.models.baselines.univfd import UnivFD, UnivFDConfig

__all__ = [
    "BASELINES", "BASELINE_KINDS", "build_baseline", "baseline_config",
    "AEROBLADE", "AEROBLADEConfig", "CNNSpotAugmentConfig", "CNNSpotConfig", "build_cnnspot", "cnnspot_augment",
    "DIREConfig", "DIREReprConfig", "build_dire", "dire_from_config", "dire_images", "dire_representation",
    "NPR", "NPRConfig", "npr_residual", "SpectrumLR", "SpectrumLRConfig", "spectrum_lr_features",
    "UnivFD", "UnivFDConfig", "BSFConfig", "build_bsf", "FerretNet", "FerretNetConfig", "median_residual",
    "FreqNetConfig", "build_freqnet", "SAFEAugmentConfig", "SAFEConfig", "build_safe", "haar_dwt2", "safe_augment",
    "SelfDescConfig", "SelfDescription",
]

BASELINES: dict[str, tuple[type, Callable[..., Any]]] = {
    "cnnspot": (CNNSpotConfig, build_cnnspot),
    "npr": (NPRConfig, NPR),
    "dire": (DIREConfig, build_dire),
    "univfd": (UnivFDConfig, UnivFD),
    "aeroblade": (AEROBLADEConfig, AEROBLADE),
    "spectrum_lr": (SpectrumLRConfig, SpectrumLR),
    "safe": (SAFEConfig, build_safe),
    "ferretnet": (FerretNetConfig, FerretNet),
    "bsf": (BSFConfig, build_bsf),
    "freqnet": (FreqNetConfig, build_freqnet),
    "selfdesc": (SelfDescConfig, SelfDescription),
}

BASELINE_KINDS: dict[str, str] = {
    "cnnspot": "trainable", "npr": "trainable", "dire": "trainable", "univfd": "trainable",
    "aeroblade": "scorer", "spectrum_lr": "scorer",
    "safe": "trainable", "ferretnet": "trainable", "bsf": "trainable", "freqnet": "trainable", "selfdesc": "scorer",
}


def baseline_config(name: str, cfg: Any = None) -> Any:
    """The config dataclass of baseline ``name`` from a dataclass, a mapping or None (defaults);
    errors name the key as ``baselines.<name>.<key>``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(sorted(BASELINES))}")
    cfg_cls = BASELINES[name][0]
    if cfg is None or isinstance(cfg, Mapping):
        return from_dict(cfg_cls, cfg, f"baselines.{name}")
    if not isinstance(cfg, cfg_cls):
        raise ValueError(f"baseline {name!r} needs a {cfg_cls.__name__} or a mapping, got {type(cfg).__name__}")
    return cfg


def build_baseline(name: str, cfg: Any = None, **resources: Any) -> Any:
    """Build baseline ``name`` (see ``BASELINES``) from its config; ``resources`` go to the builder."""
    cfg = baseline_config(name, cfg)  # raises for unknown names
    return BASELINES[name][1](cfg, **resources)
