"""Adapters: each real benchmark's documented on-disk layout turned into the project manifest.

``build_manifest(cfg)`` runs six steps, none of which holds the file list as Python objects:

1. discover  the adapter lists its labelled folders (directories only; image folders are
             never listed here) -> :class:`~hrr_core.data.walk.LabelledFolder`
2. assign    the preset (``presets.yaml``, loaded into :data:`PRESETS`) and the generator overrides map each
             folder to train / val / test, optionally to a hash range of its sources
3. walk      every image of the selected folders is streamed into a candidates CSV (chunks)
4. sample    the adapter's ``select`` hook (cocoFake: one fake per real), then ``max_per_class``
5. probe     header (and sha256) of each kept file, streamed into a rows CSV; empty, corrupt
             and unreadable files go to the bad-file list instead
6. finish    read back (columnar), adapter's ``finish`` hook, validate, leakage check, sort

Row ids are ``<benchmark>/<path relative to root>``: stable across runs and machines.
Paths in the manifest are relative to ``root`` (for kind ``csv``: to the list's folder);
``df.attrs["root"]`` holds that folder, so ``absolute_paths(df, df.attrs["root"])`` works.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from hrr_core.confutil import ConfigError
from hrr_core.data import walk
from hrr_core.data.adapters import cocofake, diffusionforensics, folder, forensynths, genimage
from hrr_core.data.manifest import (
    MANIFEST_COLUMNS,
    ManifestError,
    check_no_leakage,
    read_manifest,
    validate_manifest,
)
from hrr_core.io import atomic_write_bytes
from hrr_core.schema.benchmark import DEFAULT_PRESETS, KINDS, PRESETS, RealBenchmarkConfig  # noqa: F401 (the schema's)

ADAPTERS = {
    "forensynths": forensynths,
    "diffusionforensics": diffusionforensics,
    "genimage": genimage,
    "cocofake": cocofake,
    "folder": folder,
}
CANDIDATE_COLUMNS = ("id", "path", "label", "generator", "source", "split", "benchmark", "subset")
EXTRA_COLUMNS = ("benchmark", "subset")
ROW_COLUMNS = MANIFEST_COLUMNS + EXTRA_COLUMNS

# Which discovered folders become train / val / test: data in presets.yaml (see hrr_core.schema.presets).


def split_rules(cfg: RealBenchmarkConfig) -> dict[str, dict[str, Any]]:
    """The preset's rules with the generator overrides applied."""
    rules = copy.deepcopy(PRESETS[cfg.preset_name]["splits"])
    for splits, gens in ((("train", "val"), cfg.train_generators), (("test",), cfg.test_generators)):
        for split in splits:
            if gens is not None and split in rules:
                rules[split]["generator"] = [g.lower() for g in gens]
    return rules


def _shared_real(f: walk.LabelledFolder) -> bool:
    return f.label == 0 and f.generator == "real"


def _matches(f: walk.LabelledFolder, rule: dict[str, Any]) -> bool:
    return (
        f.group in rule.get("group", [f.group])
        and f.subset in rule.get("subset", [f.subset])
        and (_shared_real(f) or f.generator in rule.get("generator", [f.generator]))
    )


def assign_folders(
    folders: list[walk.LabelledFolder], rules: dict[str, dict[str, Any]]
) -> list[tuple[walk.LabelledFolder, list[tuple[str, float, float]]]]:
    """Each selected folder with its (split, lo, hi) targets. A shared real folder is kept for
    a split only when a fake folder of the same group and subset was selected for it."""
    fake_keys = {
        s: {(f.group, f.subset) for f in folders if not _shared_real(f) and _matches(f, r)} for s, r in rules.items()
    }
    out = []
    for f in folders:
        targets = []
        for split, rule in rules.items():
            if _matches(f, rule) and (
                not _shared_real(f) or "generator" not in rule or (f.group, f.subset) in fake_keys[split]
            ):
                lo, hi = rule.get("source_range", (0.0, 1.0))
                targets.append((split, float(lo), float(hi)))
        targets.sort(key=lambda t: t[1])
        for (s1, _, hi1), (s2, lo2, _) in zip(targets, targets[1:]):
            if lo2 < hi1:
                raise ConfigError(
                    "preset",
                    f"folder {f.rel!r} is selected for both {s1} and {s2}; give the splits disjoint groups or source "
                    "ranges",
                )
        if targets:
            out.append((f, targets))
    return out


