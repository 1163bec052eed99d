"""Detection losses: CenterNet focal loss on heatmaps, L1 on regression at object centres, depth cross-entropy.

All losses are scalars normalised per object (heatmap: per positive cell; regression: per object, velocity per
object with a known velocity; depth: per feature cell with a LiDAR return). With no objects (or no LiDAR return)
the corresponding loss is exactly 0, not NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch.nn import functional as F

from imkd_ros.model.config import HeadConfig
from imkd_ros.model.head import REGRESSION_GROUPS, HeadOutput
from imkd_ros.model.targets import HeadTargets

__all__ = ["DetectionLosses", "focal_loss", "regression_l1", "depth_loss", "detection_losses"]


@dataclass(frozen=True)
class DetectionLosses:
    """Named scalar losses; ``total`` is what the optimiser minimises:
    ``heatmap_weight * heatmap + regression_weight * (offset + height + size + rotation + velocity)
    + depth_weight * depth``. The parts are unweighted (code weights applied inside the regression groups)."""

    heatmap: torch.Tensor
    offset: torch.Tensor
    height: torch.Tensor
    size: torch.Tensor
    rotation: torch.Tensor
    velocity: torch.Tensor
    depth: torch.Tensor
    total: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{name: scalar tensor}`` in field order (for logging)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss (alpha 2, beta 4).

    Args:
        logits: ``(B, K, h, w)`` heatmap logits.
        target: ``(B, K, h, w)`` gaussian heatmap, 1 at object centres.

    Returns:
        scalar: ``-sum(pos: (1-p)^2 log p + neg: (1-t)^4 p^2 log(1-p)) / max(#pos, 1)``.
    """
    p = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    pos = target.eq(1).float()
    neg = 1.0 - pos
    pos_loss = ((1 - p) ** 2 * log_p * pos).sum()
    neg_loss = ((1 - target) ** 4 * p**2 * log_not_p * neg).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def regression_l1(
    regression: torch.Tensor, targets: HeadTargets, code_weights: tuple[float, ...]
) -> dict[str, torch.Tensor]:
    """Weighted L1 at the object cells, per regression group.

    Args:
        regression: ``(B, 10, h, w)`` head regression.
        targets: gives ``index (B, M)``, ``regression (B, M, 10)`` and the masks.
        code_weights: 10 per-channel weights.

    Returns:
        ``{group: scalar}`` for the groups of :data:`imkd_ros.model.head.REGRESSION_GROUPS`: the sum over the
        group's channels of ``code_weight * sum_objects |pred - target| / max(#objects, 1)``.
    """
    b, r = regression.shape[:2]
    idx = targets.index.unsqueeze(1).expand(b, r, -1)  # (B, 10, M)
    pred = regression.reshape(b, r, -1).gather(2, idx).transpose(1, 2)  # (B, M, 10)
    err = (pred - targets.regression).abs() * pred.new_tensor(code_weights)
    out = {}
    for name, sl in REGRESSION_GROUPS.items():
        m = targets.mask
        if name == "velocity":
            m = targets.velocity_mask
        elif name == "rotation" and targets.rotation_mask is not None:
            m = targets.rotation_mask
        m = m.float()
        out[name] = (err[..., sl].sum(-1) * m).sum() / m.sum().clamp(min=1.0)
    return out


def depth_loss(depth_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over depth bins on cells with a LiDAR return (``target >= 0``), mean over those cells.

    Args:
        depth_logits: ``(B, D, fH, fW)``, or ``(B, N, D, fH, fW)`` for N cameras.
        target: ``(B, fH, fW)`` (``(B, N, fH, fW)``) int64 bin index, -1 for no return.
    """
    depth_logits = depth_logits.reshape(-1, *depth_logits.shape[-3:])
    target = target.reshape(-1, *target.shape[-2:])
    valid = target >= 0
    ce = F.cross_entropy(depth_logits, target.clamp(min=0), reduction="none")
    return (ce * valid.float()).sum() / valid.sum().clamp(min=1).float()


def detection_losses(
    head: HeadOutput,
    targets: HeadTargets,
    config: HeadConfig,
    depth_logits: torch.Tensor | None = None,
    depth_target: torch.Tensor | None = None,
) -> DetectionLosses:
    """All losses of one forward pass; depth is 0 unless both ``depth_logits`` and ``depth_target`` are given."""
    hm = focal_loss(head.heatmap, targets.heatmap)
    reg = regression_l1(head.regression, targets, config.code_weights)
    if depth_logits is not None and depth_target is not None:
        dep = depth_loss(depth_logits, depth_target)
    else:
        dep = hm.new_zeros(())
    total = config.heatmap_weight * hm + config.regression_weight * sum(reg.values()) + config.depth_weight * dep
    return DetectionLosses(hm, reg["offset"], reg["height"], reg["size"], reg["rotation"], reg["velocity"], dep, total)
