"""The synthetic dataset is valid nuScenes to the nuscenes-devkit: it loads, its files read, its annotations' point
counts, chains, splits, timing and geometry agree with what the devkit computes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from nuscenes import NuScenes
from nuscenes.eval.common.loaders import (
    add_center_dist,
    filter_eval_boxes,
    get_samples_of_custom_split,
    load_gt_of_sample_tokens,
)
from nuscenes.eval.detection.config import config_factory
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud
from nuscenes.utils.geometry_utils import BoxVisibility, points_in_box, view_points
from pyquaternion import Quaternion

from imkd_ros.core.classes import CATEGORY_OF_CLASS, DEFAULT_ATTRIBUTE, class_of_category
from imkd_ros.data.synth.rig import RATES_HZ
from imkd_ros.data.synth.schedule import CAMERA_DELAY_US
from imkd_ros.data.synth.tables import TABLE_NAMES
from imkd_ros.data.synth.world import CLASS_PROFILES

VERSION = "v1.0-synth"
CHANNELS = ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP")


@pytest.fixture(scope="module")
def nusc(synth_root: Path) -> NuScenes:
    return NuScenes(version=VERSION, dataroot=str(synth_root), verbose=False)


def _to_global(nusc: NuScenes, sd_token: str, pc: LidarPointCloud | RadarPointCloud) -> None:
    """Sensor -> ego -> global, in place, as a devkit user does it."""
    sd = nusc.get("sample_data", sd_token)
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    pc.rotate(Quaternion(cs["rotation"]).rotation_matrix)
    pc.translate(np.array(cs["translation"]))
    pc.rotate(Quaternion(pose["rotation"]).rotation_matrix)
    pc.translate(np.array(pose["translation"]))


def _load(nusc: NuScenes, sd_token: str) -> LidarPointCloud | RadarPointCloud:
    path = nusc.get_sample_data_path(sd_token)
    if nusc.get("sample_data", sd_token)["channel"] == "LIDAR_TOP":
        return LidarPointCloud.from_file(path)
    return RadarPointCloud.from_file(path, invalid_states=[0], dynprop_states=list(range(7)), ambig_states=[3])


def test_all_tables_and_layout(synth_root: Path, nusc: NuScenes) -> None:
    for name in TABLE_NAMES:
        assert (synth_root / VERSION / f"{name}.json").is_file(), name
    assert len(nusc.scene) == 4 and len(nusc.sample) == 16
    assert len(nusc.calibrated_sensor) == 4 * 3  # one per sensor per scene
    assert {s["channel"]: s["modality"] for s in nusc.sensor} == {
        "CAM_FRONT": "camera",
        "RADAR_FRONT": "radar",
        "LIDAR_TOP": "lidar",
    }
    assert len(nusc.ego_pose) == len(nusc.sample_data)  # one ego pose per sample_data
    assert len({sd["ego_pose_token"] for sd in nusc.sample_data}) == len(nusc.sample_data)
    for table in TABLE_NAMES:
        for rec in getattr(nusc, table):
            assert len(rec["token"]) == 32 or table == "visibility"
            int(rec["token"], 16)
    referenced = {sd["filename"] for sd in nusc.sample_data}
    on_disk = {str(p.relative_to(synth_root)) for d in ("samples", "sweeps") for p in (synth_root / d).rglob("*")}
    on_disk = {p for p in on_disk if "." in Path(p).name}
    assert referenced == on_disk
    for sd in nusc.sample_data:
        folder, channel, name = sd["filename"].split("/")
        log = nusc.get("log", nusc.get("scene", nusc.get("sample", sd["sample_token"])["scene_token"])["log_token"])
        assert folder == ("samples" if sd["is_key_frame"] else "sweeps")
        assert channel == sd["channel"]
        assert name.startswith(f"{log['logfile']}__{channel}__{sd['timestamp']}.")
        is_cam = channel == "CAM_FRONT"
        assert (sd["width"], sd["height"]) == ((1600, 900) if is_cam else (0, 0))
        assert sd["fileformat"] == ("jpg" if is_cam else "pcd")
        assert name.endswith({"CAM_FRONT": ".jpg", "RADAR_FRONT": ".pcd", "LIDAR_TOP": ".pcd.bin"}[channel])
    m = nusc.map[0]
    assert sorted(t for rec in nusc.map for t in rec["log_tokens"]) == sorted(r["token"] for r in nusc.log)
    mask = m["mask"].mask()
    assert mask.ndim == 2 and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}


def test_get_sample_data_every_channel(nusc: NuScenes) -> None:
    for sample in nusc.sample:
        assert set(sample["data"]) == set(CHANNELS)
        for channel in CHANNELS:
            path, boxes, intrinsic = nusc.get_sample_data(sample["data"][channel])
            assert Path(path).is_file()
            if channel == "CAM_FRONT":
                assert np.asarray(intrinsic).shape == (3, 3)
                assert np.isclose(intrinsic[0][0], 1266.4, rtol=0.02)
            else:
                assert intrinsic is None
                # non-camera channels return every annotation of the sample
                assert len(boxes) == len(sample["anns"])


def test_keyframes_read_with_devkit_readers(nusc: NuScenes) -> None:
    n_lidar, n_radar = [], []
    for sample in nusc.sample:
        lidar = LidarPointCloud.from_file(nusc.get_sample_data_path(sample["data"]["LIDAR_TOP"]))
        radar = RadarPointCloud.from_file(nusc.get_sample_data_path(sample["data"]["RADAR_FRONT"]))
        assert lidar.points.shape[0] == 4 and np.isfinite(lidar.points).all()
        assert radar.points.shape[0] == 18
        n_lidar.append(lidar.nbr_points())
        n_radar.append(radar.nbr_points())
    assert min(n_lidar) > 1000
    assert sum(n_radar) > 0


def test_point_counts_equal_devkit_points_in_box(nusc: NuScenes) -> None:
    checked = 0
    for sample in nusc.sample:
        clouds = {ch: _load(nusc, sample["data"][ch]) for ch in ("LIDAR_TOP", "RADAR_FRONT")}
        for ch, pc in clouds.items():
            _to_global(nusc, sample["data"][ch], pc)
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            box = nusc.get_box(ann_token)
            assert ann["num_lidar_pts"] == int(points_in_box(box, clouds["LIDAR_TOP"].points[:3]).sum())
            assert ann["num_radar_pts"] == int(points_in_box(box, clouds["RADAR_FRONT"].points[:3]).sum())
            assert ann["num_lidar_pts"] + ann["num_radar_pts"] >= 1  # the writer's annotation rule
            checked += 1
    assert checked > 50
    assert sum(a["num_radar_pts"] for a in nusc.sample_annotation) > 0


def test_annotation_fields(nusc: NuScenes) -> None:
    attr_name = {a["token"]: a["name"] for a in nusc.attribute}
    assert {v["token"] for v in nusc.visibility} == {"1", "2", "3", "4"}
    names = set(CATEGORY_OF_CLASS.values())
    for ann in nusc.sample_annotation:
        assert ann["category_name"] in names
        cls = class_of_category(ann["category_name"])
        attrs = [attr_name[t] for t in ann["attribute_tokens"]]
        if DEFAULT_ATTRIBUTE[cls] is None:
            assert attrs == []
        else:
            assert len(attrs) == 1 and attrs[0].split(".")[0] == DEFAULT_ATTRIBUTE[cls].split(".")[0]
        assert ann["visibility_token"] in {"1", "2", "3", "4"}
        w, l, h = ann["size"]
        np.testing.assert_allclose([w, l, h], CLASS_PROFILES[cls].size, rtol=0.12)  # (w, l, h) order
        q = np.asarray(ann["rotation"])
        assert np.isclose(np.linalg.norm(q), 1.0) and np.allclose(q[1:3], 0.0)  # yaw only
        assert ann["translation"][2] == pytest.approx(h / 2 + 0.05, abs=1e-6)  # resting 5 cm above z = 0
    vis = Counter(a["visibility_token"] for a in nusc.sample_annotation)
    assert vis["4"] > 0 and len(vis) >= 2


def test_chains(nusc: NuScenes) -> None:
    for scene in nusc.scene:
        # samples
        tokens, tok = [], scene["first_sample_token"]
        while tok:
            tokens.append(tok)
            s = nusc.get("sample", tok)
            assert s["scene_token"] == scene["token"]
            assert s["prev"] == (tokens[-2] if len(tokens) > 1 else "")
            tok = s["next"]
        assert tokens[-1] == scene["last_sample_token"] and len(tokens) == scene["nbr_samples"]
        times = [nusc.get("sample", t)["timestamp"] for t in tokens]
        assert np.all(np.diff(times) == 500_000)
        # sample_data per channel, across keyframes and sweeps
        for channel in CHANNELS:
            sd = nusc.get("sample_data", nusc.get("sample", tokens[0])["data"][channel])
            while sd["prev"]:
                sd = nusc.get("sample_data", sd["prev"])
            chain = [sd]
            while sd["next"]:
                nxt = nusc.get("sample_data", sd["next"])
                assert nxt["prev"] == sd["token"] and nxt["channel"] == channel
                chain.append(sd := nxt)
            in_scene = [
                r
                for r in nusc.sample_data
                if r["channel"] == channel and nusc.get("sample", r["sample_token"])["scene_token"] == scene["token"]
            ]
            assert sorted(r["token"] for r in chain) == sorted(r["token"] for r in in_scene)
            assert np.all(np.diff([r["timestamp"] for r in chain]) > 0)
            keys = [r["token"] for r in chain if r["is_key_frame"]]
            assert keys == [nusc.get("sample", t)["data"][channel] for t in tokens]
            assert chain[-1]["is_key_frame"]  # chains end at the last keyframe
    # annotations per instance
    for inst in nusc.instance:
        chain, tok = [], inst["first_annotation_token"]
        while tok:
            ann = nusc.get("sample_annotation", tok)
            assert ann["instance_token"] == inst["token"]
            chain.append(ann)
            tok = ann["next"]
        assert chain[-1]["token"] == inst["last_annotation_token"] and len(chain) == inst["nbr_annotations"]
        t = [nusc.get("sample", a["sample_token"])["timestamp"] for a in chain]
        assert np.all(np.diff(t) > 0)
        assert chain[0]["prev"] == ""
    assert sum(i["nbr_annotations"] for i in nusc.instance) == len(nusc.sample_annotation)


def test_sweep_timing_matches_rates(nusc: NuScenes) -> None:
    period = 500_000
    for sample in nusc.sample:
        ts = sample["timestamp"]
        lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        cam = nusc.get("sample_data", sample["data"]["CAM_FRONT"])
        radar = nusc.get("sample_data", sample["data"]["RADAR_FRONT"])
        assert lidar["timestamp"] == ts
        assert cam["timestamp"] - ts == CAMERA_DELAY_US and 0 < CAMERA_DELAY_US < 50_000
        assert abs(radar["timestamp"] - ts) <= 1e6 / RATES_HZ["RADAR_FRONT"] / 2 + 1
        for channel in CHANNELS:
            # sweeps of this keyframe interval: the keyframe and the sweeps since the previous keyframe
            n, sd = 1, nusc.get("sample_data", sample["data"][channel])
            while sd["prev"] and not nusc.get("sample_data", sd["prev"])["is_key_frame"]:
                sd = nusc.get("sample_data", sd["prev"])
                assert sd["sample_token"] == sample["token"]
                n += 1
            expected = RATES_HZ[channel] * period / 1e6
            if channel == "RADAR_FRONT":
                assert abs(n - expected) <= 1, (channel, n)
            else:
                assert n == expected, (channel, n)
    # every keyframe has a full history, also the first one of a scene
    for scene in nusc.scene:
        first = nusc.get("sample", scene["first_sample_token"])
        sd, n = nusc.get("sample_data", first["data"]["LIDAR_TOP"]), 1
        while sd["prev"]:
            sd, n = nusc.get("sample_data", sd["prev"]), n + 1
        assert n == RATES_HZ["LIDAR_TOP"] // 2


def test_splits_and_weather(synth_root: Path, nusc: NuScenes) -> None:
    splits = json.loads((synth_root / VERSION / "splits.json").read_text())
    names = {s["name"] for s in nusc.scene}
    assert set(splits) == {"synth_train", "synth_val", "synth_all", "synth_unlabelled"}
    assert splits["synth_unlabelled"] == [] and splits["synth_all"] == sorted(names)
    assert splits["synth_val"] == ["scene-0003"]
    assert set(splits["synth_train"]) | set(splits["synth_val"]) == names
    assert not set(splits["synth_train"]) & set(splits["synth_val"])
    by_name = {s["name"]: s["description"] for s in nusc.scene}
    for i, weather in enumerate(("clear", "rain", "fog", "night")):
        desc = by_name[f"scene-{i:04d}"]
        assert f"weather={weather}" in desc
    assert "night" in by_name["scene-0003"].lower() and "rain" in by_name["scene-0001"].lower()


def test_lidar_points_of_objects_project_into_their_image_region(nusc: NuScenes) -> None:
    checked = 0
    for sample in nusc.sample:
        cam_token = sample["data"]["CAM_FRONT"]
        cam_sd = nusc.get("sample_data", cam_token)
        cs = nusc.get("calibrated_sensor", cam_sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", cam_sd["ego_pose_token"])
        k = np.asarray(cs["camera_intrinsic"])
        pc = _load(nusc, sample["data"]["LIDAR_TOP"])
        _to_global(nusc, sample["data"]["LIDAR_TOP"], pc)
        _, boxes, _ = nusc.get_sample_data(cam_token, box_vis_level=BoxVisibility.ALL)  # camera frame, in view
        for box in boxes:
            inside = points_in_box(nusc.get_box(box.token), pc.points[:3])
            if inside.sum() < 5:
                continue
            pts = pc.points[:3, inside].astype(np.float64)
            # global -> ego (camera's pose) -> camera, as NuScenesExplorer.map_pointcloud_to_image does
            pts = Quaternion(pose["rotation"]).rotation_matrix.T @ (pts - np.array(pose["translation"])[:, None])
            pts = Quaternion(cs["rotation"]).rotation_matrix.T @ (pts - np.array(cs["translation"])[:, None])
            assert np.all(pts[2] > 0.5)
            uv = view_points(pts, k, normalize=True)[:2]
            corners = view_points(box.corners(), k, normalize=True)[:2]
            lo, hi = corners.min(axis=1) - 3.0, corners.max(axis=1) + 3.0  # 3 px: 8 ms of motion and rounding
            assert np.all((uv >= lo[:, None]) & (uv <= hi[:, None])), box.name
            checked += 1
    assert checked >= 10


def test_radar_radial_velocity_matches_box_velocity(nusc: NuScenes) -> None:
    errors, moving = [], 0
    for sample in nusc.sample:
        sd_token = sample["data"]["RADAR_FRONT"]
        sd = nusc.get("sample_data", sd_token)
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        rot = Quaternion(pose["rotation"]).rotation_matrix @ Quaternion(cs["rotation"]).rotation_matrix
        origin = Quaternion(pose["rotation"]).rotation_matrix @ np.array(cs["translation"]) + pose["translation"]
        pc = _load(nusc, sd_token)
        v = np.concatenate([pc.points[8:10], np.zeros((1, pc.nbr_points()))])  # vx_comp, vy_comp (sensor)
        v_global = rot @ v
        _to_global(nusc, sd_token, pc)
        for ann_token in sample["anns"]:
            vel = nusc.box_velocity(ann_token)
            if not np.isfinite(vel).all():
                continue
            # the radar keyframe is up to 38 ms off the sample: grow the box a little
            inside = np.flatnonzero(points_in_box(nusc.get_box(ann_token), pc.points[:3], wlh_factor=1.15))
            for i in inside:
                los = pc.points[:2, i] - origin[:2]
                los /= np.linalg.norm(los)
                errors.append(float(v_global[:2, i] @ los - vel[:2] @ los))
                moving += bool(np.linalg.norm(vel[:2]) > 1.0)
    errors = np.abs(errors)
    assert len(errors) >= 10 and moving >= 3
    assert np.median(errors) < 0.3
    assert np.quantile(errors, 0.9) < 1.0


def test_detection_eval_accepts_gt(nusc: NuScenes) -> None:
    tokens = get_samples_of_custom_split("synth_val", nusc)
    assert len(tokens) == 4
    gt = load_gt_of_sample_tokens(nusc, tokens, DetectionBox)
    assert len(gt.all) == sum(len(nusc.get("sample", t)["anns"]) for t in tokens)
    gt = add_center_dist(nusc, gt)
    cfg = config_factory("detection_cvpr_2019")
    kept = filter_eval_boxes(nusc, gt, cfg.class_range)
    assert len(kept.all) > 0
    assert all(b.num_pts > 0 for b in kept.all)
    assert sum(np.isfinite(b.velocity).all() for b in kept.all) > len(kept.all) / 2
