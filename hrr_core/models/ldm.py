"""A small-diffusion toolkit shared by the benchmark's generators, HRR's retrospection and DIRE.

One holder, :class:`LatentDiffusion`, wraps a diffusers ``AutoencoderKL`` (or none, for pixel
space), a ``UNet2DModel`` (or a pretrained ``UNet2DConditionModel``) and a ``DDIMScheduler``.
It offers SDEdit-style regeneration (``img2img``, Meng et al. 2022), unconditional ``sample``
and DIRE-style DDIM inversion + reconstruction (Wang et al. 2023). Inputs and outputs are
images in [0, 1] of any size; internally [-1, 1], padded (reflect) to the multiple the
networks need and cropped back.

The DDIM update (Song et al. 2021, eq. 12 with sigma = 0) is written out once in
:meth:`LatentDiffusion._ddim_walk` from the scheduler's ``alphas_cumprod``; it runs both ways
(denoising and inversion) over arbitrary timestep lists, which ``DDIMScheduler.step`` (fixed
stride ``T // num_inference_steps``) cannot do for a partial start t* = strength * T.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel, UNet2DModel

from hrr_core.confutil import from_dict, to_dict
from hrr_core.io import atomic_write_json
from hrr_core.paths import resolve
from hrr_core.schema.models import LDMConfig  # noqa: F401 (config lives in the schema)

Images = torch.Tensor | Sequence[torch.Tensor]  # (N, 3, H, W) or a list of (3, H_i, W_i)


# ---------------------------------------------------------------- builders


def build_vae(cfg: LDMConfig) -> AutoencoderKL:
    n = len(cfg.vae_block_out_channels)
    return AutoencoderKL(
        in_channels=cfg.image_channels,
        out_channels=cfg.image_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.vae_block_out_channels,
        layers_per_block=cfg.vae_layers_per_block,
        latent_channels=cfg.vae_latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=cfg.train_crop,
        scaling_factor=1.0,
        mid_block_add_attention=cfg.vae_mid_attention,
    )


def build_unet(cfg: LDMConfig, in_channels: int) -> UNet2DModel:
    n = len(cfg.unet_block_out_channels)
    attn = cfg.unet_attention
    down = ("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D" if attn else "DownBlock2D",)
    up = ("AttnUpBlock2D" if attn else "UpBlock2D",) + ("UpBlock2D",) * (n - 1)
    return UNet2DModel(
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=cfg.unet_block_out_channels,
        layers_per_block=cfg.unet_layers_per_block,
        norm_num_groups=cfg.norm_num_groups,
        add_attention=attn,
        attention_head_dim=8,
    )


def make_scheduler(cfg: LDMConfig) -> DDIMScheduler:
    return DDIMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        clip_sample=False,
        set_alpha_to_one=True,
    )


# ---------------------------------------------------------------- training helpers


def random_batch(images: Images, batch: int, crop: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, C, crop, crop) random crops with random horizontal flips, from a tensor or a list
    of differently sized images (each at least ``crop`` on both sides)."""
    idx = torch.randint(len(images), (batch,), generator=generator).tolist()
    out = []
    for i in idx:
        img = images[i]  # (C, H, W)
        h, w = img.shape[-2:]
        if h < crop or w < crop:
            raise ValueError(f"training image {i} is {h}x{w}, smaller than train_crop={crop}; lower train_crop")
        y = int(torch.randint(h - crop + 1, (1,), generator=generator))
        x = int(torch.randint(w - crop + 1, (1,), generator=generator))
        patch = img[:, y : y + crop, x : x + crop]
        if bool(torch.rand((), generator=generator) < 0.5):
            patch = patch.flip(-1)
        out.append(patch)
    return torch.stack(out).float()  # (B, C, crop, crop)


