"""Inference API: ``Detector.from_checkpoint(path, device).detect(frame) -> Boxes`` (no ROS import).

The detector takes :class:`~imkd_ros.types.Frame` objects (what the reader, the bag pipelines and the ROS node
produce), batches them with :func:`imkd_ros.data.dataset.collate_frames`, runs the network and returns boxes in the
ego frame of each frame (``Boxes.frame == "ego"``) with labels, scores and velocity (m/s, ego frame).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from imkd_ros.checkpoint import Checkpoint, load_checkpoint
from imkd_ros.data.dataset import Batch, collate_frames
from imkd_ros.model import ModelConfig, Student, Teacher
from imkd_ros.types import Boxes, Frame

__all__ = ["Detector", "resolve_device", "model_inputs"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` falls back to the CPU with a warning when CUDA is not available."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("CUDA requested but not available: running on the CPU", RuntimeWarning, stacklevel=2)
        return torch.device("cpu")
    return dev


def model_inputs(model: Student | Teacher, batch: Batch) -> dict[str, torch.Tensor | None]:
    """The keyword inputs of ``model.features`` / ``model.forward`` from a :class:`Batch` (on the batch's device)."""
    if isinstance(model, Teacher):
        return {"lidar": batch.lidar, "lidar_mask": batch.lidar_mask}
    return {
        "images": batch.images,
        "intrinsics": batch.intrinsics,
        "cam_to_ego": batch.cam_to_ego,
        "radar": batch.radar,
        "radar_mask": batch.radar_mask,
    }


class Detector:
    """A trained Student (or Teacher) ready for inference.

    Args:
        model: the network (moved to ``device`` and put in eval mode here).
        device: ``"cpu"`` or ``"cuda"`` (falls back to the CPU with a warning).
        score_threshold: boxes below are dropped (None: the model config's decode threshold).
    """

    def __init__(
        self, model: Student | Teacher, device: str | torch.device = "cpu", score_threshold: float | None = None
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config: ModelConfig = model.config
        self.score_threshold = score_threshold
        self.checkpoint: Checkpoint | None = None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", score_threshold: float | None = None
    ) -> Detector:
        """Load a checkpoint (``weights_only=True``); raises :class:`~imkd_ros.checkpoint.CheckpointError` with the
        path when it is missing or corrupt."""
        ckpt = load_checkpoint(path)
        det = cls(ckpt.build("cpu"), device, score_threshold)
        det.checkpoint = ckpt
        return det

    @property
    def is_teacher(self) -> bool:
        return isinstance(self.model, Teacher)

    @torch.inference_mode()
    def detect_batch(self, frames: Sequence[Frame]) -> list[Boxes]:
        """Boxes (ego frame of each frame) for a batch of frames (same image size)."""
        if not frames:
            return []
        batch = collate_frames(list(frames)).to(self.device)
        detections = self.model(**model_inputs(self.model, batch))
        out = []
        for det in detections:
            boxes = det.to_boxes()
            if self.score_threshold is not None:
                boxes = boxes[boxes.score >= self.score_threshold]
            out.append(boxes)
        return out

    def detect(self, frame: Frame) -> Boxes:
        """Boxes in the ego frame of ``frame``."""
        return self.detect_batch([frame])[0]
