"""The distillation losses: zero when the student equals the teacher, positive otherwise, weighted as documented
(a zero-intensity cell contributes nothing to stage 1), and the stage switches and weights of distill_losses."""

from __future__ import annotations

import pytest
import torch

from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetsBatch
from imkd_ros.distill.config import DistillConfig
from imkd_ros.distill.losses import (
    channel_kl,
    distill_losses,
    feature_mse,
    foreground_weight,
    gate_kl,
    heatmap_kl,
)
from imkd_ros.model import Student
from imkd_ros.model.errors import ModelInputError
from imkd_ros.train import model_config_for


def _maps(seed: int = 0, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    teacher = torch.rand(2, c, 5, 7, generator=g) * 3
    weight = torch.rand(2, 1, 5, 7, generator=g)
    return teacher, weight


def test_feature_mse_zero_iff_equal_and_scale_free() -> None:
    t, w = _maps()
    assert feature_mse(t.clone(), t, w).item() == 0.0
    s = t + 0.1 * torch.randn_like(t)
    assert feature_mse(s, t, w).item() > 0
    assert feature_mse(torch.zeros_like(t), t, w).item() == pytest.approx(1.0, rel=1e-5)
    assert feature_mse(10 * s, 10 * t, w).item() == pytest.approx(feature_mse(s, t, w).item(), rel=1e-4)


def test_stage1_cells_without_intensity_contribute_nothing() -> None:
    t, w = _maps()
    w[:, :, 2:, :] = 0.0
    s = t + 0.1 * torch.randn_like(t)
    base = feature_mse(s, t, w)
    s2 = s.clone()
    s2[:, :, 2:, :] += 100.0  # wildly wrong, but only where the intensity is 0
    assert feature_mse(s2, t, w).item() == pytest.approx(base.item(), rel=1e-6)
    s3 = s.clone()
    s3[:, :, 0, 0] += 1.0  # wrong where the intensity is positive
    assert feature_mse(s3, t, w) > base
    s.requires_grad_(True)
    feature_mse(s, t, w).backward()
    assert (s.grad[:, :, 2:, :] == 0).all() and s.grad[:, :, :2, :].abs().sum() > 0
    assert feature_mse(s, t, torch.zeros_like(w)).item() == 0.0  # no intensity at all: 0, not NaN


def test_channel_kl_zero_iff_same_distribution() -> None:
    t, w = _maps()
    assert channel_kl(t.clone(), t, w).item() == pytest.approx(0.0, abs=1e-7)
    assert channel_kl(t + 5.0, t, w).item() == pytest.approx(0.0, abs=1e-6)  # a relation loss: shift-invariant
    assert channel_kl(t + torch.randn_like(t), t, w).item() > 1e-3
    s0 = t + torch.randn_like(t)
    assert channel_kl(10 * s0, 10 * t, w).item() == pytest.approx(channel_kl(s0, t, w).item(), rel=1e-4)  # scale-free
    assert channel_kl(s0, t, w, temperature=2.0).item() != pytest.approx(channel_kl(s0, t, w).item(), rel=1e-3)
    s = t + torch.randn_like(t)
    w0 = w.clone()
    w0[:, :, :, :3] = 0
    s2 = s.clone()
    s2[:, :, :, :3] = 0  # changes only zero-weight cells
    assert channel_kl(s2, t, w0).item() == pytest.approx(channel_kl(s, t, w0).item(), rel=1e-6)
    assert channel_kl(s, t, torch.zeros_like(w)).item() == 0.0


def test_heatmap_kl_zero_iff_equal() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.rand(2, 3, 5, 7, generator=g) * 0.98 + 0.01
    p[0, 0, 0, 0] = 0.0
    p[0, 1, 0, 0] = 1.0
    w = foreground_weight(p, 0.1)
    logits = torch.logit(p.double()).float()
    assert heatmap_kl(logits, p, w).item() == pytest.approx(0.0, abs=1e-5)
    assert heatmap_kl(logits + 0.5, p, w).item() > 1e-3
    assert torch.isfinite(heatmap_kl(torch.zeros_like(p), p, w))


def test_foreground_weight_range() -> None:
    p = torch.zeros(1, 2, 3, 3)
    p[0, 1, 1, 1] = 1.0
    w = foreground_weight(p, 0.2)
    assert w.shape == (1, 1, 3, 3) and w[0, 0, 1, 1] == 1.0 and w[0, 0, 0, 0] == pytest.approx(0.2)


def test_gate_kl_zero_iff_gate_matches_intensity() -> None:
    target = torch.rand(2, 1, 4, 4) * 0.9 + 0.05
    gate = target.expand(2, 5, 4, 4).clone()
    assert gate_kl(gate, target).item() == pytest.approx(0.0, abs=1e-7)
    assert gate_kl(torch.full_like(gate, 0.5), target).item() > 1e-3
    with pytest.raises(ModelInputError, match="gate_kl"):
        gate_kl(gate, target[:, :, :2])


def _student_and_targets(seed: int = 0) -> tuple[Student, torch.Tensor, TargetsBatch]:
    torch.manual_seed(seed)
    cfg = model_config_for("fusion", "tiny")
    student = Student(config=cfg).train()
    b, h, w = 2, cfg.grid.out_ny, cfg.grid.out_nx
    images = torch.rand(b, 3, 64, 128)
    k = torch.tensor([[100.0, 0, 64], [0, 100.0, 32], [0, 0, 1]]).expand(b, 3, 3)
    c2e = torch.tensor([[0.0, 0, 1, 1.5], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]]).expand(b, 4, 4)
    radar = torch.zeros(b, 20, 7)
    radar[..., 0] = torch.linspace(3, 40, 20)
    radar[..., 1] = torch.linspace(-10, 10, 20)
    out = student.features(images, k, c2e, radar, torch.ones(b, 20, dtype=torch.bool))
    targets = TargetsBatch(
        torch.rand(b, 12, h, w), torch.rand(b, 3, h, w), torch.rand(b, cfg.num_classes, h, w) * 0.5, ["a", "b"]
    )
    return student, out, targets


