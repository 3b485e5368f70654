"""The plain CNN: a backbone + linear head on the stored image, trained with BCE."""

from hrr_core.methods import MethodSpec
from hrr_core.models.classifier import BinaryClassifier

SPEC = MethodSpec(name="classifier", build=BinaryClassifier)
