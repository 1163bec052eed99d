"""Image resize/crop and the matching intrinsics."""

from __future__ import annotations

import numpy as np
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


@pytest.mark.parametrize(
    "src, dst",
    [
        ((1600, 900), (704, 256)),  # nuScenes: rows 300-900 resized, period 25 -> 11
        ((1280, 720), (704, 256)),
        ((1600, 1200), (704, 256)),
        ((1920, 1080), (704, 256)),
        ((1600, 900), (352, 128)),
        ((1601, 899), (704, 256)),  # no short period: the whole image is resized
        ((800, 600), (704, 256)),  # an upscale
        ((704, 300), (704, 256)),  # crop only
    ],
)
def test_fit_image_resizes_only_the_kept_rows_with_the_same_pixels(src, dst):
    """fit_image area-resizes only the part of the image the crop keeps, yet gives the pixels of resizing the whole
    image and cropping after (what training saw before this shortcut), to the bit."""
    import cv2

    from imkd_ros.model.preprocess import fit_image, resize_crop_geometry

    rng = np.random.default_rng(sum(src) + sum(dst))
    image = rng.integers(0, 256, (src[1], src[0], 3), dtype=np.uint8)
    new_w, new_h, left, top = resize_crop_geometry(src, dst)
    whole = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA) if (new_w, new_h) != src else image
    want = whole[top : top + dst[1], left : left + dst[0]]
    got = fit_image(image, dst)
    assert got.shape == (dst[1], dst[0], 3) and got.flags.c_contiguous
    assert np.array_equal(got, want)
