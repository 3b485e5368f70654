"""Two real builds of the embedded benchmark on the smoke profile (seed photos, the real
generator zoo) give byte-identical manifests: every file, checksum and split is seeded."""

import os
from pathlib import Path

import pytest

from hrr_core.pipeline import prepare
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import load_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def build(tmp: Path) -> bytes:
    (tmp / "data").mkdir(parents=True)
    os.symlink(ROOT / "data" / "seed", tmp / "data" / "seed")
    cfg = load_config(ROOT / "params.yaml", "smoke")
    out = prepare.run(cfg, StagePaths(Path(tmp)), echo=lambda *a: None)
    assert out["metrics"]["bias_audit_ok"]
    assert out["metrics"]["file_audit_policy"] == "warn"  # the file-level audit reports, it does not stop smoke
    assert set(out["metrics"]["families"]["vae"]["gates"]["gates"]) >= {"psnr_db", "laplacian_ratio"}
    return (tmp / "data" / "embedded" / "manifest.csv").read_bytes()


def test_two_smoke_builds_are_identical(tmp_path):
    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    assert first == second
    assert first.count(b"\n") > 100  # header + every real and fake image
