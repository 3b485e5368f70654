"""Stage ``prepare``: build the embedded benchmark (or adapt a real one), audit it, and write
its manifest, dataset card, ``metrics/prepare.json`` and sample grid.

Also the command line for one process or many (what the notebook runs, as a script):

    python -m hrr_core.pipeline.prepare
    torchrun --standalone --nproc_per_node 4 -m hrr_core.pipeline.prepare

Under several processes a real benchmark's harmonisation is sharded (each rank re-encodes rows
``rank, rank + N, ...``; :func:`hrr_core.data.harmonise.harmonise_manifest`) and rank 0 writes
everything else; the embedded build runs on rank 0 alone.
"""

from __future__ import annotations

import json

import pandas as pd

from hrr_core.benchmark.audit import assert_unbiased, bias_audit, dataset_card
from hrr_core.benchmark.build import build_benchmark, families_of, photo_table
from hrr_core.benchmark.difficulty import trivial_detector_ap
from hrr_core.benchmark.external import build_stage_manifest, real_card, real_sample_grid, train_test_generators
from hrr_core.benchmark.file_audit import enforce, file_audit, file_features
from hrr_core.benchmark.gates import realism_gates
from hrr_core.benchmark.photos import load_seed_photo, load_seed_table, verify_seed_set
from hrr_core.benchmark.stats import generator_image_stats
from hrr_core.confutil import to_dict
from hrr_core.data.datasets import load_images
from hrr_core.data.manifest import absolute_paths, check_no_leakage, read_manifest
from hrr_core.evaluation.protocol import generator_set
from hrr_core.io import atomic_write_json, atomic_write_text
from hrr_core.paths import resolve
from hrr_core.pipeline.paths import StagePaths, split_run_figures, stage_config, stage_parser, stage_paths
from hrr_core.plotting import sample_grid, save_figure
from hrr_core.runtime import environment, resolve_device, seed_everything, show_training_progress
from hrr_core.schema import Config, load_config
from hrr_core.shard import World


def family_difficulty(manifest: pd.DataFrame, families: list[str], seed: int) -> dict[str, float]:
    """Trivial detector AP per family: trained on train photos, tested on test photos."""
    out = {}
    for fam in families:
        sets = []
        for split in ("train", "test"):
            part = generator_set(manifest, fam, split)
            files = absolute_paths(part)
            sets.append(load_images(files[part["label"] == 0].tolist()))
            sets.append(load_images(files[part["label"] == 1].tolist()))
        out[fam] = round(float(trivial_detector_ap(sets[0], sets[1], sets[2], sets[3], seed)), 4)
    return out


def run(cfg: Config, paths: StagePaths, echo=print) -> dict:
    """Build the selected benchmark; the embedded one unless ``real_benchmark.source`` names an adapter."""
    world = World.from_env()  # several processes under torchrun: a real benchmark's harmonisation is sharded
    if not cfg.real_benchmark.is_embedded:
        return _run_real(cfg, paths, echo, world)
    if not world.is_main:  # the embedded build runs in one process: rank 0's
        return {}
    seed_dir = resolve(cfg.benchmark.seed_dir, paths.root)
    problems = verify_seed_set(seed_dir)
    if problems:
        raise RuntimeError(
            f"seed set {seed_dir} failed verification: {problems[:5]}; "
            "restore it from git or rebuild it: python -m hrr_core.benchmark.photos rebuild --dest data/seed"
        )
    seed_everything(cfg.seed)
    show_training_progress()  # the zoo's training lines, ~20 per model (benchmark.zoo: train)
    table = photo_table(load_seed_table(seed_dir), cfg.benchmark)
    manifest = build_benchmark(
        table,
        lambda row: load_seed_photo(seed_dir, row),
        cfg.benchmark,
        cfg.zoo_config(),
        paths.data(cfg),
        resolve_device(cfg.device),
        cfg.seed,
        echo,
        zoo_dir=resolve(cfg.benchmark.zoo_dir, paths.root),
    )
    manifest.attrs["root"] = str(paths.data(cfg))
    check_no_leakage(manifest)
    audit = bias_audit(manifest)
    stats = json.loads((paths.data(cfg) / "generator_stats.json").read_text())
    difficulty = family_difficulty(manifest, list(families_of(manifest)), cfg.seed)
    image_stats = generator_image_stats(manifest)  # every split, reals under "real"; seconds
    files = file_features(manifest)  # one decode per stored file; ~3 ms a file
    files_audit = file_audit(files, seed=cfg.seed)
    gates = realism_gates(files, difficulty)
    card = dataset_card(
        manifest,
        audit,
        stats,
        difficulty,
        to_dict(cfg.benchmark),
        image_stats=image_stats,
        file_audit=files_audit,
        gates=gates,
    )
    atomic_write_text(paths.reports / "dataset_card.md", card)
    metrics = {
        "images": len(manifest),
        "real": int((manifest["label"] == 0).sum()),
        "fake": int((manifest["label"] == 1).sum()),
        "photos": {s: int(manifest.loc[manifest["split"] == s, "source"].nunique()) for s in ("train", "val", "test")},
        "bias_audit_ok": audit["ok"],
        "file_audit_ok": files_audit["ok"],
        "file_audit_policy": cfg.benchmark.bias_audit,
        "families": {
            f: {
                "psnr_db": round(stats[f]["psnr_db"], 3),
                "trivial_ap": difficulty[f],
                "fit_seconds": stats[f]["fit_seconds"],
                "image": image_stats.get(f),
                "shortcut_ap": files_audit["per_generator"].get(f, {}).get("shortcut", {}).get("ap"),
                "gates": gates["families"].get(f),
            }
            for f in stats
        },
        "gates": {k: gates[k] for k in ("n_pass", "n_families", "summary", "target", "target_met")},
        "real_image": image_stats.get("real"),
        "environment": environment(),
    }
    metrics, run_figures = split_run_figures(metrics)
    atomic_write_json(paths.metrics / "prepare.json", metrics)
    atomic_write_json(paths.timings("prepare"), run_figures)
    atomic_write_json(paths.reports / "bias_audit.json", {**audit, "file_level": files_audit})
    save_figure(sample_grid(manifest, list(cfg.benchmark.families)), paths.figures / "sample_grid.png")
    assert_unbiased(audit)  # after writing the report, so a failure can be inspected
    echo(f"realism gates: {gates['summary']}")
    enforce(files_audit, cfg.benchmark.bias_audit, echo)  # after writing the reports, as above
    return {"manifest": manifest, "card": card, "metrics": metrics}


