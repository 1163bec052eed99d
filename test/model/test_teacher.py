"""LiDAR teacher: shapes, losses, decoding, errors."""

from __future__ import annotations

import pytest
import torch

from imkd_ros.core.types import Boxes
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.errors import ModelConfigError, ModelInputError
from imkd_ros.model.inputs import TeacherInputs
from imkd_ros.model.student import Student
from imkd_ros.model.teacher import Teacher, TeacherOutput

from .model_scenes import overfit, scene_batch


def test_teacher_shapes_match_the_student_grid():
    cfg = ModelConfig.tiny(("lidar",))
    torch.manual_seed(0)
    teacher = Teacher(config=cfg).eval()
    inputs, _ = scene_batch(cfg)
    with torch.no_grad():
        out = teacher.features(inputs)
    assert isinstance(out, TeacherOutput)
    g, c = cfg.grid, cfg.bev.channels
    assert out.lidar_bev.shape == out.bev.shape == (2, c, g.out_ny, g.out_nx)
    assert out.lidar_intensity.shape == (2, 2, g.out_ny, g.out_nx)
    assert out.heatmap_logits.shape == (2, 10, g.out_ny, g.out_nx)
    student_cfg = ModelConfig.tiny()
    s_out = Student(config=student_cfg).eval().features(scene_batch(student_cfg)[0])
    assert s_out.fused_bev.shape == out.bev.shape  # distillation needs no adapter
    assert len(teacher(inputs)) == 2


def test_teacher_losses_and_overfit():
    cfg = ModelConfig.tiny(("lidar",))
    torch.manual_seed(0)
    teacher = Teacher(config=cfg).train()
    inputs, gt = scene_batch(cfg, seed=1)
    empty = teacher(inputs, gt=[Boxes.empty(), Boxes.empty()])
    assert empty.size.item() == 0.0 and empty.offset.item() == 0.0 and empty.depth.item() == 0.0
    first, last = overfit(teacher, inputs, gt, steps=20)
    assert last < 0.6 * first


def test_teacher_errors():
    with pytest.raises(ModelConfigError, match="lidar"):
        Teacher(config=ModelConfig.tiny())
    teacher = Teacher(config=ModelConfig.tiny(("lidar",)))
    with pytest.raises(ModelInputError, match="lidar must have shape"):
        teacher(TeacherInputs(torch.zeros(1, 10, 7)))
    with pytest.raises(ModelInputError, match="lidar_mask"):
        teacher(TeacherInputs(torch.zeros(1, 10, 6), torch.ones(1, 9, dtype=torch.bool)))
