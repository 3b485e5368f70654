"""The evaluation protocol as data: which images form each test set, and one tidy results
table (method × train generators × test generator × size) built from per-image scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hrr_core.evaluation.metrics import METRIC_NAMES, binary_metrics, bootstrap_ci

REAL = "real"


def generator_set(manifest: pd.DataFrame, generator: str, split: str = "test") -> pd.DataFrame:
    """Rows of one generator's test set: its fakes plus the reals it is compared against
    (reals tagged with that generator if any, else the shared reals; with a ``subset`` column,
    as real benchmarks have, only the shared reals of the fakes' subsets, e.g. DIRE's datasets)."""
    part = manifest[manifest["split"] == split]
    fakes = part[(part["label"] == 1) & (part["generator"] == generator)]
    reals = part[(part["label"] == 0) & (part["generator"] == generator)]
    if reals.empty:
        reals = part[(part["label"] == 0) & (part["generator"] == REAL)]
        if "subset" in part.columns:
            reals = reals[reals["subset"].isin(set(fakes["subset"]))]
    if fakes.empty or reals.empty:
        raise ValueError(
            f"test set for generator {generator!r} in split {split!r} has {len(reals)} reals and {len(fakes)} fakes; "
            "both are needed"
        )
    return pd.concat([reals, fakes])


def training_set(manifest: pd.DataFrame, generators: Sequence[str], split: str = "train") -> pd.DataFrame:
    """Training rows for ``generators``: their fakes plus the matching reals (each real once)."""
    parts = [generator_set(manifest, g, split) for g in generators]
    return pd.concat(parts).drop_duplicates("id").reset_index(drop=True)


def results_table(
    scores: pd.DataFrame,
    manifest: pd.DataFrame,
    method: str,
    train_generators: Sequence[str],
    test_generators: Sequence[str],
    threshold: float = 0.5,
    n_boot: int = 200,
    seed: int = 0,
    by_size: bool = True,
    split: str = "test",
) -> pd.DataFrame:
    """Tidy metrics: one row per test generator (and per size when ``by_size``), with bootstrap
    95% intervals as ``<metric>_lo``/``<metric>_hi``. ``scores`` has columns id, score."""
    scored = manifest.merge(scores[["id", "score"]], on="id", how="inner")
    rows = []
    for gen in test_generators:
        part = generator_set(scored, gen, split)
        groups = [("all", part)] + ([(str(s), g) for s, g in part.groupby("width")] if by_size else [])
        for size, g in groups:
            s, y = g["score"].to_numpy(), g["label"].to_numpy()
            row = {
                "method": method,
                "train": "+".join(train_generators),
                "test": gen,
                "size": size,
                "n": len(g),
                "threshold": threshold,
                **binary_metrics(s, y, threshold),
            }
            if n_boot:
                for name, (lo, hi) in bootstrap_ci(s, y, threshold, n_boot, seed).items():
                    row[f"{name}_lo"], row[f"{name}_hi"] = lo, hi
            rows.append(row)
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> dict:
    """Macro means over test generators (size 'all') plus the per-generator numbers, for
    ``dvc metrics``. Keys are ``<method>/<metric>`` and ``<method>/<test>/<metric>``."""
    out: dict = {}
    overall = results[results["size"] == "all"]
    for method, g in overall.groupby("method"):
        out[method] = {"mean": {m: round(float(np.nanmean(g[m])), 4) for m in METRIC_NAMES}}
        for _, r in g.iterrows():
            out[method][r["test"]] = {m: round(float(r[m]), 4) for m in METRIC_NAMES}
    return out
