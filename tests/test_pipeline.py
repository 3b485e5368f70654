"""End to end: the real pipeline on the smoke profile, in a fresh git + DVC copy of the repo.

One `dvc repro` runs every stage (so every notebook through papermill); the checks then cover
what a user relies on: outputs and metrics exist, executed notebooks hold no error, an
immediate second `dvc repro` does nothing, and `dvc metrics show` reads the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int = 1500) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the working tree (tracked + untracked, not ignored) with profile: smoke."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for generated in ("dvc.lock", "metrics", "figures", "reports", "plots"):  # start from nothing
        target = dest / generated
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["profile"] = "smoke"
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HRR_PROJECT_ROOT": str(dest),
    }
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    _run(["git", "init", "-q"], dest, env)
    _run(git + ["add", "-A"], dest, env)
    _run(git + ["commit", "-qm", "copy"], dest, env)
    _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    return dest, env


def test_repro_produces_every_output(smoke_repo):
    repo, _ = smoke_repo
    methods = yaml.safe_load((repo / "params.yaml").read_text())["methods"]
    prepare = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert prepare["bias_audit_ok"] is True and prepare["fake"] > 0 and prepare["real"] > 0
    for method in methods:
        ev = json.loads((repo / "metrics" / "evaluate" / f"{method}.json").read_text())
        assert 0.0 <= ev["mean"]["ap"] <= 1.0
        assert (repo / "models" / method / "best").is_dir() and (repo / "models" / method / "detector.json").is_file()
        study = json.loads((repo / "metrics" / "study" / f"{method}.json").read_text())
        scorer = methods[method].get("baseline") in ("spectrum_lr", "aeroblade")  # deterministic fits: one seed
        assert study["seeds"] == ([0] if scorer else [0, 1]) and (study["headline"]["ap"]["std"] is None) == scorer
        assert set(study["matrix"]) == {"ldm_img2img", "pixel_ddpm"} and "bias_audit_drop" in study
        assert {"clean", "rescale", "jpeg", "blur", "downscale", "harmonise"} <= set(study["robustness"])
        table = (repo / "results" / "study" / method / "study.csv").read_text().splitlines()
        assert table[0].startswith("method,train,test,size,condition,level,seed,n,threshold,acc")
        assert (repo / "plots" / "study" / method / "jpeg.csv").is_file()
    for name in (
        "sample_grid",
        "metrics_per_generator",
        "roc",
        "size",
        "training",
        "ablations",
        "pr",
        "cross_generator",
        "robustness",
        "afr_sparsity",
        "residuals",
    ):
        assert (repo / "figures" / f"{name}.png").stat().st_size > 1000
    assert "# Embedded benchmark: dataset card" in (repo / "reports" / "dataset_card.md").read_text()


def test_executed_notebooks_hold_no_errors(smoke_repo):
    repo, _ = smoke_repo
    executed = sorted((repo / "outputs" / "notebooks").glob("*.ipynb"))
    assert len(executed) >= 6
    for nb in executed:
        for cell in json.loads(nb.read_text())["cells"]:
            for out in cell.get("outputs", []):
                assert out.get("output_type") != "error", f"{nb.name}: {out.get('ename')}: {out.get('evalue')}"


def test_second_repro_does_nothing_and_metrics_show(smoke_repo):
    repo, env = smoke_repo
    again = _run([sys.executable, "-m", "dvc", "repro"], repo, env, timeout=300)
    assert "Running stage" not in again.stdout, again.stdout
    shown = _run([sys.executable, "-m", "dvc", "metrics", "show"], repo, env, timeout=120)
    assert "metrics/evaluate" in shown.stdout
