"""The manifest: one row per image, the single description of every dataset in the project.

Columns (fake = positive class):
    id         unique string id of the image
    path       file path, relative to the manifest's ``root`` (or absolute)
    label      0 = real, 1 = generated
    generator  generator family of a fake; for a real image, the generator whose test set it
               belongs to, or "real" when it is shared by every generator
    source     id of the source photo (content) the image derives from; splits never share one
    split      train | val | test
    width, height   pixel size as stored
    format     png | jpeg | webp | ... (lower case, as decoded)
    sha256     hex digest of the file's bytes ("" when checksums were skipped)
Extra columns are kept (e.g. ``benchmark``, ``size``, ``crop``). One family of them has a
meaning the audits rely on:
    mask_top, mask_left, mask_h, mask_w
               the inpainted rectangle of a fake of an inpainting family (generator name
               containing "inpaint"), in pixels of the stored image: rows mask_top ..
               mask_top + mask_h - 1, columns mask_left .. mask_left + mask_w - 1; every pixel
               outside it must equal the matched real's. Empty for every other row (the
               columns are absent when no family inpaints). :func:`mask_boxes` reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from hrr_core.io import atomic_write_bytes

MANIFEST_COLUMNS = ("id", "path", "label", "generator", "source", "split", "width", "height", "format", "sha256")
SPLITS = ("train", "val", "test")
MASK_COLUMNS = ("mask_top", "mask_left", "mask_h", "mask_w")
_DTYPES = {"id": str, "path": str, "generator": str, "source": str, "split": str, "format": str, "sha256": str}


class ManifestError(ValueError):
    """A manifest that breaks the schema; the message says which column or row and why."""


def validate_manifest(df: pd.DataFrame, name: str = "manifest") -> pd.DataFrame:
    """Check columns, labels, splits and id uniqueness; return ``df`` with canonical dtypes."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{name}: missing columns {missing}; a manifest needs {list(MANIFEST_COLUMNS)}")
    df = df.copy()
    for col, tp in _DTYPES.items():
        df[col] = df[col].fillna("").astype(tp)
    bad_label = ~df["label"].isin([0, 1])
    if bad_label.any():
        raise ManifestError(
            f"{name}: label must be 0 (real) or 1 (generated); row {int(bad_label.idxmax())} has "
            f"{df['label'][bad_label].iloc[0]!r}"
        )
    df["label"] = df["label"].astype(int)
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        raise ManifestError(
            f"{name}: split must be one of {SPLITS}; row {int(bad_split.idxmax())} has "
            f"{df['split'][bad_split].iloc[0]!r}"
        )
    dup = df["id"].duplicated()
    if dup.any():
        raise ManifestError(f"{name}: ids must be unique; {df['id'][dup].iloc[0]!r} appears more than once")
    for col in ("width", "height"):
        df[col] = pd.to_numeric(df[col], errors="raise").astype(int)
    return df


def check_no_leakage(df: pd.DataFrame, name: str = "manifest") -> None:
    """Raise unless every source photo belongs to exactly one split."""
    per_source = df.groupby("source")["split"].nunique()
    leaked = per_source[per_source > 1]
    if len(leaked):
        src = leaked.index[0]
        splits = sorted(df.loc[df["source"] == src, "split"].unique())
        raise ManifestError(
            f"{name}: source {src!r} appears in splits {splits}; a source photo must sit in one split only"
        )


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write atomically as CSV (sorted by id, so two builds compare byte for byte)."""
    df = validate_manifest(df).sort_values("id", kind="stable").reset_index(drop=True)
    cols = list(MANIFEST_COLUMNS) + [c for c in df.columns if c not in MANIFEST_COLUMNS]
    return atomic_write_bytes(path, df[cols].to_csv(index=False, lineterminator="\n").encode())


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a manifest CSV; a ``root`` attribute holds its folder for relative paths."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"manifest {path} does not exist; build it first (dvc repro prepare) or fix the path in params.yaml"
        )
    df = validate_manifest(
        pd.read_csv(path, dtype={"id": str, "source": str, "sha256": str}, keep_default_na=False), str(path)
    )
    df.attrs["root"] = str(path.parent)
    return df


def absolute_paths(df: pd.DataFrame, root: str | os.PathLike | None = None) -> pd.Series:
    """Each row's file path, relative paths taken from ``root`` (default: the manifest's own)."""
    base = Path(root or df.attrs.get("root", "."))
    return df["path"].map(lambda p: str(p if os.path.isabs(p) else base / p))


def mask_boxes(df: pd.DataFrame, name: str = "manifest") -> np.ndarray:
    """(N, 4) int64 (top, left, h, w) of each row's inpainting mask (:data:`MASK_COLUMNS`), -1
    where the row has none (no mask columns, or all four empty). A row with some of the four
    but not all, a non-integer, an empty box or one reaching outside ``width`` x ``height``
    raises :class:`ManifestError` naming the row."""
    n = len(df)
    if not any(c in df.columns for c in MASK_COLUMNS):
        return np.full((n, 4), -1, np.int64)
    missing = [c for c in MASK_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{name}: mask columns {missing} missing; a mask needs all of {list(MASK_COLUMNS)}")
    raw = df[list(MASK_COLUMNS)].replace("", np.nan)
    vals = raw.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)  # (N, 4)
    given = raw.notna().to_numpy()  # (N, 4)
    has = given.any(1)
    bad = (given.any(1) & ~given.all(1)) | (has & np.isnan(vals).any(1))
    with np.errstate(invalid="ignore"):
        bad |= has & ~np.isnan(vals).any(1) & (vals != np.round(vals)).any(1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ManifestError(
            f"{name}: row {i} ({df['id'].iloc[i] if 'id' in df else i}) has an incomplete or non-integer mask "
            f"{dict(zip(MASK_COLUMNS, raw.iloc[i].tolist()))}; give all of {list(MASK_COLUMNS)} in pixels or none"
        )
    out = np.where(has[:, None], np.nan_to_num(vals, nan=-1), -1).astype(np.int64)
    top, left, h, w = out.T
    width = pd.to_numeric(df["width"]).to_numpy() if "width" in df else np.full(n, np.iinfo(np.int64).max)
    height = pd.to_numeric(df["height"]).to_numpy() if "height" in df else np.full(n, np.iinfo(np.int64).max)
    outside = has & ((top < 0) | (left < 0) | (h < 1) | (w < 1) | (top + h > height) | (left + w > width))
    if outside.any():
        i = int(np.argmax(outside))
        raise ManifestError(
            f"{name}: row {i} ({df['id'].iloc[i] if 'id' in df else i}) has mask (top, left, h, w) "
            f"{tuple(int(v) for v in out[i])} outside its {width[i]}x{height[i]} image or empty"
        )
    return out
