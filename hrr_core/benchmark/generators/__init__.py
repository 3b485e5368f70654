"""The generator zoo of the embedded benchmark: families trained on the generator pool (v2) or
train-split crops (v1), or loaded from the shipped weights (load_shipped).

from hrr_core.benchmark.generators import FAMILIES, ZooConfig, build_generator
cache = {}                                   # shares the latent LDM of ldm_img2img / ldm_sample
gen = build_generator("pixel_ddpm", ZooConfig(), cache)
stats = gen.fit(train_crops, device, torch.Generator().manual_seed(0))
fakes = gen.generate(crops, device, torch.Generator().manual_seed(1))   # same shape, [0, 1]
"""

from hrr_core.benchmark.generators.families import Generator, build_generator, generate_mixed
from hrr_core.benchmark.generators.shipped import ShippedZooError, load_shipped
from hrr_core.schema.zoo import (
    FAMILIES,
    GANUpsamplerFamilyConfig,
    LatentLDMFamilyConfig,
    LDMSampleFamilyConfig,
    PixelDDPMFamilyConfig,
    VAEFamilyConfig,
    ZooConfig,
    smoke_zoo,
)

__all__ = [
    "FAMILIES",
    "ZooConfig",
    "VAEFamilyConfig",
    "LatentLDMFamilyConfig",
    "PixelDDPMFamilyConfig",
    "GANUpsamplerFamilyConfig",
    "LDMSampleFamilyConfig",
    "smoke_zoo",
    "Generator",
    "build_generator",
    "generate_mixed",
    "load_shipped",
    "ShippedZooError",
]
