"""The generator families of the embedded benchmark, behind one small :class:`Generator` API.

Every family is fitted on train-split crops only, then turns each real crop (N, 3, H, W) in
[0, 1] into a content-matched fake of the same shape (``ldm_sample`` ignores the content and
draws unconditional samples of the same count and size).

Sharing: ``ldm_img2img``, ``ldm_sample`` and ``ldm_inpaint`` use one latent diffusion model described by
``ZooConfig.ldm_img2img``. Pass the same ``cache`` dict to :func:`build_generator` for both and
the model is trained once; without a cache each trains its own copy, which is identical
(same config, same seed, deterministic CPU training), only slower.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from hrr_core.benchmark.generators.gan import (
    Adversary,
    PixelShuffleSR,
    UpsamplerNet,
    train_upsampler,
    upsample_roundtrip,
)
from hrr_core.benchmark.generators.vq import VQAutoencoder, train_vq, vq_roundtrip
from hrr_core.confutil import to_dict
from hrr_core.io import atomic_write_json
from hrr_core.models.ldm import LatentDiffusion, train_denoiser, train_vae
from hrr_core.schema.zoo import FAMILIES, ZooConfig


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"expected a (N, 3, H, W) tensor in [0, 1], got {got}; group crops by size first (see generate_mixed)"
        )


class Generator:
    """Common API: ``fit`` -> stats dict, ``generate`` -> fakes of the input's shape, ``save``/``load``."""

    name: str = ""

    def __init__(self, cfg, zoo: ZooConfig):
        self.cfg, self.zoo = cfg, zoo

    # -- subclasses implement these three
    def fit(self, train_images, device: torch.device, generator: torch.Generator) -> dict:
        raise NotImplementedError

    def _generate_batch(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    # -- shared
    @torch.no_grad()
    def generate(self, images: torch.Tensor, device: torch.device, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H, W) fakes in [0, 1], on the CPU; deterministic for a
        given ``generator`` state (all noise is drawn on the CPU)."""
        _check_images(images)
        for module in self._modules().values():
            module.to(device).eval()
        outs = [
            self._generate_batch(images[i : i + self.cfg.gen_batch_size].to(device), generator).cpu()
            for i in range(0, len(images), self.cfg.gen_batch_size)
        ]
        return torch.cat(outs) if outs else images.clone()

    def config_dict(self) -> dict:
        return {"family": self.name, "config": to_dict(self.cfg)}

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for key, module in self._modules().items():
            if isinstance(module, LatentDiffusion):
                module.save(d / key)
            else:
                save_file({k: v.contiguous().cpu() for k, v in module.state_dict().items()}, d / f"{key}.safetensors")
        atomic_write_json(d / "generator.json", self.config_dict())
        return d

    def load(self, directory: str | Path, device: torch.device | str = "cpu") -> "Generator":
        d = Path(directory)
        saved = json.loads((d / "generator.json").read_text())
        if saved != json.loads(json.dumps(self.config_dict())):
            raise ValueError(
                f"{d} holds {saved['family']} with config {saved['config']}, which differs from this "
                f"generator's {self.config_dict()['config']}; rebuild with the saved config or refit"
            )
        self._load_modules(d, device)
        return self

    def _load_modules(self, d: Path, device) -> None:
        for key, module in self._modules().items():
            module.load_state_dict(load_file(d / f"{key}.safetensors"))
            module.to(device).eval()


class _LDMBacked(Generator):
    """Families whose model is a :class:`LatentDiffusion` (possibly shared through ``cache``)."""

    def __init__(self, cfg, zoo: ZooConfig, model_cfg, cache: dict | None):
        super().__init__(cfg, zoo)
        self.model_cfg = model_cfg  # the family section whose ``ldm`` describes the model
        self.cache = cache
        self.model = LatentDiffusion.create(model_cfg.ldm)

    def _cache_key(self) -> str:
        return json.dumps({"ldm": to_dict(self.model_cfg)}, sort_keys=True)

    def fit(self, train_images, device, generator) -> dict:
        key = self._cache_key()
        if self.cache is not None and key in self.cache:
            self.model = self.cache[key]
            return {"shared": True, "steps": 0, "seconds": 0.0}
        t0 = time.perf_counter()
        lcfg = self.model.cfg
        g = torch.Generator().manual_seed(lcfg.seed)  # training is seeded by the family's ldm.seed, not the caller
        stats = {}
        if self.model.vae is not None and lcfg.vae_steps > 0:
            adv = None
            if getattr(self.model_cfg, "adv_weight", 0) > 0:
                adv = Adversary(
                    32, lcfg.vae_lr, self.model_cfg.adv_weight, self.model_cfg.adv_start, device, lcfg.seed + 1
                )
            stats["vae"] = train_vae(self.model.vae, train_images, lcfg, device, g, adversary=adv)
        if lcfg.unet_steps > 0:
            stats["unet"] = train_denoiser(self.model.unet, train_images, lcfg, device, g, vae=self.model.vae)
        self.model.to(device).eval()
        if self.cache is not None:
            self.cache[key] = self.model
        stats["seconds"] = round(time.perf_counter() - t0, 2)
        return stats

    def _modules(self):
        return {"model": self.model}

    def _load_modules(self, d: Path, device) -> None:
        self.model = LatentDiffusion.load(d / "model", device)


class VAEGenerator(_LDMBacked):
    """``vae``: x -> decode(encode(x)) through a small AutoencoderKL (posterior mode)."""

    name = "vae"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.vae, zoo, zoo.vae, cache)

    def _generate_batch(self, batch, generator):
        xp, (h, w) = self.model._pad(batch)
        return self.model.decode(self.model.encode(xp))[..., :h, :w]


class LDMImg2ImgGenerator(_LDMBacked):
    """``ldm_img2img``: SDEdit (strength, DDIM steps) in the latent space of the shared small LDM."""

    name = "ldm_img2img"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.ldm_img2img, zoo, zoo.ldm_img2img, cache)

    def _generate_batch(self, batch, generator):
        return self.model.img2img(batch, self.cfg.strength, self.cfg.ddim_steps, generator)


class PixelDDPMGenerator(_LDMBacked):
    """``pixel_ddpm``: SDEdit in pixel space with a pixel UNet2DModel trained on small t only."""

    name = "pixel_ddpm"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.pixel_ddpm, zoo, zoo.pixel_ddpm, cache)

    def _generate_batch(self, batch, generator):
        return self.model.img2img(batch, self.cfg.strength, self.cfg.ddim_steps, generator)


class LDMSampleGenerator(_LDMBacked):
    """``ldm_sample``: unconditional DDIM samples of the ``ldm_img2img`` model; inputs give count and size."""

    name = "ldm_sample"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.ldm_sample, zoo, zoo.ldm_img2img, cache)

    def config_dict(self) -> dict:
        return {**super().config_dict(), "model_config": to_dict(self.model_cfg)}

    def _generate_batch(self, batch, generator):
        return self.model.sample(len(batch), tuple(batch.shape[-2:]), self.cfg.ddim_steps, generator)


class LDMInpaintGenerator(_LDMBacked):
    """``ldm_inpaint``: one random rectangle per image regenerated (SDEdit through the shared
    ``ldm_img2img`` model), the real pixels pasted back outside it. After each ``generate`` call,
    ``masks`` lists the rectangles as (top, left, height, width) in input order."""

    name = "ldm_inpaint"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.ldm_inpaint, zoo, zoo.ldm_img2img, cache)
        self.masks: list[tuple[int, int, int, int]] = []

    def config_dict(self) -> dict:
        return {**super().config_dict(), "model_config": to_dict(self.model_cfg)}

    @torch.no_grad()
    def generate(self, images, device, generator):
        self.masks = []
        return super().generate(images, device, generator)

    def _generate_batch(self, batch, generator):
        h, w = batch.shape[-2:]
        regen = self.model.img2img(batch, self.cfg.strength, self.cfg.ddim_steps, generator)
        out = batch.clone()
        lo, hi = self.cfg.mask_min, self.cfg.mask_max
        for i in range(len(batch)):
            mh, mw = (
                max(1, int(round(s * float(lo + (hi - lo) * torch.rand((), generator=generator))))) for s in (h, w)
            )
            top = int(torch.randint(h - mh + 1, (1,), generator=generator))
            left = int(torch.randint(w - mw + 1, (1,), generator=generator))
            out[i, :, top : top + mh, left : left + mw] = regen[i, :, top : top + mh, left : left + mw]
            self.masks.append((top, left, mh, mw))
        return out


class GANUpsamplerGenerator(Generator):
    """``gan_upsampler``: x -> G(downsample_x0.5(x)), G a x2 transposed-conv SR net trained adversarially."""

    name = "gan_upsampler"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.gan_upsampler, zoo)
        torch.manual_seed(self.cfg.seed)
        self.net = UpsamplerNet(self.cfg.width, self.cfg.num_blocks)

    def fit(self, train_images, device, generator) -> dict:
        g = torch.Generator().manual_seed(self.cfg.seed)
        adv = Adversary(
            self.cfg.disc_width, self.cfg.lr, self.cfg.adv_weight, self.cfg.adv_start, device, self.cfg.seed + 1
        )
        return train_upsampler(self.net, adv, train_images, self.cfg, device, g)

    def _generate_batch(self, batch, generator):
        return upsample_roundtrip(self.net, batch)

    def _modules(self):
        return {"net": self.net}


class GANSRGenerator(GANUpsamplerGenerator):
    """``gan_sr``: x -> G(downsample_x0.5(x)), G a x2 PixelShuffle super-resolver trained adversarially."""

    name = "gan_sr"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        Generator.__init__(self, zoo.gan_sr, zoo)
        torch.manual_seed(self.cfg.seed)
        self.net = PixelShuffleSR(self.cfg.width, self.cfg.num_blocks)


class VQGenerator(Generator):
    """``vqgan``: x -> decode(quantise(encode(x))) through a residual-VQ autoencoder trained VQGAN-style."""

    name = "vqgan"

    def __init__(self, zoo: ZooConfig, cache: dict | None = None):
        super().__init__(zoo.vqgan, zoo)
        torch.manual_seed(self.cfg.seed)
        self.net = VQAutoencoder(self.cfg.width, self.cfg.embed_dim, self.cfg.codebook_size, self.cfg.num_blocks)

    def fit(self, train_images, device, generator) -> dict:
        g = torch.Generator().manual_seed(self.cfg.seed)
        adv = Adversary(
            self.cfg.disc_width, self.cfg.lr, self.cfg.adv_weight, self.cfg.adv_start, device, self.cfg.seed + 1
        )
        return train_vq(self.net, adv, train_images, self.cfg, device, g)

    def _generate_batch(self, batch, generator):
        return vq_roundtrip(self.net, batch)

    def _modules(self):
        return {"net": self.net}


_REGISTRY: dict[str, Callable[..., Generator]] = {
    "vae": VAEGenerator,
    "ldm_img2img": LDMImg2ImgGenerator,
    "pixel_ddpm": PixelDDPMGenerator,
    "gan_upsampler": GANUpsamplerGenerator,
    "ldm_sample": LDMSampleGenerator,
    "ldm_inpaint": LDMInpaintGenerator,
    "gan_sr": GANSRGenerator,
    "vqgan": VQGenerator,
}


def build_generator(name: str, zoo_cfg: ZooConfig, cache: dict | None = None) -> Generator:
    """An unfitted generator of family ``name``; pass one ``cache`` dict to share the latent LDM."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown generator family {name!r}; choose one of {', '.join(FAMILIES)}")
    return _REGISTRY[name](zoo_cfg, cache)


def generate_mixed(
    gen: Generator, images: list[torch.Tensor], device, generator: torch.Generator
) -> list[torch.Tensor]:
    """Fakes for a list of (3, H_i, W_i) crops of mixed sizes: grouped by size, batched, returned in
    input order. Deterministic for a given generator state and input order."""
    out: list[torch.Tensor | None] = [None] * len(images)
    groups: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape), []).append(i)
    for shape in sorted(groups):
        idx = groups[shape]
        fakes = gen.generate(torch.stack([images[i] for i in idx]), device, generator)  # (n, 3, H, W)
        for i, f in zip(idx, fakes):
            out[i] = f
    return out
