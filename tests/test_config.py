"""The real params.yaml loads under every profile, and bad values fail naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from hrr_core.benchmark.generators import ZooConfig
from hrr_core.confutil import ConfigError, from_dict, to_dict
from hrr_core.schema import PROFILES, EvaluateConfig, StudyConfig, config_from_dict, load_config
from hrr_core.schema.benchmark import BenchmarkConfig, RealBenchmarkConfig
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.schema.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_loads(profile):
    cfg = load_config(ROOT / "params.yaml", profile)
    assert cfg.profile == profile
    for method in cfg.methods:
        cfg.model_config(method), cfg.train_config(method)
    cfg.zoo_config(), cfg.retrospection_config()


def test_profiles_scale_the_study():
    smoke, default = load_config(ROOT / "params.yaml", "smoke"), load_config(ROOT / "params.yaml", "default")
    assert smoke.benchmark.max_photos is not None and default.benchmark.max_photos is None
    assert smoke.train_config("cnn").max_steps is not None
    assert smoke.model_config("cnn").backbone.name == "small_resnet"


# Sections whose dataclass defaults must be params.yaml's default profile, so code and tests that
# build a section from its defaults (or from a partial dict) get the study's values.
@pytest.mark.parametrize(
    "section, cls",
    [
        ("benchmark", BenchmarkConfig),
        ("real_benchmark", RealBenchmarkConfig),
        ("zoo", ZooConfig),
        ("train", TrainConfig),
        ("retrospection", RetrospectionConfig),
        ("evaluate", EvaluateConfig),
        ("study", StudyConfig),
    ],
)
def test_dataclass_defaults_are_the_default_profile(section, cls):
    raw = load_config(ROOT / "params.yaml", "default").to_dict()[section]
    assert to_dict(from_dict(cls, raw, section)) == to_dict(cls())


def mutate(path: str, value):
    raw = copy.deepcopy(RAW)
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value, key, words",
    [
        ("benchmark.crop_sizez", [64], "benchmark.crop_sizez", "unknown key"),
        ("benchmark.crops_per_size", 0, "benchmark.crops_per_size", ">= 1"),
        ("benchmark.codec", "gif", "benchmark.codec", "'png', 'jpeg'"),
        ("train.lr", "fast", "train.lr", "number"),
        ("train.epochs", 0, "train.epochs", ">= 1"),
        ("evaluate.threshold", 1.5, "evaluate.threshold", "(0, 1)"),
        ("profile", "huge", "profile", "smoke | default | full"),
        ("methods.cnn.train_generators", ["dalle"], "methods.cnn.train_generators", "families"),
        ("methods.cnn.model.backbone.name", "vit", "methods.cnn.model.backbone.name", "efficientnet_lite0"),
        ("methods.hrr.model.msr.input_size", 999, "methods.hrr.model.msr.input_size", "smallest scale side"),
        ("zoo.vae.ldm.vae_steps", -1, "zoo.vae.ldm.vae_steps", ">= 0"),
        ("train.device", "cuda", "train.device", "top-level `device:`"),
        ("profiles.full.train.epochz", 3, "profiles.full -> train.epochz", "unknown key"),
    ],
)
def test_bad_values_name_the_key(path, value, key, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict(mutate(path, value))
    assert info.value.key == key, info.value
    assert words in str(info.value)


def test_unknown_profile_section_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile"):
        config_from_dict(mutate("profiles.huge", {}))
    with pytest.raises(FileNotFoundError, match="params.yaml"):
        load_config(tmp_path / "params.yaml")
