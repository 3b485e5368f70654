"""``benchmark:``: what the embedded benchmark is made of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hrr_core.confutil import check


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

    def __post_init__(self) -> None:
        check(len(self.crop_sizes) > 0 and all(32 <= s <= 1024 for s in self.crop_sizes), "crop_sizes", "a non-empty list of sizes in 32..1024", self.crop_sizes)
        check(self.crops_per_size >= 1, "crops_per_size", ">= 1", self.crops_per_size)
        check(0 < self.short_side_range[0] <= self.short_side_range[1], "short_side_range", "[lo, hi] with 0 < lo <= hi", self.short_side_range)
        check(self.max_photos is None or self.max_photos >= 3, "max_photos", "null or >= 3", self.max_photos)
        check(1 <= self.jpeg_quality <= 100, "jpeg_quality", "1..100", self.jpeg_quality)
        check(len(self.families) > 0 and len(set(self.families)) == len(self.families), "families", "a non-empty list without repeats", self.families)
        check(self.gen_train_crops >= 4, "gen_train_crops", ">= 4", self.gen_train_crops)
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)

