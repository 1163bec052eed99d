"""write_dataset: arguments, layout, determinism, overwrite rules; the schedule and table helpers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from nuscenes.utils.map_mask import MapMask

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration
from imkd_ros.data.errors import DatasetError
from imkd_ros.data.pcd import read_lidar_bin, read_radar_pcd, write_lidar_bin
from imkd_ros.data.synth import SynthSummary, write_dataset
from imkd_ros.data.synth.camera import render_camera
from imkd_ros.data.synth.jobs import (
    CHANNELS,
    SceneSpec,
    count_points_in_boxes,
    scenario_of,
    schedule_of,
    sensor_rng,
)
from imkd_ros.data.synth.lidar import lidar_sweep
from imkd_ros.data.synth.maps import render_map_png
from imkd_ros.data.synth.radar import radar_sweep
from imkd_ros.data.synth.rig import KEYFRAME_HZ, RATES_HZ
from imkd_ros.data.synth.schedule import CAMERA_DELAY_US, scene_schedule
from imkd_ros.data.synth.tables import TABLE_NAMES, make_token, visibility_token
from imkd_ros.data.synth.world import make_scenario
from imkd_ros.data.synth.writer import split_scenes


def _small(img: np.ndarray) -> np.ndarray:
    """A 1600 x 900 image shrunk to 200 x 112 (area average), float32."""
    return cv2.resize(img.astype(np.float32), (200, 112), interpolation=cv2.INTER_AREA)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    """2 scenes x 1 sample (one keyframe interval each, with all sweeps), written in this process."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    summary = write_dataset(root, scenes=2, samples_per_scene=1, seed=5, weathers=("fog", "night"), workers=1)
    return root, summary


def test_summary_and_layout(tiny: tuple[Path, SynthSummary]) -> None:
    root, s = tiny
    assert s.root == root and s.version == "v1.0-synth"
    assert s.scenes == ["scene-0000", "scene-0001"] and s.weathers == ["fog", "night"]
    assert s.train_scenes == ["scene-0000"] and s.val_scenes == ["scene-0001"]
    assert s.samples == 2
    # one keyframe interval per scene: 12 Hz camera, 20 Hz LiDAR, radar 13 Hz (6 or 7)
    assert s.sample_data["CAM_FRONT"] == 2 * 6 and s.sample_data["LIDAR_TOP"] == 2 * 10
    assert 2 * 6 <= s.sample_data["RADAR_FRONT"] <= 2 * 7
    assert s.annotations > 0 and 0 < s.instances <= s.annotations
    for name in TABLE_NAMES:
        table = json.loads((root / "v1.0-synth" / f"{name}.json").read_text())
        assert isinstance(table, list) and table, name
    for channel in ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"):
        assert len(list((root / "samples" / channel).iterdir())) == 2
    assert len(list((root / "maps").glob("*.png"))) == 1


def test_same_seed_identical_bytes_any_workers(tiny: tuple[Path, SynthSummary], tmp_path: Path) -> None:
    root, _ = tiny
    again = write_dataset(tmp_path / "b", scenes=2, samples_per_scene=1, seed=5, weathers="fog,night", workers=2)
    assert again.samples == 2
    a, b = _files(root), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert different == []


def test_different_seed_differs(tiny: tuple[Path, SynthSummary], tmp_path: Path) -> None:
    root, _ = tiny
    write_dataset(tmp_path / "c", scenes=1, samples_per_scene=1, seed=6, weathers=("fog",), camera_sweeps=False)
    a = json.loads((root / "v1.0-synth" / "sample_annotation.json").read_text())
    c = json.loads((tmp_path / "c" / "v1.0-synth" / "sample_annotation.json").read_text())
    assert {r["token"] for r in a}.isdisjoint(r["token"] for r in c)
    assert [r["translation"] for r in a[:5]] != [r["translation"] for r in c[:5]]
    lidar_a = sorted((root / "samples" / "LIDAR_TOP").iterdir())[0].read_bytes()
    lidar_c = sorted((tmp_path / "c" / "samples" / "LIDAR_TOP").iterdir())[0].read_bytes()
    assert lidar_a != lidar_c


