"""Real-benchmark presets as data: ``presets.yaml`` beside this module, read and validated here.

A preset says which of an adapter's discovered folders become train / val / test; the file
documents the rule keys. :func:`load_presets` checks every preset against :class:`SplitRule`
(unknown keys, wrong types and bad ranges fail naming the file and the key) and that every
adapter kind has a default preset of its own kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hrr_core.confutil import ConfigError, check, from_dict

PRESETS_YAML = Path(__file__).with_name("presets.yaml")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitRule:
    """One split's rule over discovered folders; a key left out matches every folder."""

    group: tuple[str, ...] | None = None
    subset: tuple[str, ...] | None = None
    generator: tuple[str, ...] | None = None
    source_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        lo, hi = self.source_range or (0.0, 1.0)
        check(0.0 <= lo < hi <= 1.0, "source_range", "[lo, hi) with 0 <= lo < hi <= 1", self.source_range)


@dataclass(frozen=True)
class Preset:
    kind: str
    about: str
    splits: dict[str, SplitRule]


def _check_preset(name: str, raw: Any, kinds: tuple[str, ...]) -> None:
    where = f"presets.{name}"
    preset = from_dict(Preset, raw, where)
    check(preset.kind in kinds, f"{where}.kind", ", ".join(kinds), preset.kind)
    check(bool(preset.about.strip()), f"{where}.about", "a one-line description", preset.about)
    unknown = sorted(set(preset.splits) - set(SPLITS))
    check(not unknown, f"{where}.splits", f"rules for {', '.join(SPLITS)}", unknown)


def load_presets(kinds: tuple[str, ...], path: str | Path = PRESETS_YAML) -> tuple[dict[str, dict], dict[str, str]]:
    """``(presets, defaults)`` from ``path``: presets as plain dicts (``kind``, ``about``,
    ``splits``: split -> rule), defaults as adapter kind -> preset name, one for each of ``kinds``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preset file {path} not found; it ships with hrr_core (package data)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        check(
            isinstance(raw, dict) and set(raw) == {"defaults", "presets"},
            "",
            "top-level keys defaults and presets",
            sorted(raw) if isinstance(raw, dict) else raw,
        )
        presets, defaults = raw["presets"], raw["defaults"]
        check(isinstance(presets, dict) and bool(presets), "presets", "a mapping of preset name to preset", presets)
        for name, preset in presets.items():
            _check_preset(name, preset, kinds)
        check(
            isinstance(defaults, dict) and set(defaults) == set(kinds),
            "defaults",
            f"one preset for each of {list(kinds)}",
            defaults,
        )
        for kind, name in defaults.items():
            check(name in presets and presets[name]["kind"] == kind, f"defaults.{kind}", f"a {kind} preset", name)
    except ConfigError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return presets, defaults
