"""The one training loop every detector uses: CPU, one GPU, or many under ``accelerate launch``.

It knows models only through the contract ``forward(inputs) -> DetectorOutput`` (plus the optional
hooks ``post_optimizer_step(lr)`` and ``train_metrics()``), objectives only as
``(output, labels) -> {"loss": ..., other named terms}`` and loaders only as dict batches
``{"inputs", "labels", "ids"}``. The generic plumbing is the libraries': HF Accelerate resolves
device and mixed precision once and does autocast, the fp16 GradScaler, gradient accumulation,
clipping and multi-process; diffusers gives the EMA (``EMAModel``) and the warm-up + cosine
schedule (``get_scheduler``). Accumulation, clipping, EMA, compile, channels-last, early stopping
and multi-process are options. Checkpoints land in ``out_dir/last/`` every epoch and
``out_dir/best/`` when validation AP improves; ``resume=True`` continues from ``last/`` exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from sklearn.metrics import average_precision_score
from torch import nn

from hrr_core.confutil import to_dict
from hrr_core.io import atomic_write_json
from hrr_core.runtime import seed_everything
from hrr_core.schema.training import TrainConfig  # noqa: F401 (config lives in the schema)
from hrr_core.training.checkpoint import load_checkpoint, read_meta, save_checkpoint
from hrr_core.training.distributed import autocast, make_accelerator, reduce_mean_terms, resolve_mixed_precision
from hrr_core.training.logging import RunLogger, get_logger

Objective = Callable[[Any, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class FitResult:
    best_val_ap: float | None
    best_epoch: int | None
    steps: int
    history: list[dict[str, Any]]
    paths: dict[str, Path]
    stopped_early: bool = False


# ---------------------------------------------------------------- small pieces


def build_ema(module: nn.Module, decay: float) -> EMAModel:
    """diffusers' :class:`EMAModel` over all of ``module``'s parameters (frozen ones are copied).

    With ``use_ema_warmup=False`` and ``update_after_step=0`` its decay at optimiser step ``t``
    (1-based) is 0 at ``t = 1`` (the average starts as the weights after the first step) and
    ``min(decay, t / (9 + t))`` afterwards: the warm-up ``min(decay, (1 + u) / (10 + u))`` of
    the usual EMA, with ``u = t - 1`` counting the updates after the first.
    """
    return EMAModel(module.parameters(), decay=decay, use_ema_warmup=False, update_after_step=0)


def _param_groups(module: nn.Module, cfg: TrainConfig) -> list | list[dict]:
    """The trainable parameters, as one list, or as parameter groups when the model's optional
    ``optimizer_groups()`` hook returns some: dicts with ``params``, an optional ``lr_scale``
    (lr = cfg.lr * lr_scale) and other keys kept on the group (e.g. ``proximal``)."""
    hook = getattr(module, "optimizer_groups", None)
    groups = hook() if callable(hook) else None
    if groups is None:
        return [p for p in module.parameters() if p.requires_grad]
    out = []
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        if params:
            extra = {k: v for k, v in group.items() if k not in ("params", "lr_scale")}
            out.append({**extra, "params": params, "lr": cfg.lr * group.get("lr_scale", 1.0)})
    return out


def build_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = _param_groups(module, cfg)
    if not params:
        raise ValueError("the model has no trainable parameters; nothing for the loop to train")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def proximal_lr(optimizer: torch.optim.Optimizer) -> float:
    """The lr the model's ``post_optimizer_step`` gets: that of the group marked ``proximal``
    (e.g. HRR's AFR head with its own lr), else that of the first group."""
    return next((g["lr"] for g in optimizer.param_groups if g.get("proximal")), optimizer.param_groups[0]["lr"])


# train.scheduler -> diffusers schedule name; both warm up linearly from 0 over warmup_steps.
_SCHEDULES = {"none": "constant_with_warmup", "cosine": "cosine"}


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """diffusers' ``get_scheduler``: the lr of optimiser step ``s`` (0-based) is ``lr * s / W``
    for ``s < W = warmup_steps``, then ``lr`` ('none') or ``lr * (1 + cos(pi (s - W) / (T - W))) / 2``
    ('cosine', ``T = total_steps``)."""
    return get_scheduler(
        _SCHEDULES[cfg.scheduler], optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps
    )


def make_loader(
    dataset: torch.utils.data.Dataset, cfg: TrainConfig, *, train: bool, **kwargs: Any
) -> torch.utils.data.DataLoader:
    """A DataLoader built from the config (shuffle for training; the loop reseeds the order each
    epoch from ``seed + epoch``); extra keyword arguments (e.g. ``collate_fn``) pass through."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=train,
        drop_last=False,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        **kwargs,
    )


def _to_device(
    batch: Mapping[str, Any], device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
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
def _evaluate(
    model: nn.Module,
    loader,
    device: torch.device,
    objective: Objective | None = None,
    autocast_ctx: Callable[[], AbstractContextManager] = nullcontext,
    accelerator=None,
    channels_last: bool = False,
):
    """(ids, scores, labels, mean objective terms) over ``loader``, gathered across ranks;
    ``autocast_ctx()`` wraps every forward (``accelerator.autocast`` inside ``fit``)."""
    was_training = model.training
    model.eval()
    ids, scores, labels = [], [], []
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=device)
    for batch in loader:
        inputs, y = _to_device(batch, device, channels_last)
        with autocast_ctx():
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
    if accelerator is not None:
        terms = reduce_mean_terms(accelerator, sums, count)
    else:
        terms = {k: float(v / count) for k, v in sums.items()}
    cat = (lambda xs: torch.cat(xs).numpy()) if scores else (lambda xs: np.zeros(0, np.float32))
    return ids, cat(scores), cat(labels), terms


def predict_loader(
    model: nn.Module, loader, device: torch.device | str, *, amp: str = "off"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, scores = logits (larger = generated), labels) over ``loader``, in its order, in one
    process; ``model`` is moved to ``device`` and run in eval mode (``amp`` as in TrainConfig)."""
    device = torch.device(device)
    mixed_precision = resolve_mixed_precision(amp, device)
    ids, scores, labels, _ = _evaluate(
        model.to(device), loader, device, autocast_ctx=lambda: autocast(mixed_precision, device)
    )
    return ids, scores, labels


# ---------------------------------------------------------------- one epoch


@dataclass
class _Run:
    """Everything one fit call carries between epochs."""

    cfg: TrainConfig
    accelerator: Any  # owns autocast, the fp16 GradScaler (``accelerator.scaler``), accumulation and clipping
    module: nn.Module  # the unwrapped model: hooks, checkpoints, EMA
    model: nn.Module  # what runs forward: DDP and/or compiled wrapper around ``module``
    objective: Objective
    optimizer: torch.optim.Optimizer  # Accelerate's wrapper: steps through the GradScaler under fp16
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: EMAModel | None
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
    prox_lr = proximal_lr(run.optimizer)  # lr, unless a group is marked proximal
    if run.cfg.grad_clip is not None:
        run.accelerator.clip_grad_norm_(run.module.parameters(), run.cfg.grad_clip)  # unscales fp16 gradients first
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    if hasattr(run.module, "post_optimizer_step"):
        run.module.post_optimizer_step(prox_lr)
    if run.ema is not None:
        run.ema.step(run.module.parameters())
    run.step += 1
    return lr


def _train_epoch(run: _Run, loader, epoch: int) -> dict[str, float]:
    """One pass over ``loader`` (or until ``max_steps``); returns per-sample mean loss terms.

    ``accelerator.accumulate`` decides when an optimiser step happens: after every ``grad_accum``
    micro-batches and after the epoch's last one (its gradients sync across ranks only then).
    """
    accum, n_batches = run.cfg.grad_accum, len(loader)
    full_groups = n_batches // accum
    channels_last = run.cfg.channels_last and run.device.type == "cuda"
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=run.device)
    run.model.train()
    for i, batch in enumerate(run.reporter.progress(loader, n_batches, f"epoch {epoch + 1}/{run.cfg.epochs}")):
        group = accum if i // accum < full_groups else n_batches - full_groups * accum  # micro-batches in this step
        inputs, labels = _to_device(batch, run.device, channels_last)
        with run.accelerator.accumulate(run.model):
            with run.accelerator.autocast():
                terms = run.objective(run.model(inputs), labels)
            if "loss" not in terms:
                raise KeyError(f"the objective returned {sorted(terms)}; it must return a 'loss' key")
            # backward() divides by grad_accum; an epoch's shorter last group averages its own micro-batches
            run.accelerator.backward(terms["loss"] * (accum / group))
            stepped = run.accelerator.sync_gradients
            if stepped:
                lr = _optimizer_step(run)
        for k, v in terms.items():
            sums[k] = sums.get(k, torch.zeros((), device=run.device)) + v.detach().float() * len(labels)
        count += len(labels)
        if stepped:
            if run.step % run.cfg.log_every_steps == 0:
                run.reporter.step(run.step, {k: float(v / count) for k, v in sums.items()}, lr)
            if run.done:
                break
    return reduce_mean_terms(run.accelerator, sums, count)


