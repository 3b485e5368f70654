"""Complete, safe, atomic checkpoints: ``model.safetensors`` + ``state.pt`` + ``meta.json``.

Layout of one checkpoint folder (``out_dir/last/`` and ``out_dir/best/``):

- ``model.safetensors``: the unwrapped module's state dict (contiguous tensors, shared storage
  de-duplicated by safetensors).
- ``state.pt``: optimiser, LR scheduler (the torch scheduler's ``state_dict``), Accelerate's
  GradScaler, EMA (diffusers ``EMAModel.state_dict()``: ``shadow_params`` in the order of
  ``model.parameters()``), step, epoch, best metric, Python/NumPy/torch RNG states and ``extra``;
  only tensors, numbers, strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``
  and nothing pickled executes.
- ``meta.json``: resolved config, hrr_core and torch versions, creation time and the sha256 and size
  of the two files above, checked before anything is deserialised.

Saving writes a hidden temp folder beside the target, fsyncs it, then swaps it in with two renames;
the previous checkpoint stays intact until the new one is complete (and is recovered on the next
save or load if a crash lands between the two renames).

Format 2 (this one) holds the EMA and schedule of diffusers' ``EMAModel`` and ``get_scheduler``.
Format 1 (hand-written EMA and schedule) still gives its trained weights to :func:`load_weights`,
but cannot be resumed from nor give EMA weights: that is refused with a :class:`CheckpointError`.
"""

from __future__ import annotations

import io
import json
import os
import platform
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

import hrr_core
from hrr_core.io import atomic_write_json, sha256_file, write_error

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the fix."""

    def __init__(self, path: str | os.PathLike, reason: str, fix: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}. Fix: {fix}")


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` read besides the tensors it loaded in place."""

    step: int
    epoch: int
    best_metric: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- RNG states as plain data


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as tensors, ints and lists."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- files


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _siblings(target: Path) -> tuple[Path, Path]:
    """(temp folder being written, previous checkpoint moved aside during the swap)."""
    return target.with_name(f".{target.name}.tmp"), target.with_name(f".{target.name}.old")


def _recover(target: Path) -> None:
    """Undo a swap interrupted between its two renames: the previous checkpoint comes back."""
    _, old = _siblings(target)
    if not target.exists() and (old / META_FILE).exists():
        try:
            os.replace(old, target)
        except OSError:  # another rank got there first
            pass


def _state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _write_files(tmp: Path, model: torch.nn.Module, state: dict[str, Any], meta: dict[str, Any]) -> None:
    save_model(model, str(tmp / MODEL_FILE), metadata={"format": "pt"})
    (tmp / STATE_FILE).write_bytes(_state_bytes(state))
    for name in (MODEL_FILE, STATE_FILE):
        _fsync_file(tmp / name)
    meta["files"] = {
        n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size} for n in (MODEL_FILE, STATE_FILE)
    }
    atomic_write_json(tmp / META_FILE, meta)  # written last: a folder with meta.json is complete
    for name in (MODEL_FILE, STATE_FILE, META_FILE):
        os.chmod(tmp / name, 0o644)  # temp files are created owner-only
    _fsync_dir(tmp)


def _swap_in(tmp: Path, target: Path) -> None:
    _, old = _siblings(target)
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- save


