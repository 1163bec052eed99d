"""BagSource: an exported bag reads back as the dataset it came from (calibration, poses, ground truth, LiDAR
frames bit-equal to the reader's); a bag written by another writer (rclpy serialisation, sqlite3, other topic
names, no message definitions, a type only the bag defines, a chain of static transforms, poses only on /tf) reads
too; missing topics, unknown types, hash mismatches, truncated files and corrupt messages give BagErrors naming the
bag and the topic."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.bag.errors import BagError
from imkd_ros.bag.source import BagSource
from imkd_ros.bag.topics import BagTopics
from imkd_ros.core.transforms import Pose
from imkd_ros.data.reader import NuScenesReader

SCENE = "scene-0003"


def test_exported_bag_metadata_and_message_order(exported_bag: Path, synth_root: Path) -> None:
    src = BagSource(exported_bag, need=BagTopics.names())
    assert src.topics_in_bag["/lidar/top"] == "sensor_msgs/msg/PointCloud2"
    assert src.topics_in_bag["/ground_truth/objects"] == "vision_msgs/msg/Detection3DArray"
    assert src.topics_in_bag["/odom"] == "nav_msgs/msg/Odometry"
    assert src.size_bytes > 1e6 and src.message_count > 100
    msgs = list(src.messages(["lidar", "radar", "image", "sample_token", "/ego_pose"]))
    logs = [m.log_ns for m in msgs]
    assert logs == sorted(logs) and logs[0] == src.start_ns
    assert src.duration_s == pytest.approx((src.end_ns - src.start_ns) / 1e9) and 1.5 < src.duration_s < 2.5
    assert all(m.stamp_ns == m.log_ns for m in msgs)  # exported: log time = header stamp
    reader = NuScenesReader(synth_root, load_image=False, load_lidar=False)
    lidar_stamps = []
    sd = reader.keyframe_token(reader.scene_samples(SCENE)[-1], "LIDAR_TOP")
    while sd:
        lidar_stamps.append(int(reader.sample_data(sd)["timestamp"]) * 1000)
        sd = reader.sample_data(sd)["prev"]
    assert [m.stamp_ns for m in msgs if m.topic == "/lidar/top"] == sorted(lidar_stamps)  # the whole sweep chain
    tokens = [m.msg.data for m in msgs if m.topic == "/nuscenes/sample_token"]
    assert tokens == reader.scene_samples(SCENE)


def test_exported_bag_gives_the_readers_calibration_poses_and_ground_truth(
    exported_bag: Path, synth_root: Path
) -> None:
    src = BagSource(exported_bag)
    reader = NuScenesReader(synth_root, load_image=False, load_lidar=False)
    samples = reader.scene_samples(SCENE)
    frame = reader.frame(samples[0])
    cal = src.calibration()
    assert cal.channel == "CAM_FRONT" and cal.image_size == frame.camera.image_size
    np.testing.assert_array_equal(cal.intrinsic, frame.camera.intrinsic)
    np.testing.assert_array_equal(cal.sensor_to_ego.matrix(), frame.camera.sensor_to_ego.matrix())
    lidar_sd = reader.keyframe_token(samples[0], "LIDAR_TOP")
    np.testing.assert_array_equal(
        src.calibration("lidar_top").sensor_to_ego.matrix(), reader.sensor_to_ego(lidar_sd).matrix()
    )
    assert set(src.extrinsics()) == {"base_link", "cam_front", "radar_front", "lidar_top"}
    gt = src.ground_truth()
    assert sorted(gt) == [reader.frame(s).timestamp * 1000 for s in samples]
    for s in samples:
        f = reader.frame(s)
        np.testing.assert_array_equal(src.ego_pose_at(f.timestamp * 1000).matrix(), f.ego_pose.matrix())
        b = gt[f.timestamp * 1000]
        assert b.frame == "ego" and len(b) == len(f.gt) > 0
        np.testing.assert_array_equal(b.label, f.gt.label)
        np.testing.assert_allclose(b.center, f.gt.center, atol=1e-9)
        np.testing.assert_allclose(b.size, f.gt.size, atol=1e-9)
        np.testing.assert_allclose(np.cos(b.yaw - f.gt.yaw), 1.0, atol=1e-9)
        np.testing.assert_allclose(b.velocity, f.gt.velocity, atol=6e-5)  # 4 decimals in the detection id
    mid = (src.ego_poses[0][3] + src.ego_poses[0][4]) // 2
    assert src.ego_pose_at(mid) is not None and src.ego_pose_at(src.start_ns - 10**9) is None


@pytest.mark.parametrize("sweeps", [1, 3])
def test_lidar_frames_are_the_readers_bit_for_bit(exported_bag: Path, synth_root: Path, sweeps: int) -> None:
    src = BagSource(exported_bag)
    reader = NuScenesReader(synth_root, load_image=False, lidar_sweeps=sweeps)
    keys = src.keyframes()
    assert [k for k, _ in keys] == reader.scene_samples(SCENE)
    frames = list(src.lidar_frames(sweeps))
    assert [(k, s) for k, s, _ in frames] == keys
    for key, stamp, pts in frames:
        f = reader.frame(key)
        assert stamp == f.timestamp * 1000 and pts.dtype == np.float32
        np.testing.assert_array_equal(pts, f.lidar)
    assert [k for k, _, _ in src.lidar_frames(sweeps, keys={keys[2][0]})] == [keys[2][0]]


def test_a_missing_topic_is_named(exported_bag: Path) -> None:
    with pytest.raises(BagError, match=r"has no topic /velodyne \(lidar\); its topics: /camera/camera_info"):
        BagSource(exported_bag, BagTopics(lidar="/velodyne"), need=["lidar"])
    src = BagSource(exported_bag, BagTopics(lidar="/velodyne"))  # not needed: opens, fails when used
    assert not src.has("lidar") and src.has("image")
    with pytest.raises(BagError, match="/velodyne"):
        next(src.lidar_frames())
    with pytest.raises(BagError, match="does not exist"):
        BagSource(exported_bag.parent / "nope")


# ---------------------------------------------------------------------------------------------- a foreign bag


def _yaw_pose(yaw: float, t: tuple[float, float, float]) -> Pose:
    return Pose.from_yaw(yaw, np.asarray(t))


def _foreign_bag(path: Path) -> dict:
    """An sqlite3 bag as another recorder would write it: LiDAR PointCloud2 serialised by rclpy on
    /sensing/lidar/points (fields x y z intensity ring time, frame velodyne, logged 3 ms after its stamp, no message
    definition in the bag), tf_static chain base_link -> roof -> velodyne, ego poses only as map -> base_link on /tf,
    and a topic of a type only the bag defines."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_types_from_msg

    from imkd_ros.bag.convert import default_typestore, make_header, tf_msg, transform_stamped_msg
    from imkd_ros.bag.interfaces import make_typestore
    from imkd_ros.ros.convert import array_to_pointcloud2
    from imkd_ros.ros.messages import make_header as rclpy_header

    store = default_typestore()
    rng = np.random.default_rng(0)
    roof, lidar = _yaw_pose(0.3, (1.0, 0.0, 1.5)), _yaw_pose(-np.pi / 2, (0.2, 0.0, 0.3))
    stamps = [1_700_000_000_000_000_000 + k * 50_000_000 for k in range(3)]
    egos = [_yaw_pose(0.1 * k, (2.0 * k, 0.5 * k, 0.0)) for k in range(3)]
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"), ("time", "<f4")])
    clouds = []
    blob_def = "string note\nfloat64[] values\n"
    blob_store = make_typestore()
    blob_store.register(get_types_from_msg(blob_def, "acme_msgs/msg/Blob"))
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        c_lidar = w.add_connection(
            "/sensing/lidar/points",
            "sensor_msgs/msg/PointCloud2",
            msgdef="",
            rihs01=store.hash_rihs01("sensor_msgs/msg/PointCloud2"),
        )
        c_static = w.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=store)
        c_tf = w.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=store)
        c_blob = w.add_connection("/acme/blob", "acme_msgs/msg/Blob", msgdef=blob_def, rihs01="RIHS01_" + "1" * 64)
        h0 = make_header(stamps[0], "base_link", store)
        statics = [
            transform_stamped_msg(roof.quat, roof.translation, h0, "roof", store),
            transform_stamped_msg(
                lidar.quat, lidar.translation, make_header(stamps[0], "roof", store), "velodyne", store
            ),
        ]
        w.write(c_static, stamps[0], store.serialize_cdr(tf_msg(statics, store), "tf2_msgs/msg/TFMessage"))
        for k, (s, ego) in enumerate(zip(stamps, egos, strict=True)):
            tr = transform_stamped_msg(ego.quat, ego.translation, make_header(s, "map", store), "base_link", store)
            w.write(c_tf, s, store.serialize_cdr(tf_msg([tr], store), "tf2_msgs/msg/TFMessage"))
            pts = np.zeros(50 + k, dtype=dtype)
            for name in ("x", "y", "z"):
                pts[name] = rng.uniform(-20, 20, len(pts))
            pts["intensity"], pts["ring"], pts["time"] = rng.uniform(0, 255, len(pts)), k, 0.01
            clouds.append(pts)
            raw = serialize_message(array_to_pointcloud2(pts, rclpy_header(s, "velodyne")))
            w.write(c_lidar, s + 3_000_000, raw)
        blob = blob_store.types["acme_msgs/msg/Blob"](note="hello", values=np.array([1.0, 2.5]))
        w.write(c_blob, stamps[-1], blob_store.serialize_cdr(blob, "acme_msgs/msg/Blob"))
    return {"stamps": stamps, "egos": egos, "mount": roof @ lidar, "clouds": clouds}


