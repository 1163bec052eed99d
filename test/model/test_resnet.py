"""The paper setting's ResNet-50 image trunk: torchvision's layout (so ImageNet weights of torchvision load as they
are), its stage outputs, and the loading of a user's weights file with clear errors for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imkd_ros.model import ModelConfig, Student
from imkd_ros.model.errors import ModelConfigError
from imkd_ros.model.resnet import RESNET50_CHANNELS, ResNet50Trunk, load_imagenet_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torchvision_format(seed: int) -> dict[str, torch.Tensor]:
    """A state_dict laid out as torchvision's resnet50(): the trunk's entries plus the classifier ``fc``."""
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in ResNet50Trunk().state_dict().items()}
    for v in state.values():
        if v.is_floating_point():
            v.normal_()
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    return state


def test_trunk_has_torchvisions_resnet50_layout() -> None:
    """torchvision's resnet50: 25,557,032 parameters of which 2,049,000 in ``fc``, 320 state entries with ``fc``."""
    trunk = ResNet50Trunk()
    state = trunk.state_dict()
    assert sum(p.numel() for p in trunk.parameters()) == 25_557_032 - 2_049_000
    assert len(state) == 318
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # the stride sits on the 3x3 (v1.5)
    assert state["layer4.2.bn3.running_var"].shape == (2048,) and "layer4.3.conv1.weight" not in state
    feats = trunk.eval()(torch.zeros(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(RESNET50_CHANNELS)
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_imagenet_weights_load_from_a_torchvision_file(tmp_path: Path) -> None:
    want = _torchvision_format(1)
    for name, saved in (
        ("plain.pth", want),
        ("wrapped.pth", {"state_dict": {f"module.{k}": v for k, v in want.items()}}),
    ):
        torch.save(saved, tmp_path / name)
        trunk = ResNet50Trunk()
        assert load_imagenet_weights(trunk, tmp_path / name) == 318
        got = trunk.state_dict()
        assert all(torch.equal(got[k], want[k]) for k in got)


def test_anything_else_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_imagenet_weights(ResNet50Trunk(), tmp_path / "nope.pth")
    state = _torchvision_format(2)
    del state["layer3.5.bn2.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(ModelConfigError, match=r"1 missing \(e.g. \['layer3.5.bn2.weight'\]\)"):
        load_imagenet_weights(ResNet50Trunk(), tmp_path / "missing.pth")
    state = _torchvision_format(2)
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ModelConfigError, match=r"shapes differ: \['conv1.weight \(64, 3, 3, 3\)"):
        load_imagenet_weights(ResNet50Trunk(), tmp_path / "shape.pth")
    torch.save(Student(config=ModelConfig.tiny()).state_dict(), tmp_path / "student.pth")
    with pytest.raises(ModelConfigError, match="not a torchvision ResNet-50 state_dict"):
        load_imagenet_weights(ResNet50Trunk(), tmp_path / "student.pth")


def test_paper_config_is_the_resnet50_student() -> None:
    cfg = ModelConfig.paper()
    assert cfg.camera.trunk == "resnet50" and cfg.image.input_size == (704, 256)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    student = Student(config=cfg)
    assert isinstance(student.camera_bev.backbone.trunk, ResNet50Trunk)
    assert (
        ModelConfig.default().camera.trunk == "basic"
        and Student(config=ModelConfig.tiny()).camera_bev.backbone.trunk is None
    )
    with pytest.raises(ModelConfigError, match="stage_channels"):
        ModelConfig.from_dict({**cfg.to_dict(), "camera": {**cfg.to_dict()["camera"], "stage_blocks": [2, 2, 2, 2]}})
