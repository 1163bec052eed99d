"""Learning from unlabelled drives through the LiDAR teacher: pseudo-labels and the mixed labelled/unlabelled loss.

A collection car records camera, radar and LiDAR; a few drives are annotated, most are not. The teacher's targets of
every keyframe (labelled or not) are cached once (``imkd teacher-targets --split synth_unlabelled`` or ``imkd bag
teacher-targets`` on a bag of the drives); ``imkd train student --targets CACHE [--targets CACHE2] --unlabelled-split
synth_unlabelled [--pseudo-label-threshold 0.3] [--pseudo-label-weight 1.0]`` then trains on both in one run.

Mixing: the labelled frames (``--train-split``) and the unlabelled frames (``--unlabelled-split``) form one pool of
frames, shuffled together by the loop's sampler (``RandomSampler``, or ``DistributedSampler`` under torchrun, whose
shards then mix both kinds). An epoch is one pass over the pool, so a batch holds on average the pool's share of
each kind (with 6 labelled and 24 unlabelled scenes, 1 frame in 5 is labelled); data order depends only on (seed,
epoch), as without unlabelled frames, so ``--resume`` stays exact. With no unlabelled frame the pool, the data order
and every loss are those of a labelled-only run, bit for bit.

Per-frame loss masking (:class:`SemiSupervisedStudent`), one student forward pass over the whole batch:

* labelled frames: detection loss against their annotations (and the LiDAR depth loss), normalised over those
  frames; their pseudo-labels are never built.
* unlabelled frames: detection loss against the teacher's confident boxes (:func:`pseudo_labels`: score >=
  ``threshold``), normalised over those frames, with the velocity regression masked (the radar student measures
  velocity better than the LiDAR teacher: pseudo-label velocities are NaN, which :func:`imkd_ros.model.targets.
  build_targets` masks); their annotations, if the scene has any, are never read (a labelled scene can be listed
  as unlabelled to simulate label scarcity). Their LiDAR depth loss stays (a sensor, not a label).
* every frame: the distillation losses of the enabled stages against its cached teacher targets.

``total = (n_l / B) * det_labelled + (n_u / B) * weight * det_pseudo + kd`` for a batch of ``B = n_l + n_u`` frames:
each frame weighs the same in the detection term whatever its kind (``weight`` scales the unlabelled ones); a
batch without unlabelled frames gives exactly ``det + kd``, the labelled-only loss (a distillation run without
unlabelled frames trains through the same module, with no frame flagged). Without distillation stages (``--kd
none``) the KD term is absent: pseudo-label self-training alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from imkd_ros.core.types import Boxes
from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetsBatch
from imkd_ros.distill.cache import TeacherTargets
from imkd_ros.distill.config import DistillConfig
from imkd_ros.distill.errors import DistillConfigError
from imkd_ros.distill.losses import DistillLosses, distill_losses
from imkd_ros.model.decode import Detections
from imkd_ros.model.doppler import refine_velocity, returns_in_boxes
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.inputs import StudentInputs
from imkd_ros.model.losses import DetectionLosses
from imkd_ros.model.student import Student, StudentOutput
from imkd_ros.model.targets import HeadTargets, build_targets

__all__ = ["PseudoLabelConfig", "pseudo_labels", "SemiSupervisedLosses", "SemiSupervisedStudent"]


@dataclass(frozen=True)
class PseudoLabelConfig:
    """What unlabelled frames a student run learns from, and how.

    Attributes:
        split: the split of the unlabelled frames (e.g. ``"synth_unlabelled"``); its samples must be in the
            teacher-target cache(s) and not in the training split.
        threshold: teacher boxes with ``score >= threshold`` are pseudo-labels (in [0, 1]; at least the cache's
            decoding threshold, :attr:`imkd_ros.distill.cache.CacheHeader.min_box_score`).
        weight: weight of the unlabelled frames' detection loss relative to the labelled ones' (>= 0).
        soft: the heatmap target of an unlabelled frame is ``max(gaussian peaks of the pseudo-labels, teacher
            heatmap)`` instead of the peaks alone: an object the teacher saw with a score under ``threshold`` is
            no longer a full negative for the focal loss (its negative weight ``(1 - y)^4`` shrinks with the
            teacher's confidence ``y``); positives stay the pseudo-labels' centre cells.
        velocity: pseudo-labels keep a velocity where the frame's radar has returns in the box: the teacher's
            velocity refined by their Doppler (:mod:`imkd_ros.model.doppler`; on the large validation set the
            shipped teacher so refined has mAVE 0.22 in the students' coverage, the student's network alone 0.50);
            boxes without returns keep a NaN (masked) velocity. Off: every pseudo-label velocity is masked.
        rotation: pseudo-labels teach the teacher's yaw; off: their rotation regression is masked (a teacher
            whose yaw is worse than the labelled frames teach).
    """

    split: str
    threshold: float = 0.3
    weight: float = 1.0
    soft: bool = False
    velocity: bool = False
    rotation: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.split, str) or not self.split.strip():
            raise DistillConfigError(f"PseudoLabelConfig.split must name a split, got {self.split!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise DistillConfigError(f"the pseudo-label threshold must be in [0, 1], got {self.threshold}")
        if not float(self.weight) >= 0.0:
            raise DistillConfigError(f"the pseudo-label weight must be >= 0, got {self.weight}")
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "weight", float(self.weight))
        object.__setattr__(self, "soft", bool(self.soft))
        object.__setattr__(self, "velocity", bool(self.velocity))
        object.__setattr__(self, "rotation", bool(self.rotation))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PseudoLabelConfig:
        return cls(
            str(data["split"]),
            float(data["threshold"]),
            float(data["weight"]),
            bool(data.get("soft", False)),
            bool(data.get("velocity", False)),
            bool(data.get("rotation", True)),
        )


def pseudo_labels(
    targets: TeacherTargets, threshold: float, radar: np.ndarray | None = None, rotation: bool = True
) -> Boxes:
    """The pseudo-labels of one frame: the teacher's cached boxes with ``score >= threshold`` (ego frame of the
    frame's reference time). Velocity: with the frame's ``radar`` (``(N, 7)`` RADAR_FEATURES), the teacher's refined
    by the Doppler of the returns in each box, NaN (masked in training) for boxes without returns; without
    ``radar`` NaN for all, so that the student's velocity regression is not trained on them. Without ``rotation``
    every yaw is NaN (the rotation regression is masked on them too)."""
    boxes = targets.confident_boxes(threshold)
    if radar is None:
        boxes = replace(boxes, velocity=np.full_like(boxes.velocity, np.nan))
    else:
        refined = refine_velocity(boxes, radar)
        seen = returns_in_boxes(boxes, radar) > 0
        boxes = replace(boxes, velocity=np.where(seen[:, None], refined.velocity, np.nan))
    if not rotation:
        boxes = replace(boxes, yaw=np.full_like(boxes.yaw, np.nan))
    return boxes


@dataclass(frozen=True)
class SemiSupervisedLosses:
    """The losses of a batch mixing labelled and unlabelled frames (see the module docstring for ``total``).

    Attributes:
        detection: the labelled frames' detection losses (None: no labelled frame in the batch).
        pseudo: the unlabelled frames' detection losses against pseudo-labels (None: none in the batch).
        distill: the distillation losses over every frame (None: no stage enabled).
        total: what the optimiser minimises.
    """

    detection: DetectionLosses | None
    pseudo: DetectionLosses | None
    distill: DistillLosses | None
    total: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Labelled detection parts and ``det_total``, pseudo-label parts ``pl_*`` and ``pl_total``, the ``kd_*``
        parts, ``total`` (only the parts the batch had, for logging)."""
        out: dict[str, torch.Tensor] = {}
        if self.detection is not None:
            out.update({k: v for k, v in self.detection.as_dict().items() if k != "total"})
            out["det_total"] = self.detection.total
        if self.pseudo is not None:
            out.update({f"pl_{k}": v for k, v in self.pseudo.as_dict().items()})
        if self.distill is not None:
            out.update(self.distill.as_dict())
        out["total"] = self.total
        return out


