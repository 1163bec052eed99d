"""Training-only modules of the distillation: adapters from student BEV channels to the teacher's.

They live in :class:`DistillHeads`, a module separate from the :class:`~imkd_ros.model.Student`, so the shipped
student checkpoint (what :class:`~imkd_ros.inference.detector.Detector` loads) holds no adapter and inference needs
neither teacher nor adapters; the training state (``CKPT.train.pt``) keeps their weights for ``--resume``.
"""

from __future__ import annotations

import torch
from torch import nn

from imkd_ros.distill.config import DistillConfig
from imkd_ros.model.layers import ConvBNReLU

__all__ = ["DistillHeads"]


def _zero_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """A 1x1 convolution starting at 0: the first distillation gradients are those of a neutral prediction (stage 1
    with a per-cell error of 1 on weighted average, stage 2 with a uniform channel distribution), whatever the
    teacher's feature scale. Its input gets no KD gradient until the adapter has moved off 0."""
    conv = nn.Conv2d(c_in, c_out, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class DistillHeads(nn.Module):
    """The adapters of the enabled stages.

    * ``radar_adapter`` (stage 1): ``(B, C_s, H, W) -> (B, C_t, H, W)``, a 3x3 conv-BN-ReLU then a zero-initialised
      1x1 conv, from the radar pillar BEV to the teacher's feature space (the radar branch has no BEV network of its
      own, the adapter gives it a little context).
    * ``fused_adapter`` (stage 2): ``(B, C_s, H, W) -> (B, C_t, H, W)``, a zero-initialised 1x1 conv, from the
      student's fused-stream map to the teacher's channels before the channel softmax.

    Args:
        student_channels: C_s (``ModelConfig.bev.channels`` of the student).
        teacher_channels: C_t (the cache's ``feature_channels``).
        config: which stages are on (stages without a module: none is built, so DDP sees no unused parameter).
    """

    def __init__(self, student_channels: int, teacher_channels: int, config: DistillConfig) -> None:
        super().__init__()
        cs, ct = student_channels, teacher_channels
        self.radar_adapter: nn.Module | None = None
        self.fused_adapter: nn.Module | None = None
        if config.has("stage1"):
            self.radar_adapter = nn.Sequential(ConvBNReLU(cs, cs, 3), _zero_conv(cs, ct))
        if config.has("stage2") and config.stage2_feature_weight > 0:
            self.fused_adapter = _zero_conv(cs, ct)

    def adapt_radar(self, radar_bev: torch.Tensor) -> torch.Tensor:
        """``(B, C_s, H, W) -> (B, C_t, H, W)``."""
        if self.radar_adapter is None:
            raise RuntimeError("DistillHeads: stage1 is off, there is no radar adapter")
        return self.radar_adapter(radar_bev)

    def adapt_fused(self, fused: torch.Tensor) -> torch.Tensor:
        """``(B, C_s, H, W) -> (B, C_t, H, W)``."""
        if self.fused_adapter is None:
            raise RuntimeError("DistillHeads: the stage2 feature loss is off, there is no fused adapter")
        return self.fused_adapter(fused)
