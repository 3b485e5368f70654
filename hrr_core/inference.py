"""Scoring image files with a trained detector: what ``hrr-detect`` and the notebooks share.

:func:`load_detector` rebuilds the model from a folder's detector card (checked first by
:func:`hrr_core.card.check_card`) and ``best/``; :meth:`Detector.predict_paths` scores image files
of any size, one bad file never stopping the run.

Input policy (recorded in the card under ``preprocessing``, which inference follows):
- every file goes through :func:`hrr_core.io.load_image` (EXIF orientation, 16-bit, palette,
  CMYK, grey and alpha converted to 8-bit RGB, first frame of animations), then (3, H, W) floats
  in [0, 1] at the stored size: no resizing, no cropping beyond what the model itself does;
- images whose short side is below the card's ``min_side`` are reported as per-file failures,
  never padded or upscaled: resampling up to the minimum would erase the traces the detector
  looks for and still return a confident-looking number;
- a card with a ``retrospection`` section (HRR) re-renders each image alone, on the fly, with a
  generator seeded by :func:`hrr_core.io.image_seed` (its pixels and the card's ``noise_seed``):
  the rule the retrospect stage's cache follows, so a file scores exactly as it did in
  ``evaluate``, whatever batch it lands in and whatever the order of the inputs; DIRE's residual
  is also computed one image at a time (batched kernels may round differently); both are rounded
  through the cache's float16 before the model, as evaluate reads them.

Throughput: files are decoded (and hashed) in ``workers`` processes by a torch ``DataLoader``,
while the main process groups decoded images by size and runs one forward pass per full size
bucket (HRR: one bucket, its representations share a shape whatever the image size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from hrr_core import methods
from hrr_core.card import CheckedCard, DetectorLoadError, check_card
from hrr_core.data.cache import CACHE_DTYPE
from hrr_core.data.transforms import to_tensor, to_uint8
from hrr_core.data.walk import display_path
from hrr_core.io import ImageLoadError, image_seed, image_to_array, load_image
from hrr_core.runtime import resolve_device
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.training.checkpoint import CheckpointError, load_weights

MAX_BATCH_PIXELS = 1 << 25  # about 400 MB of float32 input per batch, whatever batch_size says
DEFAULT_NOISE_SEED = RetrospectionConfig().seed  # of cards written before the card recorded its noise seed
DECODE_CHUNK = 8  # files a decoding worker hands over at once (fewer, larger messages between processes)


@dataclass
class PredictionReport:
    """``results``: one row per predicted file (path, prob_generated, label, threshold, model);
    ``failures``: (path, reason) for every input that could not be predicted."""

    results: pd.DataFrame
    failures: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- decoding (in worker processes)


def _identity(item):
    return item


class _DecodedFiles(Dataset):
    """File ``i`` -> ``(i, pixels, seed, None)`` with (H, W, 3) uint8 pixels (a quarter of the
    bytes of floats to send from a worker) and their :func:`image_seed` under ``noise_seed``, or
    ``(i, None, 0, reason)`` when it cannot be scored; never raises, so one hostile file cannot
    end a worker."""

    def __init__(self, paths: list[str], min_side: int, method: str, noise_seed: int | None):
        self.paths, self.min_side, self.method, self.noise_seed = paths, min_side, method, noise_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, int, str | None]:
        path = self.paths[i]
        try:
            pixels = image_to_array(load_image(path))  # (H, W, 3)
            seed = image_seed(pixels, self.noise_seed) if self.noise_seed is not None else 0  # re-rendering only
        except ImageLoadError as exc:
            return i, None, 0, exc.reason + (f"; {exc.fix}" if exc.fix else "")
        except OSError as exc:  # the file changed between decoding and hashing
            return i, None, 0, f"unreadable ({exc.strerror or exc})"
        except Exception as exc:  # noqa: BLE001 - a decoder bug on one file is that file's failure
            return i, None, 0, f"could not decode ({type(exc).__name__}: {exc})"
        h, w = pixels.shape[:2]
        if min(h, w) < self.min_side:
            return (
                i,
                None,
                0,
                (
                    f"image is {w}x{h} pixels; this {self.method} detector needs a short side of at "
                    f"least {self.min_side} (small images are not upscaled: that would erase the traces "
                    "it looks for)"
                ),
            )
        return i, pixels, seed, None


# ---------------------------------------------------------------- the detector


class Detector:
    """A trained detector ready to score images; build it with :func:`load_detector`."""

    def __init__(
        self, card: dict, config: Any, model: Any, device: torch.device, ldm: Any = None, model_dir: Path | None = None
    ):
        self.card, self.config, self.model, self.device, self.ldm = card, config, model, device, ldm
        self.model_dir = model_dir
        self.kind, self.method, self.baseline = card["kind"], card["method"], card.get("baseline")
        self.spec = methods.get(self.baseline or self.kind)  # the registry entry: what this detector is
        self.model_id = card["model_id"]
        self.min_side = int(card["preprocessing"]["min_side"])
        self.retrospects = "retrospection" in card["preprocessing"]  # per-image re-rendering, one output shape
        # the seed of the one seeding rule (io.image_seed); cards written before it was recorded: the default seed
        self.noise_seed = int(card["preprocessing"].get("retrospection", {}).get("noise_seed", DEFAULT_NOISE_SEED))
        self.threshold = card["threshold"]["value"] if card["threshold"]["value"] is not None else 0.5
        self.is_scorer = not isinstance(model, torch.nn.Module)

    def __repr__(self) -> str:
        return f"Detector({self.model_id}, kind={self.kind}, threshold={self.threshold:.4f}, device={self.device})"

    @torch.no_grad()
    def predict_images(self, images: list[torch.Tensor], seeds: list[int] | None = None) -> np.ndarray:
        """(B,) probabilities of being generated for (3, H, W) images in [0, 1] of one size
        (retrospecting detectors: any sizes; ``seeds`` per image, default :func:`image_seed` of each
        image's uint8 pixels under the card's ``noise_seed``, the rule of the retrospect stage's cache)."""
        if self.retrospects:
            from hrr_core.models.msr import retrospect

            if seeds is None:
                seeds = [image_seed(to_uint8(x), self.noise_seed) for x in images]
            reps = [
                retrospect([x.to(self.device)], self.ldm, self.config.msr, torch.Generator().manual_seed(s))
                .to(CACHE_DTYPE)
                .float()
                for x, s in zip(images, seeds)
            ]  # each (1, K, C', S, S), or (1, T, K, C', S, S) with T tiles: one generator per image, rounded as cached
            if len({r.shape for r in reps}) > 1:  # msr.anchor: native, images with different tile counts
                return self._score_groups(reps)
            inputs = torch.cat(reps).to(self.device)  # (B, K, C', S, S) or (B, T, K, C', S, S)
        elif self.ldm is not None:  # DIRE: the residual through the carried diffusion model
            from hrr_core.models.baselines.dire import dire_from_config

            rep = self.config.representation  # one image at a time, as the cache computes it: the same floats
            inputs = torch.cat([dire_from_config(torch.stack([x]).to(self.device), self.ldm, rep) for x in images])
            inputs = inputs.to(CACHE_DTYPE).float()  # (B, 3, H, W), rounded as the cache stores it
        else:
            inputs = torch.stack(images).to(self.device)  # (B, 3, H, W)
        if self.is_scorer:
            return np.asarray(self.model.score(inputs), dtype=np.float64).reshape(-1)
        return self._probabilities(inputs)

    def _probabilities(self, inputs: torch.Tensor) -> np.ndarray:
        """(B,) float64 probabilities. A detector that reads a representation (HRR, DIRE) runs one
        image per forward pass and takes the sigmoid in float64 of the float32 logit, exactly as
        ``score_split`` scores the cache: evaluate, the study and hrr-detect give the same floats.
        Image-reading detectors run one forward per size bucket (throughput); CPU kernels may round
        a logit differently with the batch's size, so they agree with evaluate to float32 rounding
        (the sigmoid is taken in float32, which absorbs most of it)."""
        if self.spec.reads != "images":
            logits = torch.cat([self.model(inputs[i : i + 1]).logits.float() for i in range(len(inputs))])
            return torch.sigmoid(logits.double()).cpu().numpy()
        logits = self.model(inputs).logits.float()  # (B,)
        return torch.sigmoid(logits).cpu().double().numpy()

    def _score_groups(self, reps: list[torch.Tensor]) -> np.ndarray:
        """Probabilities of representations of different shapes (tiled HRR: T tiles per image,
        the model averages each image's tile scores): one forward pass per shape, input order kept."""
        out = np.zeros(len(reps))
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(reps):
            groups.setdefault(tuple(r.shape), []).append(i)
        for idx in groups.values():
            out[idx] = self._probabilities(torch.cat([reps[i] for i in idx]).to(self.device))
        return out

    def predict_paths(
        self, paths, batch_size: int = 16, threshold: float | None = None, progress: bool = False, workers: int = 0
    ) -> PredictionReport:
        """Score image files: ``workers`` processes decode them (0: this process), images of one
        size go through the model together, ``batch_size`` at a time. Unreadable, too small or
        failing files go to ``failures``, the rest to ``results`` in input order."""
        thr = self._threshold(threshold)
        paths = [str(p) for p in paths]
        probs, failures = self.score_paths(paths, batch_size=batch_size, progress=progress, workers=workers)
        return self.make_report(paths, probs, failures, thr)

    def _threshold(self, threshold: float | None) -> float:
        thr = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= thr <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {thr}")
        return thr

    def score_paths(
        self, paths: list[str], batch_size: int = 16, progress: bool = False, workers: int = 0
    ) -> tuple[dict[int, float], dict[int, str]]:
        """The scoring of :meth:`predict_paths` without the report: (probability by index into
        ``paths``, failure reason by index); a sharded run merges these from every rank."""
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        probs: dict[int, float] = {}
        failures: dict[int, str] = {}
        loader = DataLoader(
            _DecodedFiles(paths, self.min_side, self.method, self.noise_seed if self.retrospects else None),
            batch_size=DECODE_CHUNK,
            num_workers=workers,
            collate_fn=_identity,
        )  # a worker sends DECODE_CHUNK files at once
        window = max(4 * batch_size, 64)  # decoded images held at once, over all size buckets
        buckets: dict[Any, list] = {}
        with tqdm(total=len(paths), disable=not progress, unit="img", desc="hrr-detect") as bar:
            for chunk in loader:
                for i, pixels, seed, why in chunk:
                    if why is not None:
                        failures[i] = why
                        continue
                    img = to_tensor(pixels)  # (3, H, W)
                    key = None if self.retrospects else tuple(img.shape)
                    bucket = buckets.setdefault(key, [])
                    bucket.append((i, img, seed))
                    if len(bucket) >= self._batch_len(img, batch_size):
                        self._run_batch(buckets.pop(key), probs, failures)
                    elif sum(map(len, buckets.values())) >= window:
                        self._flush(buckets, probs, failures)
                bar.update(len(chunk))
            self._flush(buckets, probs, failures)
        return probs, failures

    def make_report(
        self, paths: list[str], probs: dict[int, float], failures: dict[int, str], threshold: float | None = None
    ) -> PredictionReport:
        """The :class:`PredictionReport` of scores by index into ``paths``, in input order."""
        thr = self._threshold(threshold)
        order = sorted(probs)
        results = pd.DataFrame(
            {"path": [display_path(paths[i]) for i in order], "prob_generated": [probs[i] for i in order]}
        )
        results["label"] = np.where(results["prob_generated"] >= thr, "generated", "real")
        results["threshold"], results["model"] = thr, self.model_id
        return PredictionReport(results, [(display_path(paths[i]), failures[i]) for i in sorted(failures)])

    def _batch_len(self, img: torch.Tensor, batch_size: int) -> int:
        """Images per forward pass: ``batch_size``, fewer for big images (MAX_BATCH_PIXELS)."""
        pixels = 1 if self.retrospects else img.shape[-1] * img.shape[-2]
        return max(1, min(batch_size, MAX_BATCH_PIXELS // pixels))

    def _flush(self, buckets: dict[Any, list], probs: dict[int, float], failures: dict[int, str]) -> None:
        for batch in buckets.values():
            self._run_batch(batch, probs, failures)
        buckets.clear()

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


# ---------------------------------------------------------------- loading


def _load_model(checked: CheckedCard, device: torch.device):
    spec = methods.get(checked.card.get("baseline") or checked.card["kind"])
    try:
        if spec.is_scorer:
            return spec.load(checked.best)
        model = spec.build(checked.config)
        load_weights(checked.best, model, ema=bool(checked.card.get("ema_weights", False)))  # what best/ was chosen on
        return model.to(device).eval()
    except (CheckpointError, ValueError, OSError, RuntimeError) as exc:
        raise DetectorLoadError(
            checked.best, f"cannot be loaded ({exc})", "re-run the train stage for this method"
        ) from None


def load_detector(model_dir, device: str = "auto") -> Detector:
    """Rebuild the detector described by ``model_dir/detector.json`` with the weights of
    ``model_dir/best/``; raises :class:`DetectorLoadError` naming the file and the fix."""
    checked = check_card(model_dir)
    dev = resolve_device(device)
    model = _load_model(checked, dev)
    ldm = None
    if checked.ldm_dir is not None:
        from hrr_core.models.ldm import load_ldm

        try:
            ldm = load_ldm(checked.ldm_dir, dev)
        except (ValueError, OSError, RuntimeError) as exc:
            raise DetectorLoadError(
                checked.ldm_dir,
                f"retrospection LDM cannot be loaded ({exc})",
                "copy the whole model folder, including retrospection_ldm/",
            ) from None
    return Detector(checked.card, checked.config, model, dev, ldm, Path(model_dir))
