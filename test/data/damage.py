"""Damaged copies of a dataset for the bad-input tests: the tables are copied, every data file is a symbolic link to
the original (cheap), and the files a test damages are replaced by real, damaged files (the original is never
touched)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np


def linked_copy(root: Path, dst: Path) -> Path:
    """``dst``: the tables of ``root`` copied, its data files as symbolic links."""
    shutil.copytree(root, dst, copy_function=os.symlink, ignore=shutil.ignore_patterns("v1.0-*"))
    for v in root.glob("v1.0-*"):
        shutil.copytree(v, dst / v.name)
    return dst


def _own(path: Path) -> bytes:
    """Replace the link ``path`` by a copy of its target; returns the bytes."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    return data


def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Cut ``path`` (a file of a :func:`linked_copy`) to ``fraction`` of its bytes: a copy interrupted midway."""
    data = _own(path)
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def flip_bytes(path: Path, start: int = 2000, step: int = 997, seed: int = 0) -> Path:
    """Overwrite every ``step``-th byte from ``start`` to 100 bytes before the end with random bytes (bit rot in
    a JPEG's compressed data: its size and its start and end markers stay intact)."""
    data = bytearray(_own(path))
    rng = np.random.default_rng(seed)
    for i in range(start, len(data) - 100, step):
        data[i] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))
    return path
