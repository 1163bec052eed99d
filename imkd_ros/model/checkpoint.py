"""Checkpoint files: one format for teacher and student, loadable with ``torch.load(..., weights_only=True)``.

A checkpoint is a plain dict of tensors and JSON-like values (nothing pickled beyond that):

* ``format``: :data:`CHECKPOINT_FORMAT`.
* ``kind``: ``"teacher"`` or ``"student"``.
* ``model_config``: :meth:`imkd_ros.model.ModelConfig.to_dict` (so loading needs nothing else).
* ``state_dict``: the model weights.
* ``meta``: how it was made (data, command, seed, epochs, wall time, machine) and its metrics.
* optionally ``optimizer`` / ``scheduler`` / ``epoch`` for ``--resume`` (training checkpoints only).
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imkd_ros.core.atomic import atomic_write
from imkd_ros.core.errors import ImkdError
from imkd_ros.model import ModelConfig, Student, Teacher

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "build_model"]

CHECKPOINT_FORMAT = "imkd-checkpoint-1"


class CheckpointError(ImkdError):
    """A checkpoint file is missing, unreadable, or not an imkd checkpoint."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring)."""

    kind: str
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] = field(default_factory=dict)

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        """The model with these weights, in eval mode, on ``device``."""
        model = build_model(self.config)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def build_model(config: ModelConfig) -> Student | Teacher:
    """A fresh Teacher (config modalities ``("lidar",)``) or Student (any other modalities)."""
    return Teacher(config=config) if config.is_teacher else Student(config=config)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: ModelConfig,
    meta: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (:func:`imkd_ros.core.atomic.atomic_write`: temp file, fsync, rename), so a kill at
    any moment leaves the previous file or the complete new one, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    blob: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "kind": "teacher" if config.is_teacher else "student",
        "model_config": config.to_dict(),
        "state_dict": state,
        "meta": meta or {},
    }
    if training_state:
        blob["training_state"] = training_state
    with atomic_write(path, "wb") as f:
        torch.save(blob, f)
    return path


_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _load_error(path: Path, exc: Exception) -> CheckpointError:
    """The one-line error of a checkpoint torch refused. A file holding Python objects beyond tensors and plain
    values is refused as unsafe (unpickling them can run arbitrary code): the message says so and, unlike torch's,
    never suggests loading it with ``weights_only=False``."""
    text = str(exc)
    unsafe = _UNSAFE_GLOBAL.search(text)
    if isinstance(exc, pickle.UnpicklingError) and (unsafe or "Weights only load failed" in text):
        what = f" (e.g. {unsafe.group(1)})" if unsafe else ""
        return CheckpointError(
            f"checkpoint {path} refused: it holds Python objects beyond tensors and plain values{what}; unpickling "
            "them could execute code, so it is not loaded. Use a checkpoint written by `imkd train` "
            "(a file from an untrusted source must never be loaded with its objects)"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return CheckpointError(f"checkpoint {path} is corrupt or not a torch file (truncated?): {first[:200]}")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing file, not a torch file (corrupt/truncated), a file holding Python objects beyond
            tensors and plain values (refused as unsafe: possible code execution), or not in
            :data:`CHECKPOINT_FORMAT`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a truncated, foreign or unsafe file
        raise _load_error(path, exc) from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an imkd checkpoint (expected format {CHECKPOINT_FORMAT})")
    try:
        config = ModelConfig.from_dict(blob["model_config"])
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path}: bad model_config: {exc}") from exc
    return Checkpoint(blob["kind"], config, blob["state_dict"], blob.get("meta", {}), blob.get("training_state", {}))
