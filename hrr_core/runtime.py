"""Device, seeding and determinism, resolved once and passed around."""

from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time


def show_training_progress(stream=None) -> None:
    """Print the ``hrr_core.train`` progress lines (step, loss, time left of every generator and LDM
    training) on ``stream`` (stdout: a notebook cell's output under papermill). Idempotent: a second call
    re-targets the one handler."""
    log = logging.getLogger("hrr_core.train")
    mine = [h for h in log.handlers if getattr(h, "_hrr_progress", False)]
    if mine:  # one handler, pointed at the latest stream (a later notebook cell, a new sys.stdout under capture)
        mine[0].setStream(stream or sys.stdout)
    else:
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._hrr_progress = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` gives CUDA when present, else CPU; ``cpu``/``cuda``/``cuda:N`` are taken as is,
    and asking for CUDA where there is none is an error, never a silent fallback."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but this machine has no CUDA; use 'auto' or 'cpu'")
    if spec != "cpu" and not spec.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    return torch.device(spec)


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def is_main_process() -> bool:
    """Rank 0 (or a plain single process): the one that writes outputs under torchrun/Accelerate."""
    return int(os.environ.get("RANK", "0")) == 0


def environment() -> dict:
    """What a rerun elsewhere would need to match for identical numbers: library versions,
    the CPU thread count torch uses and the cores it sees (a different reduction order moves
    floating-point results, so a difference between machines can be explained)."""
    import platform

    import numpy
    import PIL

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }
