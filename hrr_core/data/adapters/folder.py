"""Generic layouts: a labelled folder tree, or a plain CSV/JSON list of ``path,label``.

Folder tree (kind ``folder``), names matched case-insensitively::

    <root>/[<split>/][<generator>/][<class>/...]{0_real,1_fake,real,fake}/*

``split`` is ``train``, ``val`` (or ``validation``) or ``test``; a tree without split
folders goes to ``test`` (the own-folder inference case). ``generator`` is the first folder
below the split (lower-cased), ``unknown`` when the label folders sit right under it;
deeper folders form ``subset``. ``source`` is the path without extension.

List (kind ``csv``): ``root`` is the CSV (or JSON records) file; ``path`` entries are
relative to its folder (or absolute). Required columns ``path`` and ``label`` (0/1 or
real/fake); optional ``generator`` (default ``unknown``), ``split`` (default ``test``),
``source`` (default: path without extension) and ``id`` (default ``csv/<path>``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from hrr_core.data.manifest import SPLITS, ManifestError
from hrr_core.data.walk import LabelledFolder, find_leaf_dirs

BENCHMARK = "folder"
LAYOUT = "<root>/[<split>/][<generator>/][<class>/]{0_real,1_fake,real,fake}/*"
LABEL_DIRS = {"0_real": 0, "real": 0, "1_fake": 1, "fake": 1}
SPLIT_DIRS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "fake": 1}


def find_folders(root: str, cfg: object = None) -> Iterator[LabelledFolder]:
    for parts, _ in find_leaf_dirs(root, lambda n: n.lower() in LABEL_DIRS, max_depth=5):
        inner = list(parts[:-1])
        group = ""
        if inner and inner[0].lower() in SPLIT_DIRS:
            group = SPLIT_DIRS[inner.pop(0).lower()]
        generator = inner[0].lower() if inner else "unknown"
        subset = "/".join(p.lower() for p in inner[1:])
        yield LabelledFolder("/".join(parts), LABEL_DIRS[parts[-1].lower()], generator, group, subset)


def source_of(folder: LabelledFolder, rel: str) -> str:
    return os.path.splitext(rel)[0]


def read_list(list_path: str) -> tuple[str, Iterator[tuple]]:
    """(image root, candidate rows) of a CSV/JSON list; rows follow CANDIDATE_COLUMNS."""
    p = Path(list_path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: no such list file; for kind 'csv', root must be a CSV or JSON file of path,label"
        )
    table = pd.read_json(p) if p.suffix.lower() == ".json" else pd.read_csv(p, dtype=str, keep_default_na=False)
    table = table.astype(str)
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise ManifestError(f"{p}: missing columns {missing}; a list needs at least path,label")
    return str(p.parent), _list_rows(table, str(p))


def _list_rows(table: pd.DataFrame, name: str) -> Iterator[tuple]:
    cols = list(table.columns)
    for i, values in enumerate(zip(*(table[c] for c in cols))):
        r = dict(zip(cols, values))
        label = _LABEL_WORDS.get(str(r["label"]).strip().lower())
        if label is None:
            raise ManifestError(f"{name}: row {i} label {r['label']!r}; use 0/real or 1/fake")
        path = Path(r["path"]).as_posix()
        split = r.get("split") or "test"
        if split not in SPLITS:
            raise ManifestError(f"{name}: row {i} split {split!r}; use one of {SPLITS}")
        generator = (r.get("generator") or "unknown").lower()
        source = r.get("source") or os.path.splitext(path)[0]
        yield (r.get("id") or f"csv/{path}", path, label, generator, source, split, "csv", "")
