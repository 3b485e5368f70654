"""hrr_core.inference: loading a detector from its card and scoring a corpus of broken and
unusual files, batched by size, decoded in worker processes, order- and batch-independent."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrr_core.data.walk import expand_inputs
from hrr_core.inference import load_detector

pytestmark = pytest.mark.usefixtures("one_thread")


def test_corpus_is_big_enough(corpus):
    assert len(corpus) >= 20 and sum(ok for _, ok in corpus.values()) >= 10


@pytest.mark.parametrize("kind, workers", [("classifier", 0), ("classifier", 2), ("hrr", 0)])
def test_every_corpus_file_gets_a_prediction_or_a_clear_failure(detectors, tiny_models, corpus, kind, workers):
    detector = load_detector(tiny_models[kind], device="cpu")
    files, failures = expand_inputs([p for p, _ in corpus.values()])
    report = detector.predict_paths(files, batch_size=3, workers=workers)
    failures = dict(failures + report.failures)
    predicted = set(report.results["path"])
    for name, (path, ok) in corpus.items():
        shown = detectors.shown(path)
        assert (shown in predicted) == ok, (name, failures.get(shown))
        assert (shown in failures) != ok, name
    r = report.results
    assert list(r.columns) == ["path", "prob_generated", "label", "threshold", "model"]
    assert list(r["path"]) == [detectors.shown(f) for f in files if detectors.shown(f) in predicted]  # input order
    assert r["prob_generated"].between(0, 1).all() and set(r["label"]) <= {"generated", "real"}
    assert (r["label"] == np.where(r["prob_generated"] >= detector.threshold, "generated", "real")).all()
    assert "pixels" in failures[detectors.shown(corpus["bomb.png"][0])]
    assert "short side of at least" in failures[detectors.shown(corpus["strip_1x4000.png"][0])]
    assert "empty" in failures[detectors.shown(corpus["empty.png"][0])]
    assert "caf\\xe9.png" in " ".join(predicted)


def test_scores_do_not_depend_on_the_batch(tiny_models, corpus):
    """HRR's retrospection noise is seeded per file, so a file scores the same alone, in a
    batch, after a bad file, in another order and decoded by worker processes."""
    detector = load_detector(tiny_models["hrr"], device="cpu")
    good = [corpus[n][0] for n in ("good.png", "rgba.png", "grey.png", "cmyk.jpg")]
    together = detector.predict_paths([corpus["empty.png"][0], *good], batch_size=4).results
    alone = detector.predict_paths(good[2:3], batch_size=1).results
    reversed_ = detector.predict_paths(good[::-1], batch_size=2, workers=2).results.set_index("path")
    p = together.set_index("path")["prob_generated"]
    assert p[good[2]] == pytest.approx(alone["prob_generated"].iloc[0], abs=1e-5)
    assert np.allclose(p[good].to_numpy(), reversed_.loc[good, "prob_generated"].to_numpy(), atol=1e-5)


def test_one_forward_pass_per_size_bucket(tiny_models, tmp_path, monkeypatch):
    """Interleaved sizes are grouped: 5 images of 40x48 and 3 of 64x64 make two forward passes,
    each of one size; the same files one at a time give the same scores."""
    files = []
    for k in range(8):
        w, h = (48, 40) if k % 3 else (64, 64)
        files.append(str(tmp_path / f"{k}.png"))
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(files[-1])
    detector = load_detector(tiny_models["classifier"], device="cpu")
    calls = []
    forward = detector.predict_images
    monkeypatch.setattr(
        detector,
        "predict_images",
        lambda images, seeds: calls.append([tuple(x.shape) for x in images]) or forward(images, seeds),
    )
    batched = detector.predict_paths(files, batch_size=8).results
    assert sorted(calls) == [[(3, 40, 48)] * 5, [(3, 64, 64)] * 3]
    assert list(batched["path"]) == files
    single = detector.predict_paths(files, batch_size=1).results
    assert len(calls) == 2 + 8 and np.allclose(batched["prob_generated"], single["prob_generated"], atol=1e-5)


def test_failing_forward_isolates_the_file(tiny_models, corpus, monkeypatch):
    detector = load_detector(tiny_models["classifier"], device="cpu")
    forward = detector.predict_images

    def fragile(images, seeds):
        if any(x.mean() > 0.99 for x in images):  # only the all-white image
            raise RuntimeError("boom")
        return forward(images, seeds)

    white = Path(corpus["good.png"][0]).with_name("white.png")
    Image.new("RGB", (48, 40), "white").save(white)
    monkeypatch.setattr(detector, "predict_images", fragile)
    report = detector.predict_paths([corpus["good.png"][0], str(white), corpus["grey.png"][0]], batch_size=3)
    assert list(report.results["path"]) == [corpus["good.png"][0], corpus["grey.png"][0]]
    assert report.failures == [(str(white), "prediction failed (RuntimeError: boom)")]


def test_threshold_override_and_card_threshold(tiny_models, corpus):
    detector = load_detector(tiny_models["classifier"], device="cpu")
    assert detector.threshold == pytest.approx(0.45)
    r = detector.predict_paths([corpus["good.png"][0]], threshold=1.0).results
    assert r["threshold"].iloc[0] == 1.0 and r["label"].iloc[0] == "real"
    with pytest.raises(ValueError, match="threshold"):
        detector.predict_paths([corpus["good.png"][0]], threshold=1.5)
    with pytest.raises(ValueError, match="workers"):
        detector.predict_paths([corpus["good.png"][0]], workers=-1)


def test_hrr_checkpoint_is_self_contained(tiny_models, corpus, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_models["hrr"], moved)
    assert (moved / "retrospection_ldm" / "ldm_config.json").is_file()
    a = load_detector(moved, "cpu").predict_paths([corpus["good.png"][0]]).results
    b = load_detector(tiny_models["hrr"], "cpu").predict_paths([corpus["good.png"][0]]).results
    assert a["prob_generated"].iloc[0] == pytest.approx(b["prob_generated"].iloc[0], abs=1e-6)
