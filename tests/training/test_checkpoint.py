"""Checkpoints: round trip, weights_only loading, corruption detection, atomic saves."""

from __future__ import annotations

import errno
import json
import os
import random

import numpy as np
import pytest
import torch

from hrr_core.io import OutputWriteError
from hrr_core.training import checkpoint as ck
from hrr_core.training.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from hrr_core.training.loop import TrainConfig, build_ema, fit, make_loader


def _save(tiny, folder, step, seed=0):
    torch.manual_seed(seed)
    model = tiny.TinyNet()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 6)).logits.sum().backward()
    opt.step()
    ema = build_ema(model, 0.9)
    save_checkpoint(folder, model, opt, None, ema, step, 1, 0.5, {"train": {"lr": 0.1}}, {"note": "x"})
    return model, opt


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_round_trip_restores_everything(tmp_path, tiny):
    model, opt = _save(tiny, tmp_path / "last", step=7)
    fresh = tiny.TinyNet()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    ema = build_ema(fresh, 0.5)
    loaded = load_checkpoint(tmp_path / "last", fresh, fresh_opt, ema=ema)
    assert (loaded.step, loaded.epoch, loaded.best_metric, loaded.extra) == (7, 1, 0.5, {"note": "x"})
    assert torch.equal(_weights(model), _weights(fresh)) and ema.decay == 0.9
    assert fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    meta = loaded.meta
    assert meta["config"] == {"train": {"lr": 0.1}} and meta["torch_version"] == torch.__version__
    assert set(meta["files"]) == {"model.safetensors", "state.pt"} and len(meta["files"]["state.pt"]["sha256"]) == 64
    torch.load(tmp_path / "last" / "state.pt", weights_only=True)  # nothing but plain data inside


def test_rng_states_round_trip():
    state = ck.capture_rng_state()
    before = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == before


def test_truncated_model_file_is_named_and_best_still_loads(tmp_path, tiny):
    _save(tiny, tmp_path / "best", step=3)
    _save(tiny, tmp_path / "last", step=5)
    path = tmp_path / "last" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated.*Fix: delete"):
        load_checkpoint(tmp_path / "last", tiny.TinyNet())
    assert load_checkpoint(tmp_path / "best", tiny.TinyNet()).step == 3


def test_corrupted_state_file_is_named(tmp_path, tiny):
    _save(tiny, tmp_path / "last", step=5)
    path = tmp_path / "last" / "state.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"state\.pt: corrupt: sha256"):
        load_checkpoint(tmp_path / "last", tiny.TinyNet())


def test_missing_meta_and_missing_folder(tmp_path, tiny):
    _save(tiny, tmp_path / "last", step=5)
    (tmp_path / "last" / "meta.json").unlink()
    with pytest.raises(CheckpointError, match=r"meta\.json: missing"):
        load_weights(tmp_path / "last", tiny.TinyNet())
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        load_weights(tmp_path / "nowhere", tiny.TinyNet())


def test_wrong_architecture_is_a_checkpoint_error(tmp_path, tiny):
    _save(tiny, tmp_path / "last", step=1)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_weights(tmp_path / "last", tiny.LinearNet())


def test_exception_mid_save_keeps_the_old_checkpoint(tmp_path, tiny, monkeypatch):
    old_model, _ = _save(tiny, tmp_path / "last", step=1)

    def write_half_then_fail(model, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_model", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _save(tiny, tmp_path / "last", step=2, seed=1)
    assert sorted(os.listdir(tmp_path)) == ["last"]  # no temp folder left behind
    fresh = tiny.TinyNet()
    assert load_checkpoint(tmp_path / "last", fresh).step == 1
    assert torch.equal(_weights(fresh), _weights(old_model))


def test_full_disk_mid_save_names_the_checkpoint_and_keeps_the_old_one(tmp_path, tiny, monkeypatch):
    old_model, _ = _save(tiny, tmp_path / "last", step=1)

    def fill_the_disk(model, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_model", fill_the_disk)
    with pytest.raises(OutputWriteError) as info:
        _save(tiny, tmp_path / "last", step=2, seed=1)
    msg = str(info.value)
    assert str(tmp_path / "last") in msg and "no space left" in msg and "7 bytes written" in msg, msg
    assert "previous last is left as it was" in msg
    assert sorted(os.listdir(tmp_path)) == ["last"]
    fresh = tiny.TinyNet()
    assert load_checkpoint(tmp_path / "last", fresh).step == 1
    assert torch.equal(_weights(fresh), _weights(old_model))


def test_crash_between_the_two_renames_recovers_the_old_checkpoint(tmp_path, tiny, monkeypatch):
    _save(tiny, tmp_path / "last", step=1)
    real_replace = os.replace

    def replace_then_die(src, dst):
        if str(dst) == str(tmp_path / "last"):  # old already moved aside, new not yet in place
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        _save(tiny, tmp_path / "last", step=2)
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert not (tmp_path / "last").exists() and (tmp_path / ".last.old").exists()
    assert load_checkpoint(tmp_path / "last", tiny.TinyNet()).step == 1


def test_fit_refuses_to_resume_from_a_corrupt_last(tmp_path, tiny):
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    loader = make_loader(tiny.TinySet(), cfg, train=True)
    fit(tiny.TinyNet(), tiny.objective, loader, None, cfg, tmp_path)
    meta = json.loads((tmp_path / "last" / "meta.json").read_text())
    assert meta["config"]["train"]["epochs"] == 1
    (tmp_path / "last" / "state.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last/state\.pt: truncated"):
        fit(tiny.TinyNet(), tiny.objective, loader, None, TrainConfig(epochs=2, batch_size=8, device="cpu"), tmp_path)


def test_ema_weights_load_in_parameter_order(tmp_path, tiny):
    model, _ = _save(tiny, tmp_path / "last", step=1)
    ema = build_ema(model, 0.9)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.fill_(float(i))  # the raw weights now differ from the averages
    save_checkpoint(tmp_path / "last", model, None, None, ema, 1, 1, None, {})
    raw, averaged = tiny.TinyNet(), tiny.TinyNet()
    load_weights(tmp_path / "last", raw)
    load_weights(tmp_path / "last", averaged, ema=True)
    assert torch.equal(_weights(raw), _weights(model))
    assert torch.equal(_weights(averaged), torch.cat([t.flatten() for t in ema.shadow_params]))


def test_format_1_checkpoint_gives_weights_but_refuses_resume_and_ema(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(ck, "FORMAT_VERSION", 1)  # as hrr_core wrote it before EMAModel and get_scheduler
    model, _ = _save(tiny, tmp_path / "last", step=4)
    monkeypatch.undo()
    fresh = tiny.TinyNet()
    assert load_weights(tmp_path / "last", fresh)["format"] == 1 and torch.equal(_weights(fresh), _weights(model))
    with pytest.raises(CheckpointError, match=r"state\.pt: is checkpoint format 1.*Fix: retrain"):
        load_checkpoint(tmp_path / "last", fresh, torch.optim.AdamW(fresh.parameters()), ema=build_ema(fresh, 0.9))
    with pytest.raises(CheckpointError, match="format 1, which has no EMA weights"):
        load_weights(tmp_path / "last", fresh, ema=True)
