import numpy as np
import pytest

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.evaluation.robustness import (
    RobustnessConfig,
    blur,
    condition_transform,
    downscale,
    harmonise,
    jpeg,
    rescale,
)


def _image(h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hf_energy(a):
    spec = np.abs(np.fft.fft2(a.astype(float).mean(axis=2) - a.mean()))
    h, w = spec.shape
    return spec[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].sum() / spec.sum()


def test_rescale_changes_size_by_the_factor():
    a = _image()
    assert rescale(a, 0.5).shape == (16, 24, 3)
    assert rescale(a, 2.0).shape == (64, 96, 3)
    assert rescale(a, 1.0) is a


def test_blur_zero_is_identity_and_blur_removes_high_frequencies():
    a = _image()
    assert blur(a, 0) is a
    assert _hf_energy(blur(a, 2.0)) < 0.5 * _hf_energy(a)


def test_downscale_keeps_size_and_loses_detail():
    a = _image()
    d = downscale(a, 0.5)
    assert d.shape == a.shape and d.dtype == np.uint8
    assert _hf_energy(d) < _hf_energy(a)


def test_jpeg_is_lossy_and_lower_quality_loses_more():
    a = _image(seed=1)
    err = {q: np.abs(jpeg(a, q).astype(int) - a).mean() for q in (95, 30)}
    assert jpeg(a, 95).shape == a.shape
    assert 0 < err[95] < err[30]


def test_harmonise_gives_one_size_whatever_the_input():
    for shape in ((32, 48), (128, 128), (64, 20)):
        assert harmonise(_image(*shape), 40, 90).shape == (40, 40, 3)


def test_transforms_are_deterministic():
    cfg = RobustnessConfig()
    a = _image(seed=3)
    for cond, level in cfg.conditions():
        f = condition_transform(cfg, cond, level)
        assert np.array_equal(f(a), f(a.copy()))


def test_conditions_start_clean_and_skip_identities():
    cfg = RobustnessConfig(rescale=(0.5, 1.0), jpeg=(50,), blur=(0.0, 1.0), downscale=(), harmonise_size=None)
    assert cfg.conditions() == [("clean", 0.0), ("rescale", 0.5), ("jpeg", 50.0), ("blur", 1.0)]
    with pytest.raises(ValueError, match="unknown condition"):
        condition_transform(cfg, "sharpen", 1.0)


@pytest.mark.parametrize(
    "bad", [{"jpeg": [0]}, {"rescale": [0.0]}, {"downscale": [1.0]}, {"blur": [-1]}, {"harmonise_size": 2}]
)
def test_bad_levels_name_the_key(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        from_dict(RobustnessConfig, bad, "study.robustness")
