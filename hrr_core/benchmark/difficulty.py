"""How hard is a fake family? A trivial detector's AP on unseen photos.

The detector is a logistic regression on the radially averaged log-power spectrum plus colour
statistics. An AP near 1.0 means the family leaves a fingerprint a linear model on global
statistics finds (typically blur); near 0.5 means real and fake are not linearly separable in
that feature space. Report it per family in the dataset card (see offline-sources.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

NUM_BINS = 24  # radial bins over relative frequency 0 .. 0.5 (size-independent)


def _to_list(images: torch.Tensor | np.ndarray | Sequence) -> list[np.ndarray]:
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 3:
        images = [images]
    out = []
    for img in images:
        a = img.detach().cpu().float().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, np.float32)
        if a.ndim != 3 or a.shape[0] != 3:
            raise ValueError(f"expected (3, H, W) images in [0, 1], got shape {a.shape}")
        out.append(a)
    return out


def _radial_log_power(gray: np.ndarray) -> np.ndarray:
    """(H, W) -> (NUM_BINS,) mean log-power per radial frequency band (Hann-windowed)."""
    h, w = gray.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    spec = np.fft.fftshift(np.fft.fft2((gray - gray.mean()) * win))
    logp = np.log(np.abs(spec) ** 2 + 1e-10)  # (H, W)
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    r = np.sqrt(fy**2 + fx**2)  # (H, W) relative frequency, 0 .. ~0.707
    bins = np.minimum((r / 0.5 * NUM_BINS).astype(int), NUM_BINS)  # NUM_BINS = corners, dropped
    sums = np.bincount(bins.ravel(), logp.ravel(), NUM_BINS + 1)[:NUM_BINS]
    counts = np.bincount(bins.ravel(), minlength=NUM_BINS + 1)[:NUM_BINS]
    prof = sums / np.maximum(counts, 1)
    return prof - prof[1:4].mean()  # relative to low frequencies: contrast-invariant shape


def _colour_stats(img: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (12,) per-channel mean, std, skew + saturation mean/std + clipped fraction."""
    flat = img.reshape(3, -1)  # (3, H*W)
    mean, std = flat.mean(1), flat.std(1) + 1e-6
    skew = (((flat - mean[:, None]) / std[:, None]) ** 3).mean(1)
    sat = flat.max(0) - flat.min(0)
    clipped = ((flat <= 1 / 255) | (flat >= 254 / 255)).mean()
    return np.concatenate([mean, std, skew, [sat.mean(), sat.std(), clipped]])


def spectrum_features(images: torch.Tensor | Sequence) -> np.ndarray:
    """(N, 3, H, W) tensor, or a list of (3, H_i, W_i) images in [0, 1] -> (N, NUM_BINS + 12) features."""
    feats = []
    for img in _to_list(images):
        gray = img.mean(0)  # (H, W)
        feats.append(np.concatenate([_radial_log_power(gray), _colour_stats(img)]))
    return np.stack(feats).astype(np.float64)


def trivial_detector_ap(train_real, train_fake, test_real, test_fake, seed: int = 0) -> float:
    """AP (fake = positive) of a standardised logistic regression on :func:`spectrum_features`,
    trained on train_real/train_fake and evaluated on test_real/test_fake (all image sets as
    accepted by :func:`spectrum_features`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = [spectrum_features(s) for s in (train_real, train_fake, test_real, test_fake)]
    if min(len(x) for x in xs) == 0:
        raise ValueError(f"every set needs at least one image, got sizes {[len(x) for x in xs]}")
    x_train = np.concatenate(xs[:2])
    y_train = np.r_[np.zeros(len(xs[0])), np.ones(len(xs[1]))]
    x_test = np.concatenate(xs[2:])
    y_test = np.r_[np.zeros(len(xs[2])), np.ones(len(xs[3]))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed))
    clf.fit(x_train, y_train)
    return float(average_precision_score(y_test, clf.predict_proba(x_test)[:, 1]))
