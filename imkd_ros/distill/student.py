"""The student as the training loop sees it under distillation: student + training-only adapters -> losses.

:class:`DistilledStudent` is one ``nn.Module`` (so ``DistributedDataParallel`` can wrap it and sync the adapters'
gradients too) whose training forward returns :class:`KDTrainingLosses`: the student's detection losses plus the
weighted distillation losses against the batch's cached teacher targets. Only ``.student`` is shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from imkd_ros.core.types import Boxes
from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetsBatch
from imkd_ros.distill.config import DistillConfig
from imkd_ros.distill.losses import DistillLosses, distill_losses
from imkd_ros.model.decode import Detections
from imkd_ros.model.inputs import StudentInputs
from imkd_ros.model.losses import DetectionLosses
from imkd_ros.model.student import Student
from imkd_ros.model.targets import HeadTargets

__all__ = ["KDTrainingLosses", "DistilledStudent"]


@dataclass(frozen=True)
class KDTrainingLosses:
    """``total = detection.total + distill.total``."""

    detection: DetectionLosses
    distill: DistillLosses
    total: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Detection parts, ``det_total``, the ``kd_*`` parts and ``total`` (for logging)."""
        out = {k: v for k, v in self.detection.as_dict().items() if k != "total"}
        out["det_total"] = self.detection.total
        out.update(self.distill.as_dict())
        out["total"] = self.total
        return out


class DistilledStudent(nn.Module):
    """A :class:`Student` and its :class:`DistillHeads` trained together.

    Args:
        student: the network that is shipped.
        heads: the adapters of ``config``'s stages.
        config: stages and weights.
    """

    def __init__(self, student: Student, heads: DistillHeads, config: DistillConfig) -> None:
        super().__init__()
        self.student = student
        self.heads = heads
        self.config = config

    def forward(
        self,
        x: StudentInputs,
        gt: Sequence[Boxes] | HeadTargets | None = None,
        lidar: torch.Tensor | None = None,
        lidar_mask: torch.Tensor | None = None,
        targets: TargetsBatch | None = None,
    ) -> KDTrainingLosses | list[Detections]:
        """Training mode: :class:`KDTrainingLosses` (``gt`` and ``targets`` required). Eval mode: the student's
        detections."""
        if not self.training:
            return self.student(x)
        if gt is None or targets is None:
            raise ValueError("DistilledStudent in training mode needs gt and the batch's teacher targets")
        out = self.student.features(x)
        det = self.student.loss(out, gt, lidar, lidar_mask)
        kd = distill_losses(out, targets, self.heads, self.config, self.student.config)
        return KDTrainingLosses(det, kd, det.total + kd.total)
