"""Losses: focal loss of perfect predictions, zero regression loss on empty scenes, depth loss masking."""

from __future__ import annotations

import torch

from imkd_ros.core.types import Boxes
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.losses import depth_loss, detection_losses, focal_loss
from imkd_ros.model.student import Student
from imkd_ros.model.targets import build_targets

from .model_scenes import scene_batch, scene_boxes

CFG = ModelConfig.tiny()


def test_focal_loss_is_near_zero_for_perfect_predictions_and_large_for_wrong_ones():
    targets = build_targets([scene_boxes(0)], CFG)
    hm = targets.heatmap
    perfect = torch.where(hm == 1, torch.tensor(20.0), torch.tensor(-20.0))
    assert hm.eq(1).sum() == 3
    assert focal_loss(perfect, hm).item() < 1e-6
    assert focal_loss(-perfect, hm).item() > 10.0
    assert focal_loss(torch.zeros_like(hm), hm).item() > focal_loss(perfect, hm).item()


def test_empty_scene_gives_zero_regression_loss_through_the_student():
    torch.manual_seed(0)
    model = Student(config=CFG).train()
    inputs, _ = scene_batch(CFG)
    losses = model(inputs, gt=[Boxes.empty(), Boxes.empty()], lidar=None)
    for name in ("offset", "height", "size", "rotation", "velocity"):
        assert getattr(losses, name).item() == 0.0, name
    assert losses.depth.item() == 0.0  # no LiDAR given
    assert losses.heatmap.item() > 0 and torch.isfinite(losses.total)
    losses.total.backward()  # finite gradients from the heatmap term only
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_regression_losses_positive_with_boxes_and_zero_when_perfect():
    targets = build_targets([scene_boxes(1)], CFG)
    b, _, h, w = targets.heatmap.shape
    reg = torch.zeros(b, 10, h * w)
    for j in torch.nonzero(targets.mask[0]).flatten().tolist():
        reg[0, :, targets.index[0, j]] = targets.regression[0, j]
    perfect = detection_losses(HeadOutput(targets.heatmap, reg.view(b, 10, h, w)), targets, CFG.head)
    wrong = detection_losses(HeadOutput(targets.heatmap, torch.zeros(b, 10, h, w)), targets, CFG.head)
    for name in ("offset", "height", "size", "rotation"):
        assert getattr(perfect, name).item() < 1e-6 and getattr(wrong, name).item() > 0.01, name
    assert set(wrong.as_dict()) == {"heatmap", "offset", "height", "size", "rotation", "velocity", "depth", "total"}


def test_depth_loss_ignores_cells_without_returns():
    logits = torch.randn(1, 4, 2, 3)
    none = torch.full((1, 2, 3), -1)
    assert depth_loss(logits, none).item() == 0.0
    one = none.clone()
    one[0, 1, 2] = 3
    want = torch.nn.functional.cross_entropy(logits[:, :, 1, 2], torch.tensor([3]))
    assert torch.isclose(depth_loss(logits, one), want)
