"""The one sweep selection and sweep -> reference-ego transform (:mod:`imkd_ros.core.sweeps`)."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.core.sweeps import (
    SweepWindow,
    lag_seconds,
    lidar_sweep_to_ref,
    radar_sweep_to_ref,
    select_sweeps,
    sweep_to_ref,
)
from imkd_ros.core.transforms import Pose, yaw_to_quat

MS = 1_000_000


def test_key_sweep_is_the_newest_at_or_before_the_reference() -> None:
    stamps = [0, 77 * MS, 154 * MS, 231 * MS]
    w = SweepWindow(count=6, max_delay=0.1, max_age=0.6)
    assert select_sweeps(stamps, 200 * MS, w) == [2, 1, 0]  # 231 ms is after the camera: never used
    assert select_sweeps(stamps, 231 * MS, w) == [3, 2, 1, 0]  # a sweep exactly at the camera stamp is used
    assert select_sweeps(stamps, 231 * MS - 1, w) == [2, 1, 0]
    assert select_sweeps(stamps, -1, w) == []  # nothing before the camera


def test_window_limits() -> None:
    stamps = list(range(0, 1000 * MS, 50 * MS))  # 20 Hz
    assert select_sweeps(stamps, 520 * MS, SweepWindow(count=3)) == [10, 9, 8]
    assert select_sweeps(stamps, 520 * MS, SweepWindow(count=20, max_age=0.22)) == [10, 9, 8, 7, 6]
    # the key sweep older than max_delay: no frame
    assert select_sweeps([0, 10 * MS], 111 * MS, SweepWindow(max_delay=0.1)) == []
    assert select_sweeps([0, 10 * MS], 110 * MS, SweepWindow(max_delay=0.1)) == [1, 0]
    with pytest.raises(ValueError, match="count"):
        SweepWindow(count=0)
    with pytest.raises(ValueError, match="max_delay"):
        SweepWindow(max_delay=0)


def test_radar_sweep_moved_rotated_and_advanced() -> None:
    """A point 10 m ahead of a radar mounted 2 m forward, moving at 5 m/s radially, 0.1 s old, seen after the ego
    turned by 90 degrees on the spot: moved into the new ego frame, velocity rotated, advanced by v * lag."""
    mount = Pose.from_quat([1, 0, 0, 0], [2.0, 0.0, 0.5])
    sweep_ego = Pose.identity()
    ref_ego = Pose.from_quat(yaw_to_quat(np.pi / 2), [0.0, 0.0, 0.0])
    pose = sweep_to_ref(mount, sweep_ego, ref_ego)
    pts = np.array([[10.0, 0.0, 0.0, 7.0, 5.0, 0.0]])
    out = radar_sweep_to_ref(pts, pose, lag_seconds(300 * MS, 200 * MS))
    # ego x of the old frame is -y of the new one
    np.testing.assert_allclose(out[0, :3], [0.0, -12.0 - 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(out[0, 4:6], [0.0, -5.0], atol=1e-6)
    assert out[0, 3] == 7.0 and out[0, 6] == pytest.approx(0.1)
    # without ego poses the ego stands still: only the mounting
    assert sweep_to_ref(mount, None, ref_ego) is mount and sweep_to_ref(mount, sweep_ego, None) is mount
    # a negative lag (never produced by the causal selection) moves points back but gives time_lag 0
    assert radar_sweep_to_ref(pts, mount, -0.02)[0, 6] == 0.0


def test_lidar_sweep_keeps_intensity_and_ring() -> None:
    pts = np.array([[1.0, 2.0, 3.0, 0.4, 17.0]], dtype=np.float32)
    out = lidar_sweep_to_ref(pts, Pose.from_quat([1, 0, 0, 0], [1.0, 0.0, 2.0]), 0.05)
    np.testing.assert_allclose(out[0], [2.0, 2.0, 5.0, 0.4, 17.0, 0.05], rtol=1e-6)
    assert out.dtype == np.float32


def test_lag_is_exact_in_nanoseconds() -> None:
    assert lag_seconds(1_533_000_000_123_456_000, 1_533_000_000_023_456_000) == pytest.approx(0.1, abs=1e-12)


def test_node_parameters_are_the_training_window() -> None:
    """The node pairs with the window the reader trains and evaluates with (config/detector.yaml vs the
    defaults of :class:`SweepWindow` and the shipped model's radar sweeps)."""
    from imkd_ros.model import ModelConfig
    from imkd_ros.pipeline.detector_params import default_parameters

    p = default_parameters()
    w = SweepWindow()
    assert p["max_camera_radar_delay"] == w.max_delay and p["max_sweep_age"] == w.max_age
    assert p["radar_sweeps"] == ModelConfig.default(("camera", "radar")).radar.sweeps
