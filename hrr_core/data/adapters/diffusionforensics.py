"""DiffusionForensics (DIRE, Wang et al. ICCV 2023) layout.

Expected under ``root``::

    <tree>/{train,val,test}/<dataset>/{real,<generator>}/*

with ``tree`` one of ``images`` (default: the images themselves), ``recons`` (ADM
reconstructions) or ``dire`` (DIRE maps); ``dataset`` is ``lsun_bedroom``, ``imagenet`` or
``celebahq``; generators are e.g. ``adm ddpm iddpm pndm ldm sdv1_new sdv2 vqdiffusion if
dalle2 midjourney``. When ``root`` has no ``<tree>`` folder but has ``train``/``val``/``test``
itself, ``root`` is taken to be the tree.

Decision on the shared real folder: one row per real file, with generator ``"real"`` (the
manifest convention for a real shared by every generator) and ``subset`` = the dataset.
Per-generator metrics pair the fakes of (subset, generator) with the reals of (subset,
"real"). Generator filters (presets, ``train_generators``) therefore select fake folders
and always keep the real folder of the same split and dataset.

``source`` is the path without extension (fakes are unconditional or prompt-only, not derived
from the reals; file names may repeat across folders).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from hrr_core.data.walk import LabelledFolder, subdirs

BENCHMARK = "diffusionforensics"
LAYOUT = "<root>/<tree: images|recons|dire>/{train,val,test}/<dataset>/{real,<generator>}/*"
TREES = ("images", "recons", "dire")
GROUPS = ("train", "val", "test")


def find_folders(root: str, cfg: object = None) -> Iterator[LabelledFolder]:
    tree = getattr(cfg, "tree", "images")
    base_rel = tree if os.path.isdir(os.path.join(root, tree)) else ""
    base = os.path.join(root, base_rel)
    for group in subdirs(base):
        if group.lower() not in GROUPS:
            continue
        for dataset in subdirs(os.path.join(base, group)):
            for gen in subdirs(os.path.join(base, group, dataset)):
                real = gen.lower() == "real"
                rel = "/".join(p for p in (base_rel, group, dataset, gen) if p)
                yield LabelledFolder(
                    rel, 0 if real else 1, "real" if real else gen.lower(), group.lower(), dataset.lower()
                )


def source_of(folder: LabelledFolder, rel: str) -> str:
    return os.path.splitext(rel)[0]
