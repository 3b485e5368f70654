"""The method registry: what each detector *is*, in one entry per method.

Every method of ``params.yaml`` (``methods.<m>``) names a registry entry by ``kind`` (or by
``baseline`` when ``kind`` is ``baseline``). The entry, ``hrr_core/methods/<name>.py``, holds
one :class:`MethodSpec`: how the model is built from its config, how it trains (the generic
loop with an objective, or a direct ``fit``), what it reads (images, or a cached
representation such as HRR's MSR or DIRE's residuals), the diffusion model its detector card
carries, its minimum input side and its train-time transform. The stages, the detector card
and ``hrr-detect`` ask the registry; none of them tests ``kind`` strings. The config class
comes from :data:`hrr_core.schema.methods.METHOD_CONFIGS`, so ``params.yaml`` validates
without importing torch.

Adding a detector: its model module, one entry file here, its ``METHOD_CONFIGS`` line and its
``methods.<name>`` entry in params.yaml.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hrr_core.confutil import from_dict
from hrr_core.losses.classification import bce_objective
from hrr_core.schema.methods import METHOD_CONFIGS, method_config_class

IMAGE_MIN_SIDE = 32  # the project-wide minimum of every image backbone and baseline


def _no_ldm(_model_cfg: Any, _retrospection_ldm: Path) -> Path | None:
    return None


def _image_min_side(_model_cfg: Any) -> int:
    return IMAGE_MIN_SIDE


def _bce(_model_cfg: Any):
    return bce_objective


@dataclass(frozen=True)
class MethodSpec:
    """One registered detector.

    build: model config -> an ``nn.Module`` (``forward(inputs) -> DetectorOutput``) for
        ``trains == "loop"``, or a scorer (``fit``/``score``/``save``) for ``"fit"``.
    load: folder -> fitted scorer (``trains == "fit"`` only).
    objective: model config -> ``(output, labels) -> {"loss", ...}`` (loop methods).
    reads: ``images``, or the name of the cached representation the retrospect stage computes.
    representation: (model config, loaded diffusion model or None) -> the
        :class:`~hrr_core.retrospection.Representation` cached for it (cached methods only).
    ldm_dir: (model config, the retrospection LDM folder) -> the diffusion model the detector
        re-renders through and its card carries, or None.
    min_side: model config -> the smallest short side an input image may have.
    train_transform: (model config, seed) -> uint8 image augmentation or None.
    train_report: (trained model, model config) -> extra train metrics (e.g. AFR dims kept).
    card_preprocessing: model config -> the per-image work inference does before the model, as
        sections of the detector card's ``preprocessing`` (HRR's retrospection, DIRE's residual).
    calibrates_on_val: a fitted scorer whose ``calibrate(images, labels)`` is called on the
        validation split after ``fit`` (real-only detectors: validation reals set the scale).
    """

    name: str
    build: Callable[..., Any]
    trains: Literal["loop", "fit"] = "loop"
    load: Callable[[Path], Any] | None = None
    objective: Callable[[Any], Any] = _bce
    reads: Literal["images", "msr", "dire"] = "images"
    representation: Callable[[Any, Any], Any] | None = None
    ldm_dir: Callable[[Any, Path], Path | None] = _no_ldm
    min_side: Callable[[Any], int] = _image_min_side
    train_transform: Callable[[Any, int], Callable | None] | None = None
    train_report: Callable[[Any, Any], dict] | None = None
    card_preprocessing: Callable[[Any], dict] | None = None
    calibrates_on_val: bool = False

    def __post_init__(self) -> None:
        if (self.trains == "fit") != (self.load is not None):
            raise ValueError(f"method {self.name!r}: a `load` function exactly when trains == 'fit'")
        if self.calibrates_on_val and self.trains != "fit":
            raise ValueError(f"method {self.name!r}: calibrates_on_val is for fitted scorers")
        if (self.reads == "images") != (self.representation is None):
            raise ValueError(f"method {self.name!r}: a `representation` exactly when it reads a cache")

    @property
    def config_cls(self) -> type:
        return method_config_class(self.name)

    @property
    def is_scorer(self) -> bool:
        """Fitted directly (``fit``/``score``/``save``/``load``), not by the training loop."""
        return self.trains == "fit"


def names() -> list[str]:
    """Every registered method name."""
    return sorted(METHOD_CONFIGS)


def get(name: str) -> MethodSpec:
    """The registry entry ``hrr_core/methods/<name>.py``."""
    if name not in METHOD_CONFIGS:
        raise ValueError(f"unknown method kind {name!r}; registered: {', '.join(names())}")
    spec = importlib.import_module(f"hrr_core.methods.{name}").SPEC
    if spec.name != name:
        raise ValueError(f"hrr_core/methods/{name}.py registers {spec.name!r}; the file name and the entry must agree")
    return spec


def spec_of(cfg, method: str) -> MethodSpec:
    """The registry entry of ``methods.<method>`` (or of an ablation row) of a loaded config."""
    return get(cfg.method(method).name)


def build(name: str, cfg: Any = None, **resources: Any) -> Any:
    """Build method ``name`` from its config dataclass, a mapping as in params.yaml, or None
    (defaults); ``resources`` go to the builder (AEROBLADE's ``autoencoders``). Config errors
    name the key as ``<name>.model.<key>``."""
    spec = get(name)
    if cfg is None or isinstance(cfg, dict):
        cfg = from_dict(spec.config_cls, cfg, f"{name}.model")
    elif not isinstance(cfg, spec.config_cls):
        raise ValueError(f"method {name!r} needs a {spec.config_cls.__name__} or a mapping, got {type(cfg).__name__}")
    return spec.build(cfg, **resources)
