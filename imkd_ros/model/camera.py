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

__all__ = ["CameraBEV", "CameraBEVOutput", "camera_geometry"]


@dataclass(frozen=True)
class CameraBEVOutput:
    """Attributes:
    bev: ``(B, C, out_ny, out_nx)`` camera BEV on the head grid (C = ``config.bev.channels``), all N cameras pooled.
    depth_logits: ``(B, N, D, fH, fW)`` depth-bin logits per camera (softmax over D gives the distribution).
    """

    bev: torch.Tensor
    depth_logits: torch.Tensor


def camera_geometry(
    intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, config: ModelConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the camera branch takes from the calibration: it depends on the calibration only, so it can be computed
    once per camera and reused (the ONNX graph takes both as inputs, see :mod:`imkd_ros.inference.export_onnx`).

    Args:
        intrinsics: ``(B, N, 3, 3)`` of the N model-input (resized, cropped) images.
        cam_to_ego: ``(B, N, 4, 4)``.

    Returns:
        camera parameters ``(B, N, 16)`` (:func:`~imkd_ros.model.depth.camera_parameters`) and the frustum cell index
        ``(B, N * D * fH * fW)`` int64 of all N cameras (:func:`~imkd_ros.model.lift_splat.frustum_cell_index`).
    """
    b, n = intrinsics.shape[:2]
    camera = camera_parameters(intrinsics.flatten(0, 1), cam_to_ego.flatten(0, 1), config.image.input_size)
    index = frustum_cell_index(intrinsics, cam_to_ego, config.image, config.camera, config.grid)
    return camera.unflatten(0, (b, n)), index


class CameraBEV(nn.Module):
    """``(B, N, 3, H, W)`` normalised model-input images of N cameras + ``(B, N, 3, 3)`` their intrinsics +
    ``(B, N, 4, 4)`` camera -> ego -> :class:`CameraBEVOutput`.

    Every camera goes through the same backbone and depth net (as one batch of B * N images); their frusta are
    splatted into one BEV, so features of cameras that see the same cell add up there. The lifted map
    ``(B, context_channels, NY, NX)`` at ``grid.cell`` enters the head grid through a stride-``grid.stride`` 3x3
    conv-BN-ReLU.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cam = config.camera
        self.backbone = ImageBackbone(cam)
        self.depth_net = DepthNet(cam.neck_channels, cam)
        self.entry = ConvBNReLU(cam.context_channels, config.bev.channels, 3, config.grid.stride)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> CameraBEVOutput:
        return self.lift(images, *camera_geometry(intrinsics, cam_to_ego, self.config))

    def lift(self, images: torch.Tensor, camera: torch.Tensor, cell_index: torch.Tensor) -> CameraBEVOutput:
        """The branch given its calibration-derived inputs from :func:`camera_geometry`: images ``(B, N, 3, H, W)``,
        camera parameters ``(B, N, 16)``, frustum cell index ``(B, N * D * fH * fW)``."""
        b, n = images.shape[:2]
        feats = self.backbone(images.flatten(0, 1))
        depth_logits, context = self.depth_net(feats, camera.flatten(0, 1))
        bev = splat(depth_logits.softmax(dim=1), context, cell_index, self.config.grid)
        return CameraBEVOutput(self.entry(bev), depth_logits.unflatten(0, (b, n)))
