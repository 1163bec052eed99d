"""Model tests run torch single-threaded: the tiny models gain nothing from more threads, and on a shared 2-core
machine OpenMP threads competing with other processes make steps tens of times slower."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
