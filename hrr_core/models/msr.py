"""Multi-Scale Style Retrospection (MSR): the expensive, frozen half of HRR.

For every image x, MSR builds a hierarchy of K scales, enhances lines, re-renders each scale with
a frozen latent diffusion model and returns a per-scale representation r_s, one tensor
(B, K, C', S, S). It runs once, as its own cached stage (:func:`retrospect`); the trainable half
(:class:`hrr_core.models.hrr.HRRDetector`) reads the cache.

Provenance: [S] noise while resizing, Gaussian-kernel line enhancement of a sharpened image,
re-rendering through a latent diffusion model; [G] everything concrete below (K, sizes, the
img2img form of retrospection, the DIRE-like residual, crops, the size policy).

Size policy [G] (any H x W goes in, nothing is padded):
  1. take the centre square of side min(H, W) (``crop="random"``: a square at a random offset
     along the long side, drawn from the generator);
  2. for scale s resize that square, antialiased, to side L_s = round(base_size * f_s);
  3. add Gaussian noise N(0, sigma_n^2) and the line map, clip to [0, 1];
  4. crop S = ``input_size`` from every scale (centre, or random offset with ``crop="random"``).
  A crop of a resized image of the short side covers only the centre square, so step 1 loses
  nothing a scale could see. The short side must be at least ``minimum_input_size(cfg)`` =
  ceil(base_size / max_upscale): smaller images would be upsampled from almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F

from hrr_core.schema.models import MSRConfig, minimum_input_size, representation_channels, scale_sides  # noqa: F401 (config lives in the schema)


class Retrospector(Protocol):
    """What MSR needs from the frozen LDM (:class:`hrr_core.models.ldm.LatentDiffusion`)."""

    def img2img(
        self, x: torch.Tensor, strength: float, num_steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


# ---------------------------------------------------------------- small pieces: blur, resize, crop


def gaussian_blur(x: torch.Tensor, rho: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with std ``rho`` pixels, reflect padding."""
    radius = max(1, math.ceil(3 * rho))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * rho**2))
    k = k / k.sum()
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)  # (B, C, H + 2r, W + 2r)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # (B, C, H + 2r, W)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # (B, C, H, W)


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """Antialiased bilinear resize of (B, C, H, W) to (B, C, side, side)."""
    if x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


def _offset(span: int, random: bool, generator: torch.Generator | None) -> int:
    """Start of a window in a span of ``span`` extra pixels: centre, or uniform from the generator."""
    if span <= 0:
        return 0
    if random:
        return int(torch.randint(0, span + 1, (1,), generator=generator))
    return span // 2


def square_crop(img: torch.Tensor, side: int, random: bool, generator: torch.Generator | None) -> torch.Tensor:
    """(C, H, W) or (B, C, H, W) -> the same with H = W = ``side`` (centre or random window)."""
    h, w = img.shape[-2:]
    top = _offset(h - side, random, generator)
    left = _offset(w - side, random, generator)
    return img[..., top : top + side, left : left + side]


# ---------------------------------------------------------------- MSR steps 1-3


def _check_image(img: torch.Tensor, cfg: MSRConfig, i: int) -> None:
    if img.ndim != 3:
        raise ValueError(f"image {i} must be (C, H, W), got shape {tuple(img.shape)}")
    short, minimum = min(img.shape[-2:]), minimum_input_size(cfg)
    if short < minimum:
        raise ValueError(
            f"image {i} is {img.shape[-2]}x{img.shape[-1]}; MSR needs a short side of at least "
            f"{minimum} pixels (base_size {cfg.base_size} / max_upscale {cfg.max_upscale}); "
            "use larger images, a smaller msr.base_size or a larger msr.max_upscale"
        )
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"image {i} has values in [{lo:.3f}, {hi:.3f}]; MSR expects [0, 1] floats (divide uint8 by 255)"
        )


def canonical_squares(
    images: torch.Tensor | Sequence[torch.Tensor], cfg: MSRConfig, generator: torch.Generator | None
) -> list[torch.Tensor]:
    """Size policy step 1: each image's square of its short side, a list of (1, C, s, s)."""
    out = []
    for i, img in enumerate(images):
        _check_image(img, cfg, i)
        sq = square_crop(img.float(), min(img.shape[-2:]), cfg.crop == "random", generator)
        out.append(sq.unsqueeze(0))  # (1, C, s, s)
    channels = {sq.shape[1] for sq in out}
    if len(channels) != 1:
        raise ValueError(f"all images need the same number of channels, got {sorted(channels)}")
    return out


