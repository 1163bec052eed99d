"""imkd_ros.core.geometry: pose interpolation, the pose lookup at a stamp (with and without an end tolerance: the node's
PoseBuffer and the bag source's ego_pose_at) and mounting parameters, one test per function."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.core.geometry import interpolate_pose, pose_at, pose_parameter, slerp
from imkd_ros.core.transforms import Pose, quat_to_yaw, yaw_to_quat

MS = 1_000_000  # ns


def test_slerp_keeps_unit_length_and_takes_the_short_way() -> None:
    q0, q1 = yaw_to_quat(0.0), yaw_to_quat(1.0)
    np.testing.assert_allclose(slerp(q0, q1, 0.0), q0, atol=1e-12)
    np.testing.assert_allclose(slerp(q0, q1, 1.0), q1, atol=1e-12)
    assert quat_to_yaw(slerp(q0, q1, 0.25)) == pytest.approx(0.25)
    assert np.linalg.norm(slerp(q0, q1, 0.3)) == pytest.approx(1.0)
    # q and -q are one rotation: interpolating towards -q1 is interpolating towards q1
    np.testing.assert_allclose(slerp(q0, -q1, 0.5), slerp(q0, q1, 0.5), atol=1e-12)
    # nearly equal quaternions (linear branch) stay normalised
    assert quat_to_yaw(slerp(q0, yaw_to_quat(1e-4), 0.5)) == pytest.approx(5e-5)


def test_interpolate_pose_is_linear_in_translation_and_slerps_rotation() -> None:
    a, b = Pose.from_yaw(0.0, [0, 0, 0]), Pose.from_yaw(0.4, [10, 2, 0])
    mid = interpolate_pose(a, b, 0.25)
    np.testing.assert_allclose(mid.translation, [2.5, 0.5, 0], atol=1e-12)
    assert mid.yaw == pytest.approx(0.1)
    p = interpolate_pose(Pose.from_yaw(3.0, [0, 0, 0]), Pose.from_yaw(-3.0, [0, 0, 0]), 0.5)
    assert abs(abs(p.yaw) - np.pi) < 1e-9  # the short way round, across +-pi


def test_pose_at_exact_interpolated_gaps_and_ends() -> None:
    a, b, c = Pose.from_yaw(0.0, [0, 0, 0]), Pose.from_yaw(0.4, [10, 2, 0]), Pose.from_yaw(0.0, [20, 0, 0])
    stamps, poses = [0, 100 * MS, 900 * MS], [a, b, c]
    assert pose_at([], [], 0, max_gap_ns=10**9) is None
    assert pose_at(stamps, poses, 100 * MS, max_gap_ns=500 * MS) is b  # exact: the recorded pose itself
    mid = pose_at(stamps, poses, 25 * MS, max_gap_ns=500 * MS)
    np.testing.assert_allclose(mid.translation, [2.5, 0.5, 0], atol=1e-12)
    assert pose_at(stamps, poses, 500 * MS, max_gap_ns=500 * MS) is None  # neighbours 800 ms apart
    assert pose_at(stamps, poses, 500 * MS, max_gap_ns=800 * MS) is not None
    # without an end tolerance (the bag source): nothing outside the poses
    assert pose_at(stamps, poses, 910 * MS, max_gap_ns=500 * MS) is None
    assert pose_at(stamps, poses, -1, max_gap_ns=500 * MS) is None
    # with one (the node's PoseBuffer): the end pose within it, nothing beyond
    assert pose_at(stamps, poses, 910 * MS, max_gap_ns=500 * MS, end_tolerance_ns=20 * MS) is c
    assert pose_at(stamps, poses, -20 * MS, max_gap_ns=500 * MS, end_tolerance_ns=20 * MS) is a
    assert pose_at(stamps, poses, 930 * MS, max_gap_ns=500 * MS, end_tolerance_ns=20 * MS) is None


def test_pose_parameter_reads_a_mounting_and_names_bad_ones() -> None:
    pose = pose_parameter([1.0, 2.0, 3.0], list(yaw_to_quat(0.5)), "radar_to_base.front")
    np.testing.assert_allclose(pose.translation, [1, 2, 3])
    assert pose.yaw == pytest.approx(0.5)
    with pytest.raises(ValueError, match="parameter lidar_to_base: need translation"):
        pose_parameter([1.0, 2.0], [1.0, 0.0, 0.0, 0.0], "lidar_to_base")
    with pytest.raises(ValueError, match="parameter camera: need translation"):
        pose_parameter([1.0, 2.0, float("nan")], [1.0, 0.0, 0.0, 0.0], "camera")
    with pytest.raises(ValueError, match="parameter camera.rotation is a zero quaternion"):
        pose_parameter([1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0], "camera")
