"""Adversarial pieces of the zoo: a patch discriminator, the hinge-GAN :class:`Adversary` used by
the VAE trainers, and the x2 transposed-convolution super-resolution generator.

All images here are in [-1, 1]. The hinge losses follow Lim & Ye (2017) / VQGAN (Esser et al. 2021).
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from hrr_core.models.ldm import fft_loss, log_progress, optimise_with_adversary, random_batch


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) -> (B, 1, H/4, W/4) real/fake logits per patch (spectral-normalised convs)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(3, width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * width, 2 * width, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * width, 1, 3, 1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Adversary:
    """A patch discriminator with its own optimiser, switched on at step ``start`` with ``weight``.

    The trainer calls ``generator_loss(fake)`` (added to its loss times ``weight``) and, after
    its own step, ``discriminator_step(real, fake.detach())``.
    """

    def __init__(self, width: int, lr: float, weight: float, start: int, device: torch.device, seed: int):
        torch.manual_seed(seed)
        self.disc = PatchDiscriminator(width).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.9))
        self.weight, self.start = weight, start

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -self.disc(fake).mean()

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        loss = F.relu(1 - self.disc(real)).mean() + F.relu(1 + self.disc(fake)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class UpsamplerNet(nn.Module):
    """x2 super-resolution: (B, 3, h, w) in [-1, 1] -> (B, 3, 2h, 2w), a transposed-conv residual
    on top of bilinear upsampling (the transposed conv leaves the family's fingerprint)."""

    def __init__(self, width: int = 48, num_blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(num_blocks)])
        self.up = nn.ConvTranspose2d(width, width, 4, 2, 1)  # (B, w, 2h, 2w)
        self.tail = nn.Conv2d(width, 3, 3, 1, 1)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        feat = self.head(low)
        feat = feat + self.body(feat)
        out = self.tail(F.leaky_relu(self.up(feat), 0.2))
        return F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False) + out


def downsample_half(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)), antialiased."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=((h + 1) // 2, (w + 1) // 2), mode="bilinear", antialias=True, align_corners=False)


def upsample_roundtrip(net: UpsamplerNet, x01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> the generator's x2 reconstruction of its x0.5 version, same shape, [0, 1]."""
    h, w = x01.shape[-2:]
    out = net(downsample_half(x01 * 2 - 1))[..., :h, :w]  # (B, 3, H, W)
    return ((out + 1) / 2).clamp(0, 1)


def fit_adversarial(net: nn.Module, step_loss, adversary, images, cfg, device, generator, name: str) -> dict:
    """The zoo's adversarial training loop: ``cfg.steps`` steps of Adam (``cfg.lr``, betas 0.5/0.9)
    on random ``cfg.crop`` crops in [-1, 1]; ``step_loss(x) -> (fake, reconstruction loss)``, and
    after ``cfg.adv_start`` the hinge-GAN term of ``adversary``. Returns the fit's statistics."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    rec, adv, t0 = [], [], time.perf_counter()
    for step in range(cfg.steps):
        x = random_batch(images, cfg.batch_size, cfg.crop, generator).to(device) * 2 - 1  # (B, 3, c, c)
        fake, loss = step_loss(x)
        rec.append(float(loss.detach()))
        log_progress(name, step, cfg.steps, rec[-1], t0)
        disc = optimise_with_adversary(opt, loss, adversary, step, x, fake)
        if disc is not None:
            adv.append(disc)
    net.eval()
    tail = rec[-max(1, len(rec) // 10) :]
    return {
        "steps": len(rec),
        "seconds": round(time.perf_counter() - t0, 2),
        "loss_first": rec[0] if rec else float("nan"),
        "loss_final": sum(tail) / max(1, len(tail)),
        "disc_loss_final": adv[-1] if adv else None,
    }


def train_upsampler(
    net: UpsamplerNet, adversary: Adversary, images, cfg, device: torch.device, generator: torch.Generator
) -> dict:
    """L1 + FFT + (after ``cfg.adv_start``) hinge-GAN training of ``net`` on random crops."""
    net.to(device).train()

    def step_loss(x):
        fake = net(downsample_half(x))
        return fake, cfg.l1_weight * (fake - x).abs().mean() + cfg.fft_weight * fft_loss(fake, x)

    return fit_adversarial(net, step_loss, adversary, images, cfg, device, generator, type(net).__name__)


class PixelShuffleSR(nn.Module):
    """x2 super-resolution with sub-pixel convolution (ESRGAN/EDSR style): (B, 3, h, w) in [-1, 1]
    -> (B, 3, 2h, 2w), a residual on top of nearest-neighbour upsampling. Its traces are the
    periodic 2x2 pattern of PixelShuffle, not the checkerboard of a transposed conv."""

    def __init__(self, width: int = 48, num_blocks: int = 6):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(num_blocks)])
        self.up = nn.Sequential(nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2))
        self.tail = nn.Conv2d(width, 3, 3, 1, 1)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        feat = self.head(low)
        feat = feat + self.body(feat)
        return F.interpolate(low, scale_factor=2, mode="nearest") + self.tail(self.up(feat))
