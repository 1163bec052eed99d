"""Shared fixtures of the bag tests (the replay tests use them too):

* ``exported_bag``: the ``synth_val`` scene of ``synth_root`` exported to an MCAP bag with the default topics
  (:class:`imkd_ros.bag.topics.BagTopics`).
* ``bag_teacher``: an untrained tiny LiDAR teacher checkpoint (deterministic in eval mode).
* ``rewrite_bag``: copies a bag message by message, optionally changing messages on the way (corrupt bags).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

#: The scene ``exported_bag`` holds: ``synth_root``'s ``synth_val`` split (4 keyframes, about 2 s).
EXPORTED_SCENES: tuple[str, ...] = ("scene-0003",)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (test/conftest.py)."""


@pytest.fixture(scope="session")
def exported_bag(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synth_root``'s scene-0003 (the synth_val split) as an MCAP bag folder: rgb8 camera keyframes with
    CameraInfo, every radar and LiDAR sweep, tf/tf_static, ego pose and odometry, ground truth and sample tokens
    (see :mod:`imkd_ros.bag.export`). Read-only: tests that modify a bag copy it first."""
    from imkd_ros.bag.export import export_bag

    out = tmp_path_factory.mktemp("bag") / "synth_val"
    export_bag(synth_root, out, scenes=EXPORTED_SCENES, storage="mcap")
    return out


@pytest.fixture(scope="session")
def bag_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny LiDAR teacher checkpoint."""
    from imkd_ros.model import Teacher
    from imkd_ros.model.checkpoint import save_checkpoint
    from imkd_ros.training.train import model_config_for

    torch.manual_seed(0)
    cfg = model_config_for("lidar", "tiny")
    path = tmp_path_factory.mktemp("bag_teacher") / "teacher.pt"
    save_checkpoint(path, Teacher(config=cfg), cfg, {"note": "untrained test teacher"})
    return path


Mutate = Callable[[str, int, bytes], bytes | None]


def _rewrite(src: Path, dst: Path, mutate: Mutate | None = None, storage: str = "mcap") -> Path:
    """Copy bag ``src`` to the new bag ``dst`` (same connections, definitions and hashes); ``mutate(topic, log_ns,
    raw)`` may return other bytes for a message (or None to keep it)."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=plugin) as writer:
        conns: dict[int, Any] = {}
        for c in reader.connections:
            conns[c.id] = writer.add_connection(
                c.topic,
                c.msgtype,
                msgdef=c.msgdef.data,
                rihs01=c.digest,
                offered_qos_profiles=c.ext.offered_qos_profiles,
            )
        for c, log_ns, raw in reader.messages():
            new = mutate(c.topic, log_ns, bytes(raw)) if mutate is not None else None
            writer.write(conns[c.id], log_ns, raw if new is None else new)
    return dst


@pytest.fixture(scope="session")
def rewrite_bag() -> Callable[..., Path]:
    """``rewrite_bag(src, dst, mutate=None, storage="mcap") -> dst``: a message-by-message copy of a bag, where
    ``mutate(topic, log_ns, raw) -> bytes | None`` may replace a message's bytes."""
    return _rewrite


@pytest.fixture(scope="session")
def exported_all_bag(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four scenes of ``synth_root`` (16 keyframes) as one MCAP bag: scenes whose radar keyframes fall after
    the camera keyframe (the nuScenes convention and the causal selection disagree) and one where they do not."""
    from imkd_ros.bag.export import export_bag

    out = tmp_path_factory.mktemp("bag_all") / "synth_all"
    export_bag(synth_root, out, storage="mcap")
    return out
