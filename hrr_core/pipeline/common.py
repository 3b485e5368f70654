"""What several stages share: image and cache loaders, fitting a method, scoring a split.

Methods are known only through the registry (:mod:`hrr_core.methods`): what a method reads
(images or a cached representation), whether the training loop or a direct fit trains it,
and what it reports after training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from hrr_core import methods
from hrr_core.confutil import to_dict
from hrr_core.data.cache import RetrospectionDataset, representation_key
from hrr_core.data.datasets import ManifestImageDataset, SizeBucketBatchSampler, collate, load_images
from hrr_core.data.manifest import absolute_paths, read_manifest
from hrr_core.evaluation.metrics import binary_metrics
from hrr_core.evaluation.protocol import training_set
from hrr_core.evaluation.sanity import check_above_chance
from hrr_core.io import atomic_write_bytes
from hrr_core.pipeline.paths import StagePaths
from hrr_core.runtime import is_main_process, resolve_device, seed_everything
from hrr_core.schema import Config
from hrr_core.training.checkpoint import load_weights
from hrr_core.training.loop import fit, predict_loader


def bind_benchmark(cfg: Config, manifest: pd.DataFrame) -> Config:
    """``cfg`` with every method's ``train_generators`` set to the fake generators of the
    manifest's train split when a real benchmark is selected; ``cfg`` itself otherwise."""
    if cfg.real_benchmark.is_embedded:
        return cfg
    train = manifest[(manifest["split"] == "train") & (manifest["label"] == 1)]
    gens = tuple(sorted(set(train["generator"])))
    if not gens:
        raise ValueError(
            f"real_benchmark: the manifest's train split holds no fakes (preset {cfg.real_benchmark.preset!r}); "
            "choose a preset or real_benchmark.train_generators that selects a training set"
        )
    methods = {name: dataclasses.replace(m, train_generators=gens) for name, m in cfg.methods.items()}
    return dataclasses.replace(cfg, methods=methods)


def cache_folder(cfg: Config, method: str, retrospection_root: Path) -> Path | None:
    """The representation cache a method's loader reads, or None for methods that read images."""
    spec = methods.spec_of(cfg, method)
    if spec.representation is None:
        return None
    rep = spec.representation(cfg.model_config(method), None)
    return Path(retrospection_root) / representation_key(rep.name, rep.config, cfg.retrospection_config())


