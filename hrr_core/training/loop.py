"""The one training loop every detector uses: CPU, one GPU, or many under ``accelerate launch``.

It knows models only through the contract ``forward(inputs) -> DetectorOutput`` (plus the optional
hooks ``post_optimizer_step(lr)`` and ``train_metrics()``), objectives only as
``(output, labels) -> {"loss": ..., other named terms}`` and loaders only as dict batches
``{"inputs", "labels", "ids"}``. Device and AMP are resolved once; autocast and GradScaler apply
only where they make sense; accumulation, clipping, EMA, compile, channels-last, early stopping
and multi-process are options. Checkpoints land in ``out_dir/last/`` every epoch and
``out_dir/best/`` when validation AP improves; ``resume=True`` continues from ``last/`` exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import nn

from hrr_core.confutil import check, to_dict
from hrr_core.io import atomic_write_json
from hrr_core.runtime import seed_everything
from hrr_core.training.checkpoint import load_checkpoint, read_meta, save_checkpoint
from hrr_core.training.distributed import AmpSetup, make_accelerator, reduce_mean_terms, resolve_amp
from hrr_core.training.logging import RunLogger, get_logger

Objective = Callable[[Any, torch.Tensor], dict[str, torch.Tensor]]


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

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "grad_accum", "log_every_steps"):
            check(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        check(self.lr > 0, "lr", "a number > 0", self.lr)
        for key in ("weight_decay", "warmup_steps", "num_workers"):
            check(getattr(self, key) >= 0, key, "a number >= 0", getattr(self, key))
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "null or a number > 0", self.grad_clip)
        check(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", "null or a number in (0, 1)", self.ema_decay)
        check(self.early_stop_patience is None or self.early_stop_patience >= 1, "early_stop_patience", "null or an integer >= 1", self.early_stop_patience)
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", "null or an integer >= 1", self.max_steps)


@dataclass
class FitResult:
    best_val_ap: float | None
    best_epoch: int | None
    steps: int
    history: list[dict[str, Any]]
    paths: dict[str, Path]
    stopped_early: bool = False


# ---------------------------------------------------------------- small pieces


class EMA:
    """Exponential moving average of a module's floating-point parameters, with the usual warmup
    ``decay_t = min(decay, (1 + t) / (10 + t))``; ``state_dict`` is plain tensors and numbers."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {n: p.detach().clone() for n, p in module.named_parameters() if p.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, param in module.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(param.detach(), 1.0 - d)

    @torch.no_grad()
    def swap(self, module: nn.Module) -> None:
        """Exchange the module's weights with the averaged ones (call twice to undo)."""
        for name, param in module.named_parameters():
            if name in self.shadow:
                tmp = param.detach().clone()
                param.copy_(self.shadow[name])
                self.shadow[name].copy_(tmp)

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {n: t.to(device) for n, t in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        self.shadow = {n: t.clone() for n, t in state["shadow"].items()}


def build_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters; nothing for the loop to train")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup_steps``, then constant ('none') or cosine decay to 0."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.scheduler == "none":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_loader(dataset: torch.utils.data.Dataset, cfg: TrainConfig, *, train: bool, **kwargs: Any) -> torch.utils.data.DataLoader:
    """A DataLoader built from the config (shuffle for training; the loop reseeds the order each
    epoch from ``seed + epoch``); extra keyword arguments (e.g. ``collate_fn``) pass through."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=train, drop_last=False, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0, pin_memory=torch.cuda.is_available(), **kwargs)


def _to_device(batch: Mapping[str, Any], device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = batch["inputs"].to(device, non_blocking=True)
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, batch["labels"].to(device, non_blocking=True).float()


def ap_acc(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AP (generated = positive) and accuracy at logit 0; AP is NaN when one class is absent."""
    acc = float(np.mean((scores > 0) == (labels > 0.5))) if len(labels) else float("nan")
    ap = float(average_precision_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")
    return {"ap": ap, "acc": acc}


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def _evaluate(model: nn.Module, loader, device: torch.device, objective: Objective | None = None,
              amp: AmpSetup = AmpSetup(None, False), accelerator=None, channels_last: bool = False):
    """(ids, scores, labels, mean objective terms) over ``loader``, gathered across ranks."""
    was_training = model.training
    model.eval()
    ids, scores, labels = [], [], []
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=device)
    for batch in loader:
        inputs, y = _to_device(batch, device, channels_last)
        with amp.autocast(device):
            out = model(inputs)
            terms = objective(out, y) if objective is not None else {}
        for k, v in terms.items():
            sums[k] = sums.get(k, torch.zeros((), device=device)) + v.detach().float() * len(y)
        count += len(y)
        logits, batch_ids = out.logits.detach().float(), list(batch["ids"])
        if accelerator is not None and accelerator.num_processes > 1:
            logits, y = accelerator.gather_for_metrics((logits, y))
            batch_ids = accelerator.gather_for_metrics(batch_ids, use_gather_object=True)
        ids.extend(batch_ids)
        scores.append(logits.cpu())
        labels.append(y.float().cpu())
    model.train(was_training)
    terms = reduce_mean_terms(accelerator, sums, count) if accelerator is not None else {k: float(v / count) for k, v in sums.items()}
    cat = (lambda xs: torch.cat(xs).numpy()) if scores else (lambda xs: np.zeros(0, np.float32))
    return ids, cat(scores), cat(labels), terms


def predict_loader(model: nn.Module, loader, device: torch.device | str, *, amp: str = "off") -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, scores = logits (larger = generated), labels) over ``loader``, in its order, in one
    process; ``model`` is moved to ``device`` and run in eval mode (``amp`` as in TrainConfig)."""
    device = torch.device(device)
    ids, scores, labels, _ = _evaluate(model.to(device), loader, device, amp=resolve_amp(amp, device))
    return ids, scores, labels


# ---------------------------------------------------------------- one epoch


@dataclass
class _Run:
    """Everything one fit call carries between epochs."""

    cfg: TrainConfig
    accelerator: Any
    module: nn.Module  # the unwrapped model: hooks, checkpoints, EMA
    model: nn.Module  # what runs forward: DDP and/or compiled wrapper around ``module``
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    ema: EMA | None
    amp: AmpSetup
    reporter: RunLogger
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_ap: float | None = None
    best_epoch: int | None = None

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def done(self) -> bool:
        return self.cfg.max_steps is not None and self.step >= self.cfg.max_steps


def _optimizer_step(run: _Run) -> float:
    """Clip, step, schedule, zero; then the model's proximal hook and the EMA. Returns the lr used."""
    lr = run.optimizer.param_groups[0]["lr"]
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if run.cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.module.parameters(), run.cfg.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    if hasattr(run.module, "post_optimizer_step"):
        run.module.post_optimizer_step(lr)
    if run.ema is not None:
        run.ema.update(run.module)
    run.step += 1
    return lr


