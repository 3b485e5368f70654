"""AEROBLADE's own autoencoder: trained on real images only, saved with the detector, reloaded."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrr_core.confutil import ConfigError, from_dict, to_dict
from hrr_core.methods import build as build_baseline
from hrr_core.models.baselines.aeroblade import AEROBLADE, AEROBLADEConfig
from hrr_core.models.baselines.autoencoder import VAEAutoencoder, reals_autoencoder_config, train_reals_autoencoder

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_AE = dict(vae_block_out_channels=(8, 8), norm_num_groups=4, vae_steps=3, vae_batch_size=2, train_crop=16)


def tiny_ae():
    return replace(reals_autoencoder_config(), **TINY_AE)


def _images(n: int, size: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, size, size, generator=g) for _ in range(n)]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.autoencoder.vae_block_out_channels"):
        from_dict(AEROBLADEConfig, {"autoencoder": {"vae_block_out_channels": [6], "norm_num_groups": 4}}, "model")
    with pytest.raises(ConfigError, match="model.autoencoder.train_crop"):
        from_dict(
            AEROBLADEConfig,
            {"autoencoder": {"vae_block_out_channels": [8, 8, 8], "norm_num_groups": 4, "train_crop": 2}},
            "model",
        )
    with pytest.raises(ConfigError, match="model.autoencoder.space"):
        from_dict(AEROBLADEConfig, {"autoencoder": {"space": "pixel"}}, "model")


def test_partial_autoencoder_override_keeps_its_own_recipe():
    cfg = from_dict(AEROBLADEConfig, {"autoencoder": {"vae_steps": 5}})
    assert cfg.autoencoder == replace(reals_autoencoder_config(), vae_steps=5)
    assert (cfg.autoencoder.seed, cfg.autoencoder.vae_latent_channels, cfg.autoencoder.train_crop) == (4242, 4, 32)


def test_reals_autoencoder_is_deterministic_and_round_trips(tmp_path):
    reals = _images(3, 32, 0)
    ae1, stats = train_reals_autoencoder(reals, tiny_ae())
    ae2, _ = train_reals_autoencoder(reals, tiny_ae())
    assert stats["steps"] == 3 and stats["n_real_images"] == 3 and ae1.multiple == 2
    x = torch.rand(2, 3, 32, 32)
    r1 = ae1.decode(ae1.encode(x))
    assert r1.shape == x.shape and not torch.equal(r1, x)
    assert torch.equal(r1, ae2.decode(ae2.encode(x)))
    ae1.save(tmp_path / "vae")
    again = VAEAutoencoder.load(tmp_path / "vae")
    assert torch.allclose(again.decode(again.encode(x)), r1, atol=1e-6)
    with pytest.raises(ValueError, match="none were given"):
        train_reals_autoencoder([], tiny_ae())
    with pytest.raises(ValueError, match="vae_dirs"):
        VAEAutoencoder.load(tmp_path)


def test_fit_trains_on_part_of_the_reals_calibrates_on_the_rest_then_saves_and_reloads(tmp_path, monkeypatch):
    import hrr_core.models.baselines.aeroblade as aeroblade_module

    reals, fakes = _images(3, 32, 1), [torch.zeros(3, 48, 48), torch.ones(3, 32, 32)]
    seen, calibrated = [], []

    def spy(images, cfg, device="cpu", threads=1):
        seen.extend(images)
        return train_reals_autoencoder(images, cfg, device, threads)

    monkeypatch.setattr(aeroblade_module, "train_reals_autoencoder", spy)
    model = build_baseline("aeroblade", {"distance": "l2", "autoencoder": to_dict(TINY_AE)})
    distances_any = model._distances_any
    monkeypatch.setattr(model, "_distances_any", lambda imgs: calibrated.extend(imgs) or distances_any(imgs))
    model.fit(reals + fakes, [0, 0, 0, 1, 1])  # mixed sizes, a list as the stages pass it
    trained_ids, calibrated_ids = {id(x) for x in seen}, {id(x) for x in calibrated}
    assert len(seen) == 1 and trained_ids <= {id(r) for r in reals}  # the fakes never train it
    assert not trained_ids & calibrated_ids and calibrated_ids == {id(x) for x in reals + fakes} - trained_ids
    assert model.autoencoder_stats["n_real_images"] == 1 and np.isfinite([model.slope, model.offset]).all()
    assert model.calibration_stats["n_calibration_reals"] == 2 and model.calibration_stats["n_calibration"] == 4
    x = torch.stack(_images(2, 32, 5))
    model.save(tmp_path)
    assert (tmp_path / "autoencoder" / "config.json").is_file()
    again = AEROBLADE.load(tmp_path)
    assert again.owns_autoencoder and np.allclose(again.score(x), model.score(x), atol=1e-6)
    assert again.calibration_stats == model.calibration_stats
    pretrained = AEROBLADE(AEROBLADEConfig(distance="l2", vae_dirs=(str(tmp_path / "autoencoder"),)))
    assert not pretrained.owns_autoencoder and np.allclose(pretrained.distances(x), model.distances(x), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 real images"):
        build_baseline("aeroblade", {"distance": "l2", "autoencoder": TINY_AE}).fit(reals[:1] + fakes, [0, 1, 1])


@pytest.fixture
def saved_aeroblade(tmp_path):
    """A saved AEROBLADE that owns its (tiny) autoencoder, as ``fit`` leaves it."""
    ae, _ = train_reals_autoencoder(_images(2, 32, 3), tiny_ae())
    model = AEROBLADE(AEROBLADEConfig(distance="l2"), autoencoders=[ae])
    model.owns_autoencoder = True
    return model, model.save(tmp_path / "model")


def _set_autoencoder_dir(folder, value):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data["autoencoder_dir"] = value
    path.write_text(json.dumps(data))


def test_saved_autoencoder_reloads_from_the_model_folder(saved_aeroblade):
    model, folder = saved_aeroblade
    assert json.loads((folder / "config.json").read_text())["autoencoder_dir"] == "autoencoder"
    again = AEROBLADE.load(folder)
    x = torch.stack(_images(2, 32, 5))
    assert again.owns_autoencoder and np.allclose(again.distances(x), model.distances(x), atol=1e-6)


@pytest.mark.parametrize("value", ["../elsewhere", "ABSOLUTE", "autoencoder/../../elsewhere", "LINK"])
def test_autoencoder_dir_outside_the_model_folder_is_refused(saved_aeroblade, tmp_path, value):
    _, folder = saved_aeroblade
    shutil.copytree(folder / "autoencoder", tmp_path / "elsewhere")  # a loadable autoencoder, outside
    if value == "ABSOLUTE":
        value = str(tmp_path / "elsewhere")
    elif value == "LINK":  # inside by name, outside once the symlink is followed
        value = "linked"
        (folder / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _set_autoencoder_dir(folder, value)
    with pytest.raises(ValueError) as info:
        AEROBLADE.load(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'config.json'}: autoencoder_dir {value!r} is not inside the model folder")
    assert "Fix: restore the original config.json" in message
    AEROBLADE.load(folder, autoencoders=[VAEAutoencoder.load(tmp_path / "elsewhere")])  # given ones: nothing joined


class MemorisingAE:
    """An autoencoder that reconstructs its training images exactly and everything else as 2x2
    blocks: the extreme of an autoencoder that fits its own reals better than unseen ones."""

    vae, multiple = "stand-in", 2

    def __init__(self, memory):
        self.memory = memory

    def encode(self, x):
        return x

    def decode(self, z):
        pooled = F.interpolate(F.avg_pool2d(z, 2), scale_factor=2, mode="nearest")
        seen = torch.tensor([any(torch.equal(zi, m) for m in self.memory) for zi in z]).view(-1, 1, 1, 1)
        return torch.where(seen, z, pooled)


def test_calibration_direction_survives_an_autoencoder_that_memorises_its_reals(monkeypatch):
    import hrr_core.models.baselines.aeroblade as aeroblade_module

    memorising = lambda imgs, cfg, device="cpu", threads=1: (MemorisingAE(imgs), {})  # noqa: E731
    monkeypatch.setattr(aeroblade_module, "train_reals_autoencoder", memorising)
    g = torch.Generator().manual_seed(0)
    reals = [torch.rand(3, 32, 32, generator=g) for _ in range(8)]  # noise: poorly reconstructed unless memorised
    fakes = [torch.rand(3, 16, 16, generator=g).repeat_interleave(2, -2).repeat_interleave(2, -1) for _ in range(8)]
    model = build_baseline("aeroblade", {"distance": "l2"}).fit(reals + fakes, [0] * 8 + [1] * 8)
    # calibrating on the AE's own reals instead gives slope 0 (every distance 0): no direction at all
    assert model.slope > 0 and model.calibration_stats["premise_holds"]
    unseen = [torch.rand(3, 32, 32, generator=g) for _ in range(4)]
    p = model.score(torch.stack(unseen + fakes[:4]))
    assert p[4:].min() > p[:4].max()
