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

from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from hrr_core.data.transforms import decode_image, encode_image
from hrr_core.schema.evaluation import (
    CONDITIONS,  # noqa: E402
    PROCESSINGS,
    RobustnessConfig,  # noqa: F401 (config lives in the schema)
)


def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if arr.shape[1] == width and arr.shape[0] == height:
        return arr
    return np.asarray(
        Image.fromarray(arr).resize((max(1, width), max(1, height)), Image.Resampling.LANCZOS), dtype=np.uint8
    )


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


def condition_transform(cfg: RobustnessConfig, condition: str, level: float) -> Callable[[np.ndarray], np.ndarray]:
    """The uint8 -> uint8 function of one condition of ``cfg.conditions()``."""
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
        return lambda a: harmonise(a, int(level), cfg.harmonise_quality)
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")


def webp(arr: np.ndarray, quality: int) -> np.ndarray:
    """Encode as lossy WebP at ``quality`` and decode (PIL's libwebp)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="WEBP", quality=int(quality), method=4)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


def sharpen(arr: np.ndarray, amount: float) -> np.ndarray:
    """Unsharp mask (radius 2 px, ``amount`` x the detail added back), as photo apps sharpen."""
    mask = ImageFilter.UnsharpMask(radius=2, percent=int(round(100 * amount)), threshold=0)
    return np.asarray(Image.fromarray(arr).filter(mask), dtype=np.uint8)


def processing_transform(name: str, level: float) -> Callable[[np.ndarray], np.ndarray]:
    """The uint8 -> uint8 function of one everyday processing of ``evaluate.processed_reals``
    (applied to test reals, which stay real)."""
    if name == "jpeg":
        return lambda a: jpeg(a, int(level))
    if name == "webp":
        return lambda a: webp(a, int(level))
    if name == "resize":
        return lambda a: downscale(a, level)
    if name == "sharpen":
        return lambda a: sharpen(a, level)
    raise ValueError(f"unknown processing {name!r}; known: {', '.join(PROCESSINGS)}")
