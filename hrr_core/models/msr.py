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

HRR v2 (issue #17, ``MSRConfig`` docstring and docs/method.md "HRR v2 options"; v1 at the
defaults): ``anchor: native`` keeps factor 1.0 as the stored image (no resampling, no noise),
resamples it for the other factors (noise only there) and cuts T windows per image
(``tiles``: center | grid | random), giving (T, K, C', S, S) per image (:func:`retrospect_each`);
``lines_into: diffusion`` adds the line map only to the LDM's input; ``line_normalise: false``
drops the per-image max normalisation of the line map.
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
    """[S]+[G] line map E of (B, C, H, W): unsharp mask x_sh = x + gamma (x - G_rho1 * x), then
    E = |G_rho2 * x_sh - G_rho3 * x_sh|, scaled so each image's maximum is 1 (a peak below 1e-3,
    i.e. a flat image, is not amplified); ``line_normalise: false`` keeps E at its own fixed
    scale, so a blurry image's lines stay weaker than a sharp one's."""
    x_sh = x + cfg.sharpen_gamma * (x - gaussian_blur(x, cfg.sharpen_rho))
    e = (gaussian_blur(x_sh, cfg.dog_rho_fine) - gaussian_blur(x_sh, cfg.dog_rho_coarse)).abs()
    if not cfg.line_normalise:
        return e
    peak = e.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)  # (B, 1, 1, 1)
    return e / peak


def _noise(x: torch.Tensor, cfg: MSRConfig, generator: torch.Generator | None) -> torch.Tensor:
    return cfg.noise_std * torch.randn(x.shape, generator=generator).to(x.device)


