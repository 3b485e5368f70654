"""hrr_core.interactive: which mode a notebook runs in, and what each mode reads or runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hrr_core import interactive
from hrr_core.interactive import SCRATCH, ensure, has_outputs, open_stage, stage_outputs, upstream

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path, make_params) -> Path:
    """An empty project: tests/conftest.py's tiny params (profile default, one ablation row) as
    params.yaml, the real dvc.yaml (the stage graph under test), no outputs."""
    no_msr = {"msr": {"enabled": False}, "backbone": {"in_channels": 3}}
    params = make_params(profile="default", ablations={"no_msr": no_msr}, ablation_run=["no_msr"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    return tmp_path


def _write_evaluate_outputs(root: Path, method: str) -> None:
    (root / "results" / method).mkdir(parents=True)
    (root / "metrics" / "evaluate").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"method": [method], "test": ["vae"], "size": ["all"], "ap": [0.75]}).to_csv(
        root / "results" / method / "results.csv", index=False)
    pd.DataFrame({"id": ["a"], "logit": [0.0], "score": [0.5]}).to_csv(root / "results" / method / "scores.csv", index=False)
    (root / "metrics" / "evaluate" / f"{method}.json").write_text(json.dumps({"mean": {"ap": 0.75}}))


def test_papermill_passes_params_path_and_runs_the_stage_as_before(project, monkeypatch):
    calls = []
    monkeypatch.setattr(interactive, "run_stage", lambda *a: calls.append(a) or {"ran": True})
    session = open_stage("train", "params.yaml", None, "cnn", root=project)
    assert session.mode == "pipeline" and session.root == project and session.cfg.profile == "default"
    assert session.run() == {"ran": True}
    assert calls == [("train", session.cfg, project, "cnn")]


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
    cfg = interactive.scratch_config(project, None)
    done, calls = {("prepare", None)}, []
    monkeypatch.setattr(interactive, "has_outputs", lambda stage, cfg, root, arg=None: (stage, arg) in done)

    def fake_run(stage, cfg, root, arg=None):
        calls.append((stage, arg))
        done.add((stage, arg))
        return {"stage": stage}

    monkeypatch.setattr(interactive, "run_stage", fake_run)
    monkeypatch.setattr(interactive, "load_outputs", lambda stage, cfg, root, arg=None: {"loaded": stage})
    assert ensure("evaluate", cfg, project, "hrr", echo=lambda *a: None) == {"stage": "evaluate"}
    assert calls == [("retrospect", None), ("train", "hrr"), ("evaluate", "hrr")]
    assert ensure("evaluate", cfg, project, "hrr", echo=lambda *a: None) == {"loaded": "evaluate"}


def test_stage_outputs_and_upstream_follow_dvc_yaml(project):
    cfg = interactive.scratch_config(project, None)
    assert not has_outputs("prepare", cfg, project)
    assert project / "data" / "embedded" / "manifest.csv" in stage_outputs("prepare", cfg, project)
    assert project / "models" / "ablation-no_msr" not in stage_outputs("ablate", cfg, project, "no_msr")
    assert project / "results" / "ablation-no_msr" in stage_outputs("ablate", cfg, project, "no_msr")
    assert upstream("evaluate", cfg, "cnn") == [("train", "cnn")]
    assert ("evaluate", "hrr") in upstream("figures", cfg) and ("ablate", "no_msr") in upstream("figures", cfg)


def test_unknown_stage_and_root_without_results_are_clear_errors(project, tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'fit'; known: prepare"):
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
