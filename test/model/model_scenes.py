"""Small synthetic scenes for the model tests (no files, no downloads)."""

from __future__ import annotations

import numpy as np
import torch

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.inputs import ModelInputs
from imkd_ros.model.profile import example_inputs

__all__ = ["scene_boxes", "scene_batch", "overfit"]


def scene_boxes(seed: int) -> Boxes:
    """Three boxes (car, truck, pedestrian) in front of the ego vehicle."""
    rng = np.random.default_rng(seed)
    centers = np.array([[12.0, -4.0, 0.8], [25.0, 6.0, 1.5], [9.0, 3.0, 0.9]]) + rng.normal(0, 0.5, (3, 3))
    return Boxes(
        center=centers,
        size=[[1.9, 4.5, 1.6], [2.8, 9.0, 3.2], [0.7, 0.7, 1.8]],
        yaw=rng.uniform(-np.pi, np.pi, 3),
        velocity=[[3.0, 0.0], [np.nan, np.nan], [0.0, 1.0]],
        label=[CLASSES.index("car"), CLASSES.index("truck"), CLASSES.index("pedestrian")],
        score=np.ones(3),
    )


def scene_batch(config: ModelConfig, batch_size: int = 2, seed: int = 0) -> tuple[ModelInputs, list[Boxes]]:
    """Inputs for ``config``'s model (radar and LiDAR points placed on the boxes) and the boxes."""
    inputs = example_inputs(config, batch_size=batch_size, num_radar=32, num_lidar=512, seed=seed)
    gt = [scene_boxes(seed + i) for i in range(batch_size)]
    gen = torch.Generator().manual_seed(seed)
    for key, n in (("radar", 32), ("lidar", 512)):
        pts = getattr(inputs, key, None)
        if pts is None:
            continue
        for b, boxes in enumerate(gt):
            centres = torch.from_numpy(boxes.center).float()
            pick = torch.arange(n // 2) % len(boxes)
            pts[b, : n // 2, :3] = centres[pick] + 0.3 * torch.randn(n // 2, 3, generator=gen)
    return inputs, gt


def overfit(model: torch.nn.Module, inputs: ModelInputs, gt: list[Boxes], steps: int = 20) -> tuple[float, float]:
    """Train ``model`` on one fixed batch with Adam (lr 3e-3); return the total loss of the first and last step."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        total = model(inputs, gt=gt).total
        total.backward()
        opt.step()
        losses.append(total.item())
    return losses[0], losses[-1]
