"""The code style CI enforces: ruff's lint rules and formatter (pyproject.toml, lines <= 120)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["hrr_core", "tests", "benchmarks"]


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(args):
    assert importlib.util.find_spec("ruff"), "ruff is in the dev extra: pip install -e '.[dev]'"
    out = subprocess.run([sys.executable, "-m", "ruff", *args, *TARGETS], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, (
        f"ruff {' '.join(args)} failed (fix: ruff format . && ruff check --fix .):\n{out.stdout}{out.stderr}"
    )
