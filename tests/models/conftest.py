"""Model tests run on small tensors, where intra-op threads only add synchronisation (badly
so on a busy CI machine): run them on one thread and restore the setting afterwards."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
