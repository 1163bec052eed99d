"""Core types: Boxes frame changes, corners, containment; Calibration projection."""

from __future__ import annotations

import numpy as np
import pytest
from nuscenes.utils.data_classes import Box
from nuscenes.utils.geometry_utils import points_in_box
from pyquaternion import Quaternion

from imkd_ros.core.transforms import Pose, quat_to_matrix
from imkd_ros.core.types import Boxes, Calibration


def some_boxes() -> Boxes:
    return Boxes(
        center=[[10.0, 2.0, 0.9], [-5.0, -3.0, 1.2]],
        size=[[2.0, 4.5, 1.6], [0.7, 0.7, 1.8]],
        yaw=[0.3, -2.0],
        velocity=[[5.0, 1.0], [0.0, 1.2]],
        label=[0, 8],
        score=[1.0, 0.5],
        frame="ego",
        tokens=["a", "b"],
    )


def test_boxes_transform_round_trip_and_velocity_rotation() -> None:
    b = some_boxes()
    pose = Pose.from_yaw(1.0, [100.0, -50.0, 0.0])
    g = b.transform(pose, "global")
    assert g.frame == "global"
    back = g.transform(pose.inverse(), "ego")
    np.testing.assert_allclose(back.center, b.center, atol=1e-9)
    np.testing.assert_allclose(back.yaw, b.yaw, atol=1e-9)
    np.testing.assert_allclose(back.velocity, b.velocity, atol=1e-9)
    # speed is frame invariant; direction rotates with the yaw
    np.testing.assert_allclose(np.linalg.norm(g.velocity, axis=1), np.linalg.norm(b.velocity, axis=1))
    np.testing.assert_allclose(g.velocity[0], quat_to_matrix([np.cos(0.5), 0, 0, np.sin(0.5)])[:2, :2] @ [5.0, 1.0])


def test_corners_match_devkit() -> None:
    b = some_boxes()
    for i in range(len(b)):
        devkit = Box(b.center[i], b.size[i], Quaternion(axis=[0, 0, 1], angle=b.yaw[i])).corners().T  # (8, 3)
        ours = b.corners()[i]
        # same set of corners (the devkit orders them differently)
        d = np.linalg.norm(ours[:, None, :] - devkit[None, :, :], axis=-1)
        assert d.min(axis=1).max() < 1e-9


def test_contains_matches_devkit_points_in_box() -> None:
    b = some_boxes()
    pts = np.random.default_rng(0).uniform([-8, -6, -1], [14, 6, 3], size=(4000, 3))
    ours = b.contains(pts)
    for i in range(len(b)):
        box = Box(b.center[i], b.size[i], Quaternion(axis=[0, 0, 1], angle=b.yaw[i]))
        np.testing.assert_array_equal(ours[i], points_in_box(box, pts.T))
    assert ours.sum() > 20


def test_boxes_subset_and_validation() -> None:
    b = some_boxes()
    s = b[np.array([False, True])]
    assert len(s) == 1 and s.tokens == ["b"] and s.class_names == ["pedestrian"]
    assert len(Boxes.empty()) == 0
    with pytest.raises(ValueError, match="label"):
        Boxes([[0, 0, 0]], [[1, 1, 1]], [0], [[0, 0]], [10], [1])


def test_calibration_projects_known_point() -> None:
    k = np.array([[1000.0, 0, 800], [0, 1000.0, 450], [0, 0, 1]])
    cam_q = [0.5, -0.5, 0.5, -0.5]  # optical axis along ego +x, image x along ego -y, image y along ego -z
    calib = Calibration("CAM_FRONT", Pose.from_quat(cam_q, [1.5, 0.0, 1.5]), k, (1600, 900))
    uv, depth = calib.project(np.array([[11.5, 0.0, 1.5], [11.5, -1.0, 0.5], [-5.0, 0.0, 1.5]]))
    np.testing.assert_allclose(uv[0], [800, 450], atol=1e-9)
    np.testing.assert_allclose(depth[:2], [10.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(uv[1], [900, 550], atol=1e-9)  # right of centre and below
    assert depth[2] < 0
    with pytest.raises(ValueError, match="not a camera"):
        Calibration("RADAR_FRONT", Pose.identity()).project(np.zeros((1, 3)))