def _pick_split(targets: list[tuple[str, float, float]], source: str) -> str | None:
    if len(targets) == 1 and targets[0][1:] == (0.0, 1.0):
        return targets[0][0]
    h = walk.unit_hash("split", source)
    return next((s for s, lo, hi in targets if lo <= h < hi), None)


def _write_candidates(cfg: RealBenchmarkConfig, out_path: Path) -> tuple[str, dict[str, int]]:
    """Steps 1-3; returns the image root and discovery counts."""
    if cfg.source == "csv":
        image_root, rows = folder.read_list(cfg.root)
        allowed = {"train": cfg.train_generators, "val": cfg.train_generators, "test": cfg.test_generators}
        with walk.ChunkedCsvWriter(out_path, CANDIDATE_COLUMNS) as w:
            for row in rows:
                if _keep_listed(row, allowed[row[5]]):
                    w.write(row)
        return image_root, {"rows_listed": w.rows_written}
    root = os.fspath(cfg.root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"{root}: benchmark root does not exist; set real_benchmark.root in params.yaml (or dvc exp run -S "
            f"real_benchmark.root=...) to the folder holding {ADAPTERS[cfg.source].LAYOUT}"
        )
    mod = ADAPTERS[cfg.source]
    found = list(mod.find_folders(root, cfg))
    if not found:
        raise ManifestError(
            f"{root}: no labelled folders found for kind {cfg.source!r}; expected {mod.LAYOUT} (see docs/benchmarks.md)"
        )
    assigned = assign_folders(found, split_rules(cfg))
    if not assigned:
        seen = sorted({(f.group, f.subset, f.generator) for f in found})[:20]
        raise ManifestError(
            f"{root}: preset {cfg.preset_name!r} selected none of the {len(found)} folders found (group, subset, "
            f"generator: {seen}); check the preset and the generator overrides"
        )
    with walk.ChunkedCsvWriter(out_path, CANDIDATE_COLUMNS) as w:
        for f, targets in assigned:
            for path in walk.iter_image_files(os.path.join(root, f.rel)):
                rel = walk.rel_posix(path, root)
                source = mod.source_of(f, rel)
                split = _pick_split(targets, source)
                if split is not None:
                    w.write(
                        (f"{mod.BENCHMARK}/{rel}", rel, f.label, f.generator, source, split, mod.BENCHMARK, f.subset)
                    )
    return root, {"folders_found": len(found), "folders_selected": len(assigned)}


def _keep_listed(row: tuple, allowed: tuple[str, ...] | None) -> bool:
    label, generator = row[2], row[3]
    return allowed is None or (label == 0 and generator == "real") or generator in {g.lower() for g in allowed}


def _read_csv(path: Path, int_cols: tuple[str, ...]) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in int_cols:
        df[col] = df[col].astype(int)
    return df


def subsample(df: pd.DataFrame, max_per_class: int, seed: int) -> pd.DataFrame:
    """At most ``max_per_class`` rows per (split, subset, generator, label), chosen by a seeded
    hash of the source (so paired reals and fakes are kept or dropped together)."""
    key = df["source"].map(lambda s: walk.unit_hash(seed, "subsample", s))
    df = df.assign(_k=key).sort_values(["_k", "id"], kind="stable")
    return df.groupby(["split", "subset", "generator", "label"], sort=False).head(max_per_class).drop(columns="_k")


