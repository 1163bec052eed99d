"""Lift-splat: image features + categorical depth -> camera BEV, vectorised.

Lift: feature cell ``(r, c)`` of the stride-16 map looks through pixel ``(u, v) = (16 c + 7.5, 16 r + 7.5)``;
each depth bin centre ``d`` gives the camera point ``d * K^-1 [u, v, 1]`` and, through ``cam_to_ego``, an ego
point. The geometry ``(B, D, fH, fW, 3)`` depends only on the calibration, so its BEV cell indices
(:func:`frustum_cell_index`) can be computed once per calibration and reused.

Splat: ``bev[b, :, cell] = sum over (n, d, r, c) in cell of softmax_depth[b, n, d, r, c] * context[b, n, :, r, c]``
over the N cameras of the rig, one ``scatter_add`` over ``B * N * D * fH * fW`` rows (points outside the grid go to a
dropped dump row); no Python loops. The BEV collapses z (samples outside ``grid.z_range`` are dropped).
"""

from __future__ import annotations

import torch

from imkd_ros.model.bev_scatter import bev_cell_index, scatter_sum, to_bev_image
from imkd_ros.model.config import CAMERA_FEATURE_STRIDE, CameraConfig, GridConfig, ImageConfig
from imkd_ros.model.depth import depth_bin_centers

__all__ = ["frustum_pixels", "frustum_points", "frustum_cell_index", "splat"]


def frustum_pixels(image: ImageConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """``(fH, fW, 2)`` pixel coordinates ``(u, v)`` of the feature-cell centres in the model-input image."""
    fw, fh = image.feature_size
    s = CAMERA_FEATURE_STRIDE
    u = torch.arange(fw, device=device, dtype=torch.float32) * s + (s - 1) / 2.0
    v = torch.arange(fh, device=device, dtype=torch.float32) * s + (s - 1) / 2.0
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def frustum_points(
    intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, image: ImageConfig, camera: CameraConfig
) -> torch.Tensor:
    """Ego-frame frustum sample points.

    Args:
        intrinsics: ``(B, 3, 3)`` pinhole matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` of the model-input image
            (inverted analytically: no matrix inverse, so the op exports).
        cam_to_ego: ``(B, 4, 4)``.

    Returns:
        ``(B, D, fH, fW, 3)`` x, y, z in metres (ego frame).
    """
    pix = frustum_pixels(image, intrinsics.device)  # (fH, fW, 2)
    depths = depth_bin_centers(camera, intrinsics.device)  # (D,)
    fx = intrinsics[:, 0, 0].view(-1, 1, 1)
    skew = intrinsics[:, 0, 1].view(-1, 1, 1)
    cx = intrinsics[:, 0, 2].view(-1, 1, 1)
    fy = intrinsics[:, 1, 1].view(-1, 1, 1)
    cy = intrinsics[:, 1, 2].view(-1, 1, 1)
    yn = (pix[None, ..., 1] - cy) / fy  # (B, fH, fW)
    xn = (pix[None, ..., 0] - cx - skew * yn) / fx
    rays = torch.stack([xn, yn, torch.ones_like(xn)], dim=-1)  # (B, fH, fW, 3), camera frame, z = 1
    cam = depths.view(1, -1, 1, 1, 1) * rays[:, None]  # (B, D, fH, fW, 3)
    rot = cam_to_ego[:, :3, :3]
    trans = cam_to_ego[:, :3, 3]
    return torch.einsum("bij,bdhwj->bdhwi", rot, cam) + trans.view(-1, 1, 1, 1, 3)


def frustum_cell_index(
    intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, image: ImageConfig, camera: CameraConfig, grid: GridConfig
) -> torch.Tensor:
    """Intrinsics ``(B, N, 3, 3)`` and ``(B, N, 4, 4)`` camera -> ego of N cameras -> ``(B, N * D * fH * fW)`` flat
    BEV cell index (see :func:`imkd_ros.model.bev_scatter.bev_cell_index`) of every frustum sample, in
    ``(n, d, r, c)`` row-major order."""
    b = intrinsics.shape[0]
    pts = frustum_points(intrinsics.flatten(0, 1), cam_to_ego.flatten(0, 1), image, camera)
    return bev_cell_index(pts.reshape(b, -1, 3), grid)


def splat(depth_probs: torch.Tensor, context: torch.Tensor, cell_index: torch.Tensor, grid: GridConfig) -> torch.Tensor:
    """Pool depth-weighted context of N cameras into one BEV grid per sample.

    Args:
        depth_probs: ``(B * N, D, fH, fW)`` depth distribution (softmax over D), the N cameras of a sample
            consecutive.
        context: ``(B * N, C, fH, fW)`` context features.
        cell_index: ``(B, N * D * fH * fW)`` from :func:`frustum_cell_index`.

    Returns:
        ``(B, C, NY, NX)`` camera BEV at ``grid.cell``.
    """
    b, c = cell_index.shape[0], context.shape[1]
    ctx = context.permute(0, 2, 3, 1).unsqueeze(1)  # (B*N, 1, fH, fW, C)
    values = (depth_probs.unsqueeze(-1) * ctx).reshape(b, -1, c)  # (B, N*D*fH*fW, C)
    rows = scatter_sum(values, cell_index, grid.ny * grid.nx)
    return to_bev_image(rows, b, grid)
