"""Mixed-precision training: the network in bfloat16 (``torch.autocast``), every loss in float32.

``imkd train --precision bf16`` runs the model's forward pass under ``torch.autocast(dtype=torch.bfloat16)``: the
convolutions and matrix products compute in bfloat16 (on CPUs with AVX512-BF16/AMX about 1.6-1.7x faster per training
step of the default student, ``imkd bench --only train``), the weights, gradients and optimiser
state stay float32. What must not lose precision leaves autocast:

- every loss (:func:`full_precision` on :meth:`Student.loss <imkd_ros.model.student.Student.loss>`,
  :meth:`Teacher.loss <imkd_ros.model.teacher.Teacher.loss>` and the distillation losses) sees its inputs cast to
  float32 and runs with autocast off: focal terms ``log(1 - p)`` and depth targets need float32;
- BEV pooling sums (:func:`imkd_ros.model.bev_scatter.scatter_sum`) accumulate in float32.

Inference (detect, ONNX export) never uses this module's autocast: a checkpoint trained with ``bf16`` holds float32
weights like any other.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any, TypeVar

import torch

__all__ = ["PRECISIONS", "float32", "full_precision", "training_autocast"]

#: ``TrainConfig.precision`` values: float32 throughout, or bfloat16 autocast of the forward pass.
PRECISIONS = ("fp32", "bf16")

F = TypeVar("F", bound=Callable[..., Any])


def float32(x: Any) -> Any:
    """``x`` with every floating-point tensor in it cast to float32: tensors, dataclass fields, lists, tuples and
    dict values, recursively (modules and everything else as they are). Casting keeps the autograd graph."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x
    if isinstance(x, torch.nn.Module):
        return x
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        changes = {f.name: float32(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init}
        return dataclasses.replace(x, **changes)
    if isinstance(x, list):
        return [float32(v) for v in x]
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(float32(v) for v in x)
    if isinstance(x, dict):
        return {k: float32(v) for k, v in x.items()}
    return x


def _autocast_off() -> AbstractContextManager[Any]:
    stack = ExitStack()
    for device in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device):
            stack.enter_context(torch.autocast(device_type=device, enabled=False))
    return stack


def full_precision(fn: F) -> F:
    """Decorate a loss: it runs with autocast off and its arguments cast by :func:`float32`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
            return fn(*args, **kwargs)
        with _autocast_off():
            return fn(*float32(args), **float32(kwargs))

    return wrapper  # type: ignore[return-value]


def training_autocast(precision: str, device: torch.device | str) -> AbstractContextManager[Any]:
    """The context a training step's forward pass and losses run in: bfloat16 autocast on ``device`` for
    ``"bf16"``, nothing for ``"fp32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
