"""FerretNet (2025): a small network on median-filter local-pixel-dependency residuals."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.ferretnet import FerretNet

SPEC = MethodSpec(name="ferretnet", build=FerretNet)
