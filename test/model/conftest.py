"""Model tests run torch single-threaded: the tiny models gain nothing from more threads, and on a shared 2-core
machine OpenMP threads competing with other processes make steps tens of times slower."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (test/conftest.py)."""