# ---------------------------------------------------------------- fit

# Keys that may change between a run and its resumption without changing what is computed.
_RESUMABLE_CHANGES = {"epochs", "max_steps", "log_every_steps", "early_stop_patience", "num_workers"}


def _data_pass(run: _Run, loader) -> None:
    """The model's optional hook ``prepare_from_data(batches)`` on a fresh run, when its
    ``needs_data_pass`` says so (HRR's data-dependent AFR anchors): (inputs, labels) batches of
    the training loader, in epoch 0's order; the model decides how many it reads."""
    if not getattr(run.module, "needs_data_pass", False):
        return
    channels_last = run.cfg.channels_last and run.device.type == "cuda"
    loader.set_epoch(0)
    batches = (_to_device(batch, run.device, channels_last) for batch in loader)
    with run.accelerator.autocast():
        summary = run.module.prepare_from_data(batches)
    run.reporter.info(f"data pass before training: {summary}")


def _validate(run: _Run, loader) -> dict[str, float]:
    """Objective terms and AP/ACC on ``loader`` (with the EMA weights when EMA is on)."""
    if run.ema is not None:
        run.ema.store(run.module.parameters())
        run.ema.copy_to(run.module.parameters())
    try:
        channels_last = run.cfg.channels_last and run.device.type == "cuda"
        _, scores, labels, terms = _evaluate(
            run.model, loader, run.device, run.objective, run.accelerator.autocast, run.accelerator, channels_last
        )
    finally:
        if run.ema is not None:
            run.ema.restore(run.module.parameters())
    return {f"val/{k}": v for k, v in {**terms, **ap_acc(scores, labels)}.items()}


