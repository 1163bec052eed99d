"""The tf tree without tf2 (imkd_ros.pipeline.tf) and where the node's extrinsics come from
(imkd_ros.pipeline.extrinsics): chained lookups, merging by child frame, refused transforms (NaN, non-unit quaternions,
self-parenting), loops, unknown frames; tf over the parameters, the fallback after tf_wait, the last good mounting
kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imkd_ros.core.transforms import Pose, yaw_to_quat
from imkd_ros.pipeline.extrinsics import ExtrinsicsResolver
from imkd_ros.pipeline.tf import TfBuffer, TfError, transforms_of

RADAR = ([3.41, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0])
CAMERA = ([1.70, 0.02, 1.51], [0.5, -0.5, 0.5, -0.5])


def _buffer() -> TfBuffer:
    tf = TfBuffer()
    tf.set_transform("base_link", "radar_front", *RADAR, static=True)
    tf.set_transform("base_link", "cam_front", *CAMERA, static=True)
    tf.set_transform("map", "base_link", [100.0, 50.0, 0.0], yaw_to_quat(0.7))  # dynamic, above base_link
    return tf


def test_lookup_chains_and_inverts() -> None:
    tf = _buffer()
    radar = tf.lookup("base_link", "radar_front")
    np.testing.assert_allclose(radar.translation, RADAR[0])
    cam = tf.lookup("base_link", "cam_front")
    np.testing.assert_allclose(cam.matrix(), Pose.from_quat(CAMERA[1], CAMERA[0]).matrix(), atol=1e-12)
    # radar -> camera through base_link: 10 m ahead of the radar is 11.71 m ahead of the camera ...
    p = tf.lookup("cam_front", "radar_front").apply(np.array([[10.0, 0.0, 0.0]]))[0]
    np.testing.assert_allclose(p, [0.02, 1.01, 11.71], atol=1e-12)  # optical frame: x right, y down, z forward
    # ... and the dynamic map -> base_link above the common ancestor does not enter
    np.testing.assert_allclose(tf.lookup("base_link", "radar_front").matrix(), radar.matrix())
    m = tf.lookup("map", "radar_front")
    np.testing.assert_allclose(m.translation[:2], [100 + 3.41 * math.cos(0.7), 50 + 3.41 * math.sin(0.7)])
    np.testing.assert_allclose(tf.lookup("radar_front", "base_link").matrix(), radar.inverse().matrix(), atol=1e-12)
    np.testing.assert_array_equal(tf.lookup("base_link", "base_link").matrix(), np.eye(4))
    assert tf.lookup("/base_link", "/radar_front").translation[0] == pytest.approx(3.41)  # leading "/" dropped


def test_merge_by_child_across_publishers_and_versions() -> None:
    tf = TfBuffer()
    n = tf.add([("base_link", "radar_front", *RADAR, 1)], static=True)  # publisher A
    assert n == [] and tf.version == 1
    tf.add([("base_link", "cam_front", *CAMERA, 2)], static=True)  # publisher B: A's transform stays
    assert tf.can_transform("base_link", "radar_front") and tf.can_transform("base_link", "cam_front")
    tf.add([("base_link", "radar_front", [3.5, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 3)], static=True)  # replaced
    assert tf.lookup("base_link", "radar_front").translation[0] == 3.5 and len(tf) == 2 and tf.version == 3


@pytest.mark.parametrize(
    ("parent", "child", "t", "q", "match"),
    [
        ("base_link", "radar_front", [np.nan, 0, 0], [1, 0, 0, 0], "non-finite"),
        ("base_link", "radar_front", [0, 0, 0], [np.inf, 0, 0, 0], "non-finite"),
        ("base_link", "radar_front", [0, 0, 0], [2.0, 0, 0, 0], "not normalised"),
        ("base_link", "radar_front", [0, 0, 0], [0, 0, 0, 0], "not normalised"),
        ("base_link", "radar_front", [1e9, 0, 0], [1, 0, 0, 0], "beyond"),
        ("base_link", "base_link", [0, 0, 0], [1, 0, 0, 0], "own parent"),
        ("", "radar_front", [0, 0, 0], [1, 0, 0, 0], "empty frame id"),
        ("base_link", "/", [0, 0, 0], [1, 0, 0, 0], "empty frame id"),
    ],
)
def test_bad_transforms_are_refused_and_leave_the_tree(parent: str, child: str, t: list, q: list, match: str) -> None:
    tf = _buffer()
    before = tf.lookup("base_link", "radar_front").matrix()
    with pytest.raises(TfError, match=match):
        tf.set_transform(parent, child, t, q)
    np.testing.assert_array_equal(tf.lookup("base_link", "radar_front").matrix(), before)
    errors = tf.add([(parent, child, t, q, 0), ("base_link", "lidar_top", [0, 0, 1.8], [1, 0, 0, 0], 0)], static=True)
    assert len(errors) == 1 and tf.can_transform("base_link", "lidar_top")  # the good one of the message is kept


def test_near_unit_quaternions_are_normalised() -> None:
    tf = TfBuffer()
    tf.set_transform("base_link", "radar_front", [0, 0, 0], [1.004, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(tf.lookup("base_link", "radar_front").rotation, np.eye(3), atol=1e-12)


def test_loops_and_unknown_frames_are_errors_not_hangs() -> None:
    tf = _buffer()
    with pytest.raises(TfError, match="does not exist"):
        tf.lookup("base_link", "nope")
    tf.set_transform("x", "y", [0, 0, 0], [1, 0, 0, 0])
    with pytest.raises(TfError, match="not connected"):
        tf.lookup("base_link", "y")
    tf.set_transform("radar_front", "base_link", [0, 0, 0], [1, 0, 0, 0])  # base_link re-parented: a loop
    with pytest.raises(TfError, match="loop"):
        tf.lookup("base_link", "cam_front")
    deep = TfBuffer(max_depth=5)
    for i in range(10):
        deep.set_transform(f"f{i + 1}", f"f{i}", [1, 0, 0], [1, 0, 0, 0])
    with pytest.raises(TfError, match="deeper"):
        deep.lookup("f10", "f0")


def test_transforms_of_reads_tf_messages() -> None:
    from imkd_ros.bag.convert import make_header, tf_msg, transform_stamped_msg

    msg = tf_msg([transform_stamped_msg(CAMERA[1], CAMERA[0], make_header(7, "base_link"), "cam_front")])
    assert transforms_of(msg) == [("base_link", "cam_front", tuple(CAMERA[0]), tuple(CAMERA[1]), 7)]


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_extrinsics_tf_first_then_parameters_after_tf_wait() -> None:
    wrong = {"camera": Pose.identity(), "radar front": Pose.from_quat([1, 0, 0, 0], [-5.0, 0, 0])}
    tf, clock = TfBuffer(), _Clock()
    ex = ExtrinsicsResolver(tf, "base_link", wrong, "auto", tf_wait=5.0, clock=clock)
    assert "falls back" in ex.describe()
    assert ex.mounting("radar front", "radar_front") is None  # waiting for tf
    assert ex.states()["radar front"].source == "waiting" and ex.take_notes() == []
    tf.set_transform("base_link", "radar_front", *RADAR, static=True)
    pose = ex.mounting("radar front", "radar_front")
    assert pose is not None and pose.translation[0] == pytest.approx(3.41)  # tf wins over the (wrong) parameters
    assert ex.states()["radar front"].source == "tf" and "tf" in ex.take_notes()[0]
    # the camera: no tf for its frame; parameters after tf_wait, said once
    assert ex.mounting("camera", "cam_front") is None
    clock.t = 4.9
    assert ex.mounting("camera", "cam_front") is None
    clock.t = 5.0
    assert ex.mounting("camera", "cam_front") is wrong["camera"]
    notes = ex.take_notes()
    assert len(notes) == 1 and "parameters" in notes[0] and "cam_front" in notes[0]
    assert ex.mounting("camera", "cam_front") is wrong["camera"] and ex.take_notes() == []
    # tf for the camera appears later: tf again
    tf.set_transform("base_link", "cam_front", *CAMERA, static=True)
    assert ex.mounting("camera", "cam_front").translation[0] == pytest.approx(1.70)  # type: ignore[union-attr]
    assert ex.states()["camera"].source == "tf"


def test_extrinsics_keep_the_last_good_mounting_when_the_tree_breaks() -> None:
    tf = _buffer()
    ex = ExtrinsicsResolver(tf, "base_link", {}, "tf")
    good = ex.mounting("radar front", "radar_front")
    assert good is not None
    tf.set_transform("radar_front", "base_link", [0, 0, 0], [1, 0, 0, 0])  # a loop
    assert ex.mounting("radar front", "radar_front") is good
    assert "last good" in ex.states()["radar front"].detail
    # an unknown frame in a message: that message waits (mode tf), the good frame still resolves
    assert ex.mounting("radar front", "nope") is None
    assert ex.mounting("radar front", "radar_front") is good


def test_extrinsics_tf_only_never_falls_back_and_parameters_never_look() -> None:
    clock = _Clock()
    ex = ExtrinsicsResolver(TfBuffer(), "base_link", {"camera": Pose.identity()}, "tf", clock=clock)
    clock.t = 1e6
    assert ex.mounting("camera", "cam_front") is None and ex.states()["camera"].source == "waiting"
    tf = _buffer()
    params = {"camera": Pose.identity()}
    ex = ExtrinsicsResolver(tf, "base_link", params, "parameters")
    assert ex.mounting("camera", "cam_front") is params["camera"]  # tf has it, but parameters were asked for
    assert ex.mounting("camera", "") is params["camera"]
    with pytest.raises(ValueError, match="extrinsics_source"):
        ExtrinsicsResolver(tf, "base_link", params, "magic")
