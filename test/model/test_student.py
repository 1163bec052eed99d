"""Student: shapes of every variant, training / eval outputs, overfitting a fixed batch, errors, export."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from imkd_ros.model.camera import CameraBEV
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.decode import Detections
from imkd_ros.model.errors import ModelConfigError, ModelInputError
from imkd_ros.model.inputs import StudentInputs
from imkd_ros.model.losses import DetectionLosses
from imkd_ros.model.profile import example_inputs
from imkd_ros.model.student import Student, StudentOutput

from .model_scenes import overfit, scene_batch

VARIANTS = [("camera", "radar"), ("camera",), ("radar",)]


@pytest.mark.parametrize("mods", VARIANTS)
def test_feature_shapes(mods):
    cfg = ModelConfig.tiny(mods)
    torch.manual_seed(0)
    model = Student(config=cfg).eval()
    inputs = example_inputs(cfg, batch_size=2, num_radar=40)
    with torch.no_grad():
        out = model.features(inputs)
    assert isinstance(out, StudentOutput)
    g, c = cfg.grid, cfg.bev.channels
    bev_shape = (2, c, g.out_ny, g.out_nx)
    assert out.fused_bev.shape == out.bev.shape == bev_shape
    assert out.heatmap_logits.shape == (2, 10, g.out_ny, g.out_nx)
    assert out.head.regression.shape == (2, 10, g.out_ny, g.out_nx)
    if "camera" in mods:
        fw, fh = cfg.image.feature_size
        assert out.camera_bev.shape == bev_shape
        assert out.depth_logits.shape == (2, 1, cfg.camera.depth_bins, fh, fw)
    else:
        assert out.camera_bev is None and out.depth_logits is None and model.camera_bev is None
    if "radar" in mods:
        assert out.radar_bev.shape == bev_shape and out.radar_intensity.shape == (2, 2, g.out_ny, g.out_nx)
    else:
        assert out.radar_bev is None and model.radar_bev is None
    assert (out.fusion is not None) == (len(mods) == 2)
    dets = model(inputs)
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)


def test_default_student_shapes_at_full_resolution_input():
    cfg = ModelConfig.default()
    model = Student(config=cfg).eval()
    inputs = example_inputs(cfg, image_size=(1600, 900), num_radar=100)
    with torch.no_grad():
        out = model.features(inputs)
    assert out.fused_bev.shape == (1, cfg.bev.channels, 64, 64)
    assert out.depth_logits.shape == (1, 1, 48, 16, 44)
    assert out.intrinsics[0, 0, 0, 0].item() == pytest.approx(1266.0 * 0.44)


def test_one_student_runs_any_number_of_cameras():
    """The weights do not depend on the camera count: the same student runs a 2-camera rig (front + back), pools
    both frusta into one BEV, and the front camera's view ahead is what it was without the back camera."""
    tiny = ModelConfig.tiny(("camera",))
    cfg = dataclasses.replace(tiny, grid=dataclasses.replace(tiny.grid, x_range=(-25.6, 25.6)))  # around the ego
    torch.manual_seed(0)
    model = Student(config=cfg).eval()
    two = example_inputs(cfg, cameras=2, seed=1)
    one = StudentInputs(two.images[:, :1], two.intrinsics[:, :1], two.cam_to_ego[:, :1])
    with torch.no_grad():
        out1, out2 = model.features(one), model.features(two)
        lifted1 = model.camera_bev.lift(*_lift_args(model, one))
    fw, fh = cfg.image.feature_size
    assert out2.depth_logits.shape == (1, 2, cfg.camera.depth_bins, fh, fw)
    # per camera the same network (batched convolutions may round differently)
    assert torch.allclose(out2.depth_logits[:, 0], out1.depth_logits[:, 0], atol=1e-5)
    assert torch.equal(lifted1.bev, out1.camera_bev)
    g = cfg.grid
    xs = g.x_range[0] + (torch.arange(g.out_nx) + 0.5) * g.out_cell
    ahead, behind = xs > 4.0, xs < -4.0  # the back camera (at x -1.7 m, looking back) reaches none of the cells ahead
    diff = (out2.camera_bev - out1.camera_bev).abs().sum(dim=(0, 1))  # (h, w)
    assert diff[:, ahead].max().item() < 1e-4
    assert diff[:, behind].max().item() > 1e-3  # ... and it does add its own view behind the ego


