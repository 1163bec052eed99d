"""Transforms: round trips, known values, and nuScenes' quaternion/yaw conventions (checked against pyquaternion
and the devkit, which are independent implementations)."""

from __future__ import annotations

import numpy as np
import pytest
from nuscenes.eval.common.utils import quaternion_yaw
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from imkd_ros.core.transforms import Pose, matrix_to_quat, quat_to_matrix, quat_to_yaw, wrap_angle, yaw_to_quat

# A real nuScenes CAM_FRONT calibrated_sensor rotation (w, x, y, z) and a LIDAR_TOP one.
CAM_FRONT_Q = [0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755]
LIDAR_TOP_Q = [0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817]


def random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("q", list(random_quats(20)) + [CAM_FRONT_Q, LIDAR_TOP_Q])
def test_quat_matrix_matches_pyquaternion_and_round_trips(q: np.ndarray) -> None:
    np.testing.assert_allclose(quat_to_matrix(q), Quaternion(q).rotation_matrix, atol=1e-12)
    back = matrix_to_quat(quat_to_matrix(q))
    # q and -q are the same rotation
    assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-9


@pytest.mark.parametrize("yaw", np.linspace(-np.pi + 1e-6, np.pi, 13))
def test_yaw_quaternion_conventions_match_devkit(yaw: float) -> None:
    q = yaw_to_quat(yaw)
    np.testing.assert_allclose(q, Quaternion(axis=[0, 0, 1], angle=yaw).q, atol=1e-12)
    assert quat_to_yaw(q) == pytest.approx(quaternion_yaw(Quaternion(q)), abs=1e-12)
    assert quat_to_yaw(q) == pytest.approx(float(wrap_angle(yaw)), abs=1e-9) or abs(abs(yaw) - np.pi) < 1e-5


def test_camera_front_known_axes() -> None:
    """nuScenes CAM_FRONT: optical axis (camera z) points along ego +x, camera x to ego -y, camera y to ego -z."""
    r = quat_to_matrix(CAM_FRONT_Q)
    np.testing.assert_allclose(r @ [0, 0, 1], [1, 0, 0], atol=0.02)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, -1, 0], atol=0.02)
    np.testing.assert_allclose(r @ [0, 1, 0], [0, 0, -1], atol=0.02)


def test_lidar_top_known_axes() -> None:
    """nuScenes LIDAR_TOP: sensor x points to ego -y (right), sensor y forward."""
    r = quat_to_matrix(LIDAR_TOP_Q)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, -1, 0], atol=0.03)
    np.testing.assert_allclose(r @ [0, 1, 0], [1, 0, 0], atol=0.03)


def test_pose_known_values_and_composition() -> None:
    ego_to_global = Pose.from_yaw(np.pi / 2, [10.0, 20.0, 0.0])
    # a point 1 m ahead of the ego lies 1 m along global +y from the ego
    np.testing.assert_allclose(ego_to_global.apply(np.array([[1.0, 0.0, 0.0]])), [[10.0, 21.0, 0.0]], atol=1e-12)
    sensor_to_ego = Pose.from_quat(CAM_FRONT_Q, [1.7, 0.0, 1.5])
    chain = ego_to_global @ sensor_to_ego
    p = np.random.default_rng(1).normal(size=(50, 3))
    np.testing.assert_allclose(chain.apply(p), ego_to_global.apply(sensor_to_ego.apply(p)), atol=1e-12)
    np.testing.assert_allclose(chain.matrix(), ego_to_global.matrix() @ sensor_to_ego.matrix(), atol=1e-12)


@pytest.mark.parametrize("q", list(random_quats(5, seed=3)))
def test_pose_inverse_round_trip(q: np.ndarray) -> None:
    pose = Pose.from_quat(q, [3.0, -2.0, 0.5])
    p = np.random.default_rng(2).normal(size=(30, 4))  # the 4th column is a feature, passed through
    back = pose.inverse().apply(pose.apply(p))
    np.testing.assert_allclose(back, p, atol=1e-12)
    np.testing.assert_allclose((pose @ pose.inverse()).matrix(), np.eye(4), atol=1e-12)


def test_pose_rejects_non_rotation() -> None:
    with pytest.raises(ValueError, match="rotation"):
        Pose(np.diag([1.0, 1.0, -1.0]), np.zeros(3))


def test_sensor_ego_global_chain_matches_devkit_box_ops() -> None:
    """The devkit moves a global box into a sensor frame with translate/rotate; our poses must agree."""
    ego_to_global = Pose.from_quat([0.9, 0.0, 0.0, 0.43], [400.0, 1100.0, 0.0])
    sensor_to_ego = Pose.from_quat(LIDAR_TOP_Q, [0.98, 0.0, 1.84])
    center, yaw = np.array([410.0, 1105.0, 1.0]), 0.3
    box = Box(center, [2.0, 4.5, 1.6], Quaternion(axis=[0, 0, 1], angle=yaw))
    box.translate(-ego_to_global.translation)
    box.rotate(Quaternion(ego_to_global.quat).inverse)
    box.translate(-sensor_to_ego.translation)
    box.rotate(Quaternion(sensor_to_ego.quat).inverse)
    global_to_sensor = (ego_to_global @ sensor_to_ego).inverse()
    np.testing.assert_allclose(global_to_sensor.apply(center[None])[0], box.center, atol=1e-9)
