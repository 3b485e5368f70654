"""The detector card: ``models/<method>/detector.json``, what makes a trained folder self-describing.

:func:`write_detector_card` records the model kind and config, how inputs are preprocessed, the
decision threshold calibrated on *validation* data (never test), validation metrics, a training-data
summary and the sha256 of every file inference reads. Detectors that re-render inputs through a
diffusion model (HRR with retrospection on, DIRE) also get a copy of it in ``retrospection_ldm/``,
so the folder alone is enough to run the detector anywhere.

:func:`check_card` is the gate before anything is deserialised: it refuses, naming the file and
the fix, a card of an unknown format or version, a config this hrr_core cannot build, a path that
leaves the folder, a file whose hash differs from the card's, and any pickle where safetensors
are expected (unpickling runs code; hrr stores weights as safetensors and JSON only). The hashes
catch stale cards, partial copies and edits; they are not a signature, so take checkpoints only
from people you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hrr_core
from hrr_core import methods
from hrr_core.confutil import ConfigError, from_dict, to_dict
from hrr_core.evaluation.calibration import calibrate_threshold
from hrr_core.evaluation.metrics import binary_metrics
from hrr_core.io import PICKLE_SUFFIXES, atomic_dir, atomic_write_json, sha256_file
from hrr_core.paths import inside
from hrr_core.training.checkpoint import STATE_FILE

CARD_FILE = "detector.json"
CARD_FORMAT = "hrr-detector"
CARD_VERSION = 1
LDM_DIR = "retrospection_ldm"
BEST_DIR = "best"
RETRAIN = "re-run the train stage (dvc repro train@<method>), which writes it"


# ---------------------------------------------------------------- what the registry says of a card's method


def _spec_for(kind: str | None, baseline: str | None):
    """The registry entry of a card's method (raises ValueError when unknown)."""
    return methods.get(baseline or kind or "")


def _carries_ldm(spec, cfg: Any) -> bool:
    return spec.ldm_dir(cfg, Path(LDM_DIR)) is not None


# ---------------------------------------------------------------- small pieces


class DetectorLoadError(ValueError):
    """A checkpoint folder that cannot be used for inference; names the file and the fix."""

    def __init__(self, path: str | os.PathLike, reason: str, fix: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}. Fix: {fix}")


