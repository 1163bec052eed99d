"""Image resize/crop and the matching intrinsics."""

from __future__ import annotations

import pytest
import torch

from imkd_ros.model.config import ImageConfig
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.preprocess import adjust_intrinsics, prepare_images, resize_crop_geometry
from imkd_ros.model.profile import front_camera


def test_nuscenes_geometry():
    assert resize_crop_geometry((1600, 900), (704, 256)) == (704, 396, 0, 140)


def _project(k: torch.Tensor, p_cam: torch.Tensor) -> torch.Tensor:
    uvw = k @ p_cam
    return uvw[:2] / uvw[2]


def test_bright_spot_lands_where_the_adjusted_intrinsics_project_it():
    cfg = ImageConfig()
    k, _ = front_camera((1600, 900))
    p_cam = torch.tensor([3.0, 1.5, 20.0])  # right of and below the optical axis
    u0, v0 = _project(k, p_cam).tolist()
    img = torch.zeros(1, 3, 900, 1600)
    iu, iv = round(u0), round(v0)
    img[:, :, iv - 12 : iv + 13, iu - 12 : iu + 13] = 1.0  # 25x25 block centred on the projection
    out, k2 = prepare_images(img, k[None], cfg)
    assert out.shape == (1, 3, 256, 704)
    u1, v1 = _project(k2[0], p_cam).tolist()
    raw = out[0, 0] * cfg.std[0] + cfg.mean[0]
    ys, xs = torch.nonzero(raw > 0.5, as_tuple=True)
    assert abs(xs.float().mean().item() - u1) < 0.6
    assert abs(ys.float().mean().item() - v1) < 0.6


def test_input_size_images_are_only_normalised():
    cfg = ImageConfig(input_size=(64, 32))
    img = torch.rand(2, 3, 32, 64)
    k = torch.eye(3).expand(2, 3, 3)
    out, k2 = prepare_images(img, k, cfg)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    assert torch.allclose(out, (img - mean) / std)
    assert torch.equal(k2, k)


def test_adjust_intrinsics_scales_focal_length():
    k, _ = front_camera((1600, 900))
    k2 = adjust_intrinsics(k[None], (1600, 900), (704, 256))[0]
    assert k2[0, 0].item() == pytest.approx(1266.0 * 0.44)
    assert k2[1, 2].item() == pytest.approx((449.5 + 0.5) * 0.44 - 0.5 - 140)


@pytest.mark.parametrize(
    "img, k, match",
    [
        (torch.zeros(1, 1, 10, 10), torch.eye(3)[None], "images"),
        (torch.zeros(2, 3, 10, 10), torch.eye(3)[None], "intrinsics"),
    ],
)
def test_bad_inputs_raise(img, k, match):
    with pytest.raises(ModelInputError, match=match):
        prepare_images(img, k, ImageConfig())
