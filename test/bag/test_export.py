"""export_bag / ``imkd bag export``: the bag holds the dataset's sensor data unchanged (images, radar and LiDAR
clouds, stamps), its calibration and poses, odometry whose twist matches the motion, the ground truth after the
devkit's no-points filter, and the sample tokens; sqlite3 and CompressedImage work; rclpy reads the bytes; bad
arguments and an existing output are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imkd_ros.bag.convert import cloud_to_array, image_msg_to_array
from imkd_ros.bag.errors import BagError
from imkd_ros.bag.export import export_bag, lidar_cloud
from imkd_ros.bag.source import BagSource
from imkd_ros.bag.topics import BagTopics
from imkd_ros.cli import main as cli_main
from imkd_ros.data.pcd import read_lidar_bin, read_radar_pcd
from imkd_ros.data.reader import NuScenesReader

SCENE = "scene-0003"


def _chain(reader: NuScenesReader, channel: str) -> list[dict]:
    """The channel's sample_data records of SCENE, start of the chain to the last keyframe, in time order."""
    sd = reader.keyframe_token(reader.scene_samples(SCENE)[-1], channel)
    out = []
    while sd:
        out.append(reader.sample_data(sd))
        sd = out[-1]["prev"]
    return out[::-1]


def test_sensor_data_are_written_unchanged(exported_bag: Path, synth_root: Path) -> None:
    reader = NuScenesReader(synth_root, load_lidar=False)
    src = BagSource(exported_bag)
    radar, lidar = _chain(reader, "RADAR_FRONT"), _chain(reader, "LIDAR_TOP")
    msgs = list(src.messages(["radar"]))
    assert [m.stamp_ns for m in msgs] == [int(r["timestamp"]) * 1000 for r in radar]
    assert {m.msg.header.frame_id for m in msgs} == {"radar_front"}
    for m, rec in list(zip(msgs, radar, strict=True))[::7]:
        cloud = cloud_to_array(m.msg)
        expected = read_radar_pcd(synth_root / rec["filename"], filtered=False)
        assert cloud.dtype.names == expected.dtype.names and len(cloud.dtype.names) == 18
        for name in expected.dtype.names:
            np.testing.assert_array_equal(cloud[name], expected[name])
    msgs = list(src.messages(["lidar"]))
    assert [m.stamp_ns for m in msgs] == [int(r["timestamp"]) * 1000 for r in lidar]
    cloud = cloud_to_array(msgs[-1].msg)
    assert cloud.dtype["ring"] == np.uint16 and msgs[-1].msg.header.frame_id == "lidar_top"
    pts = read_lidar_bin(synth_root / lidar[-1]["filename"])
    np.testing.assert_array_equal(np.stack([cloud[n].astype(np.float32) for n in cloud.dtype.names], 1), pts)
    samples = reader.scene_samples(SCENE)
    images = list(src.messages(["image"]))
    infos = list(src.messages(["camera_info"]))
    assert len(images) == len(infos) == len(samples)  # keyframes only by default
    for img, info, s in zip(images, infos, samples, strict=True):
        f = reader.frame(s)
        assert img.stamp_ns == info.stamp_ns == f.timestamp * 1000 and img.msg.encoding == "rgb8"
        np.testing.assert_array_equal(image_msg_to_array(img.msg), f.image)
        np.testing.assert_array_equal(np.asarray(info.msg.k).reshape(3, 3), f.camera.intrinsic)


