"""Intensity maps: the documented normalisation, zero where the LiDAR sees nothing, the mix, the debug PNG."""

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
    teacher_intensity,
)
from imkd_ros.model import Teacher
from imkd_ros.train import model_config_for


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
    assert IntensitySpec.from_dict(IntensitySpec().to_dict()) == IntensitySpec()


def test_teacher_intensity_is_zero_without_lidar_and_in_range() -> None:
    torch.manual_seed(0)
    cfg = model_config_for("lidar", "tiny")
    teacher = Teacher(config=cfg).eval()
    pts = torch.zeros(1, 50, 6)
    pts[0, :, 0] = torch.linspace(5, 10, 50)  # a 5 m line of points ahead, on the centre row
    pts[0, :, 3] = 200.0
    with torch.no_grad():
        maps = teacher_intensity(teacher.features(pts), cfg)
    assert maps.min() >= 0 and maps.max() <= 1
    occupied = maps[0, 0] > 0
    assert 1 <= occupied.sum() <= 4
    assert (maps[0, 1][~occupied] == 0).all() and maps[0, 1][occupied].min() == pytest.approx(200 / 255, rel=1e-5)


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
