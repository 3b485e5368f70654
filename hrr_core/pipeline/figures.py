"""Stage ``figures``: every figure from the outputs of the stages above it (metric bars with
intervals, ROC and PR curves, size curves, training curves, ablation bars, the study's
cross-generator heatmap, robustness curves with the bias audit, AFR sparsity and the
retrospection residual maps), and ``metrics/compare.json``: every method's paired photo-level
difference against ``evaluate.reference``. A change to plotting re-runs only this stage."""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch

from hrr_core import methods
from hrr_core.benchmark.build import families_of
from hrr_core.data.manifest import absolute_paths, read_manifest
from hrr_core.data.transforms import to_tensor
from hrr_core.evaluation.heldout import split_families
from hrr_core.evaluation.metrics import pr_points
from hrr_core.evaluation.protocol import generator_set
from hrr_core.evaluation.tables import operating_points, paired_difference
from hrr_core.io import atomic_write_json, image_to_array, load_image
from hrr_core.models.ldm import LatentDiffusion
from hrr_core.models.msr import retrospect
from hrr_core.pipeline.paths import StagePaths
from hrr_core.pipeline.readback import ablation_table, afr_sparsity_rows, read_studies
from hrr_core.plotting import (
    ablation_figure,
    afr_sparsity_figure,
    cross_generator_heatmap,
    history_figure,
    metric_bars,
    pr_figure,
    residual_grid,
    robustness_figure,
    roc_figure,
    save_figure,
    size_figure,
)
from hrr_core.schema import Config

FIGURES = (
    "metrics_per_generator.png",
    "roc.png",
    "size.png",
    "training.png",
    "ablations.png",
    "pr.png",
    "cross_generator.png",
    "robustness.png",
    "afr_sparsity.png",
    "residuals.png",
)


