"""Per-generator image statistics of a benchmark, measured on the stored files (after the codec).

What a fake family changes in colour, spectrum and sharpness, next to the reals it is tested
against: mean intensity, HSV saturation, the share of spectral power above half the Nyquist
frequency, the variance of the Laplacian, and, for content-matched fakes, the mean absolute
difference to the real crop each fake was made from. The dataset card and
``metrics/prepare.json`` report the mean and standard deviation over images of each. [G]

A fake is matched to its real when its id is the real's id plus ``-<generator>`` (the embedded
build's naming, :func:`hrr_core.benchmark.build.write_fakes`); other manifests get no match.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from hrr_core.data.manifest import absolute_paths
from hrr_core.io import image_to_array, load_image

HF_CUTOFF = 0.25  # cycles per pixel: half the Nyquist frequency (0.5)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights; they sum to 1
STATS = ("intensity", "saturation", "hf_fraction", "laplacian_var")
LABELS = {
    "intensity": "intensity",
    "saturation": "saturation",
    "hf_fraction": "HF power share",
    "laplacian_var": "Laplacian var",
    "matched_mad": "MAD vs real",
}


def _check(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {a.shape} dtype {a.dtype}")
    return a


def luma(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float64 luma in 0..255."""
    return _check(img).astype(np.float64) @ LUMA


def intensity(img: np.ndarray) -> float:
    """Mean luma in [0, 1]: 0 for black, 1 for white, 0.299 for pure red."""
    return float(luma(img).mean() / 255.0)


def saturation(img: np.ndarray) -> float:
    """Mean HSV saturation (max - min) / max over pixels, 0 where max is 0; grey images give 0."""
    a = _check(img)
    hi = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2]).astype(np.float64)  # (H, W)
    lo = np.minimum(np.minimum(a[..., 0], a[..., 1]), a[..., 2]).astype(np.float64)  # (H, W)
    return float(np.where(hi > 0, (hi - lo) / np.maximum(hi, 1.0), 0.0).mean())


def _periodic_hann(n: int) -> np.ndarray:
    """A periodic Hann window: its DFT is non-zero at bins 0 and ±1 only, so windowing moves
    a frequency by at most one bin."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def hf_fraction(img: np.ndarray, cutoff: float = HF_CUTOFF) -> float:
    """Share of the luma spectrum's power (mean removed, periodic-Hann windowed) at radial
    frequency above ``cutoff`` cycles per pixel; 0 for a constant image. A checkerboard gives
    1, a sinusoid of period 8 px gives 0."""
    g = luma(img)
    h, w = g.shape
    x = (g - g.mean()) * np.outer(_periodic_hann(h), _periodic_hann(w))  # (H, W)
    power = np.abs(np.fft.fft2(x)) ** 2  # (H, W)
    total = power.sum()
    if total <= 1e-12 * h * w:
        return 0.0
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])  # (H, W) cycles/pixel
    return float(power[r > cutoff].sum() / total)


def laplacian_var(img: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of luma (0..255 scale) over interior pixels: 0 for
    a constant image or a linear ramp; 1020² for a 0/255 checkerboard."""
    g = luma(img)
    if min(g.shape) < 3:
        raise ValueError(f"need at least 3x3 pixels for the Laplacian, got {g.shape}")
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]  # (H-2, W-2)
    return float(lap.var())