def _absolute_views(
    images: torch.Tensor | Sequence[torch.Tensor], cfg: MSRConfig, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``anchor: absolute`` (v1): (what the classifier sees, what the LDM re-renders), each
    (B, K, C, S, S); the same tensor unless ``lines_into: diffusion``."""
    squares = canonical_squares(images, cfg, generator)
    base = torch.cat([resize(sq, cfg.base_size) for sq in squares])  # (B, C, L, L)
    lines = edge_map(base, cfg) if cfg.line_enhancement else None  # (B, C, L, L)
    random = cfg.crop == "random"
    seen, rendered = [], []
    for side in scale_sides(cfg):
        x_s = torch.cat([resize(sq, side) for sq in squares])  # (B, C, L_s, L_s)
        if cfg.noise and cfg.noise_std > 0:
            x_s = x_s + _noise(x_s, cfg, generator)
        if lines is not None and cfg.lines_into == "diffusion":
            c = x_s.shape[1]
            both = torch.cat([x_s, x_s + cfg.line_beta * resize(lines, side)], dim=1)  # one window for both
            both = square_crop(both.clamp(0, 1), cfg.input_size, random, generator)  # (B, 2C, S, S)
            seen.append(both[:, :c])
            rendered.append(both[:, c:])
            continue
        if lines is not None:
            x_s = x_s + cfg.line_beta * resize(lines, side)
        x_s = square_crop(x_s.clamp(0, 1), cfg.input_size, random, generator)
        seen.append(x_s)  # (B, C, S, S)
        rendered.append(x_s)
    return torch.stack(seen, dim=1), torch.stack(rendered, dim=1)  # (B, K, C, S, S) each


# ---------------------------------------------------------------- anchor: native (HRR v2)


def native_size(h: int, w: int, factor: float) -> tuple[int, int]:
    """(H, W) of scale factor f of an H x W image: (round(H f), round(W f)); f = 1 is (H, W)."""
    return max(1, round(h * factor)), max(1, round(w * factor))


def resize_hw(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of (B, C, H, W) to (B, C, *size); the input itself when the
    size is already ``size`` (no resampling at all)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def grid_starts(length: int, side: int) -> list[int]:
    """Starts of ceil(length / side) windows of ``side`` pixels evenly spread over ``length``
    (first at 0, last at length - side): together they cover every pixel, overlapping as needed."""
    if length < side:
        raise ValueError(f"a window of {side} px does not fit in {length} px")
    n = -(-length // side)
    if n == 1:
        return [0]
    return [i * (length - side) // (n - 1) for i in range(n)]


def tile_windows(h: int, w: int, cfg: MSRConfig, generator: torch.Generator | None) -> list[tuple[int, int]]:
    """[G] (top, left) of each S x S window on the native H x W image (``msr.tiles``): one
    centred (random offset with ``crop: random``), a grid covering the image, or ``num_tiles``
    windows at offsets drawn from the generator."""
    side = cfg.input_size
    if cfg.tiles == "grid":
        return [(t, left) for t in grid_starts(h, side) for left in grid_starts(w, side)]
    if cfg.tiles == "random":
        return [(_offset(h - side, True, generator), _offset(w - side, True, generator)) for _ in range(cfg.num_tiles)]
    random = cfg.crop == "random"
    return [(_offset(h - side, random, generator), _offset(w - side, random, generator))]


def _window_at(x: torch.Tensor, top: int, left: int, factor: float, side: int) -> torch.Tensor:
    """The S x S window of scale image x (1, C, H_f, W_f) centred where the native window at
    (top, left) is centred, moved inside the image when it would leave it: (1, C, S, S)."""
    hf, wf = x.shape[-2:]
    t = min(max(round((top + side / 2) * factor - side / 2), 0), hf - side)
    le = min(max(round((left + side / 2) * factor - side / 2), 0), wf - side)
    return x[..., t : t + side, le : le + side]


def _native_views(
    images: torch.Tensor | Sequence[torch.Tensor], cfg: MSRConfig, generator: torch.Generator | None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``anchor: native`` [S]+[G]: per image, (what the classifier sees, what the LDM re-renders),
    each (T, K, C, S, S) with T windows (``msr.tiles``). Factor 1.0 is the stored image itself;
    the others are antialiased resamplings of it, and only they get noise; the line map E is
    computed on the native image and resized with it. The window grid is laid on the native
    image and every scale's window is centred on the same point (clamped inside that scale)."""
    side = cfg.input_size
    seen_all, rendered_all = [], []
    channels = set()
    for i, img in enumerate(images):
        _check_image(img, cfg, i)
        x = img.float().unsqueeze(0)  # (1, C, H, W) at its stored size
        channels.add(x.shape[1])
        h, w = x.shape[-2:]
        lines = edge_map(x, cfg) if cfg.line_enhancement else None  # (1, C, H, W)
        windows = tile_windows(h, w, cfg, generator)
        seen, rendered = [], []
        for factor in cfg.scale_factors:
            size = native_size(h, w, factor)
            x_s = resize_hw(x, size)  # the image itself at factor 1.0
            touched = size != (h, w) and cfg.noise and cfg.noise_std > 0
            if touched:  # [S] noise while resizing, i.e. only where resizing happened
                x_s = x_s + _noise(x_s, cfg, generator)
            x_l = None if lines is None else (x_s + cfg.line_beta * resize_hw(lines, size)).clamp(0, 1)
            if touched:
                x_s = x_s.clamp(0, 1)
            if x_l is not None and cfg.lines_into == "classifier":
                x_s = x_l
            x_r = x_s if x_l is None else x_l
            seen.append(torch.cat([_window_at(x_s, t, le, factor, side) for t, le in windows]))  # (T, C, S, S)
            rendered.append(torch.cat([_window_at(x_r, t, le, factor, side) for t, le in windows]))
        seen_all.append(torch.stack(seen, dim=1))  # (T, K, C, S, S)
        rendered_all.append(torch.stack(rendered, dim=1))
    if len(channels) > 1:
        raise ValueError(f"all images need the same number of channels, got {sorted(channels)}")
    return seen_all, rendered_all


def _stack_tiles(per_image: list[torch.Tensor], what: str) -> torch.Tensor:
    shapes = {tuple(t.shape) for t in per_image}
    if len(shapes) > 1:
        raise ValueError(
            f"{what}: images of different sizes give different numbers of tiles {sorted(s[0] for s in shapes)}; "
            "use retrospect_each (one tensor per image) or images of one size"
        )
    return torch.stack(per_image)  # (B, T, K, C', S, S)


def scale_hierarchy(
    images: torch.Tensor | Sequence[torch.Tensor], cfg: MSRConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """MSR steps 1-2: x~_s = clip(resize_s(x) + n_s + beta * resize_s(E)), cropped to S (what the
    classifier sees; without the line map under ``lines_into: diffusion``).

    images: (B, C, H, W) or a list of (C, H, W), any sizes, values in [0, 1].
    Returns (B, K, C, S, S), or (B, T, K, C, S, S) under ``anchor: native`` (images giving the
    same number T of tiles). Deterministic given the generator's state.
    """
    cfg = cfg.resolved()
    if cfg.anchor == "native":
        return _stack_tiles(_native_views(images, cfg, generator)[0], "scale_hierarchy")
    return _absolute_views(images, cfg, generator)[0]


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
    if cfg.anchor == "native":
        return _stack_tiles(retrospect_each(images, ldm, cfg, generator), "retrospect")  # (B, T, K, C', S, S)
    x_tilde, x_in = _absolute_views(images, cfg, generator)  # (B, K, C, S, S) each
    if not cfg.retrospection:
        return x_tilde
    _need_ldm(ldm)
    flat = x_in.flatten(0, 1)  # (B*K, C, S, S)
    x_hat = ldm.img2img(flat, cfg.strength, cfg.num_steps, generator).to(flat)  # (B*K, C, S, S)
    return represent(x_tilde, x_hat.view_as(x_tilde), cfg)  # (B, K, C', S, S)


def _need_ldm(ldm: Retrospector | None) -> None:
    if ldm is None:
        raise ValueError(
            "msr.retrospection is on but no LDM was given; pass a LatentDiffusion or set msr.retrospection: false"
        )


@torch.no_grad()
def retrospect_each(
    images: torch.Tensor | Sequence[torch.Tensor],
    ldm: Retrospector | None,
    cfg: MSRConfig,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """:func:`retrospect` as one tensor per image, what the cache stores: (K, C', S, S) under
    ``anchor: absolute``; (T, K, C', S, S) under ``anchor: native``, T = that image's tiles
    (all tiles of all images go through the LDM in one batch)."""
    cfg = cfg.resolved()
    if cfg.anchor != "native":
        return list(retrospect(images, ldm, cfg, generator).unbind(0))
    seen, rendered = _native_views(images, cfg, generator)  # per image (T, K, C, S, S)
    if not cfg.retrospection:
        return seen
    _need_ldm(ldm)
    counts = [t.shape[0] * t.shape[1] for t in rendered]
    flat = torch.cat([t.flatten(0, 1) for t in rendered])  # (sum T*K, C, S, S)
    x_hat = ldm.img2img(flat, cfg.strength, cfg.num_steps, generator).to(flat)
    return [represent(x, xh.view_as(x), cfg) for x, xh in zip(seen, x_hat.split(counts))]


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
