"""Pillar encoders and the scatter helpers."""

from __future__ import annotations

import math

import pytest
import torch

from imkd_ros.model.bev_scatter import bev_cell_index, scatter_max, scatter_sum
from imkd_ros.model.config import GridConfig, ModelConfig
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.pillars import LidarPillarBEV, RadarPillarBEV

GRID = GridConfig(x_range=(0.0, 8.0), y_range=(-4.0, 4.0), z_range=(-2.0, 4.0), cell=1.0, stride=2)


def test_cell_index_and_dump():
    pts = torch.tensor([[[0.5, -3.5, 0.0], [7.9, 3.9, 0.0], [8.1, 0.0, 0.0], [1.0, 0.0, 5.0], [2.5, 0.5, 0.0]]])
    valid = torch.tensor([[True, True, True, True, False]])
    idx = bev_cell_index(pts, GRID, valid)
    assert idx.tolist() == [[0, 63, 64, 64, 64]]  # (row 0, col 0), (7, 7); out of x, out of z and masked -> dump
    vals = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]])
    s = scatter_sum(vals, idx, 64)
    m = scatter_max(vals, idx, 64)
    assert s.shape == (64, 1) and s[0, 0] == 1 and s[63, 0] == 2 and s.sum() == 3
    assert torch.equal(m, s)


def _radar_model() -> tuple[RadarPillarBEV, ModelConfig]:
    cfg = ModelConfig.tiny(("radar",))
    torch.manual_seed(0)
    return RadarPillarBEV(cfg).eval(), cfg


def test_radar_pillars_shapes_and_intensity_maps():
    model, cfg = _radar_model()
    g = cfg.grid  # 1.6 m cells, stride 2 -> 3.2 m head cells
    pts = torch.zeros(2, 4, 7)
    pts[0, 0] = torch.tensor([1.0, g.y_range[0] + 1.0, 0.5, 10.0, 1.0, 0.0, 0.1])  # head cell (0, 0)
    pts[0, 1] = torch.tensor([2.0, g.y_range[0] + 2.0, 0.5, 20.0, 0.0, 0.0, 0.0])  # head cell (0, 0), other pillar
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    out = model(pts, mask)
    assert out.bev.shape == (2, cfg.bev.channels, g.out_ny, g.out_nx)
    assert out.intensity.shape == (2, 2, g.out_ny, g.out_nx)
    dens = out.intensity[:, 0]
    assert dens[0, 0, 0].item() == pytest.approx(math.log1p(2) / cfg.radar.density_scale)
    assert out.intensity[0, 1, 0, 0].item() == pytest.approx(15.0 / cfg.radar.rcs_scale)
    assert dens[0].sum().item() == pytest.approx(dens[0, 0, 0].item())
    assert out.intensity[1].abs().sum() == 0  # no points in sample 1


def test_masked_and_padding_points_change_nothing_and_order_does_not_matter():
    model, cfg = _radar_model()
    gen = torch.Generator().manual_seed(1)
    n = 20
    pts = torch.rand(1, n, 7, generator=gen)
    pts[..., 0] *= 50.0
    pts[..., 1] = pts[..., 1] * 50.0 - 25.0
    ref = model(pts, None)
    padded = torch.cat([pts, 100.0 * torch.randn(1, 7, 7, generator=gen)], dim=1)
    mask = torch.cat([torch.ones(1, n, dtype=torch.bool), torch.zeros(1, 7, dtype=torch.bool)], dim=1)
    out = model(padded, mask)
    perm = torch.randperm(n, generator=gen)
    out2 = model(pts[:, perm], None)
    for o in (out, out2):
        assert torch.allclose(o.bev, ref.bev, atol=1e-5)
        assert torch.allclose(o.intensity, ref.intensity, atol=1e-6)


def test_lidar_pillars_use_reflectance_and_density():
    cfg = ModelConfig.tiny(("lidar",))
    model = LidarPillarBEV(cfg).eval()
    pts = torch.zeros(1, 3, 6)
    pts[0, :, 0] = 10.0
    pts[0, :, 3] = torch.tensor([255.0, 0.0, 51.0])
    out = model(pts)
    g = cfg.grid
    row, col = int((0.0 - g.y_range[0]) // g.out_cell), int(10.0 // g.out_cell)
    assert out.intensity[0, 1, row, col].item() == pytest.approx(102.0 / 255.0)
    assert out.intensity[0, 0, row, col].item() == pytest.approx(math.log1p(3) / cfg.lidar.density_scale)
    brighter = pts.clone()
    brighter[0, :, 3] = 255.0
    assert not torch.allclose(model(brighter).bev, out.bev)  # the features see the intensity


@pytest.mark.parametrize(
    "pts, mask, match",
    [
        (torch.zeros(1, 4, 6), None, r"radar points must be \(B, P, 7\)"),
        (torch.zeros(4, 7), None, "radar points"),
        (torch.zeros(1, 4, 7), torch.ones(1, 3, dtype=torch.bool), "radar mask"),
    ],
)
def test_bad_points_raise(pts, mask, match):
    model, _ = _radar_model()
    with pytest.raises(ModelInputError, match=match):
        model(pts, mask)


def test_pillar_rank_counts_within_each_cell() -> None:
    import torch

    from imkd_ros.model.pillars import pillar_rank

    index = torch.tensor([[3, 1, 3, 3, 7, 1], [13, 13, 10, 19, 19, 19]])  # flat: batch offsets, as bev_cell_index
    rank = pillar_rank(index)
    for b in range(2):
        for c in index[b].unique():
            got = sorted(rank[b][index[b] == c].tolist())
            assert got == list(range(len(got)))  # 0..n-1 within every cell of every batch row
    assert torch.equal(rank, pillar_rank(index))  # deterministic
    # independent of the batch: a row alone, or padded with points in the dump cell, ranks the same
    alone = pillar_rank(index[:1])
    padded = pillar_rank(torch.cat([index[:1], torch.full((1, 4), 99)], dim=1))
    assert torch.equal(alone[0], rank[0]) and torch.equal(padded[0, :6], rank[0])


def test_capped_pillars_equal_uncapped_when_the_cap_is_not_reached() -> None:
    """The LiDAR cap of points per pillar changes nothing when no pillar has more points than the cap, and with a
    cap of 1 still fills every occupied pillar."""
    import dataclasses

    import torch

    from imkd_ros.model import ModelConfig
    from imkd_ros.model.pillars import LidarPillarBEV

    torch.manual_seed(0)
    cfg = ModelConfig.tiny(("lidar",))
    pts = torch.rand(2, 300, 6) * torch.tensor([40.0, 40.0, 3.0, 255.0, 32.0, 0.4]) - torch.tensor(
        [0.0, 20.0, 0.0, 0.0, 0.0, 0.0]
    )
    mask = torch.ones(2, 300, dtype=torch.bool)
    mask[1, 250:] = False
    enc = {}
    for k in (0, 10_000, 1):
        c = dataclasses.replace(cfg, lidar=dataclasses.replace(cfg.lidar, max_points_per_pillar=k))
        torch.manual_seed(1)
        enc[k] = LidarPillarBEV(c).eval()
    with torch.no_grad():
        full, capped, one = (enc[k](pts, mask) for k in (0, 10_000, 1))
    torch.testing.assert_close(capped.bev, full.bev)
    torch.testing.assert_close(one.intensity, full.intensity)  # the maps count every point
    assert not torch.equal(one.bev, full.bev)
