"""Test-time conditions of the study: size rescaling, perturbations and the bias-audit
harmonisation. Each is a pure function of one (H, W, 3) uint8 image, applied identically to
reals and fakes, so a drop in a metric can only come from the detector.

    clean          the image as stored: the reference the others are compared with
    rescale f      resize to f x the stored size (Lanczos), fed at the new size   [size robustness]
    jpeg q         encode as JPEG at quality q and decode                         [perturbation]
    blur s         Gaussian blur with standard deviation s pixels                 [perturbation]
    downscale f    resize to f x and back to the stored size (resolution loss)    [perturbation]
    harmonise n    resize to n x n, then JPEG at the audit quality                [bias audit]

``harmonise`` is the DIRE lesson as a test: once both classes share one size and one codec, a
detector that keyed on format or size falls towards chance, and its drop exposes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from hrr_core.confutil import check
from hrr_core.data.transforms import decode_image, encode_image

CONDITIONS = ("clean", "rescale", "jpeg", "blur", "downscale", "harmonise")


def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if arr.shape[1] == width and arr.shape[0] == height:
        return arr
    return np.asarray(Image.fromarray(arr).resize((max(1, width), max(1, height)), Image.Resampling.LANCZOS), dtype=np.uint8)


def rescale(arr: np.ndarray, factor: float) -> np.ndarray:
    """(H, W, 3) -> (round(f H), round(f W), 3), antialiased."""
    h, w = arr.shape[:2]
    return _resize(arr, round(w * factor), round(h * factor))


def jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    return decode_image(encode_image(arr, "jpeg", int(quality)))


def blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, sigma in pixels (PIL's radius is the standard deviation); 0 = identity."""
    if sigma == 0:
        return arr
    return np.asarray(Image.fromarray(arr).filter(ImageFilter.GaussianBlur(radius=float(sigma))), dtype=np.uint8)


def downscale(arr: np.ndarray, factor: float) -> np.ndarray:
    """Down by ``factor`` and back up to the original size: the image keeps its size and loses detail."""
    h, w = arr.shape[:2]
    return _resize(rescale(arr, factor), w, h)


def harmonise(arr: np.ndarray, side: int, quality: int) -> np.ndarray:
    return jpeg(_resize(arr, int(side), int(side)), quality)


@dataclass(frozen=True)
class RobustnessConfig:
    """``study.robustness:``: which conditions the study scores the trained detector under.
    Empty lists skip a condition; ``harmonise_size: null`` skips the bias-audit condition."""

    rescale: tuple[float, ...] = (0.5, 0.75, 1.5, 2.0)
    jpeg: tuple[int, ...] = (90, 60, 30)
    blur: tuple[float, ...] = (1.0, 2.0)
    downscale: tuple[float, ...] = (0.5,)
    harmonise_size: int | None = 64
    harmonise_quality: int = 90

    def __post_init__(self) -> None:
        check(all(0.1 <= f <= 4.0 for f in self.rescale), "rescale", "factors in [0.1, 4]", self.rescale)
        check(all(1 <= q <= 100 for q in self.jpeg), "jpeg", "qualities in 1..100", self.jpeg)
        check(all(0 <= s <= 16 for s in self.blur), "blur", "sigmas in [0, 16] pixels", self.blur)
        check(all(0.05 <= f < 1.0 for f in self.downscale), "downscale", "factors in [0.05, 1)", self.downscale)
        check(self.harmonise_size is None or self.harmonise_size >= 8, "harmonise_size", ">= 8 pixels or null", self.harmonise_size)
        check(1 <= self.harmonise_quality <= 100, "harmonise_quality", "1..100", self.harmonise_quality)

    def conditions(self) -> list[tuple[str, float]]:
        """(condition, level) pairs, the unperturbed reference ('clean', 0) first."""
        out = [("clean", 0.0)]
        out += [("rescale", float(f)) for f in self.rescale if f != 1.0]
        out += [("jpeg", float(q)) for q in self.jpeg]
        out += [("blur", float(s)) for s in self.blur if s != 0]
        out += [("downscale", float(f)) for f in self.downscale]
        if self.harmonise_size is not None:
            out.append(("harmonise", float(self.harmonise_size)))
        return out

    def transform(self, condition: str, level: float) -> Callable[[np.ndarray], np.ndarray]:
        """The uint8 -> uint8 function of one condition."""
        if condition == "clean":
            return lambda a: a
        if condition == "rescale":
            return lambda a: rescale(a, level)
        if condition == "jpeg":
            return lambda a: jpeg(a, int(level))
        if condition == "blur":
            return lambda a: blur(a, level)
        if condition == "downscale":
            return lambda a: downscale(a, level)
        if condition == "harmonise":
            return lambda a: harmonise(a, int(level), self.harmonise_quality)
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
