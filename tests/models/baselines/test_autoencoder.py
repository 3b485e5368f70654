"""AEROBLADE's own autoencoder: trained on real images only, saved with the detector, reloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrr_core.models.baselines import AEROBLADE, AEROBLADEConfig, build_baseline
from hrr_core.models.baselines.autoencoder import RealsAEConfig, VAEAutoencoder, train_reals_autoencoder

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_AE = dict(block_out_channels=(8, 8), norm_num_groups=4, steps=3, batch_size=2, crop=16)


def _images(n: int, size: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, size, size, generator=g) for _ in range(n)]


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="block_out_channels"):
        RealsAEConfig(block_out_channels=(6,), norm_num_groups=4)
    with pytest.raises(ValueError, match="crop"):
        RealsAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4, crop=2)


def test_reals_autoencoder_is_deterministic_and_round_trips(tmp_path):
    reals = _images(3, 32, 0)
    ae1, stats = train_reals_autoencoder(reals, RealsAEConfig(**TINY_AE))
    ae2, _ = train_reals_autoencoder(reals, RealsAEConfig(**TINY_AE))
    assert stats["steps"] == 3 and stats["n_real_images"] == 3 and ae1.multiple == 2
    x = torch.rand(2, 3, 32, 32)
    r1 = ae1.decode(ae1.encode(x))
    assert r1.shape == x.shape and 0 <= r1.min() and r1.max() <= 1
    assert torch.equal(r1, ae2.decode(ae2.encode(x)))
    ae1.save(tmp_path / "vae")
    again = VAEAutoencoder.load(tmp_path / "vae")
    assert torch.allclose(again.decode(again.encode(x)), r1, atol=1e-6)
    with pytest.raises(ValueError, match="none were given"):
        train_reals_autoencoder([], RealsAEConfig(**TINY_AE))
    with pytest.raises(ValueError, match="vae_dirs"):
        VAEAutoencoder.load(tmp_path)


def test_fit_trains_on_reals_only_then_saves_and_reloads(tmp_path, monkeypatch):
    import hrr_core.models.baselines.aeroblade as aeroblade_module

    reals, fakes = _images(3, 32, 1), [torch.zeros(3, 48, 48), torch.ones(3, 32, 32)]
    seen = []

    def spy(images, cfg, device="cpu"):
        seen.extend(images)
        return train_reals_autoencoder(images, cfg, device)

    monkeypatch.setattr(aeroblade_module, "train_reals_autoencoder", spy)
    model = build_baseline("aeroblade", {"distance": "l2", "autoencoder": TINY_AE})
    model.fit(reals + fakes, [0, 0, 0, 1, 1])  # mixed sizes, a list as the stages pass it
    assert len(seen) == 3 and all(any(s is r for r in reals) for s in seen)  # the fakes never train it
    assert model.autoencoder_stats["n_real_images"] == 3 and np.isfinite([model.slope, model.offset]).all()
    x = torch.stack(_images(2, 32, 5))
    model.save(tmp_path)
    assert (tmp_path / "autoencoder" / "config.json").is_file()
    again = AEROBLADE.load(tmp_path)
    assert again.owns_autoencoder and np.allclose(again.score(x), model.score(x), atol=1e-6)
    pretrained = AEROBLADE(AEROBLADEConfig(distance="l2", vae_dirs=(str(tmp_path / "autoencoder"),)))
    assert not pretrained.owns_autoencoder and np.allclose(pretrained.distances(x), model.distances(x), atol=1e-6)
