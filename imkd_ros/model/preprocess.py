"""Camera input preparation: resize + crop the original image to the model's input size, adjust the intrinsics,
normalise.

Resize keeps the aspect ratio and covers the input size; the crop is centred horizontally and keeps the bottom rows
(nuScenes CAM_FRONT 1600x900 -> 704x396 -> rows 140..395 -> 704x256). Pixel coordinates follow the usual pinhole
convention (integer ``u, v`` at pixel centres), so a resize by ``s`` maps ``u -> s * (u + 0.5) - 0.5``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from imkd_ros.model.config import ImageConfig
from imkd_ros.model.errors import ModelInputError

__all__ = ["resize_crop_geometry", "adjust_intrinsics", "prepare_images"]


def resize_crop_geometry(src_size: tuple[int, int], dst_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Resized size and crop origin taking a ``src_size`` ``(W0, H0)`` image to ``dst_size`` ``(W, H)``.

    Returns:
        ``(new_w, new_h, left, top)``: resize to ``new_w x new_h``, then keep columns ``left:left+W`` and rows
        ``top:top+H``.
    """
    w0, h0 = src_size
    w, h = dst_size
    if w0 <= 0 or h0 <= 0:
        raise ModelInputError(f"image size must be positive, got {src_size}")
    scale = max(w / w0, h / h0)
    new_w, new_h = max(w, round(w0 * scale)), max(h, round(h0 * scale))
    return new_w, new_h, (new_w - w) // 2, new_h - h


def adjust_intrinsics(intrinsics: torch.Tensor, src_size: tuple[int, int], dst_size: tuple[int, int]) -> torch.Tensor:
    """Intrinsics ``(B, 3, 3)`` of the ``src_size`` image -> those of the resized and cropped ``dst_size`` image."""
    w0, h0 = src_size
    new_w, new_h, left, top = resize_crop_geometry(src_size, dst_size)
    sx, sy = new_w / w0, new_h / h0
    k = intrinsics.clone()
    k[:, 0, 0] = intrinsics[:, 0, 0] * sx
    k[:, 0, 1] = intrinsics[:, 0, 1] * sx
    k[:, 0, 2] = (intrinsics[:, 0, 2] + 0.5) * sx - 0.5 - left
    k[:, 1, 1] = intrinsics[:, 1, 1] * sy
    k[:, 1, 2] = (intrinsics[:, 1, 2] + 0.5) * sy - 0.5 - top
    return k


def prepare_images(
    images: torch.Tensor, intrinsics: torch.Tensor, config: ImageConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-ready images and matching intrinsics.

    Args:
        images: ``(B, 3, H0, W0)`` float 0-1 RGB at any resolution (the original one, or already the input size).
        intrinsics: ``(B, 3, 3)`` camera matrices of ``images``.
        config: the model's image config.

    Returns:
        images ``(B, 3, H, W)`` normalised by ``config.mean/std`` at ``config.input_size``, and intrinsics
        ``(B, 3, 3)`` for them. When ``images`` already have the input size only normalisation happens.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ModelInputError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if intrinsics.shape != (images.shape[0], 3, 3):
        raise ModelInputError(f"intrinsics must be ({images.shape[0]}, 3, 3), got {tuple(intrinsics.shape)}")
    src = (int(images.shape[3]), int(images.shape[2]))
    dst = tuple(config.input_size)
    if src != dst:
        new_w, new_h, left, top = resize_crop_geometry(src, dst)
        images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
        images = images[:, :, top : top + dst[1], left : left + dst[0]]
        intrinsics = adjust_intrinsics(intrinsics, src, dst)
    mean = images.new_tensor(config.mean).view(1, 3, 1, 1)
    std = images.new_tensor(config.std).view(1, 3, 1, 1)
    return (images - mean) / std, intrinsics
