"""Depth net shapes and depth targets from LiDAR."""

from __future__ import annotations

import torch

from imkd_ros.model.config import CameraConfig, ImageConfig
from imkd_ros.model.depth import DepthNet, camera_parameters, lidar_depth_targets
from imkd_ros.model.profile import front_camera

IMAGE = ImageConfig(input_size=(48, 32))
CAMERA = CameraConfig(depth_range=(2.0, 18.0), depth_bins=4, depth_channels=8, context_channels=5)


def _camera():
    k = torch.tensor([[[20.0, 0.0, 23.5], [0.0, 20.0, 23.5], [0.0, 0.0, 1.0]]])
    return k, front_camera()[1][None]


def test_nearest_lidar_point_per_cell_gives_the_bin():
    k, c2e = _camera()
    pts = torch.tensor(
        [
            [1.7 + 12.0, 0.0, 1.5, 10.0, 0.0, 0.0],  # cell (1, 1), depth 12 -> bin 2
            [1.7 + 6.0, 0.1, 1.5, 10.0, 0.0, 0.0],  # same cell, nearer: depth 6 -> bin 1 wins
            [1.7 + 3.0, 0.0, 1.5, 10.0, 0.0, 0.0],  # same cell, nearest, but masked out
            [1.7 - 5.0, 0.0, 1.5, 10.0, 0.0, 0.0],  # behind the camera
            [1.7 + 16.0, 16.0 * 16.0 / 20.0, 1.5, 10.0, 0.0, 0.0],  # u = 23.5 - 16 -> cell (1, 0), bin 3
            [1.7 + 40.0, 0.0, 1.5 + 40.0 * 16.0 / 20.0, 0, 0, 0],  # cell (0, 1) but beyond the last bin
        ]
    )[None]
    mask = torch.tensor([[True, True, False, True, True, True]])
    tgt = lidar_depth_targets(pts, mask, k, c2e, IMAGE, CAMERA)
    assert tgt.shape == (1, 2, 3)
    want = torch.full((1, 2, 3), -1, dtype=torch.long)
    want[0, 1, 1] = 1
    want[0, 1, 0] = 3
    assert torch.equal(tgt, want)


def test_no_points_gives_no_target():
    k, c2e = _camera()
    tgt = lidar_depth_targets(
        torch.zeros(2, 5, 6), torch.zeros(2, 5, dtype=torch.bool), k.expand(2, 3, 3), c2e.expand(2, 4, 4), IMAGE, CAMERA
    )
    assert (tgt == -1).all()


def test_depth_net_shapes_and_camera_conditioning():
    torch.manual_seed(0)
    net = DepthNet(6, CAMERA).eval()
    k, c2e = _camera()
    feats = torch.randn(1, 6, 2, 3)
    cam = camera_parameters(k, c2e, IMAGE.input_size)
    assert cam.shape == (1, 16)
    depth, ctx = net(feats, cam)
    assert depth.shape == (1, 4, 2, 3) and ctx.shape == (1, 5, 2, 3)
    k2 = k.clone()
    k2[:, 0, 0] *= 2
    depth2, _ = net(feats, camera_parameters(k2, c2e, IMAGE.input_size))
    assert not torch.allclose(depth, depth2)  # the depth depends on the camera
