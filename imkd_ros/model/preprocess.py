"""Camera input preparation: resize + crop the original image to the model's input size, adjust the intrinsics,
normalise.

ONE path from a camera image to the model's pixels, for training and every inference route (``Detector`` with
torch or ONNX Runtime, ``imkd eval``, bag replay, the node): :func:`fit_frame` / :func:`fit_image` resize the uint8
image straight to the input size with OpenCV's area interpolation (no full-size float copy) and crop it, and
:func:`fit_intrinsics` moves the intrinsics with it. The model's own :func:`prepare_images` then only normalises
(its resize branch exists for direct calls of the network on arbitrary tensors; no pipeline of ours uses it).

Resize keeps the aspect ratio and covers the input size; the crop is centred horizontally and keeps the bottom rows
(nuScenes CAM_FRONT 1600x900 -> 704x396 -> rows 140..395 -> 704x256). Pixel coordinates follow the usual pinhole
convention (integer ``u, v`` at pixel centres), so a resize by ``s`` maps ``u -> s * (u + 0.5) - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from imkd_ros.model.config import ImageConfig, ModelConfig
from imkd_ros.model.errors import ModelInputError

if TYPE_CHECKING:
    from imkd_ros.core.types import Frame

__all__ = [
    "resize_crop_geometry",
    "fit_intrinsics",
    "fit_image",
    "fit_frame",
    "shrink_frame",
    "adjust_intrinsics",
    "prepare_images",
    "prepare_camera_images",
]


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


def fit_intrinsics(intrinsics: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics ``(3, 3)`` or ``(B, 3, 3)`` of the ``src_size`` ``(W0, H0)`` image -> those of the resized and
    cropped ``dst_size`` image (float64; the one formula of the project)."""
    w0, h0 = src_size
    new_w, new_h, left, top = resize_crop_geometry(src_size, dst_size)
    sx, sy = new_w / w0, new_h / h0
    k0 = np.asarray(intrinsics, dtype=np.float64)
    k = k0.copy()
    k[..., 0, 0] = k0[..., 0, 0] * sx
    k[..., 0, 1] = k0[..., 0, 1] * sx
    k[..., 0, 2] = (k0[..., 0, 2] + 0.5) * sx - 0.5 - left
    k[..., 1, 1] = k0[..., 1, 1] * sy
    k[..., 1, 2] = (k0[..., 1, 2] + 0.5) * sy - 0.5 - top
    return k


def adjust_intrinsics(intrinsics: torch.Tensor, src_size: tuple[int, int], dst_size: tuple[int, int]) -> torch.Tensor:
    """:func:`fit_intrinsics` on a tensor ``(B, 3, 3)`` (same dtype and device back)."""
    k = fit_intrinsics(intrinsics.detach().cpu().double().numpy(), src_size, dst_size)
    return torch.as_tensor(k, dtype=intrinsics.dtype, device=intrinsics.device)