def save_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None,
    ema: Any | None,
    step: int,
    epoch: int,
    best_metric: float | None,
    config_dict: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    *,
    scheduler: Any | None = None,
) -> Path:
    """Write a complete checkpoint to ``directory`` atomically and return its path.

    ``model`` must be the unwrapped module (no DDP / compile wrapper). ``ema`` is any object with
    ``state_dict()``; ``extra`` holds plain data (numbers, strings, lists, dicts, tensors).
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp, _ = _siblings(target)
    if tmp.exists():
        shutil.rmtree(tmp)  # left over from an interrupted save
    tmp.mkdir()
    state = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "ema": None if ema is None else ema.state_dict(),
        "rng": capture_rng_state(),
        "extra": dict(extra or {}),
    }
    meta = {
        "format": FORMAT_VERSION,
        "config": config_dict or {},
        "step": int(step),
        "epoch": int(epoch),
        "best_metric": state["best_metric"],
        "hrr_core_version": hrr_core.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        _write_files(tmp, model, state, meta)
        _swap_in(tmp, target)
    except OSError as exc:
        written = sum(f.stat().st_size for f in tmp.glob("*") if f.is_file()) if tmp.exists() else 0
        shutil.rmtree(tmp, ignore_errors=True)
        error = write_error(exc, target, f"needs more than the {written} bytes written before it failed")
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ---------------------------------------------------------------- load


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """``meta.json`` of a checkpoint, after checking every file it lists (size and sha256)."""
    folder = Path(directory)
    _recover(folder)
    meta_path = folder / META_FILE
    fix = f"delete {folder} and resume from a sibling checkpoint (best/ or last/) or retrain"
    if not folder.is_dir():
        raise CheckpointError(folder, "no checkpoint folder here", "check the path, or train first")
    if not meta_path.is_file():
        raise CheckpointError(
            meta_path, "missing, so the checkpoint is incomplete (interrupted save or partial copy)", fix
        )
    try:
        meta = json.loads(meta_path.read_text())
        files = meta["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(meta_path, f"unreadable ({exc})", fix) from None
    for name in (MODEL_FILE, STATE_FILE):
        _verify_file(folder / name, files.get(name), fix)
    return meta


def _verify_file(path: Path, expected: dict[str, Any] | None, fix: str) -> None:
    if expected is None:
        raise CheckpointError(path, "not listed in meta.json", fix)
    if not path.is_file():
        raise CheckpointError(path, "missing", fix)
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise CheckpointError(path, f"truncated or altered: {size} bytes, expected {expected['bytes']}", fix)
    if sha256_file(path) != expected["sha256"]:
        raise CheckpointError(path, "corrupt: sha256 differs from meta.json", fix)


def _read_state(folder: Path, map_location: str | torch.device) -> dict[str, Any]:
    path = folder / STATE_FILE
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # verified bytes that still fail: a format/version problem
        raise CheckpointError(
            path,
            f"cannot be read with weights_only=True ({type(exc).__name__}: {exc})",
            "load it with the hrr_core/torch versions named in meta.json",
        ) from None


def _check_format(folder: Path, state: dict[str, Any], needed: str) -> None:
    """Refuse ``needed`` (resume state or EMA weights) from a checkpoint of another format."""
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            folder / STATE_FILE,
            f"is checkpoint format {state.get('format')}, which has no {needed} this hrr_core "
            f"(format {FORMAT_VERSION}: diffusers EMAModel and LR schedule) can use",
            f"retrain: run the train stage again from scratch, without resume (or delete {folder} first)",
        )


def _copy_ema_weights(folder: Path, ema_state: dict[str, Any], model: torch.nn.Module) -> None:
    """Put ``EMAModel.state_dict()['shadow_params']`` into ``model``'s parameters, in order."""
    shadow, params = ema_state["shadow_params"], list(model.parameters())
    if len(shadow) != len(params):
        raise CheckpointError(
            folder / STATE_FILE,
            f"holds {len(shadow)} EMA tensors for a model with {len(params)} parameters",
            "build the model with the config saved in meta.json",
        )
    with torch.no_grad():
        for param, average in zip(params, shadow):
            param.copy_(average)


def load_weights(
    directory: str | os.PathLike, model: torch.nn.Module, *, ema: bool = False, strict: bool = True
) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` (for evaluation); with ``ema=True`` the EMA
    weights replace the trained ones when the checkpoint has them. Returns ``meta.json``."""
    folder = Path(directory)
    meta = read_meta(folder)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        load_model(model, str(folder / MODEL_FILE), strict=strict, device=str(device))
    except RuntimeError as exc:
        raise CheckpointError(
            folder / MODEL_FILE,
            f"does not fit this model ({exc})",
            "build the model with the config saved in meta.json",
        ) from None
    if ema:
        state = _read_state(folder, device)
        if state.get("ema") is not None:
            _check_format(folder, state, "EMA weights")
            _copy_ema_weights(folder, state["ema"], model)
    return meta


def load_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: Any | None = None,
    *,
    scheduler: Any | None = None,
    restore_rng: bool = False,
    strict: bool = True,
) -> LoadedCheckpoint:
    """Verify and load a checkpoint into the given objects (those left None are skipped).

    Raises :class:`CheckpointError` naming the bad file for anything missing, truncated, corrupt
    or incompatible. ``restore_rng=True`` also restores Python/NumPy/torch RNG states (resume).
    """
    folder = Path(directory)
    meta = load_weights(folder, model, strict=strict)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    state = _read_state(folder, "cpu")
    if any(obj is not None for obj in (optimizer, scheduler, scaler, ema)):
        _check_format(folder, state, "training state (optimiser, schedule, EMA)")
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler), ("ema", ema)):
        if obj is None:
            continue
        if state.get(name) is None:
            raise CheckpointError(
                folder / STATE_FILE,
                f"has no {name} state",
                f"resume with the same config ({name} was off when it was saved) or start afresh",
            )
        obj.load_state_dict(state[name])
    if ema is not None and hasattr(ema, "to"):
        ema.to(device)
    if restore_rng:
        restore_rng_state(state["rng"])
    return LoadedCheckpoint(
        step=state["step"],
        epoch=state["epoch"],
        best_metric=state["best_metric"],
        extra=state.get("extra", {}),
        meta=meta,
    )