def edge_map(x: torch.Tensor, cfg: MSRConfig) -> torch.Tensor:
    """[S]+[G] line map E of (B, C, H, W) in [0, 1]: unsharp mask
    x_sh = x + gamma (x - G_rho1 * x), then E = |G_rho2 * x_sh - G_rho3 * x_sh| scaled so each
    image's maximum is 1 (a peak below 1e-3, i.e. a flat image, is not amplified)."""
    x_sh = x + cfg.sharpen_gamma * (x - gaussian_blur(x, cfg.sharpen_rho))
    e = (gaussian_blur(x_sh, cfg.dog_rho_fine) - gaussian_blur(x_sh, cfg.dog_rho_coarse)).abs()
    peak = e.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)  # (B, 1, 1, 1)
    return e / peak


def scale_hierarchy(
    images: torch.Tensor | Sequence[torch.Tensor], cfg: MSRConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """MSR steps 1-2: x~_s = clip(resize_s(x) + n_s + beta * resize_s(E)), cropped to S.

    images: (B, C, H, W) or a list of (C, H, W), any sizes, values in [0, 1].
    Returns (B, K, C, S, S). Deterministic given the generator's state.
    """
    cfg = cfg.resolved()
    squares = canonical_squares(images, cfg, generator)
    base = torch.cat([resize(sq, cfg.base_size) for sq in squares])  # (B, C, L, L)
    lines = edge_map(base, cfg) if cfg.line_enhancement else None  # (B, C, L, L)
    scales = []
    for side in scale_sides(cfg):
        x_s = torch.cat([resize(sq, side) for sq in squares])  # (B, C, L_s, L_s)
        if cfg.noise and cfg.noise_std > 0:
            x_s = x_s + cfg.noise_std * torch.randn(x_s.shape, generator=generator).to(x_s.device)
        if lines is not None:
            x_s = x_s + cfg.line_beta * resize(lines, side)
        x_s = square_crop(x_s.clamp(0, 1), cfg.input_size, cfg.crop == "random", generator)
        scales.append(x_s)  # (B, C, S, S)
    return torch.stack(scales, dim=1)  # (B, K, C, S, S)


def represent(x_tilde: torch.Tensor, x_hat: torch.Tensor | None, cfg: MSRConfig) -> torch.Tensor:
    """[G] r_s from x~_s (B, K, C, S, S) and its re-rendering x^_s (same shape, or None when
    retrospection is off, then r_s = x~_s). Returns (B, K, C', S, S). ``residual+image`` puts
    x~_s first and the residual after (the backbones' convention: RGB, then difference channels)."""
    if x_hat is None:
        return x_tilde
    if cfg.representation == "residual":
        return (x_tilde - x_hat).abs()
    if cfg.representation == "recon":
        return x_hat
    return torch.cat([x_tilde, (x_tilde - x_hat).abs()], dim=2)  # (B, K, 2C, S, S), image first


@torch.no_grad()
def retrospect(
    images: torch.Tensor | Sequence[torch.Tensor],
    ldm: Retrospector | None,
    cfg: MSRConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The whole of MSR, what the cache stage calls: images (any sizes, [0, 1]) -> r (B, K, C', S, S).

    [S] x^_s = LDM re-rendering of x~_s; [G] ``ldm.img2img(x~_s, strength, num_steps, generator)``
    on all B*K crops in one batch. ``ldm`` may be None only when retrospection is off.
    Deterministic given the generator's state (outputs depend on the batch's order and size,
    because one generator draws the noise of every image in turn).
    """
    cfg = cfg.resolved()
    x_tilde = scale_hierarchy(images, cfg, generator)  # (B, K, C, S, S)
    if not cfg.retrospection:
        return x_tilde
    if ldm is None:
        raise ValueError(
            "msr.retrospection is on but no LDM was given; pass a LatentDiffusion or set msr.retrospection: false"
        )
    b, k = x_tilde.shape[:2]
    flat = x_tilde.flatten(0, 1)  # (B*K, C, S, S)
    x_hat = ldm.img2img(flat, cfg.strength, cfg.num_steps, generator).to(flat)  # (B*K, C, S, S)
    return represent(x_tilde, x_hat.view_as(x_tilde), cfg)  # (B, K, C', S, S)


class MultiScaleStyleRetrospection(torch.nn.Module):
    """MSR as a module holding its config and its frozen LDM; ``forward`` = :func:`retrospect`."""

    def __init__(self, cfg: MSRConfig, ldm: Retrospector | None = None):
        super().__init__()
        if cfg.resolved().retrospection and ldm is None:
            raise ValueError("msr.retrospection is on but no LDM was given; pass one or set msr.retrospection: false")
        self.cfg = cfg
        self.ldm = ldm
        if isinstance(ldm, torch.nn.Module):
            ldm.requires_grad_(False).eval()

    @property
    def out_channels(self) -> int:
        return representation_channels(self.cfg)

    def forward(
        self, images: torch.Tensor | Sequence[torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """images -> (B, K, C', S, S)."""
        return retrospect(images, self.ldm, self.cfg, generator)
