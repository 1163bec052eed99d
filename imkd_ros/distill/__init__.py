"""IMKD's intensity-aware multi-level distillation from the LiDAR teacher into the camera-radar student.

* :mod:`~imkd_ros.distill.intensity`: the intensity maps (LiDAR density, reflectance, teacher activation).
* :mod:`~imkd_ros.distill.cache`: the teacher-target format (versioned) and its sharded, checksummed cache.
* :mod:`~imkd_ros.distill.targets`: running the teacher once over a split into a cache (``imkd teacher-targets``).
* :mod:`~imkd_ros.distill.config`, :mod:`~imkd_ros.distill.losses`, :mod:`~imkd_ros.distill.adapters`,
  :mod:`~imkd_ros.distill.bank`: the three stages' losses and what the training loop (``imkd train student
  --targets CACHE --kd ...``) needs; :mod:`~imkd_ros.distill.pseudo`: pseudo-labels of unlabelled frames, and the
  student as the training loop sees it with teacher targets (distillation, pseudo-labels or both).
* :mod:`~imkd_ros.apps.ablate`: the label-scarce distillation study (``imkd ablate``); import it directly (it
  imports the training loop).

Only :mod:`~imkd_ros.distill.cache` and :mod:`~imkd_ros.distill.config` are needed to read or write targets; nothing
here imports ROS.
"""

from __future__ import annotations

from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetBank, TargetsBatch
from imkd_ros.distill.cache import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CacheHeader,
    TargetCache,
    TargetCacheWriter,
    TargetGrid,
    TeacherTargets,
)
from imkd_ros.distill.config import STAGES, DistillConfig, parse_stages
from imkd_ros.distill.errors import DistillConfigError, DistillError, TargetCacheError
from imkd_ros.distill.intensity import (
    INTENSITY_NAMES,
    IntensitySpec,
    combine_intensity,
    draw_intensity,
    intensity_maps,
    non_ground_mask,
    structure_maps,
    teacher_intensity,
)
from imkd_ros.distill.losses import (
    DistillLosses,
    camera_gate_target,
    channel_kl,
    distill_losses,
    feature_mse,
    gate_kl,
    heatmap_kl,
    object_neighbourhood,
    radar_feature_loss,
    radar_gate_target,
    teacher_foreground,
    teacher_object_count,
)
from imkd_ros.distill.targets import CacheBuildReport, build_target_cache, compute_teacher_targets

__all__ = [
    "DistillHeads",
    "TargetBank",
    "TargetsBatch",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CacheHeader",
    "TargetCache",
    "TargetCacheWriter",
    "TargetGrid",
    "TeacherTargets",
    "STAGES",
    "DistillConfig",
    "parse_stages",
    "DistillConfigError",
    "DistillError",
    "TargetCacheError",
    "INTENSITY_NAMES",
    "IntensitySpec",
    "combine_intensity",
    "draw_intensity",
    "intensity_maps",
    "non_ground_mask",
    "structure_maps",
    "teacher_intensity",
    "DistillLosses",
    "channel_kl",
    "distill_losses",
    "feature_mse",
    "object_neighbourhood",
    "radar_feature_loss",
    "teacher_foreground",
    "teacher_object_count",
    "camera_gate_target",
    "radar_gate_target",
    "gate_kl",
    "heatmap_kl",
    "CacheBuildReport",
    "build_target_cache",
    "compute_teacher_targets",
]