def fft_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 between log-amplitude spectra (a cheap focal-frequency-style term)."""
    a = torch.fft.rfft2(x_hat.float(), norm="ortho").abs()
    b = torch.fft.rfft2(x.float(), norm="ortho").abs()
    return (torch.log1p(a) - torch.log1p(b)).abs().mean()


def vae_recon_loss(x_hat: torch.Tensor, x: torch.Tensor, cfg: LDMConfig) -> torch.Tensor:
    """L1 (weight ``vae_l1_weight``; plain MSE when that is 0) + ``vae_fft_weight`` * FFT loss."""
    pix = cfg.vae_l1_weight * (x_hat - x).abs().mean() if cfg.vae_l1_weight > 0 else F.mse_loss(x_hat, x)
    return pix + cfg.vae_fft_weight * fft_loss(x_hat, x) if cfg.vae_fft_weight > 0 else pix


LOG = logging.getLogger("hrr_core.train")


def log_progress(what: str, step: int, total: int, loss: float, t0: float) -> None:
    """A line on ``hrr_core.train`` about 20 times per run: step, loss, elapsed and remaining time."""
    if total >= 20 and (step + 1) % max(1, total // 20) and step + 1 != total:
        return
    elapsed = time.perf_counter() - t0
    eta = elapsed / (step + 1) * (total - step - 1)
    LOG.info("%s step %d/%d loss %.4f (%.0fs, ~%.0fs left)", what, step + 1, total, loss, elapsed, eta)


def _history_stats(losses: list[float], seconds: float) -> dict:
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "steps": len(losses),
        "seconds": round(seconds, 2),
        "loss_first": losses[0] if losses else float("nan"),
        "loss_final": sum(tail) / len(tail) if tail else float("nan"),
    }


def optimise_with_adversary(
    opt: torch.optim.Optimizer, loss: torch.Tensor, adversary, step: int, real: torch.Tensor, fake: torch.Tensor
) -> float | None:
    """One generator step: from ``adversary.start`` on, add ``adversary.weight`` times its
    generator loss, step ``opt``, then give the discriminator its step; returns the
    discriminator's loss, or None when the adversary is off (None, weight 0, or too early)."""
    use_adv = adversary is not None and adversary.weight > 0 and step >= adversary.start
    if use_adv:
        loss = loss + adversary.weight * adversary.generator_loss(fake)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return adversary.discriminator_step(real, fake.detach()) if use_adv else None


def train_vae(
    vae: AutoencoderKL, images: Images, cfg: LDMConfig, device: torch.device, generator: torch.Generator, adversary=None
) -> dict:
    """Train ``vae`` on random crops of ``images`` (in [0, 1]) with L1 (or MSE) + FFT + KL, then
    set ``vae.config.scaling_factor`` to 1 / std of the training latents (unit-variance latents).

    ``adversary`` (optional; e.g. ``hrr_core.benchmark.generators.gan.Adversary``) has ``weight``,
    ``start``, ``generator_loss(fake)`` and ``discriminator_step(real, fake)``: from step ``start``
    on, ``weight * generator_loss`` joins the loss and the discriminator takes one step per step.
    """
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    losses, disc_losses, t0 = [], [], time.perf_counter()
    for step in range(cfg.vae_steps):
        x = random_batch(images, cfg.vae_batch_size, cfg.train_crop, generator).to(device) * 2 - 1
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=generator).to(device)
        x_hat = vae.decode(z).sample
        loss = vae_recon_loss(x_hat, x, cfg) + cfg.vae_kl_weight * post.kl().mean()
        losses.append(float(loss.detach()))
        log_progress("vae", step, cfg.vae_steps, losses[-1], t0)
        disc = optimise_with_adversary(opt, loss, adversary, step, x, x_hat)
        if disc is not None:
            disc_losses.append(disc)
    vae.eval()
    with torch.no_grad():
        x = random_batch(images, min(64, 4 * cfg.vae_batch_size), cfg.train_crop, generator).to(device) * 2 - 1
        std = float(vae.encode(x).latent_dist.mode().std())
    vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
    stats = _history_stats(losses, time.perf_counter() - t0)
    stats["scaling_factor"] = vae.config.scaling_factor
    if disc_losses:
        stats["disc_loss_final"] = disc_losses[-1]
    return stats


