"""Configs of the generator zoo: one frozen section per family, gathered in :class:`ZooConfig`.

The three diffusion-backed families (``vae``, ``ldm_img2img``, ``pixel_ddpm``) nest the
:class:`LDMConfig` their model is built and trained from (``ldm:``), next to the family's own
generation settings. Each family's ``ldm`` default is its own recipe (seed, space, budget), and
:func:`hrr_core.confutil.from_dict` starts a partial ``ldm:`` override from that default.
Defaults are the ``default`` profile (about 10 min on a 2-core CPU for all five families,
training + ~1,200 fakes); :func:`smoke_zoo` gives the tiny profile for tests and smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hrr_core.confutil import check
from hrr_core.schema.models import LDMConfig

FAMILIES = ("vae", "ldm_img2img", "pixel_ddpm", "gan_upsampler", "ldm_sample", "ldm_inpaint", "gan_sr", "vqgan")
# Families whose fakes come from another family's model: training on either one has seen that
# model, so neither is held out for a detector trained on the other (hrr_core.evaluation.heldout).
SHARED_MODEL = {"ldm_sample": "ldm_img2img", "ldm_inpaint": "ldm_img2img"}


def _check_common(cfg) -> None:
    for key in ("steps", "batch_size", "crop", "gen_batch_size"):
        if hasattr(cfg, key):
            check(
                getattr(cfg, key) >= (0 if key == "steps" else 1),
                key,
                ">= 0" if key == "steps" else ">= 1",
                getattr(cfg, key),
            )
    if hasattr(cfg, "lr"):
        check(0 < cfg.lr < 1, "lr", "in (0, 1)", cfg.lr)
    for key in ("adv_weight", "l1_weight", "fft_weight", "kl_weight", "commit_weight"):
        if hasattr(cfg, key):
            check(getattr(cfg, key) >= 0, key, ">= 0", getattr(cfg, key))
    if hasattr(cfg, "adv_start"):
        check(cfg.adv_start >= 0, "adv_start", ">= 0", cfg.adv_start)
    if hasattr(cfg, "strength"):
        check(0 < cfg.strength <= 1, "strength", "in (0, 1]", cfg.strength)
    if hasattr(cfg, "ddim_steps"):
        check(cfg.ddim_steps >= 1, "ddim_steps", ">= 1", cfg.ddim_steps)


def _check_space(ldm: LDMConfig, space: str, family: str) -> None:
    check(ldm.space == space, "ldm.space", f"{space!r} (the {family} family's model)", ldm.space)


@dataclass(frozen=True)
class VAEFamilyConfig:
    """``vae``: reconstructions through a small AutoencoderKL (f = 2 ** (len(vae_block_out_channels) - 1));
    ``ldm.vae_*`` and ``ldm.train_crop`` drive its training, no denoiser is trained (``ldm.unet_steps: 0``)."""

    ldm: LDMConfig = field(
        default_factory=lambda: LDMConfig(
            space="latent",
            vae_block_out_channels=(32, 64),
            vae_latent_channels=8,
            unet_block_out_channels=(8,),
            train_crop=32,
            vae_steps=400,
            unet_steps=0,
            seed=11,
        )
    )
    adv_weight: float = 0.05  # short hinge-GAN term against a patch discriminator
    adv_start: int = 200
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        _check_space(self.ldm, "latent", "vae")
        check(self.ldm.unet_steps == 0, "ldm.unet_steps", "0 (the vae family trains no denoiser)", self.ldm.unet_steps)


@dataclass(frozen=True)
class LatentLDMFamilyConfig:
    """``ldm_img2img`` (SDEdit in latent space); its model is shared with ``ldm_sample``, so it is
    trained on all timesteps."""

    ldm: LDMConfig = field(
        default_factory=lambda: LDMConfig(
            space="latent",
            vae_block_out_channels=(32, 64, 64),
            vae_latent_channels=4,
            unet_block_out_channels=(32, 64, 64),
            train_crop=32,
            vae_steps=400,
            unet_steps=600,
            seed=22,
        )
    )
    adv_weight: float = 0.05
    adv_start: int = 200
    strength: float = 0.3
    ddim_steps: int = 3
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        _check_space(self.ldm, "latent", "ldm_img2img")


@dataclass(frozen=True)
class PixelDDPMFamilyConfig:
    """``pixel_ddpm``: SDEdit in pixel space; trained only on t < ``ldm.max_train_timestep``."""

    ldm: LDMConfig = field(
        default_factory=lambda: LDMConfig(
            space="pixel",
            unet_block_out_channels=(32, 64, 64),
            max_train_timestep=300,
            train_crop=32,
            vae_steps=0,
            unet_steps=400,
            seed=33,
        )
    )
    strength: float = 0.15
    ddim_steps: int = 3
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        _check_space(self.ldm, "pixel", "pixel_ddpm")
        check(
            self.strength * self.ldm.num_train_timesteps < self.ldm.max_train_timestep,
            "strength",
            f"< ldm.max_train_timestep / ldm.num_train_timesteps = "
            f"{self.ldm.max_train_timestep / self.ldm.num_train_timesteps}",
            self.strength,
        )


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
class LDMInpaintFamilyConfig:
    """``ldm_inpaint``: a random rectangle (each side ``mask_min``..``mask_max`` of the image's)
    regenerated through the ``ldm_img2img`` model (shared, trained once) at ``strength``; the
    pixels outside it are the real ones, pasted back as inpainting pipelines do."""

    seed: int = 66
    strength: float = 0.2
    ddim_steps: int = 5
    mask_min: float = 0.3
    mask_max: float = 0.6
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        check(0 < self.mask_min <= self.mask_max <= 1, "mask_min", "0 < mask_min <= mask_max <= 1", self.mask_min)


@dataclass(frozen=True)
class GANSRFamilyConfig(GANUpsamplerFamilyConfig):
    """``gan_sr``: x0.5 downsampling then a x2 sub-pixel-convolution (PixelShuffle) super-resolver,
    trained with L1 + FFT + a hinge-GAN term (ESRGAN-style upscaler traces). The same fields and
    checks as ``gan_upsampler``'s (another generator architecture); its own seed and depth."""

    seed: int = 77
    num_blocks: int = 6


@dataclass(frozen=True)
class VQFamilyConfig:
    """``vqgan``: a norm-free conv autoencoder (f = 2) with two-stage residual vector quantisation,
    trained VQGAN-style (hrr_core.benchmark.generators.vq)."""

    seed: int = 88
    width: int = 48
    embed_dim: int = 12
    codebook_size: int = 512
    num_blocks: int = 2
    disc_width: int = 32
    crop: int = 32
    steps: int = 1000
    batch_size: int = 16
    lr: float = 5e-4
    fft_weight: float = 0.1
    commit_weight: float = 1.0
    adv_weight: float = 0.05
    adv_start: int = 400
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        _check_common(self)
        for key in ("width", "embed_dim", "codebook_size"):
            check(getattr(self, key) >= 2, key, ">= 2", getattr(self, key))
        check(self.num_blocks >= 0, "num_blocks", ">= 0", self.num_blocks)


@dataclass(frozen=True)
class ZooConfig:
    vae: VAEFamilyConfig = field(default_factory=VAEFamilyConfig)
    ldm_img2img: LatentLDMFamilyConfig = field(default_factory=LatentLDMFamilyConfig)
    pixel_ddpm: PixelDDPMFamilyConfig = field(default_factory=PixelDDPMFamilyConfig)
    gan_upsampler: GANUpsamplerFamilyConfig = field(default_factory=GANUpsamplerFamilyConfig)
    ldm_sample: LDMSampleFamilyConfig = field(default_factory=LDMSampleFamilyConfig)
    ldm_inpaint: LDMInpaintFamilyConfig = field(default_factory=LDMInpaintFamilyConfig)
    gan_sr: GANSRFamilyConfig = field(default_factory=GANSRFamilyConfig)
    vqgan: VQFamilyConfig = field(default_factory=VQFamilyConfig)


def smoke_zoo() -> ZooConfig:
    """Tiny nets, a few steps: every family fits and generates in seconds (tests, smoke profile)."""
    small = dict(norm_num_groups=4, train_crop=16)
    toy_gan = dict(width=8, num_blocks=1, disc_width=8, steps=3, adv_start=1, crop=16, batch_size=4, gen_batch_size=16)
    zoo = ZooConfig()
    return ZooConfig(
        vae=replace(
            zoo.vae,
            ldm=replace(
                zoo.vae.ldm,
                vae_block_out_channels=(8, 8),
                vae_latent_channels=4,
                unet_block_out_channels=(4,),
                vae_steps=3,
                vae_batch_size=4,
                **small,
            ),
            adv_start=1,
            gen_batch_size=16,
        ),
        ldm_img2img=replace(
            zoo.ldm_img2img,
            ldm=replace(
                zoo.ldm_img2img.ldm,
                vae_block_out_channels=(8, 8),
                unet_block_out_channels=(8, 8),
                vae_steps=3,
                unet_steps=3,
                vae_batch_size=4,
                unet_batch_size=4,
                **small,
            ),
            adv_start=1,
            ddim_steps=2,
            gen_batch_size=16,
        ),
        pixel_ddpm=replace(
            zoo.pixel_ddpm,
            ldm=replace(zoo.pixel_ddpm.ldm, unet_block_out_channels=(8, 8), unet_steps=3, unet_batch_size=4, **small),
            ddim_steps=2,
            gen_batch_size=16,
        ),
        gan_upsampler=replace(zoo.gan_upsampler, **toy_gan),
        ldm_sample=replace(zoo.ldm_sample, ddim_steps=2, gen_batch_size=16),
        ldm_inpaint=replace(zoo.ldm_inpaint, ddim_steps=2, gen_batch_size=16),
        gan_sr=replace(zoo.gan_sr, **toy_gan),
        vqgan=replace(zoo.vqgan, embed_dim=4, codebook_size=16, **toy_gan),
    )
