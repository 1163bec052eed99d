"""Input checks shared by the detectors: a wrong shape raises :class:`ModelInputError` naming the input."""

from __future__ import annotations

import torch

from imkd_ros.model.errors import ModelInputError

__all__ = ["check_shape", "require"]


def require(value: torch.Tensor | None, name: str, why: str) -> torch.Tensor:
    """``value``, or :class:`ModelInputError` saying ``name`` is missing and ``why`` it is needed."""
    if value is None:
        raise ModelInputError(f"{name} is required: {why}")
    return value


def check_shape(value: torch.Tensor, name: str, expected: tuple[int | None, ...]) -> None:
    """Raise :class:`ModelInputError` unless ``value`` is a tensor of ``expected`` shape (None: any size).

    Example: ``check_shape(radar, "radar", (batch, None, 7))``.
    """
    if not isinstance(value, torch.Tensor):
        raise ModelInputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    shape = tuple(value.shape)
    ok = len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ModelInputError(f"{name} must have shape {want}, got {shape}")