def _save(run: _Run, out_dir: Path, epoch: int, improved: bool, config: dict[str, Any]) -> None:
    """Rank 0 writes ``last/`` (and ``best/`` when improved) plus ``history.json``."""
    if run.accelerator.is_main_process:
        extra = {"history": run.history, "best_epoch": run.best_epoch}
        for name in ("last", "best") if improved else ("last",):
            save_checkpoint(
                out_dir / name,
                run.module,
                run.optimizer,
                run.accelerator.scaler,
                run.ema,
                run.step,
                epoch,
                run.best_ap,
                config,
                extra,
                scheduler=run.scheduler,
            )
        clean = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in run.history
        ]
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
        get_logger().warning(
            "resuming %s with changed train settings %s; the result will differ from an uninterrupted run",
            last,
            changed,
        )
    ck = load_checkpoint(
        last, run.module, run.optimizer, run.accelerator.scaler, run.ema, scheduler=run.scheduler, restore_rng=True
    )
    run.step, run.best_ap = ck.step, ck.best_metric
    run.best_epoch, run.history = ck.extra.get("best_epoch"), list(ck.extra.get("history", []))
    run.reporter.info(f"resumed from {last}: epoch {ck.epoch}, step {ck.step}")
    return ck.epoch


def _setup(
    model: nn.Module, objective: Objective, train_loader, val_loader, cfg: TrainConfig, reporter_args: dict[str, Any]
) -> tuple[_Run, Any, Any]:
    """The Accelerator, the prepared model, loaders and optimiser, the schedule and the EMA."""
    accelerator = make_accelerator(
        cfg.device, cfg.seed, amp=cfg.amp, grad_accum=cfg.grad_accum, find_unused_parameters=cfg.find_unused_parameters
    )
    seed_everything(cfg.seed, cfg.deterministic)
    if not cfg.deterministic:
        torch.use_deterministic_algorithms(False)  # a previous deterministic run in this process set it
    device = accelerator.device
    module = model.to(device)
    if cfg.channels_last and device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    train_loader = accelerator.prepare_data_loader(train_loader)
    val_loader = accelerator.prepare_data_loader(val_loader) if val_loader is not None else None
    wrapped = accelerator.prepare_model(module)  # under mixed precision this also autocasts module.forward
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    optimizer = accelerator.prepare_optimizer(build_optimizer(module, cfg))
    steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum)
    total = min(cfg.epochs * steps_per_epoch, cfg.max_steps or math.inf)
    run = _Run(
        cfg=cfg,
        accelerator=accelerator,
        module=module,
        model=wrapped,
        objective=objective,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, cfg, int(total)),
        ema=build_ema(module, cfg.ema_decay) if cfg.ema_decay is not None else None,
        reporter=RunLogger(accelerator.is_main_process, **reporter_args),
    )
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
    On return ``model`` holds the last raw (not EMA) weights, with its own ``forward`` again.
    """
    out_dir = Path(out_dir)
    config = {"train": to_dict(cfg), **({"run": dict(run_config)} if run_config else {})}
    run, train_loader, val_loader = _setup(
        model, objective, train_loader, val_loader, cfg, {"live": live, "resume": resume, "params": run_config}
    )
    stopped_early = False
    try:
        start = _resume(run, out_dir, config) if resume else 0
        if start == 0:
            _data_pass(run, train_loader)
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
                run.reporter.info(
                    f"early stop: val/ap has not improved for {patience} epochs (best at epoch {run.best_epoch})"
                )
                stopped_early = True
                break
    finally:
        run.reporter.close()
        run.accelerator.unwrap_model(run.model, keep_fp32_wrapper=False)  # undo the autocast patch on model.forward
    paths = {"last": out_dir / "last", "best": out_dir / "best", "history": out_dir / "history.json"}
    return FitResult(run.best_ap, run.best_epoch, run.step, run.history, paths, stopped_early)
