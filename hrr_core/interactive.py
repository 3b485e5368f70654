"""Run a pipeline notebook by hand (JupyterLab) as well as under papermill (``dvc repro``).

The first code cell of every stage notebook calls :func:`open_stage`. Papermill always passes
``params_path`` (dvc.yaml: ``-p params_path params.yaml``); its default in the notebook is
``None``, which means "opened by hand". Then:

- ``pipeline``: papermill passed ``params_path``; :meth:`StageSession.run` calls the stage
  module's ``run`` (project root, the profile of params.yaml);
- ``existing``: opened by hand and the pipeline's outputs of this stage exist under the project
  root: :meth:`StageSession.run` reads them back (the stage module's ``load``) and writes
  nothing, so the user's DVC-tracked outputs are never touched;
- ``scratch``: opened by hand and the outputs are missing (a fresh clone): the stage, and every
  upstream stage whose outputs are missing there, runs on the smoke profile (or the notebook's
  ``profile``) in the scratch root ``outputs/interactive/<profile>/`` (git-ignored), with the
  committed seed photos read from the project root.

The stage graph is ``dvc.yaml``'s: :func:`pipeline_graph` reads it (with DVC's ``${...}``
interpolation from ``vars`` and ``params.yaml``), so what a stage writes and which stages it
waits for are never written a second time here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hrr_core.paths import project_root, resolve
from hrr_core.pipeline import STAGES
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import Config, load_config

SCRATCH = Path("outputs") / "interactive"
EXECUTED = "outputs/notebooks"  # executed notebooks: papermill's outputs, not the stage's own
_VAR = re.compile(r"\$\{\s*([^}]+?)\s*\}")


# ---------------------------------------------------------------- dvc.yaml as a graph


@dataclass(frozen=True)
class StageNode:
    """One stage of ``dvc.yaml`` after interpolation (``train@cnn``: stage ``train``, item ``cnn``)."""

    name: str
    stage: str
    item: str | None
    deps: tuple[str, ...]
    outs: tuple[str, ...]  # outs, metrics and plots, as written (relative to the root)


def _lookup(context: dict, dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"dvc.yaml: cannot interpolate ${{{dotted}}}: no {part!r}")
        value = value[part]
    return value


def _interpolate(node: Any, context: dict) -> Any:
    if isinstance(node, str):
        whole = _VAR.fullmatch(node)
        if whole:
            return _lookup(context, whole.group(1))
        return _VAR.sub(lambda m: str(_lookup(context, m.group(1))), node)
    if isinstance(node, list):
        return [_interpolate(v, context) for v in node]
    if isinstance(node, dict):
        return {_interpolate(k, context): _interpolate(v, context) for k, v in node.items()}
    return node


def _paths(entries: list) -> list[str]:
    """Paths of a deps / outs / metrics / plots list (entries are paths or {path: options})."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def pipeline_graph(project: Path) -> dict[str, StageNode]:
    """Every stage of ``project/dvc.yaml``, interpolated as DVC does (``vars``, then ``params.yaml``)."""
    dvc = yaml.safe_load((project / "dvc.yaml").read_text())
    context = dict(yaml.safe_load((project / "params.yaml").read_text()) or {})
    for var in dvc.get("vars", []):
        context.update(var if isinstance(var, dict) else yaml.safe_load((project / var).read_text()))
    nodes: dict[str, StageNode] = {}
    for stage, body in dvc["stages"].items():
        items = [(None, {})]
        if "foreach" in body:
            each = _interpolate(body["foreach"], context)
            items = [
                (str(k), {"key": k, "item": v})
                for k, v in (each.items() if isinstance(each, dict) else ((v, v) for v in each))
            ]
            body = body["do"]
        for item, extra in items:
            b = _interpolate(body, {**context, **extra})
            name = stage if item is None else f"{stage}@{item}"
            outs = tuple(_paths(b.get("outs")) + _paths(b.get("metrics")) + _paths(b.get("plots")))
            nodes[name] = StageNode(name, stage, item, tuple(_paths(b.get("deps"))), outs)
    return nodes


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def upstream(node: StageNode, graph: dict[str, StageNode]) -> list[StageNode]:
    """The stages whose outputs ``node`` depends on (dvc.yaml's edges), in dvc.yaml order."""
    return [
        other
        for other in graph.values()
        if other.name != node.name and any(_overlaps(d, o) for d in node.deps for o in other.outs)
    ]


def stage_outputs(node: StageNode, root: Path) -> list[Path]:
    """The outputs whose presence in ``root`` means the stage has run (executed notebooks aside)."""
    return [root / o for o in node.outs if not o.startswith(EXECUTED)]


def has_outputs(node: StageNode, root: Path) -> bool:
    return all(p.exists() for p in stage_outputs(node, root))


# ---------------------------------------------------------------- running and reading back


def _module(node: StageNode):
    if node.stage not in STAGES:
        raise ValueError(f"dvc.yaml stage {node.stage!r} has no module hrr_core/pipeline/{node.stage}.py")
    return importlib.import_module(f"hrr_core.pipeline.{node.stage}")


