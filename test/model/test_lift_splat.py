"""Lift-splat geometry and pooling: vectorised pooling equals a naive loop (one camera per sample, and several cameras
pooled into one BEV); a point lands in the right cell."""

from __future__ import annotations

import numpy as np
import torch

from imkd_ros.model.config import CameraConfig, GridConfig, ImageConfig
from imkd_ros.model.depth import depth_bin_centers
from imkd_ros.model.lift_splat import frustum_cell_index, frustum_pixels, frustum_points, splat
from imkd_ros.model.profile import front_camera

IMAGE = ImageConfig(input_size=(48, 32))  # feature map 3 x 2
CAMERA = CameraConfig(depth_range=(2.0, 18.0), depth_bins=4)  # bin centres 4, 8, 12, 16
GRID = GridConfig(x_range=(0.0, 20.0), y_range=(-10.0, 10.0), z_range=(-2.0, 4.0), cell=1.0, stride=1)


def _camera(k: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    _, c2e = front_camera()
    if k is None:
        k = np.array([[20.0, 0.0, 23.5], [0.0, 20.0, 23.5], [0.0, 0.0, 1.0]])
    return torch.tensor(k, dtype=torch.float32)[None], c2e[None]


def _naive_splat(probs, ctx, intr, c2e) -> np.ndarray:
    """Reference: loop over every (b, d, r, c), unproject with an explicit matrix inverse, add into its cell."""
    b, d, fh, fw = probs.shape
    out = np.zeros((b, ctx.shape[1], GRID.ny, GRID.nx))
    depths = CAMERA.depth_range[0] + CAMERA.depth_step * (np.arange(d) + 0.5)
    for bi in range(b):
        kinv = np.linalg.inv(intr[bi].double().numpy())
        rot, t = c2e[bi, :3, :3].double().numpy(), c2e[bi, :3, 3].double().numpy()
        for di in range(d):
            for r in range(fh):
                for c in range(fw):
                    u, v = 16 * c + 7.5, 16 * r + 7.5
                    p = rot @ (depths[di] * (kinv @ np.array([u, v, 1.0]))) + t
                    ix = int(np.floor((p[0] - GRID.x_range[0]) / GRID.cell))
                    iy = int(np.floor((p[1] - GRID.y_range[0]) / GRID.cell))
                    if 0 <= ix < GRID.nx and 0 <= iy < GRID.ny and GRID.z_range[0] <= p[2] < GRID.z_range[1]:
                        out[bi, :, iy, ix] += probs[bi, di, r, c].item() * ctx[bi, :, r, c].double().numpy()
    return out


def test_vectorised_splat_equals_naive_loop():
    gen = torch.Generator().manual_seed(0)
    b, c = 2, 3
    fw, fh = IMAGE.feature_size
    intr = torch.zeros(b, 3, 3)
    intr[:, 0, 0] = torch.tensor([8.0, 12.0])
    intr[:, 1, 1] = torch.tensor([9.0, 14.0])
    intr[:, 0, 1] = torch.tensor([0.0, 0.5])
    intr[:, 0, 2] = torch.tensor([24.0, 20.0])
    intr[:, 1, 2] = torch.tensor([16.0, 10.0])
    intr[:, 2, 2] = 1.0
    _, c2e0 = front_camera()
    c2e = c2e0.expand(b, 4, 4).clone()
    yaw = 0.3  # second camera turned left and moved
    rz = torch.tensor([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]]).float()
    c2e[1, :3, :3] = rz @ c2e0[:3, :3]
    c2e[1, :3, 3] = torch.tensor([1.0, 0.5, 1.2])
    probs = torch.rand(b, CAMERA.depth_bins, fh, fw, generator=gen).softmax(dim=1)
    ctx = torch.randn(b, c, fh, fw, generator=gen)
    index = frustum_cell_index(intr[:, None], c2e[:, None], IMAGE, CAMERA, GRID)  # one camera per sample
    got = splat(probs, ctx, index, GRID)
    want = _naive_splat(probs, ctx, intr, c2e)
    assert got.shape == (b, c, GRID.ny, GRID.nx)
    assert (np.abs(want) > 0).sum() >= 6  # the example does put samples in several cells
    assert index.max().item() == b * GRID.ny * GRID.nx  # ... and drops some outside the grid
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)

    # The same two cameras as ONE sample of a two-camera rig: one BEV, the sum of both cameras' splats (they
    # overlap in some cells, so a camera that overwrote or dropped the other would fail).
    index2 = frustum_cell_index(intr[None], c2e[None], IMAGE, CAMERA, GRID)
    assert index2.shape == (1, 2 * CAMERA.depth_bins * fh * fw)
    got2 = splat(probs, ctx, index2, GRID)
    assert got2.shape == (1, c, GRID.ny, GRID.nx)
    both = (np.abs(want[0]).sum(0) > 0) & (np.abs(want[1]).sum(0) > 0)
    assert both.sum() >= 1
    np.testing.assert_allclose(got2[0].numpy(), want.sum(0), atol=1e-5)


def test_point_at_known_depth_and_pixel_goes_to_its_cell():
    intr, c2e = _camera()  # feature cell (row 1, col 1) looks through (23.5, 23.5) = along the optical axis
    fw, fh = IMAGE.feature_size
    probs = torch.zeros(1, CAMERA.depth_bins, fh, fw)
    probs[:, 0] = 1.0
    probs[0, :, 1, 1] = 0.0
    probs[0, 2, 1, 1] = 1.0  # 12 m
    ctx = torch.zeros(1, 2, fh, fw)
    ctx[0, :, 1, 1] = torch.tensor([3.0, -1.0])
    bev = splat(probs, ctx, frustum_cell_index(intr[:, None], c2e[:, None], IMAGE, CAMERA, GRID), GRID)
    # Ego point: camera at (1.7, 0, 1.5) + 12 m forward -> x 13.7 -> column 13; y 0 -> row 10.
    nz = torch.nonzero(bev.abs().sum(dim=1)[0])
    assert nz.tolist() == [[10, 13]]
    assert bev[0, :, 10, 13].tolist() == [3.0, -1.0]


def test_frustum_points_follow_the_optical_axis():
    intr, c2e = _camera()
    pts = frustum_points(intr, c2e, IMAGE, CAMERA)
    assert pts.shape == (1, 4, 2, 3, 3)
    depths = depth_bin_centers(CAMERA)
    assert torch.allclose(pts[0, :, 1, 1], torch.stack([1.7 + depths, torch.zeros(4), torch.full((4,), 1.5)], -1))
    # A cell to the right of the centre (larger u) is to the ego's right (smaller y).
    assert (pts[0, :, 1, 2, 1] < 0).all() and (pts[0, :, 1, 0, 1] > 0).all()
    # Pixel centres of the feature cells.
    pix = frustum_pixels(IMAGE)
    assert pix.shape == (2, 3, 2) and pix[1, 2].tolist() == [39.5, 23.5]
