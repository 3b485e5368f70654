"""cocoFake (Amoroso et al., arXiv 2304.00500) layout, with our split and 1:1 balance.

Expected under ``root``::

    real/{train2014,val2014}/**/*.jpg     COCO 2014 photos (COCO_val2014_000000000042.jpg)
    fake/{train2014,val2014}/<coco_id>/*  the five Stable Diffusion v1.4 fakes of that photo

``real`` may be a symlink to an existing COCO folder; its split folders may also be named
``train`` / ``val`` / ``validation`` (FiftyOne exports, whose ``data/`` sub-folder is walked).
Fakes stored flat (``fake/val2014/<coco_id>_<caption>.png``) are accepted too.

COCO id: for a fake, its folder name when that is all digits, else the first run of digits
in the file stem; for a real, the last run of digits in the stem. ``source`` is
``coco:<id>`` for both, so a photo and its fakes always land in the same split.

cocoFake has no official split; ours (preset ``cocofake``): train2014 -> train; val2014 split
in halves by a fixed hash of the COCO id (independent of the seed, so the published split
never moves) -> val / test. Balance: per COCO id one fake is kept, chosen by a seeded hash;
ids lacking a real or any fake are dropped; after header reading, pairs that lost a member
to a bad file are dropped, so every split is exactly 1:1.

Generators: fakes ``sd14`` (the released part), reals ``real`` (shared, manifest convention);
``subset`` is the COCO split folder (``train2014`` / ``val2014``) for both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pandas as pd

from hrr_core.data.walk import LabelledFolder, subdirs, unit_hash

BENCHMARK = "cocofake"
LAYOUT = "<root>/real/{train2014,val2014}/*.jpg and <root>/fake/{train2014,val2014}/<coco_id>/*"
GROUP_ALIASES = {
    "train2014": "train2014",
    "train": "train2014",
    "val2014": "val2014",
    "val": "val2014",
    "validation": "val2014",
}
FAKE_GENERATOR = "sd14"
_DIGITS = re.compile(r"\d+")


def find_folders(root: str, cfg: object = None) -> Iterator[LabelledFolder]:
    for kind, label in (("real", 0), ("fake", 1)):
        for name in subdirs(os.path.join(root, kind)):
            group = GROUP_ALIASES.get(name.lower())
            if group is not None:
                yield LabelledFolder(f"{kind}/{name}", label, "real" if label == 0 else FAKE_GENERATOR, group, group)


def coco_id(rel: str, label: int) -> str:
    """The COCO image id of a file (as a plain integer string, leading zeros dropped)."""
    parent = os.path.basename(os.path.dirname(rel))
    if label == 1 and parent.isdigit():
        return str(int(parent))
    runs = _DIGITS.findall(os.path.splitext(os.path.basename(rel))[0])
    if not runs:
        return ""
    return str(int(runs[0] if label == 1 else runs[-1]))


def source_of(folder: LabelledFolder, rel: str) -> str:
    cid = coco_id(rel, folder.label)
    return f"coco:{cid}" if cid else os.path.splitext(rel)[0]


def select(df: pd.DataFrame, cfg: object) -> pd.DataFrame:
    """Before header reading: one seeded fake per COCO id, only ids with a real and a fake."""
    seed = getattr(cfg, "seed", 0)
    fakes = df[df["label"] == 1]
    pick = fakes["id"].map(lambda i: unit_hash(seed, "cocofake-pick", i))
    fakes = fakes.assign(_k=pick).sort_values(["source", "_k", "id"]).drop_duplicates("source").drop(columns="_k")
    reals = df[df["label"] == 0].sort_values(["source", "id"]).drop_duplicates("source")
    both = set(reals["source"]) & set(fakes["source"])
    out = pd.concat([reals[reals["source"].isin(both)], fakes[fakes["source"].isin(both)]])
    return out.reset_index(drop=True)


def finish(df: pd.DataFrame, cfg: object) -> pd.DataFrame:
    """After header reading: drop pairs that lost their real or fake to a bad file."""
    labels = df.groupby("source")["label"].nunique()
    return df[df["source"].isin(labels[labels == 2].index)].reset_index(drop=True)
