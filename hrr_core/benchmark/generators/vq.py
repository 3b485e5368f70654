"""The zoo's vector-quantised autoencoder (``vqgan`` family): an architecture that shares nothing
with the KL autoencoders and diffusion UNets of the other families.

Encoder: strided 4x4 convolutions and norm-free residual blocks (f = 2); two-stage residual
vector quantisation with diffusers' :class:`VectorQuantizer` (codebook ``codebook_size``);
decoder: bilinear upsampling + convolutions. Trained with L1 + FFT + the VQ commitment losses and
a hinge-GAN term (VQGAN, Esser et al. 2021). Images in [-1, 1] inside, [0, 1] outside.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import VectorQuantizer

from hrr_core.benchmark.generators.gan import ResBlock, fit_adversarial
from hrr_core.models.ldm import fft_loss, random_batch


class VQAutoencoder(nn.Module):
    def __init__(self, width: int = 64, embed_dim: int = 12, codebook_size: int = 512, num_blocks: int = 2):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 4, 2, 1),  # (B, w, H/2, W/2)
            *[ResBlock(width) for _ in range(num_blocks)],
            nn.Conv2d(width, embed_dim, 1),
        )
        self.quant = nn.ModuleList(
            [VectorQuantizer(codebook_size, embed_dim, beta=0.25, legacy=False) for _ in range(2)]
        )
        self.decoder_in = nn.Conv2d(embed_dim, width, 3, 1, 1)
        self.decoder_body = nn.Sequential(*[ResBlock(width) for _ in range(num_blocks)])
        self.decoder_out = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 3, 3, 1, 1)
        )

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-stage residual quantisation: (quantised z, commitment loss)."""
        q1, loss1, _ = self.quant[0](z)
        q2, loss2, _ = self.quant[1](z - q1.detach())
        return q1 + q2, loss1 + loss2

    def decode(self, q: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h = F.interpolate(self.decoder_in(q), size=size, mode="bilinear", align_corners=False)
        return self.decoder_out(self.decoder_body(h))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] (H, W even) -> (reconstruction, commitment loss)."""
        q, loss = self.quantise(self.encoder(x))
        return self.decode(q, tuple(x.shape[-2:])), loss


def vq_roundtrip(net: VQAutoencoder, x01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> reconstruction, same shape, [0, 1] (odd sides padded by reflection)."""
    h, w = x01.shape[-2:]
    x = F.pad(x01 * 2 - 1, (0, w % 2, 0, h % 2), mode="reflect")
    out, _ = net(x)
    return ((out[..., :h, :w] + 1) / 2).clamp(0, 1)


@torch.no_grad()
def init_codebooks(net: VQAutoencoder, x: torch.Tensor, generator: torch.Generator) -> None:
    """Start each codebook from encoder outputs of ``x`` (and their residuals), so no code starts dead."""
    z = net.encoder(x).permute(0, 2, 3, 1).reshape(-1, net.quant[0].vq_embed_dim)
    for quant in net.quant:
        n = quant.n_e
        idx = torch.randint(len(z), (n,), generator=generator).to(z.device)
        quant.embedding.weight.copy_(z[idx] + 1e-3 * torch.randn(n, z.shape[1], generator=generator).to(z.device))
        q, _, _ = quant(z.T.reshape(1, -1, len(z), 1))
        z = z - q.reshape(z.shape[1], -1).T


def train_vq(net: VQAutoencoder, adversary, images, cfg, device: torch.device, generator: torch.Generator) -> dict:
    net.to(device).train()
    init_codebooks(net, random_batch(images, 8 * cfg.batch_size, cfg.crop, generator).to(device) * 2 - 1, generator)

    def step_loss(x):
        fake, commit = net(x)
        return fake, (fake - x).abs().mean() + cfg.fft_weight * fft_loss(fake, x) + cfg.commit_weight * commit

    return fit_adversarial(net, step_loss, adversary, images, cfg, device, generator, "vq")