def residual_examples(cfg: Config, paths: StagePaths, manifest: pd.DataFrame, method: str = "hrr", seed: int = 0):
    """One test real of the largest size and the fake of every family made from it, with their
    retrospection residuals at each MSR scale: (arrays, residuals (B, K, 3, S, S), names, scales)."""
    msr = dataclasses.replace(cfg.model_config(method).msr, representation="residual").resolved()
    ldm = LatentDiffusion.load(paths.retrospection_ldm, torch.device("cpu")) if msr.retrospection else None
    test = manifest[manifest["split"] == "test"]
    reals = test[(test["label"] == 0) & (test["width"] == test["width"].max())].sort_values("id")
    real = reals.iloc[len(reals) // 2]["id"]
    ids = [real] + [f"{real}-{fam}" for fam in families_of(manifest)]
    rows = test.set_index("id").reindex([i for i in ids if i in set(test["id"])]).reset_index()
    arrays = [image_to_array(load_image(p)) for p in absolute_paths(rows)]
    reps = retrospect([to_tensor(a) for a in arrays], ldm, msr, torch.Generator().manual_seed(seed))  # (B, K, 3, S, S)
    names = ["real" if g == "real" else g for g in rows["generator"]]
    return arrays, reps.float().numpy(), names, list(msr.scale_factors)


def study_figures(cfg: Config, paths: StagePaths, manifest: pd.DataFrame) -> dict:
    """The study's figures that have data: cross-generator heatmap, robustness curves with the
    bias audit, PR curves, AFR sparsity against its weight, retrospection residuals."""
    names, figures = list(cfg.methods), {}
    study = read_studies(paths, names)
    if len(study):
        figures["cross_generator.png"] = cross_generator_heatmap(study)
        curves = [
            pd.read_csv(f).assign(method=m, condition=f.stem)
            for m in names
            for f in sorted((paths.plots / "study" / m).glob("*.csv"))
        ]
        bias = (
            study[study["condition"].isin(["clean", "harmonise"])]
            .groupby(["method", "condition"], as_index=False)["ap"]
            .mean()
        )
        figures["robustness.png"] = robustness_figure(
            pd.concat(curves) if curves else pd.DataFrame(columns=["condition"]), bias
        )
    pr = []
    test = manifest[manifest["split"] == "test"]
    for m in names:
        scored = test.merge(pd.read_csv(paths.results_dir(m) / "scores.csv"), on="id")
        for fam in families_of(test):
            part = generator_set(scored, fam)  # the reals this generator is compared against, as in evaluate
            pr.append(
                pd.DataFrame(pr_points(part["score"].to_numpy(), part["label"].to_numpy())).assign(method=m, test=fam)
            )
    figures["pr.png"] = pr_figure(pd.concat(pr))
    sparsity = afr_sparsity_rows(paths, cfg.ablations)
    if len(sparsity):
        figures["afr_sparsity.png"] = afr_sparsity_figure(sparsity)
    if "hrr" in cfg.methods and methods.spec_of(cfg, "hrr").reads == "msr":
        figures["residuals.png"] = residual_grid(*residual_examples(cfg, paths, manifest))
    return figures


def paired_comparisons(cfg: Config, paths: StagePaths, manifest: pd.DataFrame, n_boot: int = 1000) -> dict:
    """Every method minus ``evaluate.reference`` on the same test images: the macro mean over the
    test generators held out for both, with a paired photo-level 95% interval (each method at
    its own validation thresholds); ``resolved`` when the interval excludes 0."""
    ref = cfg.evaluate.reference
    if ref is None or ref not in cfg.methods:
        return {}
    test = manifest[manifest["split"] == "test"]
    families = list(families_of(test))

    def scored(m):
        return test.merge(pd.read_csv(paths.results_dir(m) / "scores.csv")[["id", "score"]], on="id")

    ref_scores, ref_ops = scored(ref), operating_points(cfg, manifest, paths.model_dir(ref))
    ref_held, _ = split_families(cfg.method(ref).train_generators, families)
    out = {"reference": ref, "n_boot": n_boot, "differences": {}}
    for m in cfg.methods:
        if m == ref:
            continue
        held = [f for f in split_families(cfg.method(m).train_generators, families)[0] if f in ref_held]
        if not held:
            continue
        diff = paired_difference(
            scored(m), ref_scores, held, operating_points(cfg, manifest, paths.model_dir(m)), ref_ops, n_boot, cfg.seed
        )
        out["differences"][m] = {"families": held, **diff}
    return out


def run(cfg: Config, paths: StagePaths) -> dict:
    """Figures from every method's results: metric bars with CIs, ROC and PR curves, size
    curves, training curves, the ablation bars, and the study's figures (cross-generator
    heatmap, robustness curves and bias audit, AFR sparsity, retrospection residuals)."""
    names = list(cfg.methods)
    results = pd.concat([pd.read_csv(paths.results_dir(m) / "results.csv", dtype={"size": str}) for m in names])
    rocs = []
    for m in names:
        for f in sorted((paths.plots / "roc" / m).glob("*.csv")):
            rocs.append(pd.read_csv(f).assign(method=m, test=f.stem))
    history = pd.concat([pd.read_csv(paths.model_dir(m) / "history.csv") for m in names])
    figures = {
        "metrics_per_generator.png": metric_bars(results),
        "roc.png": roc_figure(pd.concat(rocs)),
        "size.png": size_figure(results),
        "training.png": history_figure(history),
    }
    ablations = ablation_table(paths)
    if len(ablations):
        figures["ablations.png"] = ablation_figure(ablations)
    manifest = read_manifest(paths.manifest(cfg))
    figures.update(study_figures(cfg, paths, manifest))
    atomic_write_json(paths.metrics / "compare.json", paired_comparisons(cfg, paths, manifest))
    for name, fig in figures.items():
        save_figure(fig, paths.figures / name)
    return {"figures": [str(paths.figures / n) for n in figures], "results": results, "ablations": ablations}


def load(cfg: Config, paths: StagePaths) -> dict:
    results = [
        pd.read_csv(f, dtype={"size": str})
        for m in cfg.methods
        if (f := paths.results_dir(m) / "results.csv").is_file()
    ]
    return {
        "figures": [str(paths.figures / n) for n in FIGURES if (paths.figures / n).is_file()],
        "results": pd.concat(results) if results else pd.DataFrame(),
        "ablations": ablation_table(paths),
    }
