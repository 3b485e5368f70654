"""Pixel-level transforms shared by every dataset: the codec path both classes go through,
resizing, and array/tensor conversions. Images are uint8 (H, W, 3) arrays or float tensors
(3, H, W) in [0, 1]."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import torch
from PIL import Image

Codec = Literal["png", "jpeg"]


def encode_image(arr: np.ndarray, codec: Codec, jpeg_quality: int = 95) -> bytes:
    """Encode an (H, W, 3) uint8 image. Reals and fakes of a benchmark both go through this
    one function with the same arguments, so no class carries a codec of its own."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"encode_image expects (H, W, 3) uint8, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    im = Image.fromarray(arr, "RGB")
    if codec == "png":
        im.save(buf, format="PNG", optimize=False, compress_level=6)
    elif codec == "jpeg":
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        im.save(buf, format="JPEG", quality=jpeg_quality, subsampling=0 if jpeg_quality >= 90 else 2)
    else:
        raise ValueError(f"codec must be 'png' or 'jpeg', got {codec!r}")
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 from encoded bytes."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def estimate_jpeg_quality(data_or_image: bytes | Image.Image) -> int | None:
    """Estimated JPEG quality (1..100) from the luminance quantisation table, None if not JPEG.

    Inverts libjpeg's scaling of the standard table (IJG formula); exact for files libjpeg wrote."""
    im = Image.open(io.BytesIO(data_or_image)) if isinstance(data_or_image, bytes) else data_or_image
    tables = getattr(im, "quantization", None)
    if im.format != "JPEG" or not tables:
        return None
    q = np.asarray(tables[0], dtype=np.float64)
    base = np.asarray(_STD_LUMA, dtype=np.float64)
    best, best_err = None, np.inf
    for quality in range(1, 101):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        expected = np.clip(np.floor((base * scale + 50) / 100), 1, 255)
        err = np.abs(np.sort(expected) - np.sort(q)).sum()
        if err < best_err:
            best, best_err = quality, err
    return best


_STD_LUMA = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]


def resize_short_side(arr: np.ndarray, short: int) -> np.ndarray:
    """Antialiased (Lanczos) resize so the short side is ``short`` pixels."""
    h, w = arr.shape[:2]
    scale = short / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def resize_square(arr: np.ndarray, side: int) -> np.ndarray:
    """Antialiased (Lanczos) resize to ``side`` × ``side``."""
    if arr.shape[0] == side and arr.shape[1] == side:
        return arr
    return np.asarray(Image.fromarray(arr).resize((side, side), Image.Resampling.LANCZOS), dtype=np.uint8)


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1], contiguous (one memory layout everywhere:
    convolutions pick their kernels by layout, and kernels round differently)."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous().float().div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded (the one quantisation of fakes)."""
    return t.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