def _folder_digest(folder: Path) -> str:
    """sha256 over the names and contents of the files of ``folder`` (the trained weights)."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(folder).as_posix()}:{sha256_file(f)}\n".encode())
    return digest.hexdigest()


def _files_of(model_dir: Path, folders: list[str]) -> list[Path]:
    return sorted(p for name in folders for p in (model_dir / name).rglob("*") if p.is_file())


def _file_table(model_dir: Path, folders: list[str]) -> dict[str, dict[str, Any]]:
    """``{relative posix path: {"sha256", "bytes"}}`` of every file under ``folders`` of ``model_dir``."""
    return {
        p.relative_to(model_dir).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in _files_of(model_dir, folders)
    }


def _inference_config(data: Any) -> Any:
    """The model config with pretrained-backbone loading switched off: every weight comes from
    ``best/``, so inference never needs the ImageNet file the run started from."""
    if isinstance(data, dict):
        out = {k: _inference_config(v) for k, v in data.items()}
        if "pretrained" in out and "weights_path" in out and "name" in out:  # a BackboneConfig
            out.update(pretrained=False, weights_path=None)
        return out
    return data


def _carry_ldm(model_dir: Path, ldm, kind: str) -> None:
    """Copy the diffusion model (a ``LatentDiffusion.save`` / diffusers folder, or a
    ``LatentDiffusion``) into ``model_dir/retrospection_ldm/``: it travels with the checkpoint."""
    if ldm is None:
        raise ValueError(
            f"a {kind} detector with a diffusion model (HRR with msr.retrospection on, or DIRE) needs "
            "retrospection_ldm_dir (models/retrospection_ldm, or DIRE's representation.ldm_path)"
        )
    with atomic_dir(model_dir / LDM_DIR) as tmp:
        if isinstance(ldm, torch.nn.Module):
            ldm.save(tmp)
        else:
            # pickled duplicates (diffusers' .bin beside .safetensors) stay behind: loading refuses them
            skip = shutil.ignore_patterns(*(f"*{s}" for s in PICKLE_SUFFIXES))
            shutil.copytree(ldm, tmp, dirs_exist_ok=True, ignore=skip)


# ---------------------------------------------------------------- writing


def write_detector_card(
    model_dir,
    *,
    method: str,
    kind: str,
    baseline: str | None,
    model_config: dict,
    train_generators,
    profile: str,
    threshold: float | None,
    val_metrics: dict,
    data_summary: dict,
    retrospection_ldm_dir=None,
    ema_weights: bool = False,
    noise_seed: int | None = None,
) -> Path:
    """Write ``model_dir/detector.json`` atomically (after ``model_dir/best/`` is final) and,
    for detectors with a diffusion model, copy it (a folder saved by ``LatentDiffusion.save``,
    or a ``LatentDiffusion`` object) into ``model_dir/retrospection_ldm/``. Returns the card's path.

    ``threshold``: from :func:`hrr_core.evaluation.calibration.calibrate_threshold` on validation
    scores (None: 0.5 is used).
    """
    model_dir = Path(model_dir)
    best = model_dir / BEST_DIR
    if not best.is_dir():
        raise FileNotFoundError(f"{best} does not exist; write the card after the best checkpoint is saved")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    spec = _spec_for(kind, baseline)
    cfg = from_dict(spec.config_cls, model_config, "model_config")  # refuse a card that cannot load
    preprocessing: dict[str, Any] = {
        "input": "file -> hrr_core.io.load_image (EXIF-rotated, 8-bit RGB, alpha on white, first frame) "
        "-> (3, H, W) float32 in [0, 1] at the stored size, no resizing",
        "min_side": spec.min_side(cfg),
        "smaller_images": "refused as per-file failures (never padded or upscaled)",
        **(spec.card_preprocessing(cfg) if spec.card_preprocessing else {}),
    }
    if "retrospection" in preprocessing and noise_seed is not None:  # io.image_seed(pixels, noise_seed) per image
        preprocessing["retrospection"]["noise_seed"] = int(noise_seed)
    folders = [BEST_DIR]
    if _carries_ldm(spec, cfg):
        _carry_ldm(model_dir, retrospection_ldm_dir, kind)
        folders.append(LDM_DIR)
    card = {
        "ema_weights": bool(ema_weights),  # best/ holds EMA weights to evaluate with (train.ema_decay)
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        "hrr_core_version": hrr_core.__version__,
        "model_id": f"{method}-{_folder_digest(best)[:12]}",
        "method": method,
        "kind": kind,
        "baseline": baseline,
        "model_config": to_dict(cfg),
        "train_generators": list(train_generators),
        "profile": profile,
        "preprocessing": preprocessing,
        "threshold": {
            "value": None if threshold is None else float(threshold),
            "calibrated_on": "validation",
            "criterion": "max balanced accuracy; ties -> closest to 0.5",
        },
        "val_metrics": dict(val_metrics),
        "training_data": dict(data_summary),
        "files": _file_table(model_dir, folders),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return atomic_write_json(model_dir / CARD_FILE, card)


def write_card_for_method(
    cfg, method: str, model_dir, val_probs, val_labels, data_summary: dict, retrospection_ldm_dir=None
) -> Path:
    """The call for ``run_train``: calibrate on the validation probabilities, add validation
    metrics at that threshold and at 0.5, and write the card for ``cfg.method(method)``."""
    m = cfg.method(method)
    probs, labels = np.asarray(val_probs, np.float64), np.asarray(val_labels).astype(int)
    threshold = calibrate_threshold(probs, labels)
    metrics = {
        "at_threshold": binary_metrics(probs, labels, threshold),
        "at_0.5": binary_metrics(probs, labels, 0.5),
        "n_val": int(len(labels)),
    }
    return write_detector_card(
        model_dir,
        method=method,
        kind=m.kind,
        baseline=m.baseline,
        model_config=to_dict(cfg.model_config(method)),
        train_generators=m.train_generators,
        profile=cfg.profile,
        threshold=threshold,
        val_metrics=metrics,
        data_summary=data_summary,
        retrospection_ldm_dir=retrospection_ldm_dir,
        ema_weights=cfg.train_config(method).ema_decay is not None,
        noise_seed=cfg.retrospection_config().seed,
    )


# ---------------------------------------------------------------- reading and checking


def read_card(model_dir) -> dict:
    """``detector.json`` of ``model_dir``, checked for a format this hrr_core can read."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    if not model_dir.is_dir():
        raise DetectorLoadError(
            model_dir, "no such checkpoint folder", "pass models/<method>, the folder holding detector.json and best/"
        )
    if not path.is_file():
        raise DetectorLoadError(path, "missing, so this folder is not a self-describing checkpoint", RETRAIN)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DetectorLoadError(path, f"unreadable ({exc})", RETRAIN) from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        fmt = card.get("format") if isinstance(card, dict) else None
        raise DetectorLoadError(path, f"not a detector card (format {fmt!r})", RETRAIN)
    version = card.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DetectorLoadError(path, f"unknown format_version {version!r}", RETRAIN)
    if version > CARD_VERSION:
        raise DetectorLoadError(
            path,
            f"format_version {version} is newer than this hrr_core reads ({CARD_VERSION}; "
            f"written by hrr_core {card.get('hrr_core_version')})",
            "upgrade hrr (pip install -U hrr)",
        )
    return card


