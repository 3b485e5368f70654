"""Tables read back from the stages' committed outputs (``metrics/``, ``results/``): what the
figures, the README report and the explorer show. Reading only: no model code."""

from __future__ import annotations

import json

import pandas as pd

from hrr_core.pipeline.paths import StagePaths


def ablation_table(paths: StagePaths) -> pd.DataFrame:
    """Mean metrics of full HRR and of every ablation row that ran (skipped rows left out): the
    macro mean over held-out generators (protocol v2), else over every test generator."""
    rows = []
    for f in sorted((paths.metrics / "evaluate").glob("*.json")):
        if f.stem == "hrr" or f.stem.startswith("ablation-"):
            data = json.loads(f.read_text())
            if "mean" in data:
                mean = data.get("heldout", {}).get("mean") or data["mean"]
                rows.append({"row": "full HRR" if f.stem == "hrr" else f.stem.removeprefix("ablation-"), **mean})
    return pd.DataFrame(rows)


def read_studies(paths: StagePaths, names: list[str]) -> pd.DataFrame:
    """Every method's tidy study table that exists (empty frame when none ran), over all test
    photos (the style-shift / in-style rows are left to the metrics)."""
    parts = [
        pd.read_csv(paths.study_dir(m) / "study.csv", dtype={"size": str})
        for m in names
        if (paths.study_dir(m) / "study.csv").exists()
    ]
    parts = [p[p["photos"] == "all"] if "photos" in p else p for p in parts]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def afr_sparsity_rows(paths: StagePaths, ablations: dict) -> pd.DataFrame:
    """lambda_omega, kept fraction of AFR dimensions and mean AP of full HRR and of every
    ablation row that changes nothing but lambda_omega (and ran)."""
    sweep = ["hrr"] + [
        f"ablation-{k}"
        for k, v in ablations.items()
        if v == {"objective": {"lambda_omega": v.get("objective", {}).get("lambda_omega")}}
    ]
    rows = []
    for name in sweep:
        train, ev = paths.metrics / "train" / f"{name}.json", paths.metrics / "evaluate" / f"{name}.json"
        if not (train.exists() and ev.exists()):
            continue
        afr, e = json.loads(train.read_text()).get("afr"), json.loads(ev.read_text())
        if afr and "mean" in e:
            rows.append(
                {
                    "row": name,
                    "lambda_omega": afr["lambda_omega"],
                    "active_fraction": afr["active_dims"] / afr["dims"],
                    "ap": e["mean"]["ap"],
                }
            )
    return pd.DataFrame(rows)
