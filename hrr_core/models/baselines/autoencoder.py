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
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn

from hrr_core.models.ldm import LDMConfig, build_vae, train_vae
from hrr_core.paths import resolve
from hrr_core.schema.baselines import check_reals_autoencoder, reals_autoencoder_config  # noqa: F401


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
        d = resolve(directory)
        if not (d / "config.json").is_file():
            raise ValueError(
                f"{d} is not a diffusers AutoencoderKL folder (no config.json); point vae_dirs at one, "
                "e.g. a Stable Diffusion checkpoint's vae/"
            )
        return cls(AutoencoderKL.from_pretrained(d)).to(device)


def train_reals_autoencoder(
    reals: list[torch.Tensor], cfg: LDMConfig, device: torch.device | str = "cpu", threads: int = 1
) -> tuple[VAEAutoencoder, dict]:
    """A small AutoencoderKL trained on ``reals`` ((3, H, W) images in [0, 1], real photos of the
    training split only; each at least ``cfg.train_crop`` on both sides), with the project's VAE
    recipe and ``cfg``'s ``vae_*`` settings, on ``threads`` CPU threads (0: leave torch's setting).
    CPU float reductions depend on the thread count, so without a fixed count the same seed gives
    a different autoencoder on another machine (measured: 2e-4 apart after 20 steps, 1 vs 2
    threads). Deterministic for ``cfg.seed`` and ``threads`` on one torch build.
    Returns the frozen autoencoder and training stats (steps, seconds, first/final loss)."""
    if not reals:
        raise ValueError(
            "AEROBLADE's autoencoder trains on real images, but none were given (labels all 1); "
            "the training set needs real photos, or set ldm_paths / vae_dirs to a pretrained autoencoder"
        )
    check_reals_autoencoder(cfg)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(cfg.seed)
        vae = build_vae(cfg)
        stats = train_vae(vae, reals, cfg, torch.device(device), torch.Generator().manual_seed(cfg.seed))
    finally:
        torch.set_num_threads(before)
    stats["n_real_images"] = len(reals)
    return VAEAutoencoder(vae), stats
