"""hrr_core.predict: detector cards, threshold calibration, loading, and scoring a corpus of
broken and unusual files with tiny models built and saved here (a classifier and an HRR
detector with a tiny pixel LDM, so retrospection runs on the fly)."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hrr_core.confutil import to_dict
from hrr_core.models.backbones import BackboneConfig
from hrr_core.models.classifier import BinaryClassifier, ClassifierConfig
from hrr_core.models.hrr import HRRConfig, HRRDetector
from hrr_core.models.ldm import LatentDiffusion, LDMConfig
from hrr_core.models.msr import MSRConfig
from hrr_core.predict import (CARD_FILE, DetectorLoadError, calibrate_threshold, expand_inputs, load_detector,
                              write_detector_card)
from hrr_core.training.checkpoint import save_checkpoint

TINY_BACKBONE = dict(name="small_resnet", pretrained=False, width=4)
TINY_MSR = MSRConfig(scale_factors=(1.0, 2.0), base_size=32, input_size=32, max_upscale=4.0, num_steps=1)
TINY_LDM = LDMConfig(space="pixel", norm_num_groups=4, unet_block_out_channels=(8, 8), max_train_timestep=300, seed=3)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- tiny checkpoints


def _card(model_dir: Path, method: str, kind: str, cfg, threshold=0.5, ldm_dir=None) -> Path:
    return write_detector_card(model_dir, method=method, kind=kind, baseline=None, model_config=to_dict(cfg),
                               train_generators=["tiny_gen"], profile="smoke", threshold=threshold,
                               val_metrics={"ap": 1.0}, data_summary={"n_train": 2, "n_val": 2},
                               retrospection_ldm_dir=ldm_dir)


def make_classifier_dir(root: Path) -> Path:
    """models/tiny_cnn: a BinaryClassifier on a width-4 small_resnet, best/ + detector.json."""
    torch.manual_seed(0)
    cfg = ClassifierConfig(backbone=BackboneConfig(**TINY_BACKBONE))
    model_dir = root / "tiny_cnn"
    save_checkpoint(model_dir / "best", BinaryClassifier(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)})
    _card(model_dir, "tiny_cnn", "classifier", cfg, threshold=0.45)
    return model_dir


def make_hrr_dir(root: Path) -> Path:
    """models/tiny_hrr: HRR over 2 scales with a tiny untrained pixel LDM copied into the folder."""
    torch.manual_seed(0)
    cfg = HRRConfig(backbone=BackboneConfig(**TINY_BACKBONE), msr=TINY_MSR)
    ldm_dir = LatentDiffusion.create(TINY_LDM).save(root / "retrospection_ldm")
    model_dir = root / "tiny_hrr"
    save_checkpoint(model_dir / "best", HRRDetector(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)})
    _card(model_dir, "tiny_hrr", "hrr", cfg, ldm_dir=ldm_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"classifier": make_classifier_dir(root), "hrr": make_hrr_dir(root)}


# ---------------------------------------------------------------- the bad-input corpus


def _rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_bomb() -> bytes:
    """A valid PNG signature and IHDR claiming 100000 x 100000 pixels, and almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _frames(fmt: str) -> bytes:
    frames = [_rgb(40, 36, s) for s in range(3)]
    return _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def make_corpus(folder: Path) -> dict[str, tuple[str, bool]]:
    """Build the corpus in ``folder``: name -> (path, should_predict). Sizes of the good images
    are >= 32 px so both tiny detectors can score them."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[str, bool]] = {}

    def put(name: str, data: bytes, ok: bool, fname: str | bytes | None = None) -> None:
        path = os.path.join(os.fsencode(folder), fname) if isinstance(fname, bytes) else folder / (fname or name)
        Path(os.fsdecode(path)).write_bytes(data)
        cases[name] = (os.fsdecode(path), ok)

    jpeg = _encoded(_rgb(48, 40, 1), "JPEG", quality=90)
    png = _encoded(_rgb(48, 40, 2), "PNG")
    put("empty.png", b"", False)
    put("truncated.jpg", jpeg[: len(jpeg) // 2], False)
    put("truncated.png", png[: len(png) // 2], False)
    put("random.jpg", np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(), False)
    put("notes.txt", b"not an image, just text\n", False)
    put("bomb.png", _png_bomb(), False)
    put("one_pixel.png", _encoded(_rgb(1, 1), "PNG"), False)
    put("strip_1x4000.png", _encoded(_rgb(4000, 1), "PNG"), False)
    put("good.png", png, True)
    put("UPPER.JPG", jpeg, True)
    put("deep16.png", _encoded(Image.fromarray((np.arange(48 * 40).reshape(40, 48) * 30).astype(np.uint16)), "PNG"), True)
    put("cmyk.jpg", _encoded(_rgb(48, 40, 4).convert("CMYK"), "JPEG"), True)
    pal = _rgb(48, 40, 5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    put("palette_transparent.png", _encoded(pal, "PNG", transparency=0), True)
    put("rgba.png", _encoded(_rgb(48, 40, 6).convert("RGBA"), "PNG"), True)
    put("grey.png", _encoded(_rgb(48, 40, 7).convert("L"), "PNG"), True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    put("exif_rotated.jpg", _encoded(_rgb(48, 40, 8), "JPEG", exif=exif), True)
    put("animated.gif", _frames("GIF"), True)
    put("animated.webp", _frames("WEBP"), True)
    put("image.tiff", _encoded(_rgb(48, 40, 9), "TIFF"), True)
    put("non_utf8", png, True, fname=b"caf\xe9.png")
    put("locked.png", png, False)
    os.chmod(cases["locked.png"][0], 0)
    if os.access(cases["locked.png"][0], os.R_OK):  # root reads anything: then it is a good file
        cases["locked.png"] = (cases["locked.png"][0], True)
    (folder / "folder_named_x.png").mkdir()
    cases["folder_named_x.png"] = (str(folder / "folder_named_x.png"), False)
    os.symlink("loop.png", folder / "loop.png")
    cases["loop.png"] = (str(folder / "loop.png"), False)
    os.symlink("nowhere.png", folder / "dangling.png")
    cases["dangling.png"] = (str(folder / "dangling.png"), False)
    cases["missing.png"] = (str(folder / "missing.png"), False)
    return cases


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, tuple[str, bool]]:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "inputs")


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
    cfg = HRRConfig(backbone=BackboneConfig(**TINY_BACKBONE), msr=TINY_MSR)
    with pytest.raises(FileNotFoundError, match="best"):
        _card(tmp_path, "x", "hrr", cfg)
    (tmp_path / "best").mkdir()
    with pytest.raises(ValueError, match="retrospection_ldm_dir"):
        _card(tmp_path, "x", "hrr", cfg)


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
