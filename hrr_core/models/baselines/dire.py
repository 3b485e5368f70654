"""DIRE (Wang et al., "DIRE for Diffusion-Generated Image Detection", ICCV 2023; code:
ZhendongWang6/DIRE).

A diffusion model reconstructs its own kind of images better than photos: DDIM-invert x to
noise, DDIM-reconstruct it, and classify the DIffusion Reconstruction Error
DIRE(x) = |x - recon(x)| with an ImageNet-pretrained ResNet-50.

Faithful: deterministic DDIM (eta = 0) inversion to the last trained timestep and back, 20
steps by default (the paper's ``ddim20``), through a pixel-space diffusion model
(``LatentDiffusion`` with space=pixel, or a local diffusers checkpoint: the paper uses ADM's
unconditional 256 px LSUN-Bedroom / ImageNet models); the residual in [0, 1] units equals the
original's ``|x - recon| * 255 / 2`` on [-1, 1] images, optionally quantised to 8 bits as the
original saves DIRE images as PNG; the classifier is :class:`BinaryClassifier` (ResNet-50 with
``classifier.backbone = {name: resnet50, weights_path: ...}``) on the residual image.

Differs: offline the diffusion model is the project's small pixel model trained on the real
training photos (or any local checkpoint) instead of ADM, and the default classifier backbone
is EfficientNet-Lite0. The representation is computed once by the pipeline's retrospection
cache stage (shared with HRR) through :func:`dire_representation`; the classifier's inputs are
those cached residuals (B, 3, H, W) in [0, 1], H, W >= 32.
Caveat for real benchmarks (DIRE issue 11): reals JPEG, fakes PNG inflate DIRE's numbers;
report with and without format harmonisation.
"""

from __future__ import annotations

from typing import Protocol

import torch

from hrr_core.models.baselines.common import check_images, chunks
from hrr_core.models.classifier import BinaryClassifier
from hrr_core.schema.baselines import DIREConfig, DIREReprConfig  # noqa: F401 (config lives in the schema)


class Reconstructor(Protocol):
    """What DIRE needs of a diffusion model (``LatentDiffusion`` has it)."""

    def ddim_invert_reconstruct(self, x: torch.Tensor, num_steps: int, t_end: int | None = None) -> torch.Tensor: ...


@torch.no_grad()
def dire_representation(
    x: torch.Tensor,
    ldm: Reconstructor,
    num_steps: int = 20,
    t_end: int | None = None,
    quantize: bool = False,
    batch_size: int = 8,
) -> torch.Tensor:
    """DIRE(x) = |x - recon(x)|: images (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1], float32
    on x's device. recon = DDIM inversion + reconstruction (``ldm.ddim_invert_reconstruct``),
    computed in chunks of ``batch_size``; deterministic (bit-exact for a
    fixed batch_size; another batch_size changes float rounding, which DDIM
    amplifies by 1 / sqrt(alpha-bar) near T: ~1e-4 on an untrained model; cache with one
    batch_size). ``quantize`` rounds to multiples of 1/255."""
    check_images(x)
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)  # (B, 3, H, W)
    for sl in chunks(x.shape[0], batch_size):
        xb = x[sl].float()
        recon = ldm.ddim_invert_reconstruct(xb, num_steps=num_steps, t_end=t_end)  # (b, 3, H, W)
        if recon.shape != xb.shape:
            raise ValueError(f"the reconstruction has shape {tuple(recon.shape)}, expected {tuple(xb.shape)}")
        out[sl] = (xb - recon.to(xb.device, torch.float32)).abs()
    if quantize:
        out = torch.round(out * 255.0) / 255.0
    return out.clamp_(0.0, 1.0)


def dire_from_config(x: torch.Tensor, ldm: Reconstructor, cfg: DIREReprConfig) -> torch.Tensor:
    """:func:`dire_representation` with the settings of a :class:`DIREReprConfig`; with
    ``image_size`` the images are first resized (bilinear, antialiased) to that square size,
    as the original resizes to its diffusion model's 256 px."""
    if cfg.image_size is not None and tuple(x.shape[-2:]) != (cfg.image_size, cfg.image_size):
        x = torch.nn.functional.interpolate(
            x.float(), size=(cfg.image_size, cfg.image_size), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)  # (B, 3, S, S)
    return dire_representation(x, ldm, cfg.num_steps, cfg.t_end, cfg.quantize, cfg.batch_size)


def dire_images(images: list[torch.Tensor], ldm: Reconstructor, cfg: DIREReprConfig) -> list[torch.Tensor]:
    """:func:`dire_from_config` for a list of (3, H, W) images of mixed sizes: images of one
    size go through together (in input order), each residual comes back at its image's size
    (or at ``cfg.image_size`` when set)."""
    out: list[torch.Tensor | None] = [None] * len(images)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(images):
        by_size.setdefault(tuple(x.shape), []).append(i)
    for idx in by_size.values():
        residuals = dire_from_config(torch.stack([images[i] for i in idx]), ldm, cfg)  # (b, 3, H, W)
        for i, r in zip(idx, residuals.unbind(0)):
            out[i] = r
    return out


def build_dire(cfg: DIREConfig) -> BinaryClassifier:
    """DIRE's classifier: residual images (B, 3, H, W) in [0, 1] -> DetectorOutput logits (B,)."""
    return BinaryClassifier(cfg.classifier)
