"""Real benchmarks in the pipeline: ``real_benchmark:`` in params.yaml selects what the stages run on.

``source: embedded`` (the default) keeps the embedded benchmark (``benchmark:``, built by
:mod:`hrr_core.benchmark.build`). Any other source names an adapter of
:mod:`hrr_core.data.adapters`; the ``prepare`` stage then

1. builds the adapter's manifest (the preset decides train / val / test), written with its
   ``bad_files.csv`` and ``.meta.json`` under ``<benchmark.out_dir>/source/``;
2. when ``harmonise`` is set, re-encodes both classes the same way into
   ``<benchmark.out_dir>/harmonised/``;
3. writes ``<benchmark.out_dir>/manifest.csv``, the one manifest later stages read, with the
   embedded manifest's columns (paths relative to that folder, or absolute for an absolute root);
4. runs the bias audit, writes the dataset card, ``metrics/prepare.json`` and a sample grid.

Methods' ``train_generators`` name embedded families; with a real benchmark the preset decides
instead: :func:`hrr_core.pipeline.common.bind_benchmark` sets every method's train generators to the fake generators of
the manifest's train split (what the preset, or ``real_benchmark.train_generators``, selected).

Bias audit policy: ``bias_audit: warn`` (default) reports problems in the card, the audit JSON
and ``bias_audit_ok`` without failing, because the published protocols are themselves biased
(JPEG reals vs PNG fakes, generator-dependent sizes) and reproducing them un-harmonised is a
row the study needs; ``fail`` raises after writing the reports (as the embedded build always does).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd

from hrr_core.benchmark.audit import counts_table
from hrr_core.confutil import to_dict
from hrr_core.data.adapters import PRESETS, build_manifest, write_bad_files
from hrr_core.data.harmonise import harmonise_manifest
from hrr_core.data.manifest import absolute_paths, write_manifest
from hrr_core.io import atomic_write_json, image_to_array, load_image
from hrr_core.schema.benchmark import RealBenchmarkConfig
from hrr_core.shard import World


def _stage_rows(df: pd.DataFrame, out_dir: Path, jpeg_quality: int | None, keep_absolute: bool) -> pd.DataFrame:
    """The adapter's (or harmonised) rows as the stages read them: paths relative to ``out_dir``
    (absolute for files outside it when ``keep_absolute``: the user gave an absolute root) and
    the embedded manifest's extra columns (``quality``, ``photo``, ``size``)."""
    files = absolute_paths(df).map(Path)
    rel = files.map(
        lambda p: (
            p.as_posix() if keep_absolute and not _inside(p, out_dir) else Path(os.path.relpath(p, out_dir)).as_posix()
        )
    )
    quality = [jpeg_quality if (jpeg_quality and f == "jpeg") else 0 for f in df["format"]]
    return df.assign(path=list(rel), quality=quality, photo=df["source"], size=df["width"])


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def build_stage_manifest(
    cfg: RealBenchmarkConfig,
    out_dir: str | os.PathLike,
    project_root: str | os.PathLike | None = None,
    echo=print,
    world: World = World(),
) -> tuple[pd.DataFrame | None, dict]:
    """A real benchmark's manifest, the one way to build it: steps 1-3 of the module docstring
    (the adapter's walk with the preset's, or the overrides', generators, ``max_per_class``
    subsampling and the leakage check, then the harmonisation) under ``out_dir``. A relative
    ``cfg.root`` is taken from ``project_root`` (default: the project's root). Returns the stage
    manifest (``out_dir/manifest.csv``, ``attrs["root"]`` = ``out_dir``) and build stats. Under
    several processes (``world``) every rank builds the manifest and harmonises its share of
    the rows; rank 0 alone writes and returns the manifest, the others return (None, {})."""
    out_dir = Path(out_dir)
    acfg = cfg.resolved(project_root)
    t0 = time.perf_counter()
    raw = build_manifest(acfg)
    raw_root = raw.attrs["root"]
    if world.is_main:
        write_manifest(raw, out_dir / "source" / "manifest.csv")
        write_bad_files(raw.attrs["bad_files"], out_dir / "source" / "bad_files.csv")
        atomic_write_json(
            out_dir / "source" / "manifest.meta.json",
            {
                "config": _walk_config(acfg),
                "preset": PRESETS[acfg.preset_name],
                "root": raw_root,
                "stats": raw.attrs["stats"],
            },
        )
    elif cfg.harmonise is None:
        return None, {}
    t1 = time.perf_counter()
    echo(f"{cfg.source}: {len(raw)} images, {len(raw.attrs['bad_files'])} bad files skipped ({t1 - t0:.1f} s)")
    bad = list(raw.attrs["bad_files"])
    if cfg.harmonise is None:
        rows = raw
    else:
        rows = harmonise_manifest(raw, raw_root, out_dir / "harmonised", cfg.harmonise, world)
        if rows is None:  # another rank: rank 0 merges
            return None, {}
        bad += rows.attrs["bad_files"]
        echo(f"harmonised {len(rows)} images to {cfg.harmonise.format} ({time.perf_counter() - t1:.1f} s)")
    q = cfg.harmonise.jpeg_quality if cfg.harmonise is not None and cfg.harmonise.format != "keep" else None
    stage = _stage_rows(rows, out_dir, q, Path(str(cfg.root)).expanduser().is_absolute())
    write_manifest(stage, out_dir / "manifest.csv")
    stage.attrs["root"] = str(out_dir)
    stats = {
        "manifest_s": round(t1 - t0, 3),
        "harmonise_s": round(time.perf_counter() - t1, 3) if cfg.harmonise else 0.0,
        "bad_files": len(bad),
        **{k: raw.attrs["stats"][k] for k in ("walk_s", "probe_s")},
    }
    return stage, stats


