"""NuScenesReader on the synthetic dataset: errors, splits, frame contents and the radar sweep geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.errors import InputError
from imkd_ros.core.transforms import quat_to_yaw, wrap_angle
from imkd_ros.core.types import LIDAR_FEATURES, RADAR_FEATURES, Boxes
from imkd_ros.data.errors import DatasetError
from imkd_ros.data.pcd import RADAR_PCD_DTYPE, write_radar_pcd
from imkd_ros.data.reader import NuScenesReader, weather_of_description

VERSION = "v1.0-synth"
RADAR_PERIOD_S = 1.0 / 13.0  # the synthetic RADAR_FRONT rate


@pytest.fixture(scope="module")
def reader(synth_root: Path) -> NuScenesReader:
    return NuScenesReader(synth_root, VERSION)


def _tables_only(synth_root: Path, dst: Path) -> Path:
    """A dataroot with the synthetic tables but none of the sensor files."""
    shutil.copytree(synth_root / VERSION, dst / VERSION)
    return dst


def _inside_xy(boxes: Boxes, xy: np.ndarray, margin: float) -> np.ndarray:
    """``(N_boxes, N_points)``: point inside the box footprint grown by ``margin`` (height ignored: 2D radar)."""
    d = xy[None, :, :2] - boxes.center[:, None, :2]
    c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
    lx, ly = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    return (np.abs(lx) <= boxes.size[:, 1:2] / 2 + margin) & (np.abs(ly) <= boxes.size[:, 0:1] / 2 + margin)


# -- errors -----------------------------------------------------------------------------------------------------
def test_bad_dataroot_errors(synth_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a folder"):
        NuScenesReader(tmp_path / "nowhere", VERSION)
    with pytest.raises(DatasetError, match=r"v1\.0-other/ \(the table folder\) missing under"):
        NuScenesReader(synth_root, "v1.0-other")

    root = _tables_only(synth_root, tmp_path / "root")
    (root / VERSION / "sample_data.json").unlink()
    with pytest.raises(DatasetError, match=rf"v1\.0-synth/sample_data\.json missing under {root}"):
        NuScenesReader(root, VERSION)

    (root / VERSION / "sample_data.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"sample_data\.json: unreadable table"):
        NuScenesReader(root, VERSION)

    records = json.loads((synth_root / VERSION / "sample_data.json").read_text(encoding="utf-8"))
    del next(r for r in records if r["is_key_frame"])["calibrated_sensor_token"]
    (root / VERSION / "sample_data.json").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"sample_data\.json .*lacks field.* 'calibrated_sensor_token'"):
        NuScenesReader(root, VERSION)


def test_missing_sensor_file_is_named(synth_root: Path, tmp_path: Path) -> None:
    root = _tables_only(synth_root, tmp_path)
    token = NuScenesReader(root, VERSION).sample_tokens[0]
    with pytest.raises(DatasetError, match=rf"samples/CAM_FRONT/\S+ missing under {root} \(sample_data \w+\)"):
        NuScenesReader(root, VERSION).frame(token)
    with pytest.raises(DatasetError, match=r"samples/RADAR_FRONT/\S+\.pcd missing under"):
        NuScenesReader(root, VERSION, load_image=False).frame(token)


def test_unknown_token_split_and_channel(reader: NuScenesReader, synth_root: Path) -> None:
    with pytest.raises(DatasetError, match="sample token 'nope' not in"):
        reader.frame("nope")
    with pytest.raises(DatasetError, match="unknown split 'synth_test'.*synth_train"):
        reader.split_samples("synth_test")
    with pytest.raises(DatasetError, match="split 'mini_val': none of its 2 scenes"):
        reader.split_samples("mini_val")  # a predefined nuScenes split: its scenes are not in the synthetic set
    with pytest.raises(DatasetError, match="has no RADAR_BACK_LEFT keyframe"):
        NuScenesReader(synth_root, VERSION, radars=("RADAR_BACK_LEFT",)).frame(reader.sample_tokens[0])


# -- tables -----------------------------------------------------------------------------------------------------
def test_splits_and_scenes(reader: NuScenesReader) -> None:
    train, val = reader.split_samples("synth_train"), reader.split_samples("synth_val")
    assert len(train) == 12 and len(val) == 4
    assert not set(train) & set(val) and set(train) | set(val) == set(reader.sample_tokens)
    assert reader.split_scenes("synth_val") == [reader.scene_of(val[0])]
    stamps = [reader.frame(t).timestamp for t in val]
    assert stamps == sorted(stamps)
    assert sorted(reader.weather_of_scene(s) for s in reader.scene_names) == ["clear", "fog", "night", "rain"]
    assert weather_of_description("Day, weather=rain, wet") == "rain"
    assert weather_of_description("Night, rain") == "unknown"


def test_velocity_and_annotations_agree_with_devkit(reader: NuScenesReader, synth_root: Path) -> None:
    from nuscenes import NuScenes

    nusc = NuScenes(VERSION, str(synth_root), verbose=False)
    n = 0
    for sample in nusc.sample:
        anns = reader.annotations(sample["token"])
        assert [a["token"] for a in anns] == sample["anns"]
        for a in anns:
            ref = nusc.get("sample_annotation", a["token"])
            assert a["category_name"] == ref["category_name"]
            assert a["num_lidar_pts"] == ref["num_lidar_pts"] and a["num_radar_pts"] == ref["num_radar_pts"]
            np.testing.assert_array_equal(reader.annotation_velocity(a["token"]), nusc.box_velocity(a["token"]))
            n += 1
    assert n > 100


# -- frames -----------------------------------------------------------------------------------------------------
def test_frame_contents(reader: NuScenesReader) -> None:
    for token in reader.split_samples("synth_val"):
        f = reader.frame(token)
        assert f.token == token and f.scene == reader.scene_of(token) and f.weather == "night"
        w, h = f.camera.image_size
        assert f.image.shape == (h, w, 3) and f.image.dtype == np.uint8 and f.image.std() > 1.0
        assert f.camera.intrinsic.shape == (3, 3) and f.camera.channel == "CAM_FRONT"

        assert f.radar.dtype == np.float32 and f.radar.shape[1] == len(RADAR_FEATURES) and len(f.radar) > 20
        assert np.isfinite(f.radar).all()
        assert f.lidar.dtype == np.float32 and f.lidar.shape[1] == len(LIDAR_FEATURES) and len(f.lidar) > 1000
        assert (f.lidar[:, 5] >= 0).all() and len(np.unique(f.lidar[:, 5])) == 1  # one LiDAR sweep

        lags = np.unique(f.radar[:, 6])
        assert (lags >= 0).all() and 1 <= len(lags) <= 6
        np.testing.assert_allclose(np.diff(lags), RADAR_PERIOD_S, atol=2e-3)  # one lag per sweep, growing

        gt = f.gt
        assert gt.frame == "ego" and len(gt) > 0
        assert gt.label.min() >= 0 and gt.label.max() < len(CLASSES)
        anns = {a["token"]: a for a in reader.annotations(token) if a["detection_class"] is not None}
        assert sorted(gt.tokens) == sorted(anns)
        # back to global: the annotation records
        g = gt.transform(f.ego_pose, "global")
        for i, t in enumerate(g.tokens):
            np.testing.assert_allclose(g.center[i], anns[t]["translation"], atol=1e-9)
            assert abs(wrap_angle(g.yaw[i] - quat_to_yaw(anns[t]["rotation"]))) < 1e-9
            assert CLASSES[g.label[i]] == anns[t]["detection_class"]


def test_sweep_counts(synth_root: Path, reader: NuScenesReader) -> None:
    token = reader.split_samples("synth_val")[-1]
    six = reader.frame(token)
    one = NuScenesReader(synth_root, VERSION, radar_sweeps=1, lidar_sweeps=3, load_image=False).frame(token)
    assert len(np.unique(six.radar[:, 6])) == 6
    assert len(np.unique(one.radar[:, 6])) == 1
    newest = six.radar[six.radar[:, 6] == six.radar[:, 6].min()]
    np.testing.assert_array_equal(one.radar, newest)  # the keyframe sweep is the newest of the six
    lidar_lags = np.unique(one.lidar[:, 5])
    assert len(lidar_lags) == 3 and len(one.lidar) > 2 * len(six.lidar)
    np.testing.assert_allclose(np.diff(lidar_lags), 0.05, atol=1e-6)  # 20 Hz LiDAR
    assert one.image is None and one.camera.image_size == six.camera.image_size


def test_radar_points_lie_on_gt_objects(synth_root: Path) -> None:
    """Every object the radar saw (num_radar_pts > 0, counted in the radar KEYFRAME, hence the nuScenes selection
    here) has an accumulated point in its box (+0.5 m), moving or static; and each older sweep hits the objects hit
    by the keyframe sweep about as often as the keyframe does, which the position advance by ``v_comp * lag``
    improves for moving objects."""
    reader = NuScenesReader(synth_root, VERSION, selection="nuscenes", load_image=False, load_lidar=False)
    found = {"static": [], "moving": []}
    followed = {"static": [], "moving": [], "moving_not_advanced": []}
    for token in reader.sample_tokens:
        f = reader.frame(token)
        gt = f.gt
        seen = np.array([a["num_radar_pts"] > 0 for a in reader.annotations(token) if a["detection_class"]])
        order = {t: i for i, t in enumerate(a["token"] for a in reader.annotations(token) if a["detection_class"])}
        seen = seen[[order[t] for t in gt.tokens]]
        speed = np.linalg.norm(np.nan_to_num(gt.velocity), axis=1)
        lag = f.radar[:, 6]
        sweep = np.searchsorted(np.unique(lag), lag)
        xy = f.radar[:, :2].astype(np.float64)
        not_advanced = xy - f.radar[:, 4:6] * lag[:, None]
        for kind, sel in (("static", speed < 0.05), ("moving", speed > 1.0)):
            inside = _inside_xy(gt[sel & seen], xy, 0.5)
            found[kind].append(inside.any(axis=1))
            if sweep.max() < 5:
                continue
            variants = [(kind, inside)]
            if kind == "moving":
                variants.append(("moving_not_advanced", _inside_xy(gt[sel & seen], not_advanced, 0.5)))
            for name, ins in variants:
                hit_by_key = ins[:, sweep == 0].any(axis=1)
                followed[name] += [ins[hit_by_key][:, sweep == k].any(axis=1) for k in range(1, 6)]
    for kind in found:
        got = np.concatenate(found[kind])
        assert len(got) > 20 and got.all(), kind
    rate = {k: np.concatenate(v).mean() for k, v in followed.items()}
    assert rate["static"] > 0.7 and rate["moving"] > 0.7, rate
    assert rate["moving"] > rate["moving_not_advanced"] + 0.1, rate


def _rewrite_radar_sweeps(root: Path, reader: NuScenesReader, token: str, position) -> list[str]:
    """Replace the files of the 6 RADAR_FRONT sweeps the reader selects for ``token`` (causally) by one point each
    at the global position ``position(t_seconds) -> (3,)``, with its velocity projected on the line of sight as the
    compensated velocity (what a radar measures); returns the sweeps' sample_data tokens, newest first."""
    t_cam = reader.sample_data(reader.keyframe_token(token, "CAM_FRONT"))["timestamp"]
    tokens = reader.sweep_tokens(token, "RADAR_FRONT", t_cam, reader.radar_window)
    assert len(tokens) == 6
    for sd in tokens:
        rec = reader.sample_data(sd)
        t = rec["timestamp"] * 1e-6
        sensor_to_global = reader.ego_pose_of(sd) @ reader.sensor_to_ego(sd)
        p = np.asarray(position(t), dtype=np.float64)
        vel = (np.asarray(position(t + 1e-3)) - np.asarray(position(t - 1e-3))) / 2e-3
        los = (p - sensor_to_global.translation) / np.linalg.norm(p - sensor_to_global.translation)
        to_sensor = sensor_to_global.inverse()
        pt = np.zeros(1, dtype=RADAR_PCD_DTYPE)
        pt["x"], pt["y"], pt["z"] = to_sensor.apply(p[None])[0]
        pt["vx_comp"], pt["vy_comp"] = to_sensor.rotate((los * (vel @ los))[None])[0, :2]
        pt["ambig_state"] = 3  # passes the default filters
        path = root / rec["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_radar_pcd(path, pt)
    return tokens


def test_static_world_point_accumulates_to_one_position(synth_root: Path, tmp_path: Path) -> None:
    root = _tables_only(synth_root, tmp_path)
    reader = NuScenesReader(root, VERSION, load_image=False, load_lidar=False)
    token = reader.split_samples("synth_val")[-1]  # a scene where the ego drives
    ref = reader.ego_pose_of(reader.keyframe_token(token, "CAM_FRONT"))
    world = ref.apply(np.array([[25.0, 3.0, 0.5]]))[0]
    sweeps = _rewrite_radar_sweeps(root, reader, token, lambda t: world)
    drive = np.linalg.norm(reader.ego_pose_of(sweeps[0]).translation - reader.ego_pose_of(sweeps[-1]).translation)
    assert drive > 1.0  # the test has power: the six sweeps were taken metres apart

    f = reader.frame(token)
    assert f.radar.shape == (6, 7)
    np.testing.assert_allclose(f.radar[:, :3], np.repeat([[25.0, 3.0, 0.5]], 6, axis=0), atol=1e-3)
    np.testing.assert_allclose(f.radar[:, 4:6], 0.0, atol=1e-4)
    assert len(np.unique(f.radar[:, 6])) == 6


def test_radially_moving_point_is_advanced_to_the_reference_time(synth_root: Path, tmp_path: Path) -> None:
    root = _tables_only(synth_root, tmp_path)
    reader = NuScenesReader(root, VERSION, load_image=False, load_lidar=False)

    # the scene whose ego stands still: the line of sight to a radially moving point does not turn
    def ego_travel(scene: str) -> float:
        cams = [reader.keyframe_token(t, "CAM_FRONT") for t in reader.scene_samples(scene)]
        return float(np.ptp([reader.ego_pose_of(c).translation for c in cams], axis=0).max())

    scene = min(reader.scene_names, key=ego_travel)
    token = reader.scene_samples(scene)[-1]
    cam = reader.keyframe_token(token, "CAM_FRONT")
    t_ref = reader.sample_data(cam)["timestamp"] * 1e-6
    sensor = (reader.ego_pose_of(cam) @ reader.sensor_to_ego(reader.keyframe_token(token, "RADAR_FRONT"))).translation
    direction = reader.ego_pose_of(cam).rotate(np.array([[0.8, 0.6, 0.0]]))[0]
    speed = 9.0  # m/s away from the radar
    sweeps = _rewrite_radar_sweeps(root, reader, token, lambda t: sensor + (20.0 + speed * (t - t_ref)) * direction)
    assert np.ptp([reader.ego_pose_of(s).translation for s in sweeps], axis=0).max() < 1e-6

    f = reader.frame(token)
    expected = f.ego_pose.inverse().apply((sensor + 20.0 * direction)[None])[0]
    np.testing.assert_allclose(f.radar[:, :3], np.repeat(expected[None], 6, axis=0), atol=1e-3)
    np.testing.assert_allclose(f.radar[:, 4:6], np.repeat([[0.8 * speed, 0.6 * speed]], 6, axis=0), atol=1e-3)
    spread_before_advance = np.ptp(f.radar[:, :2] - f.radar[:, 4:6] * f.radar[:, 6:7], axis=0).max()
    assert spread_before_advance > 1.0  # the raw sweeps are metres apart; the advance brings them together


def test_causal_selection_never_uses_a_sweep_after_the_camera(synth_root: Path, reader: NuScenesReader) -> None:
    """Causal (default): every radar/LiDAR sweep of a frame is stamped at or before the camera keyframe, the key
    sweep is the newest such sweep of the channel's chain, and at most ``count`` sweeps within the age limit are
    used. The nuScenes convention uses the radar keyframe, which in most synthetic scenes lies after the camera on
    some keyframes: both cases occur in the fixture (the hard case and the easy one)."""
    nusc = NuScenesReader(synth_root, VERSION, selection="nuscenes", load_image=False)
    differs = 0
    for token in reader.sample_tokens:
        t_cam = reader.sample_data(reader.keyframe_token(token, "CAM_FRONT"))["timestamp"]
        for channel, window in (("RADAR_FRONT", reader.radar_window), ("LIDAR_TOP", reader.lidar_window)):
            toks = reader.sweep_tokens(token, channel, t_cam, window)
            stamps = [reader.sample_data(t)["timestamp"] for t in toks]
            assert 1 <= len(toks) <= window.count and stamps == sorted(stamps, reverse=True)
            assert stamps[0] <= t_cam and t_cam - stamps[-1] <= window.max_age * 1e6
            nxt = reader.sample_data(toks[0])["next"]
            assert not nxt or reader.sample_data(nxt)["timestamp"] > t_cam  # the newest one at or before
        key = reader.keyframe_token(token, "RADAR_FRONT")
        old = nusc.sweep_tokens(token, "RADAR_FRONT", t_cam, nusc.radar_window)
        assert old[0] == key
        differs += reader.sweep_tokens(token, "RADAR_FRONT", t_cam, reader.radar_window)[0] != key
        f = reader.frame(token)
        assert (f.radar[:, 6] >= 0).all() and (f.lidar[:, 5] >= 0).all()
    assert 0 < differs < len(reader.sample_tokens), differs


def test_the_default_rig_is_the_datasets(synth_root: Path) -> None:
    reader = NuScenesReader(synth_root, "v1.0-synth", load_lidar=False)
    assert reader.cameras == ("CAM_FRONT",) and reader.radars == ("RADAR_FRONT",) and reader.camera == "CAM_FRONT"
    assert reader.channels("lidar") == ("LIDAR_TOP",)
    for bad in ("CAM_FRONT", ()):
        with pytest.raises(InputError, match="cameras must be a sequence"):
            NuScenesReader(synth_root, "v1.0-synth", cameras=bad)
