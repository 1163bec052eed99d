"""CenterPoint head targets from ground-truth boxes.

For each box of a detected class whose centre falls on the head grid: a gaussian of radius
``max(min_radius, int(gaussian_radius((l, w) in cells, min_overlap)))`` is drawn (element-wise max) on its class
heatmap at the centre cell, and the regression target at that cell is: offset of the centre inside the cell
(2, cells), z (1, m), log(w, l, h) (3), sin yaw, cos yaw (2), velocity vx, vy (2, m/s; masked where NaN).
The first ``max_objects`` such boxes of a sample are kept (in the given order).

Targets are built with numpy on the CPU, one loop over the boxes of a sample (tens), never over points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.head import REGRESSION_CHANNELS

__all__ = ["HeadTargets", "gaussian_radius", "draw_gaussian", "build_targets", "as_targets"]


@dataclass(frozen=True)
class HeadTargets:
    """Attributes:
    heatmap: ``(B, K, h, w)`` float32, gaussian peaks of value 1 at object centre cells.
    regression: ``(B, M, 10)`` float32 regression targets (0 where unused or velocity unknown).
    index: ``(B, M)`` int64 flat cell index ``row * w + col`` of each target.
    mask: ``(B, M)`` bool, True for real objects.
    velocity_mask: ``(B, M)`` bool, True where the velocity is known.
    rotation_mask: ``(B, M)`` bool, True where the yaw is known (a box whose yaw is NaN: its sin/cos targets are 0
        and unweighted); None: wherever ``mask``.
    """

    heatmap: torch.Tensor
    regression: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor
    velocity_mask: torch.Tensor
    rotation_mask: torch.Tensor | None = None

    @property
    def num_objects(self) -> torch.Tensor:
        """``(B,)`` int64 objects per sample."""
        return self.mask.sum(dim=1)


def gaussian_radius(size: tuple[float, float], min_overlap: float) -> float:
    """CenterNet / CenterPoint radius (cells) for a box of ``size = (length, width)`` in cells: the largest centre
    shift keeping IoU >= ``min_overlap`` in the three corner cases."""
    height, width = size
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, col: int, row: int, radius: int) -> None:
    """Draw (element-wise max, in place) a gaussian of ``radius`` cells (sigma = (2r+1)/6) centred on
    ``heatmap[row, col]`` of a ``(h, w)`` map; the centre gets exactly 1."""
    d = 2 * radius + 1
    sigma = d / 6.0
    ys, xs = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    h, w = heatmap.shape
    left, right = min(col, radius), min(w - col, radius + 1)
    top, bottom = min(row, radius), min(h - row, radius + 1)
    region = heatmap[row - top : row + bottom, col - left : col + right]
    patch = g[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(region, patch, out=region)


def build_targets(gt: Sequence[Boxes], config: ModelConfig, device: torch.device | str | None = None) -> HeadTargets:
    """Head targets of a batch.

    Args:
        gt: one :class:`~imkd_ros.core.types.Boxes` per sample, ego frame, labels indexing
            :data:`imkd_ros.core.classes.CLASSES`; boxes of classes outside ``config.classes`` are ignored.
        config: gives the grid, classes and target settings.
        device: where the tensors go.

    Returns:
        :class:`HeadTargets` with ``M = config.head.max_objects``.
    """
    g, hc = config.grid, config.head
    b, k, h, w, m = len(gt), config.num_classes, g.out_ny, g.out_nx, hc.max_objects
    class_of_label = np.full(len(CLASSES), -1, dtype=np.int64)
    for i, name in enumerate(config.classes):
        class_of_label[CLASSES.index(name)] = i
    heat = np.zeros((b, k, h, w), np.float32)
    reg = np.zeros((b, m, REGRESSION_CHANNELS), np.float32)
    index = np.zeros((b, m), np.int64)
    mask = np.zeros((b, m), bool)
    vmask = np.zeros((b, m), bool)
    rmask = np.zeros((b, m), bool)
    cell = g.out_cell
    for s, boxes in enumerate(gt):
        if not isinstance(boxes, Boxes):
            raise ModelInputError(f"gt[{s}] must be imkd_ros.core.types.Boxes, got {type(boxes).__name__}")
        if boxes.frame != "ego":
            raise ModelInputError(f"gt[{s}] must be in the 'ego' frame, got {boxes.frame!r}")
        if len(boxes) and not np.all(boxes.size > 0):
            raise ModelInputError(
                f"gt[{s}] has a box with a non-positive size: {boxes.size[~np.all(boxes.size > 0, 1)][0]}"
            )
        n = 0
        for j in range(len(boxes)):
            cls = class_of_label[boxes.label[j]]
            if cls < 0 or n >= m:
                continue
            fx = (boxes.center[j, 0] - g.x_range[0]) / cell
            fy = (boxes.center[j, 1] - g.y_range[0]) / cell
            col, row = math.floor(fx), math.floor(fy)
            if not (0 <= col < w and 0 <= row < h):
                continue
            bw, bl, bh = boxes.size[j]
            radius = max(hc.min_radius, int(gaussian_radius((bl / cell, bw / cell), hc.min_overlap)))
            draw_gaussian(heat[s, cls], col, row, radius)
            vel = boxes.velocity[j]
            known = bool(np.all(np.isfinite(vel)))
            yaw = boxes.yaw[j]
            yaw_known = bool(np.isfinite(yaw))
            reg[s, n] = (
                fx - col,
                fy - row,
                boxes.center[j, 2],
                math.log(bw),
                math.log(bl),
                math.log(bh),
                math.sin(yaw) if yaw_known else 0.0,
                math.cos(yaw) if yaw_known else 0.0,
                vel[0] if known else 0.0,
                vel[1] if known else 0.0,
            )
            index[s, n] = row * w + col
            mask[s, n] = True
            vmask[s, n] = known
            rmask[s, n] = yaw_known
            n += 1

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device)

    return HeadTargets(t(heat), t(reg), t(index), t(mask), t(vmask), t(rmask))


def as_targets(gt: Sequence[Boxes] | HeadTargets, config: ModelConfig, batch: int, device: torch.device) -> HeadTargets:
    """``gt`` as :class:`HeadTargets` (built by :func:`build_targets` from boxes, or passed through), checked to
    hold ``batch`` samples."""
    targets = gt if isinstance(gt, HeadTargets) else build_targets(gt, config, device)
    if targets.heatmap.shape[0] != batch:
        raise ModelInputError(f"gt has {targets.heatmap.shape[0]} samples for a batch of {batch}")
    return targets
