"""Inference from a self-describing checkpoint: what ``hrr-detect`` and the notebooks share.

A trained method's folder ``models/<method>/`` becomes self-describing with ``detector.json``
(:func:`write_detector_card`): the model kind and config, how inputs are preprocessed, the
decision threshold calibrated on *validation* data (never test), validation metrics and a
training-data summary. HRR checkpoints also get a copy of the frozen retrospection LDM in
``retrospection_ldm/``, so the folder alone is enough to run the detector anywhere.

:func:`load_detector` rebuilds the model from the card and ``best/``; :meth:`Detector.predict_paths`
scores image files of any size, one bad file never stopping the run.

Input policy (recorded in the card under ``preprocessing``):
- every file goes through :func:`hrr_core.io.load_image` (EXIF orientation, 16-bit, palette,
  CMYK, grey and alpha converted to 8-bit RGB, first frame of animations), then (3, H, W) floats
  in [0, 1] at the stored size: no resizing, no cropping beyond what the model itself does;
- images whose short side is below the method's minimum (32 px for image models, MSR's
  ``ceil(base_size / max_upscale)`` for HRR) are reported as per-file failures, never padded or
  upscaled: resampling up to the minimum would erase the traces the detector looks for and
  still return a confident-looking number;
- HRR re-renders each image on the fly with a generator seeded by the sha256 of the file's bytes,
  so a file's score does not depend on the batch it lands in or on the order of the inputs.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import hrr_core
from hrr_core.confutil import ConfigError, from_dict, to_dict
from hrr_core.data.transforms import to_tensor, to_uint8
from hrr_core.data.walk import IMAGE_EXTENSIONS
from hrr_core.io import ImageLoadError, atomic_write_json, image_to_array, load_image, sha256_file

CARD_FILE = "detector.json"
CARD_FORMAT = "hrr-detector"
CARD_VERSION = 1
LDM_DIR = "retrospection_ldm"
IMAGE_MIN_SIDE = 32  # the project-wide minimum of every image backbone and baseline
MAX_BATCH_PIXELS = 1 << 25  # about 400 MB of float32 input per batch, whatever batch_size says
INPUT_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")  # what folder walks pick up (case-insensitive)
UNSUPPORTED_BASELINES: dict[str, str] = {}  # baseline -> why it cannot score image files (none today)


class DetectorLoadError(ValueError):
    """A checkpoint folder that cannot be used for inference; names the file and the fix."""

    def __init__(self, path: str | os.PathLike, reason: str, fix: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}. Fix: {fix}")


# ---------------------------------------------------------------- small pieces


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable UTF-8 text: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _folder_digest(folder: Path) -> str:
    """sha256 over the names and contents of the files of ``folder`` (the trained weights)."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(folder).as_posix()}:{sha256_file(f)}\n".encode())
    return digest.hexdigest()


def _spec(kind: str, baseline: str | None):
    """The registry entry of a card's method (``hrr_core.methods``)."""
    from hrr_core import methods

    return methods.get(baseline or kind)


def config_class(kind: str, baseline: str | None) -> type:
    """The config dataclass of a method (as :meth:`hrr_core.schema.Config.model_config`)."""
    return _spec(kind, baseline).config_cls


def minimum_side(kind: str, model_cfg: Any, baseline: str | None = None) -> int:
    """Smallest short side (pixels) an input image may have for this method."""
    return _spec(kind, baseline).min_side(model_cfg)


def uses_ldm(kind: str, baseline: str | None, model_cfg: Any) -> bool:
    """True when the detector re-renders inputs through a diffusion model the card carries in
    ``retrospection_ldm/`` (HRR with retrospection on, DIRE)."""
    return _spec(kind, baseline).ldm_dir(model_cfg, Path(LDM_DIR)) is not None


def _inference_config(data: Any) -> Any:
    """The model config with pretrained-backbone loading switched off: every weight comes from
    ``best/``, so inference never needs the ImageNet file the run started from."""
    if isinstance(data, dict):
        out = {k: _inference_config(v) for k, v in data.items()}
        if "pretrained" in out and "weights_path" in out and "name" in out:  # a BackboneConfig
            out.update(pretrained=False, weights_path=None)
        return out
    return data


