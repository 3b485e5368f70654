"""Stage ``evaluate@<method>``: score every test image with the best checkpoint; write the
scores, the tidy results table, ``metrics/evaluate/<method>.json`` and ROC points per test
generator.

Protocol v2 (docs/evaluation.md): thresholds come from validation (the calibrated one of the
detector card, and the one letting ``evaluate.fpr_target`` of validation reals through, read
from ``models/<method>/val_scores.csv``); the headline is the macro mean over the test
generators held out for this detector, with photo-level intervals; the in-family mean and the
style-shift photos are reported apart."""

from __future__ import annotations

import json

import pandas as pd

from hrr_core.benchmark.build import families_of
from hrr_core.data.manifest import read_manifest
from hrr_core.evaluation.heldout import split_families
from hrr_core.evaluation.metrics import roc_points
from hrr_core.evaluation.protocol import generator_set
from hrr_core.evaluation.stats import V2_METRICS
from hrr_core.evaluation.tables import OperatingPoints, headline, operating_points, results_rows
from hrr_core.io import atomic_write_bytes, atomic_write_json
from hrr_core.pipeline.common import bind_benchmark, score_split
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import Config


def evaluate_scores(
    cfg: Config, method: str, manifest: pd.DataFrame, scored: pd.DataFrame, ops: OperatingPoints, train
) -> tuple[pd.DataFrame, dict]:
    """(results table, metrics dict) of one model's test scores (columns id, score)."""
    ecfg = cfg.evaluate
    test_df = manifest[manifest["split"] == "test"]
    merged = test_df.merge(scored[["id", "score"]], on="id", how="inner")
    families = list(families_of(test_df))  # the test split's generators
    style = cfg.benchmark.style_shift if cfg.real_benchmark.is_embedded else ()
    table = results_rows(
        merged, method, train, families, ops, ecfg.n_boot, cfg.seed, ecfg.by_size, style, ecfg.ece_bins
    )
    overall = table[(table["photos"] == "all") & (table["size"] == "all")]
    held, in_family = split_families(train, families)
    metrics = {
        **headline(merged, train, families, ops, ecfg.n_boot, cfg.seed, style, ecfg.ece_bins),
        "mean": {k: round(float(overall[k].mean()), 4) for k in V2_METRICS},  # every test generator (v1 key)
        **{r["test"]: {k: round(float(r[k]), 4) for k in V2_METRICS} for _, r in overall.iterrows()},
        "held_out_generators": held,
        "in_family_generators": in_family,
        "n_test": len(merged),
    }
    return table, metrics


def run(cfg: Config, paths: StagePaths, method: str) -> dict:
    manifest = read_manifest(paths.manifest(cfg))
    cfg = bind_benchmark(cfg, manifest)
    m = cfg.method(method)
    test_df = manifest[manifest["split"] == "test"]
    scored = score_split(cfg, method, test_df, paths)
    out = paths.results_dir(method)
    atomic_write_bytes(out / "scores.csv", scored.to_csv(index=False).encode())
    ops = operating_points(cfg, manifest, paths.model_dir(method))
    table, metrics = evaluate_scores(cfg, method, manifest, scored, ops, tuple(m.train_generators))
    atomic_write_bytes(out / "results.csv", table.to_csv(index=False).encode())
    atomic_write_json(
        paths.metrics / "evaluate" / f"{method}.json",
        {**metrics, "profile": cfg.profile, "train_generators": list(m.train_generators)},
    )
    merged = test_df.merge(scored, on="id")
    for fam in families_of(test_df):
        part = generator_set(merged, fam)
        roc = pd.DataFrame(roc_points(part["score"].to_numpy(), part["label"].to_numpy()))
        atomic_write_bytes(paths.plots / "roc" / method / f"{fam}.csv", roc.to_csv(index=False).encode())
    return {"results": table, "scores": scored, "metrics": metrics}


def load(cfg: Config, paths: StagePaths, method: str) -> dict:
    return {
        "results": pd.read_csv(paths.results_dir(method) / "results.csv", dtype={"size": str}),
        "scores": pd.read_csv(paths.results_dir(method) / "scores.csv"),
        "metrics": json.loads((paths.metrics / "evaluate" / f"{method}.json").read_text()),
    }
