"""``train:`` (and ``methods.<m>.train_overrides``): how the one training loop trains a detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hrr_core.confutil import check


@dataclass(frozen=True)
class TrainConfig:
    """How to train (params.yaml ``train:``); the defaults are its ``default`` profile."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9  # SGD only
    scheduler: Literal["none", "cosine"] = "cosine"
    warmup_steps: int = 20
    grad_accum: int = 1
    grad_clip: float | None = 5.0
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = False
    compile: bool = False
    ema_decay: float | None = None
    early_stop_patience: int | None = None
    deterministic: bool = False
    num_workers: int = 0
    seed: int = 0
    log_every_steps: int = 20
    max_steps: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    find_unused_parameters: bool = False  # multi-process only: DDP option for parameters without gradients
    require_above_chance: bool = True  # stop with an error, writing no detector, when val AP ends at or below chance

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "grad_accum", "log_every_steps"):
            check(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        check(self.lr > 0, "lr", "a number > 0", self.lr)
        for key in ("weight_decay", "warmup_steps", "num_workers"):
            check(getattr(self, key) >= 0, key, "a number >= 0", getattr(self, key))
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "null or a number > 0", self.grad_clip)
        check(
            self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", "null or a number in (0, 1)", self.ema_decay
        )
        check(
            self.early_stop_patience is None or self.early_stop_patience >= 1,
            "early_stop_patience",
            "null or an integer >= 1",
            self.early_stop_patience,
        )
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", "null or an integer >= 1", self.max_steps)