# ---------------------------------------------------------------- threshold and card


def calibrate_threshold(val_scores, val_labels) -> float:
    """Decision threshold maximising balanced accuracy (mean of real- and fake-accuracy) of
    ``score >= t`` on VALIDATION probabilities; never calibrate on test data.

    Every t in an interval between two consecutive distinct scores gives the same predictions;
    within an optimal interval the candidate is 0.5 if it lies there, else the interval's midpoint
    (a margin on both sides). Ties between optimal intervals go to the candidate closest to 0.5.
    """
    s = np.asarray(val_scores, dtype=np.float64).ravel()
    y = np.asarray(val_labels).ravel()
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"need as many labels as scores (> 0), got {s.size} scores and {y.size} labels")
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("validation scores must be finite probabilities in [0, 1]; pass sigmoid(logits)")
    if not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise ValueError("validation labels must be 0 (real) and 1 (generated) with both present; "
                         "balanced accuracy needs reals and fakes in the validation set")
    u = np.unique(s)  # (n,) ascending; cut j predicts "generated" for scores >= u[j] (u[n] = +inf)
    s_real, s_fake = np.sort(s[y == 0]), np.sort(s[y == 1])
    cuts = np.append(u, np.inf)
    tnr = np.searchsorted(s_real, cuts, side="left") / len(s_real)  # reals below the cut
    tpr = 1 - np.searchsorted(s_fake, cuts, side="left") / len(s_fake)  # fakes at or above it
    bacc = (tnr + tpr) / 2
    lower = np.concatenate([[0.0], u])  # interval j is (lower_j, upper_j]
    upper = np.append(u, 1.0)
    inside = (lower < 0.5) & (0.5 <= upper)
    cand = np.where(inside, 0.5, (lower + upper) / 2)
    cand[-1] = max(cand[-1], np.nextafter(lower[-1], np.inf))  # above the top score, even when it is 1.0
    best = np.flatnonzero(bacc >= bacc.max() - 1e-12)
    return float(cand[best[np.argmin(np.abs(cand[best] - 0.5))]])


def _copy_folder_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def _carry_ldm(model_dir: Path, ldm, kind: str) -> None:
    """Copy the diffusion model (a ``LatentDiffusion.save`` / diffusers folder, or a
    ``LatentDiffusion``) into ``model_dir/retrospection_ldm/``: it travels with the checkpoint."""
    if ldm is None:
        raise ValueError(f"a {kind} detector with a diffusion model (HRR with msr.retrospection on, or DIRE) needs "
                         "retrospection_ldm_dir (models/retrospection_ldm, or DIRE's representation.ldm_path)")
    if isinstance(ldm, torch.nn.Module):
        ldm.save(model_dir / f".{LDM_DIR}.new")
        ldm = model_dir / f".{LDM_DIR}.new"
    _copy_folder_atomic(Path(ldm), model_dir / LDM_DIR)
    shutil.rmtree(model_dir / f".{LDM_DIR}.new", ignore_errors=True)


def write_detector_card(model_dir, *, method: str, kind: str, baseline: str | None, model_config: dict,
                        train_generators, profile: str, threshold: float | None, val_metrics: dict,
                        data_summary: dict, retrospection_ldm_dir=None) -> Path:
    """Write ``model_dir/detector.json`` atomically (after ``model_dir/best/`` is final) and,
    for HRR with retrospection on, copy the LDM (a folder saved by ``LatentDiffusion.save``, or
    a ``LatentDiffusion`` object) into ``model_dir/retrospection_ldm/``. Returns the card's path.

    ``threshold``: from :func:`calibrate_threshold` on validation scores (None: 0.5 is used).
    """
    model_dir = Path(model_dir)
    best = model_dir / "best"
    if not best.is_dir():
        raise FileNotFoundError(f"{best} does not exist; write the card after the best checkpoint is saved")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    cfg = from_dict(config_class(kind, baseline), model_config, "model_config")  # refuse a card that cannot load
    preprocessing: dict[str, Any] = {
        "input": "file -> hrr_core.io.load_image (EXIF-rotated, 8-bit RGB, alpha on white, first frame) "
                 "-> (3, H, W) float32 in [0, 1] at the stored size, no resizing",
        "min_side": minimum_side(kind, cfg, baseline),
        "smaller_images": "refused as per-file failures (never padded or upscaled)",
    }
    if kind == "hrr":
        msr = cfg.msr.resolved()
        preprocessing["retrospection"] = {
            "on_the_fly": True, "msr": to_dict(cfg.msr), "uses_ldm": msr.retrospection,
            "ldm_dir": LDM_DIR if msr.retrospection else None,
            "seed": "per file: int(sha256(file bytes)[:16], 16)"}
    if kind == "baseline" and baseline == "dire":
        preprocessing["dire"] = {"on_the_fly": True, "representation": to_dict(cfg.representation), "ldm_dir": LDM_DIR,
                                 "note": "residual |x - DDIM reconstruction(x)| computed per image size, deterministic"}
    if uses_ldm(kind, baseline, cfg):
        _carry_ldm(model_dir, retrospection_ldm_dir, kind)
    card = {
        "format": CARD_FORMAT, "format_version": CARD_VERSION, "hrr_core_version": hrr_core.__version__,
        "model_id": f"{method}-{_folder_digest(best)[:12]}", "method": method, "kind": kind, "baseline": baseline,
        "model_config": to_dict(cfg), "train_generators": list(train_generators), "profile": profile,
        "preprocessing": preprocessing,
        "threshold": {"value": None if threshold is None else float(threshold), "calibrated_on": "validation",
                      "criterion": "max balanced accuracy; ties -> closest to 0.5"},
        "val_metrics": dict(val_metrics), "training_data": dict(data_summary),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return atomic_write_json(model_dir / CARD_FILE, card)


def write_card_for_method(cfg, method: str, model_dir, val_probs, val_labels, data_summary: dict,
                          retrospection_ldm_dir=None) -> Path:
    """The call for ``run_train``: calibrate on the validation probabilities, add validation
    metrics at that threshold and at 0.5, and write the card for ``cfg.method(method)``."""
    from hrr_core.evaluation.metrics import binary_metrics

    m = cfg.method(method)
    probs, labels = np.asarray(val_probs, np.float64), np.asarray(val_labels).astype(int)
    threshold = calibrate_threshold(probs, labels)
    metrics = {"at_threshold": binary_metrics(probs, labels, threshold), "at_0.5": binary_metrics(probs, labels, 0.5),
               "n_val": int(len(labels))}
    return write_detector_card(model_dir, method=method, kind=m.kind, baseline=m.baseline,
                               model_config=to_dict(cfg.model_config(method)), train_generators=m.train_generators,
                               profile=cfg.profile, threshold=threshold, val_metrics=metrics,
                               data_summary=data_summary, retrospection_ldm_dir=retrospection_ldm_dir)


# ---------------------------------------------------------------- loading


def read_card(model_dir) -> dict:
    """``detector.json`` of ``model_dir``, checked for a format this hrr_core can read."""
    import json

    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    retrain = "re-run the train stage (dvc repro train@<method>), which writes it"
    if not model_dir.is_dir():
        raise DetectorLoadError(model_dir, "no such checkpoint folder", "pass models/<method>, the folder holding detector.json and best/")
    if not path.is_file():
        raise DetectorLoadError(path, "missing, so this folder is not a self-describing checkpoint", retrain)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DetectorLoadError(path, f"unreadable ({exc})", retrain) from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DetectorLoadError(path, f"not a detector card (format {card.get('format') if isinstance(card, dict) else None!r})", retrain)
    version = card.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DetectorLoadError(path, f"unknown format_version {version!r}", retrain)
    if version > CARD_VERSION:
        raise DetectorLoadError(path, f"format_version {version} is newer than this hrr_core reads ({CARD_VERSION}; "
                                f"written by hrr_core {card.get('hrr_core_version')})", "upgrade hrr (pip install -U hrr)")
    return card


@dataclass
class PredictionReport:
    """``results``: one row per predicted file (path, prob_generated, label, threshold, model);
    ``failures``: (path, reason) for every input that could not be predicted."""

    results: pd.DataFrame
    failures: list[tuple[str, str]] = field(default_factory=list)


class Detector:
    """A trained detector ready to score images; build it with :func:`load_detector`."""

    def __init__(self, card: dict, config: Any, model: Any, device: torch.device, ldm: Any = None, model_dir: Path | None = None):
        self.card, self.config, self.model, self.device, self.ldm, self.model_dir = card, config, model, device, ldm, model_dir
        self.kind, self.method, self.baseline, self.model_id = card["kind"], card["method"], card.get("baseline"), card["model_id"]
        self.min_side = int(card["preprocessing"].get("min_side", minimum_side(self.kind, self.config, card.get("baseline"))))
        self.threshold = card["threshold"]["value"] if card["threshold"]["value"] is not None else 0.5
        self.is_scorer = not isinstance(model, torch.nn.Module)

    def __repr__(self) -> str:
        return f"Detector({self.model_id}, kind={self.kind}, threshold={self.threshold:.4f}, device={self.device})"

    @torch.no_grad()
    def predict_images(self, images: list[torch.Tensor], seeds: list[int] | None = None) -> np.ndarray:
        """(B,) probabilities of being generated for (3, H, W) images in [0, 1] of one size
        (HRR: any sizes; ``seeds`` per image, default from the sha256 of the pixels)."""
        if self.kind == "hrr":
            from hrr_core.models.msr import retrospect

            if seeds is None:
                seeds = [int(hashlib.sha256(to_uint8(x).tobytes()).hexdigest()[:16], 16) for x in images]
            reps = [retrospect([x.to(self.device)], self.ldm, self.config.msr, torch.Generator().manual_seed(s))
                    for x, s in zip(images, seeds)]  # each (1, K, C', S, S): one generator per image
            inputs = torch.cat(reps).to(self.device)  # (B, K, C', S, S)
        elif self.ldm is not None:  # DIRE: the residual through the carried diffusion model
            from hrr_core.models.baselines.dire import dire_from_config

            inputs = dire_from_config(torch.stack(images).to(self.device), self.ldm, self.config.representation)  # (B, 3, H, W)
        else:
            inputs = torch.stack(images).to(self.device)  # (B, 3, H, W)
        if self.is_scorer:
            return np.asarray(self.model.score(inputs), dtype=np.float64).reshape(-1)
        logits = self.model(inputs).logits.float()  # (B,)
        return torch.sigmoid(logits).cpu().double().numpy()

    def predict_paths(self, paths, batch_size: int = 16, threshold: float | None = None,
                      progress: bool = False) -> PredictionReport:
        """Score image files; images of a size are batched together (HRR: any sizes together).
        Unreadable, too small or failing files go to ``failures``, the rest to ``results``."""
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        thr = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= thr <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {thr}")
        paths = [str(p) for p in paths]
        probs: dict[int, float] = {}
        failures: dict[int, str] = {}
        bar = tqdm(total=len(paths), disable=not progress, unit="img", desc="hrr-detect")
        chunk = max(4 * batch_size, 64)  # files held decoded at once
        for start in range(0, len(paths), chunk):
            loaded = self._load_chunk(paths, range(start, min(start + chunk, len(paths))), failures)
            for batch in self._batches(loaded, batch_size):
                self._run_batch(batch, probs, failures)
            bar.update(min(start + chunk, len(paths)) - start)
        bar.close()
        order = sorted(probs)
        results = pd.DataFrame({"path": [display_path(paths[i]) for i in order],
                                "prob_generated": [probs[i] for i in order]})
        results["label"] = np.where(results["prob_generated"] >= thr, "generated", "real")
        results["threshold"], results["model"] = thr, self.model_id
        return PredictionReport(results, [(display_path(paths[i]), failures[i]) for i in sorted(failures)])

    def _load_chunk(self, paths: list[str], idx: range, failures: dict[int, str]) -> list[tuple[int, torch.Tensor, int]]:
        out = []
        for i in idx:
            try:
                img = to_tensor(image_to_array(load_image(paths[i])))  # (3, H, W)
                seed = int(sha256_file(paths[i])[:16], 16) if self.kind == "hrr" else 0
            except ImageLoadError as exc:
                failures[i] = exc.reason + (f"; {exc.fix}" if exc.fix else "")
                continue
            except OSError as exc:  # the file changed between decoding and hashing
                failures[i] = f"unreadable ({exc.strerror or exc})"
                continue
            h, w = img.shape[-2:]
            if min(h, w) < self.min_side:
                failures[i] = (f"image is {w}x{h} pixels; this {self.method} detector needs a short side of at least "
                               f"{self.min_side} (small images are not upscaled: that would erase the traces it looks for)")
                continue
            out.append((i, img, seed))
        return out

    def _batches(self, loaded: list, batch_size: int):
        groups: dict[Any, list] = {}
        for item in loaded:  # HRR representations share one shape whatever the image size
            groups.setdefault(None if self.kind == "hrr" else tuple(item[1].shape), []).append(item)
        for items in groups.values():
            pixels = 1 if self.kind == "hrr" else items[0][1].shape[-1] * items[0][1].shape[-2]
            size = max(1, min(batch_size, MAX_BATCH_PIXELS // pixels))
            for s in range(0, len(items), size):
                yield items[s:s + size]

    def _run_batch(self, batch: list, probs: dict[int, float], failures: dict[int, str]) -> None:
        try:
            out = self.predict_images([x for _, x, _ in batch], [s for _, _, s in batch])
        except Exception as exc:  # noqa: BLE001 - isolate the file that fails
            if len(batch) > 1:
                for item in batch:
                    self._run_batch([item], probs, failures)
                return
            failures[batch[0][0]] = f"prediction failed ({type(exc).__name__}: {exc})"
            return
        for (i, _, _), p in zip(batch, out):
            if math.isfinite(p):
                probs[i] = float(p)
            else:
                failures[i] = "the model returned a non-finite score for this image"


def load_detector(model_dir, device: str = "auto") -> Detector:
    """Rebuild the detector described by ``model_dir/detector.json`` with the weights of
    ``model_dir/best/``; raises :class:`DetectorLoadError` naming the file and the fix."""
    from hrr_core.runtime import resolve_device
    from hrr_core.training.checkpoint import CheckpointError, load_weights

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    path = model_dir / CARD_FILE
    kind, baseline = card.get("kind"), card.get("baseline")
    if kind == "baseline" and baseline in UNSUPPORTED_BASELINES:
        raise DetectorLoadError(path, f"baseline {baseline!r} cannot score image files: {UNSUPPORTED_BASELINES[baseline]}",
                                "evaluate it through the pipeline (dvc repro evaluate@<method>)")
    try:
        cls = config_class(kind, baseline)
        cfg = from_dict(cls, _inference_config(card["model_config"]), "model_config")
        missing = [k for k in ("method", "model_id", "threshold", "preprocessing") if k not in card]
        if missing or "value" not in card["threshold"]:
            raise KeyError(f"missing keys {missing or ['threshold.value']}")
    except (ValueError, ConfigError, KeyError, TypeError) as exc:
        raise DetectorLoadError(path, f"cannot be used by hrr_core {hrr_core.__version__} ({type(exc).__name__}: {exc})",
                                "re-run the train stage with this version of hrr, or install the version named in the card") from None
    best = model_dir / "best"
    if not best.is_dir() or card["model_id"] != f"{card['method']}-{_folder_digest(best)[:12]}":
        raise DetectorLoadError(best, "missing, or not the weights detector.json was written for (stale card or mixed copy)",
                                "copy the whole model folder, or re-run the train stage to write a matching card")
    dev = resolve_device(device)
    try:
        spec = _spec(kind, baseline)
        if spec.is_scorer:
            model = spec.load(best)
        else:
            model = spec.build(cfg)
            load_weights(best, model)
            model = model.to(dev).eval()
    except (CheckpointError, ValueError, OSError, RuntimeError) as exc:
        raise DetectorLoadError(best, f"cannot be loaded ({exc})", "re-run the train stage for this method") from None
    ldm = None
    if uses_ldm(kind, baseline, cfg):
        from hrr_core.models.ldm import load_ldm

        try:
            ldm = load_ldm(model_dir / LDM_DIR, dev)
        except (ValueError, OSError, RuntimeError) as exc:
            raise DetectorLoadError(model_dir / LDM_DIR, f"retrospection LDM cannot be loaded ({exc})",
                                    "copy the whole model folder, including retrospection_ldm/") from None
    return Detector(card, cfg, model, dev, ldm, model_dir)


# ---------------------------------------------------------------- inputs


def _stat_failure(path: str) -> str:
    """Why ``path`` cannot be followed: missing, a broken link, a link loop, or another error."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if os.path.islink(path):
            return "broken symbolic link (its target does not exist)"
        if exc.errno == errno.ENOENT:
            return "no such file or folder"
        return f"cannot be opened ({exc.strerror or exc})"
    return "cannot be read"


def _walk(top: str, files: list[str], failures: list[tuple[str, str]]) -> None:
    """Image files under folder ``top`` (recursive, sorted, hidden names skipped, symlinked
    folders followed once); unreadable folders and broken links go to ``failures``."""
    stack, seen = [top], set()
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            failures.append((folder, f"cannot list this folder ({exc.strerror or exc})"))
            continue
        subfolders = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    subfolders.append(e.path)
                elif os.path.splitext(e.name)[1].lower() not in INPUT_EXTENSIONS:
                    continue
                elif e.is_file():
                    files.append(e.path)
                elif e.is_symlink():
                    failures.append((e.path, _stat_failure(e.path)))
            except OSError:  # is_dir()/is_file() raise on a symlink loop
                failures.append((e.path, _stat_failure(e.path)))
        stack.extend(reversed(subfolders))


def expand_inputs(inputs) -> tuple[list[str], list[tuple[str, str]]]:
    """Files, folders (recursive; image extensions case-insensitive: {exts}) and glob patterns
    -> (files in a stable order, without duplicates; failures as (path, reason)). Missing paths,
    symlink loops, unreadable or image-less folders are reported, never raised. Files named
    explicitly are kept whatever their extension; inside folders, other files are skipped."""
    files: list[str] = []
    failures: list[tuple[str, str]] = []
    for raw in inputs:
        p = os.fspath(raw)
        if not os.path.lexists(p) and glob.has_magic(p):
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                failures.append((p, "the pattern matched no file"))
            for m in matches:
                (_walk(m, files, failures) if os.path.isdir(m) else files.append(m))
            continue
        if not os.path.exists(p):
            failures.append((p, _stat_failure(p)))
            continue
        if os.path.isdir(p):
            before, n_fail = len(files), len(failures)
            _walk(p, files, failures)
            if len(files) == before and len(failures) == n_fail:
                failures.append((p, f"folder holds no image files ({', '.join(INPUT_EXTENSIONS)})"))
        else:
            files.append(p)
    return _first(files, os.path.normpath), _first([(display_path(p), r) for p, r in failures], lambda f: f[0])


def _first(items: list, key) -> list:
    """``items`` without repeats of ``key``, first occurrences kept, in order."""
    seen: set = set()
    return [x for x in items if not (key(x) in seen or seen.add(key(x)))]


expand_inputs.__doc__ = expand_inputs.__doc__.format(exts=", ".join(INPUT_EXTENSIONS))
