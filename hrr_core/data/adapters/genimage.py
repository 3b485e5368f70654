"""GenImage (Zhu et al., NeurIPS 2023 D&B) layout.

Expected under ``root``: one folder per generator, optionally inside the wrapper folders of
the release (``stable_diffusion_v_1_4/imagenet_ai_0419_sdv4``)::

    [<wrapper>/]<generator folder>/{train,val}/{ai,nature}/*

Generator names are canonicalised from the folder name's last ``_`` token
(:data:`GENERATOR_NAMES`: ``imagenet_ai_0419_sdv4`` -> ``sd14``); unknown folders keep their
lower-cased name. Reals (``nature``) carry the generator of the folder holding them.

``source``: a real's file stem is its ImageNet id (``n01440764_10026``,
``ILSVRC2012_val_00000001``), shared by the same photo in several generator folders, so it
is used as is (prefixed ``imagenet:``); a fake's source is its path without extension.
GenImage has no validation folder: the presets hold out a fixed fraction of the training
sources (by hash) as ``val``; the generators' ``val`` folders are the test sets.
Corrupt and zero-byte files in the archives are reported in bad_files.csv and skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from hrr_core.data.walk import LabelledFolder, subdirs

BENCHMARK = "genimage"
LAYOUT = "<root>/[<wrapper>/]<generator folder>/{train,val}/{ai,nature}/*"
GENERATOR_NAMES = {
    "midjourney": "midjourney",
    "sdv4": "sd14",
    "sd14": "sd14",
    "sdv5": "sd15",
    "sd15": "sd15",
    "adm": "adm",
    "glide": "glide",
    "wukong": "wukong",
    "vqdm": "vqdm",
    "biggan": "biggan",
}
GENERATORS = ("midjourney", "sd14", "sd15", "adm", "glide", "wukong", "vqdm", "biggan")
LABEL_DIRS = {"nature": 0, "ai": 1}


def canonical_generator(folder_name: str) -> str:
    name = folder_name.lower()
    return GENERATOR_NAMES.get(name.rsplit("_", 1)[-1], GENERATOR_NAMES.get(name, name))


def _label_dirs(gen_path: str) -> list[tuple[str, str]]:
    """(group folder, label folder) pairs of a generator folder; empty if it is not one."""
    return [
        (g, lab)
        for g in subdirs(gen_path)
        if g.lower() in ("train", "val")
        for lab in subdirs(os.path.join(gen_path, g))
        if lab.lower() in LABEL_DIRS
    ]


def find_folders(root: str, cfg: object = None) -> Iterator[LabelledFolder]:
    candidates = [(name,) for name in subdirs(root)]
    candidates += [(name, inner) for (name,) in list(candidates) for inner in subdirs(os.path.join(root, name))]
    for parts in candidates:
        pairs = _label_dirs(os.path.join(root, *parts))
        generator = canonical_generator(parts[-1])
        for group, lab in pairs:
            rel = "/".join(parts + (group, lab))
            yield LabelledFolder(rel, LABEL_DIRS[lab.lower()], generator, group.lower(), parts[-1])


def source_of(folder: LabelledFolder, rel: str) -> str:
    if folder.label == 0:
        return "imagenet:" + os.path.splitext(os.path.basename(rel))[0]
    return os.path.splitext(rel)[0]
