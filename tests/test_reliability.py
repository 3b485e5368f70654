"""Interrupted and repeated runs (#19): `dvc repro` on the smoke profile, in a fresh copy of the
work tree, is killed with SIGKILL in the middle of the retrospection stage (one representation
cache complete, the next being computed) and again in the middle of HRR's training stage, then
rerun to the end. Its metrics and plot data must equal, byte for byte, those of the uninterrupted
run of the shared ``smoke_repo`` (another fresh copy): an interrupted run leaves nothing that a
rerun takes for finished, and two fresh runs of the same inputs agree exactly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import yaml

from hrr_core.pipeline.paths import RUN_KEYS

pytestmark = pytest.mark.slow

COMPARED = ("metrics", "plots")  # results, not run logs: wall-clock figures live in reports/timings/


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (papermill's kernels run in sessions of their own)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def repro_until(repo, stage: str, marker: str, timeout: float = 1500) -> str:
    """Run ``dvc repro`` and SIGKILL it (with its children) as soon as a line containing
    ``marker`` appears after ``Running stage '<stage>'``; return the output up to there."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    watchdog = threading.Timer(timeout, _kill_tree, [proc.pid])
    watchdog.start()
    lines: list[str] = []
    in_stage = killed = False
    try:
        for line in proc.stdout:
            lines.append(line)
            in_stage = in_stage or line.startswith(f"Running stage '{stage}'")
            if in_stage and marker in line:
                _kill_tree(proc.pid)
                killed = True
                break
    finally:
        watchdog.cancel()
        _kill_tree(proc.pid)
        proc.wait()
    out = "".join(lines)
    assert killed, f"dvc repro ended before {stage!r} printed {marker!r}:\n{out[-4000:]}"
    return out


def _locked_stages(root: Path) -> set[str]:
    lock = root / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.exists() else set()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in COMPARED
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def test_killed_repro_reruns_to_the_uninterrupted_result(smoke_repo, new_smoke_repo):
    repo = new_smoke_repo()

    repro_until(repo, "retrospect", "retrospection msr: ")  # HRR's cache written, DIRE's on the way
    assert "retrospect" not in _locked_stages(repo.root) and "prepare" in _locked_stages(repo.root)
    assert not (repo.root / "metrics" / "retrospect.json").exists()

    repro_until(repo, "train@hrr", " step 2 ")  # mid-epoch
    locked = _locked_stages(repo.root)
    assert "retrospect" in locked and "train@hrr" not in locked and "evaluate@hrr" not in locked

    rerun = repo.dvc("repro")
    assert "Running stage 'train@hrr'" in rerun.stdout and "Running stage 'prepare'" not in rerun.stdout
    status = repo.dvc("status").stdout
    assert "up to date" in status or not status.strip(), status

    ours, theirs = _files(repo.root), _files(smoke_repo.root)
    assert set(ours) == set(theirs), sorted(set(ours) ^ set(theirs))
    differ = [name for name in sorted(ours) if ours[name] != theirs[name]]
    assert not differ, f"differ from the uninterrupted run: {differ[:20]}"
    assert not list(repo.root.rglob("*.tmp")) and not list(repo.root.rglob(".*.tmp-*"))  # no temp left behind


def _keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj).union(*(_keys(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_keys(v) for v in obj))
    return set()


def test_timings_stay_out_of_the_metrics(smoke_repo):
    """Wall-clock and cache-hit figures would make two runs' metrics differ: they go to reports/timings/."""
    for path in sorted((smoke_repo.root / "metrics").rglob("*.json")):
        keys = _keys(json.loads(path.read_text()))
        assert not keys & (RUN_KEYS | {"computed", "cached"}), (path, keys & (RUN_KEYS | {"computed", "cached"}))
    timings = json.loads((smoke_repo.root / "reports" / "timings" / "retrospect.json").read_text())
    assert {"computed", "ms_per_image"} <= _keys(timings)
    assert "fit_seconds" in _keys(json.loads((smoke_repo.root / "reports" / "timings" / "prepare.json").read_text()))
