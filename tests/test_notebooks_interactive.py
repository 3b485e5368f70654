"""Notebooks opened by hand (no injected parameters, working directory notebooks/) and the
explorer notebook run headless on smoke outputs built by hrr_core.interactive."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hrr_core.interactive import ensure, pipeline_graph, scratch_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
pytestmark = pytest.mark.slow


def _execute(name: str, out: Path, parameters: dict | None = None) -> list[dict]:
    """Run ``notebooks/<name>`` from notebooks/ (as JupyterLab does); return its code cells."""
    import papermill

    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(out),
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
    )
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    for c in cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", f"{name}: {o.get('ename')}: {o.get('evalue')}"
    return cells


def _outputs(cells: list[dict], mime: str) -> list[str]:
    found = []
    for c in cells:
        for o in c.get("outputs", []):
            if mime in o.get("data", {}):
                found.append("".join(o["data"][mime]))
            elif mime == "text/plain" and o.get("output_type") == "stream":
                found.append("".join(o["text"]))
    return found


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def smoke_project(tmp_path_factory) -> Path:
    """A project folder (params.yaml on smoke, dvc.yaml) holding smoke outputs of prepare,
    retrospect, train and evaluate for cnn and hrr, a robustness table for cnn, and two commits
    of metrics/evaluate that differ."""
    root = tmp_path_factory.mktemp("smoke_project")
    cfg, graph = scratch_config(ROOT, "smoke"), pipeline_graph(ROOT)
    for method in ("cnn", "hrr"):
        ensure(graph[f"evaluate@{method}"], graph, cfg, root, echo=lambda *a: None)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "profile": "smoke"}, sort_keys=False))
    for name in ("dvc.yaml", "dvc.code.yaml"):
        shutil.copy(ROOT / name, root / name)
    plain = pd.read_csv(root / "results" / "cnn" / "results.csv", dtype={"size": str})
    study = pd.concat(
        [plain.assign(condition="none", level=0, seed=0), plain.assign(condition="jpeg", level=75, seed=0)]
    )
    study.to_csv(root / "results" / "cnn" / "study.csv", index=False)
    _git(root, "init", "-q")
    _git(root, "add", "metrics")
    _git(root, "commit", "-qm", "a")
    hrr = root / "metrics" / "evaluate" / "hrr.json"
    data = json.loads(hrr.read_text())
    data["mean"]["ap"] = round(data["mean"]["ap"] - 0.125, 4)
    hrr.write_text(json.dumps(data))
    _git(root, "commit", "-qam", "b")
    return root


def test_explorer_shows_tables_failures_residuals_afr_and_a_commit_diff(smoke_project, tmp_path):
    cells = _execute(
        "explore.ipynb", tmp_path / "explore.ipynb", {"root": str(smoke_project), "use_widgets": False, "n_mistakes": 3}
    )
    text = "\n".join(_outputs(cells, "text/plain"))
    assert len(_outputs(cells, "image/png")) >= 3, "metric bars, mistakes with residuals, AFR survival"
    assert f"reading results from {smoke_project}" in text
    assert "condition" in text and "accuracy" in text and "x1 residual" not in text  # titles live in the PNG
    assert "fused dimensions survived" in text and "group_norm" in text
    assert "a: HEAD~1" in text and "-0.125" in text, "the commit comparison shows the changed AP"


def test_evaluate_notebook_opened_by_hand_reads_existing_outputs(smoke_project, tmp_path, monkeypatch):
    monkeypatch.setenv("HRR_PROJECT_ROOT", str(smoke_project))
    before = (smoke_project / "results" / "cnn" / "scores.csv").stat().st_mtime_ns
    cells = _execute("04_evaluate.ipynb", tmp_path / "04.ipynb")
    text = "\n".join(_outputs(cells, "text/plain"))
    assert "opened by hand: reading the outputs the pipeline produced" in text
    assert "ldm_img2img" in text and len(_outputs(cells, "image/png")) == 1
    assert (smoke_project / "results" / "cnn" / "scores.csv").stat().st_mtime_ns == before, "nothing rewritten"


def test_figures_notebook_opened_by_hand_in_this_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("HRR_PROJECT_ROOT", raising=False)
    cells = _execute("07_figures.ipynb", tmp_path / "07.ipynb")
    text = "\n".join(_outputs(cells, "text/plain"))
    assert f"root {ROOT}" in text and "opened by hand" in text
    assert len(_outputs(cells, "image/png")) >= 4, "the committed figures are shown"


def test_evaluate_notebook_under_papermill_runs_the_stage(smoke_project, tmp_path, monkeypatch):
    monkeypatch.setenv("HRR_PROJECT_ROOT", str(smoke_project))
    scores = smoke_project / "results" / "cnn" / "scores.csv"
    before = scores.stat().st_mtime_ns
    cells = _execute("04_evaluate.ipynb", tmp_path / "04.ipynb", {"params_path": "params.yaml", "method": "cnn"})
    assert "papermill run: computing and writing" in "\n".join(_outputs(cells, "text/plain"))
    assert scores.stat().st_mtime_ns != before, "dvc repro's path recomputes the stage's outputs"
