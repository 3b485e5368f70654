"""Forensic-self-description-style zero-shot detector: predictive filters and a density model
fitted on real images only, calibrated on validation reals."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.selfdesc import SelfDescription

SPEC = MethodSpec(
    name="selfdesc", build=SelfDescription, trains="fit", load=SelfDescription.load, calibrates_on_val=True
)