@dataclass(frozen=True)
class CheckedCard:
    """A card that passed :func:`check_card`: its config (pretrained loading off), the weights
    folder and the carried diffusion model's folder (None when the method has none)."""

    card: dict
    config: Any
    best: Path
    ldm_dir: Path | None


def _inside(model_dir: Path, rel: Any, card_path: Path, follow_links: bool = True) -> Path:
    """``model_dir / rel`` for a path the card names, refusing one that leaves the folder
    (:func:`hrr_core.paths.inside`)."""
    p = inside(model_dir, rel, follow_links)
    if p is None:
        raise DetectorLoadError(
            card_path,
            f"names the path {rel!r}, which is not inside the model folder (a checkpoint reads only its own files)",
            "restore the original detector.json, or re-run the train stage to write a new one",
        )
    return p


def _declared_ldm_dir(card: dict, model_dir: Path, card_path: Path) -> Path:
    """The diffusion-model folder the card's preprocessing names (``retrospection_ldm`` before any was named)."""
    sections = [s for s in card["preprocessing"].values() if isinstance(s, dict)]
    named = [s["ldm_dir"] for s in sections if s.get("ldm_dir") is not None]
    return _inside(model_dir, named[0] if named else LDM_DIR, card_path)


def _not_safetensors(path: Path) -> str | None:
    """Why a weights file must not be loaded (a pickle, or not safetensors), or None when it may."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "is a Python pickle"
    if head[:4] == b"PK\x03\x04":
        return "is a zip archive (torch.save's format, a pickle inside)"
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return f"is a pickle-format weights file ({path.suffix})"
    if path.suffix.lower() == ".safetensors":
        n = struct.unpack("<Q", head[:8])[0] if len(head) == 9 else -1
        if not (head[8:9] == b"{" and 0 < n <= path.stat().st_size - 8):
            return "is not a safetensors file (its header is not safetensors' JSON)"
    return None


def _refuse_pickles(files: list[Path], model_dir: Path) -> None:
    """Every file inference may deserialise must be safetensors or JSON (the training state
    ``best/state.pt`` is never unpickled here: only its hash is checked)."""
    for f in files:
        if f == model_dir / BEST_DIR / STATE_FILE:
            continue
        why = _not_safetensors(f)
        if why:
            raise DetectorLoadError(
                f,
                f"{why}; hrr loads weights only from safetensors, because unpickling a file runs code from it",
                "re-run the train stage to rewrite the folder, or get the "
                "folder again from its author; never load such a file you did not make",
            )


def _check_hashes(card: dict, model_dir: Path, card_path: Path) -> None:
    """Every file the card lists exists with its size and sha256 (cards written before hashes
    were recorded are checked through ``model_id`` only)."""
    fix = "copy the whole model folder again (a file was changed, truncated or left out), or re-run the train stage"
    for rel, want in card.get("files", {}).items():
        path = _inside(model_dir, rel, card_path)
        if not path.is_file():
            raise DetectorLoadError(path, "missing (detector.json lists it)", fix)
        want = want if isinstance(want, dict) else {}
        if path.stat().st_size != want.get("bytes") or sha256_file(path) != want.get("sha256"):
            raise DetectorLoadError(path, "does not match detector.json (its size or sha256 differs)", fix)


def _config_of(card: dict, path: Path) -> tuple[Any, Any]:
    """The card's method spec and model config, after checking the keys inference reads."""
    try:
        spec = _spec_for(card.get("kind"), card.get("baseline"))
        cfg = from_dict(spec.config_cls, _inference_config(card["model_config"]), "model_config")
        missing = [k for k in ("method", "model_id", "threshold", "preprocessing") if k not in card]
        if "threshold" in card and "value" not in card["threshold"]:
            missing.append("threshold.value")
        if missing:
            raise KeyError(f"missing keys {missing}")
        if not isinstance(card["preprocessing"], dict) or not isinstance(card.get("files", {}), dict):
            raise TypeError("preprocessing and files must be JSON objects")
        int(card["preprocessing"]["min_side"])
    except (ValueError, ConfigError, KeyError, TypeError, AttributeError) as exc:
        raise DetectorLoadError(
            path,
            f"cannot be used by hrr_core {hrr_core.__version__} ({type(exc).__name__}: {exc})",
            "re-run the train stage with this version of hrr, or install the version named in the card",
        ) from None
    return spec, cfg


