"""The training loop: AMP resolution, accumulation, EMA, LR schedule, hooks, logging, early stopping, resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.models.outputs import DetectorOutput
from hrr_core.training.checkpoint import load_weights
from hrr_core.training.distributed import resolve_mixed_precision
from hrr_core.training.loop import TrainConfig, fit, make_loader, predict_loader


def _cfg(**kw) -> TrainConfig:
    base = {
        "epochs": 2,
        "batch_size": 4,
        "lr": 0.05,
        "device": "cpu",
        "deterministic": True,  # the loop's own
        "weight_decay": 0.0,
        "scheduler": "none",
        "warmup_steps": 0,
        "grad_clip": None,
    }  # behaviour, not params
    return TrainConfig(**{**base, **kw})


def _loaders(tiny, cfg, n_train=24, n_val=13):
    train = make_loader(tiny.TinySet(n_train), cfg, train=True)
    return train, make_loader(tiny.TinySet(n_val, seed=1), cfg, train=False)


def test_amp_auto_is_off_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_mixed_precision("auto", cpu) == "no" and resolve_mixed_precision("off", cpu) == "no"
    assert resolve_mixed_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16.*needs CUDA"):
        resolve_mixed_precision("fp16", cpu)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="^lr:"):
        from_dict(TrainConfig, {"lr": -1.0})
    with pytest.raises(ConfigError, match="^amp:"):
        from_dict(TrainConfig, {"amp": "fp8"})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainConfig, {"learning_rate": 1.0})


@pytest.mark.parametrize("n_train", [24, 20])  # 20: the epoch's last step has one micro-batch of 4, not two
def test_grad_accumulation_matches_one_big_batch(tmp_path, tiny, n_train):
    """SGD without momentum: equal weights after every step means equal gradients, so batch 4 x 2
    accumulated = batch 8, including a shorter last group (Accelerate alone would halve it)."""
    weights = []
    for batch_size, accum in ((8, 1), (4, 2)):
        cfg = _cfg(epochs=1, batch_size=batch_size, grad_accum=accum, optimizer="sgd", momentum=0.0)
        torch.manual_seed(0)
        model = tiny.LinearNet()
        train, _ = _loaders(tiny, cfg, n_train=n_train)
        result = fit(model, tiny.objective, train, None, cfg, tmp_path / f"b{batch_size}", resume=False)
        assert result.steps == 3  # ceil(n_train / 8) optimiser steps
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    untrained = torch.cat([p.detach().flatten() for p in tiny.LinearNet().parameters()])
    assert not torch.allclose(weights[0], untrained)


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
    assert model.lrs[:2] == [0.0, pytest.approx(cfg.lr)]  # warm-up from 0: the hook sees the lr the step used
    for row in result.history:
        for key in (
            "train/loss",
            "train/bce",
            "train/logit_l2",
            "val/loss",
            "val/bce",
            "val/logit_l2",
            "val/ap",
            "val/acc",
            "lr",
            "model/hook_calls",
        ):
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
        fit(
            tiny.TinyNet(dropout=0.3),
            tiny.objective,
            *_loaders(tiny, cfg),
            cfg,
            tmp_path / "resumed",
            on_epoch_end=crash_after_two,
        )
    torch.manual_seed(123)  # a fresh process would start from other weights and RNG state
    resumed = tiny.TinyNet(dropout=0.3)
    torch.randn(7)
    again = fit(resumed, tiny.objective, *_loaders(tiny, cfg), cfg, tmp_path / "resumed")
    for key, value in _state(straight).items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert again.steps == full.steps and again.best_epoch == full.best_epoch
    assert [r["val/ap"] for r in again.history] == [r["val/ap"] for r in full.history]
    ema_a = torch.load(tmp_path / "straight" / "last" / "state.pt", weights_only=True)["ema"]
    ema_b = torch.load(tmp_path / "resumed" / "last" / "state.pt", weights_only=True)["ema"]
    assert ema_a["optimization_step"] == ema_b["optimization_step"] == full.steps
    assert all(torch.equal(a, b) for a, b in zip(ema_a["shadow_params"], ema_b["shadow_params"], strict=True))


def test_predict_loader_keeps_order_and_ids(tiny):
    cfg = _cfg()
    _, val = _loaders(tiny, cfg, n_val=10)
    ids, scores, labels = predict_loader(tiny.LinearNet(), val, "cpu")
    assert ids == [f"s{i:03d}" for i in range(10)]
    assert scores.shape == (10,) and labels.shape == (10,)
    np.testing.assert_array_equal(labels, tiny.TinySet(10, seed=1).y.numpy())


def _mean_logit(output, labels):
    return {"loss": output.logits.float().mean()}


def test_ema_is_a_hand_computed_average_and_validation_uses_it(tmp_path, tiny):
    """One parameter b, loss = b: SGD moves it by -lr each step; validation loss = the EMA of b."""
    cfg = _cfg(epochs=1, lr=0.1, optimizer="sgd", momentum=0.0, ema_decay=0.3)
    model = ConstantNet()
    train, val = _loaders(tiny, cfg)  # 24 samples / 4 = 6 steps
    result = fit(model, _mean_logit, train, val, cfg, tmp_path, resume=False)
    raw, average = 0.0, 0.0
    for t in range(1, result.steps + 1):
        raw -= cfg.lr
        decay = 0.0 if t == 1 else min(cfg.ema_decay, t / (9 + t))  # EMAModel's warm-up, capped from t = 4
        average = decay * average + (1 - decay) * raw
    assert result.steps == 6 and model.bias.item() == pytest.approx(raw)  # raw weights restored after validation
    assert result.history[-1]["val/loss"] == pytest.approx(average) and abs(average - raw) > 0.04
    saved = torch.load(tmp_path / "last" / "state.pt", weights_only=True)["ema"]
    assert saved["optimization_step"] == 6 and saved["shadow_params"][0].item() == pytest.approx(average)


@pytest.mark.parametrize("scheduler", ["cosine", "none"])
def test_lr_schedule_warms_up_then_follows_the_formula(tmp_path, tiny, scheduler):
    warmup, total = 3, 10  # 2 epochs x 5 steps
    cfg = _cfg(epochs=2, scheduler=scheduler, warmup_steps=warmup)
    model = HookedNet()
    train, _ = _loaders(tiny, cfg, n_train=20)
    fit(model, tiny.objective, train, None, cfg, tmp_path, resume=False)

    def expected(s):  # lr of optimiser step s (0-based)
        if s < warmup:
            return cfg.lr * s / warmup
        if scheduler == "none":
            return cfg.lr
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))

    assert model.lrs == pytest.approx([expected(s) for s in range(total)])
    assert model.lrs[warmup] == pytest.approx(cfg.lr)  # warm-up end
    if scheduler == "cosine":  # last step: one step short of 0
        assert model.lrs[-1] == pytest.approx(cfg.lr * 0.5 * (1 + math.cos(math.pi * 6 / 7)))


class DtypeProbe(nn.Module):
    """TinyNet-like detector that records the dtype its logits come out in."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 1)
        self.dtypes: set[torch.dtype] = set()

    def forward(self, x):
        logits = self.fc(x).squeeze(-1)
        self.dtypes.add(logits.dtype)
        return DetectorOutput(logits=logits)


