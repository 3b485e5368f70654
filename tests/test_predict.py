"""hrr_core.predict: detector cards, threshold calibration, loading, and scoring a corpus of
broken and unusual files with tiny saved models (a classifier and an HRR detector with a tiny
pixel LDM, so retrospection runs on the fly), built by tests/conftest.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hrr_core.confutil import to_dict
from hrr_core.models.backbones import BackboneConfig
from hrr_core.models.hrr import HRRConfig
from hrr_core.predict import (CARD_FILE, DetectorLoadError, calibrate_threshold, expand_inputs, load_detector,
                              write_detector_card)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_models and corpus come from tests/conftest.py


def _shown(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------- tests


def test_corpus_is_big_enough(corpus):
    assert len(corpus) >= 20 and sum(ok for _, ok in corpus.values()) >= 10


def test_expand_inputs_reports_instead_of_raising(corpus, tmp_path):
    folder = Path(corpus["good.png"][0]).parent
    (folder / "sub").mkdir(exist_ok=True)
    os.symlink("..", folder / "sub" / "up")  # a folder cycle
    files, failures = expand_inputs([folder, corpus["missing.png"][0], str(folder / "*.JPG"), str(tmp_path / "*.nothing")])
    names = {os.path.basename(f) for f in files}
    assert {"good.png", "UPPER.JPG", "animated.webp", "image.tiff", "empty.png"} <= names
    assert "notes.txt" not in names and "folder_named_x.png" not in names  # not an image name / a folder
    assert len(files) == len(set(files))  # the glob and the folder found UPPER.JPG once
    reasons = dict(failures)
    assert reasons[corpus["missing.png"][0]] == "no such file or folder"
    assert "matched no file" in reasons[str(tmp_path / "*.nothing")]
    assert any(p.endswith("loop.png") for p in reasons) and any(p.endswith("dangling.png") for p in reasons)


@pytest.mark.parametrize("kind", ["classifier", "hrr"])
def test_every_corpus_file_gets_a_prediction_or_a_clear_failure(tiny_models, corpus, kind):
    detector = load_detector(tiny_models[kind], device="cpu")
    files, failures = expand_inputs([p for p, _ in corpus.values()])
    report = detector.predict_paths(files, batch_size=3)
    failures = dict(failures + report.failures)
    predicted = set(report.results["path"])
    for name, (path, ok) in corpus.items():
        shown = _shown(path)
        assert (shown in predicted) == ok, (name, failures.get(shown))
        assert (shown in failures) != ok, name
    r = report.results
    assert list(r.columns) == ["path", "prob_generated", "label", "threshold", "model"]
    assert r["prob_generated"].between(0, 1).all() and set(r["label"]) <= {"generated", "real"}
    assert (r["label"] == np.where(r["prob_generated"] >= detector.threshold, "generated", "real")).all()
    assert "pixels" in failures[_shown(corpus["bomb.png"][0])]
    assert "short side of at least" in failures[_shown(corpus["strip_1x4000.png"][0])]
    assert "empty" in failures[_shown(corpus["empty.png"][0])]
    assert "caf\\xe9.png" in " ".join(predicted)


def test_scores_do_not_depend_on_the_batch(tiny_models, corpus):
    """HRR's retrospection noise is seeded per file, so a file scores the same alone, in a
    batch, after a bad file, and in another order."""
    detector = load_detector(tiny_models["hrr"], device="cpu")
    good = [corpus[n][0] for n in ("good.png", "rgba.png", "grey.png", "cmyk.jpg")]
    together = detector.predict_paths([corpus["empty.png"][0], *good], batch_size=4).results
    alone = detector.predict_paths(good[2:3], batch_size=1).results
    reversed_ = detector.predict_paths(good[::-1], batch_size=2).results.set_index("path")
    p = together.set_index("path")["prob_generated"]
    assert p[good[2]] == pytest.approx(alone["prob_generated"].iloc[0], abs=1e-5)
    assert np.allclose(p[good].to_numpy(), reversed_.loc[good, "prob_generated"].to_numpy(), atol=1e-5)


def test_threshold_override_and_card_threshold(tiny_models, corpus):
    detector = load_detector(tiny_models["classifier"], device="cpu")
    assert detector.threshold == pytest.approx(0.45)
    r = detector.predict_paths([corpus["good.png"][0]], threshold=1.0).results
    assert r["threshold"].iloc[0] == 1.0 and r["label"].iloc[0] == "real"
    with pytest.raises(ValueError, match="threshold"):
        detector.predict_paths([corpus["good.png"][0]], threshold=1.5)


def test_hrr_checkpoint_is_self_contained(tiny_models, corpus, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_models["hrr"], moved)
    card = json.loads((moved / CARD_FILE).read_text())
    assert card["preprocessing"]["retrospection"]["on_the_fly"] and card["threshold"]["calibrated_on"] == "validation"
    assert (moved / "retrospection_ldm" / "ldm_config.json").is_file()
    a = load_detector(moved, "cpu").predict_paths([corpus["good.png"][0]]).results
    b = load_detector(tiny_models["hrr"], "cpu").predict_paths([corpus["good.png"][0]]).results
    assert a["prob_generated"].iloc[0] == pytest.approx(b["prob_generated"].iloc[0], abs=1e-6)


def _broken_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    card = json.loads((dst / CARD_FILE).read_text())
    edit(card)
    (dst / CARD_FILE).write_text(json.dumps(card))
    return dst


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.update(format_version=99), "newer"),
    (lambda c: c.update(kind="transformer"), "unknown method kind"),
    (lambda c: c.update(kind="baseline", baseline="dire"), "cannot be used"),  # a DIRE card needs a DIRE config
    (lambda c: c["model_config"].update(colour="blue"), "unknown key"),
    (lambda c: c.update(format="something-else"), "not a detector card"),
    (lambda c: c.update(model_id="tiny_cnn-000000000000"), "stale card"),
])
def test_incompatible_cards_are_refused(tiny_models, tmp_path, edit, words):
    bad = _broken_copy(tiny_models["classifier"], tmp_path / "bad", edit)
    with pytest.raises(DetectorLoadError, match=words) as info:
        load_detector(bad, "cpu")
    assert str(bad) in str(info.value) and "Fix:" in str(info.value)


def test_missing_card_and_folder(tiny_models, tmp_path):
    shutil.copytree(tiny_models["classifier"] / "best", tmp_path / "m" / "best")
    with pytest.raises(DetectorLoadError, match="detector.json: missing"):
        load_detector(tmp_path / "m", "cpu")
    with pytest.raises(DetectorLoadError, match="no such checkpoint folder"):
        load_detector(tmp_path / "nope", "cpu")


def test_card_needs_best_and_the_ldm(tmp_path):
    cfg = HRRConfig(backbone=BackboneConfig(name="small_resnet", pretrained=False, width=4))

    def card():
        return write_detector_card(tmp_path, method="x", kind="hrr", baseline=None, model_config=to_dict(cfg),
                                   train_generators=["g"], profile="smoke", threshold=0.5, val_metrics={},
                                   data_summary={}, retrospection_ldm_dir=None)

    with pytest.raises(FileNotFoundError, match="best"):
        card()
    (tmp_path / "best").mkdir()
    with pytest.raises(ValueError, match="retrospection_ldm_dir"):
        card()


def test_calibrate_threshold_hand_made():
    # separable with 0.5 in the perfect interval (0.3, 0.6]: keep 0.5
    assert calibrate_threshold([0.1, 0.2, 0.3, 0.6, 0.7, 0.8], [0, 0, 0, 1, 1, 1]) == 0.5
    # an over-confident detector: every score above 0.5; the perfect interval is (0.75, 0.9]
    assert calibrate_threshold([0.7, 0.75, 0.9, 0.95], [0, 0, 1, 1]) == pytest.approx(0.825)
    # an under-confident one: perfect interval (0.1, 0.2] -> its midpoint
    assert calibrate_threshold([0.05, 0.1, 0.2, 0.3], [0, 0, 1, 1]) == pytest.approx(0.15)
    # imbalanced: 1 real, 4 fakes; balanced accuracy, not accuracy, decides
    assert calibrate_threshold([0.2, 0.4, 0.45, 0.46, 0.9], [1, 0, 1, 1, 1]) == pytest.approx(0.425)
    # ties: three intervals reach balanced accuracy 0.5; the one holding 0.5 wins
    assert calibrate_threshold([0.1, 0.2, 0.8, 0.9], [1, 0, 1, 0]) == 0.5
    # every score >= 0.5: "all generated" (0.5 works) ties with "all real" (midpoint 0.9)
    assert calibrate_threshold([0.6, 0.7, 0.8], [1, 1, 0]) == 0.5
    assert calibrate_threshold([0.2, 1.0], [0, 1]) == 0.5 and calibrate_threshold([1.0, 1.0, 0.9], [0, 0, 1]) <= 0.9
    for scores, labels in (([0.1, 0.2], [0, 0]), ([], []), ([0.1, 1.2], [0, 1]), ([0.1], [0, 1])):
        with pytest.raises(ValueError):
            calibrate_threshold(scores, labels)
