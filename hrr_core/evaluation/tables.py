"""The protocol-v2 results of one scored test split: per-set rows and the held-out headline.

Every threshold comes from validation (:class:`OperatingPoints`); every interval redraws
source photos (:func:`hrr_core.evaluation.stats.cluster_bootstrap`). Rows carry whether the
test generator is held out for the detector, and which photos they cover: ``all``, the
``style_shift`` collections (held out of every split but test) or the ``in_style`` rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hrr_core.evaluation.calibration import calibrate_threshold
from hrr_core.evaluation.heldout import split_families
from hrr_core.evaluation.protocol import generator_set
from hrr_core.evaluation.stats import V2_METRICS, cluster_bootstrap, threshold_at_fpr, v2_metrics

HEADLINE_METRICS = ("ap", "auc", "acc", "real_acc", "fake_acc", "tpr_at_fpr", "ece", "acc_at05")


@dataclass(frozen=True)
class OperatingPoints:
    """Thresholds of one detector, all from validation: ``calibrated`` maximises balanced
    accuracy on validation reals and fakes of its training families; ``at_fpr`` lets
    ``fpr_target`` of validation reals through; ``fixed`` is the field's 0.5."""

    calibrated: float
    at_fpr: float
    fpr_target: float
    fixed: float = 0.5

    @classmethod
    def from_validation(cls, val: pd.DataFrame, fpr_target: float, fixed: float = 0.5) -> OperatingPoints:
        """``val``: columns score, label and split (train/val only, never test)."""
        if "split" in val and (val["split"] == "test").any():
            raise ValueError("operating points are chosen on validation rows; test rows were passed")
        s, y = val["score"].to_numpy(), val["label"].to_numpy()
        return cls(calibrate_threshold(s, y), threshold_at_fpr(s[y == 0], fpr_target), fpr_target, fixed)

    def as_dict(self) -> dict:
        return {k: round(float(v), 6) for k, v in asdict(self).items()}


def operating_points(cfg, manifest: pd.DataFrame, model_dir: Path) -> OperatingPoints:
    """A trained detector's thresholds from its validation scores (``val_scores.csv``, written
    by ``train@<method>``), checked against ``manifest``'s splits; ``cfg``: the project Config."""
    path = Path(model_dir) / "val_scores.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; retrain the detector: dvc repro train@{Path(model_dir).name}")
    val = pd.read_csv(path)[["id", "score"]].merge(manifest[["id", "label", "split"]], on="id", how="left")
    if val["split"].isna().any():
        raise ValueError(f"{path}: ids missing from the manifest; it is from another benchmark build, retrain")
    return OperatingPoints.from_validation(val, cfg.evaluate.fpr_target, cfg.evaluate.threshold)


def cluster_column(df: pd.DataFrame) -> str:
    """The source-photo column to resample: ``source`` (photo group), else ``photo``, else ``id``
    (real benchmarks without photo provenance: every image its own cluster)."""
    return next(c for c in ("source", "photo", "id") if c in df.columns)


def stacked_sets(scored: pd.DataFrame, families: Sequence[str], split: str = "test") -> pd.DataFrame:
    """Every family's test set (its fakes + the reals it is compared with) stacked, with a
    ``set`` column; reals appear once per set, as in the per-set metrics."""
    return pd.concat([generator_set(scored, f, split).assign(set=f) for f in families], ignore_index=True)


def _photo_masks(table: pd.DataFrame, style: Sequence[str]) -> dict[str, np.ndarray]:
    masks = {"all": np.ones(len(table), bool)}
    if style and "collection" in table and table["collection"].isin(style).any():
        shifted = table["collection"].isin(style).to_numpy()
        masks.update(style_shift=shifted, in_style=~shifted)
    return masks


def results_rows(
    scored: pd.DataFrame,
    method: str,
    train_generators: Sequence[str],
    families: Sequence[str],
    ops: OperatingPoints,
    n_boot: int = 200,
    seed: int = 0,
    by_size: bool = True,
    style: Sequence[str] = (),
    ece_bins: int = 10,
    split: str = "test",
) -> pd.DataFrame:
    """One row per test generator × photos (all / style_shift / in_style) and, for all photos,
    per stored size, with every metric of :data:`V2_METRICS` and its photo-level 95% interval
    (``<metric>_lo``/``_hi``). ``scored``: manifest rows with a ``score`` column."""
    held, _ = split_families(train_generators, families)
    table = stacked_sets(scored, families, split)
    cluster = cluster_column(table)
    rows = []
    for fam in families:
        in_set = (table["set"] == fam).to_numpy()
        groups = [(name, "all", in_set & m) for name, m in _photo_masks(table, style).items()]
        if by_size:
            widths = sorted(table["width"].unique())
            groups += [("all", str(w), in_set & (table["width"] == w).to_numpy()) for w in widths]
        for photos, size, mask in groups:
            part = table[mask]
            if part.empty or part["label"].nunique() < 2:
                continue
            s, y = part["score"].to_numpy(), part["label"].to_numpy()
            row = {
                "method": method,
                "train": "+".join(train_generators),
                "test": fam,
                "held_out": fam in held,
                "photos": photos,
                "size": size,
                "n": len(part),
                "n_photos": int(part[cluster].nunique()),
                "threshold": ops.calibrated,
                "threshold_fpr": ops.at_fpr,
                **v2_metrics(s, y, ops.calibrated, ops.at_fpr, ops.fixed, ece_bins),
            }
            if n_boot:
                sc, lab = table["score"].to_numpy(), table["label"].to_numpy()

                def stat(pick, mask=mask):
                    i = pick(mask)
                    if len(np.unique(lab[i])) < 2:
                        return {k: float("nan") for k in V2_METRICS}
                    return v2_metrics(sc[i], lab[i], ops.calibrated, ops.at_fpr, ops.fixed, ece_bins)

                for k, (lo, hi) in cluster_bootstrap(stat, table[cluster], n_boot, seed).items():
                    row[f"{k}_lo"], row[f"{k}_hi"] = lo, hi
            rows.append(row)
    return pd.DataFrame(rows)


def macro_mean(
    scored: pd.DataFrame,
    families: Sequence[str],
    ops: OperatingPoints,
    n_boot: int = 200,
    seed: int = 0,
    photos: np.ndarray | None = None,
    ece_bins: int = 10,
    split: str = "test",
) -> dict:
    """Macro mean of :data:`HEADLINE_METRICS` over ``families``, with a photo-level 95% interval
    (one redraw of photos per resample, shared by every family). ``photos``: optional boolean
    mask over the stacked table (:func:`stacked_sets`) restricting the photos (style shift)."""
    if not families:
        return {"families": [], "mean": {}, "ci": {}}
    table = stacked_sets(scored, families, split)
    keep = np.ones(len(table), bool) if photos is None else photos
    sc, lab, sets = table["score"].to_numpy(), table["label"].to_numpy(), table["set"].to_numpy()

    def mean_over(pick) -> dict:
        per = []
        for f in families:
            i = pick(keep & (sets == f))
            if len(np.unique(lab[i])) < 2:
                return {k: float("nan") for k in HEADLINE_METRICS}
            m = v2_metrics(sc[i], lab[i], ops.calibrated, ops.at_fpr, ops.fixed, ece_bins)
            per.append([m[k] for k in HEADLINE_METRICS])
        return dict(zip(HEADLINE_METRICS, np.mean(per, axis=0)))

    cluster = cluster_column(table)
    point = mean_over(lambda rows: np.flatnonzero(rows))
    ci = cluster_bootstrap(mean_over, table[cluster], n_boot, seed) if n_boot else {}
    return {
        "families": list(families),
        "n_photos": int(table.loc[keep, cluster].nunique()),
        "mean": {k: round(float(v), 4) for k, v in point.items()},
        "ci": {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in ci.items()},
    }


def headline(
    scored: pd.DataFrame,
    train_generators: Sequence[str],
    families: Sequence[str],
    ops: OperatingPoints,
    n_boot: int = 200,
    seed: int = 0,
    style: Sequence[str] = (),
    ece_bins: int = 10,
) -> dict:
    """The metrics-file summary: held-out macro mean (the headline) with intervals, the
    in-family mean reported apart, and the held-out mean on style-shift and in-style photos."""
    held, in_family = split_families(train_generators, families)
    out = {
        "thresholds": ops.as_dict(),
        "heldout": macro_mean(scored, held, ops, n_boot, seed, ece_bins=ece_bins),
        "in_family": macro_mean(scored, in_family, ops, n_boot, seed, ece_bins=ece_bins),
    }
    if held:
        table = stacked_sets(scored, held)
        masks = _photo_masks(table, style)
        if "style_shift" in masks:
            out["style_shift"] = {
                "collections": sorted(style),
                "heldout": macro_mean(scored, held, ops, n_boot, seed, masks["style_shift"], ece_bins),
                "heldout_in_style": macro_mean(scored, held, ops, n_boot, seed, masks["in_style"], ece_bins),
            }
    return out


def paired_difference(
    scored_a: pd.DataFrame,
    scored_b: pd.DataFrame,
    families: Sequence[str],
    ops_a: OperatingPoints,
    ops_b: OperatingPoints,
    n_boot: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] = ("ap", "auc", "acc", "tpr_at_fpr"),
) -> dict:
    """Macro mean over ``families`` of method A minus method B on the same test images, with a
    paired photo-level 95% interval (both redrawn identically), each at its own thresholds.
    ``resolved``: the interval excludes 0."""
    both = scored_a.merge(scored_b[["id", "score"]].rename(columns={"score": "score_b"}), on="id", how="inner")
    if len(both) != len(scored_a) or len(both) != len(scored_b):
        raise ValueError(
            f"paired comparison needs both methods scored on the same test images; got {len(scored_a)} and "
            f"{len(scored_b)} rows sharing {len(both)} ids"
        )
    table = stacked_sets(both, families)
    sa, sb, lab, sets = (table[c].to_numpy() for c in ("score", "score_b", "label", "set"))

    def diff(pick) -> dict:
        da, db = [], []
        for f in families:
            i = pick(sets == f)
            if len(np.unique(lab[i])) < 2:
                return {k: float("nan") for k in metrics}
            ma, mb = (
                v2_metrics(sa[i], lab[i], ops_a.calibrated, ops_a.at_fpr, ops_a.fixed),
                v2_metrics(sb[i], lab[i], ops_b.calibrated, ops_b.at_fpr, ops_b.fixed),
            )
            da.append([ma[k] for k in metrics])
            db.append([mb[k] for k in metrics])
        return dict(zip(metrics, np.mean(da, axis=0) - np.mean(db, axis=0)))

    point = diff(lambda rows: np.flatnonzero(rows))
    ci = cluster_bootstrap(diff, table[cluster_column(table)], n_boot, seed)
    return {
        k: {
            "diff": round(float(point[k]), 4),
            "ci": [round(ci[k][0], 4), round(ci[k][1], 4)],
            "resolved": bool(ci[k][0] > 0 or ci[k][1] < 0),
        }
        for k in metrics
    }
