"""Stage ``ablate@<row>``: train and evaluate one HRR ablation row (``ablations.<row>``
applied to ``methods.hrr``), or, for a row the profile does not run (``ablation_run``), write
the declared outputs with a note that says so."""

from __future__ import annotations

import json

import pandas as pd

from hrr_core.io import atomic_write_json, atomic_write_text
from hrr_core.pipeline import evaluate, train
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import Config, ablation_method


def run(cfg: Config, paths: StagePaths, row: str) -> dict:
    method = ablation_method(row)
    if row not in cfg.ablation_run:
        note = f"skipped: ablation {row!r} is not in ablation_run of profile {cfg.profile!r} ({list(cfg.ablation_run)})"
        for folder in (paths.model_dir(method), paths.results_dir(method), paths.plots / "roc" / method):
            atomic_write_text(folder / "SKIPPED.txt", note + "\n")
        for stage in ("train", "evaluate"):
            atomic_write_json(paths.metrics / stage / f"{method}.json", {"skipped": note, "profile": cfg.profile})
        return {"skipped": note}
    trained = train.run(cfg, paths, method)
    evaluated = evaluate.run(cfg, paths, method)
    return {"metrics": trained["metrics"], "results": evaluated["results"]}


def load(cfg: Config, paths: StagePaths, row: str) -> dict:
    method = ablation_method(row)
    folder = paths.results_dir(method)
    if (folder / "SKIPPED.txt").is_file():
        return {"skipped": (folder / "SKIPPED.txt").read_text().strip()}
    return {
        "metrics": json.loads((paths.metrics / "train" / f"{method}.json").read_text()),
        "results": pd.read_csv(folder / "results.csv", dtype={"size": str}),
    }
