"""Splits by source photo and the real crops of the embedded benchmark.

A *source* is a photo group (the two views of a stereo pair are one group): every crop of a
source, and every fake made from such a crop, lands in the same split. [G]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hrr_core.data.manifest import SPLITS
from hrr_core.data.transforms import resize_short_side


def assign_splits(
    groups: Sequence[str], fractions: Sequence[float], seed: int, test_only: Sequence[str] = ()
) -> dict[str, str]:
    """Map each distinct group to train/val/test with the given fractions, fixed by ``seed``.

    Groups are sorted before shuffling, so the result depends on the set of groups and the
    seed only. Every split gets at least one group. Groups in ``test_only`` (the style-shift
    collections' photos) go to test and the fractions split the others."""
    forced = sorted(set(groups) & set(test_only))
    unique = sorted(set(groups) - set(forced))
    if len(unique) < len(SPLITS):
        raise ValueError(f"need at least {len(SPLITS)} source photos to split, got {len(unique)}")
    if len(fractions) != len(SPLITS) or any(f <= 0 for f in fractions):
        raise ValueError(f"split fractions must be three positive numbers (train, val, test), got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    total = float(sum(fractions))
    n_val = max(1, round(len(unique) * fractions[1] / total))
    n_test = max(1, round(len(unique) * fractions[2] / total))
    n_train = len(unique) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{len(unique)} source photos are too few for split fractions {list(fractions)}")
    out = {}
    for i, group in enumerate(shuffled):
        out[group] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    out.update({group: "test" for group in forced})
    return out


POOL = "generator"  # the generator pool's name where a split name is expected (photo -> split maps)


def pool_score(group: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the group's name and ``seed``."""
    return int(hashlib.sha256(f"pool:{seed}:{group}".encode()).hexdigest()[:12], 16) / float(16**12)


def generator_pool(groups: Sequence[str], fraction: float, seed: int, exclude: Sequence[str] = ()) -> set[str]:
    """The groups of the generator pool: those whose :func:`pool_score` is below ``fraction``.

    Each group is decided on its own, so adding or removing photos never moves another photo
    in or out of the pool (a photo a shipped generator saw stays out of the detector splits).
    Groups in ``exclude`` (the style-shift collections, which test detectors) are never pooled."""
    if not 0 <= fraction < 1:
        raise ValueError(f"generator_pool must be in [0, 1), got {fraction}")
    banned = set(exclude)
    return {g for g in set(groups) if g not in banned and pool_score(g, seed) < fraction}


def kfold_assignments(groups: Sequence[str], k: int, seed: int) -> list[dict[str, str]]:
    """``k`` maps of each distinct group to train/val/test: the groups, sorted then shuffled by
    ``seed``, are dealt into ``k`` parts; in fold ``f`` part ``f`` is test, part ``f + 1`` (mod k)
    val and the rest train, so every group is a test group of exactly one fold."""
    unique = sorted(set(groups))
    if k < len(SPLITS) or len(unique) < k:
        raise ValueError(f"k-fold needs k >= {len(SPLITS)} and at least k source photos; got k={k}, {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    parts = [[unique[i] for i in order[j::k]] for j in range(k)]
    folds = []
    for f in range(k):
        split = {j: "test" if j == f else "val" if j == (f + 1) % k else "train" for j in range(k)}
        folds.append({g: split[j] for j, part in enumerate(parts) for g in part})
    return folds


def collection_of(package: str) -> str:
    """The source collection of a seed photo: its package name without a version suffix
    (``lomiri-wallpapers-16.04`` and ``-20.04`` are one collection, one style)."""
    return re.sub(r"-\d[\d.]*$", "", str(package))


@dataclass(frozen=True)
class Crop:
    """One real crop: pixels plus where it came from."""

    pixels: np.ndarray  # (S, S, 3) uint8
    photo_id: str
    size: int
    index: int
    short_side: int  # the photo's short side after the downscale the crop was taken from
    top: int
    left: int


def sample_crops(
    photo: np.ndarray,
    photo_id: str,
    sizes: Sequence[int],
    per_size: int,
    short_side_range: tuple[int, int],
    rng: np.random.Generator,
) -> list[Crop]:
    """``per_size`` random square crops of every size in ``sizes`` from ``photo``.

    Before each crop the photo is downscaled (antialiased) so its short side is drawn from
    ``short_side_range``: the crops show content at a natural scale and the downscale erases
    the 8×8 JPEG grid that the source wallpapers carry, a trace fakes would not share. [G]"""
    crops = []
    h, w = photo.shape[:2]
    for size in sizes:
        for k in range(per_size):
            lo, hi = short_side_range
            short = int(rng.integers(max(lo, size), max(hi, size) + 1))
            short = min(short, min(h, w))  # never upsample the photo
            if short < size:
                raise ValueError(f"photo {photo_id} ({w}x{h}) is too small for {size}px crops")
            scaled = resize_short_side(photo, short)
            sh, sw = scaled.shape[:2]
            top, left = int(rng.integers(0, sh - size + 1)), int(rng.integers(0, sw - size + 1))
            crops.append(Crop(scaled[top : top + size, left : left + size].copy(), photo_id, size, k, short, top, left))
    return crops