def test_camera_sweeps_off(tmp_path: Path) -> None:
    s = write_dataset(tmp_path / "d", scenes=1, samples_per_scene=2, seed=1, camera_sweeps=False, workers=1)
    assert s.sample_data["CAM_FRONT"] == 2 and s.sample_data["LIDAR_TOP"] == 20
    assert not (tmp_path / "d" / "sweeps" / "CAM_FRONT").exists()
    sd = json.loads((tmp_path / "d" / "v1.0-synth" / "sample_data.json").read_text())
    cams = [r for r in sd if r["filename"].startswith("samples/CAM_FRONT")]
    assert len(cams) == 2 and all(r["is_key_frame"] for r in cams)
    assert cams[0]["next"] == cams[1]["token"] and cams[1]["prev"] == cams[0]["token"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scenes": 0}, "scenes must be an integer >= 1"),
        ({"samples_per_scene": -1}, "samples_per_scene"),
        ({"seed": -3}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"weathers": ("clear", "snow")}, "unknown weather 'snow'"),
        ({"weathers": ()}, "weathers is empty"),
        ({"version": "a/b"}, "version must be a plain folder name"),
        ({"version": "samples"}, "clashes"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"scenes": 1, "samples_per_scene": 1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        write_dataset(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()  # nothing written


def test_refuses_non_empty_dir_and_overwrite_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "e"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write_dataset(out, scenes=1, samples_per_scene=1, seed=0, camera_sweeps=False)
    assert _files(out) == {"notes.txt": b"mine"}

    write_dataset(out, scenes=1, samples_per_scene=1, seed=0, camera_sweeps=False, overwrite=True)
    first = set(_files(out))
    write_dataset(out, scenes=1, samples_per_scene=1, seed=3, camera_sweeps=False, overwrite=True, workers=1)
    second = _files(out)
    assert keep.read_text() == "mine"
    # the first dataset's files are gone, the second's are complete
    sd = json.loads(second["v1.0-synth/sample_data.json"])
    assert {r["filename"] for r in sd} <= set(second)
    stale = {f for f in first - set(second)}
    assert stale and all(f.startswith(("samples/", "sweeps/", "maps/")) for f in stale)
    data_files = {f for f in second if f.startswith(("samples/", "sweeps/"))}
    assert data_files == {r["filename"] for r in sd}


def test_schedule_rates_and_keyframes() -> None:
    for samples in (1, 3):
        sched = scene_schedule(samples, dict(RATES_HZ), KEYFRAME_HZ, radar_phase=0.37)
        period = 1e6 / KEYFRAME_HZ
        np.testing.assert_array_equal(np.diff(sched.sample_offsets_us), [int(period)] * (samples - 1))
        lidar = sched.channels["LIDAR_TOP"]
        np.testing.assert_array_equal(lidar.offsets_us[lidar.keyframes], sched.sample_offsets_us)
        cam = sched.channels["CAM_FRONT"]
        np.testing.assert_array_equal(cam.offsets_us[cam.keyframes], sched.sample_offsets_us + CAMERA_DELAY_US)
        radar = sched.channels["RADAR_FRONT"]
        gap = np.abs(radar.offsets_us[:, None] - sched.sample_offsets_us[None, :])
        np.testing.assert_array_equal(gap.argmin(axis=0), radar.keyframes)  # nearest sweep
        for name, ch in sched.channels.items():
            assert ch.offsets_us[0] >= 0 and np.all(np.diff(ch.offsets_us) > 0)
            assert ch.keyframes[-1] == len(ch.offsets_us) - 1
            steps = np.diff(ch.offsets_us)
            assert np.all(np.abs(steps - 1e6 / RATES_HZ[name]) <= 1), name
            for k in range(samples):
                idx = ch.sweeps_of(k)
                assert idx[-1] == ch.keyframes[k]
                assert abs(len(idx) - RATES_HZ[name] / KEYFRAME_HZ) <= 1
    off = scene_schedule(2, dict(RATES_HZ), KEYFRAME_HZ, 0.0, camera_sweeps=False).channels["CAM_FRONT"]
    assert len(off.offsets_us) == 2 and list(off.keyframes) == [0, 1]
    with pytest.raises(ValueError, match="samples must be >= 1"):
        scene_schedule(0, dict(RATES_HZ), KEYFRAME_HZ, 0.0)


def test_splits_visibility_tokens() -> None:
    assert split_scenes(["a"]) == {"synth_train": ["a"], "synth_val": [], "synth_all": ["a"], "synth_unlabelled": []}
    assert split_scenes(["a", "b"]) == {
        "synth_train": ["a"],
        "synth_val": ["b"],
        "synth_all": ["a", "b"],
        "synth_unlabelled": [],
    }
    five = split_scenes([f"s{i}" for i in range(5)], unlabelled=2)  # validation does not move
    assert (five["synth_train"], five["synth_val"], five["synth_unlabelled"]) == (["s0", "s1"], ["s3"], ["s2", "s4"])
    with pytest.raises(ValueError, match=r"in 0\.\.4"):
        split_scenes([f"s{i}" for i in range(5)], unlabelled=5)
    names = [f"s{i}" for i in range(9)]
    assert split_scenes(names)["synth_val"] == ["s3", "s6"]
    weathers = ["clear", "rain", "fog", "night"]
    val16 = split_scenes([f"s{i}" for i in range(16)])["synth_val"]
    assert sorted(weathers[int(n[1:]) % 4] for n in val16) == sorted(weathers)  # every weather validated
    assert [visibility_token(f) for f in (0.0, 0.4, 0.41, 0.6, 0.7, 0.8, 0.81, 1.0, float("nan"))] == list("112233441")
    tok = make_token("sample", 1, 2)
    assert len(tok) == 32 and int(tok, 16) >= 0 and tok == make_token("sample", 1, 2) != make_token("sample", 2, 1)


def test_count_points_in_boxes_matches_devkit_on_faces(tmp_path: Path) -> None:

    # LiDAR frame = ego = global (identity poses); a 2 x 4 x 1.5 m box (w, l, h) at (10, 0, 1) yawed 90 deg
    pts = np.array(
        [
            [10.0, 0.0, 1.0, 1, 0],  # centre
            [11.0, 0.0, 1.0, 1, 0],  # on the face at +w/2 (yawed: along x)
            [10.0, 2.0, 1.75, 1, 0],  # on an edge: faces count as inside
            [10.0, 2.1, 1.0, 1, 0],  # just outside
            [30.0, 0.0, 1.0, 1, 0],
        ],
        dtype=np.float32,
    )
    path = tmp_path / "x.pcd.bin"
    write_lidar_bin(path, pts)
    ident = {"translation": [0.0, 0.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0]}
    half = float(np.sqrt(0.5))
    boxes = [
        {"translation": [10.0, 0.0, 1.0], "size": [2.0, 4.0, 1.5], "rotation": [half, 0.0, 0.0, half]},
        {"translation": [50.0, 0.0, 1.0], "size": [2.0, 4.0, 1.5], "rotation": [1.0, 0.0, 0.0, 0.0]},
    ]
    assert count_points_in_boxes(path, ident, ident, boxes).tolist() == [3, 0]
    # the sensor mounted 1 m up and the ego 5 m further along x: the same points move with them
    cs = {"translation": [0.0, 0.0, 1.0], "rotation": [1.0, 0.0, 0.0, 0.0]}
    ego = {"translation": [5.0, 0.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0]}
    moved = [dict(boxes[0], translation=[15.0, 0.0, 2.0])]
    assert count_points_in_boxes(path, cs, ego, moved).tolist() == [3]
    with pytest.raises(ValueError, match="neither"):
        count_points_in_boxes(tmp_path / "x.txt", ident, ident, boxes)


def test_map_png_marks_the_road_where_the_devkit_looks(tmp_path: Path) -> None:

    scn = dataclasses.replace(make_scenario(0, 0, "clear", 2.0), road_origin=np.array([300.0, 200.0, 0.0]))
    path = tmp_path / "map.png"
    path.write_bytes(render_map_png([scn]))
    mask = MapMask(str(path), resolution=0.1)
    ego = scn.ego_pose(1.0).translation
    off_road = scn.road_to_global.apply(np.array([[10.0, 30.0, 0.0], [10.0, -30.0, 0.0]]))
    assert mask.is_on_mask(ego[0], ego[1]).all()
    assert not mask.is_on_mask(off_road[:, 0], off_road[:, 1]).any()


def test_files_are_the_sensor_output_at_their_timestamp_and_calibration(synth_root: Path) -> None:
    """Each stored file is what its sensor produces at the recorded timestamp, ego pose and calibration (so the
    tables describe the data): LiDAR and radar to float precision, the camera up to JPEG loss."""

    tables = {n: json.loads((synth_root / "v1.0-synth" / f"{n}.json").read_text()) for n in TABLE_NAMES}
    by_token = {n: {r["token"]: r for r in t} for n, t in tables.items()}
    scene = next(s for s in tables["scene"] if s["name"] == "scene-0000")
    spec = SceneSpec(0, 0, "clear", 4, True)  # the synth_root fixture's first scene
    scn, sched = scenario_of(spec), schedule_of(spec)
    sample = by_token["sample"][by_token["sample"][scene["first_sample_token"]]["next"]]
    for channel in CHANNELS:
        key = next(
            r
            for r in tables["sample_data"]
            if r["sample_token"] == sample["token"] and r["is_key_frame"] and r["filename"].split("/")[1] == channel
        )
        for sd in (key, by_token["sample_data"][key["prev"]]):  # the keyframe and the sweep before it
            cs = by_token["calibrated_sensor"][sd["calibrated_sensor_token"]]
            pose = by_token["ego_pose"][sd["ego_pose_token"]]
            offset = sd["timestamp"] - scn.start_us
            j = int(np.flatnonzero(sched.channels[channel].offsets_us == offset)[0])
            t = offset / 1e6
            truth = scn.ego_pose(t)
            np.testing.assert_allclose(pose["translation"], truth.translation, atol=1e-9)
            np.testing.assert_allclose(Pose.from_quat(pose["rotation"], [0, 0, 0]).rotation, truth.rotation, atol=1e-9)
            is_cam = bool(cs["camera_intrinsic"])
            calib = Calibration(
                channel,
                Pose.from_quat(cs["rotation"], cs["translation"]),
                np.asarray(cs["camera_intrinsic"]) if is_cam else None,
                (sd["width"], sd["height"]) if is_cam else None,
            )
            path = synth_root / sd["filename"]
            rng = sensor_rng(scn, channel, j)
            if channel == "LIDAR_TOP":
                np.testing.assert_allclose(read_lidar_bin(path), lidar_sweep(scn, t, calib, rng).points, atol=1e-4)
            elif channel == "RADAR_FRONT":
                got, want = read_radar_pcd(path, filtered=False), radar_sweep(scn, t, calib, rng)
                assert len(got) == len(want) > 0
                for name in ("x", "y", "rcs", "vx_comp", "vy_comp", "dyn_prop", "invalid_state"):
                    np.testing.assert_allclose(got[name], want[name], atol=1e-4)
            else:
                # compared at 1/8 size, where sensor noise and JPEG loss average out
                img = _small(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
                ref = _small(render_camera(scn, t, calib, rng))
                earlier = _small(render_camera(scn, t - 1.0 / 12.0, calib, sensor_rng(scn, channel, j)))
                diff = np.abs(img - ref).mean()
                assert diff < 0.8
                assert diff < 0.5 * np.abs(img - earlier).mean()  # the right instant, not the frame before
                assert np.abs(img - ref[:, :, ::-1]).mean() > 5.0  # and the right channel order
