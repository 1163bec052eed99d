"""The detector node's ROS-free part (:mod:`imkd_ros.pipeline.assemble`): frames from camera, radar clouds and ego
poses; bad input named and left out; the poses forgotten when time jumps back; the marker layout shared by the
node's rclpy markers and the replay's rosbags markers."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes, Calibration
from imkd_ros.pipeline.assemble import FrameAssembler, FrameInputError, marker_specs, radar_cloud_points

MS = 1_000_000  # ns
_K = np.array([[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]])


def _cloud(n: int, x: float = 10.0, vx: float = 0.0) -> np.ndarray:
    names = ("x", "y", "z", "rcs", "vx_comp", "vy_comp", "dyn_prop", "ambig_state", "invalid_state")
    cloud = np.zeros(n, dtype=[(f, "<f4") for f in names[:6]] + [(f, "i1") for f in names[6:]])
    cloud["x"], cloud["vx_comp"], cloud["ambig_state"] = x, vx, 3
    return cloud


def _assembler(**kw: object) -> FrameAssembler:
    asm = FrameAssembler({"front": Pose.from_yaw(0.0, [3.0, 0.0, 0.5])}, sweeps=3, **kw)
    asm.set_calibration(Calibration("CAM_FRONT", Pose.identity(), _K, (640, 480)))
    return asm


def test_frames_pair_camera_with_earlier_sweeps_moved_through_the_poses() -> None:
    asm = _assembler()
    for i in range(4):  # the ego drives +x at 10 m/s; radar at 0, 50, 100, 150 ms
        t = i * 50 * MS
        asm.add_pose(t, Pose.from_yaw(0.0, [0.5 * i, 0.0, 0.0]))
        assert asm.add_radar("front", t, _cloud(2))[0] is None
    asm.add_pose(160 * MS, Pose.from_yaw(0.0, [1.6, 0.0, 0.0]))
    done, events = asm.add_camera(160 * MS, np.zeros((480, 640, 3), np.uint8), extra="x")
    assert events == [] and done is not None and done.stamp == 160 * MS and done.extra == "x"
    assert done.sweeps == {"front": (150 * MS, 100 * MS, 50 * MS)}
    f = done.frame
    assert f.timestamp == 160_000 and f.radar.shape == (6, 7)
    # a point 10 m ahead of the radar (13 m ahead of base_link) at sweep time; the ego has moved on since
    np.testing.assert_allclose(f.radar[:, 0], [13.0 - 0.1] * 2 + [13.0 - 0.6] * 2 + [13.0 - 1.1] * 2, atol=1e-5)
    np.testing.assert_allclose(f.radar[:, 6], [0.01] * 2 + [0.06] * 2 + [0.11] * 2, atol=1e-7)
    np.testing.assert_allclose(f.ego_pose.translation, [1.6, 0.0, 0.0])

    static = _assembler(use_ego_pose=False)
    for t in (50 * MS, 100 * MS, 150 * MS):
        static.add_pose(t, Pose.from_yaw(0.0, [t / MS / 100, 0.0, 0.0]))
        static.add_radar("front", t, _cloud(2))
    done, _ = static.add_camera(160 * MS, np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(done.frame.radar[:, 0], 13.0, atol=1e-5)  # poses not used: the ego stands still


def test_bad_input_is_named_and_changes_nothing() -> None:
    asm = FrameAssembler({"front": Pose.identity()})
    with pytest.raises(FrameInputError, match="no CameraInfo received yet"):
        asm.add_camera(0, np.zeros((480, 640, 3), np.uint8))
    asm = _assembler()
    with pytest.raises(FrameInputError, match="image size 320x240 does not match CameraInfo 640x480"):
        asm.add_camera(0, np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(FrameInputError, match="more than max_radar_points 3"):
        radar_cloud_points(_cloud(4), max_points=3)
    nan = _cloud(3)
    nan["rcs"][1] = np.nan
    with pytest.raises(FrameInputError, match="1 of 3 points with NaN"):
        asm.add_radar("front", 0, nan)
    with pytest.raises(FrameInputError, match="no field 'rcs'"):
        radar_cloud_points(_cloud(2)[["x", "y", "z", "vx_comp", "vy_comp"]])
    with pytest.raises(FrameInputError, match="no field 'rcs'"):  # fields are checked on an empty cloud too
        radar_cloud_points(_cloud(0)[["x", "y", "z", "vx_comp", "vy_comp"]])
    assert asm.sync.buffered("front") == [] and asm.sync.pending_stamp is None


def test_a_sweep_without_points_is_a_sweep_as_the_reader_counts_it() -> None:
    """An empty cloud, or one whose every point the default filters reject, is buffered as a sweep of no points:
    the next frame's key sweep is that one (as NuScenesReader selects it), not an older sweep with points."""
    invalid = _cloud(3)
    invalid["invalid_state"] = 1
    assert radar_cloud_points(invalid).shape == (0, 6) and radar_cloud_points(_cloud(0)).shape == (0, 6)
    assert radar_cloud_points(invalid, default_filters=False).shape == (3, 6)
    for empty in (_cloud(0), invalid):
        asm = _assembler()
        asm.add_radar("front", 0, _cloud(2))
        asm.add_radar("front", 50 * MS, empty)
        done, events = asm.add_camera(60 * MS, np.zeros((480, 640, 3), np.uint8))
        assert events == [] and done.sweeps == {"front": (50 * MS, 0)}
        assert done.frame.radar.shape == (2, 7)  # the earlier sweep's two points; the key sweep had none


