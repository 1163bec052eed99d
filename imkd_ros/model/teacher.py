"""The LiDAR teacher: pillars (positions, reflectance intensity, point density) -> BEV network -> the same head.

``Teacher(lidar_bev, bev_backbone, head, config)`` builds a part left None. Input: one
:class:`~imkd_ros.model.inputs.TeacherInputs`, ``lidar`` ``(B, M, 6)``
ego-frame points, columns :data:`imkd_ros.core.types.LIDAR_FEATURES`, zero-padded, with ``lidar_mask`` ``(B, M)``.
``forward`` returns losses in training mode (``gt`` required) and decoded :class:`~imkd_ros.model.decode.Detections`
in eval mode; :meth:`Teacher.features` returns the BEV maps for distillation (:class:`TeacherOutput`), on the same
head grid and with the same channels as the student's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from imkd_ros.core.types import Boxes
from imkd_ros.model.bev_detector import BEVDetector
from imkd_ros.model.checks import check_shape, require
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.decode import Detections, decode
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.inputs import TeacherInputs
from imkd_ros.model.losses import DetectionLosses, detection_losses
from imkd_ros.model.pillars import LidarPillarBEV
from imkd_ros.model.precision import full_precision
from imkd_ros.model.targets import HeadTargets, as_targets

__all__ = ["Teacher", "TeacherOutput"]


@dataclass(frozen=True)
class TeacherOutput:
    """Attributes (head grid ``(h, w)``, ``C = config.bev.channels``):
    lidar_bev: ``(B, C, h, w)`` LiDAR pillar BEV (after its entry conv).
    lidar_intensity: ``(B, 2, h, w)`` LiDAR point density ``log1p(count) / density_scale`` and mean reflectance
        ``/ max_intensity`` per cell.
    bev: ``(B, C, h, w)`` BEV network output.
    head: heatmap logits ``(B, K, h, w)`` and regression ``(B, 10, h, w)``.
    """

    lidar_bev: torch.Tensor
    lidar_intensity: torch.Tensor
    bev: torch.Tensor
    head: HeadOutput

    @property
    def heatmap_logits(self) -> torch.Tensor:
        """``(B, K, h, w)``."""
        return self.head.heatmap


class Teacher(BEVDetector):
    """LiDAR teacher. Args as :class:`~imkd_ros.model.student.Student`; ``config.modalities`` must be
    ``("lidar",)`` (default: ``ModelConfig.default(("lidar",))``)."""

    def __init__(
        self,
        lidar_bev: nn.Module | None = None,
        bev_backbone: nn.Module | None = None,
        head: nn.Module | None = None,
        config: ModelConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(config, teacher=True)
        self.lidar_bev = lidar_bev or LidarPillarBEV(self.config)
        self.add_bev_and_head(bev_backbone, head, device)

    def features(self, x: TeacherInputs) -> TeacherOutput:
        """Network outputs for ``x.lidar`` ``(B, M, 6)`` and ``x.lidar_mask`` ``(B, M)``."""
        lidar, lidar_mask = require(x.lidar, "lidar", "the teacher's input"), x.lidar_mask
        check_shape(lidar, "lidar", (None, None, 6))
        if lidar_mask is not None:
            check_shape(lidar_mask, "lidar_mask", tuple(lidar.shape[:2]))
        pil = self.lidar_bev(lidar, lidar_mask)
        bev = self.bev_backbone(pil.bev)
        return TeacherOutput(pil.bev, pil.intensity, bev, self.head(bev))

    @full_precision
    def loss(self, output: TeacherOutput, gt: Sequence[Boxes] | HeadTargets) -> DetectionLosses:
        """Detection losses (depth 0) of ``output`` against ``gt``."""
        b = output.bev.shape[0]
        targets = as_targets(gt, self.config, b, output.bev.device)
        return detection_losses(output.head, targets, self.config.head)

    def forward(
        self, x: TeacherInputs, gt: Sequence[Boxes] | HeadTargets | None = None
    ) -> DetectionLosses | list[Detections]:
        """Training mode: :class:`DetectionLosses` (``gt`` required). Eval mode: one :class:`Detections` per sample."""
        out = self.features(x)
        if self.training:
            gt = require(gt, "gt", "a Teacher in training mode returns losses")
            return self.loss(out, gt)
        return decode(out.head, self.config)
