"""hrr_core.interactive: which mode a notebook runs in, and what each mode reads or runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hrr_core import interactive
from hrr_core.interactive import SCRATCH, ensure, has_outputs, open_stage, pipeline_graph, stage_outputs, upstream

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path, make_params) -> Path:
    """An empty project: tests/conftest.py's tiny params (profile default, one ablation row) as
    params.yaml, the real dvc.yaml (the stage graph under test), no outputs."""
    no_msr = {"msr": {"enabled": False}, "backbone": {"in_channels": 3}}
    params = make_params(profile="default", ablations={"no_msr": no_msr}, ablation_run=["no_msr"])
    params.setdefault("benchmark", {}).setdefault("out_dir", "data/embedded")  # dvc.yaml interpolates it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("dvc.yaml", "dvc.code.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _write_evaluate_outputs(root: Path, method: str) -> None:
    (root / "results" / method).mkdir(parents=True)
    (root / "metrics" / "evaluate").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"method": [method], "test": ["vae"], "size": ["all"], "ap": [0.75]}).to_csv(
        root / "results" / method / "results.csv", index=False
    )
    pd.DataFrame({"id": ["a"], "logit": [0.0], "score": [0.5]}).to_csv(
        root / "results" / method / "scores.csv", index=False
    )
    (root / "metrics" / "evaluate" / f"{method}.json").write_text(json.dumps({"mean": {"ap": 0.75}}))
    (root / "plots" / "roc" / method).mkdir(parents=True)


def test_papermill_passes_params_path_and_runs_the_stage_as_before(project, monkeypatch):
    calls = []
    monkeypatch.setattr(interactive, "run_stage", lambda *a: calls.append(a) or {"ran": True})
    session = open_stage("train", "params.yaml", None, "cnn", root=project)
    assert session.mode == "pipeline" and session.root == project and session.cfg.profile == "default"
    assert session.run() == {"ran": True}
    assert calls == [(session.node, session.cfg, project)] and session.node.name == "train@cnn"


def test_opened_by_hand_without_outputs_runs_on_smoke_in_the_scratch_root(project):
    session = open_stage("evaluate", None, None, "cnn", root=project)
    assert session.mode == "scratch" and session.cfg.profile == "smoke"
    assert session.root == project / SCRATCH / "smoke"
    assert Path(session.cfg.benchmark.seed_dir) == project / "data" / "seed", "seed photos read from the project"
    assert "scratch" in session.describe()
    assert open_stage("evaluate", None, "default", "cnn", root=project).root == project / SCRATCH / "default"


def test_opened_by_hand_with_outputs_reads_them_and_writes_nothing(project):
    _write_evaluate_outputs(project, "cnn")
    before = sorted(p for p in project.rglob("*"))
    session = open_stage("evaluate", None, None, "cnn", root=project)
    assert session.mode == "existing" and session.root == project
    out = session.run()
    assert out["results"]["ap"].tolist() == [0.75] and out["results"]["size"].tolist() == ["all"]
    assert out["scores"]["id"].tolist() == ["a"]
    assert sorted(p for p in project.rglob("*")) == before


def test_ensure_runs_missing_upstream_stages_first_and_reads_what_exists(project, monkeypatch):
    cfg, graph = interactive.scratch_config(project, None), pipeline_graph(project)
    done, calls = {"prepare"}, []
    monkeypatch.setattr(interactive, "has_outputs", lambda node, root: node.name in done)

    def fake_run(node, cfg, root):
        calls.append(node.name)
        done.add(node.name)
        return {"stage": node.name}

    monkeypatch.setattr(interactive, "run_stage", fake_run)
    monkeypatch.setattr(interactive, "load_outputs", lambda node, cfg, root: {"loaded": node.name})
    node = graph["evaluate@hrr"]
    assert ensure(node, graph, cfg, project, echo=lambda *a: None) == {"stage": "evaluate@hrr"}
    assert calls == ["retrospect", "train@hrr", "evaluate@hrr"]
    assert ensure(node, graph, cfg, project, echo=lambda *a: None) == {"loaded": "evaluate@hrr"}


def test_stage_outputs_and_upstream_follow_dvc_yaml(project):
    graph = pipeline_graph(project)
    assert not has_outputs(graph["prepare"], project)
    assert project / "data" / "embedded" in stage_outputs(graph["prepare"], project)
    assert project / "metrics" / "prepare.json" in stage_outputs(graph["prepare"], project)
    assert not any("outputs/notebooks" in str(p) for p in stage_outputs(graph["prepare"], project))
    assert project / "results" / "ablation-no_msr" in stage_outputs(graph["ablate@no_msr"], project)
    names = lambda nodes: [n.name for n in nodes]  # noqa: E731
    assert names(upstream(graph["evaluate@cnn"], graph)) == ["prepare", "retrospect", "train@cnn"]
    figures = names(upstream(graph["figures"], graph))
    assert {"evaluate@hrr", "study@hrr", "ablate@no_msr", "train@cnn"} <= set(figures) and "figures" not in figures


def test_the_graph_is_dvcs_own_reading_of_dvc_yaml():
    """pipeline_graph interpolates dvc.yaml as DVC does: same stages, deps and outputs."""
    from dvc.repo import Repo

    graph = pipeline_graph(ROOT)
    dvc = {s.addressing: s for s in Repo(str(ROOT)).index.stages}
    assert set(dvc) == set(graph)
    for name, stage in dvc.items():
        assert sorted(str(o.def_path) for o in stage.outs) == sorted(graph[name].outs), name
        assert {str(d.def_path) for d in stage.deps} - {"params.yaml"} == set(graph[name].deps), name


def test_unknown_stage_and_root_without_results_are_clear_errors(project, tmp_path):
    with pytest.raises(ValueError, match="dvc.yaml has no stage 'fit'; it has: prepare"):
        open_stage("fit", None, root=project)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="neither results/<method>/scores.csv"):
        interactive.results_root(empty)


def test_results_root_prefers_the_project_when_it_holds_results(project):
    for m in ("cnn", "hrr"):
        _write_evaluate_outputs(project, m)
    assert interactive.results_root(project) == project.resolve()


def test_the_python3_kernel_is_this_environment():
    """README: JupyterLab launched from the venv runs notebooks on the venv's own python3 kernel."""
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve()), spec.resource_dir
    assert spec.argv[0] in ("python", "python3", sys.executable), spec.argv  # "python" starts sys.executable
