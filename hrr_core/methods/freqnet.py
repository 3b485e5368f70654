"""FreqNet-style: the truncated ResNet trunk on a high-passed frequency-space input."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.freqnet import build_freqnet

SPEC = MethodSpec(name="freqnet", build=build_freqnet)