def _run_real(cfg: Config, paths: StagePaths, echo=print, world: World = World()) -> dict:
    """``prepare`` for ``cfg.real_benchmark``; the same outputs as the embedded build."""
    sel, out_dir = cfg.real_benchmark, paths.data(cfg)
    df, stats = build_stage_manifest(sel, out_dir, paths.root, echo, world)
    if df is None:  # another rank: its share of the harmonisation is done, rank 0 writes the rest
        return {}
    audit = bias_audit(df)
    card = real_card(sel, df, audit, stats)
    atomic_write_text(paths.reports / "dataset_card.md", card)
    train_gens, test_gens = train_test_generators(df)
    metrics = {
        "source": sel.source,
        "preset": sel.preset_name,
        "images": len(df),
        "real": int((df["label"] == 0).sum()),
        "fake": int((df["label"] == 1).sum()),
        "sources": {s: int(df.loc[df["split"] == s, "source"].nunique()) for s in ("train", "val", "test")},
        "train_generators": train_gens,
        "test_generators": test_gens,
        "harmonised": sel.harmonise is not None,
        "bias_audit_ok": audit["ok"],
        "bias_audit_policy": sel.bias_audit,
        "bad_files": stats["bad_files"],
        "environment": environment(),
    }
    atomic_write_json(paths.metrics / "prepare.json", metrics)
    atomic_write_json(paths.timings("prepare"), {k: v for k, v in stats.items() if k.endswith("_s")})
    atomic_write_json(paths.reports / "bias_audit.json", audit)
    save_figure(real_sample_grid(df), paths.figures / "sample_grid.png")
    if audit["ok"]:
        echo("bias audit: passed")
    elif sel.bias_audit == "fail":
        assert_unbiased(audit)  # after writing the reports, so a failure can be inspected
    else:
        echo("bias audit: WARNING (real_benchmark.bias_audit: warn)\n  " + "\n  ".join(audit["problems"]))
    return {"manifest": df, "card": card, "metrics": metrics}


def load(cfg: Config, paths: StagePaths) -> dict:
    """What :func:`run` returned, read back from its outputs."""
    return {
        "manifest": read_manifest(paths.manifest(cfg)),
        "card": (paths.reports / "dataset_card.md").read_text(),
        "metrics": json.loads((paths.metrics / "prepare.json").read_text()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("prepare", "The prepare stage: build or adapt the benchmark.")
    parser.add_argument(
        "--out-root",
        help="write data/, reports/, metrics/ and figures/ under this folder instead of the project's (the seed "
        "photos and the shipped zoo are still read from the project): preview a profile beside the committed run",
    )
    args = parser.parse_args(argv)
    paths = stage_paths()
    cfg = stage_config(args)
    if args.out_root:
        inputs = {key: str(resolve(getattr(cfg.benchmark, key), paths.root)) for key in ("seed_dir", "zoo_dir")}
        cfg = load_config(args.params, args.profile, overrides={"benchmark": inputs})
        paths = StagePaths(resolve(args.out_root))
    run(cfg, paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
