"""The autoencoders AEROBLADE reconstructs through, as one small interface
(``encode(x) -> z``, ``decode(z) -> x`` in [0, 1], ``multiple``, ``save`` / ``load``).

:class:`VAEAutoencoder` wraps any diffusers ``AutoencoderKL`` folder, e.g. Stable Diffusion's
``vae/`` (the paper's setting). When no LDM is available, as in the embedded benchmark whose
retrospection model is pixel-space (no VAE), :func:`train_reals_autoencoder` trains a small
``AutoencoderKL`` on REAL training images only, with its own seed and config: it never sees a
generated image, so it is not any benchmark generator's autoencoder and leaks none of them.
The training recipe is the project's one VAE recipe (``hrr_core.models.ldm.train_vae``:
L1 + log-spectrum L1 + a small KL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn

from hrr_core.confutil import check
from hrr_core.models.ldm import LDMConfig, build_vae, train_vae


@dataclass(frozen=True)
class RealsAEConfig:
    """AEROBLADE's own autoencoder (``autoencoder:``), trained by ``fit`` on the real training
    images only: block_out_channels (spatial factor 2^(n-1)), latent_channels, norm_num_groups,
    steps / batch_size / crop / lr of the training, fft_weight of the spectrum term, seed;
    train_threads: CPU threads while training (0: leave torch's setting). CPU float reductions
    depend on the thread count, so without a fixed count the same seed gives a different
    autoencoder on another machine (measured: 2e-4 apart after 20 steps, 1 vs 2 threads)."""

    block_out_channels: tuple[int, ...] = (32, 64)
    latent_channels: int = 4
    norm_num_groups: int = 8
    steps: int = 300
    batch_size: int = 16
    crop: int = 32
    lr: float = 1e-3
    fft_weight: float = 0.1
    seed: int = 4242
    train_threads: int = 1

    def __post_init__(self) -> None:
        chans = self.block_out_channels
        check(len(chans) >= 1 and all(c > 0 and c % self.norm_num_groups == 0 for c in chans), "block_out_channels",
              f"a non-empty list of positive multiples of norm_num_groups={self.norm_num_groups}", chans)
        for key in ("latent_channels", "norm_num_groups", "batch_size"):
            check(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        check(self.steps >= 0, "steps", "an integer >= 0", self.steps)
        check(self.crop >= 2 ** (len(chans) - 1), "crop", f"an integer >= {2 ** (len(chans) - 1)} (the autoencoder's factor)", self.crop)
        check(0 < self.lr < 1, "lr", "a number in (0, 1)", self.lr)
        check(self.fft_weight >= 0, "fft_weight", "a number >= 0", self.fft_weight)
        check(self.train_threads >= 0, "train_threads", "an integer >= 0 (0: torch's default)", self.train_threads)

    def ldm_config(self) -> LDMConfig:
        """The same settings in the project's LDM config, to reuse its VAE builder and trainer."""
        return LDMConfig(space="latent", norm_num_groups=self.norm_num_groups, vae_block_out_channels=self.block_out_channels,
                         vae_latent_channels=self.latent_channels, unet_block_out_channels=(self.norm_num_groups,),
                         train_crop=self.crop, vae_steps=self.steps, vae_batch_size=self.batch_size, vae_lr=self.lr,
                         vae_fft_weight=self.fft_weight, seed=self.seed)


class VAEAutoencoder(nn.Module):
    """A frozen diffusers ``AutoencoderKL``: images (B, 3, H, W) in [0, 1], H and W multiples of
    ``multiple`` -> latents (posterior mode) -> images in [0, 1]."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, c, H/f, W/f) on the autoencoder's device."""
        return self.vae.encode(x.to(self.device, torch.float32) * 2 - 1).latent_dist.mode()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, c, h, w) -> (B, 3, h*f, w*f) in [0, 1]."""
        return ((self.vae.decode(z).sample + 1) / 2).clamp(0, 1)

    def save(self, directory: str | os.PathLike) -> Path:
        """diffusers layout (config.json + safetensors weights)."""
        self.vae.save_pretrained(directory)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: torch.device | str = "cpu") -> "VAEAutoencoder":
        from hrr_core.paths import resolve

        d = resolve(directory)
        if not (d / "config.json").is_file():
            raise ValueError(f"{d} is not a diffusers AutoencoderKL folder (no config.json); point vae_dirs at one, "
                             "e.g. a Stable Diffusion checkpoint's vae/")
        return cls(AutoencoderKL.from_pretrained(d)).to(device)


def train_reals_autoencoder(reals: list[torch.Tensor], cfg: RealsAEConfig,
                            device: torch.device | str = "cpu") -> tuple[VAEAutoencoder, dict]:
    """A small AutoencoderKL trained on ``reals`` ((3, H, W) images in [0, 1], real photos of the
    training split only; each at least ``crop`` on both sides). Deterministic for a seed and
    ``train_threads`` on one torch build. Returns the frozen autoencoder and training stats
    (steps, seconds, first/final loss)."""
    if not reals:
        raise ValueError("AEROBLADE's autoencoder trains on real images, but none were given (labels all 1); "
                         "the training set needs real photos, or set ldm_paths / vae_dirs to a pretrained autoencoder")
    lcfg = cfg.ldm_config()
    threads = torch.get_num_threads()
    if cfg.train_threads:
        torch.set_num_threads(cfg.train_threads)
    try:
        torch.manual_seed(cfg.seed)
        vae = build_vae(lcfg)
        stats = train_vae(vae, reals, lcfg, torch.device(device), torch.Generator().manual_seed(cfg.seed))
    finally:
        torch.set_num_threads(threads)
    stats["n_real_images"] = len(reals)
    return VAEAutoencoder(vae), stats
