"""UnivFD (Ojha et al. 2023): a linear probe on frozen pretrained features."""

from hrr_core.methods import MethodSpec
from hrr_core.models.baselines.univfd import UnivFD

SPEC = MethodSpec(name="univfd", build=UnivFD)