def train_denoiser(
    unet: UNet2DModel,
    images: Images,
    cfg: LDMConfig,
    device: torch.device,
    generator: torch.Generator,
    vae: AutoencoderKL | None = None,
) -> dict:
    """Epsilon-prediction DDPM objective on random crops of ``images`` (in [0, 1]), t < max_train_timestep.

    In latent space pass the trained ``vae``: crops are encoded (posterior mode, times
    ``scaling_factor``) on the fly, so random crops and flips still apply.
    """
    if cfg.space == "latent" and vae is None:
        raise ValueError("train_denoiser: cfg.space='latent' needs the trained vae=...; pass it or use space='pixel'")
    noise_sched = DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
    )
    unet.to(device).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=0.0)
    losses, t0 = [], time.perf_counter()
    for step in range(cfg.unet_steps):
        x = random_batch(images, cfg.unet_batch_size, cfg.train_crop, generator).to(device) * 2 - 1
        if vae is not None:
            with torch.no_grad():
                x = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor  # (B, c, H/f, W/f)
        noise = torch.randn(x.shape, generator=generator).to(device)
        t = torch.randint(cfg.max_train_timestep, (x.shape[0],), generator=generator).to(device)
        loss = F.mse_loss(unet(noise_sched.add_noise(x, noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        log_progress("unet", step, cfg.unet_steps, losses[-1], t0)
    unet.eval()
    return _history_stats(losses, time.perf_counter() - t0)


# ---------------------------------------------------------------- the holder


class LatentDiffusion(torch.nn.Module):
    """vae (None in pixel space) + unet + DDIM scheduler + config; all methods take images in [0, 1].

    ``context``: for a pretrained ``UNet2DConditionModel`` (e.g. Stable Diffusion), the
    (1, L, D) text embedding to condition on (e.g. a precomputed empty-prompt embedding);
    zeros of shape (1, 77, cross_attention_dim) when not given.
    """

    def __init__(
        self,
        vae: AutoencoderKL | None,
        unet: UNet2DModel | UNet2DConditionModel,
        scheduler: DDIMScheduler,
        cfg: LDMConfig,
        context: torch.Tensor | None = None,
    ):
        super().__init__()
        if (vae is None) != (cfg.space == "pixel"):
            raise ValueError(
                f"space={cfg.space!r} but vae is {'missing' if vae is None else 'given'}; "
                "latent space needs a vae, pixel space none"
            )
        self.vae, self.unet, self.scheduler, self.cfg = vae, unet, scheduler, cfg
        if isinstance(unet, UNet2DConditionModel) and context is None:
            context = torch.zeros(1, 77, unet.config.cross_attention_dim)
        self.register_buffer("context", context, persistent=False)
        self.eval()

    @classmethod
    def create(cls, cfg: LDMConfig) -> "LatentDiffusion":
        """A freshly initialised model (seeded by ``cfg.seed``)."""
        torch.manual_seed(cfg.seed)
        vae = build_vae(cfg) if cfg.space == "latent" else None
        latent_ch = cfg.vae_latent_channels if cfg.space == "latent" else cfg.image_channels
        return cls(vae, build_unet(cfg, latent_ch), make_scheduler(cfg), cfg)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def multiple(self) -> int:
        """Pixel sizes must be multiples of this (VAE factor times UNet downsampling)."""
        n_unet = len(self.unet.config.block_out_channels)
        return self.cfg.vae_factor * 2 ** (n_unet - 1)

    # ---- space changes ([0, 1] image <-> scaled latent or [-1, 1] pixels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1], H and W multiples of ``self.multiple`` -> (B, c, H/f, W/f)."""
        x = x.to(self.device, torch.float32) * 2 - 1
        if self.vae is None:
            return x
        return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, c, h, w) -> (B, C, h*f, w*f) in [0, 1]."""
        if self.vae is not None:
            z = self.vae.decode(z / self.vae.config.scaling_factor).sample
        return ((z + 1) / 2).clamp(0, 1)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)  # (B, C, H + ph, W + pw)
        return x, (h, w)

    # ---- the DDIM loop

    def _eps(self, z: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
        if isinstance(self.unet, UNet2DConditionModel):
            ctx = self.context.to(z.device).expand(z.shape[0], -1, -1)  # (B, L, D)
            return self.unet(z, tt, encoder_hidden_states=ctx).sample
        return self.unet(z, tt).sample

    def _alpha(self, t: int | None) -> float:
        """alpha-bar at timestep t; None means the clean end (alpha-bar = 1)."""
        return 1.0 if t is None else float(self.scheduler.alphas_cumprod[t])

    def _ddim_walk(self, z: torch.Tensor, eval_ts: Sequence[int], path: Sequence[int | None]) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) from alpha-bar(path[0]) to alpha-bar(path[-1]), evaluating
        the UNet at eval_ts[i] on step i. Works downwards (denoise) and upwards (inversion):
            x0_hat = (z - sqrt(1 - a) eps) / sqrt(a);   z' = sqrt(a') x0_hat + sqrt(1 - a') eps
        """
        clip = self.vae is None  # pixel-space x0 predictions live in [-1, 1]
        for t, cur, nxt in zip(eval_ts, path[:-1], path[1:]):
            a, a_next = self._alpha(cur), self._alpha(nxt)
            eps = self._eps(z, t)
            x0 = (z - math.sqrt(1 - a) * eps) / math.sqrt(a)
            if clip and a_next > a:
                x0 = x0.clamp(-1, 1)
            z = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps
        return z

    def _t_max(self) -> int:
        return min(self.cfg.max_train_timestep, self.cfg.num_train_timesteps) - 1

    @staticmethod
    def _descending(t_start: int, num_steps: int) -> list[int]:
        """num_steps distinct timesteps from t_start down (exclusive of 0 unless t_start is small)."""
        ts = torch.linspace(t_start, 0, num_steps + 1)[:-1].round().long().tolist()
        return sorted(set(max(t, 0) for t in ts), reverse=True)

    # ---- public generation API

    @torch.no_grad()
    def img2img(
        self, x: torch.Tensor, strength: float, num_steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """SDEdit: noise to t* = strength * T, DDIM-denoise to 0 in ``num_steps``, decode.

        (B, C, H, W) in [0, 1] -> same shape in [0, 1]; deterministic for a given ``generator``
        state (noise is drawn on the CPU). strength 0 returns decode(encode(x)).
        """
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        t_star = min(int(round(strength * self.cfg.num_train_timesteps)), self.cfg.num_train_timesteps - 1)
        if t_star > self._t_max():
            raise ValueError(
                f"strength={strength} gives t*={t_star}, but the UNet was trained only on "
                f"t < {self.cfg.max_train_timestep}; lower strength or retrain with a larger max_train_timestep"
            )
        xp, (h, w) = self._pad(x)
        z0 = self.encode(xp)  # (B, c, h', w')
        if t_star == 0:
            return self.decode(z0)[..., :h, :w]
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        z = self.scheduler.add_noise(z0, noise, torch.tensor([t_star]))
        ts = self._descending(t_star, num_steps)
        z = self._ddim_walk(z, ts, [*ts, None])
        return self.decode(z)[..., :h, :w]

    @torch.no_grad()
    def sample(
        self, n: int, size: int | tuple[int, int], num_steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` unconditional samples (n, C, H, W) in [0, 1], DDIM from pure noise."""
        if self.cfg.max_train_timestep < self.cfg.num_train_timesteps:
            raise ValueError(
                f"sampling needs a UNet trained on all timesteps (max_train_timestep="
                f"{self.cfg.max_train_timestep} < {self.cfg.num_train_timesteps}); retrain it or use img2img"
            )
        h, w = (size, size) if isinstance(size, int) else size
        m, f = self.multiple, self.cfg.vae_factor
        hp, wp = h + (-h) % m, w + (-w) % m
        ch = self.unet.config.in_channels
        z = torch.randn((n, ch, hp // f, wp // f), generator=generator).to(self.device)  # (n, c, h', w')
        ts = self._descending(self._t_max(), num_steps)
        return self.decode(self._ddim_walk(z, ts, [*ts, None]))[..., :h, :w]

    @torch.no_grad()
    def ddim_invert_reconstruct(self, x: torch.Tensor, num_steps: int, t_end: int | None = None) -> torch.Tensor:
        """DIRE: DDIM-invert x up to ``t_end`` (default the last trained timestep), then DDIM back;
        (B, C, H, W) in [0, 1] -> same shape. Fully deterministic."""
        t_end = self._t_max() if t_end is None else t_end
        if not 1 <= t_end <= self._t_max():
            raise ValueError(f"t_end must be in 1..{self._t_max()}, got {t_end}")
        xp, (h, w) = self._pad(x)
        z = self.encode(xp)
        up = sorted(set(torch.linspace(0, t_end, num_steps + 1).round().long().tolist()))  # 0 .. t_end
        z = self._ddim_walk(z, up[:-1], [None, *up[1:]])  # clean -> t_end
        down = up[:0:-1]  # t_end .. first positive t
        z = self._ddim_walk(z, down, [*down, None])  # t_end -> clean
        return self.decode(z)[..., :h, :w]

    # ---- persistence (diffusers format)

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.vae is not None:
            self.vae.save_pretrained(d / "vae")
        self.unet.save_pretrained(d / "unet")
        self.scheduler.save_pretrained(d / "scheduler")
        atomic_write_json(d / "ldm_config.json", to_dict(self.cfg))
        return d

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> "LatentDiffusion":
        d = Path(directory)
        if not (d / "ldm_config.json").exists():
            raise ValueError(
                f"{d} has no ldm_config.json; save it with LatentDiffusion.save or use from_pretrained_parts"
            )
        cfg = from_dict(LDMConfig, json.loads((d / "ldm_config.json").read_text()), "ldm")
        vae = AutoencoderKL.from_pretrained(d / "vae") if cfg.space == "latent" else None
        unet = UNet2DModel.from_pretrained(d / "unet")
        sched = DDIMScheduler.from_pretrained(d / "scheduler")
        return cls(vae, unet, sched, cfg).to(device)

    @classmethod
    def from_pretrained_parts(
        cls,
        vae_dir: str | Path | None,
        unet_dir: str | Path,
        device: torch.device | str = "cpu",
        scheduler_dir: str | Path | None = None,
        context: torch.Tensor | None = None,
        max_train_timestep: int | None = None,
    ) -> "LatentDiffusion":
        """Any diffusers-format VAE (None = pixel space) + UNet2DModel / UNet2DConditionModel folders
        (e.g. Stable Diffusion's ``vae/`` and ``unet/``), with a DDIM scheduler read from
        ``scheduler_dir`` (any scheduler config, e.g. SD's PNDM one) or the default linear one."""
        vae = AutoencoderKL.from_pretrained(vae_dir) if vae_dir is not None else None
        unet_cfg = json.loads((Path(unet_dir) / "config.json").read_text())
        unet_cls = UNet2DConditionModel if unet_cfg.get("_class_name") == "UNet2DConditionModel" else UNet2DModel
        unet = unet_cls.from_pretrained(unet_dir)
        sched = DDIMScheduler.from_pretrained(scheduler_dir) if scheduler_dir else make_scheduler(LDMConfig())
        sched.register_to_config(clip_sample=False, set_alpha_to_one=True)
        groups = math.gcd(*unet.config.block_out_channels, *(vae.config.block_out_channels if vae else ()))
        sc = sched.config
        t_total = sc.num_train_timesteps
        cfg = LDMConfig(
            space="latent" if vae is not None else "pixel",
            image_channels=vae.config.in_channels if vae else unet.config.in_channels,
            norm_num_groups=groups,
            vae_block_out_channels=tuple(vae.config.block_out_channels) if vae else LDMConfig.vae_block_out_channels,
            vae_latent_channels=vae.config.latent_channels if vae else LDMConfig.vae_latent_channels,
            unet_block_out_channels=tuple(unet.config.block_out_channels),
            num_train_timesteps=t_total,
            max_train_timestep=max_train_timestep or t_total,
            beta_schedule=sc.beta_schedule,
            beta_start=sc.beta_start,
            beta_end=sc.beta_end,
        )
        return cls(vae, unet, sched, cfg, context=context).to(device)


def load_ldm(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """A frozen :class:`~hrr_core.models.ldm.LatentDiffusion` from a local folder: one written by
    ``LatentDiffusion.save`` (has ``ldm_config.json``), or a diffusers layout with ``unet/`` and
    optional ``vae/`` and ``scheduler/`` sub-folders (e.g. a Stable Diffusion or ADM-style
    pixel checkpoint). Nothing is downloaded."""
    d = resolve(path)
    if (d / "ldm_config.json").exists():
        model = LatentDiffusion.load(d, device=device)
    elif (d / "unet").is_dir():
        vae = d / "vae" if (d / "vae").is_dir() else None
        sched = d / "scheduler" if (d / "scheduler").is_dir() else None
        model = LatentDiffusion.from_pretrained_parts(vae, d / "unet", device=device, scheduler_dir=sched)
    else:
        raise ValueError(
            f"{d} is neither a LatentDiffusion.save folder (ldm_config.json) nor a diffusers "
            "folder with unet/ (and optional vae/, scheduler/); point the path at one"
        )
    model.requires_grad_(False)
    return model.eval()
