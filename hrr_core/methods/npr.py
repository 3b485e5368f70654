"""NPR (Tan et al. 2024): a classifier on neighbouring-pixel residuals."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.npr import NPR

SPEC = MethodSpec(name="npr", build=NPR)
