"""Tiny data, models and objectives shared by the training tests (CPU, seconds)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from torch import nn
from torch.utils.data import Dataset

from hrr_core.models.outputs import DetectorOutput


class TinySet(Dataset):
    """n samples of d features; label = (x0 > 0), so a linear model can learn it."""

    def __init__(self, n: int = 24, d: int = 6, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=g)
        self.y = (self.x[:, 0] > 0).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": self.x[i], "labels": self.y[i], "ids": f"s{i:03d}"}


class TinyNet(nn.Module):
    """Linear -> dropout -> linear; dropout makes resume depend on restored RNG state."""

    def __init__(self, d: int = 6, hidden: int = 8, dropout: float = 0.0):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(d, hidden), nn.Dropout(dropout), nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        return DetectorOutput(logits=self.fc2(self.drop(torch.relu(self.fc1(x)))).squeeze(-1))


class LinearNet(nn.Module):
    def __init__(self, d: int = 6):
        super().__init__()
        self.fc = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        return DetectorOutput(logits=self.fc(x).squeeze(-1))


def bce_objective(output: DetectorOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    bce = nn.functional.binary_cross_entropy_with_logits(output.logits.float(), labels)
    l2 = output.logits.float().pow(2).mean()
    return {"loss": bce + 1e-3 * l2, "bce": bce, "logit_l2": l2}


@pytest.fixture
def tiny() -> SimpleNamespace:
    """The helpers above, for tests (test modules cannot import conftest)."""
    return SimpleNamespace(TinySet=TinySet, TinyNet=TinyNet, LinearNet=LinearNet, objective=bce_objective)


@pytest.fixture(autouse=True)
def _quiet_and_cpu(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    yield
    torch.use_deterministic_algorithms(False)  # seed_everything(deterministic=True) is process-wide


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each test sets up Accelerate's process-wide state alone, and leaves none behind.

    Accelerate fixes device and mixed precision for the whole process at the first
    ``Accelerator`` (``fit`` refuses to switch), so a test that trains in bf16 must neither see
    nor leave the fp32 state of another. Accelerate has no public reset: this is what its own test
    case (``accelerate.test_utils.testing.AccelerateTestCase``) does, and it stays in the tests.
    """
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