def fit_image(image: np.ndarray, dst_size: tuple[int, int]) -> np.ndarray:
    """A ``(H0, W0, 3)`` uint8 RGB image -> ``(H, W, 3)`` uint8 at ``dst_size`` ``(W, H)``: area-resized to cover
    the size (aspect kept), then cropped (:func:`resize_crop_geometry`). Contiguous; the input when the size already
    matches."""
    import cv2

    if image.ndim != 3 or image.shape[2] != 3:
        raise ModelInputError(f"image must be (H, W, 3), got {tuple(image.shape)}")
    h0, w0 = image.shape[:2]
    w, h = dst_size
    if (w0, h0) == (w, h):
        return image
    new_w, new_h, left, top = resize_crop_geometry((w0, h0), (w, h))
    if (new_w, new_h) == (w0, h0):
        return np.ascontiguousarray(image[top : top + h, left : left + w])
    (y0, y1, sy0, sy1), (x0, x1, sx0, sx1) = _area_window(h0, new_h, top, h), _area_window(w0, new_w, left, w)
    resized = cv2.resize(image[sy0:sy1, sx0:sx1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized[top - y0 : top - y0 + h, left - x0 : left - x0 + w])


def _area_window(src: int, dst: int, start: int, size: int) -> tuple[int, int, int, int]:
    """Along one axis of an area resize ``src -> dst`` pixels whose output ``start:start+size`` is kept: the
    smallest output span ``o0:o1`` around it whose ends fall on the resize's period (``src / dst = p / q`` in lowest
    terms: every ``q`` output pixels cover exactly ``p`` input pixels), and its input span ``i0:i1``. Area-resizing
    only ``i0:i1`` to ``o1 - o0`` pixels gives the same pixels as the whole resize (the same footprints; tested),
    without computing the rows the crop drops (nuScenes 1600x900 -> 704x256: input rows 300-900 instead of 0-900)."""
    g = math.gcd(src, dst)
    p, q = src // g, dst // g
    o0 = (start // q) * q
    o1 = min(dst, -(-(start + size) // q) * q)
    return o0, o1, o0 // q * p, src if o1 == dst else o1 // q * p


def fit_frame(frame: Frame, config: ImageConfig) -> Frame:
    """The frame with every camera's image fitted to the model input (:func:`fit_image`) and that camera's
    intrinsics and image size moved alike (:func:`fit_intrinsics`). Frames without images, or with all of them
    already at the input size, come back unchanged."""
    from imkd_ros.core.types import Calibration

    dst = (int(config.input_size[0]), int(config.input_size[1]))
    if frame.images is None or not frame.cameras or all((im.shape[1], im.shape[0]) == dst for im in frame.images):
        return frame
    images, cameras = [], []
    for image, camera in zip(frame.images, frame.cameras, strict=True):
        src = (int(image.shape[1]), int(image.shape[0]))
        k = fit_intrinsics(np.asarray(camera.intrinsic, dtype=np.float64), src, dst)
        images.append(fit_image(image, dst))
        cameras.append(Calibration(camera.channel, camera.sensor_to_ego, k, dst))
    return replace(frame, images=tuple(images), cameras=tuple(cameras))


def shrink_frame(frame: Frame, config: ModelConfig) -> Frame:
    """The frame with only what ``config``'s model uses: images fitted to the model input
    (:func:`fit_frame`, the path :class:`~imkd_ros.inference.detector.Detector` uses at inference),
    LiDAR cut to the BEV grid (+2 m)."""
    if "camera" in config.modalities:
        frame = fit_frame(frame, config.image)
    else:
        frame = replace(frame, images=None)
    lidar = frame.lidar
    if lidar is not None:
        g = config.grid
        keep = (
            (lidar[:, 0] >= g.x_range[0] - 2)
            & (lidar[:, 0] <= g.x_range[1] + 2)
            & (lidar[:, 1] >= g.y_range[0] - 2)
            & (lidar[:, 1] <= g.y_range[1] + 2)
        )
        lidar = np.ascontiguousarray(lidar[keep])
    return replace(frame, lidar=lidar)


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
    return images.sub(mean).div_(std), intrinsics  # (images - mean) / std with one temporary instead of two


def prepare_camera_images(
    images: torch.Tensor, intrinsics: torch.Tensor, config: ImageConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prepare_images` for the N cameras of each sample: ``(B, N, 3, H0, W0)`` images and ``(B, N, 3, 3)``
    intrinsics -> ``(B, N, 3, H, W)`` normalised model-input images and their ``(B, N, 3, 3)`` intrinsics."""
    if images.dim() != 5 or images.shape[2] != 3:
        raise ModelInputError(f"images must be (B, N, 3, H, W), got {tuple(images.shape)}")
    b, n = images.shape[:2]
    if intrinsics.shape != (b, n, 3, 3):
        raise ModelInputError(f"intrinsics must be ({b}, {n}, 3, 3), got {tuple(intrinsics.shape)}")
    imgs, k = prepare_images(images.flatten(0, 1), intrinsics.flatten(0, 1), config)
    return imgs.unflatten(0, (b, n)), k.unflatten(0, (b, n))
