"""Detector message conversions as plain functions: detections and markers, CameraInfo, radar clouds, and the
Frame assembly (checked against the dataset reader on the same sweeps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imkd_ros.bag.interfaces import InterfaceError
from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes
from imkd_ros.data.pcd import RADAR_PCD_DTYPE, read_radar_pcd
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.data.synth.rig import RIG
from imkd_ros.pipeline.assemble import FrameInputError, check_image, radar_cloud_points
from imkd_ros.ros.convert import ConversionError, array_to_pointcloud2, pointcloud2_to_array
from imkd_ros.ros.messages import (
    RADAR_MSG_FIELDS,
    assemble_frame,
    boxes_to_detections,
    boxes_to_markers,
    boxes_to_objects,
    calibration_to_camera_info,
    camera_info_to_calibration,
    detections_to_boxes,
    make_header,
    ns_to_stamp,
    pose_msg_to_pose,
    pose_to_msg,
    stamp_to_ns,
)


def _boxes() -> Boxes:
    return Boxes(
        center=[[10.0, 2.0, 0.8], [25.5, -4.0, 1.1], [7.0, 0.5, 0.6]],
        size=[[1.9, 4.5, 1.6], [2.9, 12.0, 3.5], [0.7, 0.8, 1.8]],
        yaw=[0.3, -2.9, 1.57],
        velocity=[[5.0, -1.0], [np.nan, np.nan], [0.1, 0.2]],
        label=[CLASSES.index("car"), CLASSES.index("bus"), CLASSES.index("pedestrian")],
        score=[0.9, 0.55, 0.31],
    )


def test_stamps_and_poses_round_trip() -> None:
    for ns in (0, 1, 1_700_000_000_123_456_789):
        assert stamp_to_ns(ns_to_stamp(ns)) == ns
    pose = Pose.from_quat([0.5, -0.5, 0.5, -0.5], [1.7, 0.02, 1.51])
    back = pose_msg_to_pose(pose_to_msg(pose))
    np.testing.assert_allclose(back.matrix(), pose.matrix(), atol=1e-12)
    bad = pose_to_msg(pose)
    bad.orientation.w = bad.orientation.x = bad.orientation.y = bad.orientation.z = 0.0
    with pytest.raises(ConversionError, match="zero quaternion"):
        pose_msg_to_pose(bad)


def test_detections_round_trip_with_header_classes_and_velocity() -> None:
    boxes = _boxes()
    header = make_header(1_234_567_890_123, "base_link")
    msg = boxes_to_detections(boxes, header)
    assert msg.header.stamp.sec == 1234 and msg.header.stamp.nanosec == 567_890_123
    assert msg.header.frame_id == "base_link" and len(msg.detections) == 3
    d = msg.detections[1]
    assert d.results[0].hypothesis.class_id == "bus" and d.results[0].hypothesis.score == pytest.approx(0.55)
    assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == (12.0, 2.9, 3.5)  # length along the heading first
    assert d.results[0].pose.pose == d.bbox.center and d.header == header
    assert [d.id for d in msg.detections] == ["0", "1", "2"]  # an identifier, no payload
    objects = boxes_to_objects(boxes, header)
    back = detections_to_boxes(msg, objects=objects)
    np.testing.assert_allclose(back.center, boxes.center)
    np.testing.assert_allclose(back.size, boxes.size)
    np.testing.assert_allclose(np.cos(back.yaw - boxes.yaw), 1.0, atol=1e-12)
    np.testing.assert_array_equal(back.label, boxes.label)
    np.testing.assert_allclose(back.score, boxes.score)
    np.testing.assert_allclose(back.velocity, boxes.velocity, atol=1e-12)  # NaN stays NaN
    assert np.isnan(back.velocity[1]).all()
    assert np.isnan(detections_to_boxes(msg).velocity).all()  # no DetectedObjects: no velocity
    assert len(detections_to_boxes(boxes_to_detections(Boxes.empty(), header))) == 0
    other = boxes_to_objects(boxes[:2], header)
    with pytest.raises(InterfaceError, match="does not belong"):
        detections_to_boxes(msg, objects=other)
    msg.detections[0].results[0].hypothesis.class_id = "unicorn"
    with pytest.raises(InterfaceError, match="unknown class_id 'unicorn'"):
        detections_to_boxes(msg)


def test_detected_objects_follow_autoware_conventions() -> None:
    from autoware_perception_msgs.msg import DetectedObjectKinematics, ObjectClassification, Shape

    boxes = _boxes()
    header = make_header(1_234_567_890_123, "base_link")
    msg = boxes_to_objects(boxes, header)
    assert msg.header == header and len(msg.objects) == 3
    car, bus, ped = msg.objects
    assert car.existence_probability == pytest.approx(0.9)
    assert [(c.label, c.probability) for c in car.classification] == [(ObjectClassification.CAR, 1.0)]
    assert bus.classification[0].label == ObjectClassification.BUS
    assert ped.classification[0].label == ObjectClassification.PEDESTRIAN
    k = car.kinematics
    assert k.orientation_availability == DetectedObjectKinematics.AVAILABLE and not k.has_position_covariance
    assert k.has_twist and not k.has_twist_covariance and not bus.kinematics.has_twist  # NaN velocity: no twist
    # twist in the object frame: (5, -1) m/s in base_link seen from a box heading 0.3 rad
    c, s = np.cos(0.3), np.sin(0.3)
    lin = k.twist_with_covariance.twist.linear
    assert (lin.x, lin.y, lin.z) == pytest.approx((5 * c - s, -5 * s - c, 0.0))
    p = k.pose_with_covariance.pose
    assert (p.position.x, p.position.y, p.position.z) == (10.0, 2.0, 0.8)
    assert p.orientation.z == pytest.approx(np.sin(0.15)) and p.orientation.w == pytest.approx(np.cos(0.15))
    assert car.shape.type == Shape.BOUNDING_BOX and len(car.shape.footprint.points) == 0
    assert (car.shape.dimensions.x, car.shape.dimensions.y, car.shape.dimensions.z) == (4.5, 1.9, 1.6)


def test_markers_are_well_formed() -> None:
    from visualization_msgs.msg import Marker

    boxes = _boxes()
    header = make_header(5, "base_link")
    markers = boxes_to_markers(boxes, header).markers
    assert markers[0].action == Marker.DELETEALL
    by_ns: dict[str, list] = {}
    for m in markers[1:]:
        by_ns.setdefault(m.ns, []).append(m)
        assert m.header == header and m.action == Marker.ADD
        assert abs(m.pose.orientation.w - 1.0) < 1e-12
    assert sorted(by_ns) == ["boxes", "labels", "velocity"]
    assert [m.id for m in by_ns["boxes"]] == [0, 1, 2] and [m.id for m in by_ns["labels"]] == [0, 1, 2]
    assert [m.id for m in by_ns["velocity"]] == [0]  # NaN and 0.22 m/s get no arrow
    for i, m in enumerate(by_ns["boxes"]):
        assert m.type == Marker.LINE_LIST and len(m.points) == 10 and m.scale.x > 0 and m.color.a == 1.0
        pts = np.array([[p.x, p.y] for p in m.points[:8]])
        np.testing.assert_allclose(pts.mean(axis=0), boxes.center[i, :2], atol=1e-9)  # footprint around the centre
        ring = np.array([[p.x, p.y] for p in m.points[0:8:2]])
        edges = np.linalg.norm(np.diff(np.vstack([ring, ring[:1]]), axis=0), axis=1)
        np.testing.assert_allclose(sorted(edges), sorted([boxes.size[i, 0]] * 2 + [boxes.size[i, 1]] * 2))
    assert by_ns["labels"][1].text == "bus 0.55" and by_ns["labels"][1].type == Marker.TEXT_VIEW_FACING
    arrow = by_ns["velocity"][0]
    assert arrow.type == Marker.ARROW and len(arrow.points) == 2
    assert (arrow.points[1].x - arrow.points[0].x, arrow.points[1].y - arrow.points[0].y) == (5.0, -1.0)
    assert len(boxes_to_markers(Boxes.empty(), header).markers) == 1


def test_camera_info_round_trip_and_checks() -> None:
    cal = RIG["CAM_FRONT"]
    info = calibration_to_camera_info(cal, make_header(0, "cam_front"))
    back = camera_info_to_calibration(info, cal.sensor_to_ego, "CAM_FRONT")
    np.testing.assert_array_equal(back.intrinsic, cal.intrinsic)
    assert back.image_size == (1600, 900) and back.sensor_to_ego is cal.sensor_to_ego
    check_image(np.zeros((900, 1600, 3), np.uint8), back)
    with pytest.raises(FrameInputError, match="image size 800x450 does not match CameraInfo 1600x900"):
        check_image(np.zeros((450, 800, 3), np.uint8), back)
    info.k = [0.0] * 9
    with pytest.raises(ConversionError, match="unusable camera matrix"):
        camera_info_to_calibration(info, cal.sensor_to_ego)
    info.width = 0
    with pytest.raises(ConversionError, match="size 0x900"):
        camera_info_to_calibration(info, cal.sensor_to_ego)


def _radar_cloud(n: int, rng: np.random.Generator) -> np.ndarray:
    pts = np.zeros(n, dtype=RADAR_PCD_DTYPE)
    for name in ("x", "y", "z", "rcs", "vx", "vy", "vx_comp", "vy_comp"):
        pts[name] = rng.normal(0, 5, n)
    pts["ambig_state"] = 3
    return pts


def radar_points(msg: object, **kwargs: object) -> np.ndarray:
    """What the node does with a radar message: the cloud's points, checked (``FrameAssembler.add_radar``)."""
    return radar_cloud_points(pointcloud2_to_array(msg), **kwargs)


