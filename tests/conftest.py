"""Fixtures shared by test modules (opt in with ``pytestmark = pytest.mark.usefixtures(...)``).

``smoke_repo`` is the expensive one: a fresh git + DVC copy of the working tree after one
``dvc repro`` on the smoke profile. It is session-scoped so the pipeline, experiment and browser
tests pay for one smoke run together; the tests that change a repository work on
:meth:`SmokeRepo.copy_to`, never on the shared one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
GENERATED = ("dvc.lock", "metrics", "figures", "reports", "plots")  # a fresh copy starts from none of them


@pytest.fixture()
def one_thread():
    """Tiny tensors: one thread is faster than several on a shared, busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_checked(cmd: list[str], cwd: Path, env: dict, timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run ``cmd``; a non-zero exit fails the test with the tail of its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


def project_env(root: Path) -> dict:
    """The environment a user's shell has in ``root``: this venv first on PATH, offline, no analytics."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "HRR_PROJECT_ROOT": str(root)}


class SmokeRepo(NamedTuple):
    """A git + DVC repository of the project (profile smoke) and the environment to run in it."""

    root: Path
    env: dict

    def run(self, *cmd: str, timeout: int = 1500) -> subprocess.CompletedProcess:
        return run_checked(list(cmd), self.root, self.env, timeout)

    def dvc(self, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, timeout=timeout)

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(*GIT, *args, timeout=120)

    def copy_to(self, dest: Path) -> SmokeRepo:
        """An independent copy (work tree, git history, DVC cache) for a test that changes it."""
        shutil.copytree(self.root, dest, symlinks=True)
        return SmokeRepo(dest, project_env(dest))


def copy_work_tree(dest: Path) -> None:
    """The working tree's tracked and untracked, not ignored, files, without generated outputs."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for generated in GENERATED:
        target = dest / generated
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory) -> SmokeRepo:
    """The working tree copied into a fresh git repository (one commit) with ``profile: smoke``,
    after one ``dvc repro``. Shared by every test of the session: read it, do not change it."""
    dest = tmp_path_factory.mktemp("repo")
    copy_work_tree(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["profile"] = "smoke"
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repo = SmokeRepo(dest, project_env(dest))
    repo.run("git", "init", "-q")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "copy")
    repo.dvc("repro")
    return repo