def loader(
    cfg: Config,
    method: str,
    df: pd.DataFrame,
    paths: StagePaths,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int = 0,
    train: bool = False,
) -> DataLoader:
    """Size-bucketed batches of what ``method`` reads: images (with its train-time augmentation
    when ``train``), or its cached representation."""
    folder = cache_folder(cfg, method, paths.retrospection)
    if folder is None:
        spec = methods.spec_of(cfg, method)
        make = spec.train_transform if train else None
        ds = ManifestImageDataset(df, transform=make(cfg.model_config(method), seed) if make else None)
    else:
        ds = RetrospectionDataset(df, folder)
    sampler = SizeBucketBatchSampler(ds.sizes, batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(
        ds,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        persistent_workers=workers > 0 and folder is None,
    )


FIT_SPLITS = ("train", "val")


def require_fit_splits(rows: pd.DataFrame, where: str) -> pd.DataFrame:
    """``rows`` unchanged if every one is from the train or val split; else a ValueError: no
    training, early stopping, checkpoint choice, threshold or search may see a test row."""
    bad = rows.loc[~rows["split"].isin(FIT_SPLITS), "id"] if len(rows) else []
    if len(bad):
        raise ValueError(
            f"{where} received {len(bad)} rows outside train/val (e.g. {list(bad[:3])}); "
            "fitting and calibration see the train and val splits only"
        )
    return rows


def fit_method(
    cfg: Config, method: str, paths: StagePaths, out: Path, resume: bool = False, manifest: pd.DataFrame | None = None
):
    """Train ``method`` (seed ``train.seed`` after its overrides) into ``out`` (best/, last/,
    history.csv); return (metrics, history, train rows, val rows). Sees train and val only:
    of the benchmark's manifest, or of ``manifest`` (the study's k-fold re-splits it)."""
    manifest = read_manifest(paths.manifest(cfg)) if manifest is None else manifest
    m, tcfg, mcfg, spec = (
        cfg.method(method),
        cfg.train_config(method),
        cfg.model_config(method),
        methods.spec_of(cfg, method),
    )
    seed_everything(tcfg.seed)
    train_df, val_df = (
        require_fit_splits(training_set(manifest, m.train_generators, "train"), f"fit_method({method!r}) train"),
        require_fit_splits(training_set(manifest, m.train_generators, "val"), f"fit_method({method!r}) val"),
    )
    if spec.is_scorer:
        metrics, history = _fit_scorer(cfg, method, train_df, val_df, out)
        return metrics, history, train_df, val_df
    model = spec.build(mcfg)
    train_loader = loader(cfg, method, train_df, paths, tcfg.batch_size, True, tcfg.seed, tcfg.num_workers, train=True)
    val_loader = loader(cfg, method, val_df, paths, tcfg.batch_size, False, tcfg.seed, tcfg.num_workers)
    run_config = {
        "method": method,
        "kind": m.kind,
        "baseline": m.baseline,
        "model": to_dict(mcfg),
        "train": to_dict(tcfg),
        "train_generators": list(m.train_generators),
        "profile": cfg.profile,
        "data": {
            "manifest": str(paths.manifest(cfg).relative_to(paths.root)),
            "n_train": len(train_df),
            "n_val": len(val_df),
        },
    }
    result = fit(
        model,
        spec.objective(mcfg),
        train_loader,
        val_loader,
        tcfg,
        out,
        resume=resume,
        live=out / "live",
        run_config=run_config,
    )
    history = pd.DataFrame(result.history).assign(method=method)
    metrics = {
        "best_val_ap": None if result.best_val_ap is None else round(float(result.best_val_ap), 4),
        "best_epoch": result.best_epoch,
        "steps": int(result.steps),
        "seed": tcfg.seed,
        "n_train": len(train_df),
        "n_val": len(val_df),
        "train_generators": list(m.train_generators),
    }
    if result.best_val_ap is not None and tcfg.require_above_chance:  # at or below chance: no detector
        check_above_chance(method, float(result.best_val_ap), val_df["label"].to_numpy())
    if spec.train_report is not None:  # e.g. which AFR dimensions survived, of the best weights
        load_weights(out / "best", model, ema=tcfg.ema_decay is not None)
        metrics.update(spec.train_report(model, mcfg))
    if is_main_process():
        atomic_write_bytes(out / "history.csv", history.to_csv(index=False).encode())
    return metrics, history, train_df, val_df


def _fit_scorer(
    cfg: Config, method: str, train_df: pd.DataFrame, val_df: pd.DataFrame, out: Path
) -> tuple[dict, pd.DataFrame]:
    """Fit a training-free / scikit-learn method on the train split into ``out``; report val AP."""
    m, spec = cfg.method(method), methods.spec_of(cfg, method)
    model = spec.build(cfg.model_config(method))
    model.fit(load_images(absolute_paths(train_df).tolist()), train_df["label"].to_numpy())
    val_images, val_labels = load_images(absolute_paths(val_df).tolist()), val_df["label"].to_numpy()
    if spec.calibrates_on_val:  # real-only detectors: validation reals set the score scale
        model.calibrate(val_images, val_labels)
    val = binary_metrics(model.score(val_images), val_labels)
    if cfg.train_config(method).require_above_chance:  # before anything is written
        check_above_chance(method, val["ap"], val_labels)
    model.save(out / "best")
    history = pd.DataFrame([{"epoch": 1, "val/ap": val["ap"], "val/acc": val["acc"], "method": method}])
    atomic_write_bytes(out / "history.csv", history.to_csv(index=False).encode())
    metrics = {
        "best_val_ap": round(val["ap"], 4),
        "best_epoch": 1,
        "steps": 0,
        "seed": cfg.train_config(method).seed,
        "n_train": len(train_df),
        "n_val": len(val_df),
        "train_generators": list(m.train_generators),
    }
    return metrics, history


def score_split(
    cfg: Config, method: str, df: pd.DataFrame, paths: StagePaths, model_dir: Path | None = None
) -> pd.DataFrame:
    """Scores of every row of ``df`` under the trained ``method`` (its weights from ``model_dir``,
    default ``models/<method>``): columns id, logit, score (probability of being generated)."""
    spec, mcfg = methods.spec_of(cfg, method), cfg.model_config(method)
    folder = (model_dir or paths.model_dir(method)) / "best"
    # a method reading a cached representation (HRR, DIRE) is scored one image per forward pass, as
    # inference.Detector scores it on the fly: evaluate, the study and hrr-detect give the same floats
    batches = loader(cfg, method, df, paths, 1 if spec.reads != "images" else cfg.evaluate.batch_size, False, 0)
    if spec.is_scorer:
        model = spec.load(folder)
        ids, probs = [], []
        for batch in batches:
            ids += batch["ids"]
            probs.append(np.asarray(model.score(batch["inputs"]), dtype=np.float64))
        probs = np.concatenate(probs)
        logits = np.log(np.clip(probs, 1e-12, 1)) - np.log(np.clip(1 - probs, 1e-12, 1))
    else:
        model = spec.build(mcfg)
        load_weights(
            folder, model, ema=cfg.train_config(method).ema_decay is not None
        )  # best/ was chosen on EMA weights
        ids, logits, _ = predict_loader(model, batches, resolve_device(cfg.device))
        logits = np.asarray(logits, dtype=np.float64)
        probs = torch.sigmoid(torch.as_tensor(logits)).numpy()
    return pd.DataFrame({"id": ids, "logit": logits, "score": probs})