def test_time_going_back_resets_the_sync_and_forgets_the_poses() -> None:
    asm = _assembler()
    asm.add_pose(10_000 * MS, Pose.identity())
    asm.add_radar("front", 10_000 * MS, _cloud(1))
    done, events = asm.add_radar("front", 0, _cloud(1))  # a bag played again from the start
    assert done is None and [e.kind for e in events] == ["time_reset"] and len(asm.poses) == 0


def test_a_camera_set_moves_each_camera_with_the_ego_poses_of_its_exposure() -> None:
    """Two cameras exposed 40 ms apart while the ego drives at 10 m/s: the later camera's mounting in the frame
    (ego at the reference stamp) is 0.4 m further ahead, as the dataset reader moves it; the frame waits for both."""
    cam_a = Calibration("a", Pose.from_yaw(0.0, [1.0, 0.0, 1.5]), _K, (640, 480))
    cam_b = Calibration("b", Pose.from_yaw(np.pi, [0.0, 0.0, 1.5]), _K, (640, 480))
    asm = FrameAssembler({"front": Pose.identity()}, sweeps=1, cameras=("a", "b"), camera_window=0.05)
    asm.set_calibration(cam_a, "a")
    asm.set_calibration(cam_b, "b")
    for i in range(6):
        asm.add_pose(i * 20 * MS, Pose.from_yaw(0.0, [0.2 * i, 0.0, 0.0]))
    asm.add_radar("front", 0, _cloud(2))
    img_a, img_b = np.zeros((480, 640, 3), np.uint8), np.ones((480, 640, 3), np.uint8)
    done, _ = asm.add_camera(20 * MS, img_a, "ta", camera="a")
    assert done is None  # b is missing
    done, events = asm.add_camera(60 * MS, img_b, "tb", camera="b")
    assert events == [] and done is not None and done.stamp == 20 * MS and done.extra == "tb"
    f = done.frame
    assert [c.channel for c in f.cameras] == ["a", "b"] and f.images[0] is img_a and f.images[1] is img_b
    np.testing.assert_allclose(f.cameras[0].sensor_to_ego.translation, [1.0, 0.0, 1.5])
    np.testing.assert_allclose(f.cameras[1].sensor_to_ego.translation, [0.4, 0.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(f.cameras[1].sensor_to_ego.rotation, cam_b.sensor_to_ego.rotation, atol=1e-12)
    with pytest.raises(FrameInputError, match="camera 'c' is not one of a, b"):
        asm.add_camera(100 * MS, img_a, camera="c")
    fresh = FrameAssembler({"front": Pose.identity()}, cameras=("a", "b"))
    fresh.set_calibration(cam_a, "a")
    with pytest.raises(FrameInputError, match="no CameraInfo received yet for b"):
        fresh.add_camera(0, img_b, camera="b")


def test_markers_of_the_node_and_of_the_replay_bag_are_the_same() -> None:
    """marker_specs feeds both builders: the rclpy MarkerArray of the node and the rosbags one of the replay's
    output bag deserialise to the same message."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray

    from imkd_ros.bag.convert import default_typestore, make_header
    from imkd_ros.bag.report import markers_msg
    from imkd_ros.ros.messages import boxes_to_markers
    from imkd_ros.ros.messages import make_header as rclpy_header

    rng = np.random.default_rng(3)
    n = 5
    vel = np.r_[rng.normal(0, 3, (n - 1, 2)), [[np.nan, np.nan]]]
    boxes = Boxes(
        rng.normal(0, 10, (n, 3)),
        rng.uniform(0.5, 4, (n, 3)),
        rng.uniform(-3, 3, n),
        vel,
        [0, 8, 9, 1, 0],
        rng.uniform(size=n),
    )
    specs = marker_specs(boxes)
    assert [s.ns for s in specs[:2]] == ["boxes", "labels"] and len(specs) == 2 * n + int(
        (np.hypot(*vel.T) > 0.5).sum()
    )
    store = default_typestore()
    raw = store.serialize_cdr(
        markers_msg(boxes, make_header(123 * MS, "base_link", store), store), "visualization_msgs/msg/MarkerArray"
    )
    from_bag = deserialize_message(bytes(raw), MarkerArray)
    node = boxes_to_markers(boxes, rclpy_header(123 * MS, "base_link"))
    assert from_bag == deserialize_message(serialize_message(node), MarkerArray)  # float32 colours on the wire