def check_card(model_dir) -> CheckedCard:
    """Everything :func:`hrr_core.inference.load_detector` checks before deserialising a byte:
    raises :class:`DetectorLoadError` naming the file and the fix (see the module docstring)."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    path = model_dir / CARD_FILE
    spec, cfg = _config_of(card, path)
    best = model_dir / BEST_DIR
    ldm_dir = _declared_ldm_dir(card, model_dir, path) if _carries_ldm(spec, cfg) else None
    for rel in card.get("files", {}):
        _inside(model_dir, rel, path, follow_links=False)  # files may be links into DVC's cache
    if not best.is_dir():
        raise DetectorLoadError(best, "missing", "copy the whole model folder, or re-run the train stage")
    if ldm_dir is not None and not ldm_dir.is_dir():
        raise DetectorLoadError(
            ldm_dir,
            "missing: this detector re-renders inputs through the diffusion model it carries",
            "copy the whole model folder, including retrospection_ldm/",
        )
    folders = [BEST_DIR] + ([ldm_dir.relative_to(model_dir).as_posix()] if ldm_dir else [])
    try:
        _refuse_pickles(_files_of(model_dir, folders), model_dir)
        _check_hashes(card, model_dir, path)
        digest = _folder_digest(best)
    except OSError as exc:
        raise DetectorLoadError(
            exc.filename or model_dir,
            f"cannot be read ({exc.strerror or exc})",
            "make the model folder readable by this user",
        ) from None
    if card["model_id"] != f"{card['method']}-{digest[:12]}":
        raise DetectorLoadError(
            best,
            "not the weights detector.json was written for (stale card or mixed copy)",
            "copy the whole model folder, or re-run the train stage to write a matching card",
        )
    return CheckedCard(card, cfg, best, ldm_dir)
