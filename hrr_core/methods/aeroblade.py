"""AEROBLADE (Ricker et al. 2024): autoencoder reconstruction distance, training-free up to a
calibration; fitted directly."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.aeroblade import AEROBLADE

SPEC = MethodSpec(name="aeroblade", build=AEROBLADE, trains="fit", load=AEROBLADE.load)
