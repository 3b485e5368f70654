"""Run a pipeline notebook by hand (JupyterLab) as well as under papermill (``dvc repro``).

The first code cell of every stage notebook calls :func:`open_stage`. Papermill always passes
``params_path`` (dvc.yaml: ``-p params_path params.yaml``); its default in the notebook is
``None``, which means "opened by hand". Then:

- ``pipeline``: papermill passed ``params_path``; :meth:`StageSession.run` calls the stage
  function exactly as before (project root, the profile of params.yaml);
- ``existing``: opened by hand and the pipeline's outputs of this stage exist under the project
  root: :meth:`StageSession.run` reads them back (the same dict the stage returns) and writes
  nothing, so the user's DVC-tracked outputs are never touched;
- ``scratch``: opened by hand and the outputs are missing (a fresh clone): the stage, and every
  upstream stage whose outputs are missing there, runs on the smoke profile (or the notebook's
  ``profile``) in the scratch root ``outputs/interactive/<profile>/`` (git-ignored), with the
  committed seed photos read from the project root.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hrr_core.config import Config, load_config
from hrr_core.paths import project_root

SCRATCH = Path("outputs") / "interactive"
STAGES = ("prepare", "retrospect", "train", "evaluate", "study", "figures", "ablate")
FIGURES = ("metrics_per_generator.png", "roc.png", "size.png", "training.png", "ablations.png", "pr.png",
           "cross_generator.png", "robustness.png", "afr_sparsity.png", "residuals.png")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------- what each stage writes and reads back


def stage_outputs(stage: str, cfg: Config, root: Path, arg: str | None = None) -> list[Path]:
    """The files and folders whose presence means ``stage`` (``arg``: method or row) has run in ``root``."""
    from hrr_core.config import ablation_method
    from hrr_core.stages import stage_paths

    p = stage_paths(root)
    if stage == "prepare":
        return [p.manifest(cfg), p.reports / "dataset_card.md", p.metrics / "prepare.json", p.figures / "sample_grid.png"]
    if stage == "retrospect":
        return [p.retrospection, p.retrospection_ldm, p.metrics / "retrospect.json"]
    if stage == "train":
        return [p.model_dir(arg) / "best", p.model_dir(arg) / "history.csv", p.metrics / "train" / f"{arg}.json"]
    if stage == "evaluate":
        return [p.results_dir(arg) / "results.csv", p.results_dir(arg) / "scores.csv", p.metrics / "evaluate" / f"{arg}.json"]
    if stage == "study":
        return [p.root / "results" / "study" / arg / "study.csv", p.metrics / "study" / f"{arg}.json"]
    if stage == "figures":
        return [p.figures / name for name in FIGURES[:4]]
    if stage == "ablate":
        return [p.results_dir(ablation_method(arg)), p.metrics / "evaluate" / f"{ablation_method(arg)}.json"]
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")


def has_outputs(stage: str, cfg: Config, root: Path, arg: str | None = None) -> bool:
    return all(path.exists() for path in stage_outputs(stage, cfg, root, arg))


def load_outputs(stage: str, cfg: Config, root: Path, arg: str | None = None) -> dict:
    """What the stage function returns, read back from its outputs in ``root`` (nothing is written)."""
    from hrr_core.config import ablation_method
    from hrr_core.data.manifest import read_manifest
    from hrr_core.stages import ablation_table, stage_paths

    p = stage_paths(root)
    if stage == "prepare":
        return {"manifest": read_manifest(p.manifest(cfg)), "card": (p.reports / "dataset_card.md").read_text(),
                "metrics": _json(p.metrics / "prepare.json")}
    if stage == "retrospect":
        return _json(p.metrics / "retrospect.json")
    if stage == "train":
        return {"metrics": _json(p.metrics / "train" / f"{arg}.json"), "history": pd.read_csv(p.model_dir(arg) / "history.csv")}
    if stage == "evaluate":
        return {"results": pd.read_csv(p.results_dir(arg) / "results.csv", dtype={"size": str}),
                "scores": pd.read_csv(p.results_dir(arg) / "scores.csv")}
    if stage == "study":
        return {"study": pd.read_csv(p.root / "results" / "study" / arg / "study.csv", dtype={"size": str}),
                "metrics": _json(p.metrics / "study" / f"{arg}.json")}
    if stage == "figures":
        results = [pd.read_csv(f, dtype={"size": str}) for m in cfg.methods if (f := p.results_dir(m) / "results.csv").is_file()]
        return {"figures": [str(p.figures / n) for n in FIGURES if (p.figures / n).is_file()],
                "results": pd.concat(results) if results else pd.DataFrame(), "ablations": ablation_table(p.root)}
    if stage == "ablate":
        folder = p.results_dir(ablation_method(arg))
        if (folder / "SKIPPED.txt").is_file():
            return {"skipped": (folder / "SKIPPED.txt").read_text().strip()}
        return {"metrics": _json(p.metrics / "train" / f"{ablation_method(arg)}.json"),
                "results": pd.read_csv(folder / "results.csv", dtype={"size": str})}
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")


def upstream(stage: str, cfg: Config, arg: str | None = None) -> list[tuple[str, str | None]]:
    """The stages ``stage`` reads the outputs of, nearest first (as dvc.yaml's deps)."""
    if stage == "prepare":
        return []
    if stage == "retrospect":
        return [("prepare", None)]
    if stage in ("train", "ablate"):
        return [("retrospect", None)]
    if stage in ("evaluate", "study"):
        return [("train", arg)]
    if stage == "figures":
        return [*(("evaluate", m) for m in cfg.methods), *(("study", m) for m in cfg.methods), *(("ablate", r) for r in cfg.ablations)]
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")


def run_stage(stage: str, cfg: Config, root: Path, arg: str | None = None) -> dict:
    """Call the stage function of ``hrr_core.stages`` (what ``dvc repro`` runs)."""
    from hrr_core import stages

    if stage in ("prepare", "retrospect", "figures"):
        return getattr(stages, f"run_{stage}")(cfg, root)
    if stage in ("train", "evaluate"):
        return getattr(stages, f"run_{stage}")(cfg, arg, root)
    if stage == "ablate":
        return stages.run_ablation(cfg, arg, root)
    if stage == "study":
        from hrr_core.study import run_study

        return run_study(cfg, arg, root)
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")


def ensure(stage: str, cfg: Config, root: Path, arg: str | None = None, echo: Callable = print) -> dict:
    """Outputs of ``stage`` in ``root``: read back when present, else computed after every
    missing upstream stage (depth first, like ``dvc repro`` of a single target)."""
    if has_outputs(stage, cfg, root, arg):
        return load_outputs(stage, cfg, root, arg)
    for dep, dep_arg in upstream(stage, cfg, arg):
        if not has_outputs(dep, cfg, root, dep_arg):
            ensure(dep, cfg, root, dep_arg, echo)
    echo(f"running {stage}{'@' + arg if arg else ''} on profile {cfg.profile!r} in {root}")
    return run_stage(stage, cfg, root, arg)


# ---------------------------------------------------------------- the notebook's entry point


def scratch_config(project: Path, profile: str | None) -> Config:
    """The config of a scratch run: ``profile`` (default smoke), seed photos read from ``project``."""
    from hrr_core.paths import resolve

    base = load_config(project / "params.yaml", profile or "smoke")
    return load_config(project / "params.yaml", profile or "smoke",
                 overrides={"benchmark": {"seed_dir": str(resolve(base.benchmark.seed_dir, project))}})


@dataclass
class StageSession:
    """One notebook's view of a stage: where it reads and writes, with which config, and how."""

    stage: str
    mode: str  # pipeline | existing | scratch
    root: Path
    cfg: Config
    arg: str | None = None
    echo: Callable = field(default=print, repr=False)

    def describe(self) -> str:
        what = {"pipeline": "papermill run: computing and writing the stage's outputs",
                "existing": "opened by hand: reading the outputs the pipeline produced (nothing is written)",
                "scratch": "opened by hand, no pipeline outputs yet: running here on a scratch copy"}[self.mode]
        return f"{self.stage}{'@' + self.arg if self.arg else ''}: {what}; profile {self.cfg.profile}, root {self.root}"

    def run(self) -> dict:
        """What the stage function returns: computed (pipeline, scratch) or read back (existing)."""
        if self.mode == "pipeline":
            return run_stage(self.stage, self.cfg, self.root, self.arg)
        if self.mode == "existing":
            return load_outputs(self.stage, self.cfg, self.root, self.arg)
        return ensure(self.stage, self.cfg, self.root, self.arg, self.echo)


def open_stage(stage: str, params_path: str | None, profile: str | None = None, arg: str | None = None,
               root: str | Path | None = None, echo: Callable = print) -> StageSession:
    """The session of a stage notebook. ``params_path`` is what papermill passes (None: opened by
    hand); ``arg`` is the method (train, evaluate) or ablation row (ablate)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    project = Path(root).resolve() if root else project_root()
    if params_path is not None:
        return StageSession(stage, "pipeline", project, load_config(project / params_path, profile), arg, echo)
    cfg = load_config(project / "params.yaml", profile)
    if has_outputs(stage, cfg, project, arg):
        return StageSession(stage, "existing", project, cfg, arg, echo)
    scratch_cfg = scratch_config(project, profile)
    return StageSession(stage, "scratch", project / SCRATCH / scratch_cfg.profile, scratch_cfg, arg, echo)


def results_root(root: str | Path | None = None, profile: str | None = None, methods: tuple[str, ...] = ("cnn", "hrr"),
                 echo: Callable = print) -> Path:
    """Where the explorer reads: ``root`` (default: the project root) when it holds evaluation
    results of every one of ``methods``, else the scratch root, where the missing stages run
    first (smoke profile unless ``profile``)."""
    project = Path(root).resolve() if root else project_root()
    if all((project / "results" / m / "scores.csv").is_file() for m in methods):
        return project
    if not (project / "params.yaml").is_file():
        raise FileNotFoundError(f"{project} holds neither results/<method>/scores.csv for {list(methods)} nor params.yaml; "
                                "pass the root of a project the pipeline ran in")
    cfg = scratch_config(project, profile)
    scratch = project / SCRATCH / cfg.profile
    for m in methods:
        ensure("evaluate", cfg, scratch, m, echo)
    return scratch
