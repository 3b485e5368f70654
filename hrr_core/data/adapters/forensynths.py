"""ForenSynths (CNNDetection, Wang et al. CVPR 2020) layout.

Expected under ``root`` (folder names matched case-insensitively)::

    train/<class>/{0_real,1_fake}/*            20 LSUN classes, ProGAN fakes
    val/<class>/{0_real,1_fake}/*              held-out ProGAN, same classes
    test/<generator>/{0_real,1_fake}/*         e.g. biggan, gaugan, crn, imle, san, ...
    test/<generator>/<class>/{0_real,1_fake}/* progan, stylegan, stylegan2, cyclegan, ...

The released archives' own names are accepted for the three top folders: ``progan_train``,
``progan_val`` and ``CNN_synth_testset``.

Assumptions (benchmarks.md is silent on them):
- generator of train/val rows is ``progan``; of test rows, the generator folder lower-cased
  (``seeingdark`` is SITD, ``whichfaceisreal`` is WFIR). Reals carry the generator whose
  folder holds them (each test set ships its own reals).
- ``subset`` is the object class (``car``) or "" when a test set has no class folders.
- ``source`` is the path without extension: ForenSynths fakes are not derived from its reals
  and its file names (``00001.png``) repeat across class folders, so the bare stem would be a
  false content link between unrelated images of different splits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from hrr_core.data.walk import LabelledFolder, find_leaf_dirs, subdirs

BENCHMARK = "forensynths"
LAYOUT = "<root>/{train,val}/<class>/{0_real,1_fake}/* and <root>/test/<generator>[/<class>]/{0_real,1_fake}/*"
FOUR_CLASSES = ("car", "cat", "chair", "horse")
TWENTY_CLASSES = (
    "airplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
TEST_GENERATORS = (
    "progan",
    "stylegan",
    "stylegan2",
    "biggan",
    "cyclegan",
    "stargan",
    "gaugan",
    "crn",
    "imle",
    "seeingdark",
    "san",
    "deepfake",
    "whichfaceisreal",
)
GROUP_ALIASES = {
    "train": "train",
    "progan_train": "train",
    "val": "val",
    "progan_val": "val",
    "test": "test",
    "cnn_synth_testset": "test",
}
LABEL_DIRS = {"0_real": 0, "1_fake": 1}


def find_folders(root: str, cfg: object = None) -> Iterator[LabelledFolder]:
    """Every ``0_real``/``1_fake`` folder under the train, val and test folders of ``root``."""
    for top in subdirs(root):
        group = GROUP_ALIASES.get(top.lower())
        if group is None:
            continue
        for parts, _ in find_leaf_dirs(os.path.join(root, top), lambda n: n.lower() in LABEL_DIRS, max_depth=3):
            inner = [p.lower() for p in parts[:-1]]
            if group == "test":
                if not inner:
                    continue  # labels straight under test/: no generator to name
                generator, subset = inner[0], "/".join(inner[1:])
            else:
                generator, subset = "progan", "/".join(inner)
            yield LabelledFolder("/".join((top,) + parts), LABEL_DIRS[parts[-1].lower()], generator, group, subset)


def source_of(folder: LabelledFolder, rel: str) -> str:
    return os.path.splitext(rel)[0]
