"""The student detector: the rig's cameras and/or radar -> BEV -> CenterPoint head (no LiDAR at inference).

Composition (torchvision-detection style): ``Student(camera_bev, radar_bev, fuser, bev_backbone, head, config)``;
a part left None is built from ``config``. Which branches exist follows ``config.modalities``: camera + radar (the
IMKD student, fused by :class:`~imkd_ros.model.fusion.IntensityGuidedFusion`), camera only or radar only
(ablations; the single branch's BEV is the "fused" BEV).

Inputs come as one :class:`~imkd_ros.model.inputs.StudentInputs` (batch B):

* ``images`` ``(B, N, 3, H0, W0)`` float 0-1 RGB of the rig's N cameras (front rig: N = 1), any resolution
  (resized/cropped to ``config.image.input_size`` inside, see :mod:`imkd_ros.model.preprocess`), with ``intrinsics``
  ``(B, N, 3, 3)`` of that resolution and ``cam_to_ego`` ``(B, N, 4, 4)`` (camera frame x right, y down, z
  forward). The weights do not depend on N: one checkpoint runs on any number of cameras.
* ``radar`` ``(B, N, 7)`` ego-frame points, columns :data:`imkd_ros.core.types.RADAR_FEATURES`, zero-padded, with
  ``radar_mask`` ``(B, N)`` bool.
* training only: ``gt`` (one :class:`~imkd_ros.core.types.Boxes` per sample, ego frame) or prebuilt
  :class:`~imkd_ros.model.targets.HeadTargets`; ``lidar`` ``(B, M, 6)`` + ``lidar_mask`` ``(B, M)`` for depth
  supervision of the camera branch (omitted: depth loss 0).

``forward`` returns :class:`~imkd_ros.model.losses.DetectionLosses` in training mode and a list of
:class:`~imkd_ros.model.decode.Detections` in eval mode. :meth:`Student.features` returns every intermediate
BEV map (:class:`StudentOutput`) for distillation and export; it has no data-dependent Python control flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from imkd_ros.core.types import Boxes
from imkd_ros.model.bev_detector import BEVDetector
from imkd_ros.model.camera import CameraBEV, CameraBEVOutput
from imkd_ros.model.checks import check_shape, require
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.decode import Detections, decode
from imkd_ros.model.depth import camera_depth_targets
from imkd_ros.model.errors import ModelConfigError
from imkd_ros.model.fusion import FusionOutput, IntensityGuidedFusion
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.inputs import StudentInputs
from imkd_ros.model.losses import DetectionLosses, detection_losses
from imkd_ros.model.pillars import PillarBEVOutput, RadarPillarBEV
from imkd_ros.model.precision import full_precision
from imkd_ros.model.preprocess import prepare_camera_images
from imkd_ros.model.targets import HeadTargets, as_targets

__all__ = ["Student", "StudentOutput"]


@dataclass(frozen=True)
class StudentOutput:
    """Everything a student computes before decoding. All BEV maps are on the head grid ``(h, w) =
    (out_ny, out_nx)`` with ``C = config.bev.channels``; None where the branch does not exist.

    Attributes:
        camera_bev: ``(B, C, h, w)`` camera BEV (after its entry conv).
        radar_bev: ``(B, C, h, w)`` radar pillar BEV (after its entry conv).
        radar_intensity: ``(B, 2, h, w)`` radar density and mean-RCS maps.
        fused_bev: ``(B, C, h, w)`` fuser output (the single branch's BEV for one-modality students).
        bev: ``(B, C, h, w)`` BEV network output, the head's input.
        head: heatmap logits ``(B, K, h, w)`` and regression ``(B, 10, h, w)``.
        depth_logits: ``(B, N, D, fH, fW)`` depth-bin logits of the N cameras.
        fusion: gates and modality weights of the fuser (camera + radar only).
        intrinsics: ``(B, N, 3, 3)`` intrinsics of the model-input (resized, cropped) images.
        cam_to_ego: ``(B, N, 4, 4)`` camera -> ego used.
    """

    camera_bev: torch.Tensor | None
    radar_bev: torch.Tensor | None
    radar_intensity: torch.Tensor | None
    fused_bev: torch.Tensor
    bev: torch.Tensor
    head: HeadOutput
    depth_logits: torch.Tensor | None = None
    fusion: FusionOutput | None = None
    intrinsics: torch.Tensor | None = None
    cam_to_ego: torch.Tensor | None = None

    @property
    def heatmap_logits(self) -> torch.Tensor:
        """``(B, K, h, w)``."""
        return self.head.heatmap


class Student(BEVDetector):
    """Camera-radar (or single-modality) student. See the module docstring for inputs and outputs.

    Args:
        camera_bev: camera branch ``(images, intrinsics, cam_to_ego) -> CameraBEVOutput``; built when None and
            ``"camera"`` is a modality (must be None otherwise).
        radar_bev: radar branch ``(radar, mask) -> PillarBEVOutput``; likewise for ``"radar"``.
        fuser: ``(camera_bev, radar_bev, radar_intensity) -> FusionOutput``; camera + radar only.
        bev_backbone: ``(B, C, h, w) -> (B, C, h, w)``.
        head: ``(B, C, h, w) -> HeadOutput``.
        config: the model config (default :meth:`ModelConfig.default`).
        device: where to put the parameters (None: leave on the CPU).
    """

    def __init__(
        self,
        camera_bev: nn.Module | None = None,
        radar_bev: nn.Module | None = None,
        fuser: nn.Module | None = None,
        bev_backbone: nn.Module | None = None,
        head: nn.Module | None = None,
        config: ModelConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(config, teacher=False)
        config = self.config
        mods = config.modalities
        c = config.bev.channels
        for name, part in (("camera", camera_bev), ("radar", radar_bev)):
            if part is not None and name not in mods:
                raise ModelConfigError(f"Student: a {name}_bev part was given but config.modalities is {mods}")
        if fuser is not None and len(mods) != 2:
            raise ModelConfigError(f"Student: a fuser was given but config.modalities is {mods}")
        self.camera_bev = (camera_bev or CameraBEV(config)) if "camera" in mods else None
        self.radar_bev = (radar_bev or RadarPillarBEV(config)) if "radar" in mods else None
        self.fuser = (fuser or IntensityGuidedFusion(c)) if len(mods) == 2 else None
        self.add_bev_and_head(bev_backbone, head, device)

    def features(self, x: StudentInputs) -> StudentOutput:
        """Network outputs (no loss, no decoding): :class:`StudentOutput`. Inputs of a modality the model lacks are
        ignored."""
        x.check(self.config.modalities)
        cam_out = rad_out = None
        k = c2e = None
        if self.camera_bev is not None:
            imgs, k = prepare_camera_images(x.images.float(), x.intrinsics.float(), self.config.image)
            c2e = x.cam_to_ego.float()
            cam_out = self.camera_bev(imgs, k, c2e)
        if self.radar_bev is not None:
            rad_out = self.radar_bev(x.radar, x.radar_mask)
        return self.combine(cam_out, rad_out, k, c2e)

    def combine(
        self,
        cam_out: CameraBEVOutput | None,
        rad_out: PillarBEVOutput | None,
        intrinsics: torch.Tensor | None = None,
        cam_to_ego: torch.Tensor | None = None,
    ) -> StudentOutput:
        """Fusion, BEV network and head on the branch outputs (None for a branch the model lacks; at least one
        given); ``intrinsics`` / ``cam_to_ego`` are only recorded in the output."""
        fusion = None
        if cam_out is not None and rad_out is not None:
            fusion = self.fuser(cam_out.bev, rad_out.bev, rad_out.intensity)
            fused = fusion.fused
        else:
            fused = cam_out.bev if cam_out is not None else rad_out.bev
        bev = self.bev_backbone(fused)
        return StudentOutput(
            camera_bev=None if cam_out is None else cam_out.bev,
            radar_bev=None if rad_out is None else rad_out.bev,
            radar_intensity=None if rad_out is None else rad_out.intensity,
            fused_bev=fused,
            bev=bev,
            head=self.head(bev),
            depth_logits=None if cam_out is None else cam_out.depth_logits,
            fusion=fusion,
            intrinsics=intrinsics,
            cam_to_ego=cam_to_ego,
        )

    @full_precision
    def loss(
        self,
        output: StudentOutput,
        gt: Sequence[Boxes] | HeadTargets,
        lidar: torch.Tensor | None = None,
        lidar_mask: torch.Tensor | None = None,
    ) -> DetectionLosses:
        """Detection losses of ``output`` (from :meth:`features`) against ``gt``; with ``lidar`` ``(B, M, 6)``
        (+ ``lidar_mask`` ``(B, M)``) and a camera branch, also the depth loss."""
        b = output.bev.shape[0]
        targets = as_targets(gt, self.config, b, output.bev.device)
        depth_target = None
        if lidar is not None and output.depth_logits is not None:
            check_shape(lidar, "lidar", (b, None, 6))
            if lidar_mask is not None:
                check_shape(lidar_mask, "lidar_mask", (b, lidar.shape[1]))
            depth_target = camera_depth_targets(lidar, lidar_mask, output.intrinsics, output.cam_to_ego, self.config)
        return detection_losses(output.head, targets, self.config.head, output.depth_logits, depth_target)

    def forward(
        self,
        x: StudentInputs,
        gt: Sequence[Boxes] | HeadTargets | None = None,
        lidar: torch.Tensor | None = None,
        lidar_mask: torch.Tensor | None = None,
    ) -> DetectionLosses | list[Detections]:
        """Training mode: :class:`DetectionLosses` (``gt`` required). Eval mode: one :class:`Detections` per
        sample (``gt`` and ``lidar`` ignored)."""
        out = self.features(x)
        if self.training:
            gt = require(gt, "gt", "a Student in training mode returns losses")
            return self.loss(out, gt, lidar, lidar_mask)
        return decode(out.head, self.config)
