"""The coverage region: sector geometry by hand, union with the grid, sectors from calibration, and the coverage of
the synthetic rig (the fixture dataset's real calibration)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.evaluation.coverage import (
    Coverage,
    CoverageError,
    Sector,
    camera_sector,
    dataset_coverage,
    grid_region,
    radar_sector,
    rig_coverage,
)
from imkd_ros.evaluation.evaluate import Region
from imkd_ros.model.config import ModelConfig, RadarConfig
from imkd_ros.model.errors import ModelConfigError

EPS = 1e-3
#: camera (optical frame: z forward, x right, y down) -> ego (x forward, y left, z up), level
LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def polar(apex: tuple[float, float], yaw: float, azimuth_deg: float, r: float) -> list[float]:
    a = yaw + math.radians(azimuth_deg)
    return [apex[0] + r * math.cos(a), apex[1] + r * math.sin(a)]


def camera(cx: float, yaw_deg: float = 0.0, at: tuple[float, float, float] = (1.7, 0.0, 1.5)) -> Calibration:
    """A 1600x900 pinhole camera with fx = 1000, principal point (cx, 450), yawed by ``yaw_deg``."""
    k = np.array([[1000.0, 0.0, cx], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]])
    mount = Pose.from_yaw(math.radians(yaw_deg), [0.0, 0.0, 0.0]) @ Pose(LEVEL, list(at))
    return Calibration("CAM_TEST", mount, k, (1600, 900))


# ---------------------------------------------------------------------------------------------- sectors by hand
def test_symmetric_sector_edges_and_range_limits() -> None:
    apex, yaw = (1.0, -2.0), 0.0
    s = Sector.symmetric("R", apex, yaw, math.radians(30.0), max_range=10.0, min_range=2.0)
    pts = [
        polar(apex, yaw, 0.0, 5.0),  # on the axis
        polar(apex, yaw, 30.0 - EPS, 5.0),  # just inside the left edge
        polar(apex, yaw, 30.0 + EPS, 5.0),  # just outside it
        polar(apex, yaw, -30.0 + EPS, 5.0),  # right edge
        polar(apex, yaw, -30.0 - EPS, 5.0),
        polar(apex, yaw, 10.0, 2.0 + EPS),  # min range
        polar(apex, yaw, 10.0, 2.0 - EPS),
        polar(apex, yaw, -10.0, 10.0 - EPS),  # max range (radial)
        polar(apex, yaw, -10.0, 10.0 + EPS),
        polar(apex, yaw, 180.0, 5.0),  # behind
    ]
    assert s.contains(np.array(pts)).tolist() == [True, True, False, True, False, True, False, True, False, False]
    assert s.contains(np.zeros((0, 2))).shape == (0,)


def test_asymmetric_yawed_sector() -> None:
    apex, yaw = (0.0, 0.0), math.radians(90.0)  # looking left (+y)
    s = Sector("C", apex, yaw, left=math.radians(40.0), right=math.radians(10.0), max_range=20.0)
    pts = [
        [0.0, 5.0],  # straight along the heading
        polar(apex, yaw, 40.0 - EPS, 5.0),
        polar(apex, yaw, 40.0 + EPS, 5.0),
        polar(apex, yaw, -10.0 + EPS, 5.0),
        polar(apex, yaw, -10.0 - EPS, 5.0),
        [5.0, 0.0],  # ego forward: 90 deg right of the heading
    ]
    assert s.contains(np.array(pts)).tolist() == [True, True, False, True, False, False]


def test_depth_band_is_measured_along_the_axis() -> None:
    apex = (0.0, 0.0)
    half = math.radians(40.0)
    depth = Sector("C", apex, 0.0, half, half, max_range=10.0, min_range=2.0, along_axis=True)
    radial = Sector.symmetric("R", apex, 0.0, math.radians(40.0), max_range=10.0, min_range=2.0)
    pts = np.array([[9.9, 9.9 * math.tan(math.radians(30.0))], [1.9, 1.9 * math.tan(math.radians(35.0))]])
    # depth 9.9 at 30 deg: inside the depth band, 11.4 m away; depth 1.9 at 35 deg, 2.3 m away: the other way
    assert depth.contains(pts).tolist() == [True, False]
    assert radial.contains(pts).tolist() == [False, True]
    with pytest.raises(ValueError, match="half-angle"):
        Sector("C", apex, 0.0, math.radians(90.0), 0.5, 10.0, along_axis=True)


def test_sector_validation() -> None:
    with pytest.raises(ValueError, match="half-angle"):
        Sector.symmetric("R", (0.0, 0.0), 0.0, 0.0, 10.0)
    with pytest.raises(ValueError, match="half-angle"):
        Sector.symmetric("R", (0.0, 0.0), 0.0, 4.0, 10.0)
    with pytest.raises(ValueError, match="min_range < max_range"):
        Sector.symmetric("R", (0.0, 0.0), 0.0, 1.0, 10.0, min_range=10.0)
    with pytest.raises(ValueError, match="finite"):
        Sector.symmetric("R", (0.0, 0.0), 0.0, 1.0, math.inf)
    all_around = Sector.symmetric("L", (0.0, 0.0), 0.0, math.pi, 100.0)
    assert all_around.contains(np.array([[-5.0, 0.0], [0.0, -5.0], [3.0, 3.0]])).all()


# ---------------------------------------------------------------------------------------------------- the union
def test_coverage_is_the_grid_intersected_with_the_union_of_sectors() -> None:
    grid = Region(0.0, 50.0, -20.0, 20.0)
    left = Sector.symmetric("A", (0.0, 0.0), math.radians(45.0), math.radians(10.0), 100.0)
    right = Sector.symmetric("B", (0.0, 0.0), math.radians(-45.0), math.radians(10.0), 100.0)
    wide = Sector.symmetric("W", (0.0, 0.0), 0.0, math.radians(60.0), 100.0)
    cov = Coverage(grid, (left, right))
    pts = np.array([[10.0, 10.0], [10.0, -10.0], [10.0, 0.0], [30.0, 30.0], [-5.0, 0.0]])
    # in A only, in B only, in neither (between them), in A but outside the grid, outside everything
    assert cov.contains(pts).tolist() == [True, True, False, False, False]
    both = Coverage(grid, (left, wide)).contains(pts)
    assert both.tolist() == ((left.contains(pts) | wide.contains(pts)) & grid.contains(pts)).tolist()
    assert Coverage(grid, None).contains(pts).tolist() == grid.contains(pts).tolist()
    with pytest.raises(ValueError, match="at least one sector"):
        Coverage(grid, ())


def test_to_dict_is_plain_json() -> None:
    grid = Region(0.0, 50.0, -20.0, 20.0)
    cov = Coverage(grid, (Sector.symmetric("A", (1.0, 0.0), 0.0, 0.5, 70.0),))
    d = json.loads(json.dumps(cov.to_dict(), allow_nan=False))
    assert d["kind"] == "coverage" and d["grid"]["kind"] == "rectangle" and d["grid"]["x_max"] == 50.0
    assert (
        d["sectors"][0]["name"] == "A" and d["sectors"][0]["apex"] == [1.0, 0.0] and "A +-28.6 deg" in d["description"]
    )
    assert json.loads(json.dumps(Coverage(grid).to_dict()))["sectors"] is None


# ------------------------------------------------------------------------------------- sectors from calibration
@pytest.mark.parametrize(("cx", "yaw_deg"), [(800.0, 0.0), (600.0, 0.0), (800.0, 30.0), (1000.0, -20.0)])
def test_camera_sector_from_intrinsics(cx: float, yaw_deg: float) -> None:
    cal = camera(cx, yaw_deg)
    s = camera_sector(cal, max_range=50.0, min_range=2.0)
    assert s.name == "CAM_TEST" and s.apex == pytest.approx(tuple(cal.sensor_to_ego.translation[:2])) and s.along_axis
    assert math.degrees(s.yaw) == pytest.approx(yaw_deg)
    assert s.left == pytest.approx(math.atan(cx / 1000.0))  # column 0
    assert s.right == pytest.approx(math.atan((1600.0 - cx) / 1000.0))  # column W
    # ground points at camera height just inside / outside each image edge project inside / outside the image
    for azimuth, edge_u in ((math.degrees(s.left), 0.0), (-math.degrees(s.right), 1600.0)):
        for inward, inside in ((0.02, True), (-0.02, False)):
            a = azimuth - inward * math.copysign(1.0, azimuth)
            p = np.array([polar(s.apex, s.yaw, a, 20.0) + [1.5]])
            uv, depth = cal.project(p)
            assert depth[0] > 0 and ((0.0 <= uv[0, 0] <= 1600.0) == inside), (azimuth, inward, uv)
            assert s.contains(p).tolist() == [inside]
            assert abs(uv[0, 0] - edge_u) < 1.0
    # the depth band: along the optical axis
    ahead = np.array([polar(s.apex, s.yaw, 0.0, d) for d in (1.9, 2.1, 49.9, 50.1)])
    assert s.contains(ahead).tolist() == [False, True, True, False]


def test_camera_sector_needs_intrinsics() -> None:
    with pytest.raises(CoverageError, match="intrinsics"):
        camera_sector(Calibration("CAM", Pose(LEVEL, [0.0, 0.0, 1.0])), 50.0)
    k = np.array([[1000.0, 0.0, -10.0], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]])  # principal point left of the image
    with pytest.raises(CoverageError, match="principal point"):
        camera_sector(Calibration("CAM", Pose(LEVEL, [0.0, 0.0, 1.0]), k, (1600, 900)), 50.0)


def test_radar_sector_from_mounting() -> None:
    s = radar_sector(Pose.from_yaw(math.radians(90.0), [0.5, 0.9, 0.5]), math.radians(60.0), 70.0, name="left")
    assert s.apex == pytest.approx((0.5, 0.9)) and math.degrees(s.yaw) == pytest.approx(90.0)
    pts = np.array([polar(s.apex, s.yaw, 59.9, 69.9), polar(s.apex, s.yaw, 60.1, 10.0), polar(s.apex, s.yaw, 0, 70.1)])
    assert s.contains(pts).tolist() == [True, False, False]


def test_rig_coverage_uses_the_sensors_of_the_modalities() -> None:
    cam = camera(800.0)
    radars = {"front": Pose.from_yaw(0.0, [3.4, 0.0, 0.5]), "left": Pose.from_yaw(math.pi / 2, [2.0, 0.9, 0.5])}
    fusion = rig_coverage(ModelConfig.default(), (cam,), radars)
    assert [s.name for s in fusion.sectors] == ["CAM_TEST", "front", "left"]
    assert fusion.grid == grid_region(ModelConfig.default().grid)
    cam_sector = fusion.sectors[0]
    assert (cam_sector.min_range, cam_sector.max_range) == ModelConfig.default().camera.depth_range
    assert fusion.sectors[1].left == pytest.approx(math.radians(60.0)) and fusion.sectors[1].max_range == 70.0
    assert [s.name for s in rig_coverage(ModelConfig.default(("camera",)), (cam,), {}).sectors] == ["CAM_TEST"]
    assert [s.name for s in rig_coverage(ModelConfig.default(("radar",)), (), radars).sectors] == ["front", "left"]
    teacher = rig_coverage(ModelConfig.default(("lidar",)), (), {})
    assert teacher.sectors is None and teacher.grid == fusion.grid
    narrow = ModelConfig(modalities=("radar",), radar=RadarConfig(fov_deg=30.0, max_range=40.0))
    s = rig_coverage(narrow, (), radars).sectors[0]
    assert s.left == pytest.approx(math.radians(15.0)) and s.max_range == 40.0
    with pytest.raises(CoverageError, match="no camera"):
        rig_coverage(ModelConfig.default(), (), radars)
    with pytest.raises(CoverageError, match="no radar"):
        rig_coverage(ModelConfig.default(), (cam,), {})


def test_radar_config_sensor_fields_default_for_old_checkpoints() -> None:
    old = ModelConfig.default().to_dict()
    del old["radar"]["fov_deg"], old["radar"]["max_range"]  # a config saved before the fields existed
    cfg = ModelConfig.from_dict(old)
    assert cfg.radar.fov_deg == 120.0 and cfg.radar.max_range == 70.0 and cfg == ModelConfig.default()
    with pytest.raises(ModelConfigError, match="fov_deg"):
        RadarConfig(fov_deg=0.0)
    with pytest.raises(ModelConfigError, match="max_range"):
        RadarConfig(max_range=-1.0)


# ------------------------------------------------------------------------------------------------ the fixture rig
def test_coverage_of_the_synthetic_rig(synth_root: Path) -> None:
    """From the dataset's own calibration: the coverage holds between half and 95 % of the annotated boxes in the
    grid, and every box whose centre the camera images (in the image, 0 < depth < the depth range's end)."""
    reader = NuScenesReader(synth_root, load_image=False, load_lidar=False, radar_sweeps=1)
    tokens = reader.sample_tokens
    config = ModelConfig.default()
    cov = dataset_coverage(config, reader, tokens[0])
    cam, radar = cov.sectors
    assert cam.name == "CAM_FRONT" and radar.name == "RADAR_FRONT"
    assert 25.0 < math.degrees(cam.left) < 40.0 and 25.0 < math.degrees(cam.right) < 40.0  # about +-32 deg
    grid = grid_region(config.grid)
    max_depth = config.camera.depth_range[1]
    n_grid = n_covered = n_imaged = 0
    for t in tokens:
        f = reader.frame(t)
        xy = f.gt.center[:, :2]
        in_grid = grid.contains(xy)
        covered = cov.contains(xy)
        assert not (covered & ~in_grid).any()
        n_grid += int(in_grid.sum())
        n_covered += int(covered.sum())
        w, h = f.camera.image_size
        uv, depth = f.camera.project(f.gt.center)
        imaged = (depth > 0) & (depth < max_depth) & (uv[:, 0] >= 0) & (uv[:, 0] <= w) & (uv[:, 1] >= 0)
        imaged &= uv[:, 1] <= h
        assert covered[imaged & in_grid].all(), t
        n_imaged += int((imaged & in_grid).sum())
    fraction = n_covered / n_grid
    assert n_imaged > 0.4 * n_grid
    assert 0.5 <= fraction <= 0.95, fraction
    # a camera-only model sees less, the teacher the whole grid
    cam_only = dataset_coverage(ModelConfig.default(("camera",)), reader, tokens[0])
    teacher = dataset_coverage(ModelConfig.default(("lidar",)), None, tokens[0])
    all_xy = np.concatenate([reader.frame(t).gt.center[:, :2] for t in tokens])
    assert cam_only.contains(all_xy).sum() < cov.contains(all_xy).sum()
    assert teacher.contains(all_xy).tolist() == grid.contains(all_xy).tolist()
