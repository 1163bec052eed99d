"""Camera branch of the student: image -> backbone -> camera-aware depth net -> lift-splat -> camera BEV."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from imkd_ros.model.backbone import ImageBackbone
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.depth import DepthNet, camera_parameters
from imkd_ros.model.layers import ConvBNReLU
from imkd_ros.model.lift_splat import frustum_cell_index, splat

__all__ = ["CameraBEV", "CameraBEVOutput"]


@dataclass(frozen=True)
class CameraBEVOutput:
    """Attributes:
    bev: ``(B, C, out_ny, out_nx)`` camera BEV on the head grid (C = ``config.bev.channels``).
    depth_logits: ``(B, D, fH, fW)`` depth-bin logits (softmax over D gives the distribution).
    """

    bev: torch.Tensor
    depth_logits: torch.Tensor


class CameraBEV(nn.Module):
    """``(B, 3, H, W)`` normalised model-input images + ``(B, 3, 3)`` their intrinsics + ``(B, 4, 4)`` camera -> ego
    -> :class:`CameraBEVOutput`.

    The lifted map ``(B, context_channels, NY, NX)`` at ``grid.cell`` enters the head grid through a stride-
    ``grid.stride`` 3x3 conv-BN-ReLU.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cam = config.camera
        self.backbone = ImageBackbone(cam)
        self.depth_net = DepthNet(cam.neck_channels, cam)
        self.entry = ConvBNReLU(cam.context_channels, config.bev.channels, 3, config.grid.stride)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> CameraBEVOutput:
        cfg = self.config
        feats = self.backbone(images)
        cam = camera_parameters(intrinsics, cam_to_ego, cfg.image.input_size)
        depth_logits, context = self.depth_net(feats, cam)
        index = frustum_cell_index(intrinsics, cam_to_ego, cfg.image, cfg.camera, cfg.grid)
        bev = splat(depth_logits.softmax(dim=1), context, index, cfg.grid)
        return CameraBEVOutput(self.entry(bev), depth_logits)