def _select(out: StudentOutput, index: torch.Tensor) -> StudentOutput:
    """The frames ``index`` of a student output, with what :meth:`Student.loss` reads (the fuser's gates are
    dropped)."""
    picked: dict[str, Any] = {}
    for f in fields(out):
        v = getattr(out, f.name)
        if isinstance(v, torch.Tensor):
            picked[f.name] = v.index_select(0, index)
        elif isinstance(v, HeadOutput):
            picked[f.name] = HeadOutput(v.heatmap.index_select(0, index), v.regression.index_select(0, index))
        else:
            picked[f.name] = None
    return StudentOutput(**picked)


class SemiSupervisedStudent(nn.Module):
    """A :class:`Student` (and the adapters of the enabled distillation stages) trained on batches that mix
    labelled and pseudo-labelled frames: the student as the training loop sees it whenever it trains with teacher
    targets, one ``nn.Module`` (so ``DistributedDataParallel`` can wrap it and sync the adapters' gradients too)
    registering the student, then the adapters. Only ``.student`` is shipped. A distillation run without unlabelled
    frames is the case without ``pseudo`` flags: its losses are ``det + kd`` (module docstring).

    Args:
        student: the network that is shipped.
        heads: the adapters of ``config``'s stages (None with ``config``).
        config: distillation stages and weights (None: no distillation).
        pseudo_weight: :attr:`PseudoLabelConfig.weight`.
        soft: :attr:`PseudoLabelConfig.soft` (the forward pass then needs the batch's teacher targets).
    """

    def __init__(
        self,
        student: Student,
        heads: DistillHeads | None,
        config: DistillConfig | None,
        pseudo_weight: float = 1.0,
        soft: bool = False,
    ) -> None:
        super().__init__()
        if (heads is None) != (config is None):
            raise DistillConfigError("SemiSupervisedStudent: give both the adapters and their config, or neither")
        self.student = student
        self.heads = heads
        self.config = config
        self.pseudo_weight = float(pseudo_weight)
        self.soft = bool(soft)

    def forward(
        self,
        x: StudentInputs,
        gt: Sequence[Boxes] | None = None,
        lidar: torch.Tensor | None = None,
        lidar_mask: torch.Tensor | None = None,
        targets: TargetsBatch | None = None,
        pseudo: Sequence[bool] | None = None,
    ) -> SemiSupervisedLosses | list[Detections]:
        """Training mode: :class:`SemiSupervisedLosses`. ``gt`` holds one :class:`Boxes` per frame (ego frame):
        the annotations of a labelled frame, the :func:`pseudo_labels` of a frame with ``pseudo[i]`` True
        (``pseudo`` None: every frame labelled); ``targets`` the batch's teacher targets (needed with
        distillation). Eval mode: the student's detections.

        Shapes: as :meth:`Student.features` (``x``: :class:`StudentInputs`) and ``lidar (B, M, 6)``.
        """
        if not self.training:
            return self.student(x)
        if gt is None or ((self.config is not None or self.soft) and targets is None):
            raise ValueError(
                "SemiSupervisedStudent in training mode needs gt (and the teacher targets with KD or soft targets)"
            )
        b = len(gt)
        flags = [bool(p) for p in pseudo] if pseudo is not None else [False] * b
        if len(flags) != b:
            raise ValueError(f"SemiSupervisedStudent: {len(flags)} pseudo flags for {b} frames")
        out = self.student.features(x)
        n_u = sum(flags)
        det = pl = None
        if n_u == 0:
            det = self.student.loss(out, gt, lidar, lidar_mask)
            det_total = det.total
        elif n_u == b:
            pl = self.student.loss(out, self._pseudo_targets(gt, targets, list(range(b))), lidar, lidar_mask)
            det_total = self.pseudo_weight * pl.total
        else:
            parts = []
            for want in (False, True):
                idx = [i for i, f in enumerate(flags) if f == want]
                index = torch.tensor(idx, dtype=torch.long, device=out.bev.device)
                sub_lidar = None if lidar is None else lidar.index_select(0, index)
                sub_mask = None if lidar_mask is None else lidar_mask.index_select(0, index)
                sub_gt = self._pseudo_targets(gt, targets, idx) if want else [gt[i] for i in idx]
                parts.append(self.student.loss(_select(out, index), sub_gt, sub_lidar, sub_mask))
            det, pl = parts
            det_total = ((b - n_u) / b) * det.total + (n_u / b) * self.pseudo_weight * pl.total
        if self.config is None:
            return SemiSupervisedLosses(det, pl, None, det_total)
        kd = distill_losses(out, targets, self.heads, self.config, self.student.config)
        return SemiSupervisedLosses(det, pl, kd, det_total + kd.total)

    def _pseudo_targets(
        self, gt: Sequence[Boxes], targets: TargetsBatch | None, idx: Sequence[int]
    ) -> Sequence[Boxes] | HeadTargets:
        """The frames ``idx``'s pseudo-labels, or with :attr:`soft` their head targets with the heatmap raised to
        the teacher's (see :class:`PseudoLabelConfig`)."""
        boxes = [gt[i] for i in idx]
        if not self.soft:
            return boxes
        assert targets is not None
        device = targets.heatmap.device
        head = build_targets(boxes, self.student.config, device)
        teacher = targets.heatmap.index_select(0, torch.tensor(list(idx), dtype=torch.long, device=device))
        if teacher.shape != head.heatmap.shape:
            raise DistillConfigError(
                f"soft pseudo-labels: teacher heatmap {tuple(teacher.shape)} does not match the student's heatmap "
                f"targets {tuple(head.heatmap.shape)} (classes or head grid differ)"
            )
        return replace(head, heatmap=torch.maximum(head.heatmap, teacher.to(head.heatmap.dtype)))