def test_radar_points_from_a_full_nuscenes_cloud_and_bad_clouds() -> None:
    rng = np.random.default_rng(0)
    pts = _radar_cloud(40, rng)
    pts["invalid_state"][:5] = 1  # rejected by the devkit's default filters
    out = radar_points(array_to_pointcloud2(pts))
    assert out.shape == (35, 6) and out.dtype == np.float32
    expected = np.stack([pts[n][5:] for n in RADAR_MSG_FIELDS], axis=1)
    np.testing.assert_array_equal(out, expected)
    assert radar_points(array_to_pointcloud2(pts), default_filters=False).shape == (40, 6)
    only6 = np.zeros(3, dtype=[(n, "<f4") for n in RADAR_MSG_FIELDS])
    assert radar_points(array_to_pointcloud2(only6)).shape == (3, 6)  # no state fields: used as they are

    with pytest.raises(FrameInputError, match="no field 'rcs'"):
        radar_points(array_to_pointcloud2(pts[["x", "y", "z", "vx_comp", "vy_comp"]]))
    assert radar_points(array_to_pointcloud2(pts[:0])).shape == (0, 6)  # a sweep of no points
    nan = pts.copy()
    nan["vx_comp"][7] = np.nan
    with pytest.raises(FrameInputError, match="1 of 35 points with NaN"):
        radar_points(array_to_pointcloud2(nan))
    with pytest.raises(FrameInputError, match="40 points, more than max_radar_points 10"):
        radar_points(array_to_pointcloud2(pts), max_points=10)
    bad = pts.copy()
    bad["invalid_state"] = 1
    assert radar_points(array_to_pointcloud2(bad)).shape == (0, 6)  # every point filtered: no points


