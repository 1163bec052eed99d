"""Pillar encoders (PointPillars style, vectorised) for radar (student) and LiDAR (teacher).

Per point (ego frame), the MLP input is: position normalised to the grid (3), the sensor's extra columns scaled
(radar: RCS, vx_comp, vy_comp, time lag; LiDAR: reflectance intensity, time lag), offset to the pillar centre (2,
in cells), offset to the mean of the pillar's points (3, in cells) and the pillar's point density
``log1p(count) / density_scale`` (1). A per-point ``Linear-LayerNorm-ReLU`` x2 MLP (LayerNorm, not BatchNorm, so
zero-padded points do not bias statistics) is max-pooled per pillar into a ``(B, C, NY, NX)`` map at
``grid.cell``, which a stride-``grid.stride`` 3x3 conv takes to the head grid.

With ``max_points_per_pillar`` K > 0 (the LiDAR teacher: 10 accumulated sweeps put ~185k points in the grid, p90
130 per pillar, and the per-point MLP was the whole cost of a training step) only K points per pillar go through
the MLP, chosen by a fixed pseudo-random rank (deterministic for a given input), as PointPillars caps points per
pillar. The density/intensity statistics and the per-point pillar means still count every point.

Each encoder also returns its *intensity maps* on the head grid, ``(B, 2, out_ny, out_nx)``: channel 0 the
point density ``log1p(count) / density_scale``, channel 1 the mean intensity of the points (radar: RCS /
``rcs_scale``; LiDAR: reflectance / ``max_intensity``), 0 in empty cells. The fuser and the distillation losses use
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from imkd_ros.model.bev_scatter import bev_cell_index, scatter_max, scatter_sum, to_bev_image
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.layers import ConvBNReLU

__all__ = ["PillarBEV", "PillarBEVOutput", "RadarPillarBEV", "LidarPillarBEV", "pillar_rank"]


@dataclass(frozen=True)
class PillarBEVOutput:
    """Attributes:
    bev: ``(B, C, out_ny, out_nx)`` pillar BEV on the head grid.
    intensity: ``(B, 2, out_ny, out_nx)`` density and mean-intensity maps (see the module docstring).
    """

    bev: torch.Tensor
    intensity: torch.Tensor


class PillarBEV(nn.Module):
    """Points ``(B, P, F)`` + mask ``(B, P)`` -> :class:`PillarBEVOutput`.

    Args:
        config: the model config: its BEV grid (``config.grid``) and channels on the head grid
            (``config.bev.channels``).
        name: sensor name for error messages.
        num_columns: F, columns of the point tensor (x, y, z first).
        extra: the columns fed to the MLP besides the position, each with its divisor, in order; the first is the
            intensity, averaged per cell into the intensity map.
        density_scale: divisor of ``log1p(count)``.
        point_channels: MLP width (channels of the pillar map).
        max_points_per_pillar: points per pillar fed to the MLP (0: all).
    """

    def __init__(
        self,
        config: ModelConfig,
        name: str,
        num_columns: int,
        extra: dict[int, float],
        density_scale: float,
        point_channels: int,
        max_points_per_pillar: int = 0,
    ) -> None:
        super().__init__()
        grid = config.grid
        self.max_points_per_pillar = int(max_points_per_pillar)
        self.grid = grid
        self.num_columns = num_columns
        self.extra_columns = tuple(extra)
        self.register_buffer("extra_scales", torch.tensor(tuple(extra.values()), dtype=torch.float32), persistent=False)
        self.intensity_column, self.intensity_scale = next(iter(extra.items()))
        self.density_scale = density_scale
        self.name = name
        c_in = 3 + len(self.extra_columns) + 2 + 3 + 1
        c = point_channels
        self.mlp = nn.Sequential(
            nn.Linear(c_in, c), nn.LayerNorm(c), nn.ReLU(inplace=True), nn.Linear(c, c), nn.LayerNorm(c), nn.ReLU()
        )
        self.entry = ConvBNReLU(c, config.bev.channels, 3, grid.stride)

    def forward(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> PillarBEVOutput:
        """Args:
        points: ``(B, P, F)`` ego-frame points, zero-padded.
        mask: ``(B, P)`` bool, True for real points (None: all real).
        """
        if points.dim() != 3 or points.shape[-1] != self.num_columns:
            raise ModelInputError(f"{self.name} points must be (B, P, {self.num_columns}), got {tuple(points.shape)}")
        if mask is not None and mask.shape != points.shape[:2]:
            raise ModelInputError(f"{self.name} mask must be {tuple(points.shape[:2])}, got {tuple(mask.shape)}")
        g = self.grid
        b, p, _ = points.shape
        cells = g.ny * g.nx
        points = points.float()
        index = bev_cell_index(points, g, mask)  # (B, P)
        valid = (index < b * cells).unsqueeze(-1).float()  # (B, P, 1)
        xyz = points[..., :3]
        intensity = points[..., self.intensity_column : self.intensity_column + 1] / self.intensity_scale
        sums = scatter_sum(torch.cat([xyz, intensity, torch.ones_like(intensity)], dim=-1) * valid, index, cells)
        sums_dump = torch.cat([sums, sums.new_zeros(1, sums.shape[1])], dim=0)
        per_point = sums_dump.index_select(0, index.reshape(-1)).view(b, p, -1)  # (B, P, 5)
        count = per_point[..., 4:5].clamp(min=1.0)
        mean_xyz = per_point[..., :3] / count
        lo = xyz.new_tensor([g.x_range[0], g.y_range[0], g.z_range[0]])
        span = xyz.new_tensor([g.x_range[1] - g.x_range[0], g.y_range[1] - g.y_range[0], g.z_range[1] - g.z_range[0]])
        centre_xy = (torch.floor((xyz[..., :2] - lo[:2]) / g.cell) + 0.5) * g.cell + lo[:2]
        extra = points[..., list(self.extra_columns)] / self.extra_scales
        feats = torch.cat(
            [
                (xyz - lo) / span,
                extra,
                (xyz[..., :2] - centre_xy) / g.cell,
                (xyz - mean_xyz) / g.cell,
                torch.log1p(count) / self.density_scale,
            ],
            dim=-1,
        )
        if self.max_points_per_pillar > 0:
            keep = (index < b * cells) & (pillar_rank(index) < self.max_points_per_pillar)  # (B, P)
            sel = keep.reshape(-1).nonzero().squeeze(1)
            h = self.mlp(feats.reshape(-1, feats.shape[-1]).index_select(0, sel))  # (N, C)
            rows = scatter_max(h.unsqueeze(0), index.reshape(1, -1).index_select(1, sel), b * cells)
        else:
            rows = scatter_max(self.mlp(feats) * valid, index, cells)
        pillars = to_bev_image(rows, b, g)  # (B, C, NY, NX)
        stats = to_bev_image(sums[:, 3:5], b, g)  # (B, 2, NY, NX): intensity sum, count
        s = g.stride
        stats = F.avg_pool2d(stats, s) * (s * s) if s > 1 else stats
        n = stats[:, 1:2]
        maps = torch.cat([torch.log1p(n) / self.density_scale, stats[:, 0:1] / n.clamp(min=1.0)], dim=1)
        return PillarBEVOutput(self.entry(pillars), maps)


def pillar_rank(index: torch.Tensor) -> torch.Tensor:
    """Rank ``(B, P)`` int64 of each point among the points of its cell (``index`` ``(B, P)`` flat cell indices),
    in a fixed pseudo-random order: a multiplicative hash of the point's position in its own frame. Deterministic,
    unbiased with respect to the point order (sweeps come newest first), and independent of the batch (padding,
    other frames): a frame gives the same ranks alone or batched."""
    b, p = index.shape
    j = torch.arange(p, device=index.device, dtype=torch.int64)
    jitter = (j * 2654435761) % (1 << 32)  # Knuth's multiplicative hash: a permutation of 0..2^32-1
    key = (index * (1 << 32) + jitter.view(1, p)).reshape(-1)
    order = key.argsort()
    cell = index.reshape(-1)[order]
    pos = torch.arange(cell.numel(), device=index.device)
    first = torch.ones_like(cell, dtype=torch.bool)
    first[1:] = cell[1:] != cell[:-1]
    start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - start
    return rank.view(b, p)


class RadarPillarBEV(PillarBEV):
    """Radar pillars: points ``(B, N, 7)`` with columns :data:`imkd_ros.core.types.RADAR_FEATURES`
    (x y z rcs vx_comp vy_comp time_lag); intensity = RCS."""

    def __init__(self, config: ModelConfig) -> None:
        r = config.radar
        extra = {3: r.rcs_scale, 4: r.velocity_scale, 5: r.velocity_scale, 6: r.time_scale}
        super().__init__(config, "radar", 7, extra, r.density_scale, r.point_channels)


class LidarPillarBEV(PillarBEV):
    """LiDAR pillars: points ``(B, M, 6)`` with columns :data:`imkd_ros.core.types.LIDAR_FEATURES`
    (x y z intensity ring time_lag; the ring index is not used); intensity = reflectance."""

    def __init__(self, config: ModelConfig) -> None:
        li = config.lidar
        extra = {3: li.max_intensity, 5: li.time_scale}
        super().__init__(config, "lidar", 6, extra, li.density_scale, li.point_channels, li.max_points_per_pillar)
