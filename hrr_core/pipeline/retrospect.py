"""Stage ``retrospect``: HRR's frozen pass, once. Train (or load) the retrospection LDM on
train-split reals, then cache the representation every cached-input method reads (HRR's MSR,
DIRE's residuals) for the rows it needs, keyed by its representation config and the LDM.

Also the command line for one device or many (what the notebook runs, as a script):

    python -m hrr_core.pipeline.retrospect
    torchrun --standalone --nproc_per_node 4 -m hrr_core.pipeline.retrospect
    accelerate launch --multi_gpu --num_processes 4 -m hrr_core.pipeline.retrospect

Under several processes rank 0 trains (or loads) the LDM while the others wait for it; then each
rank computes its share of the cache's shard files (:func:`compute_representation_cache`) and
rank 0 writes the index and ``metrics/retrospect.json``, as one process would.
"""

from __future__ import annotations

import json

import pandas as pd

from hrr_core import methods
from hrr_core.data.cache import RetrospectionDataset, compute_representation_cache
from hrr_core.data.datasets import load_images
from hrr_core.data.manifest import absolute_paths, read_manifest
from hrr_core.evaluation.protocol import training_set
from hrr_core.evaluation.retrospection_check import CHECK_SPLITS, retrospection_check
from hrr_core.io import atomic_write_json, atomic_write_text
from hrr_core.models.ldm import load_ldm
from hrr_core.pipeline.common import bind_benchmark, cache_folder
from hrr_core.pipeline.paths import RUN_KEYS, StagePaths, split_run_figures, stage_config, stage_parser, stage_paths
from hrr_core.retrospection import prepare_ldm, wait_for_ldm
from hrr_core.runtime import resolve_device, seed_everything
from hrr_core.schema import Config, ablation_method
from hrr_core.shard import World


def cached_methods(cfg: Config) -> list[str]:
    """Methods (and ablation rows of ``ablation_run``) whose inputs are cached representations."""
    names = [name for name in cfg.methods if methods.spec_of(cfg, name).reads != "images"]
    return names + [ablation_method(row) for row in cfg.ablation_run]


def retrospection_rows(cfg: Config, manifest: pd.DataFrame, method: str) -> pd.DataFrame:
    """What one cached-input method reads: train/val sets of its generators (and of every
    family the study trains on alone, ``study.cross_train``) and the whole test split; every
    row when the study re-splits the photos into folds (``study.folds``)."""
    if cfg.study.folds:
        return manifest
    trainable = set(manifest.loc[(manifest["split"] == "train") & (manifest["label"] == 1), "generator"])
    cross = (
        [f for f in cfg.study.cross_train if f in trainable] if method in cfg.methods else []
    )  # study@ reports the rest
    gens = list(dict.fromkeys([*cfg.method(method).train_generators, *cross]))
    parts = [
        training_set(manifest, gens, "train"),
        training_set(manifest, gens, "val"),
        manifest[manifest["split"] == "test"],
    ]
    return pd.concat(parts).drop_duplicates("id")


def check_retrospection(cfg: Config, manifest: pd.DataFrame, paths: StagePaths, todo: list[str], echo=print) -> dict:
    """The retrospection check (:mod:`hrr_core.evaluation.retrospection_check`) of every cached MSR
    folder, on its train and val rows, before any detector trains: mean residual per split, class
    and scale, and the validation AP of a linear probe on the residual alone. Methods sharing a
    folder share the result (``same_as``)."""
    out: dict = {}
    seen: dict = {}
    for method in todo:
        if methods.spec_of(cfg, method).reads != "msr":
            continue
        folder = cache_folder(cfg, method, paths.retrospection)
        if folder in seen:
            out[method] = {"same_as": seen[folder]}
            continue
        seen[folder] = method
        msr = cfg.model_config(method).msr.resolved()
        rows = retrospection_rows(cfg, manifest, method)
        rows = rows[rows["split"].isin(CHECK_SPLITS)].reset_index(drop=True)
        representation = msr.representation if msr.retrospection else "image"
        result = retrospection_check(
            rows, RetrospectionDataset(rows, folder), representation, msr.scale_factors, cfg.seed
        )
        out[method] = result
        if "probe" in result and "val_ap" in result["probe"]:
            echo(
                f"retrospection check {method}: linear probe on the residual alone, val AP "
                f"{result['probe']['val_ap']:.3f} (chance {result['probe']['chance_ap']:.3f})"
            )
    return out


def run(cfg: Config, paths: StagePaths, echo=print) -> dict:
    rcfg = cfg.retrospection_config()
    seed_everything(rcfg.seed)
    manifest = read_manifest(paths.manifest(cfg))
    cfg = bind_benchmark(cfg, manifest)
    world = World.from_env()  # several processes under torchrun / accelerate launch
    device = resolve_device(world.device(cfg.device))
    todo = cached_methods(cfg)
    ldm_dirs = {m: methods.spec_of(cfg, m).ldm_dir(cfg.model_config(m), paths.retrospection_ldm) for m in todo}
    if any(d == paths.retrospection_ldm for d in ldm_dirs.values()):
        if not world.is_main:
            wait_for_ldm(rcfg, paths.retrospection_ldm)  # rank 0 trains (or copies) it; the others then load it
        train_reals = manifest[(manifest["split"] == "train") & (manifest["label"] == 0)]
        images = load_images(absolute_paths(train_reals).tolist()) if world.is_main else []
        ldm, ldm_stats = prepare_ldm(rcfg, images, paths.retrospection_ldm, device)
    else:
        ldm, ldm_stats = None, {"source": "none: no method uses retrospection"}
        if world.is_main:
            atomic_write_text(
                paths.retrospection_ldm / "NONE.txt", ldm_stats["source"] + "\n"
            )  # the declared output exists
    paths.retrospection.mkdir(parents=True, exist_ok=True)
    costs = {}
    for method in todo:
        where = ldm_dirs[method]
        model = ldm if where is None or where == paths.retrospection_ldm else load_ldm(where, device)
        rep = methods.spec_of(cfg, method).representation(cfg.model_config(method), model)
        rows = retrospection_rows(cfg, manifest, method)
        costs[method] = compute_representation_cache(
            rows, rep, rcfg, paths.retrospection, model.device if model is not None else device, echo, world
        )
    checks = check_retrospection(cfg, manifest, paths, todo, echo) if world.is_main else {}
    # what was computed now and what was found cached depends on the run's history, not its inputs
    everything = {"ldm": ldm_stats, "methods": costs, "check": checks}
    metrics, run_figures = split_run_figures(everything, RUN_KEYS | {"computed", "cached"})
    if world.is_main:
        atomic_write_json(paths.metrics / "retrospect.json", metrics)
        atomic_write_json(paths.timings("retrospect"), run_figures)
    return everything


def load(cfg: Config, paths: StagePaths) -> dict:
    return json.loads((paths.metrics / "retrospect.json").read_text())


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(
        "retrospect", "The retrospect stage: the retrospection LDM and the representation cache."
    ).parse_args(argv)
    run(stage_config(args), stage_paths())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
