"""Shared fixtures. ``synth_root`` is one small synthetic nuScenes-format dataset per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@pytest.fixture
def stop_training_after(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """``with stop_training_after(n): train(...)``: the run is interrupted (KeyboardInterrupt, expected) right after
    epoch ``n``'s training state and logs are written; outside the block training is untouched."""
    from contextlib import contextmanager

    from imkd_ros import train as train_mod

    real = train_mod._write_logs

    @contextmanager
    def after(epoch: int):  # noqa: ANN202
        def stop(out: Path, history: list) -> None:
            real(out, history)
            if history[-1]["epoch"] == epoch:
                raise KeyboardInterrupt

        monkeypatch.setattr(train_mod, "_write_logs", stop)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(train_mod, "_write_logs", real)

    return after


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
