"""Camera-aware depth net (BEVDepth style) and depth supervision from LiDAR.

Depth is categorical: ``D = depth_bins`` equal bins over ``depth_range`` along the optical axis; bin ``i`` covers
``[d_min + i * step, d_min + (i + 1) * step)`` and is represented (for lifting) by its centre.

The depth net sees the camera: fx, fy, cx, cy (normalised by the image size) and the 3x4 camera -> ego transform
go through an MLP whose output gates (squeeze-excitation style) the features feeding the depth and context
branches, so one network can serve cameras with different intrinsics or mounting.
"""

from __future__ import annotations

import torch
from torch import nn

from imkd_ros.model.config import CAMERA_FEATURE_STRIDE, CameraConfig, ImageConfig, ModelConfig
from imkd_ros.model.layers import BasicBlock, ConvBNReLU

__all__ = [
    "DepthNet",
    "depth_bin_centers",
    "camera_parameters",
    "lidar_depth_targets",
    "camera_depth_targets",
    "CAMERA_PARAMETERS",
]

#: Length of the camera-parameter vector of :func:`camera_parameters`.
CAMERA_PARAMETERS: int = 16


def depth_bin_centers(config: CameraConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """``(D,)`` float32 bin centres (m)."""
    step = config.depth_step
    return config.depth_range[0] + step * (torch.arange(config.depth_bins, device=device, dtype=torch.float32) + 0.5)


def camera_parameters(intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Camera description fed to the depth net.

    Args:
        intrinsics: ``(B, 3, 3)`` of the model-input image.
        cam_to_ego: ``(B, 4, 4)`` camera -> ego (camera frame: x right, y down, z forward).
        image_size: ``(W, H)`` of the model-input image.

    Returns:
        ``(B, 16)``: fx/W, fy/H, cx/W, cy/H, the 9 rotation entries, translation / 10 m.
    """
    w, h = image_size
    b = intrinsics.shape[0]
    k = torch.stack(
        [intrinsics[:, 0, 0] / w, intrinsics[:, 1, 1] / h, intrinsics[:, 0, 2] / w, intrinsics[:, 1, 2] / h], dim=1
    )
    rot = cam_to_ego[:, :3, :3].reshape(b, 9)
    trans = cam_to_ego[:, :3, 3] / 10.0
    return torch.cat([k, rot, trans], dim=1)


class DepthNet(nn.Module):
    """Features ``(B, C_in, fH, fW)`` + camera parameters ``(B, 16)`` -> depth logits ``(B, D, fH, fW)`` and
    context features ``(B, context_channels, fH, fW)``.

    ``x = ConvBNReLU(feat)``; ``m = MLP(camera)``; depth branch: ``x * sigmoid(Wd m)`` -> basic block -> 1x1 conv
    to D logits; context branch: ``x * sigmoid(Wc m)`` -> 1x1 conv.
    """

    def __init__(self, c_in: int, config: CameraConfig) -> None:
        super().__init__()
        mid = config.depth_channels
        self.reduce = ConvBNReLU(c_in, mid, 3)
        self.camera_mlp = nn.Sequential(nn.Linear(CAMERA_PARAMETERS, mid), nn.ReLU(inplace=True), nn.Linear(mid, mid))
        self.depth_gate = nn.Linear(mid, mid)
        self.context_gate = nn.Linear(mid, mid)
        self.depth_branch = nn.Sequential(BasicBlock(mid, mid), nn.Conv2d(mid, config.depth_bins, 1))
        self.context_branch = nn.Conv2d(mid, config.context_channels, 1)

    def forward(self, features: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.reduce(features)
        m = torch.relu(self.camera_mlp(camera))
        gd = torch.sigmoid(self.depth_gate(m))[:, :, None, None]
        gc = torch.sigmoid(self.context_gate(m))[:, :, None, None]
        return self.depth_branch(x * gd), self.context_branch(x * gc)


def lidar_depth_targets(
    lidar: torch.Tensor,
    lidar_mask: torch.Tensor | None,
    intrinsics: torch.Tensor,
    cam_to_ego: torch.Tensor,
    image: ImageConfig,
    camera: CameraConfig,
) -> torch.Tensor:
    """Depth-bin target per feature cell from LiDAR projected into the (model-input) image.

    Each point (ego frame) is projected with ``intrinsics`` (those of the resized/cropped image); the nearest
    depth per stride-16 feature cell is kept and turned into its bin index.

    Args:
        lidar: ``(B, M, 3+)`` points, x y z (m, ego frame) first.
        lidar_mask: ``(B, M)`` bool, True for real points (None: all real).
        intrinsics: ``(B, 3, 3)`` of the model-input image.
        cam_to_ego: ``(B, 4, 4)``.
        image: gives the input size; camera: gives the bins.

    Returns:
        ``(B, fH, fW)`` int64 bin index, ``-1`` where no point projects or the nearest depth is outside the bins.
    """
    b, m = lidar.shape[:2]
    w, h = image.input_size
    fw, fh = image.feature_size
    rot = cam_to_ego[:, :3, :3]
    trans = cam_to_ego[:, :3, 3]
    cam = torch.einsum("bji,bmj->bmi", rot, lidar[..., :3].float() - trans[:, None, :])  # R^T (p - t)
    depth = cam[..., 2]
    z = depth.clamp(min=1e-3)
    u = (intrinsics[:, None, 0, 0] * cam[..., 0] + intrinsics[:, None, 0, 1] * cam[..., 1]) / z
    u = u + intrinsics[:, None, 0, 2]
    v = intrinsics[:, None, 1, 1] * cam[..., 1] / z + intrinsics[:, None, 1, 2]
    # Pixel index: integer coordinates are pixel centres, so pixel j covers [j - 0.5, j + 0.5).
    col = torch.floor((u + 0.5) / CAMERA_FEATURE_STRIDE).long()
    row = torch.floor((v + 0.5) / CAMERA_FEATURE_STRIDE).long()
    ok = (depth > 1e-3) & (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
    ok = ok & (col >= 0) & (col < fw) & (row >= 0) & (row < fh)
    if lidar_mask is not None:
        ok = ok & lidar_mask
    cells = fh * fw
    flat = torch.arange(b, device=lidar.device).view(b, 1) * cells + row.clamp(0, fh - 1) * fw + col.clamp(0, fw - 1)
    flat = torch.where(ok, flat, torch.full_like(flat, b * cells))
    nearest = torch.full((b * cells + 1,), float("inf"), device=lidar.device)
    nearest = nearest.scatter_reduce(0, flat.reshape(-1), depth.reshape(-1), "amin", include_self=True)[: b * cells]
    bins = torch.floor((nearest - camera.depth_range[0]) / camera.depth_step)
    valid = torch.isfinite(nearest) & (bins >= 0) & (bins < camera.depth_bins)
    bins = torch.where(valid, bins, torch.full_like(bins, -1.0)).long()
    return bins.view(b, fh, fw)


def camera_depth_targets(
    lidar: torch.Tensor,
    lidar_mask: torch.Tensor | None,
    intrinsics: torch.Tensor,
    cam_to_ego: torch.Tensor,
    config: ModelConfig,
) -> torch.Tensor:
    """:func:`lidar_depth_targets` for each of N cameras: ``lidar`` ``(B, M, 3+)`` (+ ``lidar_mask`` ``(B, M)``),
    ``intrinsics`` ``(B, N, 3, 3)`` of the model-input images, ``cam_to_ego`` ``(B, N, 4, 4)`` -> ``(B, N, fH, fW)``
    bin indices (every camera sees the sample's whole cloud)."""
    b, n = intrinsics.shape[:2]
    mask = None if lidar_mask is None else lidar_mask.repeat_interleave(n, 0)
    bins = lidar_depth_targets(
        lidar.repeat_interleave(n, 0),
        mask,
        intrinsics.flatten(0, 1),
        cam_to_ego.flatten(0, 1),
        config.image,
        config.camera,
    )
    return bins.unflatten(0, (b, n))
