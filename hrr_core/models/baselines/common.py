"""Pieces the baselines share: image-batch checks, a numpy sigmoid, config and array
persistence (JSON + safetensors, never pickle), a standardised logistic regression stored as
plain arrays, and loading a diffusion model / autoencoder from a local folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np
import torch

from hrr_core.confutil import from_dict, to_dict
from hrr_core.io import atomic_write_bytes, atomic_write_json

T = TypeVar("T")
CONFIG_FILE = "config.json"


def check_images(x: torch.Tensor, min_size: int = 32, what: str = "images") -> torch.Tensor:
    """Validate a batch (B, 3, H, W) of [0, 1] images with H, W >= ``min_size``; returns it."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"expected {what} as a (B, 3, H, W) tensor in [0, 1], got {shape}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"{what} must be at least {min_size}x{min_size} pixels, got {tuple(x.shape[-2:])}; "
            "upsample small images before scoring"
        )
    return x


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function on float64 arrays."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def check_labels(labels: Any, n: int) -> np.ndarray:
    """(n,) float64 labels in {0, 1} (0 = real, 1 = generated), both classes present."""
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64).reshape(-1)
    if y.shape != (n,):
        raise ValueError(f"expected {n} labels (one per image), got {y.shape[0]}")
    if not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
        raise ValueError(
            f"labels must be 0 (real) / 1 (generated) with both classes present, got values {np.unique(y)}"
        )
    return y


# ---------------------------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------------------------


def save_config(directory: str | os.PathLike, cfg: Any, extra: dict | None = None) -> Path:
    """Write ``config.json`` ({"config": ..., **extra}) into ``directory`` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / CONFIG_FILE, {"config": to_dict(cfg), **(extra or {})})
    return d


def load_config(directory: str | os.PathLike, cls: type[T]) -> tuple[T, dict]:
    """(config, the rest of config.json) from a folder written by :func:`save_config`."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"{path} does not exist; save the baseline with its .save(dir) first")
    data = json.loads(path.read_text())
    return from_dict(cls, data.pop("config"), "config"), data


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save

    atomic_write_bytes(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not Path(path).exists():
        raise ValueError(f"{path} does not exist; save the baseline with its .save(dir) first")
    return load_file(str(path))


# ---------------------------------------------------------------------------------------------
# A standardised logistic regression kept as arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class LinearLogit:
    """logit(f) = ((f - mean) / scale) @ coef + intercept, the arrays of a fitted
    ``StandardScaler`` + ``LogisticRegression`` pipeline (sklearn is needed only to fit)."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    coef: np.ndarray  # (D,)
    intercept: np.ndarray  # (1,)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, C: float, max_iter: int, seed: int) -> "LinearLogit":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(features)
        lr = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        lr.fit(scaler.transform(features), labels)
        return cls(
            scaler.mean_.astype(np.float64),
            scaler.scale_.astype(np.float64),
            lr.coef_[0].astype(np.float64),
            lr.intercept_.astype(np.float64),
        )

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(N, D) -> (N,) float64."""
        if features.ndim != 2 or features.shape[1] != self.coef.shape[0]:
            raise ValueError(f"expected features of shape (N, {self.coef.shape[0]}), got {features.shape}")
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept[0]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}


# ---------------------------------------------------------------------------------------------
# Diffusion models / autoencoders from local folders
# ---------------------------------------------------------------------------------------------


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') with H', W' the next multiples, replicate-padded at the
    bottom/right (crop back with ``[..., :H, :W]``)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")  # (B, C, H', W')
    return x


def chunks(n: int, size: int) -> Sequence[slice]:
    """Slices covering range(n) in pieces of at most ``size``."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
