"""A logistic regression on azimuthally averaged spectra: fitted directly, deterministic."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.spectrum import SpectrumLR

SPEC = MethodSpec(name="spectrum_lr", build=SpectrumLR, trains="fit", load=SpectrumLR.load)