def test_distill_losses_follow_stages_and_weights() -> None:
    _, out, targets = _student_and_targets()
    full = DistillConfig(stage1_weight=2.0, stage2_feature_weight=0.5, stage2_response_weight=3.0, stage3_weight=0.7)
    heads = DistillHeads(16, 12, full)
    res = distill_losses(out, targets, heads, full)
    parts = [res.stage1, res.stage2_feature, res.stage2_response, res.stage3]
    assert all(p.item() > 0 for p in parts)
    expected = 2.0 * res.stage1 + 0.5 * res.stage2_feature + 3.0 * res.stage2_response + 0.7 * res.stage3
    torch.testing.assert_close(res.total, expected)
    only1 = DistillConfig(stages=("stage1",))
    res1 = distill_losses(out, targets, DistillHeads(16, 12, only1), only1)
    assert res1.stage1.item() > 0 and res1.stage2_feature == 0 and res1.stage2_response == 0 and res1.stage3 == 0
    assert set(res1.as_dict()) == {"kd_stage1", "kd_stage2_feature", "kd_stage2_response", "kd_stage3", "kd_total"}
    res.total.backward()  # gradients reach the student and the adapters
    assert heads.radar_adapter[1].weight.grad.abs().sum() > 0 and heads.fused_adapter.weight.grad.abs().sum() > 0


def test_distill_losses_zero_when_the_student_reproduces_the_teacher() -> None:
    """With targets made from the student's own (adapted) maps, every enabled loss is (numerically) zero."""
    _, out, _ = _student_and_targets()
    heads = DistillHeads(16, 16, DistillConfig())
    heads.radar_adapter.eval()  # BatchNorm with running statistics: the same map twice
    with torch.no_grad():
        t_radar = heads.adapt_radar(out.radar_bev)
        gate = out.fusion.camera_gate.mean(1, keepdim=True)
    # the teacher map is the adapted radar map, the density channel the camera gate, the heatmap the student's own
    cfg1 = DistillConfig(stages=("stage1",), intensity_mix=(1.0, 0.0, 0.0))
    inten = torch.zeros_like(out.bev[:, :3])
    inten[:, 0:1] = gate
    t = TargetsBatch(t_radar, inten, torch.sigmoid(out.head.heatmap.detach()), ["a", "b"])
    assert distill_losses(out, t, heads, cfg1).total.item() == 0.0
    assert gate_kl(out.fusion.camera_gate, gate).item() == pytest.approx(0.0, abs=1e-6)
    cfg2 = DistillConfig(stages=("stage2",), stage2_feature_weight=0.0)
    assert distill_losses(out, t, heads, cfg2).total.item() == pytest.approx(0.0, abs=1e-5)


def test_missing_branches_are_named() -> None:
    torch.manual_seed(0)
    cfg = model_config_for("camera", "tiny")
    student = Student(config=cfg)
    b, h, w = 1, cfg.grid.out_ny, cfg.grid.out_nx
    out = student.features(
        torch.rand(b, 3, 64, 128),
        torch.tensor([[[100.0, 0, 64], [0, 100.0, 32], [0, 0, 1]]]),
        torch.eye(4)[None],
    )
    t = TargetsBatch(torch.rand(b, 16, h, w), torch.rand(b, 3, h, w), torch.rand(b, 10, h, w), ["a"])
    for stage, match in (("stage1", "radar"), ("stage3", "gates")):
        c = DistillConfig(stages=(stage,))
        with pytest.raises(ModelInputError, match=match):
            distill_losses(out, t, DistillHeads(16, 16, c), c)
    bad = TargetsBatch(torch.rand(b, 16, h + 1, w), torch.rand(b, 3, h + 1, w), torch.rand(b, 10, h + 1, w), ["a"])
    with pytest.raises(ModelInputError, match="teacher targets"):
        distill_losses(out, bad, DistillHeads(16, 16, DistillConfig()), DistillConfig())