def _train_epoch(run: _Run, loader, epoch: int) -> dict[str, float]:
    """One pass over ``loader`` (or until ``max_steps``); returns per-sample mean loss terms."""
    run.model.train()
    accum, n_batches = run.cfg.grad_accum, len(loader)
    full_groups = n_batches // accum
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=run.device)
    for i, batch in enumerate(run.reporter.progress(loader, n_batches, f"epoch {epoch + 1}/{run.cfg.epochs}")):
        boundary = (i + 1) % accum == 0 or i + 1 == n_batches
        group = accum if i // accum < full_groups else n_batches - full_groups * accum  # micro-batches in this step
        inputs, labels = _to_device(batch, run.device, run.cfg.channels_last and run.device.type == "cuda")
        with nullcontext() if boundary else run.accelerator.no_sync(run.model):
            with run.amp.autocast(run.device):
                terms = run.objective(run.model(inputs), labels)
            if "loss" not in terms:
                raise KeyError(f"the objective returned {sorted(terms)}; it must return a 'loss' key")
            loss = terms["loss"] / group
            (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, torch.zeros((), device=run.device)) + v.detach().float() * len(labels)
        count += len(labels)
        if boundary:
            lr = _optimizer_step(run)
            if run.step % run.cfg.log_every_steps == 0:
                run.reporter.step(run.step, {k: float(v / count) for k, v in sums.items()}, lr)
            if run.done:
                break
    return reduce_mean_terms(run.accelerator, sums, count)


# ---------------------------------------------------------------- fit

# Keys that may change between a run and its resumption without changing what is computed.
_RESUMABLE_CHANGES = {"epochs", "max_steps", "log_every_steps", "early_stop_patience", "num_workers"}


def _validate(run: _Run, loader) -> dict[str, float]:
    """Objective terms and AP/ACC on ``loader`` (with the EMA weights when EMA is on)."""
    if run.ema is not None:
        run.ema.swap(run.module)
    try:
        channels_last = run.cfg.channels_last and run.device.type == "cuda"
        _, scores, labels, terms = _evaluate(run.model, loader, run.device, run.objective, run.amp, run.accelerator, channels_last)
    finally:
        if run.ema is not None:
            run.ema.swap(run.module)
    return {f"val/{k}": v for k, v in {**terms, **ap_acc(scores, labels)}.items()}


def _save(run: _Run, out_dir: Path, epoch: int, improved: bool, config: dict[str, Any]) -> None:
    """Rank 0 writes ``last/`` (and ``best/`` when improved) plus ``history.json``."""
    if run.accelerator.is_main_process:
        extra = {"history": run.history, "best_epoch": run.best_epoch}
        for name in ("last", "best") if improved else ("last",):
            save_checkpoint(out_dir / name, run.module, run.optimizer, run.scaler, run.ema, run.step, epoch,
                            run.best_ap, config, extra, scheduler=run.scheduler)
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in run.history]
        atomic_write_json(out_dir / "history.json", clean)
    run.accelerator.wait_for_everyone()