def test_a_bag_from_another_writer_reads(tmp_path: Path) -> None:
    truth = _foreign_bag(tmp_path / "foreign")
    topics = BagTopics(lidar="/sensing/lidar/points")
    src = BagSource(tmp_path / "foreign", topics, need=["lidar", "tf_static"])
    assert src.topics_in_bag["/acme/blob"] == "acme_msgs/msg/Blob"
    (blob,) = [m.msg for m in src.messages(["/acme/blob"])]  # deserialised with the bag's own definition
    assert blob.note == "hello" and list(blob.values) == [1.0, 2.5]
    np.testing.assert_allclose(src.sensor_to_ego("velodyne").matrix(), truth["mount"].matrix(), atol=1e-12)
    stamps, egos, mount = truth["stamps"], truth["egos"], truth["mount"]
    assert src.keyframes() == [(str(s), s) for s in stamps]  # keyed by header stamp, not log time
    frames = list(src.lidar_frames(sweeps=2))
    assert [k for k, _, _ in frames] == [str(s) for s in stamps]
    key, stamp, pts = frames[2]
    assert pts.shape == (52 + 51, 6)
    c2, c1 = truth["clouds"][2], truth["clouds"][1]
    xyz2 = np.stack([c2["x"], c2["y"], c2["z"]], 1).astype(np.float64)
    xyz1 = np.stack([c1["x"], c1["y"], c1["z"]], 1).astype(np.float64)
    moved = egos[2].inverse() @ egos[1] @ mount
    np.testing.assert_allclose(pts[:52, :3], mount.apply(xyz2), atol=1e-4)
    np.testing.assert_allclose(pts[52:, :3], moved.apply(xyz1), atol=1e-4)
    np.testing.assert_array_equal(pts[:52, 3], c2["intensity"])
    assert set(pts[:52, 4]) == {2.0} and set(pts[52:, 4]) == {1.0}
    np.testing.assert_allclose(pts[52:, 5], 0.05)
    np.testing.assert_array_equal(pts[:52, 5], 0.0)
    with pytest.raises(BagError, match="no static transform lidar_top -> base_link"):
        src.sensor_to_ego("lidar_top")
    with pytest.raises(BagError, match=r"no message on /camera/camera_info|has no topic /camera/camera_info"):
        src.calibration()


