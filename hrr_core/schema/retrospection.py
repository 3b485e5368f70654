"""``retrospection:``: the frozen diffusion model HRR (and DIRE) re-render through."""

from __future__ import annotations

from dataclasses import dataclass, field

from hrr_core.confutil import check
from hrr_core.schema.models import LDMConfig


@dataclass(frozen=True)
class RetrospectionConfig:
    """``retrospection:`` in params.yaml: the frozen LDM HRR re-renders through.

    Embedded default: a small LDM trained here on train-split real crops only, with its own
    seed and config, distinct from every generator of the benchmark. Real benchmarks: set
    ``pretrained_unet_dir`` (and ``pretrained_vae_dir`` for a latent model) to a local
    diffusers-format checkpoint, e.g. Stable Diffusion's ``unet/`` and ``vae/`` folders."""

    ldm: LDMConfig = field(
        default_factory=lambda: LDMConfig(
            space="pixel",
            unet_block_out_channels=(32, 64),
            max_train_timestep=300,
            train_crop=48,
            unet_steps=400,
            seed=777,
        )
    )
    pretrained_vae_dir: str | None = None
    pretrained_unet_dir: str | None = None
    shard_size: int = 512
    seed: int = 2024

    def __post_init__(self) -> None:
        check(self.shard_size >= 1, "shard_size", ">= 1", self.shard_size)
        check(
            self.pretrained_vae_dir is None or self.pretrained_unet_dir is not None,
            "pretrained_unet_dir",
            "a folder whenever pretrained_vae_dir is set",
            self.pretrained_unet_dir,
        )
