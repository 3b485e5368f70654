"""Export one split of a benchmark as ``<dest>/<generator>/{0_real,1_fake}/``, the folder layout
other detectors' code reads (ForenSynths style).

    python -m hrr_core.benchmark.export --manifest data/embedded/manifest.csv \\
        --dest exports/embedded --split test [--mode hardlink|symlink|copy] [--overwrite]

The view is built in a temporary folder beside ``dest`` and renamed into place, so ``dest`` is
either the complete new view or untouched. A non-empty ``dest`` is only replaced with
``--overwrite``. Hard links (the default) cost no space but must stay on the benchmark's
filesystem (copies are made where they cannot); symlinks break if the benchmark moves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from hrr_core.benchmark.build import LINK_MODES, REAL, export_folder_view, families_of
from hrr_core.data.manifest import absolute_paths, read_manifest
from hrr_core.io import atomic_dir


class ExportError(ValueError):
    """An export that cannot run; the message says why and what to do."""


def _load(manifest_path: Path) -> pd.DataFrame:
    if not manifest_path.is_file():
        raise ExportError(
            f"manifest {manifest_path} does not exist; build the benchmark first: dvc repro prepare "
            "(or pass --manifest with the path of another manifest.csv)"
        )
    return read_manifest(manifest_path)


def check_split(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split``, after checking it has shared reals, fakes and every file."""
    part = manifest[manifest["split"] == split]
    if len(part) == 0:
        raise ExportError(f"no images in split {split!r}; splits in the manifest: {sorted(set(manifest['split']))}")
    if not families_of(part):
        raise ExportError(f"split {split!r} has no generated images (label 1): nothing to export")
    if not ((part["label"] == 0) & (part["generator"] == REAL)).any():
        raise ExportError(
            f"split {split!r} has no reals with generator {REAL!r}; this export needs reals shared by every generator"
        )
    missing = [p for p in absolute_paths(part) if not Path(p).is_file()]
    if missing:
        raise ExportError(
            f"{len(missing)} image(s) of split {split!r} are missing, e.g. {missing[0]}; "
            "restore the benchmark (dvc pull or dvc repro prepare)"
        )
    return part


def _check_dest(dest: Path, overwrite: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"--dest {dest} exists and is not a folder; choose another path")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise ExportError(
            f"--dest {dest} exists and is not empty; pass --overwrite to replace it, or choose another path"
        )


def export_view(
    manifest: pd.DataFrame, dest: str | Path, split: str = "test", mode: str = "hardlink", overwrite: bool = False
) -> dict:
    """Write the folder view of ``split`` to ``dest`` atomically (see the module docstring);
    returns counts: generators, real and fake files per generator, total files."""
    if mode not in LINK_MODES:
        raise ExportError(f"--mode must be one of {', '.join(LINK_MODES)}, got {mode!r}")
    dest = Path(dest)
    part = check_split(manifest, split)
    _check_dest(dest, overwrite)
    with atomic_dir(dest) as tmp:  # an existing dest is empty, or replaced with --overwrite
        export_folder_view(part, tmp, split, mode)
    gens = list(families_of(part))
    n_real = int(((part["label"] == 0) & (part["generator"] == REAL)).sum())
    n_fake = {g: int(((part["label"] == 1) & (part["generator"] == g)).sum()) for g in gens}
    return {
        "dest": str(dest),
        "split": split,
        "mode": mode,
        "generators": gens,
        "real_per_generator": n_real,
        "fake": n_fake,
        "files": n_real * len(gens) + sum(n_fake.values()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hrr_core.benchmark.export", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--manifest", default="data/embedded/manifest.csv", help="benchmark manifest (default: %(default)s)"
    )
    ap.add_argument("--dest", required=True, help="output folder; gets <generator>/{0_real,1_fake}/")
    ap.add_argument("--split", default="test", help="train | val | test (default: %(default)s)")
    ap.add_argument(
        "--mode", default="hardlink", choices=LINK_MODES, help="how files are placed (default: %(default)s)"
    )
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --dest")
    args = ap.parse_args(argv)
    try:
        out = export_view(_load(Path(args.manifest)), args.dest, args.split, args.mode, args.overwrite)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{out['dest']}: split {out['split']}, {len(out['generators'])} generators ({', '.join(out['generators'])}), "
        f"{out['real_per_generator']} reals each, {out['files']} files ({out['mode']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
