"""Global augmentation: points, box corners and velocities move by the same rigid mirror/rotation/scale; the draws
cover mirrored and plain frames within the bounds; teachers train with it, resume exactly, students refuse it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import stop_after

from imkd_ros.core.types import Boxes
from imkd_ros.data.augment import GlobalAugment, augment_lidar_batch, augment_matrices
from imkd_ros.training.train import TrainConfig, model_config_for, train


def _scene(rng: np.random.Generator, n: int = 5) -> Boxes:
    return Boxes(
        center=np.c_[rng.uniform(5, 40, n), rng.uniform(-20, 20, n), rng.uniform(-1, 1, n)],
        size=rng.uniform(0.5, 5, (n, 3)),
        yaw=rng.uniform(-math.pi, math.pi, n),
        velocity=np.r_[rng.normal(0, 5, (n - 1, 2)), [[np.nan, np.nan]]],
        label=np.arange(n) % 3,
        score=np.ones(n),
    )


def _same_set(a: np.ndarray, b: np.ndarray) -> None:
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    assert d.min(axis=1).max() < 1e-4 and d.min(axis=0).max() < 1e-4


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_points_boxes_and_velocities_move_together(flip: float) -> None:
    rng = np.random.default_rng(3)
    boxes = [_scene(rng), _scene(rng)]
    pts = torch.from_numpy(rng.uniform(-30, 30, (2, 50, 6))).float()
    aug = GlobalAugment(flip_y=flip, rotation=math.pi / 4, scale=(0.8, 1.2))
    moved, moved_boxes = augment_lidar_batch(pts, boxes, aug, np.random.default_rng(7))
    a, params = augment_matrices(2, aug, np.random.default_rng(7))  # the same draws
    assert np.all(params[:, 0] == flip) and np.all(params[:, 2] != 1.0)
    for i in range(2):
        np.testing.assert_allclose(moved[i, :, :3].numpy(), pts[i, :, :3].numpy() @ a[i].T, rtol=1e-5, atol=1e-4)
        assert torch.equal(moved[i, :, 3:], pts[i, :, 3:])  # intensity, ring, time lag
        b, m = boxes[i], moved_boxes[i]
        for j in range(len(b)):  # every corner lands on a corner of the moved box: centre, size and yaw agree
            _same_set(b.corners()[j] @ a[i].T, m.corners()[j])
        # a box point moving at v for dt stays the same box point: v' = A v (x, y), unknown stays unknown
        dt = 0.5
        ahead = np.c_[b.center[:, :2] + b.velocity * dt, b.center[:, 2]] @ a[i].T
        known = np.isfinite(b.velocity).all(1)
        np.testing.assert_allclose(ahead[known, :2], m.center[known, :2] + m.velocity[known] * dt, atol=1e-9)
        assert np.isnan(m.velocity[~known]).all()
        # the heading (front of the box, not just its outline) turns with the scene
        heading = np.c_[np.cos(b.yaw), np.sin(b.yaw)] @ (a[i, :2, :2] / params[i, 2]).T
        np.testing.assert_allclose(heading, np.c_[np.cos(m.yaw), np.sin(m.yaw)], atol=1e-9)
        assert np.all(np.abs(m.yaw) <= math.pi) and np.array_equal(m.label, b.label)


def test_points_inside_a_box_stay_inside_and_outside_stay_outside() -> None:
    rng = np.random.default_rng(0)
    boxes = _scene(rng, 4)
    near = np.concatenate([boxes.center[j] + rng.uniform(-0.6, 0.6, (50, 3)) * boxes.size[j] for j in range(4)])
    before = boxes.contains(near)
    assert before.sum() > 40 and (~before).sum() > 40  # both kinds, near every box
    pts = torch.from_numpy(np.c_[near, np.zeros((len(near), 3))][None]).double()
    for seed in range(5):
        moved, (mb,) = augment_lidar_batch(pts, [boxes], GlobalAugment(), np.random.default_rng(seed))
        assert np.array_equal(mb.contains(moved[0].numpy()), before)


def test_draws_cover_both_mirrors_within_bounds() -> None:
    assert GlobalAugment().flip_y == 0.0  # mirroring is opt-in (module docstring)
    aug = GlobalAugment(flip_y=0.5)
    a, p = augment_matrices(2000, aug, np.random.default_rng(1))
    assert 0.45 < p[:, 0].mean() < 0.55
    assert np.abs(p[:, 1]).max() <= aug.rotation and np.abs(p[:, 1]).max() > 0.9 * aug.rotation
    assert p[:, 2].min() >= aug.scale[0] and p[:, 2].max() <= aug.scale[1]
    det = np.linalg.det(a[:, :2, :2]) / p[:, 2] ** 2
    np.testing.assert_allclose(det, np.where(p[:, 0] == 1, -1.0, 1.0), atol=1e-9)
    plain, _ = augment_matrices(3, GlobalAugment(0.0, 0.0, (1.0, 1.0)), np.random.default_rng(1))
    np.testing.assert_allclose(plain, np.broadcast_to(np.eye(3), (3, 3, 3)))


def test_teacher_trains_with_augment_and_resumes_exactly(synth_root: Path, tmp_path: Path) -> None:
    mc = model_config_for("lidar", "tiny")
    cfg = TrainConfig(epochs=2, batch_size=4, seed=1, augment=True)
    full = train(synth_root, tmp_path / "full" / "t.pt", mc, cfg, progress=False)
    plain = train(synth_root, tmp_path / "plain" / "t.pt", mc, TrainConfig(epochs=2, batch_size=4, seed=1),
                  progress=False)  # fmt: skip
    assert full.losses != plain.losses  # the draws changed what the teacher saw

    with pytest.raises(KeyboardInterrupt):
        train(synth_root, tmp_path / "cut" / "t.pt", mc, cfg, progress=False, on_epoch=stop_after(1))
    resumed = train(synth_root, tmp_path / "cut" / "t.pt", mc, cfg, resume=True, progress=False)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_student_refuses_augment(synth_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--augment"):
        train(synth_root, tmp_path / "s.pt", model_config_for("fusion", "tiny"), TrainConfig(augment=True),
              progress=False)  # fmt: skip


def test_cli_augments_teachers_by_default_and_never_students_unasked() -> None:
    import argparse

    from imkd_ros.training.train import add_train_arguments, train_config_from_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    parse = lambda *a: train_config_from_args(p.parse_args([*a, "--data", "d", "--out", "o"])).augment  # noqa: E731
    assert parse("teacher") is True and parse("teacher", "--no-augment") is False
    assert parse("student") is False and parse("student", "--augment") is True  # train() then refuses it
