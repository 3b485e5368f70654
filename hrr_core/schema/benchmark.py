"""``benchmark:`` (what the embedded benchmark is made of) and ``real_benchmark:`` (which
benchmark the stages run on: the embedded one, or a real one read by an adapter of
:mod:`hrr_core.data.adapters`, with its preset and harmonisation)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Literal

from hrr_core.confutil import check
from hrr_core.paths import resolve
from hrr_core.schema.presets import load_presets

KINDS = ("forensynths", "diffusionforensics", "genimage", "cocofake", "folder", "csv")  # the adapters
SOURCES = ("embedded",) + KINDS
PRESETS, DEFAULT_PRESETS = load_presets(KINDS)  # hrr_core/schema/presets.yaml


@dataclass(frozen=True)
class BenchmarkConfig:
    """What the embedded benchmark is made of (``benchmark:`` in params.yaml)."""

    seed_dir: str = "data/seed"
    out_dir: str = "data/embedded"
    include_grey: bool = False
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    crop_sizes: tuple[int, ...] = (64, 96, 128)
    crops_per_size: int = 4
    short_side_range: tuple[int, int] = (256, 512)
    max_photos: int | None = None
    codec: Literal["png", "jpeg"] = "png"
    jpeg_quality: int = 95
    families: tuple[str, ...] = ("vae", "ldm_img2img", "pixel_ddpm", "gan_upsampler", "ldm_sample")
    gen_train_size: int = 64
    gen_train_crops: int = 512
    batch_size: int = 32
    crop_seed: int = 1
    style_shift: tuple[str, ...] = ("palapeli-data",)
    photo_releases: tuple[int, ...] = (1,)  # seed photos of these releases (provenance.csv `release`)
    # The generator pool (benchmark v2, docs/embedded.md): this share of the photo groups, chosen
    # by a hash of the group (so adding photos never moves one), trains only the generators (and
    # the retrospection LDM); the detector splits never see them. 0: no pool, generators train on
    # the train split's photos (benchmark v1).
    generator_pool: float = 0.0
    pool_seed: int = 0
    # Where the generators come from: train = fitted inside the stage from ``zoo:``; shipped = the
    # committed weights under ``zoo_dir`` (trained once by ``python -m hrr_core.benchmark.zoo_train``).
    zoo: Literal["train", "shipped"] = "train"
    zoo_dir: str = "data/zoo"
    # the file-level bias audit (hrr_core.benchmark.file_audit), as real_benchmark.bias_audit:
    # warn reports a failure in the card, bias_audit.json and metrics; fail also stops prepare.
    # warn until the v2 families land (the v1 ones fail it); profile full sets fail
    bias_audit: Literal["warn", "fail"] = "warn"

    def __post_init__(self) -> None:
        check(0 <= self.generator_pool < 1, "generator_pool", "in [0, 1)", self.generator_pool)
        check(
            self.zoo == "train" or self.generator_pool > 0,
            "zoo",
            "train unless generator_pool > 0 (the shipped zoo was trained on the generator pool only)",
            self.zoo,
        )
        check(
            len(self.photo_releases) > 0
            and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in self.photo_releases),
            "photo_releases",
            "a non-empty list of positive integers (seed-set releases, provenance.csv column release)",
            self.photo_releases,
        )
        check(
            len(set(self.style_shift)) == len(self.style_shift),
            "style_shift",
            "distinct seed collections (provenance.csv package names without version)",
            self.style_shift,
        )
        check(
            len(self.crop_sizes) > 0 and all(32 <= s <= 1024 for s in self.crop_sizes),
            "crop_sizes",
            "a non-empty list of sizes in 32..1024",
            self.crop_sizes,
        )
        check(self.crops_per_size >= 1, "crops_per_size", ">= 1", self.crops_per_size)
        check(
            0 < self.short_side_range[0] <= self.short_side_range[1],
            "short_side_range",
            "[lo, hi] with 0 < lo <= hi",
            self.short_side_range,
        )
        check(self.max_photos is None or self.max_photos >= 3, "max_photos", "null or >= 3", self.max_photos)
        check(1 <= self.jpeg_quality <= 100, "jpeg_quality", "1..100", self.jpeg_quality)
        check(
            len(self.families) > 0 and len(set(self.families)) == len(self.families),
            "families",
            "a non-empty list without repeats",
            self.families,
        )
        check(self.gen_train_crops >= 4, "gen_train_crops", ">= 4", self.gen_train_crops)
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)


@dataclass(frozen=True)
class HarmoniseConfig:
    """One encoding for both classes (see the module docstring)."""

    format: Literal["keep", "png", "jpeg"] = "jpeg"
    jpeg_quality: int = 96  # GenImage's reals are q~96: a fair single common quality
    resize: Literal["none", "center_crop", "resize_short"] = "none"
    size: int = 256
    strip_metadata: bool = True

    def __post_init__(self) -> None:
        check(1 <= self.jpeg_quality <= 100, "jpeg_quality", "an integer in 1..100", self.jpeg_quality)
        check(self.size >= 8, "size", "an integer >= 8 (pixels)", self.size)

    @property
    def is_identity(self) -> bool:
        """True when files would come out byte-identical: copy them instead of re-encoding."""
        return self.format == "keep" and self.resize == "none" and not self.strip_metadata


@dataclass(frozen=True)
class RealBenchmarkConfig:
    """``real_benchmark:``: which benchmark the stages run on, where it is, which of its folders
    become train / val / test, and how to harmonise it. The adapters of
    :mod:`hrr_core.data.adapters` read it as is (``source`` names the adapter); ``resolved``
    gives the copy whose ``root`` is an absolute path."""

    source: Literal["embedded", "forensynths", "diffusionforensics", "genimage", "cocofake", "folder", "csv"] = (
        "embedded"
    )
    root: str | None = None  # benchmark folder (csv: the list file); relative to the project root
    preset: str | None = None  # null: the source's default preset (DEFAULT_PRESETS)
    tree: Literal["images", "recons", "dire"] = "images"  # DiffusionForensics tree to read
    train_generators: tuple[str, ...] | None = None  # replaces the preset's train/val generators
    test_generators: tuple[str, ...] | None = None  # replaces the preset's test generators
    checksums: bool = False  # sha256 of every file (reads whole files)
    verify: Literal["header", "decode"] = "header"  # decode: also catch truncated pixel data
    max_per_class: int | None = None  # at most N rows per (split, subset, generator, label)
    seed: int = 0  # subsampling and cocoFake fake choice
    check_leakage: bool = True  # raise if one source lands in two splits
    bias_audit: Literal["warn", "fail"] = "warn"
    harmonise: HarmoniseConfig | None = field(default_factory=HarmoniseConfig)  # null: files as shipped

    def __post_init__(self) -> None:
        if self.is_embedded:
            return
        check(
            bool(self.root),
            "root",
            f"the {self.source} folder (csv: the list file); set it in params.yaml or run "
            f"`dvc exp run -S real_benchmark.root=/path/to/{self.source}`",
            self.root,
        )
        name = self.preset_name
        check(name in PRESETS, "preset", ", ".join(sorted(PRESETS)), self.preset)
        check(
            PRESETS[name]["kind"] == self.source,
            "preset",
            f"a {self.source} preset: {', '.join(sorted(k for k, v in PRESETS.items() if v['kind'] == self.source))}",
            self.preset,
        )
        check(
            self.max_per_class is None or self.max_per_class > 0,
            "max_per_class",
            "a positive integer or null",
            self.max_per_class,
        )
        for key in ("train_generators", "test_generators"):
            value = getattr(self, key)
            check(value is None or len(value) > 0, key, "a non-empty list of generator names, or null", value)

    @property
    def is_embedded(self) -> bool:
        return self.source == "embedded"

    @property
    def preset_name(self) -> str:
        """``preset``, or the source's default."""
        return self.preset or DEFAULT_PRESETS[self.source]

    def resolved(self, project_root: str | os.PathLike | None = None) -> RealBenchmarkConfig:
        """This config with ``root`` absolute (a relative one is taken from ``project_root``,
        by default the project's root): what the adapters walk."""
        if self.is_embedded:
            return self
        return replace(self, root=str(resolve(self.root, project_root)))