def test_poses_odometry_and_tf(exported_bag: Path, synth_root: Path) -> None:
    reader = NuScenesReader(synth_root, load_image=False, load_lidar=False)
    src = BagSource(exported_bag)
    stamps = sorted({int(r["timestamp"]) * 1000 for ch in ("RADAR_FRONT", "LIDAR_TOP") for r in _chain(reader, ch)})
    stamps = sorted(set(stamps) | {reader.frame(s).timestamp * 1000 for s in reader.scene_samples(SCENE)})
    poses = list(src.messages(["ego_pose"]))
    assert [m.stamp_ns for m in poses] == stamps and {m.msg.header.frame_id for m in poses} == {"map"}
    tfs = list(src.messages(["tf"]))
    assert [m.stamp_ns for m in tfs] == stamps
    assert {(t.header.frame_id, t.child_frame_id) for m in tfs for t in m.msg.transforms} == {("map", "base_link")}
    odom = list(src.messages(["odom"]))
    assert [m.stamp_ns for m in odom] == stamps
    xy = np.array([[m.msg.pose.pose.position.x, m.msg.pose.pose.position.y] for m in odom])
    i = len(odom) // 2
    yaw = src.ego_poses[1][i].yaw
    v_world = (xy[i + 1] - xy[i - 1]) / ((stamps[i + 1] - stamps[i - 1]) / 1e9)
    v_ego = np.array(
        [np.cos(yaw) * v_world[0] + np.sin(yaw) * v_world[1], -np.sin(yaw) * v_world[0] + np.cos(yaw) * v_world[1]]
    )
    tw = odom[i].msg.twist.twist
    np.testing.assert_allclose([tw.linear.x, tw.linear.y], v_ego, atol=1e-9)
    assert odom[i].msg.child_frame_id == "base_link"
    (static,) = list(src.messages(["tf_static"]))
    assert static.log_ns == src.start_ns
    assert {t.child_frame_id for t in static.msg.transforms} == {"cam_front", "radar_front", "lidar_top"}
    assert {t.header.frame_id for t in static.msg.transforms} == {"base_link"}


def _dataset_with_an_empty_box(synth_root: Path, root: Path) -> tuple[Path, str]:
    """A dataroot sharing synth_root's files whose tables mark one annotation of SCENE's first sample as having no
    LiDAR and no radar point."""
    root.mkdir()
    for name in ("samples", "sweeps", "maps"):
        (root / name).symlink_to(synth_root / name)
    shutil.copytree(synth_root / "v1.0-synth", root / "v1.0-synth")
    reader = NuScenesReader(synth_root, load_image=False, load_lidar=False)
    first = reader.scene_samples(SCENE)[0]
    ann = [a for a in reader.annotations(first) if a["detection_class"] is not None][0]["token"]
    path = root / "v1.0-synth" / "sample_annotation.json"
    table = json.loads(path.read_text())
    for rec in table:
        if rec["token"] == ann:
            rec["num_lidar_pts"] = rec["num_radar_pts"] = 0
    path.write_text(json.dumps(table))
    return root, ann


def test_sqlite3_compressed_and_the_ground_truth_filter(synth_root: Path, tmp_path: Path) -> None:
    data, dropped = _dataset_with_an_empty_box(synth_root, tmp_path / "data")
    stats = export_bag(data, tmp_path / "bag", storage="sqlite3", scenes=[SCENE], compressed=True)
    assert list((tmp_path / "bag").glob("*.db3")) and stats["storage"] == "sqlite3" and stats["scenes"] == [SCENE]
    assert stats["gt_boxes_dropped"] == 1 and stats["keyframes"] == 4 and stats["bytes"] > 1e6
    assert stats["mb_per_s"] > 0 and stats["x_realtime"] > 0 and 1.5 < stats["data_seconds"] < 2.5
    src = BagSource(tmp_path / "bag")
    assert src.topics_in_bag["/camera/image"] == "sensor_msgs/msg/CompressedImage"
    reader = NuScenesReader(data, load_lidar=False)
    samples = reader.scene_samples(SCENE)
    first = list(src.messages(["image"]))[0]
    jpeg = synth_root / reader.sample_data(reader.keyframe_token(samples[0], "CAM_FRONT"))["filename"]
    assert bytes(first.msg.data) == jpeg.read_bytes() and "jpeg" in first.msg.format  # the file's bytes
    with Image.open(jpeg) as im:
        np.testing.assert_array_equal(image_msg_to_array(first.msg), np.asarray(im.convert("RGB")))
    gt = src.ground_truth()
    f0 = reader.frame(samples[0])
    assert (
        len(gt[f0.timestamp * 1000])
        == len(f0.gt) - 1
        == stats["gt_boxes"] - sum(len(reader.frame(s).gt) for s in samples[1:])
    )
    kept = gt[f0.timestamp * 1000]
    lost = f0.gt[np.array([t == dropped for t in f0.gt.tokens])]
    assert np.min(np.linalg.norm(kept.center - lost.center[0], axis=1)) > 1e-6  # the dropped box is not there


