"""hrr_core.card: writing detector.json, and refusing cards that are incompatible, stale or
tampered with (paths leaving the folder, hashes that differ, pickles instead of safetensors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from hrr_core.card import CARD_FILE, DetectorLoadError, check_card
from hrr_core.inference import load_detector
from hrr_core.io import sha256_file
from hrr_core.models.backbones import BackboneConfig
from hrr_core.models.hrr import HRRConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _edit_card(folder: Path, edit) -> Path:
    card = json.loads((folder / CARD_FILE).read_text())
    edit(card)
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


def _broken_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    return _edit_card(dst, edit)


def _refused(folder: Path, words: str, names: Path) -> str:
    """load_detector refuses ``folder`` with ``words``, naming the file ``names`` and a fix."""
    with pytest.raises(DetectorLoadError, match=words) as info:
        load_detector(folder, "cpu")
    message = str(info.value)
    assert message.startswith(str(names)) and "Fix:" in message
    return message


def test_card_lists_what_inference_reads(tiny_models):
    card = json.loads((tiny_models["hrr"] / CARD_FILE).read_text())
    assert card["preprocessing"]["retrospection"]["on_the_fly"] and card["threshold"]["calibrated_on"] == "validation"
    assert card["preprocessing"]["min_side"] == 8  # ceil(base_size 32 / max_upscale 4)
    files = card["files"]
    assert {"best/model.safetensors", "best/meta.json", "retrospection_ldm/ldm_config.json"} <= set(files)
    f = tiny_models["hrr"] / "best" / "model.safetensors"
    assert files["best/model.safetensors"] == {"sha256": sha256_file(f), "bytes": f.stat().st_size}
    assert not any(p.name.startswith(".") for p in tiny_models["hrr"].iterdir())  # no temp folder of the LDM copy
    checked = check_card(tiny_models["hrr"])
    assert checked.ldm_dir == tiny_models["hrr"] / "retrospection_ldm" and checked.config.backbone.pretrained is False


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.update(format_version=99), "newer"),
        (lambda c: c.update(kind="transformer"), "unknown method kind"),
        (lambda c: c.update(kind="baseline", baseline="dire"), "cannot be used"),  # a DIRE card needs a DIRE config
        (lambda c: c["model_config"].update(colour="blue"), "unknown key"),
        (lambda c: c.update(format="something-else"), "not a detector card"),
        (lambda c: c.update(model_id="tiny_cnn-000000000000"), "stale card"),
        (lambda c: c["preprocessing"].pop("min_side"), "min_side"),
        (lambda c: c.update(files=["best/model.safetensors"]), "files must be JSON objects"),
    ],
)
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


def test_card_needs_best_and_the_ldm(detectors, tmp_path):
    cfg = HRRConfig(backbone=BackboneConfig(**detectors.TINY_BACKBONE), msr=detectors.TINY_MSR)
    with pytest.raises(FileNotFoundError, match="best"):
        detectors.write_card(tmp_path, "x", "hrr", cfg)
    (tmp_path / "best").mkdir()
    with pytest.raises(ValueError, match="retrospection_ldm_dir"):
        detectors.write_card(tmp_path, "x", "hrr", cfg)


# ---------------------------------------------------------------- tampering


@pytest.mark.parametrize("path", ["../elsewhere", "/tmp/ldm", "retrospection_ldm/../../x", ""])
def test_card_paths_outside_the_folder_are_refused(tiny_models, tmp_path, path):
    def edit(card):
        card["preprocessing"]["retrospection"]["ldm_dir"] = path

    bad = _broken_copy(tiny_models["hrr"], tmp_path / "bad", edit)
    message = _refused(bad, "not inside the model folder", bad / CARD_FILE)
    assert repr(path) in message


def test_an_ldm_folder_linked_out_of_the_model_folder_is_refused(tiny_models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["hrr"], bad)
    (bad / "retrospection_ldm").rename(tmp_path / "elsewhere")
    (bad / "retrospection_ldm").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert "'retrospection_ldm'" in _refused(bad, "not inside the model folder", bad / CARD_FILE)


def test_listed_file_outside_the_folder_is_refused(tiny_models, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    bad = _broken_copy(
        tiny_models["classifier"],
        tmp_path / "bad",
        lambda c: c["files"].update(
            {"../secret.txt": {"sha256": sha256_file(outside), "bytes": outside.stat().st_size}}
        ),
    )
    _refused(bad, "'../secret.txt', which is not inside", bad / CARD_FILE)


@pytest.mark.parametrize("rel", ["best/model.safetensors", "retrospection_ldm/unet/config.json"])
def test_a_changed_file_is_refused_by_its_hash(tiny_models, tmp_path, rel):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["hrr"], bad)
    data = bytearray((bad / rel).read_bytes())
    data[-2] ^= 0xFF  # same size, different bytes
    (bad / rel).write_bytes(bytes(data))
    _refused(bad, "does not match detector.json", bad / rel)


def test_a_missing_listed_file_is_refused(tiny_models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["hrr"], bad)
    (bad / "retrospection_ldm" / "scheduler" / "scheduler_config.json").unlink()
    _refused(bad, "missing", bad / "retrospection_ldm" / "scheduler" / "scheduler_config.json")


def _pickle_in_place_of_weights(folder: Path) -> Path:
    """best/model.safetensors replaced by a torch.save pickle, with meta.json and the card
    updated to its hash, so only the format check stands between it and torch.load."""
    weights = folder / "best" / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, weights)
    digest = {"sha256": sha256_file(weights), "bytes": weights.stat().st_size}
    meta = json.loads((folder / "best" / "meta.json").read_text())
    meta["files"]["model.safetensors"] = digest
    (folder / "best" / "meta.json").write_text(json.dumps(meta))
    meta_path = folder / "best" / "meta.json"
    meta_digest = {"sha256": sha256_file(meta_path), "bytes": meta_path.stat().st_size}
    return _edit_card(
        folder, lambda c: c["files"].update({"best/model.safetensors": digest, "best/meta.json": meta_digest})
    )


def test_weights_replaced_by_a_pickle_are_refused(tiny_models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["classifier"], bad)
    message = _refused(_pickle_in_place_of_weights(bad), "zip archive", bad / "best" / "model.safetensors")
    assert "unpickling" in message and "re-run the train stage" in message


def test_a_pickled_unet_beside_the_ldm_is_refused(tiny_models, tmp_path):
    """diffusers falls back to diffusion_pytorch_model.bin: a .bin in the carried LDM is refused."""
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["hrr"], bad)
    pickled = bad / "retrospection_ldm" / "unet" / "diffusion_pytorch_model.bin"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 16)
    _refused(bad, "is a Python pickle", pickled)


def test_a_corrupt_safetensors_header_is_refused(tiny_models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["classifier"], bad)
    weights = bad / "best" / "model.safetensors"
    weights.write_bytes(b"\xff" * 64)
    _refused(bad, "not a safetensors file", weights)


def test_an_unreadable_weights_file_is_refused_without_a_traceback(tiny_models, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["classifier"], bad)
    weights = bad / "best" / "model.safetensors"
    real_open = open

    def locked_open(file, *args, **kwargs):
        if Path(file) == weights:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", locked_open)  # chmod 0 does not stop root
    _refused(bad, "cannot be read", weights)


def test_the_ldm_copy_leaves_pickles_behind(detectors, tmp_path):
    """Carrying a diffusers folder that also ships .bin duplicates copies the safetensors only."""
    root = detectors.make_hrr_dir(tmp_path)
    src = tmp_path / "retrospection_ldm"
    (src / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    cfg = HRRConfig(backbone=BackboneConfig(**detectors.TINY_BACKBONE), msr=detectors.TINY_MSR)
    detectors.write_card(root, "tiny_hrr", "hrr", cfg, ldm_dir=src)
    assert not (root / "retrospection_ldm" / "unet" / "diffusion_pytorch_model.bin").exists()
    assert check_card(root).ldm_dir.is_dir()
