"""Intensity-guided fusion: shapes, gate ranges, and that radar intensity steers the camera gate."""

from __future__ import annotations

import torch

from imkd_ros.model.fusion import IntensityGuidedFusion


def test_fusion_shapes_and_ranges():
    torch.manual_seed(0)
    fuser = IntensityGuidedFusion(8).eval()
    cam, rad, inten = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5), torch.rand(2, 2, 6, 5)
    out = fuser(cam, rad, inten)
    assert out.fused.shape == (2, 8, 6, 5)
    assert out.camera_gate.shape == out.radar_gate.shape == (2, 8, 6, 5)
    assert out.modality_weights.shape == (2, 2, 6, 5)
    assert torch.allclose(out.modality_weights.sum(1), torch.ones(2, 6, 5))
    assert (out.camera_gate > 0).all() and (out.camera_gate < 1).all()
    assert (out.fused >= 0).all()


def test_radar_intensity_changes_the_camera_gate_locally():
    torch.manual_seed(0)
    fuser = IntensityGuidedFusion(8).eval()
    cam, rad = torch.randn(1, 8, 9, 9), torch.randn(1, 8, 9, 9)
    inten = torch.zeros(1, 2, 9, 9)
    base = fuser(cam, rad, inten)
    inten[0, :, 4, 4] = 3.0
    out = fuser(cam, rad, inten)
    diff = (out.camera_gate - base.camera_gate).abs().sum(1)[0]
    assert diff[3:6, 3:6].sum() > 0
    assert diff[0, 0] == 0 and diff[8, 8] == 0  # 3x3 receptive field: far cells untouched