def _walk_config(cfg: RealBenchmarkConfig) -> dict:
    """What the adapter's walk read, as ``source/manifest.meta.json`` records it (``kind``: the
    adapter; the bias-audit policy plays no part in the manifest)."""
    read = to_dict(cfg)
    read.pop("bias_audit")
    return {"kind": read.pop("source"), **read}


def _generators(df: pd.DataFrame, split: str) -> list[str]:
    return sorted(set(df.loc[(df["split"] == split) & (df["label"] == 1), "generator"]))


def train_test_generators(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The fake generators of the manifest's train split and of its test split."""
    return _generators(df, "train"), _generators(df, "test")


def real_card(cfg: RealBenchmarkConfig, df: pd.DataFrame, audit: dict, stats: dict) -> str:
    preset = cfg.preset_name
    lines = [
        f"# Real benchmark ({cfg.source}, preset `{preset}`): dataset card",
        "",
        "Generated by the `prepare` stage (`notebooks/01_prepare.ipynb`) from `real_benchmark:` in params.yaml; do "
        "not edit by hand.",
        "",
        f"- preset: {PRESETS[preset]['about']}",
        f"- images: {len(df)} ({int((df['label'] == 0).sum())} real, {int((df['label'] == 1).sum())} generated); "
        f"bad files skipped: {stats['bad_files']} (listed in `source/bad_files.csv`, `harmonised/bad_files.csv`)",
        f"- train generators: {', '.join(_generators(df, 'train'))}; test generators: "
        f"{', '.join(_generators(df, 'test'))}",
        f"- harmonisation: {json.dumps(to_dict(cfg.harmonise)) if cfg.harmonise else 'none (files as shipped)'}",
        f"- formats: {', '.join(sorted(df['format'].unique()))}; bias audit: "
        f"{'passed' if audit['ok'] else 'PROBLEMS (policy: ' + cfg.bias_audit + ')'}",
        "",
        "## Counts (generator × split × size)",
        "",
        counts_table(df).to_markdown(),
        "",
        "## Bias audit",
        "",
    ]
    lines += [f"- {p}" for p in audit["problems"]] or [
        "Every generator's fakes match their reals in size, format and codec quality."
    ]
    lines += ["", "## Configuration", "", "```json", json.dumps(to_dict(cfg), indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def real_sample_grid(df: pd.DataFrame, n_rows: int = 3, seed: int = 0):
    """Columns: the test reals, then each test generator's fakes; ``n_rows`` random images each."""
    import matplotlib.pyplot as plt

    test = df[df["split"] == "test"]
    cols = [("real", test[test["label"] == 0])] + [
        (g, test[(test["label"] == 1) & (test["generator"] == g)]) for g in _generators(df, "test")
    ]
    fig, axes = plt.subplots(n_rows, len(cols), figsize=(1.8 * len(cols), 1.8 * n_rows), squeeze=False)
    for c, (name, part) in enumerate(cols):
        picks = absolute_paths(part.sample(min(n_rows, len(part)), random_state=seed)).tolist()
        for r in range(n_rows):
            ax = axes[r, c]
            if r < len(picks):
                ax.imshow(image_to_array(load_image(picks[r])))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle("test split: reals and each generator's fakes (not content-matched)", fontsize=10)
    return fig
