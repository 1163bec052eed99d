"""ModelConfig: dict / YAML round trips, variants, validation."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from imkd_ros.core.classes import CLASSES
from imkd_ros.model.config import BEVConfig, GridConfig, ImageConfig, ModelConfig
from imkd_ros.model.errors import ModelConfigError

VARIANTS = [("camera", "radar"), ("camera",), ("radar",), ("lidar",)]


@pytest.mark.parametrize("mods", VARIANTS)
@pytest.mark.parametrize("factory", [ModelConfig.default, ModelConfig.tiny])
def test_dict_round_trip(factory, mods, tmp_path):
    cfg = factory(mods)
    d = cfg.to_dict()
    assert ModelConfig.from_dict(d) == cfg
    # Through YAML (lists, plain types only) and back.
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(d))
    back = ModelConfig.from_dict(yaml.safe_load(path.read_text()))
    assert back == cfg
    assert isinstance(back.grid.x_range, tuple) and isinstance(back.grid.x_range[0], float)


def test_changed_values_survive_round_trip():
    cfg = dataclasses.replace(
        ModelConfig.default(), grid=GridConfig(cell=0.8, stride=1), bev=BEVConfig(channels=32), classes=("car",)
    )
    back = ModelConfig.from_dict(cfg.to_dict())
    assert back.grid.nx == 64 and back.grid.out_nx == 64 and back.bev.channels == 32
    assert back.classes == ("car",) and back.num_classes == 1
    assert back.class_nms_distance == (cfg.decode.nms_distance[0],)


def test_missing_keys_take_defaults_and_yaml_ints_become_floats():
    cfg = ModelConfig.from_dict({"modalities": ["radar"], "grid": {"x_range": [0, 51.2]}})
    assert cfg.modalities == ("radar",)
    assert cfg.grid.x_range == (0.0, 51.2) and isinstance(cfg.grid.x_range[0], float)
    assert cfg.camera == ModelConfig().camera


def test_default_grid_and_sizes():
    cfg = ModelConfig.default()
    assert (cfg.grid.nx, cfg.grid.ny) == (128, 128)
    assert (cfg.grid.out_nx, cfg.grid.out_ny) == (64, 64)
    assert cfg.grid.out_cell == pytest.approx(0.8)
    assert cfg.image.input_size == (704, 256) and cfg.image.feature_size == (44, 16)
    assert cfg.camera.depth_bins == 48
    assert cfg.classes == CLASSES
    assert ModelConfig.default(("lidar",)).is_teacher and not cfg.is_teacher


@pytest.mark.parametrize(
    "data, where",
    [
        ({"gird": {}}, "gird"),
        ({"grid": {"cel": 0.4}}, "cel"),
        ({"grid": {"cell": "big"}}, "ModelConfig.grid.cell"),
        ({"grid": {"stride": 1.5}}, "ModelConfig.grid.stride"),
        ({"modalities": "camera"}, "ModelConfig.modalities"),
        ({"image": []}, "ModelConfig.image"),
    ],
)
def test_from_dict_rejects_bad_data(data, where):
    with pytest.raises(ModelConfigError, match=where):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "make, where",
    [
        (lambda: GridConfig(cell=0.3), "GridConfig.x_range"),
        (lambda: GridConfig(x_range=(5.0, 1.0)), "GridConfig.x_range"),
        (lambda: GridConfig(stride=3), "GridConfig.x_range"),
        (lambda: ImageConfig(input_size=(700, 256)), "ImageConfig.input_size"),
        (lambda: ModelConfig(modalities=("camera", "lidar")), "ModelConfig.modalities"),
        (lambda: ModelConfig(modalities=("sonar",)), "ModelConfig.modalities"),
        (lambda: ModelConfig(modalities=()), "ModelConfig.modalities"),
        (lambda: ModelConfig(classes=("truck", "car")), "ModelConfig.classes"),
        (lambda: ModelConfig(classes=("tram",)), "ModelConfig.classes"),
    ],
)
def test_invalid_configs_raise_naming_the_field(make, where):
    with pytest.raises(ModelConfigError, match=where):
        make()


def test_configs_are_frozen():
    cfg = ModelConfig.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.grid.cell = 0.2  # type: ignore[misc]