def _write_one(path: Path, topic: str, msgtype: str, msgdef: str, rihs01: str) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01)
        w.write(c, 1, b"\x00\x01\x00\x00\x00\x00\x00\x00")


def test_unknown_types_and_hash_mismatches_are_named(tmp_path: Path) -> None:
    _write_one(tmp_path / "a", "/x", "acme_msgs/msg/Nope", "", "RIHS01_" + "2" * 64)
    with pytest.raises(BagError, match=r"topic /x has type acme_msgs/msg/Nope, which the bag does not define"):
        BagSource(tmp_path / "a")
    _write_one(tmp_path / "b", "/chatter", "std_msgs/msg/String", "", "RIHS01_" + "3" * 64)
    with pytest.raises(BagError, match=r"/chatter: type std_msgs/msg/String has hash RIHS01_3+ in the bag"):
        BagSource(tmp_path / "b")


# ---------------------------------------------------------------------------------------- broken bags


@pytest.mark.parametrize("fraction", [0.3, 0.99])
def test_a_truncated_bag_is_a_bag_error(exported_bag: Path, tmp_path: Path, fraction: float) -> None:
    bag = tmp_path / "cut"
    shutil.copytree(exported_bag, bag)
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(BagError, match=rf"bag {bag} cannot be opened \(truncated or corrupt\?\)"):
        BagSource(bag)


def test_a_corrupt_message_is_named_after_the_good_ones(
    exported_bag: Path, tmp_path: Path, rewrite_bag: Callable[..., Path]
) -> None:
    src = BagSource(exported_bag)
    bad_log = [m.log_ns for m in src.messages(["lidar"])][5]
    bag = rewrite_bag(
        exported_bag,
        tmp_path / "bad",
        lambda topic, log, raw: raw[:200] if (topic, log) == ("/lidar/top", bad_log) else None,
    )
    seen = []
    with pytest.raises(
        BagError, match=rf"bag {bag}: message on /lidar/top \(sensor_msgs/msg/PointCloud2\) at log time {bad_log}"
    ):
        for m in BagSource(bag).messages(["lidar"]):
            seen.append(m.log_ns)
    assert len(seen) == 5
    assert len(list(BagSource(bag).messages(["radar"]))) > 10  # the other topics still read
