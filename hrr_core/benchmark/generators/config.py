"""Configs of the generator zoo: one flat, frozen section per family, gathered in :class:`ZooConfig`.

Family sections are flat (no nested LDMConfig) so that a partial override in ``params.yaml``
keeps the family's own defaults; :meth:`ldm_config` turns one into an :class:`LDMConfig`.
Defaults are the ``default`` profile (about 10 min on a 2-core CPU for all five families,
training + ~1,200 fakes); :func:`smoke_zoo` gives the tiny profile for tests and smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hrr_core.confutil import check
from hrr_core.models.ldm import LDMConfig

FAMILIES = ("vae", "ldm_img2img", "pixel_ddpm", "gan_upsampler", "ldm_sample")


def _check_common(cfg) -> None:
    for key in ("steps", "batch_size", "crop", "gen_batch_size"):
        if hasattr(cfg, key):
            check(getattr(cfg, key) >= (0 if key == "steps" else 1), key, ">= 0" if key == "steps" else ">= 1", getattr(cfg, key))
    if hasattr(cfg, "lr"):
        check(0 < cfg.lr < 1, "lr", "in (0, 1)", cfg.lr)
    for key in ("adv_weight", "l1_weight", "fft_weight", "kl_weight"):
        if hasattr(cfg, key):
            check(getattr(cfg, key) >= 0, key, ">= 0", getattr(cfg, key))
    if hasattr(cfg, "adv_start"):
        check(cfg.adv_start >= 0, "adv_start", ">= 0", cfg.adv_start)
    if hasattr(cfg, "strength"):
        check(0 < cfg.strength <= 1, "strength", "in (0, 1]", cfg.strength)
    if hasattr(cfg, "ddim_steps"):
        check(cfg.ddim_steps >= 1, "ddim_steps", ">= 1", cfg.ddim_steps)


@dataclass(frozen=True)
class VAEFamilyConfig:
    """``vae``: reconstructions through a small AutoencoderKL (f = 2 ** (len(channels) - 1))."""

    seed: int = 11
    block_out_channels: tuple[int, ...] = (32, 64)
    latent_channels: int = 8
    layers_per_block: int = 1
    norm_num_groups: int = 8
    steps: int = 400
    batch_size: int = 16
    crop: int = 32  # training crops; the nets are convolutional and run at any size
    lr: float = 1e-3
    l1_weight: float = 1.0
    fft_weight: float = 0.1
    kl_weight: float = 1e-6
    adv_weight: float = 0.05  # short hinge-GAN term against a patch discriminator
    adv_start: int = 200
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)

    def ldm_config(self) -> LDMConfig:
        return LDMConfig(space="latent", norm_num_groups=self.norm_num_groups, vae_block_out_channels=self.block_out_channels,
                         vae_latent_channels=self.latent_channels, vae_layers_per_block=self.layers_per_block,
                         unet_block_out_channels=(self.norm_num_groups,), train_crop=self.crop, vae_steps=self.steps,
                         vae_batch_size=self.batch_size, vae_lr=self.lr, vae_kl_weight=self.kl_weight,
                         vae_l1_weight=self.l1_weight, vae_fft_weight=self.fft_weight, unet_steps=0, seed=self.seed)


@dataclass(frozen=True)
class LatentLDMFamilyConfig:
    """``ldm_img2img`` (SDEdit in latent space); its model is shared with ``ldm_sample``, so it is
    trained on all timesteps."""

    seed: int = 22
    vae_block_out_channels: tuple[int, ...] = (32, 64, 64)
    latent_channels: int = 4
    unet_block_out_channels: tuple[int, ...] = (32, 64, 64)
    unet_attention: bool = False
    norm_num_groups: int = 8
    crop: int = 32
    vae_steps: int = 400
    unet_steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    l1_weight: float = 1.0
    fft_weight: float = 0.1
    kl_weight: float = 1e-6
    adv_weight: float = 0.05
    adv_start: int = 200
    strength: float = 0.3
    ddim_steps: int = 3
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)

    def ldm_config(self) -> LDMConfig:
        return LDMConfig(space="latent", norm_num_groups=self.norm_num_groups, vae_block_out_channels=self.vae_block_out_channels,
                         vae_latent_channels=self.latent_channels, unet_block_out_channels=self.unet_block_out_channels,
                         unet_attention=self.unet_attention, train_crop=self.crop, vae_steps=self.vae_steps,
                         vae_batch_size=self.batch_size, vae_lr=self.lr, vae_kl_weight=self.kl_weight,
                         vae_l1_weight=self.l1_weight, vae_fft_weight=self.fft_weight, unet_steps=self.unet_steps,
                         unet_batch_size=self.batch_size, unet_lr=self.lr, seed=self.seed)


@dataclass(frozen=True)
class PixelDDPMFamilyConfig:
    """``pixel_ddpm``: SDEdit in pixel space; trained only on t < max_train_timestep."""

    seed: int = 33
    unet_block_out_channels: tuple[int, ...] = (32, 64, 64)
    norm_num_groups: int = 8
    max_train_timestep: int = 300
    crop: int = 32
    steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    strength: float = 0.15
    ddim_steps: int = 3
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        check(self.strength * 1000 < self.max_train_timestep, "strength",
              f"< max_train_timestep / 1000 = {self.max_train_timestep / 1000}", self.strength)

    def ldm_config(self) -> LDMConfig:
        return LDMConfig(space="pixel", norm_num_groups=self.norm_num_groups, unet_block_out_channels=self.unet_block_out_channels,
                         max_train_timestep=self.max_train_timestep, train_crop=self.crop, vae_steps=0,
                         unet_steps=self.steps, unet_batch_size=self.batch_size, unet_lr=self.lr, seed=self.seed)


@dataclass(frozen=True)
class GANUpsamplerFamilyConfig:
    """``gan_upsampler``: x0.5 downsampling then a x2 transposed-conv super-resolution generator,
    trained with L1 + a hinge-GAN term against a patch discriminator."""

    seed: int = 44
    width: int = 48
    num_blocks: int = 4
    disc_width: int = 32
    crop: int = 32
    steps: int = 1000
    batch_size: int = 16
    lr: float = 5e-4
    l1_weight: float = 1.0
    fft_weight: float = 0.1
    adv_weight: float = 0.02
    adv_start: int = 400
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        check(self.width >= 4, "width", ">= 4", self.width)
        check(self.num_blocks >= 0, "num_blocks", ">= 0", self.num_blocks)
        check(self.crop % 2 == 0, "crop", "an even number", self.crop)


@dataclass(frozen=True)
class LDMSampleFamilyConfig:
    """``ldm_sample``: unconditional samples of the ``ldm_img2img`` model (shared, trained once)."""

    seed: int = 55
    ddim_steps: int = 10
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class ZooConfig:
    vae: VAEFamilyConfig = field(default_factory=VAEFamilyConfig)
    ldm_img2img: LatentLDMFamilyConfig = field(default_factory=LatentLDMFamilyConfig)
    pixel_ddpm: PixelDDPMFamilyConfig = field(default_factory=PixelDDPMFamilyConfig)
    gan_upsampler: GANUpsamplerFamilyConfig = field(default_factory=GANUpsamplerFamilyConfig)
    ldm_sample: LDMSampleFamilyConfig = field(default_factory=LDMSampleFamilyConfig)


def smoke_zoo() -> ZooConfig:
    """Tiny nets, a few steps: all five families fit and generate in seconds (tests, smoke profile)."""
    small = dict(norm_num_groups=4, crop=16, batch_size=4, gen_batch_size=16)
    return ZooConfig(
        vae=replace(VAEFamilyConfig(), block_out_channels=(8, 8), latent_channels=4, steps=3, adv_start=1, **small),
        ldm_img2img=replace(LatentLDMFamilyConfig(), vae_block_out_channels=(8, 8), unet_block_out_channels=(8, 8),
                            vae_steps=3, unet_steps=3, adv_start=1, ddim_steps=2, **small),
        pixel_ddpm=replace(PixelDDPMFamilyConfig(), unet_block_out_channels=(8, 8), steps=3, ddim_steps=2, **small),
        gan_upsampler=replace(GANUpsamplerFamilyConfig(), width=8, num_blocks=1, disc_width=8, steps=3, adv_start=1,
                              crop=16, batch_size=4, gen_batch_size=16),
        ldm_sample=replace(LDMSampleFamilyConfig(), ddim_steps=2, gen_batch_size=16),
    )