def test_assembled_frame_radar_matches_the_dataset_reader(synth_root: Path) -> None:
    """The node's frame assembly, fed the reader's own sweeps and ego poses, gives the reader's radar array."""
    reader = NuScenesReader(synth_root, load_lidar=False, load_image=False)
    token = reader.split_samples("synth_val")[2]
    expected = reader.frame(token)
    cam_sd = reader.keyframe_token(token, "CAM_FRONT")
    ref_ns = reader.sample_data(cam_sd)["timestamp"] * 1000
    poses = {ref_ns: reader.ego_pose_of(cam_sd)}
    sweeps = []
    sd = reader.keyframe_token(token, "RADAR_FRONT")
    for _ in range(6):
        rec = reader.sample_data(sd)
        raw = read_radar_pcd(synth_root / rec["filename"])
        points = np.stack([raw[n] for n in RADAR_MSG_FIELDS], axis=1).astype(np.float32)
        poses[rec["timestamp"] * 1000] = reader.ego_pose_of(sd)
        sweeps.append((rec["timestamp"] * 1000, points, reader.sensor_to_ego(sd)))
        sd = rec["prev"]
        if not sd:
            break
    assert len(sweeps) > 1
    view = [(ref_ns, np.zeros((900, 1600, 3), np.uint8), expected.camera)]
    frame = assemble_frame(ref_ns, view, sweeps, poses.get)
    assert frame.timestamp == expected.timestamp and frame.radar.dtype == np.float32
    np.testing.assert_allclose(frame.radar, expected.radar, atol=1e-4)
    np.testing.assert_allclose(frame.ego_pose.matrix(), expected.ego_pose.matrix(), atol=1e-12)
    # without poses the ego is taken as standing still: older sweeps land elsewhere (the ego moves in the scene)
    static = assemble_frame(ref_ns, view, sweeps)
    moved = np.abs(static.radar[:, :2] - expected.radar[:, :2]).max()
    assert moved > 0.5
