"""The pipeline's stages as plain functions; each notebook calls one and plots its outputs.

Every stage reads the typed config, writes only the paths :func:`stage_paths` names (the
same paths ``dvc.yaml`` declares) and returns a small dict summary for the notebook.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hrr_core.benchmark.audit import assert_unbiased, bias_audit, dataset_card
from hrr_core.benchmark.build import build_benchmark, families_of, photo_table
from hrr_core.benchmark.external import bind_benchmark
from hrr_core.config import Config
from hrr_core.confutil import to_dict
from hrr_core.data.manifest import absolute_paths, check_no_leakage, read_manifest
from hrr_core.data.transforms import to_tensor
from hrr_core.evaluation.metrics import roc_points
from hrr_core.evaluation.protocol import generator_set, results_table, summary, training_set
from hrr_core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, image_to_array, load_image
from hrr_core.paths import project_root, resolve
from hrr_core.runtime import is_main_process, resolve_device, seed_everything

log = logging.getLogger("hrr")


@dataclass(frozen=True)
class StagePaths:
    """Where the stages read and write, relative to the project root (mirrors dvc.yaml)."""

    root: Path

    def data(self, cfg: Config) -> Path:
        return resolve(cfg.benchmark.out_dir, self.root)

    def manifest(self, cfg: Config) -> Path:
        return self.data(cfg) / "manifest.csv"

    def model_dir(self, method: str) -> Path:
        return self.root / "models" / method

    def results_dir(self, method: str) -> Path:
        return self.root / "results" / method

    @property
    def retrospection(self) -> Path:
        return self.root / "data" / "retrospection"

    @property
    def retrospection_ldm(self) -> Path:
        return self.root / "models" / "retrospection_ldm"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def plots(self) -> Path:
        return self.root / "plots"


def stage_paths(root: str | Path | None = None) -> StagePaths:
    return StagePaths(Path(root) if root else project_root())


def _load_images(paths: list[str]) -> list[torch.Tensor]:
    return [to_tensor(image_to_array(load_image(p))) for p in paths]


def family_difficulty(manifest: pd.DataFrame, families: list[str], seed: int) -> dict[str, float]:
    """Trivial detector AP per family: trained on train photos, tested on test photos."""
    from hrr_core.benchmark.difficulty import trivial_detector_ap

    out = {}
    for fam in families:
        sets = []
        for split in ("train", "test"):
            part = generator_set(manifest, fam, split)
            paths = absolute_paths(part)
            sets.append(_load_images(paths[part["label"] == 0].tolist()))
            sets.append(_load_images(paths[part["label"] == 1].tolist()))
        out[fam] = round(float(trivial_detector_ap(sets[0], sets[1], sets[2], sets[3], seed)), 4)
    return out


def run_prepare(cfg: Config, root: str | Path | None = None, echo=print) -> dict:
    """Build the embedded benchmark, audit it, and write its card, metrics and sample grid."""
    from hrr_core.benchmark.photos import load_seed_photo, load_seed_table, verify_seed_set
    from hrr_core.benchmark.stats import generator_image_stats
    from hrr_core.plotting import sample_grid, save_figure

    paths = stage_paths(root)
    if not cfg.real_benchmark.is_embedded:  # real_benchmark.source selects an adapter (hrr_core.benchmark.external)
        from hrr_core.benchmark.external import run_prepare_external

        return run_prepare_external(cfg, paths, echo)
    seed_dir = resolve(cfg.benchmark.seed_dir, paths.root)
    problems = verify_seed_set(seed_dir)
    if problems:
        raise RuntimeError(f"seed set {seed_dir} failed verification: {problems[:5]}; "
                           "restore it from git or rebuild it: python -m hrr_core.benchmark.photos rebuild --dest data/seed")
    seed_everything(cfg.seed)
    table = photo_table(load_seed_table(seed_dir), cfg.benchmark)
    manifest = build_benchmark(table, lambda row: load_seed_photo(seed_dir, row), cfg.benchmark, cfg.zoo_config(),
                               paths.data(cfg), resolve_device(cfg.device), cfg.seed, echo)
    manifest.attrs["root"] = str(paths.data(cfg))
    check_no_leakage(manifest)
    audit = bias_audit(manifest)
    stats = json.loads((paths.data(cfg) / "generator_stats.json").read_text())
    difficulty = family_difficulty(manifest, list(families_of(manifest)), cfg.seed)
    image_stats = generator_image_stats(manifest)  # every split, reals under "real"; seconds
    card = dataset_card(manifest, audit, stats, difficulty, to_dict(cfg.benchmark), image_stats=image_stats)
    atomic_write_text(paths.reports / "dataset_card.md", card)
    metrics = {"images": len(manifest), "real": int((manifest["label"] == 0).sum()), "fake": int((manifest["label"] == 1).sum()),
               "photos": {s: int(manifest.loc[manifest["split"] == s, "source"].nunique()) for s in ("train", "val", "test")},
               "bias_audit_ok": audit["ok"],
               "families": {f: {"psnr_db": round(stats[f]["psnr_db"], 3), "trivial_ap": difficulty[f],
                                "fit_seconds": stats[f]["fit_seconds"], "image": image_stats.get(f)} for f in stats},
               "real_image": image_stats.get("real")}
    atomic_write_json(paths.metrics / "prepare.json", metrics)
    atomic_write_json(paths.reports / "bias_audit.json", audit)
    save_figure(sample_grid(manifest, list(cfg.benchmark.families)), paths.figures / "sample_grid.png")
    assert_unbiased(audit)  # after writing the report, so a failure can be inspected
    return {"manifest": manifest, "card": card, "metrics": metrics}


def _image_loader(df: pd.DataFrame, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0, transform=None):
    from torch.utils.data import DataLoader

    from hrr_core.data.datasets import ManifestImageDataset, SizeBucketBatchSampler, collate

    ds = ManifestImageDataset(df, transform=transform)
    sampler = SizeBucketBatchSampler(ds.sizes, batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def _loader(cfg: Config, method: str, df: pd.DataFrame, paths: StagePaths, batch_size: int, shuffle: bool, seed: int,
            workers: int = 0, train: bool = False):
    """Images for image-input methods (with the method's train-time augmentation when
    ``train``); cached representations for HRR (MSR) and DIRE (residuals) methods."""
    from hrr_core.representations import cache_folder

    m = cfg.method(method)
    folder = cache_folder(cfg, method, paths.retrospection)
    if folder is None:
        from hrr_core.models.registry import train_transform

        transform = train_transform(m.kind, cfg.model_config(method), m.baseline, seed) if train else None
        return _image_loader(df, batch_size, shuffle, seed, workers, transform)
    from torch.utils.data import DataLoader

    from hrr_core.data.datasets import SizeBucketBatchSampler, collate
    from hrr_core.retrospection import RetrospectionDataset

    ds = RetrospectionDataset(df, folder)
    sampler = SizeBucketBatchSampler(ds.sizes, batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers)


def retrospection_rows(cfg: Config, manifest: pd.DataFrame, method: str) -> pd.DataFrame:
    """What one cached-input method (HRR, DIRE) reads: train/val sets of its generators (and of
    every family the study trains on alone, ``study.cross_train``) and the whole test split."""
    trainable = set(manifest.loc[(manifest["split"] == "train") & (manifest["label"] == 1), "generator"])
    cross = [f for f in cfg.study.cross_train if f in trainable] if method in cfg.methods else []  # study@ reports the rest
    gens = list(dict.fromkeys([*cfg.method(method).train_generators, *cross]))
    parts = [training_set(manifest, gens, "train"), training_set(manifest, gens, "val"), manifest[manifest["split"] == "test"]]
    return pd.concat(parts).drop_duplicates("id")


def run_retrospect(cfg: Config, root: str | Path | None = None, echo=print) -> dict:
    """Train (or load) the retrospection LDM on train-split reals, then cache the MSR
    representation of every image each HRR method needs, keyed by its MSR config, and the
    residuals of every DIRE method, keyed by its representation config."""
    from hrr_core.representations import compute_dire_cache, dire_methods, uses_retrospection_ldm
    from hrr_core.retrospection import compute_cache, prepare_ldm

    paths = stage_paths(root)
    rcfg = cfg.retrospection_config()
    seed_everything(rcfg.seed)
    manifest = read_manifest(paths.manifest(cfg))
    cfg = bind_benchmark(cfg, manifest)
    device = resolve_device(cfg.device)
    train_reals = manifest[(manifest["split"] == "train") & (manifest["label"] == 0)]
    needs_ldm = any(cfg.model_config(m).msr.resolved().retrospection for m in cfg.hrr_methods()) or uses_retrospection_ldm(cfg)
    ldm, ldm_stats = (prepare_ldm(rcfg, _load_images(absolute_paths(train_reals).tolist()), paths.retrospection_ldm, device)
                      if needs_ldm else (None, {"source": "none: no method uses retrospection"}))
    if ldm is None:  # the stage's declared outputs exist either way
        atomic_write_text(paths.retrospection_ldm / "NONE.txt", ldm_stats["source"] + "\n")
    paths.retrospection.mkdir(parents=True, exist_ok=True)
    costs = {}
    for method in cfg.hrr_methods():
        msr = cfg.model_config(method).msr
        costs[method] = compute_cache(retrospection_rows(cfg, manifest, method), ldm, msr, rcfg, paths.retrospection, echo)
    for method in dire_methods(cfg):
        costs[method] = compute_dire_cache(cfg, method, retrospection_rows(cfg, manifest, method), ldm, paths.retrospection, device, echo)
    metrics = {"ldm": ldm_stats, "methods": costs}
    atomic_write_json(paths.metrics / "retrospect.json", metrics)
    return metrics


def run_train(cfg: Config, method: str, root: str | Path | None = None, resume: bool = False) -> dict:
    """Train ``methods.<method>`` on its training generators (train split), selecting on val;
    ``resume`` continues an interrupted run from ``models/<method>/last``."""
    paths = stage_paths(root)
    cfg = bind_benchmark(cfg, read_manifest(paths.manifest(cfg)))  # a real benchmark's preset picks the generators
    metrics, history, train_df, val_df = fit_method(cfg, method, paths, paths.model_dir(method), resume)
    if not is_main_process():  # other ranks of a multi-GPU run: rank 0 writes
        return {"metrics": {}, "history": history}
    atomic_write_json(paths.metrics / "train" / f"{method}.json", metrics)
    _write_card(cfg, method, train_df, val_df, paths)
    return {"metrics": metrics, "history": history}


def fit_method(cfg: Config, method: str, paths: StagePaths, out: Path, resume: bool = False):
    """Train ``method`` (seed ``train.seed`` after its overrides) into ``out`` (best/, last/,
    history.csv); return (metrics, history, train rows, val rows)."""
    from hrr_core.models.registry import build_model, build_objective, is_scorer
    from hrr_core.training.checkpoint import load_weights
    from hrr_core.training.loop import fit

    manifest = read_manifest(paths.manifest(cfg))
    m, tcfg, mcfg = cfg.method(method), cfg.train_config(method), cfg.model_config(method)
    seed_everything(tcfg.seed)
    train_df, val_df = training_set(manifest, m.train_generators, "train"), training_set(manifest, m.train_generators, "val")
    if is_scorer(m.kind, m.baseline):
        metrics, history = _fit_scorer(cfg, method, train_df, val_df, out)
        return metrics, history, train_df, val_df
    model = build_model(m.kind, mcfg, m.baseline)
    objective = build_objective(m.kind, mcfg)
    train_loader = _loader(cfg, method, train_df, paths, tcfg.batch_size, True, tcfg.seed, tcfg.num_workers, train=True)
    val_loader = _loader(cfg, method, val_df, paths, tcfg.batch_size, False, tcfg.seed, tcfg.num_workers)
    run_config = {"method": method, "kind": m.kind, "baseline": m.baseline, "model": to_dict(mcfg), "train": to_dict(tcfg),
                  "train_generators": list(m.train_generators), "profile": cfg.profile,
                  "data": {"manifest": str(paths.manifest(cfg).relative_to(paths.root)), "n_train": len(train_df), "n_val": len(val_df)}}
    result = fit(model, objective, train_loader, val_loader, tcfg, out, resume=resume, live=out / "live", run_config=run_config)
    history = pd.DataFrame(result.history).assign(method=method)
    metrics = {"best_val_ap": None if result.best_val_ap is None else round(float(result.best_val_ap), 4),
               "best_epoch": result.best_epoch, "steps": int(result.steps), "seed": tcfg.seed,
               "n_train": len(train_df), "n_val": len(val_df), "train_generators": list(m.train_generators)}
    if m.kind == "hrr" and getattr(model, "afr", None) is not None:  # which AFR dimensions survived (best weights)
        load_weights(out / "best", model)
        metrics["afr"] = {"active_dims": model.afr.active_dims(), "dims": int(model.afr.group_norms().numel()),
                          "lambda_omega": float(mcfg.objective.lambda_omega)}
    if is_main_process():
        atomic_write_bytes(out / "history.csv", history.to_csv(index=False).encode())
    return metrics, history, train_df, val_df


def _write_card(cfg: Config, method: str, train_df: pd.DataFrame, val_df: pd.DataFrame, paths: StagePaths) -> None:
    """Make ``models/<method>`` self-describing for hrr-detect: config, preprocessing, and the
    threshold calibrated on validation scores (never test)."""
    from hrr_core.predict import write_card_for_method

    scored = score_split(cfg, method, val_df, paths)
    labels = val_df.set_index("id").loc[scored["id"], "label"]
    summary = {"manifest": str(paths.manifest(cfg).relative_to(paths.root)), "n_train": len(train_df), "n_val": len(val_df),
               "train_generators": list(cfg.method(method).train_generators)}
    from hrr_core.representations import card_ldm_dir

    ldm = card_ldm_dir(cfg, method, paths.retrospection_ldm)
    write_card_for_method(cfg, method, paths.model_dir(method), scored["score"], labels, summary, retrospection_ldm_dir=ldm)


def _fit_scorer(cfg: Config, method: str, train_df: pd.DataFrame, val_df: pd.DataFrame, out: Path) -> tuple[dict, pd.DataFrame]:
    """Fit a training-free / scikit-learn baseline on the train split into ``out``; report val AP."""
    from hrr_core.evaluation.metrics import binary_metrics
    from hrr_core.models.registry import build_model

    m = cfg.method(method)
    model = build_model(m.kind, cfg.model_config(method), m.baseline)
    model.fit(_load_images(absolute_paths(train_df).tolist()), train_df["label"].to_numpy())
    model.save(out / "best")
    val = binary_metrics(model.score(_load_images(absolute_paths(val_df).tolist())), val_df["label"].to_numpy())
    history = pd.DataFrame([{"epoch": 1, "val/ap": val["ap"], "val/acc": val["acc"], "method": method}])
    atomic_write_bytes(out / "history.csv", history.to_csv(index=False).encode())
    metrics = {"best_val_ap": round(val["ap"], 4), "best_epoch": 1, "steps": 0, "seed": cfg.train_config(method).seed,
               "n_train": len(train_df), "n_val": len(val_df), "train_generators": list(m.train_generators)}
    return metrics, history


def score_split(cfg: Config, method: str, df: pd.DataFrame, paths: StagePaths, model_dir: Path | None = None) -> pd.DataFrame:
    """Scores of every row of ``df`` under the trained ``method`` (its weights from ``model_dir``,
    default ``models/<method>``): columns id, logit, score (probability of being generated)."""
    from hrr_core.models.registry import build_model, is_scorer
    from hrr_core.training.checkpoint import load_weights
    from hrr_core.training.loop import predict_loader

    m, ecfg = cfg.method(method), cfg.evaluate
    mcfg = cfg.model_config(method)
    loader = _loader(cfg, method, df, paths, ecfg.batch_size, False, 0)
    if is_scorer(m.kind, m.baseline):
        from hrr_core.models.baselines import BASELINES

        model = BASELINES[m.baseline][1].load((model_dir or paths.model_dir(method)) / "best")
        ids, probs = [], []
        for batch in loader:
            ids += batch["ids"]
            probs.append(np.asarray(model.score(batch["inputs"]), dtype=np.float64))
        probs = np.concatenate(probs)
        logits = np.log(np.clip(probs, 1e-12, 1)) - np.log(np.clip(1 - probs, 1e-12, 1))
    else:
        model = build_model(m.kind, mcfg, m.baseline)
        load_weights((model_dir or paths.model_dir(method)) / "best", model)
        ids, logits, _ = predict_loader(model, loader, resolve_device(cfg.device))
        logits = np.asarray(logits, dtype=np.float64)
        probs = torch.sigmoid(torch.as_tensor(logits)).numpy()
    return pd.DataFrame({"id": ids, "logit": logits, "score": probs})


def run_evaluate(cfg: Config, method: str, root: str | Path | None = None) -> dict:
    """Score every test image with the best checkpoint; write scores, the tidy results table,
    metrics (macro means + per generator) and ROC points per test generator."""
    paths = stage_paths(root)
    manifest = read_manifest(paths.manifest(cfg))
    cfg = bind_benchmark(cfg, manifest)
    m, ecfg = cfg.method(method), cfg.evaluate
    test_df = manifest[manifest["split"] == "test"]
    scored = score_split(cfg, method, test_df, paths)
    out = paths.results_dir(method)
    atomic_write_bytes(out / "scores.csv", scored.to_csv(index=False).encode())
    families = list(families_of(test_df))  # the test split's generators (the embedded build has every family in every split)
    table = results_table(scored, manifest, method, m.train_generators, families, ecfg.threshold, ecfg.n_boot, cfg.seed, ecfg.by_size)
    atomic_write_bytes(out / "results.csv", table.to_csv(index=False).encode())
    atomic_write_json(paths.metrics / "evaluate" / f"{method}.json",
                      {**summary(table)[method], "profile": cfg.profile, "train_generators": list(m.train_generators)})
    merged = test_df.merge(scored, on="id")
    for fam in families:
        part = generator_set(merged, fam)
        roc = pd.DataFrame(roc_points(part["score"].to_numpy(), part["label"].to_numpy()))
        atomic_write_bytes(paths.plots / "roc" / method / f"{fam}.csv", roc.to_csv(index=False).encode())
    return {"results": table, "scores": scored}


def ablation_table(root: Path) -> pd.DataFrame:
    """Mean metrics of full HRR and of every ablation row that ran (skipped rows left out)."""
    rows = []
    for f in sorted((root / "metrics" / "evaluate").glob("*.json")):
        if f.stem == "hrr" or f.stem.startswith("ablation-"):
            data = json.loads(f.read_text())
            if "mean" in data:
                rows.append({"row": "full HRR" if f.stem == "hrr" else f.stem.removeprefix("ablation-"), **data["mean"]})
    return pd.DataFrame(rows)


def run_figures(cfg: Config, root: str | Path | None = None) -> dict:
    """Figures from every method's results: metric bars with CIs, ROC and PR curves, size
    curves, training curves, the ablation bars, and the study's figures (cross-generator
    heatmap, robustness curves and bias audit, AFR sparsity, retrospection residuals)."""
    from hrr_core.plotting import ablation_figure, history_figure, metric_bars, roc_figure, save_figure, size_figure
    from hrr_core.study import study_figures

    paths = stage_paths(root)
    methods = list(cfg.methods)
    results = pd.concat([pd.read_csv(paths.results_dir(m) / "results.csv", dtype={"size": str}) for m in methods])
    rocs = []
    for m in methods:
        for f in sorted((paths.plots / "roc" / m).glob("*.csv")):
            rocs.append(pd.read_csv(f).assign(method=m, test=f.stem))
    history = pd.concat([pd.read_csv(paths.model_dir(m) / "history.csv") for m in methods])
    figures = {"metrics_per_generator.png": metric_bars(results), "roc.png": roc_figure(pd.concat(rocs)),
               "size.png": size_figure(results), "training.png": history_figure(history)}
    ablations = ablation_table(paths.root)
    if len(ablations):
        figures["ablations.png"] = ablation_figure(ablations)
    figures.update(study_figures(cfg, paths, read_manifest(paths.manifest(cfg))))
    for name, fig in figures.items():
        save_figure(fig, paths.figures / name)
    return {"figures": [str(paths.figures / n) for n in figures], "results": results, "ablations": ablations}


def run_ablation(cfg: Config, row: str, root: str | Path | None = None) -> dict:
    """Train and evaluate one HRR ablation row (``ablations.<row>`` applied to methods.hrr),
    or, for a row the profile does not run (``ablation_run``), write outputs that say so."""
    from hrr_core.config import ablation_method

    paths = stage_paths(root)
    method = ablation_method(row)
    if row not in cfg.ablation_run:
        note = f"skipped: ablation {row!r} is not in ablation_run of profile {cfg.profile!r} ({list(cfg.ablation_run)})"
        for folder in (paths.model_dir(method), paths.results_dir(method), paths.plots / "roc" / method):
            atomic_write_text(folder / "SKIPPED.txt", note + "\n")
        for kind in ("train", "evaluate"):
            atomic_write_json(paths.metrics / kind / f"{method}.json", {"skipped": note, "profile": cfg.profile})
        return {"skipped": note}
    trained = run_train(cfg, method, root)
    evaluated = run_evaluate(cfg, method, root)
    return {"metrics": trained["metrics"], "results": evaluated["results"]}
