"""The distillation losses: zero when the student equals the teacher, positive otherwise, acting only on the cells
each stage selects, 0 (not NaN) on empty selections, normalised so that a KD term pulls at an object cell about as
hard as the focal loss, velocity never distilled, the stage-3 targets different per modality, and the stage
switches and weights of distill_losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetsBatch
from imkd_ros.distill.config import DistillConfig
from imkd_ros.distill.losses import (
    camera_frustum_depth,
    camera_gate_target,
    channel_kl,
    distill_losses,
    feature_mse,
    gate_kl,
    heatmap_kl,
    object_neighbourhood,
    radar_feature_loss,
    radar_gate_target,
    radar_occupancy,
    response_cells,
    teacher_foreground,
    teacher_object_count,
)
from imkd_ros.model import ModelConfig, Student, StudentInputs
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.fusion import FusionOutput
from imkd_ros.model.head import REGRESSION_GROUPS, HeadOutput
from imkd_ros.model.losses import focal_loss
from imkd_ros.model.student import StudentOutput
from imkd_ros.model.targets import draw_gaussian
from imkd_ros.training.train import model_config_for


def _maps(seed: int = 0, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    teacher = torch.rand(2, c, 5, 7, generator=g) * 3
    weight = torch.rand(2, 1, 5, 7, generator=g)
    return teacher, weight


# ------------------------------------------------------------------------------------------------ building blocks
def test_feature_mse_zero_iff_equal_and_scale_free() -> None:
    t, w = _maps()
    assert feature_mse(t.clone(), t, w).item() == 0.0
    s = t + 0.1 * torch.randn_like(t)
    assert feature_mse(s, t, w).item() > 0
    assert feature_mse(torch.zeros_like(t), t, w).item() == pytest.approx(1.0, rel=1e-5)
    assert feature_mse(10 * s, 10 * t, w).item() == pytest.approx(feature_mse(s, t, w).item(), rel=1e-4)
    # an explicit normaliser divides the weighted sum
    summed = feature_mse(s, t, w, normaliser=1.0)
    assert summed.item() == pytest.approx(feature_mse(s, t, w).item() * w.sum().item(), rel=1e-5)
    assert feature_mse(s, t, torch.zeros_like(w), normaliser=3.0).item() == 0.0


def test_selection_masks_and_object_count() -> None:
    p = torch.zeros(2, 3, 8, 8)
    draw = np.zeros((8, 8), np.float32)
    draw_gaussian(draw, 2, 3, 1)
    p[0, 1] = torch.from_numpy(draw) * 0.9  # one object, peak 0.9 at row 3, col 2
    p[1, 2, 6, 6] = 0.5  # a second, one cell
    p[1, 0, 0, 0] = 0.05  # below every threshold
    fg = teacher_foreground(p, 0.1)
    assert fg.shape == (2, 1, 8, 8) and fg[0, 0, 3, 2] == 1 and fg[1, 0, 6, 6] == 1 and fg[1, 0, 0, 0] == 0
    assert 1 < fg[0].sum() <= 9  # the gaussian's core, not its tails
    assert teacher_object_count(p, 0.1).item() == 2.0
    assert teacher_object_count(torch.zeros_like(p), 0.1).item() == 1.0  # no object: 1, never 0
    logits = torch.full((2, 3, 8, 8), -5.0)
    logits[1, 0, 2, 2] = 3.0  # the student claims an object the teacher does not see
    cells = response_cells(logits, p, 0.3)
    assert cells[0, 0, 3, 2] == 1 and cells[1, 0, 6, 6] == 1 and cells[1, 0, 2, 2] == 1
    assert cells.sum() == ((p.amax(1) > 0.3).sum() + 1)
    ri = torch.zeros(2, 2, 8, 8)
    ri[0, 0, 1, 1] = 0.3
    ri[0, 1, 2, 2] = 0.9  # an RCS value without a point count is not a return
    assert radar_occupancy(ri).sum() == 1 and radar_occupancy(ri)[0, 0, 1, 1] == 1


def test_stage1_acts_on_objects_and_radar_cells_only() -> None:
    g = torch.Generator().manual_seed(3)
    t = torch.randn(2, 6, 8, 9, generator=g)
    inten = torch.rand(2, 1, 8, 9, generator=g) * 0.9 + 0.1
    fg = torch.zeros(2, 1, 8, 9)
    fg[:, :, 1, 1:3] = 1  # the teacher's object centre
    occ = torch.zeros(2, 1, 8, 9)
    occ[:, :, 3, 4] = 1  # a return from the object's face, 2 cells from its centre
    occ[:, :, 6, 7] = 1  # and one off any object
    occ[:, :, 1, 1] = 1  # and one on the centre
    near = object_neighbourhood(fg, 2)
    assert near[0, 0, 3, 4] == 1 and near[0, 0, 6, 7] == 0 and object_neighbourhood(fg, 0).equal(fg)
    s = (t + 0.3 * torch.randn(t.shape, generator=g)).requires_grad_(True)
    loss = radar_feature_loss(s, t, inten, fg, occ, num_objects=2.0)
    loss.backward()
    selected = (fg + occ).clamp(max=1).expand_as(s).bool()
    assert (s.grad[~selected] == 0).all() and (s.grad[selected] != 0).all()
    assert radar_feature_loss(t.clone(), t, inten, fg, occ, 2.0).item() == 0.0
    # a wildly wrong student outside the selection (empty space, ground, structure without radar) costs nothing
    s2 = s.detach().clone()
    s2[~selected] += 100.0
    assert radar_feature_loss(s2, t, inten, fg, occ, 2.0).item() == pytest.approx(loss.item(), rel=1e-6)
    # object cells (centres, and returns near them): a sum per teacher object; other returns: a mean over them
    z = torch.zeros_like(t)
    on_object = fg.clone()
    on_object[:, :, 3, 4] = 1
    far = torch.zeros_like(occ)
    far[:, :, 6, 7] = 1
    # object cells weigh with the object's intensity I+ (the most intense cell within the radius), the others I
    obj_inten = object_neighbourhood(inten, 2)
    assert obj_inten[0, 0, 1, 1] == inten[0, 0, 0:4, 0:4].max()
    w_obj, w_far = obj_inten * on_object, inten * far
    sigma2 = ((w_obj + w_far) * t.pow(2).mean(1, keepdim=True)).sum() / (w_obj + w_far).sum()
    err = t.pow(2).mean(1, keepdim=True) / sigma2  # e_u of an all-zero student
    expected = (w_obj * err).sum() / 2.0 + (w_far * err).sum() / far.sum()
    assert radar_feature_loss(z, t, inten, fg, occ, 2.0).item() == pytest.approx(expected.item(), rel=1e-5)
    assert radar_feature_loss(z, t, inten, fg, torch.zeros_like(occ), 2.0).item() == pytest.approx(
        feature_mse(z, t, obj_inten * fg, normaliser=2.0).item(), rel=1e-5
    )
    # radius 0: the face return is background, every cell weighs with its own intensity
    w0, bg0 = inten * fg, inten * (occ - occ * fg)
    sigma2 = ((w0 + bg0) * t.pow(2).mean(1, keepdim=True)).sum() / (w0 + bg0).sum()
    err = t.pow(2).mean(1, keepdim=True) / sigma2
    expected0 = (w0 * err).sum() / 2.0 + (bg0 * err).sum() / 4.0
    assert radar_feature_loss(z, t, inten, fg, occ, 2.0, object_radius=0).item() == pytest.approx(
        expected0.item(), rel=1e-5
    )
    empty = radar_feature_loss(s, t, inten, torch.zeros_like(fg), torch.zeros_like(occ), 1.0)
    assert empty.item() == 0.0 and torch.isfinite(empty)  # nothing selected: 0, not NaN


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
    assert channel_kl(s, t, torch.zeros_like(w), normaliser=4.0).item() == 0.0


def test_heatmap_kl_zero_iff_equal_and_only_on_selected_cells() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.rand(2, 3, 5, 7, generator=g) * 0.98 + 0.01
    p[0, 0, 0, 0] = 0.0
    p[0, 1, 0, 0] = 1.0
    w = torch.ones(2, 1, 5, 7)
    logits = torch.logit(p.double()).float()
    assert heatmap_kl(logits, p, w).item() == pytest.approx(0.0, abs=1e-5)
    assert heatmap_kl(logits + 0.5, p, w).item() > 1e-3
    assert torch.isfinite(heatmap_kl(torch.zeros_like(p), p, w))
    cells = response_cells(torch.full_like(p, -5.0), p, 0.6)
    z = torch.zeros_like(p, requires_grad=True)
    heatmap_kl(z, p, cells, normaliser=2.0).backward()
    chosen = cells.expand_as(p).bool()
    assert (z.grad[~chosen] == 0).all() and (z.grad[chosen] != 0).all()
    assert heatmap_kl(z, p, torch.zeros_like(cells), normaliser=2.0).item() == 0.0


def test_gate_kl_zero_iff_gate_matches_target_and_balanced() -> None:
    target = torch.rand(2, 1, 4, 4) * 0.9 + 0.05
    gate = target.expand(2, 5, 4, 4).clone()
    assert gate_kl(gate, target).item() == pytest.approx(0.0, abs=1e-7)
    assert gate_kl(torch.full_like(gate, 0.5), target).item() > 1e-3
    # a sparse 0/1 target: the few positives weigh as much as the many negatives
    sparse = torch.zeros(1, 1, 10, 10)
    sparse[0, 0, 0, 0] = 1.0
    miss_pos = torch.full((1, 3, 10, 10), 0.01)
    miss_neg = miss_pos.clone()
    miss_pos[..., 0, 0] = 0.01  # misses the one positive
    miss_neg[..., 0, 0] = 0.99
    miss_neg[..., 5, 5] = 0.99  # instead, one false positive among 99 negatives
    assert gate_kl(miss_pos, sparse) > 10 * gate_kl(miss_neg, sparse)
    assert gate_kl(torch.full((1, 3, 10, 10), 0.3), torch.zeros(1, 1, 10, 10)).item() > 0  # no positive: no NaN
    with pytest.raises(ModelInputError, match="gate_kl"):
        gate_kl(gate, target[:, :, :2])


# ------------------------------------------------------------------------------------------------ stage 3 targets
def _front_camera(b: int, model: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A forward-looking camera 1.5 m above the ego origin, about +-32 deg wide, for the model-input image: the one
    camera of a front rig, ``(b, 1, 3, 3)`` and ``(b, 1, 4, 4)``."""
    w, h = model.image.input_size
    f = w / 2 / math.tan(math.radians(32))
    k = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]).expand(b, 1, 3, 3).clone()
    c2e = torch.tensor([[0.0, 0, 1, 1.5], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]]).expand(b, 1, 4, 4).clone()
    return k, c2e