def test_bf16_autocast_through_accelerate_on_cpu(tmp_path, tiny):
    cfg = _cfg(epochs=2, amp="bf16", grad_clip=0.5, max_steps=8)
    train, val = _loaders(tiny, cfg)
    model = DtypeProbe()
    result = fit(model, tiny.objective, train, val, cfg, tmp_path, resume=False)
    assert result.steps == 8 and all(np.isfinite(r["train/loss"]) for r in result.history)
    assert model.dtypes == {torch.bfloat16}  # every forward, training and validation, ran under autocast
    model.dtypes.clear()
    model(torch.randn(2, 6))
    assert model.dtypes == {torch.float32}  # fit handed back the model without Accelerate's autocast wrapper
    assert torch.load(tmp_path / "last" / "state.pt", weights_only=True)["scaler"] is None  # bf16: no GradScaler
    again = fit(DtypeProbe(), tiny.objective, train, val, _cfg(epochs=3, amp="bf16", grad_clip=0.5), tmp_path)
    assert again.steps == 14  # resumed: 8 capped + epoch 3 (6 steps)
    with pytest.raises(ValueError, match="already trained on cpu with mixed_precision='bf16'.*fresh process"):
        fit(DtypeProbe(), tiny.objective, train, val, _cfg(epochs=1), tmp_path / "fp32", resume=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_grad_scaler_on_cuda_is_checkpointed_and_resumed(tmp_path, tiny):
    cfg = _cfg(epochs=2, amp="fp16", grad_clip=0.5, max_steps=8, device="cuda")
    train, val = _loaders(tiny, cfg)
    result = fit(DtypeProbe(), tiny.objective, train, val, cfg, tmp_path, resume=False)
    assert result.steps == 8 and all(np.isfinite(r["train/loss"]) for r in result.history)
    state = torch.load(tmp_path / "last" / "state.pt", weights_only=True)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    cfg = _cfg(epochs=3, amp="fp16", grad_clip=0.5, device="cuda")
    again = fit(DtypeProbe(), tiny.objective, train, val, cfg, tmp_path)
    assert again.steps == 14


class ConvProbe(nn.Module):
    """A small conv detector that records whether its input arrived channels-last."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)
        self.channels_last: set[bool] = set()

    def forward(self, x):
        self.channels_last.add(bool(x.is_contiguous(memory_format=torch.channels_last)))
        return DetectorOutput(logits=self.fc(self.conv(x).mean((2, 3))).squeeze(-1))


def _image_loaders(cfg):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, 16, 16, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).float()

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return {"inputs": x[i], "labels": y[i], "ids": f"i{i:03d}"}

    return make_loader(Images(), cfg, train=True), make_loader(Images(), cfg, train=False)


def _bce(out, y):
    loss = nn.functional.binary_cross_entropy_with_logits(out.logits.float(), y)
    return {"loss": loss, "bce": loss}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda_is_resumed(tmp_path, tiny):
    cfg = _cfg(epochs=2, amp="bf16", grad_clip=0.5, max_steps=8, device="cuda")
    train, val = _loaders(tiny, cfg)
    model = DtypeProbe()
    result = fit(model, tiny.objective, train, val, cfg, tmp_path, resume=False)
    assert result.steps == 8 and model.dtypes == {torch.bfloat16}
    assert torch.load(tmp_path / "last" / "state.pt", weights_only=True)["scaler"] is None
    again = fit(
        DtypeProbe(), tiny.objective, train, val, _cfg(epochs=3, amp="bf16", grad_clip=0.5, device="cuda"), tmp_path
    )
    assert again.steps == 14


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compiled", [False, True])
def test_channels_last_and_compile_on_cuda(tmp_path, compiled):
    cfg = _cfg(epochs=1, channels_last=True, compile=compiled, device="cuda", amp="bf16")
    train, val = _image_loaders(cfg)
    model = ConvProbe()
    result = fit(model, _bce, train, val, cfg, tmp_path, resume=False)
    assert result.steps == 6 and all(np.isfinite(r["train/loss"]) for r in result.history)
    if not compiled:  # a compiled forward runs traced code; the probe's record is only reliable eagerly
        assert model.channels_last == {True}
    fresh = ConvProbe()
    load_weights(tmp_path / "last", fresh)  # the saved weights load into a plain, uncompiled module
