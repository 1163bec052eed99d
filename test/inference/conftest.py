"""Fixtures of the inference tests: the shipped student, its ONNX export, and synthetic frames of every weather."""

from __future__ import annotations

from pathlib import Path

import pytest

from imkd_ros.core.shipped import resolve_checkpoint
from imkd_ros.core.types import Frame
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.inference.export_onnx import export_checkpoint


@pytest.fixture(scope="module")
def shipped() -> Path:
    return resolve_checkpoint("")


@pytest.fixture(scope="module")
def shipped_onnx(shipped: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_checkpoint(shipped, tmp_path_factory.mktemp("onnx") / "student.onnx")


@pytest.fixture(scope="module")
def frames(synth_root: Path) -> list[Frame]:
    """A fixed set: the 4 validation keyframes and 2 training ones (clear, rain, fog, night scenes)."""
    reader = NuScenesReader(synth_root, load_lidar=False)
    tokens = reader.split_samples("synth_val") + reader.split_samples("synth_train")[::6]
    return [reader.frame(t) for t in tokens]
