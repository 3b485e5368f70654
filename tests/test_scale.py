"""benchmarks/scale.py at CI size: 1000 synthetic images through prepare and hrr-detect, every file
accounted for. Correctness only: the timing and memory figures it prints are not checked here."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
N = 1000


@pytest.fixture(scope="module")
def scale():
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(BENCHMARKS))  # scale.py imports its sibling predict_throughput
    yield importlib.import_module("scale")
    mp.undo()


@pytest.fixture(scope="module")
def run(scale, tmp_path_factory):
    from predict_throughput import tiny_checkpoint

    work = tmp_path_factory.mktemp("scale")
    rows, stats, problems = scale.run_size(N, work / "n", tiny_checkpoint(work, width=8), workers=0, batch_size=64)
    return work / "n", rows, stats, problems


def test_every_image_is_prepared_and_scored(run):
    work, rows, stats, problems = run
    assert problems == []
    assert [r.step for r in rows] == ["make", "prepare", "detect"]
    assert all(r.returncode == 0 and r.n == N and r.seconds > 0 and r.peak_rss_mib > 0 for r in rows)
    assert stats["rows"] == N and stats["bad_files"] == 0
    counts = json.loads((work / "bench" / "counts.json").read_text())
    assert counts == {"train/0": 400, "val/0": 50, "test/0": 50, "train/1": 400, "val/1": 50, "test/1": 50}
    stage = pd.read_csv(work / "prepared" / "manifest.csv")
    assert set(stage["format"]) == {"jpeg"} and set(stage["width"]) == {32, 48, 64}  # harmonised, sizes kept
    outputs = ("source/manifest.csv", "source/bad_files.csv", "source/manifest.meta.json", "harmonised/bad_files.csv")
    for name in outputs:
        assert (work / "prepared" / name).is_file()


def test_check_outputs_notices_a_file_left_out(scale, run):
    work, *_ = run
    preds = work / "preds.csv"
    short = work / "preds_short.csv"
    pd.read_csv(preds).iloc[1:].to_csv(short, index=False)
    assert any("scored 999 files" in p for p in scale.check_outputs(work / "bench", work / "prepared", short, N))
    assert scale.check_outputs(work / "bench", work / "prepared", work / "missing.csv", N)[-1].endswith(
        "wrote no predictions"
    )


def test_table_has_a_row_per_step(scale, run):
    _, rows, _, _ = run
    text = scale.table(rows)
    assert text.splitlines()[0].startswith("| N | step | seconds | peak RSS (MiB) |")
    assert len(text.splitlines()) == 2 + len(rows)
