"""Stage ``evaluate@<method>``: score every test image with the best checkpoint; write the
scores, the tidy results table, ``metrics/evaluate/<method>.json`` and ROC points per test
generator.

Protocol v2 (docs/evaluation.md): thresholds come from validation (the calibrated one of the
detector card, and the one letting ``evaluate.fpr_target`` of validation reals through, read
from ``models/<method>/val_scores.csv``); the headline is the macro mean over the test
generators held out for this detector, with photo-level intervals; the in-family mean and the
style-shift photos are reported apart.

Also the command line for one device or many (scoring a large test split is the stage's cost):

    python -m hrr_core.pipeline.evaluate --method hrr
    torchrun --standalone --nproc_per_node 4 -m hrr_core.pipeline.evaluate --method hrr

Under several processes rank ``r`` scores the sorted test ids ``r, r + n, ...`` on its own device
and records them in a part under ``results/<method>/.parts/`` (reused when the run is relaunched
with the same model); rank 0 merges the parts in the test split's order and writes every output,
as one process would. Methods reading a cached representation (HRR, DIRE) give the same floats
either way (one image per forward pass); image-reading ones agree to float32 rounding (batches
are composed differently)."""

from __future__ import annotations

import dataclasses
import json
import shutil

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
from hrr_core.pipeline.paths import StagePaths, stage_config, stage_parser, stage_paths
from hrr_core.schema import Config
from hrr_core.shard import PARTS_DIR, World, run_sharded


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


def score_test(cfg: Config, method: str, test_df: pd.DataFrame, paths: StagePaths, world: World) -> pd.DataFrame | None:
    """The test split's scores (id, logit, score) in ``test_df``'s order; sharded over ``world``
    (rank 0 gets the merged table, the other ranks None)."""
    if world.size == 1:
        scored = score_split(cfg, method, test_df, paths)
    else:
        card = json.loads((paths.model_dir(method) / "detector.json").read_text())
        rank_cfg = dataclasses.replace(cfg, device=world.device(cfg.device))
        ids = sorted(test_df["id"])
        context = {"method": method, "model_id": card["model_id"], "n_test": len(ids)}

        def compute(shard: list[str]) -> dict:
            return score_split(rank_cfg, method, test_df[test_df["id"].isin(shard)], paths).to_dict(orient="list")

        parts = run_sharded(ids, world, paths.results_dir(method) / PARTS_DIR, context, compute, stat_files=False)
        if parts is None:
            return None
        scored = pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
    order = pd.Series(range(len(test_df)), index=test_df["id"].to_numpy())
    return scored.sort_values("id", key=lambda ids: ids.map(order), kind="stable").reset_index(drop=True)


def run(cfg: Config, paths: StagePaths, method: str) -> dict:
    manifest = read_manifest(paths.manifest(cfg))
    cfg = bind_benchmark(cfg, manifest)
    m = cfg.method(method)
    test_df = manifest[manifest["split"] == "test"]
    world = World.from_env()  # several processes under torchrun / accelerate launch
    scored = score_test(cfg, method, test_df, paths, world)
    if scored is None:  # another rank: rank 0 writes the outputs
        return {}
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
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)  # merged: a later launch starts afresh
    return {"results": table, "scores": scored, "metrics": metrics}


def load(cfg: Config, paths: StagePaths, method: str) -> dict:
    return {
        "results": pd.read_csv(paths.results_dir(method) / "results.csv", dtype={"size": str}),
        "scores": pd.read_csv(paths.results_dir(method) / "scores.csv"),
        "metrics": json.loads((paths.metrics / "evaluate" / f"{method}.json").read_text()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("evaluate", "The evaluate stage of one method: score the test split, write the metrics.")
    parser.add_argument("--method", required=True, help="a key of methods: (or an ablation row, ablation-<name>)")
    args = parser.parse_args(argv)
    run(stage_config(args), stage_paths(), args.method)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