def _resume(run: _Run, out_dir: Path, config: dict[str, Any]) -> int:
    """Load ``out_dir/last`` if there is one; return the number of epochs already done."""
    last = out_dir / "last"
    if not (last.exists() or (out_dir / ".last.old").exists()):
        return 0
    saved = read_meta(last).get("config", {}).get("train", {})
    changed = sorted(k for k, v in config["train"].items() if k not in _RESUMABLE_CHANGES and saved.get(k, v) != v)
    if changed:
        get_logger().warning("resuming %s with changed train settings %s; the result will differ from an uninterrupted run", last, changed)
    ck = load_checkpoint(last, run.module, run.optimizer, run.scaler, run.ema, scheduler=run.scheduler, restore_rng=True)
    run.step, run.best_ap = ck.step, ck.best_metric
    run.best_epoch, run.history = ck.extra.get("best_epoch"), list(ck.extra.get("history", []))
    run.reporter.info(f"resumed from {last}: epoch {ck.epoch}, step {ck.step}")
    return ck.epoch


def _setup(model: nn.Module, objective: Objective, train_loader, val_loader, cfg: TrainConfig, reporter_args: dict[str, Any]):
    accelerator = make_accelerator(cfg.device, cfg.seed, cfg.find_unused_parameters)
    seed_everything(cfg.seed, cfg.deterministic)
    if not cfg.deterministic:
        torch.use_deterministic_algorithms(False)  # a previous deterministic run in this process set it
    device = accelerator.device
    module = model.to(device)
    if cfg.channels_last and device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    train_loader = accelerator.prepare_data_loader(train_loader)
    val_loader = accelerator.prepare_data_loader(val_loader) if val_loader is not None else None
    wrapped = accelerator.prepare_model(module)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    optimizer = build_optimizer(module, cfg)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum)
    total = min(cfg.epochs * steps_per_epoch, cfg.max_steps or math.inf)
    amp = resolve_amp(cfg.amp, device)
    run = _Run(cfg=cfg, accelerator=accelerator, module=module, model=wrapped, objective=objective, optimizer=optimizer,
               scheduler=build_scheduler(optimizer, cfg, int(total)), amp=amp,
               scaler=torch.amp.GradScaler(device.type) if amp.use_scaler else None,
               ema=EMA(module, cfg.ema_decay) if cfg.ema_decay is not None else None,
               reporter=RunLogger(accelerator.is_main_process, **reporter_args))
    return run, train_loader, val_loader


def _epoch(run: _Run, epoch: int, train_loader, val_loader) -> dict[str, Any]:
    """Train one epoch, read the model's metrics, validate; update the best AP; return the row."""
    t0 = time.perf_counter()
    train_loader.set_epoch(epoch)  # shuffle order = f(seed + epoch): resumable
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"]}
    row.update({f"train/{k}": v for k, v in _train_epoch(run, train_loader, epoch).items()})
    if hasattr(run.module, "train_metrics"):
        row.update({f"model/{k}": float(v) for k, v in run.module.train_metrics().items()})
    if val_loader is not None:
        row.update(_validate(run, val_loader))
    ap = row.get("val/ap", float("nan"))
    if val_loader is None or (math.isfinite(ap) and (run.best_ap is None or ap > run.best_ap)):
        run.best_ap, run.best_epoch = (ap if math.isfinite(ap) else None), epoch + 1
    row.update({"step": run.step, "best_epoch": run.best_epoch, "seconds": time.perf_counter() - t0})
    run.history.append(row)
    return row


def fit(
    model: nn.Module,
    objective: Objective,
    train_loader,
    val_loader,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    live: Any = None,
    run_config: Mapping[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``objective``; validate, log and checkpoint every epoch.

    ``live``: None, a DVCLive folder, or a ``Live``. ``run_config``: the full resolved config of
    the run (saved in every checkpoint's meta.json and logged as DVCLive params).
    ``on_epoch_end(row)`` runs on every rank after the epoch's checkpoint is written.
    """
    out_dir = Path(out_dir)
    config = {"train": to_dict(cfg), **({"run": dict(run_config)} if run_config else {})}
    run, train_loader, val_loader = _setup(model, objective, train_loader, val_loader, cfg,
                                           {"live": live, "resume": resume, "params": run_config})
    stopped_early = False
    try:
        start = _resume(run, out_dir, config) if resume else 0
        for epoch in range(start, cfg.epochs):
            if run.done:
                break
            row = _epoch(run, epoch, train_loader, val_loader)
            _save(run, out_dir, epoch + 1, row["best_epoch"] == epoch + 1, config)
            run.reporter.epoch(row)
            if on_epoch_end is not None:
                on_epoch_end(row)
            patience = cfg.early_stop_patience
            if patience is not None and run.best_epoch is not None and epoch + 1 - run.best_epoch >= patience:
                run.reporter.info(f"early stop: val/ap has not improved for {patience} epochs (best at epoch {run.best_epoch})")
                stopped_early = True
                break
    finally:
        run.reporter.close()
    paths = {"last": out_dir / "last", "best": out_dir / "best", "history": out_dir / "history.json"}
    return FitResult(run.best_ap, run.best_epoch, run.step, run.history, paths, stopped_early)