def matched_mad(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean absolute pixel difference (0..255) between a fake and the real it was made from."""
    a, b = _check(real), _check(fake)
    if a.shape != b.shape:
        raise ValueError(f"matched real and fake differ in shape: {a.shape} vs {b.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def image_stats(img: np.ndarray) -> dict[str, float]:
    """Every per-image statistic of :data:`STATS` for one (H, W, 3) uint8 image."""
    return {
        "intensity": intensity(img),
        "saturation": saturation(img),
        "hf_fraction": hf_fraction(img),
        "laplacian_var": laplacian_var(img),
    }


def _load(path: str) -> np.ndarray:
    return image_to_array(load_image(path))


def per_image_stats(manifest: pd.DataFrame, load: Callable[[str], np.ndarray] = _load) -> pd.DataFrame:
    """One row per manifest row: id, generator, label, size, the :data:`STATS` and
    ``matched_mad`` (NaN for reals and for fakes without a matched real in ``manifest``)."""
    order = np.argsort(manifest["label"].to_numpy(), kind="stable")  # reals first, to match fakes
    df = manifest.iloc[order]
    fakes = df[df["label"] == 1]
    wanted = {i.removesuffix(f"-{g}") for i, g in zip(fakes["id"].astype(str), fakes["generator"].astype(str))}
    reals: dict[str, np.ndarray] = {}  # only reals some fake was made from are kept in memory
    rows = []
    for rid, gen, label, path in zip(
        df["id"].astype(str), df["generator"].astype(str), df["label"].astype(int), absolute_paths(df)
    ):
        img = load(path)
        out = {
            "id": rid,
            "generator": gen,
            "label": int(label),
            "size": f"{img.shape[1]}x{img.shape[0]}",
            **image_stats(img),
            "matched_mad": np.nan,
        }
        if label == 0 and rid in wanted:
            reals[rid] = img
        else:
            real = reals.get(rid.removesuffix(f"-{gen}"))
            if real is not None and real.shape == img.shape:
                out["matched_mad"] = matched_mad(real, img)
        rows.append(out)
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series) -> dict | None:
    v = values.dropna().to_numpy(dtype=np.float64)
    if len(v) == 0:
        return None
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4)}


def summarise(per_image: pd.DataFrame) -> dict[str, dict]:
    """Per generator (reals under their own generator name, e.g. ``real``, listed first):
    image count, count per stored size, and mean/std of every statistic (``matched_mad`` None
    when no fake of the generator has a matched real)."""
    out = {}
    groups = dict(list(per_image.groupby("generator", sort=True)))
    for gen in sorted(groups, key=lambda g: (g != "real", g)):
        part = groups[gen]
        sizes = part["size"].value_counts()
        entry = {"n": int(len(part)), "sizes": {k: int(sizes[k]) for k in sorted(sizes.index, key=_size_key)}}
        for col in (*STATS, "matched_mad"):
            entry[col] = _mean_std(part[col])
        out[str(gen)] = entry
    return out


def _size_key(size: str) -> tuple[int, int]:
    w, h = size.split("x")
    return int(w), int(h)


def generator_image_stats(
    manifest: pd.DataFrame, split: str | None = None, load: Callable[[str], np.ndarray] = _load
) -> dict[str, dict]:
    """:func:`summarise` of :func:`per_image_stats` over one split (``None``: every split)."""
    part = manifest if split is None else manifest[manifest["split"] == split]
    if len(part) == 0:
        raise ValueError(f"no images in split {split!r}; splits present: {sorted(set(manifest['split']))}")
    part = part.copy()
    part.attrs = dict(manifest.attrs)  # keep the root that relative paths are resolved from
    return summarise(per_image_stats(part, load))


def _cell(stat: dict | None, digits: int) -> str:
    return "–" if stat is None else f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def stats_markdown(stats: dict[str, dict], scope: str = "all splits") -> list[str]:
    """Dataset-card lines: one table row per generator, mean ± std over images."""
    digits = {"intensity": 3, "saturation": 3, "hf_fraction": 4, "laplacian_var": 0, "matched_mad": 2}
    cols = (*STATS, "matched_mad")
    lines = [
        f"Measured on the stored files ({scope}), mean ± std over images. Intensity: mean BT.601 luma "
        "in [0, 1]; saturation: mean HSV saturation; HF power share: share of the windowed luma "
        f"spectrum's power above {HF_CUTOFF} cycles/pixel (half Nyquist); Laplacian var: variance of "
        "the 4-neighbour Laplacian of luma (0..255), a sharpness measure; MAD vs real: mean absolute "
        "difference (0..255) to the real crop the fake was made from (`ldm_sample` is unconditional, "
        "so its MAD only measures content change).",
        "",
        "| generator | images | sizes | " + " | ".join(LABELS[c] for c in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for gen, entry in stats.items():
        sizes = ", ".join(f"{k}: {v}" for k, v in entry["sizes"].items())
        cells = " | ".join(_cell(entry[c], digits[c]) for c in cols)
        lines.append(f"| {gen} | {entry['n']} | {sizes} | {cells} |")
    return lines
