"""Detector networks: the camera-radar student (and its camera-only / radar-only ablations) and the LiDAR teacher,
with their head targets, losses and decoding. Pure PyTorch; no ROS, no torchvision.

Start from :class:`ModelConfig` (``default()`` / ``tiny()``, ``to_dict()`` / ``from_dict()``), build
:class:`Student` or :class:`Teacher`, call ``forward`` (training: losses; eval: :class:`Detections`) or
``features`` (every intermediate BEV map, for distillation).
"""

from __future__ import annotations

from imkd_ros.model.config import (
    BEVConfig,
    CameraConfig,
    DecodeConfig,
    GridConfig,
    HeadConfig,
    ImageConfig,
    LidarConfig,
    ModelConfig,
    RadarConfig,
)
from imkd_ros.model.decode import Detections, circle_nms, decode, detections_to_boxes
from imkd_ros.model.errors import ModelConfigError, ModelError, ModelInputError
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.inputs import ModelInputs, StudentInputs, TeacherInputs
from imkd_ros.model.losses import DetectionLosses
from imkd_ros.model.profile import benchmark_models, count_parameters, example_inputs, time_forward
from imkd_ros.model.student import Student, StudentOutput
from imkd_ros.model.targets import HeadTargets, build_targets
from imkd_ros.model.teacher import Teacher, TeacherOutput

__all__ = [
    "BEVConfig",
    "CameraConfig",
    "DecodeConfig",
    "GridConfig",
    "HeadConfig",
    "ImageConfig",
    "LidarConfig",
    "ModelConfig",
    "ModelInputs",
    "StudentInputs",
    "TeacherInputs",
    "RadarConfig",
    "Detections",
    "circle_nms",
    "decode",
    "detections_to_boxes",
    "ModelConfigError",
    "ModelError",
    "ModelInputError",
    "HeadOutput",
    "DetectionLosses",
    "benchmark_models",
    "count_parameters",
    "example_inputs",
    "time_forward",
    "Student",
    "StudentOutput",
    "HeadTargets",
    "build_targets",
    "Teacher",
    "TeacherOutput",
]