def test_bytes_deserialise_in_rclpy(exported_bag: Path) -> None:
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import CameraInfo, PointCloud2

    from imkd_ros.ros.convert import pointcloud2_to_array

    with Reader(exported_bag) as r:
        conns = [c for c in r.connections if c.topic in ("/lidar/top", "/camera/camera_info")]
        seen = {}
        for c, _, raw in r.messages(connections=conns):
            seen.setdefault(c.topic, bytes(raw))
    cloud = pointcloud2_to_array(deserialize_message(seen["/lidar/top"], PointCloud2))
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "ring") and len(cloud) > 1000
    info = deserialize_message(seen["/camera/camera_info"], CameraInfo)
    assert info.width == 1600 and info.k[0] > 0 and info.header.frame_id == "cam_front"


def test_lidar_cloud_keeps_non_integer_rings() -> None:
    pts = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], np.float32)
    assert lidar_cloud(pts).dtype["ring"] == np.uint16
    pts[0, 4] = 0.5
    c = lidar_cloud(pts)
    assert c.dtype["ring"] == np.float32 and c["ring"][0] == 0.5


def test_bad_arguments_are_refused(synth_root: Path, exported_bag: Path, tmp_path: Path) -> None:
    with pytest.raises(BagError, match="exists; a bag is never overwritten"):
        export_bag(synth_root, exported_bag)
    with pytest.raises(BagError, match="unknown bag storage 'zip'"):
        export_bag(synth_root, tmp_path / "a", storage="zip")
    with pytest.raises(BagError, match="1 radar channels"):
        export_bag(synth_root, tmp_path / "b", topics=BagTopics(radar=("/r1", "/r2")))
    two_cameras = BagTopics(image=("/c1/image", "/c2/image"), camera_info=("/c1/info", "/c2/info"))
    with pytest.raises(BagError, match=r"1 camera channels \['CAM_FRONT'\] but 2 image topics"):
        export_bag(synth_root, tmp_path / "b", topics=two_cameras)
    with pytest.raises(BagError, match="two roles share a topic"):
        export_bag(synth_root, tmp_path / "b", topics=["camera_info=/lidar/top"])
    from imkd_ros.data.errors import DatasetError

    with pytest.raises(DatasetError, match="scene 'scene-9999'"):
        export_bag(synth_root, tmp_path / "c", scenes=["scene-9999"])
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()
    # rosbags' AnyReader takes any '*.bag' path for a ROS 1 bag: such a name is refused before anything is written
    with pytest.raises(BagError, match=r"drive\.bag: .*ROS 1 bag .*e\.g\. .*drive$"):
        export_bag(synth_root, tmp_path / "drive.bag")
    assert not (tmp_path / "drive.bag").exists()


def test_imkd_bag_export_cli(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli_bag"
    args = ["bag", "export", "--data", str(synth_root), "--out", str(out), "--split", "synth_val"]
    assert cli_main([*args, "--topic", "lidar=/points"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["scenes"] == [SCENE] and stats["messages"]["/points"] == 40
    assert "/points" in BagSource(out).topics_in_bag
    # every camera frame by default (a recorded drive has them), keyframes with --keyframes-only
    keyframes = stats["keyframes"]
    assert stats["messages"]["/camera/image"] > keyframes and stats["messages"]["/ground_truth/objects"] == keyframes
    assert stats["messages"]["/ground_truth/detected_objects"] == keyframes
    assert cli_main([*args[:-2], "--out", str(tmp_path / "kf"), "--split", "synth_val", "--keyframes-only"]) == 0
    kf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert kf["messages"]["/camera/image"] == keyframes
    assert cli_main([*args[:-2], "--out", str(tmp_path / "y.bag"), "--split", "synth_val"]) == 2
    assert "ROS 1 bag" in capsys.readouterr().err
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("imkd bag: error:") and "exists" in err[-1]
    assert cli_main([*args[:-2], "--out", str(tmp_path / "x"), "--topic", "lidar"]) == 2
    assert "expected ROLE=TOPIC" in capsys.readouterr().err
    for verb in ("export", "teacher-targets"):
        with pytest.raises(SystemExit) as e:
            cli_main(["bag", verb, "--help"])
        assert e.value.code == 0 and f"usage: imkd bag {verb}" in capsys.readouterr().out
