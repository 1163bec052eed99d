"""Points -> BEV grid cells, and summing / max-pooling per-point values into BEV maps, without Python loops.

Every point of a batch gets one flat index ``b * NY * NX + iy * NX + ix`` into the batch's stacked grid; points
that are masked out or fall outside the grid (x, y or z range) get the extra "dump" index ``B * NY * NX``, whose
row is dropped after the scatter. Shapes stay static (no boolean indexing), so the ops trace and export to ONNX
(``ScatterElements`` with add / max reduction).
"""

from __future__ import annotations

import torch

from imkd_ros.model.config import GridConfig

__all__ = ["bev_cell_index", "scatter_sum", "scatter_max", "to_bev_image"]


def bev_cell_index(points: torch.Tensor, grid: GridConfig, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Flat BEV cell index of each point.

    Args:
        points: ``(B, P, 3+)`` ego-frame x, y, z (m) in the first three columns.
        grid: the grid; cells of size ``grid.cell``.
        valid: optional ``(B, P)`` bool; False points go to the dump index.

    Returns:
        ``(B, P)`` int64 in ``[0, B * NY * NX]``; ``B * NY * NX`` marks dropped points.
    """
    b = points.shape[0]
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    ix = torch.floor((x - grid.x_range[0]) / grid.cell).long()
    iy = torch.floor((y - grid.y_range[0]) / grid.cell).long()
    inside = (ix >= 0) & (ix < grid.nx) & (iy >= 0) & (iy < grid.ny) & (z >= grid.z_range[0]) & (z < grid.z_range[1])
    if valid is not None:
        inside = inside & valid
    cells = grid.ny * grid.nx
    batch = torch.arange(b, device=points.device).view(b, 1) * cells
    flat = batch + iy.clamp(0, grid.ny - 1) * grid.nx + ix.clamp(0, grid.nx - 1)
    return torch.where(inside, flat, torch.full_like(flat, b * cells))


def scatter_sum(values: torch.Tensor, index: torch.Tensor, num_cells: int) -> torch.Tensor:
    """Sum ``values`` ``(B, P, C)`` into ``(B * num_cells, C)`` rows by ``index`` ``(B, P)`` (dump row dropped)."""
    b, _, c = values.shape
    if values.dtype in (torch.bfloat16, torch.float16):  # mixed-precision training: sums accumulate in float32
        values = values.float()
    flat_values = values.reshape(-1, c)
    flat_index = index.reshape(-1, 1).expand(-1, c)
    out = values.new_zeros(b * num_cells + 1, c).scatter_add_(0, flat_index, flat_values)
    return out[: b * num_cells]


def scatter_max(values: torch.Tensor, index: torch.Tensor, num_cells: int) -> torch.Tensor:
    """Max of ``values`` ``(B, P, C)`` per cell into ``(B * num_cells, C)``, empty cells 0.

    The buffer starts at 0 and includes itself in the max, so this is the true max only for non-negative values
    (e.g. after ReLU); that is how the pillar encoders use it.
    """
    b, _, c = values.shape
    flat_values = values.reshape(-1, c)
    flat_index = index.reshape(-1, 1).expand(-1, c)
    out = values.new_zeros(b * num_cells + 1, c).scatter_reduce_(0, flat_index, flat_values, "amax", include_self=True)
    return out[: b * num_cells]


def to_bev_image(rows: torch.Tensor, batch: int, grid: GridConfig) -> torch.Tensor:
    """``(B * NY * NX, C)`` rows -> ``(B, C, NY, NX)`` BEV map."""
    c = rows.shape[-1]
    return rows.view(batch, grid.ny, grid.nx, c).permute(0, 3, 1, 2).contiguous()
