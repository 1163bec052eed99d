"""profile.py: the timing helper's contract (no timing assertions), parameter counts, example inputs."""

from __future__ import annotations

import pytest
import torch

from imkd_ros.model.config import ModelConfig
from imkd_ros.model.inputs import StudentInputs, TeacherInputs
from imkd_ros.model.profile import benchmark_models, count_parameters, example_inputs, front_camera, time_forward
from imkd_ros.model.student import Student


def test_time_forward_restores_mode_and_threads():
    cfg = ModelConfig.tiny(("radar",))
    model = Student(config=cfg).train()
    threads = torch.get_num_threads()
    stats = time_forward(model, example_inputs(cfg, num_radar=5), repeats=3, warmup=1, threads=1)
    assert set(stats) == {"median_ms", "mean_ms", "min_ms", "max_ms", "p90_ms", "repeats", "threads"}
    assert stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"] and stats["repeats"] == 3
    assert model.training and torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="repeats"):
        time_forward(model, example_inputs(cfg, num_radar=5), repeats=0)


def test_count_parameters():
    model = torch.nn.Linear(3, 2)
    assert count_parameters(model) == 8
    model.bias.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 6


def test_example_inputs_shapes():
    cfg = ModelConfig.tiny()
    inp = example_inputs(cfg, batch_size=2, num_radar=7)
    assert isinstance(inp, StudentInputs) and inp.radar_mask.shape == (2, 7)
    assert inp.images.shape == (2, 1, 3, 64, 128) and inp.radar.shape == (2, 7, 7)
    assert inp.intrinsics.shape == (2, 1, 3, 3) and inp.cam_to_ego.shape == (2, 1, 4, 4)
    ring = example_inputs(cfg, cameras=4)
    assert ring.images.shape == (1, 4, 3, 64, 128) and ring.cam_to_ego.shape == (1, 4, 4, 4)
    # camera 1 of 4 looks to the ego's left (+y), camera 2 backwards
    optical = ring.cam_to_ego[0, :, :3, :3] @ torch.tensor([0.0, 0.0, 1.0])
    assert optical[1] == pytest.approx(torch.tensor([0.0, 1.0, 0.0]), abs=1e-6)
    assert optical[2] == pytest.approx(torch.tensor([-1.0, 0.0, 0.0]), abs=1e-6)
    lid = example_inputs(ModelConfig.tiny(("lidar",)), num_lidar=11)
    assert isinstance(lid, TeacherInputs) and lid.lidar.shape == (1, 11, 6) and lid.lidar_mask.shape == (1, 11)
    k, c2e = front_camera((1600, 900))
    assert c2e[:3, :3] @ torch.tensor([0.0, 0.0, 1.0]) == pytest.approx(torch.tensor([1.0, 0.0, 0.0]))


def test_benchmark_models_rows():
    rows = benchmark_models({"tiny_radar": ModelConfig.tiny(("radar",))}, repeats=1, warmup=0, threads=None)
    assert len(rows) == 1 and rows[0]["name"] == "tiny_radar"
    assert rows[0]["params"] == count_parameters(Student(config=ModelConfig.tiny(("radar",))))
