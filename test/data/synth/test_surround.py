"""The nuScenes surround rig (``imkd synth --rig nuscenes``): six cameras and five radars that the nuscenes-devkit
reads like its own: every channel at every sample, point counts summed over the five radars, cameras exposed at
staggered times, objects seen by the back cameras where they are, radar Doppler matching the boxes' motion."""

from __future__ import annotations

import numpy as np
import pytest
from nuscenes import NuScenes
from nuscenes.utils.geometry_utils import BoxVisibility, points_in_box, view_points
from pyquaternion import Quaternion

from imkd_ros.data.synth import write_dataset
from imkd_ros.data.synth.rig import RIGS

from .test_devkit import VERSION, _load, _to_global

RIG = RIGS["nuscenes"]


@pytest.fixture(scope="module")
def nusc(tmp_path_factory: pytest.TempPathFactory) -> NuScenes:
    root = tmp_path_factory.mktemp("surround")
    write_dataset(root, scenes=2, samples_per_scene=2, seed=5, weathers=("clear",), camera_sweeps=False, workers=1,
                  rig="nuscenes")  # fmt: skip
    return NuScenes(version=VERSION, dataroot=str(root), verbose=False)


def test_every_sensor_at_every_sample(nusc: NuScenes) -> None:
    assert [s["channel"] for s in nusc.sensor] == list(RIG.channels) and len(RIG.cameras) == 6 == len(RIG.radars) + 1
    assert {s["modality"] for s in nusc.sensor} == {"camera", "radar", "lidar"}
    for sample in nusc.sample:
        assert set(sample["data"]) == set(RIG.channels)
        for cam in RIG.cameras:
            sd = nusc.get("sample_data", sample["data"][cam])
            _, _, k = nusc.get_sample_data(sample["data"][cam])
            assert (sd["width"], sd["height"]) == (1600, 900) and sd["fileformat"] == "jpg"
            assert k[0][0] == pytest.approx(809.2 if cam == "CAM_BACK" else 1266.4)
            # staggered exposures: each camera when the LiDAR's beam crosses it, with its own ego pose
            assert sd["timestamp"] - sample["timestamp"] == RIG.camera_delay_us[cam]
    assert len(set(RIG.camera_delay_us.values())) == 6


def test_radar_point_counts_sum_the_five_radars(nusc: NuScenes) -> None:
    seen_by = {r: 0 for r in RIG.radars}
    for sample in nusc.sample:
        clouds = {ch: _load(nusc, sample["data"][ch]) for ch in ("LIDAR_TOP", *RIG.radars)}
        for ch, pc in clouds.items():
            _to_global(nusc, sample["data"][ch], pc)
        for ann_token in sample["anns"]:
            ann, box = nusc.get("sample_annotation", ann_token), nusc.get_box(ann_token)
            per_radar = {r: int(points_in_box(box, clouds[r].points[:3]).sum()) for r in RIG.radars}
            assert ann["num_radar_pts"] == sum(per_radar.values())
            assert ann["num_lidar_pts"] == int(points_in_box(box, clouds["LIDAR_TOP"].points[:3]).sum())
            for r, n in per_radar.items():
                seen_by[r] += n > 0
    assert all(n > 0 for n in seen_by.values()), seen_by  # every radar, the back ones too, sees objects


def test_objects_project_into_their_image_region_in_every_camera(nusc: NuScenes) -> None:
    checked = dict.fromkeys(RIG.cameras, 0)
    for sample in nusc.sample:
        pc = _load(nusc, sample["data"]["LIDAR_TOP"])
        _to_global(nusc, sample["data"]["LIDAR_TOP"], pc)
        for cam in RIG.cameras:
            sd = nusc.get("sample_data", sample["data"][cam])
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            k = np.asarray(cs["camera_intrinsic"])
            _, boxes, _ = nusc.get_sample_data(sample["data"][cam], box_vis_level=BoxVisibility.ALL)
            for box in boxes:
                inside = points_in_box(nusc.get_box(box.token), pc.points[:3])
                if inside.sum() < 5:
                    continue
                pts = pc.points[:3, inside].astype(np.float64)
                pts = Quaternion(pose["rotation"]).rotation_matrix.T @ (pts - np.array(pose["translation"])[:, None])
                pts = Quaternion(cs["rotation"]).rotation_matrix.T @ (pts - np.array(cs["translation"])[:, None])
                assert np.all(pts[2] > 0.5), (cam, box.name)
                uv = view_points(pts, k, normalize=True)[:2]
                corners = view_points(box.corners(), k, normalize=True)[:2]
                # the LiDAR keyframe and the camera are up to 58 ms apart: 10 px for the motion in between
                lo, hi = corners.min(axis=1) - 10.0, corners.max(axis=1) + 10.0
                assert np.all((uv >= lo[:, None]) & (uv <= hi[:, None])), (cam, box.name)
                checked[cam] += 1
    assert checked["CAM_BACK"] >= 3 and sum(checked.values()) >= 15, checked


def test_radar_doppler_matches_box_motion_for_every_radar(nusc: NuScenes) -> None:
    errors: dict[str, list[float]] = {r: [] for r in RIG.radars}
    for sample in nusc.sample:
        for r in RIG.radars:
            sd_token = sample["data"][r]
            sd = nusc.get("sample_data", sd_token)
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            rot = Quaternion(pose["rotation"]).rotation_matrix @ Quaternion(cs["rotation"]).rotation_matrix
            origin = Quaternion(pose["rotation"]).rotation_matrix @ np.array(cs["translation"]) + pose["translation"]
            pc = _load(nusc, sd_token)
            v_global = rot @ np.concatenate([pc.points[8:10], np.zeros((1, pc.nbr_points()))])
            _to_global(nusc, sd_token, pc)
            for ann_token in sample["anns"]:
                vel = nusc.box_velocity(ann_token)
                if not np.isfinite(vel).all():
                    continue
                box = nusc.get_box(ann_token)
                for i in np.flatnonzero(points_in_box(box, pc.points[:3], wlh_factor=1.15)):
                    los = pc.points[:2, i] - origin[:2]
                    los /= np.linalg.norm(los)
                    errors[r].append(float(v_global[:2, i] @ los - vel[:2] @ los))
    everything = np.abs(np.concatenate([np.asarray(e) for e in errors.values()]))
    assert len(everything) >= 20 and np.median(everything) < 0.3, {r: len(e) for r, e in errors.items()}
    assert sum(len(e) > 0 for e in errors.values()) >= 4  # most radars contribute


def test_front_rig_keys_are_unchanged() -> None:
    """The default rig writes what it wrote before there were rigs: same scene keys, hence the same tokens."""
    from imkd_ros.data.synth.jobs import SceneSpec

    assert SceneSpec(1, 2, "rain", 20, True).key == "imkd-synth/1/2/rain/20"
    assert SceneSpec(1, 2, "rain", 20, True, "nuscenes").key == "imkd-synth/1/2/rain/20/nuscenes"
