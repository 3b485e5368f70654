"""The training loop: AMP resolution, accumulation, hooks, logging, early stopping, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.models.outputs import DetectorOutput
from hrr_core.training.distributed import resolve_amp
from hrr_core.training.loop import TrainConfig, fit, make_loader, predict_loader


def _cfg(**kw) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 4, "lr": 0.05, "device": "cpu", "deterministic": True}
    return TrainConfig(**{**base, **kw})


def _loaders(tiny, cfg, n_train=24, n_val=13):
    return make_loader(tiny.TinySet(n_train), cfg, train=True), make_loader(tiny.TinySet(n_val, seed=1), cfg, train=False)


def test_amp_auto_is_off_on_cpu():
    amp = resolve_amp("auto", torch.device("cpu"))
    assert amp.dtype is None and not amp.use_scaler
    assert resolve_amp("bf16", torch.device("cpu")).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16.*needs CUDA"):
        resolve_amp("fp16", torch.device("cpu"))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="^lr:"):
        from_dict(TrainConfig, {"lr": -1.0})
    with pytest.raises(ConfigError, match="^amp:"):
        from_dict(TrainConfig, {"amp": "fp8"})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainConfig, {"learning_rate": 1.0})


def test_grad_accumulation_matches_one_big_batch(tmp_path, tiny):
    weights = []
    for batch_size, accum in ((8, 1), (4, 2)):
        cfg = _cfg(epochs=1, batch_size=batch_size, grad_accum=accum, optimizer="sgd", momentum=0.0)
        torch.manual_seed(0)
        model = tiny.LinearNet()
        train, _ = _loaders(tiny, cfg)
        result = fit(model, tiny.objective, train, None, cfg, tmp_path / f"b{batch_size}", resume=False)
        assert result.steps == 3  # 24 samples / 8 per optimiser step
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


class HookedNet(nn.Module):
    """A linear detector with both optional hooks of the model contract."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 1)
        self.lrs: list[float] = []

    def forward(self, x):
        return DetectorOutput(logits=self.fc(x).squeeze(-1))

    def post_optimizer_step(self, lr: float) -> None:
        self.lrs.append(lr)

    def train_metrics(self) -> dict[str, float]:
        return {"hook_calls": float(len(self.lrs))}


def test_post_optimizer_step_once_per_optimiser_step_and_all_keys_logged(tmp_path, tiny):
    cfg = _cfg(epochs=2, grad_accum=2, scheduler="cosine", warmup_steps=1)
    model = HookedNet()
    train, val = _loaders(tiny, cfg, n_train=20)  # 5 batches -> 3 optimiser steps per epoch
    result = fit(model, tiny.objective, train, val, cfg, tmp_path, resume=False, live=tmp_path / "live")
    assert result.steps == 6 and len(model.lrs) == 6
    assert model.lrs[0] == pytest.approx(cfg.lr / 2)  # warmup: the hook sees the lr the step used
    for row in result.history:
        for key in ("train/loss", "train/bce", "train/logit_l2", "val/loss", "val/bce", "val/logit_l2", "val/ap", "val/acc", "lr", "model/hook_calls"):
            assert key in row and np.isfinite(row[key]), key
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert {"loss", "bce", "logit_l2"} <= set(live["train"]) and {"ap", "acc"} <= set(live["val"])
    assert not (tmp_path / "live" / "dvc.yaml").exists()
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 2


class ConstantNet(nn.Module):
    """Ignores its input: validation AP never improves after the first epoch."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return DetectorOutput(logits=self.bias.expand(len(x)))


def test_early_stopping_stops(tmp_path, tiny):
    cfg = _cfg(epochs=10, early_stop_patience=2)
    train, val = _loaders(tiny, cfg)
    result = fit(ConstantNet(), tiny.objective, train, val, cfg, tmp_path, resume=False)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_max_steps_caps_and_resume_after_cap_is_a_no_op(tmp_path, tiny):
    cfg = _cfg(epochs=5, max_steps=4)
    train, val = _loaders(tiny, cfg)
    result = fit(tiny.TinyNet(), tiny.objective, train, val, cfg, tmp_path)
    assert result.steps == 4 and len(result.history) == 1
    again = fit(tiny.TinyNet(), tiny.objective, train, val, cfg, tmp_path)
    assert again.steps == 4 and len(again.history) == 1


class Crash(RuntimeError):
    pass


def _resume_cfg():
    return _cfg(epochs=4, scheduler="cosine", warmup_steps=2, ema_decay=0.9, grad_clip=1.0, weight_decay=0.01)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_matches_uninterrupted_run_bitwise(tmp_path, tiny):
    cfg = _resume_cfg()
    torch.manual_seed(0)
    straight = tiny.TinyNet(dropout=0.3)
    train, val = _loaders(tiny, cfg)
    full = fit(straight, tiny.objective, train, val, cfg, tmp_path / "straight")

    def crash_after_two(row):
        if row["epoch"] == 2:
            raise Crash

    torch.manual_seed(0)
    with pytest.raises(Crash):
        fit(tiny.TinyNet(dropout=0.3), tiny.objective, *_loaders(tiny, cfg), cfg, tmp_path / "resumed", on_epoch_end=crash_after_two)
    torch.manual_seed(123)  # a fresh process would start from other weights and RNG state
    resumed = tiny.TinyNet(dropout=0.3)
    torch.randn(7)
    again = fit(resumed, tiny.objective, *_loaders(tiny, cfg), cfg, tmp_path / "resumed")
    for key, value in _state(straight).items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert again.steps == full.steps and again.best_epoch == full.best_epoch
    assert [r["val/ap"] for r in again.history] == [r["val/ap"] for r in full.history]
    ema_a = torch.load(tmp_path / "straight" / "last" / "state.pt", weights_only=True)["ema"]["shadow"]
    ema_b = torch.load(tmp_path / "resumed" / "last" / "state.pt", weights_only=True)["ema"]["shadow"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_predict_loader_keeps_order_and_ids(tiny):
    cfg = _cfg()
    _, val = _loaders(tiny, cfg, n_val=10)
    ids, scores, labels = predict_loader(tiny.LinearNet(), val, "cpu")
    assert ids == [f"s{i:03d}" for i in range(10)]
    assert scores.shape == (10,) and labels.shape == (10,)
    np.testing.assert_array_equal(labels, tiny.TinySet(10, seed=1).y.numpy())


def test_bf16_autocast_and_grad_scaler_paths_run_on_cpu(tmp_path, tiny, monkeypatch):
    """The CUDA-only fp16 path (autocast + GradScaler), exercised on CPU with bf16 + a CPU scaler."""
    from hrr_core.training import loop
    from hrr_core.training.distributed import AmpSetup

    monkeypatch.setattr(loop, "resolve_amp", lambda amp, device: AmpSetup(torch.bfloat16, True))
    cfg = _cfg(epochs=2, amp="bf16", grad_clip=0.5, max_steps=8)
    train, val = _loaders(tiny, cfg)
    result = fit(tiny.TinyNet(), tiny.objective, train, val, cfg, tmp_path, resume=False)
    assert result.steps == 8 and all(np.isfinite(r["train/loss"]) for r in result.history)
    state = torch.load(tmp_path / "last" / "state.pt", weights_only=True)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    again = fit(tiny.TinyNet(), tiny.objective, train, val, _cfg(epochs=3, amp="bf16", grad_clip=0.5), tmp_path)
    assert again.steps == 14  # resumed with the scaler state: 8 capped + epoch 3 (6 steps)
