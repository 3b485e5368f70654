"""The project's one typed config, mirroring ``params.yaml``.

``load_config("params.yaml")`` reads the file, applies the overrides of the selected
``profile`` (``profiles.<name>`` in the same file) and builds frozen dataclasses, one per
concern. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
the dotted key and what is allowed. Every profile's overrides are validated, not only the
active one, so a typo in ``profiles.full`` fails today rather than on a GPU next month.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hrr_core.confutil import ConfigError, check, deep_merge, from_dict, to_dict
from hrr_core.paths import resolve
from hrr_core.schema.benchmark import BenchmarkConfig, RealBenchmarkConfig
from hrr_core.schema.evaluation import EvaluateConfig, StudyConfig
from hrr_core.schema.methods import METHOD_CONFIGS, method_config_class
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.schema.training import TrainConfig
from hrr_core.schema.zoo import ZooConfig

__all__ = [
    "ABLATION_PREFIX",
    "PROFILES",
    "Config",
    "ConfigError",
    "EvaluateConfig",
    "MethodConfig",
    "METHOD_CONFIGS",
    "StudyConfig",
    "ablation_method",
    "config_from_dict",
    "load_config",
    "method_config_class",
]

PROFILES = ("smoke", "default", "full")
ABLATION_PREFIX = "ablation-"


def ablation_method(row: str) -> str:
    """The method name an ablation row trains and reports under."""
    return f"{ABLATION_PREFIX}{row}"


@dataclass(frozen=True)
class MethodConfig:
    """One detector of the study (``methods.<name>:``): its kind, its model config, the
    generators it trains on, and overrides of the shared ``train:`` section."""

    kind: Literal["classifier", "hrr", "baseline"] = "classifier"
    baseline: str | None = None  # with kind: baseline, one of hrr_core.models.baselines.BASELINES
    model: dict[str, Any] = field(default_factory=dict)
    train_generators: tuple[str, ...] = ("pixel_ddpm",)
    train_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(
            len(self.train_generators) > 0,
            "train_generators",
            "a non-empty list of generator families",
            self.train_generators,
        )
        check(
            (self.kind == "baseline") == (self.baseline is not None),
            "baseline",
            "a baseline name exactly when kind is 'baseline' (e.g. npr, cnnspot, univfd, spectrum_lr)",
            self.baseline,
        )
        check(
            self.name in METHOD_CONFIGS,
            "baseline" if self.baseline else "kind",
            ", ".join(sorted(k for k in METHOD_CONFIGS if k not in ("classifier", "hrr"))),
            self.baseline or self.kind,
        )

    @property
    def name(self) -> str:
        """The method's key in the registry (``hrr_core.methods``): the baseline's name, else the kind."""
        return self.baseline or self.kind


@dataclass(frozen=True)
class Config:
    """The whole ``params.yaml`` after profile resolution."""

    profile: Literal["smoke", "default", "full"]
    seed: int
    device: str
    benchmark: BenchmarkConfig
    zoo: dict[str, Any]
    train: dict[str, Any]
    evaluate: EvaluateConfig
    methods: dict[str, MethodConfig]
    retrospection: dict[str, Any] = field(default_factory=dict)
    ablations: dict[str, dict[str, Any]] = field(default_factory=dict)
    ablation_run: tuple[str, ...] = ()
    study: StudyConfig = field(default_factory=StudyConfig)
    real_benchmark: RealBenchmarkConfig = field(default_factory=RealBenchmarkConfig)  # source: embedded = benchmark:

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed", ">= 0", self.seed)
        check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device",
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
            self.device,
        )
        check(len(self.methods) > 0, "methods", "at least one method", self.methods)
        check(
            "study" not in self.methods,
            "methods.study",
            "another name: models/study and results/study hold the study stage's runs",
            "study",
        )
        for (
            name,
            m,
        ) in self.methods.items():  # a real benchmark's preset decides (hrr_core.pipeline.common.bind_benchmark)
            unknown = (
                set(m.train_generators) - set(self.benchmark.families) if self.real_benchmark.is_embedded else set()
            )
            check(
                not unknown,
                f"methods.{name}.train_generators",
                f"families of benchmark.families {list(self.benchmark.families)}",
                sorted(unknown),
            )
        unknown = (
            set(self.study.cross_train) - set(self.benchmark.families) if self.real_benchmark.is_embedded else set()
        )
        check(
            not unknown,
            "study.cross_train",
            f"families of benchmark.families {list(self.benchmark.families)}",
            sorted(unknown),
        )
        check(
            self.evaluate.reference is None or self.evaluate.reference in self.methods,
            "evaluate.reference",
            f"null or a key of methods: {sorted(self.methods)}",
            self.evaluate.reference,
        )
        # the nested sections are validated by their own dataclasses
        self.zoo_config()
        self.retrospection_config()
        for name in self.methods:
            self.train_config(name)
            self.model_config(name)
        unknown = set(self.ablation_run) - set(self.ablations)
        check(not unknown, "ablation_run", f"names of ablations: {sorted(self.ablations)}", sorted(unknown))
        check(
            not self.ablations or "hrr" in self.methods,
            "ablations",
            "rows only with a methods.hrr entry to vary",
            sorted(self.ablations),
        )
        for name in self.ablations:
            self.model_config(ablation_method(name))

    def zoo_config(self) -> ZooConfig:
        return from_dict(ZooConfig, self.zoo, "zoo")

    def retrospection_config(self) -> RetrospectionConfig:
        return from_dict(RetrospectionConfig, self.retrospection, "retrospection")

    def train_config(self, method: str) -> TrainConfig:
        overrides = self.method(method).train_overrides
        for where, section in (("train", self.train), (f"methods.{method}.train_overrides", overrides)):
            if "device" in section:
                raise ConfigError(f"{where}.device", "set the top-level `device:` instead; every stage uses that one")
        merged = deep_merge(deep_merge(self.train, overrides), {"device": self.device.split(":")[0]})
        return from_dict(TrainConfig, merged, f"methods.{method}.train_overrides" if overrides else "train")

    def method(self, name: str) -> MethodConfig:
        """``methods.<name>``, or the HRR variant of ablation row ``ablation-<row>``."""
        if name.startswith(ABLATION_PREFIX) and name[len(ABLATION_PREFIX) :] in self.ablations:
            base = self.methods["hrr"]
            model = deep_merge(base.model, self.ablations[name[len(ABLATION_PREFIX) :]])
            return MethodConfig(
                kind="hrr", model=model, train_generators=base.train_generators, train_overrides=base.train_overrides
            )
        if name not in self.methods:
            raise ConfigError(f"methods.{name}", f"no such method; known: {', '.join(self.methods)}")
        return self.methods[name]

    def model_config(self, method: str):
        """The validated model config of ``methods.<method>`` (or of an ablation row)."""
        m = self.method(method)
        where = (
            f"ablations.{method[len(ABLATION_PREFIX) :]}"
            if method.startswith(ABLATION_PREFIX)
            else f"methods.{method}.model"
        )
        return from_dict(method_config_class(m.name), m.model, where)

    def to_dict(self) -> dict:
        return to_dict(self)

    def digest(self, *sections: str) -> str:
        """Short stable hash of the named sections (all when none), for cache keys."""
        d = self.to_dict()
        part = {k: d[k] for k in sections} if sections else d
        return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_config(
    path: str | os.PathLike = "params.yaml", profile: str | None = None, overrides: dict | None = None
) -> Config:
    """Read ``params.yaml`` (relative paths from the project root), apply ``profiles[profile]``
    (default: the file's ``profile`` key) and then ``overrides``; validate everything."""
    file = resolve(path) if not Path(path).is_absolute() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"config file {file} not found; run from the project root or pass the path to params.yaml"
        )
    raw = yaml.safe_load(file.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{file}: expected a mapping at the top level")
    return config_from_dict(raw, profile, overrides)


def config_from_dict(raw: dict, profile: str | None = None, overrides: dict | None = None) -> Config:
    raw = dict(raw)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError("profiles", "expected a mapping of profile name to overrides")
    unknown = sorted(set(profiles) - set(PROFILES))
    if unknown:
        raise ConfigError(f"profiles.{unknown[0]}", f"unknown profile; known: {', '.join(PROFILES)}")
    chosen = profile or raw.get("profile", "default")
    check(chosen in PROFILES, "profile", " | ".join(PROFILES), chosen)
    merged = deep_merge(deep_merge(raw, profiles.get(chosen) or {}), {"profile": chosen})
    if overrides:
        merged = deep_merge(merged, overrides)
    config = from_dict(Config, merged)
    for name, overlay in profiles.items():  # every profile must be valid, not only the chosen one
        if name != chosen:
            try:
                from_dict(Config, deep_merge(deep_merge(raw, overlay or {}), {"profile": name}))
            except ConfigError as exc:
                raise ConfigError(f"profiles.{name} -> {exc.key}", exc.message) from None
    return config
