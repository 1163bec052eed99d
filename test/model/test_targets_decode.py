"""Head targets -> perfect head outputs -> decoding recovers the boxes; gaussians; circle NMS."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.model.config import DecodeConfig, ModelConfig
from imkd_ros.model.decode import Detections, circle_nms, decode
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.targets import build_targets, draw_gaussian, gaussian_radius

CFG = dataclasses.replace(ModelConfig.default(), decode=DecodeConfig(score_threshold=0.5))


def _boxes() -> Boxes:
    nan = float("nan")
    return Boxes(
        center=[[10.3, 2.1, 0.8], [25.77, -12.02, 1.1], [40.0, 15.5, 0.4], [5.2, -20.3, 0.9], [12.0, -3.0, 0.3]],
        size=[[1.9, 4.6, 1.7], [2.9, 10.1, 3.4], [0.7, 0.8, 1.8], [0.5, 0.5, 1.0], [1.9, 4.3, 1.5]],
        yaw=[0.3, -2.8, 1.2, 0.0, 3.0],
        velocity=[[5.0, 0.5], [-3.0, 1.0], [nan, nan], [0.0, 0.0], [0.0, -1.5]],
        label=[CLASSES.index(c) for c in ("car", "truck", "pedestrian", "traffic_cone", "car")],
        score=np.ones(5),
    )


def _perfect_head(targets, cfg) -> HeadOutput:
    """Logits reproducing the target heatmap; regression maps holding the targets at the object cells."""
    hm = targets.heatmap.clamp(1e-6, 1 - 1e-6)
    logits = torch.log(hm) - torch.log1p(-hm)
    b, _, h, w = hm.shape
    reg = torch.zeros(b, 10, h * w)
    for s in range(b):
        for j in torch.nonzero(targets.mask[s]).flatten().tolist():
            reg[s, :, targets.index[s, j]] = targets.regression[s, j]
    return HeadOutput(logits, reg.view(b, 10, h, w))


def test_round_trip_recovers_boxes():
    gt = _boxes()
    targets = build_targets([gt, Boxes.empty()], CFG)
    assert targets.heatmap.shape == (2, 10, 64, 64)
    assert targets.num_objects.tolist() == [5, 0]
    dets = decode(_perfect_head(targets, CFG), CFG)
    assert len(dets) == 2 and len(dets[1]) == 0
    got = dets[0].to_boxes()
    assert got.frame == "ego" and len(got) == len(gt)
    order = np.argsort(got.center[:, 0])
    want = np.argsort(gt.center[:, 0])
    g, w = got[order], gt[want]
    np.testing.assert_allclose(g.center, w.center, atol=1e-4)  # exact up to float32, well within a cell
    np.testing.assert_allclose(g.size, w.size, rtol=1e-5)
    np.testing.assert_allclose(np.cos(g.yaw - w.yaw), 1.0, atol=1e-6)
    known = np.isfinite(w.velocity[:, 0])
    np.testing.assert_allclose(g.velocity[known], w.velocity[known], atol=1e-5)
    assert np.array_equal(g.label, w.label)
    assert np.all(g.score > 0.99)


def test_targets_mask_unknown_velocity_and_skip_outside_or_other_classes():
    gt = _boxes()
    targets = build_targets([gt], CFG)
    vm = targets.velocity_mask[0, :5].tolist()
    assert vm == [True, True, False, True, True]
    assert torch.isfinite(targets.regression).all()
    outside = Boxes([[-3.0, 0.0, 0.0], [60.0, 0.0, 0.0]], [[1, 1, 1]] * 2, [0, 0], [[0, 0]] * 2, [0, 0], [1, 1])
    t2 = build_targets([outside], CFG)
    assert t2.num_objects.tolist() == [0] and t2.heatmap.sum() == 0
    cars_only = dataclasses.replace(CFG, classes=("car",))
    t3 = build_targets([gt], cars_only)
    assert t3.heatmap.shape[1] == 1 and t3.num_objects.tolist() == [2]
    few = dataclasses.replace(CFG, head=dataclasses.replace(CFG.head, max_objects=3))
    assert build_targets([gt], few).num_objects.tolist() == [3]


def test_bad_gt_raises():
    with pytest.raises(ModelInputError, match="ego"):
        build_targets([Boxes.empty(frame="global")], CFG)
    bad = Boxes([[10.0, 0, 0]], [[0.0, 1.0, 1.0]], [0], [[0, 0]], [0], [1])
    with pytest.raises(ModelInputError, match="non-positive size"):
        build_targets([bad], CFG)


def test_gaussian_peak_and_clipping():
    hm = np.zeros((10, 12), np.float32)
    draw_gaussian(hm, 0, 9, 3)  # corner: clipped, no error
    draw_gaussian(hm, 6, 4, 2)
    assert hm[9, 0] == 1.0 and hm[4, 6] == 1.0
    assert hm[4, 5] == pytest.approx(hm[4, 7]) and hm[3, 6] == pytest.approx(hm[5, 6])
    assert 0 < hm[4, 8] < hm[4, 7] < 1 and hm[4, 9] == 0.0
    assert gaussian_radius((10.0, 4.0), 0.1) > gaussian_radius((5.0, 2.0), 0.1) > 0


def test_circle_nms_removes_duplicates_and_keeps_separated_boxes():
    centers = torch.tensor([[10.0, 0.0], [10.5, 0.2], [20.0, 0.0], [10.2, 0.0], [30.0, 0.0], [30.3, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])
    labels = torch.tensor([0, 0, 0, 8, 0, 0])  # box 3 is a pedestrian on top of the car
    radius = torch.tensor([2.0, 2.0, 2.0, 0.42, 2.0, 2.0])
    keep = circle_nms(centers, scores, labels, radius)
    assert keep.tolist() == [5, 0, 2, 3]  # by descending score; duplicates 1 (of 0) and 4 (of 5) removed
    assert (
        circle_nms(centers, scores, labels, torch.zeros(6)).tolist() == torch.argsort(scores, descending=True).tolist()
    )
    assert circle_nms(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0)).numel() == 0


def test_decode_suppresses_duplicate_peaks_and_thresholds():
    h = w = 64
    logits = torch.full((1, 10, h, w), -10.0)
    logits[0, 0, 10, 10] = 3.0  # car
    logits[0, 0, 10, 12] = 2.0  # separate local maximum 1.6 m away: a duplicate for car NMS (2 m)
    logits[0, 0, 30, 30] = 1.0
    logits[0, 0, 50, 50] = -3.0  # below the 0.5 threshold
    dets = decode(HeadOutput(logits, torch.zeros(1, 10, h, w)), CFG)[0]
    assert isinstance(dets, Detections) and len(dets) == 2
    assert dets.score[0] > dets.score[1] > 0.5
    x = dets.center[:, 0].tolist()
    assert x == pytest.approx([10 * 0.8, 30 * 0.8])
    assert dets.size.tolist() == [[1.0, 1.0, 1.0]] * 2 and dets.label.tolist() == [0, 0]


def test_separable_peak_maximum_equals_max_pool():
    """decode's 3 x 3 maximum (two 1-D passes) gives max_pool2d's values exactly, borders and ties included."""
    import torch.nn.functional as F

    from imkd_ros.model.decode import max_3x3

    gen = torch.Generator().manual_seed(0)
    for shape in ((1, 10, 64, 64), (2, 3, 5, 7), (1, 1, 1, 1)):
        x = torch.randn(shape, generator=gen)
        assert torch.equal(max_3x3(x), F.max_pool2d(x, 3, stride=1, padding=1))
    ties = torch.zeros(1, 1, 4, 4)
    assert torch.equal(max_3x3(ties), ties)


def test_circle_nms_equals_the_plain_greedy_loop():
    """The NMS that visits only boxes with a neighbour keeps exactly what the plain greedy loop over every box keeps
    (random crowded sets: shared and distinct classes, radius 0 boxes that suppress nothing, ties in score)."""
    import numpy as np

    def plain(centers, scores, labels, radius):
        order = torch.argsort(scores, descending=True)
        c, lab, rad = centers[order].double().numpy(), labels[order].numpy(), radius[order].double().numpy()
        sup = (np.hypot(*(c[:, None] - c[None]).transpose(2, 0, 1)) <= rad[:, None]) & (lab[:, None] == lab[None])
        sup &= rad[:, None] > 0
        alive = np.ones(len(c), bool)
        for i in range(len(c)):
            if alive[i]:
                alive[i + 1 :] &= ~sup[i, i + 1 :]
        return order[torch.from_numpy(np.flatnonzero(alive))]

    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(0, 100, (1,), generator=g))
        c = torch.rand(n, 2, generator=g) * 20
        s = torch.randint(0, 20, (n,), generator=g).float() / 20  # ties
        lab = torch.randint(0, 3, (n,), generator=g)
        r = torch.rand(n, generator=g) * 4 * (torch.rand(n, generator=g) > 0.2)
        assert torch.equal(circle_nms(c, s, lab, r), plain(c, s, lab, r))
