"""The real-only zero-shot SelfDescription scorer: fits on reals alone, ranks up-sampled
images above camera-like ones, calibrates on reals, saves and reloads exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrr_core.confutil import ConfigError
from hrr_core.methods import build as build_baseline
from hrr_core.models.baselines.selfdesc import SelfDescription

pytestmark = pytest.mark.usefixtures("one_thread")


def _reals(n: int, seed: int, size: int = 48) -> torch.Tensor:
    """Smooth scenes plus independent 'sensor' noise."""
    g = torch.Generator().manual_seed(seed)
    scene = F.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), size=(size, size), mode="bicubic")
    return (scene + 0.02 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


def _fakes(n: int, seed: int) -> torch.Tensor:
    """Rendered at half resolution and up-sampled: the noise is no longer independent per pixel."""
    return F.interpolate(_reals(n, seed)[..., ::2, ::2], scale_factor=2, mode="bilinear")


def test_fit_uses_reals_only_and_ranks_fakes_higher(tmp_path):
    reals = _reals(20, 0)
    model = build_baseline("selfdesc", {})
    model.fit(torch.cat([reals, _fakes(6, 1)]), [0] * 20 + [1] * 6)
    only_reals = build_baseline("selfdesc", {}).fit(reals, [0] * 20)  # the fakes change nothing
    assert all(np.array_equal(model.arrays[k], only_reals.arrays[k]) for k in model.arrays)
    assert model.n_fit == 14 and model.n_calibration == 6  # 30 % of the reals held out to calibrate
    test_r, test_f = _reals(8, 2), _fakes(8, 3)
    p = model.score(torch.cat([test_r, test_f]))
    assert p.shape == (16,) and np.all((0 <= p) & (p <= 1)) and p[8:].min() > p[:8].max()
    model.save(tmp_path)
    again = SelfDescription.load(tmp_path)
    assert np.array_equal(again.score(test_f), model.score(test_f))
    assert not list(tmp_path.glob("*.pkl")) and (tmp_path / "selfdesc.safetensors").is_file()


def test_calibrate_on_validation_reals_anchors_their_quantiles():
    model = build_baseline("selfdesc", {"real_quantile": 0.9}).fit(_reals(12, 0), [0] * 12)
    val = _reals(21, 5)
    model.calibrate(torch.cat([val, _fakes(3, 6)]), [0] * 21 + [1] * 3)  # fakes ignored
    p = np.sort(model.score(val))
    assert model.n_calibration == 21 and p[10] == pytest.approx(0.1, abs=1e-6)  # the median real scores 1 - q
    assert p[-3] == pytest.approx(0.5, abs=0.05)  # about the 0.9-quantile scores 0.5


def test_refuses_without_reals_and_bad_config():
    model = build_baseline("selfdesc", {})
    with pytest.raises(ValueError, match="needs real images"):
        model.fit(_fakes(6, 0), [1] * 6)
    with pytest.raises(ValueError, match="not fitted|no filters"):
        model.score(_reals(1, 0))
    with pytest.raises(ValueError, match="calibrate needs real images"):
        model.fit(_reals(6, 0), [0] * 6).calibrate(_fakes(2, 1), [1, 1])
    with pytest.raises(ConfigError, match="real_quantile"):
        build_baseline("selfdesc", {"real_quantile": 0.4})
