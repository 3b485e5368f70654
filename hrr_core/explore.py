"""What ``notebooks/explore.ipynb`` shows: metric tables, per-image predictions, the most
confident mistakes with HRR's per-scale retrospection, the AFR dimensions that survived, and two
commits' metrics side by side. Every function takes paths or frames and returns tables or
figures; the notebook only calls and displays.

Inputs (as the pipeline writes them under a project root):
    results/<method>/results.csv   tidy metrics (method, train, test, size, n, acc, ap, ...)
    results/study/<method>/study.csv   optional (stage study@): the same metric columns plus
                                   ``condition`` (none, clean, rescale, jpeg, blur, downscale,
                                   harmonise), ``level`` and ``seed`` (docs/evaluation.md)
    results/<method>/scores.csv    per-image scores (id, logit, score) of the test split
    data/embedded/manifest.csv     the manifest (id, path, label, generator, split, width, ...)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from hrr_core.data.manifest import absolute_paths, read_manifest

MANIFEST = Path("data") / "embedded" / "manifest.csv"
STUDY_COLUMNS = ("condition", "level", "seed")
ANY = "(any)"  # a filter value meaning "no filter"


# ---------------------------------------------------------------- tables


def find_methods(root: str | Path) -> list[str]:
    """Methods (and ablation rows) with a ``results/<method>/results.csv`` under ``root``."""
    return sorted(p.parent.name for p in (Path(root) / "results").glob("*/results.csv"))


def load_metrics(root: str | Path, methods: list[str] | None = None) -> pd.DataFrame:
    """Every method's metrics as one tidy table with ``condition, level, seed`` columns: the main
    run's ``results.csv`` (per size; condition none, seed NaN) plus the rows of the study table
    ``results/study/<method>/study.csv`` when the method has one (seeds, matrix, robustness)."""
    root = Path(root)
    methods = find_methods(root) if methods is None else methods
    if not methods:
        raise FileNotFoundError(
            f"no results/<method>/results.csv under {root}; run the pipeline (dvc repro) "
            "or open a stage notebook to build smoke outputs"
        )
    parts = []
    for m in methods:
        parts.append(
            pd.read_csv(root / "results" / m / "results.csv", dtype={"size": str}).assign(
                condition="none", level=0.0, seed=np.nan, method=m
            )
        )
        study = root / "results" / "study" / m / "study.csv"
        if study.is_file():
            part = pd.read_csv(study, dtype={"size": str})
            missing = [c for c in STUDY_COLUMNS if c not in part.columns]
            if missing:
                raise ValueError(
                    f"{study}: missing columns {missing}; a study table adds {list(STUDY_COLUMNS)} to results.csv's"
                )
            parts.append(part.assign(method=m))
    return pd.concat(parts, ignore_index=True)


def load_predictions(
    root: str | Path, method: str, threshold: float = 0.5, manifest: str | Path = MANIFEST
) -> pd.DataFrame:
    """Per-image scores of ``method`` joined with the manifest: id, path (absolute), label,
    generator, split, size, score, logit, pred, correct and ``margin`` = |score - threshold|."""
    root = Path(root)
    scores_file = root / "results" / method / "scores.csv"
    if not scores_file.is_file():
        raise FileNotFoundError(f"{scores_file} does not exist; run the evaluate stage (dvc repro evaluate@{method})")
    man = read_manifest(root / manifest)
    man = man.assign(path=absolute_paths(man), size=man["width"].astype(str))
    cols = ["id", "path", "label", "generator", "split", "size", "width", "height"]
    df = pd.read_csv(scores_file).merge(man[cols], on="id", how="left", validate="one_to_one")
    if df["path"].isna().any():
        raise ValueError(
            f"{scores_file}: {int(df['path'].isna().sum())} ids are not in {root / manifest}; "
            "the scores and the manifest come from different runs: rerun dvc repro"
        )
    pred = (df["score"] >= threshold).astype(int)
    return df.assign(method=method, pred=pred, correct=pred == df["label"], margin=(df["score"] - threshold).abs())


def filter_rows(df: pd.DataFrame, **filters) -> pd.DataFrame:
    """Rows whose columns equal the given values; ``None`` or ``"(any)"`` leaves a column unfiltered.
    ``generator`` on a predictions table keeps that generator's fakes and every real."""
    out = df
    for col, value in filters.items():
        if value is None or value == ANY:
            continue
        if col not in out.columns:
            raise KeyError(f"cannot filter on {col!r}; columns: {list(out.columns)}")
        keep = out[col].astype(str) == str(value)
        if col == "generator" and "label" in out.columns:
            keep |= out["label"] == 0
        out = out[keep]
    return out


def options(df: pd.DataFrame, col: str, first: str = ANY) -> list:
    """What a dropdown offers: ``first`` (default "(any)"; a value of ``col`` moves to the front),
    then the other distinct values of ``col``, sizes in numeric order."""
    values = df[col].dropna().astype(str).unique().tolist() if col in df.columns else []
    values = sorted(values, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    head = [first] if first == ANY or first in values else []
    return [*head, *(v for v in values if v != first)]


def confident_mistakes(preds: pd.DataFrame, n: int = 6) -> pd.DataFrame:
    """The ``n`` wrong predictions furthest from the threshold (most confident first)."""
    wrong = preds[~preds["correct"]]
    return wrong.sort_values(["margin", "id"], ascending=[False, True]).head(n).reset_index(drop=True)


# ---------------------------------------------------------------- two commits' metrics


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(
            f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}; "
            "pass revisions that exist (git log --oneline) in a git checkout"
        )
    return proc.stdout


def commit_metrics(repo: str | Path, rev: str, folder: str = "metrics/evaluate") -> pd.DataFrame:
    """Metrics JSON files of ``folder`` at commit ``rev`` as rows method, test, metric, value
    (nested numbers flattened: ``{"mean": {"ap": 0.8}}`` -> test "mean", metric "ap")."""
    repo = Path(repo)
    rows = []
    for name in _git(repo, "ls-tree", "--name-only", f"{rev}:{folder}").split():
        if not name.endswith(".json"):
            continue
        data = json.loads(_git(repo, "show", f"{rev}:{folder}/{name}"))
        for test, value in data.items():
            if isinstance(value, dict):
                rows += [(name[:-5], test, k, float(v)) for k, v in value.items() if isinstance(v, (int, float))]
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((name[:-5], "", test, float(value)))
    return pd.DataFrame(rows, columns=["method", "test", "metric", "value"])


def compare_commits(
    repo: str | Path, rev_a: str, rev_b: str, folder: str = "metrics/evaluate", changed_only: bool = False
) -> pd.DataFrame:
    """Side by side: one row per (method, test, metric) with the values at ``rev_a`` and
    ``rev_b`` (columns ``a: <rev_a>``, ``b: <rev_b>``; NaN where a commit lacks it) and
    ``delta`` = b - a; ``changed_only`` keeps rows whose value differs."""
    keys = ["method", "test", "metric"]
    col_a, col_b = f"a: {rev_a}", f"b: {rev_b}"
    a = commit_metrics(repo, rev_a, folder).rename(columns={"value": col_a})
    b = commit_metrics(repo, rev_b, folder).rename(columns={"value": col_b})
    table = a.merge(b, on=keys, how="outer").sort_values(keys).reset_index(drop=True)
    table["delta"] = table[col_b] - table[col_a]
    if changed_only:
        table = table[(table["delta"].abs() > 0) | table["delta"].isna()]
    return table.reset_index(drop=True)
