"""BSF-style: the truncated ResNet trunk on a fixed pixel-value mapping of the image."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.bsf import build_bsf

SPEC = MethodSpec(name="bsf", build=build_bsf)