def _lift_args(model: Student, x: StudentInputs):
    from imkd_ros.model.camera import camera_geometry
    from imkd_ros.model.preprocess import prepare_camera_images

    imgs, k = prepare_camera_images(x.images, x.intrinsics, model.config.image)
    return (imgs, *camera_geometry(k, x.cam_to_ego, model.config))


def test_training_returns_losses_with_depth_supervision():
    cfg = ModelConfig.tiny()
    torch.manual_seed(0)
    model = Student(config=cfg).train()
    inputs, gt = scene_batch(cfg)
    lidar = example_inputs(ModelConfig.tiny(("lidar",)), batch_size=2, num_lidar=2000)
    losses = model(inputs, gt=gt, lidar=lidar.lidar, lidar_mask=lidar.lidar_mask)
    assert isinstance(losses, DetectionLosses)
    assert losses.depth.item() > 0 and all(torch.isfinite(v) for v in losses.as_dict().values())


def test_overfits_a_fixed_batch():
    cfg = ModelConfig.tiny()
    torch.manual_seed(0)
    inputs, gt = scene_batch(cfg, seed=3)
    first, last = overfit(Student(config=cfg), inputs, gt, steps=20)
    assert last < 0.6 * first


def test_features_export_without_data_dependent_control_flow():
    cfg = ModelConfig.tiny()
    model = Student(config=cfg).eval()
    inputs = example_inputs(cfg, num_radar=40)

    class Flat(torch.nn.Module):
        def __init__(self, student: Student) -> None:
            super().__init__()
            self.student = student

        def forward(self, images, intrinsics, cam_to_ego, radar, radar_mask):
            out = self.student.features(StudentInputs(images, intrinsics, cam_to_ego, radar, radar_mask))
            return out.head.heatmap, out.head.regression

    flat = Flat(model)
    exported = torch.export.export(flat, (), kwargs=inputs.tensors(), strict=False)
    inputs2 = example_inputs(cfg, num_radar=40, seed=5).tensors()  # other values, same shapes
    for got, want in zip(exported.module()(**inputs2), flat(**inputs2), strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_missing_or_malformed_inputs_raise():
    cfg = ModelConfig.tiny()
    model = Student(config=cfg).eval()
    inputs = example_inputs(cfg, num_radar=10)
    with pytest.raises(ModelInputError, match="radar is required"):
        model(dataclasses.replace(inputs, radar=None, radar_mask=None))
    with pytest.raises(ModelInputError, match="intrinsics must have shape"):
        model(dataclasses.replace(inputs, intrinsics=torch.eye(3)))
    with pytest.raises(ModelInputError, match="intrinsics must have shape"):  # 1 image, 2 calibrations
        model(dataclasses.replace(inputs, intrinsics=inputs.intrinsics.expand(1, 2, 3, 3)))
    with pytest.raises(ModelInputError, match="images must have shape"):  # the old (B, 3, H, W) layout
        model(dataclasses.replace(inputs, images=inputs.images[:, 0]))
    with pytest.raises(ModelInputError, match="radar must have shape"):
        model(dataclasses.replace(inputs, radar=torch.zeros(2, 10, 7)))
    with pytest.raises(ModelInputError, match="gt is required"):
        model.train()(inputs)


def test_parts_and_config_must_agree():
    with pytest.raises(ModelConfigError, match="Teacher"):
        Student(config=ModelConfig.tiny(("lidar",)))
    cam_cfg = ModelConfig.tiny(("camera",))
    with pytest.raises(ModelConfigError, match="radar_bev"):
        Student(radar_bev=torch.nn.Identity(), config=cam_cfg)
    part = CameraBEV(cam_cfg)
    assert Student(camera_bev=part, config=cam_cfg).camera_bev is part  # given parts are used, not rebuilt


def test_device_parameter():
    model = Student(config=ModelConfig.tiny(("radar",)), device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
