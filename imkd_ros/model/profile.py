"""Latency and size measurement of the detectors, plus synthetic example inputs (for benchmarks and tests).

``time_forward(model, inputs)`` runs ``model(inputs)`` in eval mode under ``torch.inference_mode`` and returns
wall-clock statistics in milliseconds. Measure, do not assert: timings belong in benchmarks (``imkd bench``),
never in unit tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from imkd_ros.model.config import ModelConfig
from imkd_ros.model.inputs import ModelInputs, StudentInputs, TeacherInputs
from imkd_ros.model.student import Student
from imkd_ros.model.teacher import Teacher

__all__ = ["time_forward", "count_parameters", "front_camera", "ring_cameras", "example_inputs", "benchmark_models"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def time_forward(
    model: nn.Module | Callable[..., object],
    inputs: ModelInputs,
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> dict[str, float]:
    """Time ``model(inputs)``.

    Args:
        model: a module (put in eval mode for the measurement, its mode restored after) or any callable.
        inputs: the model's inputs, already on its device.
        repeats: timed calls; warmup: untimed calls first.
        threads: ``torch.set_num_threads`` during the measurement (restored after); None: leave as is.

    Returns:
        ``{"median_ms", "mean_ms", "min_ms", "max_ms", "p90_ms", "repeats", "threads"}``. CUDA work is
        synchronised before each clock read.
    """
    if repeats < 1:
        raise ValueError(f"time_forward: repeats must be >= 1, got {repeats}")
    old_threads = torch.get_num_threads()
    was_training = model.training if isinstance(model, nn.Module) else None
    if threads is not None:
        torch.set_num_threads(threads)
    if isinstance(model, nn.Module):
        model.eval()
    cuda = any(t.is_cuda for t in inputs.tensors().values() if isinstance(t, torch.Tensor))
    sync = torch.cuda.synchronize if cuda else None
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                if sync:
                    sync()
                start = time.perf_counter()
                model(inputs)
                if sync:
                    sync()
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
        if was_training is not None:
            model.train(was_training)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": times[0],
        "max_ms": times[-1],
        "p90_ms": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "repeats": float(repeats),
        "threads": float(torch.get_num_threads() if threads is None else threads),
    }


def front_camera(image_size: tuple[int, int] = (1600, 900)) -> tuple[torch.Tensor, torch.Tensor]:
    """A nuScenes-CAM_FRONT-like camera for ``image_size`` ``(W, H)``: fx = fy = 1266 * W / 1600, principal point
    at the image centre, mounted at (1.7, 0, 1.5) m looking along ego +x.

    Returns:
        intrinsics ``(3, 3)`` and cam_to_ego ``(4, 4)`` float32.
    """
    w, h = image_size
    f = 1266.0 * w / 1600.0
    k = torch.tensor([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    c2e = torch.eye(4)
    c2e[:3, :3] = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # cam z -> ego x, x -> -y
    c2e[:3, 3] = torch.tensor([1.7, 0.0, 1.5])
    return k, c2e


def ring_cameras(cameras: int, image_size: tuple[int, int] = (1600, 900)) -> tuple[torch.Tensor, torch.Tensor]:
    """``cameras`` copies of :func:`front_camera` turned about the ego z axis by ``360 / cameras`` degrees each
    (camera 0 looks forward): intrinsics ``(N, 3, 3)`` and cam_to_ego ``(N, 4, 4)`` float32."""
    k, c2e = front_camera(image_size)
    ks, c2es = [], []
    for i in range(cameras):
        a = 2.0 * np.pi * i / cameras
        turn = torch.eye(4)
        turn[:2, :2] = torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=torch.float32)
        ks.append(k)
        c2es.append(turn @ c2e)
    return torch.stack(ks), torch.stack(c2es)


def example_inputs(
    config: ModelConfig,
    batch_size: int = 1,
    image_size: tuple[int, int] | None = None,
    num_radar: int = 300,
    num_lidar: int = 30000,
    seed: int = 0,
    device: torch.device | str | None = None,
    cameras: int = 1,
) -> ModelInputs:
    """Random inputs of realistic shapes for the model of ``config``.

    Students get ``images`` ``(B, N, 3, H, W)`` of N = ``cameras`` cameras around the ego (:func:`ring_cameras`;
    ``image_size`` default: the model input size, so no resize), ``intrinsics``, ``cam_to_ego``, ``radar``
    ``(B, num_radar, 7)`` and ``radar_mask``; the teacher gets ``lidar`` ``(B, num_lidar, 6)`` and ``lidar_mask``.
    Points lie inside the BEV grid.
    """
    rng = np.random.default_rng(seed)
    g = config.grid
    b = batch_size

    def points(n: int, extra: np.ndarray) -> torch.Tensor:
        x = rng.uniform(g.x_range[0], g.x_range[1], (b, n, 1))
        y = rng.uniform(g.y_range[0], g.y_range[1], (b, n, 1))
        z = rng.uniform(-1.0, 2.0, (b, n, 1))
        return torch.from_numpy(np.concatenate([x, y, z, extra], axis=-1).astype(np.float32)).to(device)

    if config.is_teacher:
        extra = np.concatenate(
            [
                rng.uniform(0, 255, (b, num_lidar, 1)),
                rng.integers(0, 32, (b, num_lidar, 1)),
                rng.uniform(0, 0.5, (b, num_lidar, 1)),
            ],
            axis=-1,
        )
        return TeacherInputs(points(num_lidar, extra), torch.ones(b, num_lidar, dtype=torch.bool, device=device))
    out: dict[str, torch.Tensor] = {}
    if "camera" in config.modalities:
        size = tuple(config.image.input_size) if image_size is None else image_size
        k, c2e = ring_cameras(cameras, size)
        img = torch.from_numpy(rng.random((b, cameras, 3, size[1], size[0]), dtype=np.float32))
        out.update(
            images=img.to(device),
            intrinsics=k.expand(b, cameras, 3, 3).to(device),
            cam_to_ego=c2e.expand(b, cameras, 4, 4).to(device),
        )
    if "radar" in config.modalities:
        extra = np.concatenate(
            [
                rng.normal(5, 8, (b, num_radar, 1)),
                rng.normal(0, 3, (b, num_radar, 2)),
                rng.uniform(0, 0.5, (b, num_radar, 1)),
            ],
            axis=-1,
        )
        out.update(radar=points(num_radar, extra), radar_mask=torch.ones(b, num_radar, dtype=torch.bool, device=device))
    return StudentInputs(**out)


def benchmark_models(
    configs: Mapping[str, ModelConfig] | None = None,
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = 2,
) -> list[dict[str, float | str]]:
    """Latency (batch 1, :func:`example_inputs` at the model input size, full eval ``forward`` including
    decoding) and parameter count of each model.

    Args:
        configs: name -> config; default: the default student, its camera-only and radar-only ablations and the
            teacher.

    Returns:
        one row per model: ``name``, ``params`` and the :func:`time_forward` statistics.
    """
    if configs is None:
        configs = {
            "student": ModelConfig.default(),
            "camera_only": ModelConfig.default(("camera",)),
            "radar_only": ModelConfig.default(("radar",)),
            "teacher": ModelConfig.default(("lidar",)),
        }
    rows: list[dict[str, float | str]] = []
    for name, cfg in configs.items():
        model = Teacher(config=cfg) if cfg.is_teacher else Student(config=cfg)
        model.eval()
        inputs = example_inputs(cfg)
        row: dict[str, float | str] = {"name": name, "params": float(count_parameters(model))}
        row.update(time_forward(model, inputs, repeats=repeats, warmup=warmup, threads=threads))
        rows.append(row)
    return rows