def run_stage(node: StageNode, cfg: Config, root: Path) -> dict:
    """The stage module's ``run`` (what ``dvc repro`` runs) on ``root``."""
    args = (cfg, StagePaths(root)) + (() if node.item is None else (node.item,))
    return _module(node).run(*args)


def load_outputs(node: StageNode, cfg: Config, root: Path) -> dict:
    """What the stage returns, read back from its outputs in ``root`` (nothing is written)."""
    args = (cfg, StagePaths(root)) + (() if node.item is None else (node.item,))
    return _module(node).load(*args)


def ensure(node: StageNode, graph: dict[str, StageNode], cfg: Config, root: Path, echo: Callable = print) -> dict:
    """Outputs of ``node`` in ``root``: read back when present, else computed after every
    missing upstream stage (depth first, like ``dvc repro`` of a single target)."""
    if has_outputs(node, root):
        return load_outputs(node, cfg, root)
    for dep in upstream(node, graph):
        if not has_outputs(dep, root):
            ensure(dep, graph, cfg, root, echo)
    echo(f"running {node.name} on profile {cfg.profile!r} in {root}")
    return run_stage(node, cfg, root)


# ---------------------------------------------------------------- the notebook's entry point


def scratch_config(project: Path, profile: str | None) -> Config:
    """The config of a scratch run: ``profile`` (default smoke), seed photos read from ``project``."""
    base = load_config(project / "params.yaml", profile or "smoke")
    return load_config(
        project / "params.yaml",
        profile or "smoke",
        overrides={"benchmark": {"seed_dir": str(resolve(base.benchmark.seed_dir, project))}},
    )


@dataclass
class StageSession:
    """One notebook's view of a stage: where it reads and writes, with which config, and how."""

    node: StageNode
    mode: str  # pipeline | existing | scratch
    root: Path
    cfg: Config
    graph: dict[str, StageNode] = field(repr=False)
    echo: Callable = field(default=print, repr=False)

    @property
    def stage(self) -> str:
        return self.node.stage

    @property
    def arg(self) -> str | None:
        return self.node.item

    def describe(self) -> str:
        what = {
            "pipeline": "papermill run: computing and writing the stage's outputs",
            "existing": "opened by hand: reading the outputs the pipeline produced (nothing is written)",
            "scratch": "opened by hand, no pipeline outputs yet: running here on a scratch copy",
        }[self.mode]
        return f"{self.node.name}: {what}; profile {self.cfg.profile}, root {self.root}"

    def run(self) -> dict:
        """What the stage returns: computed (pipeline, scratch) or read back (existing)."""
        if self.mode == "pipeline":
            return run_stage(self.node, self.cfg, self.root)
        if self.mode == "existing":
            return load_outputs(self.node, self.cfg, self.root)
        return ensure(self.node, self.graph, self.cfg, self.root, self.echo)


def open_stage(
    stage: str,
    params_path: str | None,
    profile: str | None = None,
    arg: str | None = None,
    root: str | Path | None = None,
    echo: Callable = print,
) -> StageSession:
    """The session of a stage notebook. ``params_path`` is what papermill passes (None: opened by
    hand); ``arg`` is the foreach item (the method of train/evaluate/study, the row of ablate)."""
    project = Path(root).resolve() if root else project_root()
    graph = pipeline_graph(project)
    name = stage if arg is None else f"{stage}@{arg}"
    if name not in graph:
        raise ValueError(f"dvc.yaml has no stage {name!r}; it has: {', '.join(graph)}")
    node = graph[name]
    if params_path is not None:
        return StageSession(node, "pipeline", project, load_config(project / params_path, profile), graph, echo)
    cfg = load_config(project / "params.yaml", profile)
    if has_outputs(node, project):
        return StageSession(node, "existing", project, cfg, graph, echo)
    scratch_cfg = scratch_config(project, profile)
    return StageSession(node, "scratch", project / SCRATCH / scratch_cfg.profile, scratch_cfg, graph, echo)


def results_root(
    root: str | Path | None = None,
    profile: str | None = None,
    methods: tuple[str, ...] = ("cnn", "hrr"),
    echo: Callable = print,
) -> Path:
    """Where the explorer reads: ``root`` (default: the project root) when it holds evaluation
    results of every one of ``methods``, else the scratch root, where the missing stages run
    first (smoke profile unless ``profile``)."""
    project = Path(root).resolve() if root else project_root()
    if all((project / "results" / m / "scores.csv").is_file() for m in methods):
        return project
    if not (project / "params.yaml").is_file():
        raise FileNotFoundError(
            f"{project} holds neither results/<method>/scores.csv for {list(methods)} nor params.yaml; "
            "pass the root of a project the pipeline ran in"
        )
    cfg, graph = scratch_config(project, profile), pipeline_graph(project)
    scratch = project / SCRATCH / cfg.profile
    for m in methods:
        ensure(graph[f"evaluate@{m}"], graph, cfg, scratch, echo)
    return scratch
