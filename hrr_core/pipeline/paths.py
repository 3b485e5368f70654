"""Where the stages read and write, relative to a project (or scratch) root: the path
conventions ``dvc.yaml``'s ``deps`` and ``outs`` use."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from hrr_core.paths import project_root, resolve
from hrr_core.schema import PROFILES, Config, load_config

# Figures of how a run went rather than what it found: wall-clock times, and (for caches) how much
# was computed now versus found done. They go to StagePaths.timings, never to metrics/.
RUN_KEYS = frozenset({"seconds", "fit_seconds", "generate_seconds", "ms_per_image", "ms_per_image_per_scale"})


def split_run_figures(metrics: dict, keys: frozenset[str] = RUN_KEYS) -> tuple[dict, dict]:
    """(``metrics`` without the ``keys`` at any depth, those entries in the same nesting)."""
    kept: dict = {}
    taken: dict = {}
    for k, v in metrics.items():
        if k in keys:
            taken[k] = v
        elif isinstance(v, dict):
            kept[k], sub = split_run_figures(v, keys)
            if sub:
                taken[k] = sub
        else:
            kept[k] = v
    return kept, taken


@dataclass(frozen=True)
class StagePaths:
    """The folders of one root (``dvc repro``'s project root, or a notebook's scratch root)."""

    root: Path

    def data(self, cfg: Config) -> Path:
        return resolve(cfg.benchmark.out_dir, self.root)

    def manifest(self, cfg: Config) -> Path:
        return self.data(cfg) / "manifest.csv"

    def model_dir(self, method: str) -> Path:
        return self.root / "models" / method

    def results_dir(self, method: str) -> Path:
        return self.root / "results" / method

    def study_dir(self, method: str) -> Path:
        return self.root / "results" / "study" / method

    def study_model_dir(self, method: str, train: tuple[str, ...], seed: int, fold: int | None = None) -> Path:
        name = f"{'+'.join(train)}-s{seed}" + ("" if fold is None else f"-fold{fold}")
        return self.root / "models" / "study" / method / name

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

    def timings(self, stage: str) -> Path:
        """Wall-clock and cache-hit figures of ``stage``'s last run: kept out of ``metrics/`` so
        that the metrics of two runs of the same inputs are byte-identical."""
        return self.reports / "timings" / f"{stage}.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"


def stage_paths(root: str | Path | None = None) -> StagePaths:
    return StagePaths(Path(root) if root else project_root())


def stage_parser(stage: str, description: str) -> argparse.ArgumentParser:
    """The command line of ``python -m hrr_core.pipeline.<stage>`` (also under torchrun):
    ``--params`` and ``--profile``; a stage adds its own arguments."""
    parser = argparse.ArgumentParser(prog=f"python -m hrr_core.pipeline.{stage}", description=description)
    parser.add_argument("--params", default="params.yaml", help="path to params.yaml (default: the project's)")
    parser.add_argument("--profile", choices=PROFILES, help="override the profile in params.yaml")
    return parser


def stage_config(args: argparse.Namespace) -> Config:
    """The config a stage's command line names."""
    return load_config(args.params, args.profile)
