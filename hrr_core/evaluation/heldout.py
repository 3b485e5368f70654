"""Which test generators are held out for a detector: by construction, from what it trained on.

A test family is *in-family* when the detector trained on it, or on a family whose fakes come
from the same model (``hrr_core.schema.zoo.SHARED_MODEL``: ``ldm_sample`` draws unconditional
samples from ``ldm_img2img``'s model). Every other test family is *held out*; the headline
averages over those only and names them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hrr_core.schema.zoo import SHARED_MODEL


def model_of(family: str, shared: Mapping[str, str] = SHARED_MODEL) -> str:
    return shared.get(family, family)


def split_families(
    train_generators: Sequence[str], test_generators: Sequence[str], shared: Mapping[str, str] = SHARED_MODEL
) -> tuple[list[str], list[str]]:
    """(held out, in family) test generators of a detector trained on ``train_generators``,
    each list in the order of ``test_generators``."""
    seen = {model_of(g, shared) for g in train_generators}
    held = [g for g in test_generators if model_of(g, shared) not in seen]
    return held, [g for g in test_generators if g not in held]