def _probe_all(cand: pd.DataFrame, image_root: str, cfg: RealBenchmarkConfig, rows_path: Path, bad_path: Path) -> None:
    """Step 5: header of every candidate, streamed out; bad files listed, never raised."""
    with (
        walk.ChunkedCsvWriter(rows_path, ROW_COLUMNS) as out,
        walk.ChunkedCsvWriter(bad_path, ("path", "reason")) as bad,
    ):
        for r in cand.itertuples(index=False):
            try:
                h = walk.probe_image(os.path.join(image_root, r.path), cfg.checksums, cfg.verify)
            except walk.BadFile as exc:
                bad.write((r.path, exc.reason))
                continue
            out.write(
                (
                    r.id,
                    r.path,
                    r.label,
                    r.generator,
                    r.source,
                    r.split,
                    h.width,
                    h.height,
                    h.format,
                    h.sha256,
                    r.benchmark,
                    r.subset,
                )
            )


def build_manifest(cfg: RealBenchmarkConfig) -> pd.DataFrame:
    """The adapter's manifest of ``cfg``'s benchmark (steps 1-6 above; ``cfg.root`` as given,
    relative to the working directory), sorted by id. ``attrs``: ``root`` (folder the paths are
    relative to), ``bad_files`` (sorted list of (path, reason)) and ``stats`` (counts, seconds).
    The manifest the stages read (written, harmonised) comes from
    :func:`hrr_core.benchmark.external.build_stage_manifest`, which calls this."""
    if cfg.is_embedded:
        raise ValueError("real_benchmark.source is embedded: no adapter to walk (hrr_core.benchmark.build builds it)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hrr-manifest-") as tmp:
        tmp_dir = Path(tmp)
        image_root, stats = _write_candidates(cfg, tmp_dir / "candidates.csv")
        cand = _read_csv(tmp_dir / "candidates.csv", ("label",)).drop_duplicates("id")
        stats["candidates"] = len(cand)
        t1 = time.perf_counter()
        hooks = ADAPTERS.get(cfg.source)
        if hasattr(hooks, "select"):
            cand = hooks.select(cand, cfg)
        if cfg.max_per_class is not None:
            cand = subsample(cand, cfg.max_per_class, cfg.seed)
        _probe_all(cand, image_root, cfg, tmp_dir / "rows.csv", tmp_dir / "bad.csv")
        df = _read_csv(tmp_dir / "rows.csv", ("label", "width", "height"))
        bad_df = pd.read_csv(tmp_dir / "bad.csv", dtype=str, keep_default_na=False).sort_values("path")
        bad = [(p, r) for p, r in zip(bad_df["path"], bad_df["reason"])]
    if hasattr(hooks, "finish"):
        df = hooks.finish(df, cfg)
    if df.empty:
        hint = f"; first bad file: {bad[0][0]} ({bad[0][1]})" if bad else ""
        raise ManifestError(f"{cfg.root}: no usable images for preset {cfg.preset_name!r}{hint}")
    df = validate_manifest(df, f"{cfg.source} manifest").sort_values("id", kind="stable").reset_index(drop=True)
    if cfg.check_leakage:
        check_no_leakage(df, f"{cfg.source} manifest (set check_leakage: false to keep it anyway)")
    stats.update(
        probed=len(cand),
        rows=len(df),
        bad_files=len(bad),
        walk_s=round(t1 - t0, 3),
        probe_s=round(time.perf_counter() - t1, 3),
        counts={f"{s}/{lab}": int(n) for (s, lab), n in df.groupby(["split", "label"]).size().items()},
    )
    df.attrs.update(root=image_root, bad_files=bad, stats=stats)
    return df


def write_bad_files(bad: list[tuple[str, str]], path: str | os.PathLike) -> Path:
    """Write a ``path,reason`` CSV (header only when nothing was bad) atomically."""
    table = pd.DataFrame(list(bad), columns=["path", "reason"])
    return atomic_write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode())


def read_benchmark_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read an adapter's manifest (``source/manifest.csv`` of
    :func:`hrr_core.benchmark.external.build_stage_manifest`); ``attrs["root"]`` is the benchmark
    folder its paths are relative to (from the ``.meta.json`` beside it)."""
    path = Path(path)
    df = read_manifest(path)
    meta = path.with_name(path.stem + ".meta.json")
    root = json.loads(meta.read_text()).get("root") if meta.is_file() else None
    if root is not None:
        df.attrs["root"] = root
    return df
