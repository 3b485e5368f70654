"""Stage ``train@<method>``: train one method on its training generators (train split),
selecting on val, and make ``models/<method>`` a self-describing detector for hrr-detect.

Also the command line for one device or many:

    python -m hrr_core.pipeline.train hrr                 # as the train@hrr stage does
    python -m hrr_core.pipeline.train hrr --resume        # continue from models/hrr/last
    accelerate launch --multi_gpu --num_processes 4 -m hrr_core.pipeline.train hrr
    torchrun --standalone --nproc_per_node 4 -m hrr_core.pipeline.train hrr

Every process runs the same code; Accelerate shards the batches, and only rank 0 writes
checkpoints, history and metrics.
"""

from __future__ import annotations

import json
import os

import pandas as pd

from hrr_core import methods
from hrr_core.card import write_card_for_method
from hrr_core.data.manifest import read_manifest
from hrr_core.io import atomic_write_bytes, atomic_write_json
from hrr_core.pipeline.common import bind_benchmark, fit_method, require_fit_splits, score_split
from hrr_core.pipeline.paths import StagePaths, stage_config, stage_parser, stage_paths
from hrr_core.runtime import is_main_process
from hrr_core.schema import Config

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(cfg: Config, paths: StagePaths, method: str, resume: bool = False) -> dict:
    """Train ``methods.<method>``; ``resume`` continues an interrupted run from ``models/<method>/last``."""
    cfg = bind_benchmark(cfg, read_manifest(paths.manifest(cfg)))  # a real benchmark's preset picks the generators
    metrics, history, train_df, val_df = fit_method(cfg, method, paths, paths.model_dir(method), resume)
    if not is_main_process():  # other ranks of a multi-GPU run: rank 0 writes
        return {"metrics": {}, "history": history}
    atomic_write_json(paths.metrics / "train" / f"{method}.json", metrics)
    write_card(cfg, method, train_df, val_df, paths)
    return {"metrics": metrics, "history": history}


def write_card(cfg: Config, method: str, train_df: pd.DataFrame, val_df: pd.DataFrame, paths: StagePaths) -> None:
    """Make ``models/<method>`` self-describing for hrr-detect: config, preprocessing, and the
    threshold calibrated on validation scores (never test), and keep those scores
    (``val_scores.csv``: the evaluate stage's TPR@FPR threshold and calibration read them)."""
    scored = score_split(cfg, method, require_fit_splits(val_df, "write_card"), paths)
    labels = val_df.set_index("id").loc[scored["id"], "label"]
    val_scores = val_df[["id", "generator", "label"]].merge(scored[["id", "score"]], on="id")
    atomic_write_bytes(paths.model_dir(method) / "val_scores.csv", val_scores.to_csv(index=False).encode())
    summary = {
        "manifest": str(paths.manifest(cfg).relative_to(paths.root)),
        "n_train": len(train_df),
        "n_val": len(val_df),
        "train_generators": list(cfg.method(method).train_generators),
    }
    ldm = methods.spec_of(cfg, method).ldm_dir(cfg.model_config(method), paths.retrospection_ldm)
    write_card_for_method(
        cfg, method, paths.model_dir(method), scored["score"], labels, summary, retrospection_ldm_dir=ldm
    )


def load(cfg: Config, paths: StagePaths, method: str) -> dict:
    return {
        "metrics": json.loads((paths.metrics / "train" / f"{method}.json").read_text()),
        "history": pd.read_csv(paths.model_dir(method) / "history.csv"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("train", "Train one method of params.yaml.")
    parser.add_argument("method", help="a key of methods: in params.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from models/<method>/last")
    args = parser.parse_args(argv)
    cfg = stage_config(args)
    if args.method not in cfg.methods:
        parser.error(f"unknown method {args.method!r}; params.yaml has {', '.join(cfg.methods)}")
    out = run(cfg, stage_paths(), args.method, resume=args.resume)
    if out["metrics"]:
        print(out["metrics"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
