"""Shared fixtures. ``synth_root`` is one small synthetic nuScenes-format dataset per test session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataroot written by the synthetic world: 4 scenes (clear, rain, fog, night) x 4 samples, seed 0,
    version ``v1.0-synth``; splits ``synth_train`` (3 scenes) and ``synth_val`` (1 scene)."""
    from imkd_ros.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, scenes=4, samples_per_scene=4, seed=0, weathers=("clear", "rain", "fog", "night"))
    return root


@pytest.fixture(scope="session")
def surround_drive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A nuScenes-rig drive (six cameras exposed one after the other, five radars): 2 clear scenes x 3 keyframes,
    seed 5 (one of its radars sends a sweep of no points after the default filters), camera keyframes only; and a
    tiny surround student trained one epoch on it (1 thread). Returns ``(dataroot, checkpoint)``."""
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.training.train import TrainConfig, model_config_for, train

    root = tmp_path_factory.mktemp("surround")
    data = root / "data"
    write_dataset(data, scenes=2, samples_per_scene=3, seed=5, weathers=("clear",), camera_sweeps=False, workers=1,
                  rig="nuscenes")  # fmt: skip
    model = root / "surround_tiny.pt"
    cfg = TrainConfig(epochs=1, batch_size=2, lr=3e-3, seed=0, val_every=10**6)
    with torch_threads(1):
        train(data, model, model_config_for("fusion", "tiny", "surround"), cfg, progress=False)
    return data, model


@pytest.fixture(scope="session")
def synth_unlabelled_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A label-scarce dataroot: 3 scenes (clear, rain, fog) x 2 samples, seed 0, camera keyframes only, written with
    ``unlabelled_scenes=1``: ``synth_train`` scene-0000, ``synth_unlabelled`` scene-0001 (no annotations),
    ``synth_val`` scene-0002."""
    from imkd_ros.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth_unlabelled")
    write_dataset(
        root,
        scenes=3,
        samples_per_scene=2,
        seed=0,
        weathers=("clear", "rain", "fog"),
        camera_sweeps=False,
        workers=1,
        unlabelled_scenes=1,
    )
    return root


def stop_after(epoch: int) -> Callable[[int], None]:
    """``train(..., on_epoch=stop_after(n))`` is interrupted (KeyboardInterrupt) right after epoch ``n``'s training
    state and logs are written, as a Ctrl-C there would."""

    def hook(done: int) -> None:
        if done == epoch:
            raise KeyboardInterrupt

    return hook


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch runs on ``n`` threads inside the block (the float sums, and so the bits, of a forward pass depend on
    the thread count: tests that compare bits run on one); the old count is restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """The test runs with one torch thread (:func:`torch_threads`). A folder's conftest makes it the rule there with
    an autouse fixture that requests it; a module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with torch_threads(1):
        yield


def assert_same_boxes(have: Any, want: Any, key: str = "") -> int:
    """``have`` and ``want`` (:class:`imkd_ros.core.types.Boxes`, same order) are the same detections: labels equal,
    centres, sizes and velocities within 1e-4, scores within 1e-5; at least one box. Returns the box count."""
    import numpy as np

    assert len(have) == len(want) > 0, (key, len(have), len(want))
    np.testing.assert_array_equal(have.label, want.label, err_msg=key)
    for field in ("center", "size", "velocity"):
        np.testing.assert_allclose(getattr(have, field), getattr(want, field), atol=1e-4, err_msg=f"{key} {field}")
    np.testing.assert_allclose(have.score, want.score, atol=1e-5, err_msg=key)
    return len(want)
