"""What a training run reports: a logger that speaks on rank 0 only, a tqdm bar and DVCLive metrics per epoch.

In a terminal the bar updates in place; under papermill (stderr is not a TTY) there is no bar
and one log line per epoch (plus one every ``log_every_steps`` optimiser steps), so executed
notebooks stay readable. DVCLive always runs with ``dvcyaml=False``: the pipeline's hand-written
``dvc.yaml`` is never rewritten.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

LOGGER_NAME = "hrr_core.training"


def get_logger() -> logging.Logger:
    """The training logger. Unless the application configured logging (a root handler, or a
    level set on this logger), it prints INFO and above to stderr."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """``key=value`` pairs, floats to 4 significant digits."""
    parts = []
    for key, value in metrics.items():
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def _open_live(live: Any, resume: bool) -> tuple[Any, bool]:
    """(Live object or None, whether this module owns it and must end it)."""
    if live is None:
        return None, False
    if isinstance(live, (str, os.PathLike)):
        from dvclive import Live  # imported only when asked for

        return Live(str(Path(live)), dvcyaml=False, save_dvc_exp=False, resume=resume, report=None), True
    return live, False


class RunLogger:
    """Rank-aware reporting for one :func:`hrr_core.training.loop.fit` call.

    ``live``: None, a folder for a new DVCLive ``Live`` (owned and ended here), or an existing
    ``Live`` (the caller ends it). On ranks other than 0 every method is a no-op.
    """

    def __init__(
        self, is_main: bool, live: Any = None, *, resume: bool = False, params: Mapping[str, Any] | None = None
    ):
        self.is_main = is_main
        self.logger = get_logger()
        self.tty = is_main and sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE")
        self.live, self._owns_live = _open_live(live, resume) if is_main else (None, False)
        self._bar: Any = None
        if self.live is not None and params:
            self.live.log_params(dict(params))

    def info(self, message: str) -> None:
        if self.is_main:
            self.logger.info(message)

    def progress(self, iterable: Iterable, total: int, desc: str) -> Iterator:
        """Iterate with a bar in a terminal, plainly otherwise."""
        if not self.tty:
            yield from iterable
            return
        self._bar = tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5)
        try:
            yield from self._bar
        finally:
            self._bar.close()
            self._bar = None

    def step(self, step: int, terms: Mapping[str, float], lr: float) -> None:
        """Every ``log_every_steps`` optimiser steps: bar postfix in a terminal, else a log line."""
        if not self.is_main:
            return
        shown = {**terms, "lr": lr}
        if self._bar is not None:
            self._bar.set_postfix_str(format_metrics(shown), refresh=False)
        else:
            self.logger.info("step %d %s", step, format_metrics(shown))

    def epoch(self, row: Mapping[str, Any]) -> None:
        """One line per epoch, and the epoch's numbers to DVCLive (step = epoch)."""
        if not self.is_main:
            return
        self.logger.info(format_metrics(row))
        if self.live is None:
            return
        self.live.step = int(row["epoch"])
        for key, value in row.items():
            if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(float(value)):
                continue
            self.live.log_metric(key, float(value))
        self.live.log_metric("step", int(row.get("step", 0)), plot=False)
        self.live.next_step()

    def close(self) -> None:
        if self._owns_live and self.live is not None:
            self.live.end()
        self.live = None
