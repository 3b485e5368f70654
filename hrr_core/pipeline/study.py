"""Stage ``study@<method>``: what one train/evaluate run cannot say.

1. Seeds: the method is retrained with every seed of ``study.seeds`` on its own training
   generators (the main model of ``train@<method>`` is the run of seed ``train.seed``); the
   headline is the mean ± sample std over seeds of the macro-mean metrics.
2. Cross-generator matrix: retrained on each family of ``study.cross_train`` alone (seed
   ``train.seed``) and tested on every family.
3. k-fold over photo groups (``study.folds`` > 0, the ``full`` profile): the detector photos
   (style-shift collections left out) are re-split k ways so that every photo is a test photo
   of exactly one fold; each fold's model is trained, calibrated on its val fold and tested.
4. Robustness of the main model, on a fixed stratified sample of the test split, under each
   condition of :mod:`hrr_core.evaluation.robustness` (rescaling, JPEG, blur, downscaling and
   the bias-audit harmonisation), applied identically to both classes. Scoring goes through the
   detector card (:func:`hrr_core.inference.load_detector`), so HRR re-renders every perturbed image.

Everything lands in one tidy table, ``results/study/<method>/study.csv``: method × train ×
test × size × condition × level × seed with every metric and its bootstrap interval (condition
``none``: seeds and matrix; ``fold`` with level f: fold f; the others: robustness).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import torch

from hrr_core import methods
from hrr_core.benchmark.build import families_of
from hrr_core.benchmark.splits import kfold_assignments
from hrr_core.confutil import deep_merge
from hrr_core.data.manifest import absolute_paths, read_manifest
from hrr_core.data.transforms import to_tensor
from hrr_core.evaluation.robustness import condition_transform, processing_transform
from hrr_core.evaluation.stats import cluster_bootstrap
from hrr_core.evaluation.tables import OperatingPoints, cluster_column, operating_points, results_rows
from hrr_core.inference import load_detector
from hrr_core.io import atomic_write_bytes, atomic_write_json, image_to_array, load_image
from hrr_core.pipeline.common import bind_benchmark, fit_method, score_split
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import Config

log = logging.getLogger("hrr")
HEADLINE = ("ap", "auc", "acc", "real_acc", "fake_acc", "tpr_at_fpr", "ece", "acc_at05")
CURVE_METRICS = ("acc", "ap", "auc")
NOT_ROBUSTNESS = ("none", "fold")  # study.csv conditions that score clean test images


def variant(cfg: Config, method: str, train: tuple[str, ...], seed: int) -> Config:
    """``cfg`` with ``methods.<method>`` trained on ``train`` with seed ``seed``."""
    m = cfg.methods[method]
    changed = dataclasses.replace(
        m, train_generators=tuple(train), train_overrides=deep_merge(m.train_overrides, {"seed": seed})
    )
    return dataclasses.replace(cfg, methods={**cfg.methods, method: changed})


def study_runs(cfg: Config, method: str) -> list[tuple[tuple[str, ...], int]]:
    """(train generators, seed) of every model the study scores; the main model first. Methods
    fitted without a training loop (spectrum_lr, aeroblade) are deterministic: one seed."""
    m = cfg.method(method)
    main, seed0 = tuple(m.train_generators), cfg.train_config(method).seed
    seeds = () if methods.spec_of(cfg, method).is_scorer else cfg.study.seeds
    runs = [(main, seed0)] + [(main, s) for s in seeds] + [((f,), seed0) for f in cfg.study.cross_train]
    return list(dict.fromkeys(runs))


def robustness_sample(test: pd.DataFrame, per_cell: int | None, seed: int) -> pd.DataFrame:
    """A fixed sample of the test split: ``per_cell`` images of every (label, generator) cell
    (the reals are one cell, each generator's fakes one), spread evenly over the sizes of the
    cell; a cell with fewer images is taken whole, and all of it when ``per_cell`` is None."""
    if per_cell is None:
        return test
    parts = []
    for _, cell in test.groupby(["label", "generator"], sort=True):
        shuffled = cell.sample(frac=1.0, random_state=seed)
        turn = shuffled.groupby("width", sort=True).cumcount()  # round-robin over the sizes
        parts.append(shuffled.assign(_turn=turn.to_numpy()).sort_values(["_turn", "width"], kind="stable")[:per_cell])
    return pd.concat(parts).drop(columns="_turn").sort_values("id")


def _score_condition(detector, arrays: list[np.ndarray], transform, batch_size: int) -> np.ndarray | None:
    """Probabilities for ``arrays`` (uint8) after ``transform``, batched by shape; None when a
    transformed image is smaller than the detector accepts (it does not upscale)."""
    tensors = [to_tensor(transform(a)) for a in arrays]  # (3, H', W') each
    if min(min(t.shape[-2:]) for t in tensors) < detector.min_side:
        return None
    probs = np.empty(len(tensors))
    by_shape: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        by_shape.setdefault(tuple(t.shape), []).append(i)
    for idx in by_shape.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            probs[chunk] = detector.predict_images([tensors[i] for i in chunk])
    return probs


def robustness_rows(
    cfg: Config, method: str, paths: StagePaths, manifest: pd.DataFrame, echo=print
) -> list[pd.DataFrame]:
    """One tidy block per condition: the main model scored on the perturbed sample."""
    scfg, ecfg = cfg.study, cfg.evaluate
    sample = robustness_sample(manifest[manifest["split"] == "test"], scfg.per_cell, cfg.seed)
    arrays = [image_to_array(load_image(p)) for p in absolute_paths(sample)]
    detector = load_detector(paths.model_dir(method), cfg.device)
    main, seed0 = cfg.method(method).train_generators, cfg.train_config(method).seed
    ops = operating_points(cfg, manifest, paths.model_dir(method))
    families, rows = list(families_of(manifest[manifest["split"] == "test"])), []  # the test split's generators
    for condition, level in scfg.robustness.conditions():
        with torch.inference_mode():
            probs = _score_condition(
                detector, arrays, condition_transform(scfg.robustness, condition, level), ecfg.batch_size
            )
        if probs is None:
            echo(
                f"{method}: {condition} {level:g} skipped: images fall below the detector's minimum side "
                f"({detector.min_side} px)"
            )
            continue
        scored = sample.assign(score=probs)
        table = results_rows(scored, method, main, families, ops, ecfg.n_boot, cfg.seed, False, (), ecfg.ece_bins)
        rows.append(table.assign(condition=condition, level=level, seed=seed0))
        echo(f"{method}: {condition} {level:g}: mean AP {table['ap'].mean():.3f} on {len(sample)} images")
    return rows


def fold_manifests(manifest: pd.DataFrame, k: int, seed: int, style: tuple[str, ...] = ()) -> list[pd.DataFrame]:
    """``manifest`` re-split ``k`` ways by photo group (:func:`kfold_assignments`): fold f's copy
    has part f as test, part f + 1 as val and the rest as train. Photos of the style-shift
    collections ``style`` are left out: they never train, and the main run tests them."""
    keep = manifest
    if style and "collection" in manifest.columns:
        keep = manifest[~manifest["collection"].isin(style)]
    return [keep.assign(split=keep["source"].map(a)) for a in kfold_assignments(keep["source"], k, seed)]


def _fit_and_calibrate(
    cfg: Config, method: str, paths: StagePaths, model_dir, manifest: pd.DataFrame | None = None
) -> OperatingPoints:
    """Train ``method`` into ``model_dir`` (train and val rows only), keep its validation scores
    there (``val_scores.csv``) and return the operating points they calibrate."""
    _, _, _, val_df = fit_method(cfg, method, paths, model_dir, manifest=manifest)
    val = val_df.merge(score_split(cfg, method, val_df, paths, model_dir)[["id", "score"]], on="id")
    atomic_write_bytes(
        model_dir / "val_scores.csv", val[["id", "generator", "label", "score"]].to_csv(index=False).encode()
    )
    return OperatingPoints.from_validation(val, cfg.evaluate.fpr_target, cfg.evaluate.threshold)


def fold_rows(cfg: Config, method: str, paths: StagePaths, manifest: pd.DataFrame, echo=print) -> list[pd.DataFrame]:
    """One tidy block per fold (condition ``fold``, level f) of the k-fold over photo groups:
    the main configuration (train generators, seed ``train.seed``) retrained on each fold."""
    if not cfg.study.folds:
        return []
    main, seed0, ecfg, rows = cfg.method(method).train_generators, cfg.train_config(method).seed, cfg.evaluate, []
    style = tuple(cfg.benchmark.style_shift) if cfg.real_benchmark.is_embedded else ()
    for f, fm in enumerate(fold_manifests(manifest, cfg.study.folds, cfg.seed, style)):
        model_dir = paths.study_model_dir(method, main, seed0, fold=f)
        ops = _fit_and_calibrate(cfg, method, paths, model_dir, manifest=fm)
        test = fm[fm["split"] == "test"]
        scored = test.merge(score_split(cfg, method, test, paths, model_dir)[["id", "score"]], on="id")
        families = list(families_of(test))
        table = results_rows(scored, method, main, families, ops, ecfg.n_boot, cfg.seed, False, (), ecfg.ece_bins)
        rows.append(table.assign(condition="fold", level=float(f), seed=seed0))
        held = table[table["held_out"] & (table["photos"] == "all")]
        n_photos, ap = test["source"].nunique(), held["ap"].mean()
        echo(f"{method}: fold {f + 1}/{cfg.study.folds} ({n_photos} test photos): held-out mean AP {ap:.3f}")
    return rows


def _seed_and_matrix_rows(
    cfg: Config, method: str, paths: StagePaths, manifest: pd.DataFrame, echo=print
) -> list[pd.DataFrame]:
    test = manifest[manifest["split"] == "test"]
    families, ecfg, rows = list(families_of(test)), cfg.evaluate, []
    style = cfg.benchmark.style_shift if cfg.real_benchmark.is_embedded else ()
    for k, (train, seed) in enumerate(study_runs(cfg, method)):
        if k == 0:  # the main model, trained by train@<method>
            model_dir, run_cfg = paths.model_dir(method), cfg
            ops = operating_points(cfg, manifest, model_dir)
        else:
            model_dir, run_cfg = paths.study_model_dir(method, train, seed), variant(cfg, method, train, seed)
            ops = _fit_and_calibrate(run_cfg, method, paths, model_dir)
        scored = test.merge(score_split(run_cfg, method, test, paths, model_dir)[["id", "score"]], on="id")
        table = results_rows(scored, method, train, families, ops, ecfg.n_boot, cfg.seed, False, style, ecfg.ece_bins)
        rows.append(table.assign(condition="none", level=0.0, seed=seed))
        held = table[table["held_out"] & (table["photos"] == "all")]
        echo(f"{method}: trained on {'+'.join(train)}, seed {seed}: held-out mean AP {held['ap'].mean():.3f}")
    return rows


def processed_real_rows(cfg: Config, method: str, paths: StagePaths, manifest: pd.DataFrame, echo=print) -> dict:
    """False-positive rate of the main model at its calibrated threshold on every test real,
    as stored and after each everyday processing of ``evaluate.processed_reals`` (still real),
    with photo-level 95% intervals; the same detector path as the robustness conditions."""
    reals = manifest[(manifest["split"] == "test") & (manifest["label"] == 0)].reset_index(drop=True)
    arrays = [image_to_array(load_image(p)) for p in absolute_paths(reals)]
    detector = load_detector(paths.model_dir(method), cfg.device)
    ops = operating_points(cfg, manifest, paths.model_dir(method))
    clusters = reals[cluster_column(reals)]
    out = {}
    for name, level in [("clean", 0.0), *cfg.evaluate.processed_reals.conditions()]:
        transform = (lambda a: a) if name == "clean" else processing_transform(name, level)
        with torch.inference_mode():
            probs = _score_condition(detector, arrays, transform, cfg.evaluate.batch_size)
        if probs is None:
            echo(f"{method}: processed reals {name} {level:g} skipped: below the detector's minimum side")
            continue
        flagged = probs >= ops.calibrated
        ci = (
            cluster_bootstrap(
                lambda pick, f=flagged: {"fpr": float(f[pick(np.ones(len(f), bool))].mean())},
                clusters,
                cfg.evaluate.n_boot,
                cfg.seed,
            )["fpr"]
            if cfg.evaluate.n_boot
            else (np.nan, np.nan)
        )
        key = "clean" if name == "clean" else f"{name} {level:g}"
        out[key] = {
            "fpr": round(float(flagged.mean()), 4),
            "ci": [round(ci[0], 4), round(ci[1], 4)],
            "mean_score": round(float(probs.mean()), 4),
        }
        echo(f"{method}: test reals {key}: false-positive rate {flagged.mean():.3f} ({len(reals)} reals)")
    return {"n_reals": len(reals), "threshold": ops.calibrated, "conditions": out}


def _mean_std(values: pd.Series) -> dict:
    return {
        "mean": round(float(values.mean()), 4),
        "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else None,
    }


def summarise(study: pd.DataFrame, cfg: Config, method: str) -> dict:
    """The study's ``dvc metrics``: the held-out headline mean ± std over seeds (and the
    in-family and style-shift numbers beside it), the matrix (AP), the held-out mean AP per
    robustness condition and level, the bias-audit drop, and (``study.folds``) the held-out
    mean ± std over the k folds."""
    main, seed0 = "+".join(cfg.method(method).train_generators), cfg.train_config(method).seed
    none = study[(study["condition"] == "none") & (study["photos"] == "all")]
    mine = none[none["train"] == main]
    per_seed = mine[mine["held_out"]].groupby("seed")[list(HEADLINE)].mean()  # held-out macro mean per seed
    in_family = mine[~mine["held_out"]].groupby("seed")[list(HEADLINE)].mean()
    headline = {m: _mean_std(per_seed[m]) for m in HEADLINE}
    style = study[(study["condition"] == "none") & (study["train"] == main) & study["held_out"]]
    by_photos = {
        p: {m: _mean_std(g.groupby("seed")[m].mean()) for m in ("ap", "auc", "acc", "tpr_at_fpr")}
        for p, g in style[style["photos"] != "all"].groupby("photos")
    }
    matrix = {}
    for train, g in none[none["seed"] == seed0].groupby("train"):
        matrix[train] = {
            **{r["test"]: round(float(r["ap"]), 4) for _, r in g.iterrows()},
            "mean": round(float(g.loc[g["held_out"], "ap"].mean()), 4) if g["held_out"].any() else None,
        }
    folds = study[(study["condition"] == "fold") & study["held_out"] & (study["photos"] == "all")]
    per_fold = folds.groupby("level")[list(HEADLINE)].mean()  # held-out macro mean per fold
    robust = study[~study["condition"].isin(NOT_ROBUSTNESS) & study["held_out"]]
    by_cond = robust.groupby(["condition", "level"])[["acc", "ap", "tpr_at_fpr"]].mean()
    robustness = {}
    for (cond, level), r in by_cond.iterrows():
        robustness.setdefault(cond, {})[f"{level:g}"] = {k: round(float(r[k]), 4) for k in ("acc", "ap", "tpr_at_fpr")}
    out = {
        "profile": cfg.profile,
        "train_generators": list(cfg.method(method).train_generators),
        "held_out_generators": sorted(set(mine.loc[mine["held_out"], "test"])),
        "seeds": sorted(int(s) for s in per_seed.index),
        "headline": headline,
        "in_family": {m: _mean_std(in_family[m]) for m in HEADLINE} if len(in_family) else {},
        "photos": by_photos,
        "matrix": matrix,
        "robustness": robustness,
    }
    if len(per_fold):
        out["kfold"] = {"folds": len(per_fold), **{m: _mean_std(per_fold[m]) for m in HEADLINE}}
    if "clean" in robustness and "harmonise" in robustness:
        clean, harm = robustness["clean"]["0"], next(iter(robustness["harmonise"].values()))
        out["bias_audit_drop"] = {k: round(clean[k] - harm[k], 4) for k in ("acc", "ap")}
    return out


def run(cfg: Config, paths: StagePaths, method: str, echo=print) -> dict:
    """Seeds, cross-generator matrix, robustness and processed reals of ``method``; writes the
    tidy table, ``metrics/study/<method>.json`` and one curve CSV per condition under
    ``plots/study/<method>/``."""
    manifest = read_manifest(paths.manifest(cfg))
    cfg = _bind(cfg, manifest, echo)
    robust = robustness_rows(cfg, method, paths, manifest, echo)
    rows = _seed_and_matrix_rows(cfg, method, paths, manifest, echo) + fold_rows(cfg, method, paths, manifest, echo)
    rows += robust
    study = pd.concat(rows, ignore_index=True)
    lead = ["method", "train", "test", "held_out", "photos", "size", "condition", "level", "seed", "n", "threshold"]
    study = study[lead + [c for c in study.columns if c not in lead]]
    out = paths.study_dir(method)
    atomic_write_bytes(out / "study.csv", study.to_csv(index=False).encode())
    n_sample = len(robustness_sample(manifest[manifest["split"] == "test"], cfg.study.per_cell, cfg.seed))
    processed = processed_real_rows(cfg, method, paths, manifest, echo)
    metrics = {**summarise(study, cfg, method), "robustness_images": n_sample, "processed_reals": processed}
    atomic_write_json(paths.metrics / "study" / f"{method}.json", metrics)
    robust = study[~study["condition"].isin(NOT_ROBUSTNESS) & study["held_out"]]
    clean = robust[robust["condition"] == "clean"].groupby("test")[list(CURVE_METRICS)].mean()
    for cond, g in robust[~robust["condition"].isin(["clean", "harmonise"])].groupby("condition"):  # curves
        curve = g.groupby("level")[list(CURVE_METRICS)].mean().reset_index()
        curve = pd.concat([pd.DataFrame([{"level": _identity_level(cond), **clean.mean().to_dict()}]), curve])
        atomic_write_bytes(
            paths.plots / "study" / method / f"{cond}.csv", curve.sort_values("level").to_csv(index=False).encode()
        )
    return {"study": study, "metrics": metrics}


def _bind(cfg: Config, manifest: pd.DataFrame, echo=print) -> Config:
    """A real benchmark's preset picks the training generators; ``cross_train`` keeps only the
    families that have fakes in the manifest's train split (the others are reported)."""
    cfg = bind_benchmark(cfg, manifest)
    trainable = set(manifest.loc[(manifest["split"] == "train") & (manifest["label"] == 1), "generator"])
    missing = [f for f in cfg.study.cross_train if f not in trainable]
    if missing:
        echo(f"study.cross_train: {missing} have no training fakes in this benchmark; their matrix rows are left out")
        cfg = dataclasses.replace(
            cfg,
            study=dataclasses.replace(cfg.study, cross_train=tuple(f for f in cfg.study.cross_train if f in trainable)),
        )
    return cfg


def _identity_level(condition: str) -> float:
    """The level at which a condition leaves the image as stored (where its curve starts)."""
    return {"rescale": 1.0, "jpeg": 100.0, "blur": 0.0, "downscale": 1.0}[condition]  # jpeg: clean drawn at q = 100


def load(cfg: Config, paths: StagePaths, method: str) -> dict:
    return {
        "study": pd.read_csv(paths.study_dir(method) / "study.csv", dtype={"size": str}),
        "metrics": json.loads((paths.metrics / "study" / f"{method}.json").read_text()),
    }