def _cell(model: ModelConfig, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the head cell holding ego point (x, y)."""
    g = model.grid
    return int((y - g.y_range[0]) // g.out_cell), int((x - g.x_range[0]) // g.out_cell)


def test_stage3_targets_differ_per_modality_and_the_loss_is_zero_at_them() -> None:
    model = ModelConfig.default()
    h, w = model.grid.out_ny, model.grid.out_nx
    k, c2e = _front_camera(1, model)
    structure = torch.zeros(1, 1, h, w)
    occupied = torch.zeros(1, 1, h, w)
    near_cam = _cell(model, 8.0, 0.0)  # LiDAR structure right ahead, no radar return
    far_cam = _cell(model, 40.0, 0.0)  # far ahead, with a radar return
    side = _cell(model, 10.0, 20.0)  # outside the camera's view, with a radar return
    clutter = _cell(model, 20.0, -3.0)  # a radar return without LiDAR structure
    for rc in (near_cam, far_cam, side):
        structure[0, 0, rc[0], rc[1]] = 1.0
    for rc in (far_cam, side, clutter):
        occupied[0, 0, rc[0], rc[1]] = 1.0
    out = StudentOutput(None, None, None, torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w), None, intrinsics=k,
                        cam_to_ego=c2e)  # fmt: skip
    y_c = camera_gate_target(structure, out, model)
    y_r = radar_gate_target(structure, occupied)
    at = lambda m, rc: m[0, 0, rc[0], rc[1]].item()  # noqa: E731
    assert at(y_c, near_cam) > 0.8 and at(y_r, near_cam) == 0.0  # the camera's, not the radar's
    assert at(y_r, side) == 1.0 and at(y_c, side) == 0.0  # the radar's: the camera cannot see it
    assert 0.0 < at(y_c, far_cam) < 0.3 and at(y_r, far_cam) == 1.0  # far: the camera's depth is weak
    assert at(y_c, clutter) == 0.0 and at(y_r, clutter) == 0.0  # radar clutter: no structure, trust neither
    assert not torch.equal(y_c, y_r)
    # the frustum: ahead within the camera's depth range, nothing behind the image plane or beside the view
    near = camera_frustum_depth(k, c2e, model)
    assert torch.isfinite(near[0, 0, near_cam[0], near_cam[1]]) and not torch.isfinite(near[0, 0, side[0], side[1]])
    # a second camera looking left (+y) reaches the side cell at its own depth; the front camera's cells stay
    turn = torch.tensor([[0.0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    near2 = camera_frustum_depth(torch.cat([k, k], 1), torch.cat([c2e, turn @ c2e], 1), model)
    assert near2[0, 0, side[0], side[1]].item() == pytest.approx(18.5, abs=2.0)  # camera at y 1.5, cell at y 20
    assert near2[0, 0, near_cam[0], near_cam[1]] == near[0, 0, near_cam[0], near_cam[1]]
    # each gate at its own target: loss 0; the other modality's target: positive
    g_c = y_c.expand(1, 8, h, w).clamp(1e-6, 1 - 1e-6)
    g_r = y_r.expand(1, 8, h, w).clamp(1e-6, 1 - 1e-6)
    assert gate_kl(g_c, y_c).item() == pytest.approx(0.0, abs=1e-4)
    assert gate_kl(g_r, y_r).item() == pytest.approx(0.0, abs=1e-4)
    assert gate_kl(g_c, y_r).item() > 0.1 and gate_kl(g_r, y_c).item() > 0.1


# ------------------------------------------------------------------------------------------------ a tiny student
def _student_and_targets(seed: int = 0) -> tuple[Student, StudentOutput, TargetsBatch]:
    torch.manual_seed(seed)
    cfg = model_config_for("fusion", "tiny")
    student = Student(config=cfg).train()
    b, h, w = 2, cfg.grid.out_ny, cfg.grid.out_nx
    images = torch.rand(b, 1, 3, 64, 128)
    k = torch.tensor([[100.0, 0, 64], [0, 100.0, 32], [0, 0, 1]]).expand(b, 1, 3, 3)
    c2e = torch.tensor([[0.0, 0, 1, 1.5], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]]).expand(b, 1, 4, 4)
    radar = torch.zeros(b, 20, 7)
    radar[..., 0] = torch.linspace(3, 40, 20)
    radar[..., 1] = torch.linspace(-10, 10, 20)
    out = student.features(StudentInputs(images, k, c2e, radar, torch.ones(b, 20, dtype=torch.bool)))
    heat = torch.rand(b, cfg.num_classes, h, w) * 0.5
    heat[:, 0, 4, 4] = heat[:, 1, 8, 10] = 0.9  # two confident teacher objects per frame
    targets = TargetsBatch(torch.rand(b, 12, h, w), torch.rand(b, 3, h, w), heat, ["a", "b"])
    return student, out, targets


def test_distill_losses_follow_stages_and_weights() -> None:
    student, out, targets = _student_and_targets()
    full = DistillConfig(stage1_weight=2.0, stage2_feature_weight=0.5, stage2_response_weight=3.0, stage3_weight=0.7)
    heads = DistillHeads(16, 12, full)
    res = distill_losses(out, targets, heads, full, student.config)
    parts = [res.stage1, res.stage2_feature, res.stage2_response, res.stage3]
    assert all(p.item() > 0 for p in parts)
    expected = 2.0 * res.stage1 + 0.5 * res.stage2_feature + 3.0 * res.stage2_response + 0.7 * res.stage3
    torch.testing.assert_close(res.total, expected)
    only1 = DistillConfig(stages=("stage1",))
    res1 = distill_losses(out, targets, DistillHeads(16, 12, only1), only1)  # no model needed without stage 3
    assert res1.stage1.item() > 0 and res1.stage2_feature == 0 and res1.stage2_response == 0 and res1.stage3 == 0
    assert set(res1.as_dict()) == {"kd_stage1", "kd_stage2_feature", "kd_stage2_response", "kd_stage3", "kd_total"}
    none = DistillConfig(stages=())
    assert distill_losses(out, targets, DistillHeads(16, 12, none), none).total.item() == 0.0
    res.total.backward()  # gradients reach the student and the adapters
    assert heads.radar_adapter[1].weight.grad.abs().sum() > 0 and heads.fused_adapter.weight.grad.abs().sum() > 0
    assert student.fuser.radar_to_camera[1].weight.grad.abs().sum() > 0  # the gates learn


def test_distill_losses_zero_when_the_student_reproduces_the_teacher() -> None:
    """With targets made from the student's own (adapted) maps, every enabled loss is (numerically) zero."""
    student, out, targets = _student_and_targets()
    heads = DistillHeads(16, 16, DistillConfig())
    heads.radar_adapter.eval()  # BatchNorm with running statistics: the same map twice
    with torch.no_grad():
        t_radar = heads.adapt_radar(out.radar_bev)
        t_fused = heads.adapt_fused(out.bev)
    heat = torch.sigmoid(out.head.heatmap.detach())
    cfg1 = DistillConfig(stages=("stage1",))
    t1 = TargetsBatch(t_radar, targets.intensity, targets.heatmap, ["a", "b"])
    assert distill_losses(out, t1, heads, cfg1).total.item() == 0.0
    cfg2 = DistillConfig(stages=("stage2",))
    t2 = TargetsBatch(t_fused, targets.intensity, heat, ["a", "b"])
    assert distill_losses(out, t2, heads, cfg2).total.item() == pytest.approx(0.0, abs=1e-5)
    # stage 3 at its own targets: gates equal to the camera and radar targets give 0
    structure = targets.intensity[:, 0:1]
    y_c = camera_gate_target(structure, out, student.config)
    y_r = radar_gate_target(structure, radar_occupancy(out.radar_intensity))
    assert gate_kl(y_c.expand_as(out.fusion.camera_gate).clamp(1e-6, 1 - 1e-6), y_c).item() < 1e-4
    assert gate_kl(y_r.expand_as(out.fusion.radar_gate).clamp(1e-6, 1 - 1e-6), y_r).item() < 1e-4


def test_velocity_is_never_distilled() -> None:
    """The head's velocity channels get exactly zero gradient from every KD term; the features it reads still learn
    from the teacher."""
    student, out, targets = _student_and_targets()
    cfg = DistillConfig()
    kd = distill_losses(out, targets, DistillHeads(16, 12, cfg), cfg, student.config)
    assert kd.total.item() > 0
    reg, bev = torch.autograd.grad(kd.total, [out.head.regression, out.bev], allow_unused=True, retain_graph=True)
    vel = REGRESSION_GROUPS["velocity"]
    assert reg is None or (reg[:, vel] == 0).all()
    assert bev is not None and bev.abs().sum() > 0
    # and the velocity output's own weights: no KD gradient at all
    kd.total.backward()
    last = student.head.regression[-1]
    assert last.weight.grad is None or (last.weight.grad[vel] == 0).all()


def test_missing_branches_are_named() -> None:
    torch.manual_seed(0)
    cfg = model_config_for("camera", "tiny")
    student = Student(config=cfg)
    b, h, w = 1, cfg.grid.out_ny, cfg.grid.out_nx
    out = student.features(
        StudentInputs(
            torch.rand(b, 1, 3, 64, 128),
            torch.tensor([[[[100.0, 0, 64], [0, 100.0, 32], [0, 0, 1]]]]),
            torch.eye(4)[None, None],
        )
    )
    t = TargetsBatch(torch.rand(b, 16, h, w), torch.rand(b, 3, h, w), torch.rand(b, 10, h, w), ["a"])
    for stage, match in (("stage1", "radar"), ("stage3", "gates")):
        c = DistillConfig(stages=(stage,))
        with pytest.raises(ModelInputError, match=match):
            distill_losses(out, t, DistillHeads(16, 16, c), c, cfg)
    bad = TargetsBatch(torch.rand(b, 16, h + 1, w), torch.rand(b, 3, h + 1, w), torch.rand(b, 10, h + 1, w), ["a"])
    with pytest.raises(ModelInputError, match="teacher targets"):
        distill_losses(out, bad, DistillHeads(16, 16, DistillConfig()), DistillConfig(), cfg)
    fusion_student, fusion_out, fusion_t = _student_and_targets()
    c3 = DistillConfig(stages=("stage3",))
    with pytest.raises(ModelInputError, match="model=student.config"):
        distill_losses(fusion_out, fusion_t, DistillHeads(16, 12, c3), c3)


# ------------------------------------------------------------------------------------------------ gradient balance
def _object_scene(seed: int = 0) -> tuple[ModelConfig, StudentOutput, TargetsBatch, torch.Tensor, list]:
    """A default-size batch (2 frames, 64 x 64 head grid, 48 channels) with 30 objects per frame: ground-truth
    gaussians (radius 2), a teacher that sees them (peak 0.9), LiDAR structure on them and on 10 % of the other
    cells, one radar return per object plus 150 clutter returns per frame, a student at initialisation (heatmap
    0.1 everywhere, radar gate 0.5) whose camera gate distrusts the camera (0.1). Student maps are leaf
    tensors."""
    model = ModelConfig.default()
    b, h, w, k, c = 2, model.grid.out_ny, model.grid.out_nx, model.num_classes, model.bev.channels
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    gt = np.zeros((b, k, h, w), np.float32)
    objects = []
    for bi in range(b):
        taken = np.zeros((h, w), bool)
        while sum(o[0] == bi for o in objects) < 30:
            r, col = int(rng.integers(3, h - 3)), int(rng.integers(3, w - 3))
            if taken[r - 3 : r + 4, col - 3 : col + 4].any():
                continue
            taken[r, col] = True
            cls = int(rng.integers(0, k))
            draw_gaussian(gt[bi, cls], col, r, 2)
            objects.append((bi, cls, r, col))
    gt_t = torch.from_numpy(gt)
    density = (torch.rand(b, h, w, generator=gen) < 0.1).float() * 0.4
    activation = torch.rand(b, h, w, generator=gen) * 0.3
    occupied = torch.zeros(b, h, w)
    for bi in range(b):
        occupied[bi].view(-1)[torch.randperm(h * w, generator=gen)[:150]] = 0.5
    for bi, _, r, col in objects:
        density[bi, r - 1 : r + 2, col - 1 : col + 2] = 0.8
        density[bi, r, col] = activation[bi, r, col] = 1.0
        occupied[bi, r, col] = 0.5
    intensity = torch.stack([density, torch.zeros_like(density), activation], dim=1)
    targets = TargetsBatch(torch.randn(b, c, h, w, generator=gen) * 2, intensity, gt_t * 0.9, ["a", "b"])
    leaf = lambda *s: torch.randn(*s, generator=gen).requires_grad_(True)  # noqa: E731
    heat = torch.full((b, k, h, w), math.log(0.1 / 0.9)).requires_grad_(True)
    kmat, c2e = _front_camera(b, model)
    fusion = FusionOutput(
        leaf(b, c, h, w), torch.full((b, c, h, w), 0.1, requires_grad=True),
        torch.full((b, c, h, w), 0.5, requires_grad=True), torch.full((b, 2, h, w), 0.5),
    )  # fmt: skip
    out = StudentOutput(
        camera_bev=leaf(b, c, h, w), radar_bev=leaf(b, c, h, w),
        radar_intensity=torch.stack([occupied, torch.zeros_like(occupied)], dim=1), fused_bev=fusion.fused,
        bev=leaf(b, c, h, w), head=HeadOutput(heat, leaf(b, 10, h, w)), fusion=fusion, intrinsics=kmat,
        cam_to_ego=c2e,
    )  # fmt: skip
    return model, out, targets, gt_t, objects


def _kd_gradients(out: StudentOutput, targets: TargetsBatch, cfg: DistillConfig, model: ModelConfig | None):
    """d(weighted KD term)/d(its own input) per stage: {term: (B, C, H, W) gradient}."""
    c = out.bev.shape[1]
    grads = {}
    for term in ("stage1", "stage2_feature", "stage2_response", "stage3"):
        stage = term.split("_")[0]
        one = DistillConfig(
            **{
                **cfg.to_dict(),
                "stages": [stage],
                "stage2_feature_weight": cfg.stage2_feature_weight if term != "stage2_response" else 0.0,
                "stage2_response_weight": cfg.stage2_response_weight if term != "stage2_feature" else 0.0,
            }
        )
        heads = DistillHeads(c, c, one)
        seen: dict[str, torch.Tensor] = {}
        for mod in (heads.radar_adapter, heads.fused_adapter):
            if mod is not None:
                mod.register_forward_hook(lambda _m, _i, o, seen=seen: seen.__setitem__("x", o))
        total = distill_losses(out, targets, heads, one, model).total
        if term == "stage3":
            wrt = [out.fusion.camera_gate, out.fusion.radar_gate]
        elif term == "stage2_response":
            wrt = [out.head.heatmap]
        else:
            wrt = [seen["x"]]
        grads[term] = torch.autograd.grad(total, wrt, retain_graph=True)
    return grads


def test_kd_gradient_per_object_cell_is_comparable_to_the_focal_loss() -> None:
    """At the centre cell of every object, each default-weighted KD term's gradient (w.r.t. its own input: the
    adapted radar map, the adapted fused map, the heatmap logits, the radar gate) is within 10x of the focal
    loss's gradient w.r.t. the heatmap logits there. The earlier normalisation (sum of weights with a 0.05
    background floor, the shipped weights 2/2/2) was 10-300x weaker. Numbers: the losses module docstring."""
    model, out, targets, gt, objects = _object_scene()
    (g_focal,) = torch.autograd.grad(focal_loss(out.head.heatmap, gt), [out.head.heatmap], retain_graph=True)
    focal = torch.stack([g_focal[b, :, r, c].norm() for b, _, r, c in objects])
    grads = _kd_gradients(out, targets, DistillConfig(), model)
    ratios = {}
    for term, g in grads.items():
        x = g[-1]  # stage 3: the radar gate (every object has a radar return on LiDAR structure)
        ratios[term] = torch.stack([x[b, :, r, c].norm() for b, _, r, c in objects]) / focal
    for term, r in ratios.items():
        assert 0.1 <= r.min() and r.max() <= 10.0, f"{term}: KD/focal gradient ratio {r.min():.3g}..{r.max():.3g}"
    # the camera gate too, on the objects in the camera's near view
    y_c = camera_gate_target(targets.intensity[:, 0:1], out, model)
    seen = [(b, r, c) for b, _, r, c in objects if y_c[b, 0, r, c] > 0.5]
    assert seen
    cam = torch.stack([grads["stage3"][0][b, :, r, c].norm() / g_focal[b, :, r, c].norm() for b, r, c in seen])
    assert 0.1 <= cam.min() and cam.max() <= 10.0, f"camera gate ratio {cam.min():.3g}..{cam.max():.3g}"
    # before: the same terms normalised by their summed weight, with a 0.05 floor (weights 2, 2, 2)
    inten = (targets.intensity[:, 0:1] + targets.intensity[:, 2:3]) / 2
    floor = 0.05 + 0.95 * targets.heatmap.amax(1, keepdim=True)
    x = torch.zeros_like(out.bev, requires_grad=True)
    (g1,) = torch.autograd.grad(2.0 * feature_mse(x, targets.features, inten), [x])
    (g2,) = torch.autograd.grad(2.0 * channel_kl(x, targets.features, inten * floor), [x])
    (g3,) = torch.autograd.grad(2.0 * heatmap_kl(out.head.heatmap, targets.heatmap, floor), [out.head.heatmap])
    for g, term in ((g1, "stage1"), (g2, "stage2_feature"), (g3, "stage2_response")):
        before = torch.stack([g[b, :, r, c].norm() for b, _, r, c in objects]) / focal
        assert before.median() * 3 < ratios[term].median(), term
