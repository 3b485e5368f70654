"""hrr-detect: exit codes, output files, messages; the tiny checkpoints and the bad-input
corpus are tests/conftest.py's ``tiny_models`` and ``corpus``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hrr_core.card import CARD_FILE
from hrr_core.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def model_dir(tiny_models) -> Path:
    return tiny_models["classifier"]


def _shown(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def test_corpus_run_exits_1_and_writes_the_good_files(model_dir, corpus, tmp_path, capsys):
    out = tmp_path / "res" / "results.csv"
    argv = [p for p, _ in corpus.values()] + ["--checkpoint", str(model_dir), "--output", str(out)]
    assert main(argv) == EXIT_SOME_FAILED
    written = pd.read_csv(out)
    assert sorted(written["path"]) == sorted(_shown(p) for p, ok in corpus.values() if ok)
    assert list(written.columns) == ["path", "prob_generated", "label", "threshold", "model"]
    assert [f.name for f in out.parent.iterdir()] == ["results.csv"]  # no temp file left behind
    captured = capsys.readouterr()
    assert "p(generated)" in captured.out and "good.png" in captured.out
    assert "could not be scored" in captured.err and "empty file" in captured.err and "Traceback" not in captured.err
    assert "caf\\xe9.png" in captured.out


def test_all_good_exits_0_with_json(model_dir, corpus, tmp_path, capsys):
    out = tmp_path / "results.json"
    good = [corpus[n][0] for n in ("good.png", "cmyk.jpg", "animated.gif")]
    assert main([*good, "-c", str(model_dir), "-o", str(out), "--threshold", "0", "--batch-size", "2"]) == EXIT_OK
    data = json.loads(out.read_text())
    assert [p["path"] for p in data["predictions"]] == good and data["failures"] == []
    assert all(p["label"] == "generated" and p["threshold"] == 0 for p in data["predictions"])
    assert data["model"].startswith("tiny_cnn-")


def test_workers_and_batch_size_do_not_change_the_scores(model_dir, corpus, tmp_path):
    argv = [p for p, _ in corpus.values()] + ["-c", str(model_dir), "--quiet"]
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main([*argv, "-o", str(out_a), "--workers", "0", "--batch-size", "1"]) == EXIT_SOME_FAILED
    assert main([*argv, "-o", str(out_b), "--workers", "2", "--batch-size", "5"]) == EXIT_SOME_FAILED
    a, b = pd.read_csv(out_a), pd.read_csv(out_b)
    assert list(a["path"]) == list(b["path"]) and len(a) >= 10
    assert np.allclose(a["prob_generated"], b["prob_generated"], atol=1e-5)


def test_quiet_prints_only_failures(model_dir, corpus, capsys):
    assert main([corpus["good.png"][0], corpus["missing.png"][0], "-c", str(model_dir), "--quiet"]) == EXIT_SOME_FAILED
    captured = capsys.readouterr()
    assert captured.out == "" and "no such file or folder" in captured.err


def test_output_is_written_atomically(model_dir, corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results.csv"
    out.write_text("previous results\n")
    monkeypatch.setattr(
        "hrr_core.io.os.replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    )
    assert main([corpus["good.png"][0], "-c", str(model_dir), "-o", str(out)]) == EXIT_USAGE
    assert out.read_text() == "previous results\n" and [f.name for f in tmp_path.iterdir()] == ["results.csv"]
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.update(format_version=2), "newer than this hrr_core reads"),
        (lambda c: c.update(kind="vision_transformer"), "unknown method kind"),
        (None, "detector.json: missing"),
    ],
)
def test_bad_checkpoint_exits_2_with_a_clear_message(model_dir, corpus, tmp_path, capsys, edit, words):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    if edit is None:
        (bad / CARD_FILE).unlink()
    else:
        card = json.loads((bad / CARD_FILE).read_text())
        edit(card)
        (bad / CARD_FILE).write_text(json.dumps(card))
    out = tmp_path / "r.csv"
    assert main([corpus["good.png"][0], "-c", str(bad), "-o", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("hrr-detect: error: ") and words in err and str(bad) in err and "Fix:" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--threshold", "1.5"],
        ["--threshold", "x"],
        ["--batch-size", "0"],
        ["--output", "r.txt"],
        ["--device", "tpu"],
        ["--workers", "-1"],
        ["--workers", "two"],
    ],
)
def test_usage_errors_exit_2(model_dir, corpus, extra, capsys):
    argv = [corpus["good.png"][0], *extra] + (["-c", str(model_dir)] if extra else [])
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == EXIT_USAGE and "usage: hrr-detect" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_exits_2(model_dir, corpus, capsys):
    assert main([corpus["good.png"][0], "-c", str(model_dir), "--device", "cuda"]) == EXIT_USAGE
    assert "no CUDA" in capsys.readouterr().err


def test_console_entry_point_runs_without_traceback(tmp_path):
    """The real process: a bad checkpoint gives exit 2 and one line, no Python traceback."""
    (tmp_path / "img.png").write_bytes(b"")
    cmd = [sys.executable, "-m", "hrr_core.cli", str(tmp_path / "img.png"), "--checkpoint", str(tmp_path / "nope")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == EXIT_USAGE and "Traceback" not in proc.stderr
    assert "no such checkpoint folder" in proc.stderr and proc.stdout == ""
