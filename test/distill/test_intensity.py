"""Intensity maps: the documented normalisation, zero where the LiDAR sees nothing or only ground, high on
objects, the mix, the debug PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.distill.errors import DistillConfigError
from imkd_ros.distill.intensity import (
    INTENSITY_NAMES,
    IntensitySpec,
    combine_intensity,
    draw_intensity,
    intensity_maps,
    non_ground_mask,
    structure_maps,
    teacher_intensity,
)
from imkd_ros.model import ModelConfig, Teacher, TeacherInputs
from imkd_ros.training.train import model_config_for


def test_maps_follow_the_documented_formulas() -> None:
    li = torch.zeros(1, 2, 4, 5)
    scale = 4.0
    li[0, 0, 1, 2] = math.log1p(7) / scale  # 7 points
    li[0, 0, 3, 4] = math.log1p(500) / scale  # saturates
    li[0, 1, 1, 2] = 0.4
    feats = torch.zeros(1, 6, 4, 5)
    feats[0, :, 0, 0] = 2.0
    feats[0, :3, 2, 1] = 1.0  # mean |F| = 0.5 -> 0.25 of the peak
    maps = intensity_maps(li, feats, scale, IntensitySpec(density_saturation=63.0, activation_quantile=0.0))
    assert maps.shape == (1, 3, 4, 5) and len(INTENSITY_NAMES) == 3
    assert maps[0, 0, 1, 2].item() == pytest.approx(math.log(8) / math.log(64))
    assert maps[0, 0, 3, 4].item() == 1.0
    assert maps[0, 1, 1, 2].item() == pytest.approx(0.4)
    assert maps[0, 2, 0, 0].item() == 1.0 and maps[0, 2, 2, 1].item() == pytest.approx(0.25)
    empty = torch.ones(4, 5, dtype=torch.bool)
    empty[1, 2] = empty[3, 4] = False
    assert (maps[0, :2][:, empty] == 0).all()  # no LiDAR point: no density, no reflectance
    assert intensity_maps(li, torch.zeros_like(feats), scale)[0, 2].abs().sum() == 0  # all-zero features: no NaN


def test_activation_above_the_median_baseline() -> None:
    feats = torch.arange(1.0, 17.0).view(1, 1, 4, 4).expand(2, 3, 4, 4).clone()  # magnitudes 1..16
    maps = intensity_maps(torch.zeros(2, 2, 4, 4), feats, 4.0)  # default: median baseline (8.5)
    act = maps[0, 2].flatten()
    assert (act[:8] == 0).all() and act[-1] == 1.0 and act[8].item() == pytest.approx(0.5 / 7.5)
    torch.testing.assert_close(maps[0], maps[1])
    with pytest.raises(DistillConfigError, match="activation_quantile"):
        IntensitySpec(activation_quantile=1.0)


def test_spec_round_trip_and_older_caches() -> None:
    assert IntensitySpec.from_dict(IntensitySpec().to_dict()) == IntensitySpec()
    assert IntensitySpec().removes_ground and IntensitySpec().ground_clearance == 0.3
    # a cache index written before the activation threshold and the ground removal: read as what it holds
    old = IntensitySpec.from_dict({"density_saturation": 64.0})
    assert old.activation_quantile == 0.0 and old.ground_clearance == 0.0 and not old.removes_ground
    for kwargs, match in (({"ground_clearance": -0.1}, "ground_clearance"), ({"ground_tile": 0.0}, "ground_tile")):
        with pytest.raises(DistillConfigError, match=match):
            IntensitySpec(**kwargs)


def test_teacher_intensity_is_zero_without_lidar_and_in_range() -> None:
    torch.manual_seed(0)
    cfg = model_config_for("lidar", "tiny")
    teacher = Teacher(config=cfg).eval()
    pts = torch.zeros(1, 60, 6)
    pts[0, :50, 0] = torch.linspace(5, 10, 50)  # a 5 m line of points ahead, on the centre row, 1 m up
    pts[0, :50, 2] = 1.0
    pts[0, 50:, 0] = torch.linspace(3, 20, 10)  # and ground returns around it
    pts[0, :, 3] = 200.0
    mask = torch.ones(1, 60, dtype=torch.bool)
    with torch.no_grad():
        out = teacher.features(TeacherInputs(pts, mask))
        maps = teacher_intensity(out, cfg, lidar=pts, lidar_mask=mask)
        every_point = teacher_intensity(out, cfg, IntensitySpec(ground_clearance=0.0))
    assert maps.shape == every_point.shape == (1, 3, cfg.grid.out_ny, cfg.grid.out_nx)
    assert maps.min() >= 0 and maps.max() <= 1
    occupied = maps[0, 0] > 0
    assert 1 <= occupied.sum() <= 4
    assert (maps[0, 1][~occupied] == 0).all() and maps[0, 1][occupied].min() == pytest.approx(200 / 255, rel=1e-5)
    assert (every_point[0, 0] > 0).sum() > occupied.sum()  # the ground's cells too
    torch.testing.assert_close(maps[:, 2], every_point[:, 2])  # the activation reading does not depend on it
    with pytest.raises(DistillConfigError, match="lidar=batch.lidar"):
        teacher_intensity(out, cfg)  # ground removal needs the raw points


def _ring_scan(slope: float = 0.0, height: float = 1.84, max_range: float = 60.0) -> np.ndarray:
    """Ground returns of a 32-beam spinning LiDAR (HDL-32E elevations, 1/3 deg azimuth steps) at ``height`` above a
    plane ``z = slope * x`` (ego frame), 2 cm noise: ``(N, 3)``. Beyond ~20 m the rings are metres apart."""
    el = np.deg2rad(np.linspace(-30.67, 10.67, 32))[:, None]
    az = np.deg2rad(np.arange(0.0, 360.0, 1 / 3))[None, :]
    d = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1)
    denom = slope * d[..., 0] - d[..., 2]
    hit = denom > 1e-6
    t = np.where(hit, height / np.where(hit, denom, 1.0), np.inf)
    keep = hit & (t < max_range)
    pts = d[keep] * t[keep][:, None] + np.array([0.0, 0.0, height])
    pts[:, 2] += np.random.default_rng(0).normal(0.0, 0.02, len(pts))
    return pts


def _box_faces(cx: float, cy: float, n: int, z0: float = 0.0, length: float = 4.5, width: float = 1.9) -> np.ndarray:
    """``n`` returns on the two faces of a car seen from the ego (rear and right side), 0.4-1.6 m above ``z0``."""
    rng = np.random.default_rng(int(cx * 10 + cy))
    a, b = n // 2, n - n // 2
    side = np.stack([rng.uniform(cx - length / 2, cx + length / 2, a), np.full(a, cy - width / 2)], axis=1)
    rear = np.stack([np.full(b, cx - length / 2), rng.uniform(cy - width / 2, cy + width / 2, b)], axis=1)
    xy = np.concatenate([side, rear])
    return np.concatenate([xy, rng.uniform(z0 + 0.4, z0 + 1.6, (n, 1))], axis=1)


def _as_lidar(xyz: np.ndarray, reflectance: float = 80.0) -> torch.Tensor:
    pts = torch.zeros(1, len(xyz), 6)
    pts[0, :, :3] = torch.from_numpy(xyz).float()
    pts[0, :, 3] = reflectance
    return pts


@pytest.mark.parametrize("slope", [0.0, 0.05])
def test_ground_only_lidar_has_no_structure_and_objects_do(slope: float) -> None:
    """A synthetic scene: the ring pattern of a 32-beam LiDAR on flat (and on 5 % sloped) ground gives zero density
    and reflectance everywhere, although its reflectance (lane paint) is high; cars near, far between two rings
    (no ground return around them) and at 45 m give high density on their cells and nothing elsewhere. Counting
    every point (the former reading) puts most of the weight on the ground near the ego."""
    cfg = ModelConfig.default(("lidar",))
    g = cfg.grid
    ground = _ring_scan(slope)
    maps = structure_maps(_as_lidar(ground, 200.0), None, g, 255.0)
    assert maps.shape == (1, 2, g.out_ny, g.out_nx)
    assert maps.abs().sum() == 0.0  # no structure, no reflectance: ground only
    cars = {(10.0, 3.0): 400, (32.0, -4.0): 40, (45.0, 8.0): 20}  # centre -> returns (fewer with range)
    faces = [_box_faces(cx, cy, n, z0=slope * cx) for (cx, cy), n in cars.items()]
    scene = np.concatenate([ground, *faces])
    density = structure_maps(_as_lidar(scene), None, g, 255.0)[0, 0]
    on_car = torch.zeros_like(density, dtype=torch.bool)
    for f in faces:
        rows = ((torch.from_numpy(f[:, 1]) - g.y_range[0]) // g.out_cell).long()
        cols = ((torch.from_numpy(f[:, 0]) - g.x_range[0]) // g.out_cell).long()
        on_car[rows, cols] = True
        assert density[rows, cols].max() >= {400: 0.99, 40: 0.5, 20: 0.4}[len(f)]
    assert (density[~on_car] == 0).all() and (density[on_car] > 0).all()
    # the former reading: every point counts, the ground dominates and sits near the ego
    every = structure_maps(_as_lidar(scene), None, g, 255.0, IntensitySpec(ground_clearance=0.0))[0, 0]
    xs = g.x_range[0] + (torch.arange(g.out_nx) + 0.5) * g.out_cell
    ys = g.y_range[0] + (torch.arange(g.out_ny) + 0.5) * g.out_cell
    near = (xs[None, :] ** 2 + ys[:, None] ** 2).sqrt() < 12.0
    assert (every > 0).sum() > 10 * on_car.sum()
    assert every[~on_car].sum() > 5 * every[on_car].sum()
    assert every[near & ~on_car].sum() > 0.3 * every.sum()


def test_non_ground_mask_clearance_and_grid() -> None:
    g = ModelConfig.default(("lidar",)).grid
    ground = _ring_scan()
    extra = np.array(
        [
            [20.0, 5.0, 0.15],  # a curb: ground
            [20.0, 5.5, 0.45],  # 0.45 m up: structure
            [20.0, 6.0, 2.0],  # a sign: structure
            [-5.0, 0.0, 1.0],  # behind the grid: never counted
            [20.0, 7.0, 5.0],  # above the grid's z range: never counted
        ]
    )
    pts = _as_lidar(np.concatenate([ground, extra]))
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    mask[0, -1] = True
    keep = non_ground_mask(pts, mask, g)
    assert not keep[0, : len(ground)].any()
    assert keep[0, len(ground) :].tolist() == [False, True, True, False, False]
    mask[0, len(ground) + 1] = False  # a padded point is never structure
    assert not non_ground_mask(pts, mask, g)[0, len(ground) + 1]
    assert non_ground_mask(pts, mask, g, clearance=0.1)[0, len(ground)]  # a lower clearance keeps the curb


def test_combine_intensity() -> None:
    maps = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(combine_intensity(maps, (0, 0, 1)), maps[:, 2:3])
    torch.testing.assert_close(combine_intensity(maps, (1, 1, 2)), (maps[:, 0:1] + maps[:, 1:2] + 2 * maps[:, 2:3]) / 4)
    with pytest.raises(DistillConfigError, match="mix"):
        combine_intensity(maps, (0, 0, 0))


def test_draw_intensity(tmp_path: Path) -> None:
    maps = np.random.default_rng(0).random((3, 8, 8)).astype(np.float16)
    out = draw_intensity(tmp_path / "d" / "i.png", maps, (0.0, 25.6, -12.8, 12.8), title="t")
    assert out.stat().st_size > 5000
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        draw_intensity(tmp_path / "x.png", maps[:2], (0.0, 1.0, 0.0, 1.0))
