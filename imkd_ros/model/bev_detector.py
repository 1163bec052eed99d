"""What the student and the teacher share: their config, the BEV network and the CenterPoint head after it.

:class:`BEVDetector` is the base of :class:`~imkd_ros.model.student.Student` and
:class:`~imkd_ros.model.teacher.Teacher`. A subclass passes its config up (defaulted and checked here), builds its
sensor branches, then calls :meth:`BEVDetector.add_bev_and_head`, so the parameters are registered branches first,
BEV network and head last.
"""

from __future__ import annotations

import torch
from torch import nn

from imkd_ros.model.bev import BEVBackbone
from imkd_ros.model.config import ModelConfig, ModelConfigError
from imkd_ros.model.head import CenterHead

__all__ = ["BEVDetector"]


class BEVDetector(nn.Module):
    """Sensor branches (the subclass's) -> BEV network -> head, on the grid of ``config``.

    Args:
        config: the model config (None: :meth:`ModelConfig.default` of the subclass's sensors).
        teacher: whether the subclass is the LiDAR teacher; the config's modalities must say the same.

    Raises:
        ModelConfigError: a teacher's config for a student, or the other way round.
    """

    def __init__(self, config: ModelConfig | None, *, teacher: bool) -> None:
        super().__init__()
        if config is None:
            config = ModelConfig.default(("lidar",)) if teacher else ModelConfig.default()
        if teacher and not config.is_teacher:
            raise ModelConfigError(f"Teacher: config.modalities must be ('lidar',), got {config.modalities}")
        if not teacher and config.is_teacher:
            raise ModelConfigError("Student: config.modalities is ('lidar',), which is the Teacher's; use Teacher")
        self.config = config

    def add_bev_and_head(
        self, bev_backbone: nn.Module | None, head: nn.Module | None, device: torch.device | str | None
    ) -> None:
        """Add the BEV network and the head (each built from the config when None), then move every parameter to
        ``device`` (None: leave them where they are)."""
        config = self.config
        self.bev_backbone = bev_backbone or BEVBackbone(config.bev)
        self.head = head or CenterHead(config.bev.channels, config.num_classes, config.head)
        if device is not None:
            self.to(device)
