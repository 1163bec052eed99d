"""The collate function that batches :class:`imkd_ros.core.types.Frame` into tensors (:class:`Batch`).

Frames stay numpy (so that augmentations work on one representation); :func:`collate_frames` is where tensors are
made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from imkd_ros.core.types import LIDAR_FEATURES, RADAR_FEATURES, Boxes, Frame

__all__ = ["Batch", "collate_frames"]


@dataclass(frozen=True)
class Batch:
    """B frames as tensors (CPU unless moved with :meth:`to`); padded point sets come with boolean masks.

    Attributes:
        images: ``(B, N, 3, H, W)`` float32 RGB in 0-1 of the rig's N cameras (:attr:`Frame.cameras` order), or
            None when the frames carry no image.
        intrinsics: ``(B, N, 3, 3)`` float32 camera matrices.
        cam_to_ego: ``(B, N, 4, 4)`` float32 camera -> ego (reference frame) transforms.
        ego_to_global: ``(B, 4, 4)`` float64 ego (reference frame) -> global transforms.
        radar: ``(B, Nmax, 7)`` float32, columns :data:`imkd_ros.core.types.RADAR_FEATURES`, zero padded;
            ``Nmax = max(1, longest radar cloud)``.
        radar_mask: ``(B, Nmax)`` bool, True on real points.
        lidar: ``(B, Mmax, 6)`` float32, columns :data:`imkd_ros.core.types.LIDAR_FEATURES`, zero padded, or None when
            the frames carry no LiDAR; ``Mmax = max(1, longest cloud)``.
        lidar_mask: ``(B, Mmax)`` bool, or None with ``lidar``.
        gt: per frame ground truth (ego frame) or None.
        tokens: sample tokens.
        timestamps: ``(B,)`` int64 keyframe times in microseconds.
        weathers: per frame weather tag.
    """

    images: torch.Tensor | None
    intrinsics: torch.Tensor
    cam_to_ego: torch.Tensor
    ego_to_global: torch.Tensor
    radar: torch.Tensor
    radar_mask: torch.Tensor
    lidar: torch.Tensor | None
    lidar_mask: torch.Tensor | None
    gt: list[Boxes | None]
    tokens: list[str]
    timestamps: torch.Tensor
    weathers: list[str]

    def __len__(self) -> int:
        return len(self.tokens)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device`` (lists are shared)."""
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            moved[f.name] = v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        return Batch(**moved)


def _pad(clouds: list[np.ndarray], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    n_max = max(1, max(len(c) for c in clouds))
    out = torch.zeros((len(clouds), n_max, width), dtype=torch.float32)
    mask = torch.zeros((len(clouds), n_max), dtype=torch.bool)
    for i, c in enumerate(clouds):
        out[i, : len(c)] = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))
        mask[i, : len(c)] = True
    return out, mask


def collate_frames(frames: Sequence[Frame]) -> Batch:
    """Batch frames (for ``DataLoader(collate_fn=collate_frames)``).

    Raises:
        ValueError: an empty list, images of different sizes, some frames with images (or LiDAR) and some
            without, a frame without camera calibration, frames of different camera counts, or point arrays of the
            wrong width.
    """
    if not frames:
        raise ValueError("collate_frames: no frames")
    tokens = [f.token for f in frames]
    for f in frames:
        if not f.cameras or any(c.intrinsic is None for c in f.cameras):
            raise ValueError(f"collate_frames: frame {f.token} has no camera calibration")
        if len(f.cameras) != len(frames[0].cameras):
            raise ValueError(
                f"collate_frames: frame {f.token} has {len(f.cameras)} cameras, frame {frames[0].token} "
                f"{len(frames[0].cameras)}"
            )
        if f.radar.ndim != 2 or f.radar.shape[1] != len(RADAR_FEATURES):
            raise ValueError(f"collate_frames: frame {f.token} radar is {f.radar.shape}, expected (N, 7)")
        if f.lidar is not None and (f.lidar.ndim != 2 or f.lidar.shape[1] != len(LIDAR_FEATURES)):
            raise ValueError(f"collate_frames: frame {f.token} lidar is {f.lidar.shape}, expected (M, 6)")

    has_image = [f.images is not None for f in frames]
    images = None
    if any(has_image):
        if not all(has_image):
            raise ValueError(f"collate_frames: frames {tokens} mix loaded and missing images")
        shapes = {im.shape for f in frames for im in f.images}
        if len(shapes) != 1:
            raise ValueError(f"collate_frames: images of different shapes {sorted(shapes)} in {tokens}")
        stacked = torch.from_numpy(np.stack([np.stack(f.images) for f in frames]))  # (B, N, H, W, 3) uint8
        images = stacked.permute(0, 1, 4, 2, 3).to(torch.float32).div_(255.0).contiguous()

    has_lidar = [f.lidar is not None for f in frames]
    lidar = lidar_mask = None
    if any(has_lidar):
        if not all(has_lidar):
            raise ValueError(f"collate_frames: frames {tokens} mix loaded and missing LiDAR")
        lidar, lidar_mask = _pad([f.lidar for f in frames], len(LIDAR_FEATURES))
    radar, radar_mask = _pad([f.radar for f in frames], len(RADAR_FEATURES))

    return Batch(
        images=images,
        intrinsics=torch.from_numpy(np.array([[c.intrinsic for c in f.cameras] for f in frames], np.float32)),
        cam_to_ego=torch.from_numpy(
            np.array([[c.sensor_to_ego.matrix() for c in f.cameras] for f in frames], np.float32)
        ),
        ego_to_global=torch.from_numpy(np.stack([f.ego_pose.matrix() for f in frames])),
        radar=radar,
        radar_mask=radar_mask,
        lidar=lidar,
        lidar_mask=lidar_mask,
        gt=[f.gt for f in frames],
        tokens=tokens,
        timestamps=torch.tensor([f.timestamp for f in frames], dtype=torch.int64),
        weathers=[f.weather for f in frames],
    )
