"""Head outputs -> boxes: top-K peaks after 3x3 max-pool NMS, box regression, score threshold, class-wise circle
NMS, at most ``max_detections`` per sample.

Box format (ego frame): centre (x, y, z) m, size (w, l, h) m, yaw rad about +z, velocity (vx, vy) m/s, label
indexing :data:`imkd_ros.core.classes.CLASSES`, score in (0, 1). The score threshold is applied before circle NMS: a
box below the threshold can only suppress lower-scored boxes, which the threshold drops anyway, so the result is
the same as thresholding after NMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.head import HeadOutput

__all__ = ["Detections", "decode", "circle_nms", "detections_to_boxes", "max_3x3"]


@dataclass(frozen=True)
class Detections:
    """Decoded boxes of one sample (tensors on the model's device; ``.cpu().numpy()`` converts).

    Attributes:
        center: ``(N, 3)`` m. size: ``(N, 3)`` w, l, h in m. yaw: ``(N,)`` rad. velocity: ``(N, 2)`` m/s.
        label: ``(N,)`` int64 index into :data:`imkd_ros.core.classes.CLASSES`. score: ``(N,)`` in (0, 1),
        sorted descending.
    """

    center: torch.Tensor
    size: torch.Tensor
    yaw: torch.Tensor
    velocity: torch.Tensor
    label: torch.Tensor
    score: torch.Tensor

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def to_boxes(self) -> Boxes:
        """As :class:`~imkd_ros.core.types.Boxes` in the ``"ego"`` frame (float64 numpy)."""
        return detections_to_boxes(self)


def detections_to_boxes(det: Detections) -> Boxes:
    """One sample's :class:`Detections` -> :class:`~imkd_ros.core.types.Boxes` (frame ``"ego"``)."""

    def a(t: torch.Tensor):
        return t.detach().cpu().double().numpy()

    return Boxes(
        a(det.center), a(det.size), a(det.yaw), a(det.velocity), det.label.detach().cpu().numpy(), a(det.score), "ego"
    )


def circle_nms(centers: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Greedy class-wise circle NMS on the ground plane.

    Args:
        centers: ``(N, 2)`` x, y (m).
        scores: ``(N,)``.
        labels: ``(N,)`` int64 class ids (any numbering; only equality matters).
        radius: ``(N,)`` suppression radius (m) of each box's class; a box suppresses lower-scored boxes of its
            class whose centre is within its radius (inclusive); radius 0 suppresses nothing.

    Returns:
        ``(N_keep,)`` int64 indices of the kept boxes, by descending score.
    """
    order = torch.argsort(scores, descending=True)
    if order.numel() == 0:
        return order
    c = centers[order].detach().double().cpu().numpy()
    lab = labels[order].detach().cpu().numpy()
    rad = radius[order].detach().double().cpu().numpy()
    dx, dy = c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1]
    dist = np.sqrt(dx * dx + dy * dy)  # = sqrt(sum of squares over x, y), without numpy's slow reduce over 2
    suppress = (dist <= rad[:, None]) & (lab[:, None] == lab[None, :]) & (rad[:, None] > 0)
    suppress = np.triu(suppress, 1)  # only lower-scored boxes
    alive = np.ones(len(c), dtype=bool)
    for i in np.flatnonzero(suppress.any(axis=1)):  # greedy, in score order; a box with no neighbour changes nothing
        if alive[i]:
            alive &= ~suppress[i]
    keep = torch.from_numpy(np.flatnonzero(alive)).to(order.device)
    return order[keep]


def max_3x3(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 3, stride=1, padding=1)`` of ``(B, K, h, w)`` as two separable 1-D maxima (the same values:
    a maximum is exact; on one CPU thread 0.04 ms instead of 0.86 ms for 10 x 64 x 64)."""
    p = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def decode(head: HeadOutput, config: ModelConfig) -> list[Detections]:
    """Decode a batch of head outputs.

    Args:
        head: heatmap ``(B, K, h, w)`` logits and regression ``(B, 10, h, w)``.
        config: grid, classes and :class:`~imkd_ros.model.config.DecodeConfig`.

    Returns:
        one :class:`Detections` per sample.
    """
    g, dc = config.grid, config.decode
    heat = torch.sigmoid(head.heatmap.detach())
    b, k, h, w = heat.shape
    peaks = heat * (max_3x3(heat) == heat).float()
    top = min(dc.top_k, k * h * w)
    scores, flat = torch.topk(peaks.reshape(b, -1), top, dim=1)  # (B, top)
    cls = torch.div(flat, h * w, rounding_mode="floor")
    cell = flat - cls * (h * w)
    row = torch.div(cell, w, rounding_mode="floor")
    col = cell - row * w
    reg = head.regression.detach().reshape(b, head.regression.shape[1], -1)
    r = reg.gather(2, cell.unsqueeze(1).expand(-1, reg.shape[1], -1)).transpose(1, 2)  # (B, top, 10)
    x = (col.float() + r[..., 0]) * g.out_cell + g.x_range[0]
    y = (row.float() + r[..., 1]) * g.out_cell + g.y_range[0]
    center = torch.stack([x, y, r[..., 2]], dim=-1)
    size = torch.exp(r[..., 3:6].clamp(max=6.0))
    yaw = torch.atan2(r[..., 6], r[..., 7])
    vel = r[..., 8:10]
    to_global = torch.tensor([CLASSES.index(c) for c in config.classes], device=heat.device)
    radius_of_class = torch.tensor(config.class_nms_distance, device=heat.device)
    out = []
    for s in range(b):
        keep = torch.nonzero(scores[s] >= dc.score_threshold).squeeze(1)
        cs = cls[s, keep]
        kept = circle_nms(center[s, keep, :2], scores[s, keep], cs, radius_of_class[cs])[: dc.max_detections]
        keep = keep[kept]
        out.append(
            Detections(
                center[s, keep], size[s, keep], yaw[s, keep], vel[s, keep], to_global[cls[s, keep]], scores[s, keep]
            )
        )
    return out
