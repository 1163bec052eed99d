"""What a model is run on: :class:`StudentInputs` (camera and radar) and :class:`TeacherInputs` (LiDAR), one typed
object per batch instead of a keyword list repeated by every caller (shapes in :mod:`imkd_ros.model.student` and
:mod:`imkd_ros.model.teacher`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from imkd_ros.model.checks import check_shape, require

__all__ = ["StudentInputs", "TeacherInputs", "ModelInputs"]


@dataclass(frozen=True)
class StudentInputs:
    """A batch of student inputs; those of a modality the model lacks may be None (and are ignored).

    Attributes:
        images: ``(B, N, 3, H0, W0)`` float 0-1 RGB of the rig's N cameras (the same N and size in every sample; the
            front rig has N = 1), any resolution.
        intrinsics: ``(B, N, 3, 3)`` camera matrices of that resolution.
        cam_to_ego: ``(B, N, 4, 4)`` camera -> ego (camera frame x right, y down, z forward).
        radar: ``(B, N, 7)`` ego-frame points, columns :data:`imkd_ros.core.types.RADAR_FEATURES`, zero padded.
        radar_mask: ``(B, N)`` bool, True on real points (None: all real).
    """

    images: torch.Tensor | None = None
    intrinsics: torch.Tensor | None = None
    cam_to_ego: torch.Tensor | None = None
    radar: torch.Tensor | None = None
    radar_mask: torch.Tensor | None = None

    def check(self, modalities: tuple[str, ...]) -> int:
        """The batch size, after checking that the inputs of ``modalities`` are there with consistent shapes.

        Raises:
            ModelInputError: a missing input or a wrong shape, naming it.
        """
        b = None
        if "camera" in modalities:
            why = "the student has a camera branch"
            images = require(self.images, "images", why)
            b = images.shape[0]
            check_shape(images, "images", (b, None, 3, None, None))
            n = images.shape[1]
            check_shape(require(self.intrinsics, "intrinsics", why), "intrinsics", (b, n, 3, 3))
            check_shape(require(self.cam_to_ego, "cam_to_ego", why), "cam_to_ego", (b, n, 4, 4))
        if "radar" in modalities:
            radar = require(self.radar, "radar", "the student has a radar branch")
            b = radar.shape[0] if b is None else b
            check_shape(radar, "radar", (b, None, 7))
            if self.radar_mask is not None:
                check_shape(self.radar_mask, "radar_mask", (b, radar.shape[1]))
        if b is None:
            raise ValueError(f"StudentInputs.check: no student modality in {modalities}")
        return b

    def tensors(self) -> dict[str, torch.Tensor | None]:
        """``{field name: tensor or None}`` in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to(self, device: torch.device | str) -> StudentInputs:
        return StudentInputs(**{k: None if v is None else v.to(device) for k, v in self.tensors().items()})


@dataclass(frozen=True)
class TeacherInputs:
    """A batch of teacher inputs.

    Attributes:
        lidar: ``(B, M, 6)`` ego-frame points, columns :data:`imkd_ros.core.types.LIDAR_FEATURES`, zero padded.
        lidar_mask: ``(B, M)`` bool, True on real points (None: all real).
    """

    lidar: torch.Tensor
    lidar_mask: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor | None]:
        return {"lidar": self.lidar, "lidar_mask": self.lidar_mask}

    def to(self, device: torch.device | str) -> TeacherInputs:
        mask = None if self.lidar_mask is None else self.lidar_mask.to(device)
        return TeacherInputs(self.lidar.to(device), mask)


#: The inputs of either model.
ModelInputs = StudentInputs | TeacherInputs
