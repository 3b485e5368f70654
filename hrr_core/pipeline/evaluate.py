"""Stage ``evaluate@<method>``: score every test image with the best checkpoint; write the
scores, the tidy results table, ``metrics/evaluate/<method>.json`` (macro means and per
generator) and ROC points per test generator."""

from __future__ import annotations

import json

import pandas as pd

from hrr_core.benchmark.build import families_of
from hrr_core.data.manifest import read_manifest
from hrr_core.evaluation.metrics import roc_points
from hrr_core.evaluation.protocol import generator_set, results_table, summary
from hrr_core.io import atomic_write_bytes, atomic_write_json
from hrr_core.pipeline.common import bind_benchmark, score_split
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import Config


def run(cfg: Config, paths: StagePaths, method: str) -> dict:
    manifest = read_manifest(paths.manifest(cfg))
    cfg = bind_benchmark(cfg, manifest)
    m, ecfg = cfg.method(method), cfg.evaluate
    test_df = manifest[manifest["split"] == "test"]
    scored = score_split(cfg, method, test_df, paths)
    out = paths.results_dir(method)
    atomic_write_bytes(out / "scores.csv", scored.to_csv(index=False).encode())
    families = list(
        families_of(test_df)
    )  # the test split's generators (the embedded build has every family in every split)
    table = results_table(
        scored, manifest, method, m.train_generators, families, ecfg.threshold, ecfg.n_boot, cfg.seed, ecfg.by_size
    )
    atomic_write_bytes(out / "results.csv", table.to_csv(index=False).encode())
    atomic_write_json(
        paths.metrics / "evaluate" / f"{method}.json",
        {**summary(table)[method], "profile": cfg.profile, "train_generators": list(m.train_generators)},
    )
    merged = test_df.merge(scored, on="id")
    for fam in families:
        part = generator_set(merged, fam)
        roc = pd.DataFrame(roc_points(part["score"].to_numpy(), part["label"].to_numpy()))
        atomic_write_bytes(paths.plots / "roc" / method / f"{fam}.csv", roc.to_csv(index=False).encode())
    return {"results": table, "scores": scored}


def load(cfg: Config, paths: StagePaths, method: str) -> dict:
    return {
        "results": pd.read_csv(paths.results_dir(method) / "results.csv", dtype={"size": str}),
        "scores": pd.read_csv(paths.results_dir(method) / "scores.csv"),
        "metrics": json.loads((paths.metrics / "evaluate" / f"{method}.json").read_text()),
    }
