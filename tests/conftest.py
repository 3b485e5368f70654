"""Fixtures shared by test modules (opt in with ``pytestmark = pytest.mark.usefixtures(...)``)."""

import pytest
import torch


@pytest.fixture()
def one_thread():
    """Tiny tensors: one thread is faster than several on a shared, busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
