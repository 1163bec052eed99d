"""The detector node's parameters (config/detector.yaml -> DetectorNodeConfig): the YAML is the one source of the
defaults, the config is typed and frozen, every bad, missing or unknown parameter is refused with an error naming it,
the mountings of the rig files are the rig's, and two configs tell which parameters differ (what the node applies at
run time; the node's own run-time change is tested in test/nodes/test_detector_node.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from imkd_ros.pipeline.assemble import FrameAssembler
from imkd_ros.pipeline.detector_params import DetectorNodeConfig, default_parameters, mountings
from imkd_ros.pipeline.params import ParameterError, flatten_parameters


def test_the_yaml_defaults_build_a_typed_frozen_config() -> None:
    cfg = DetectorNodeConfig.defaults()
    assert cfg.cameras == ("front",) and cfg.radars == ("front",) and cfg.radar_sweeps == 6
    assert (cfg.checkpoint, cfg.device, cfg.backend, cfg.output_frame) == ("", "cuda", "auto", "base_link")
    assert isinstance(cfg.threads, int) and isinstance(cfg.score_threshold, float) and cfg.score_threshold == 0.3
    assert cfg.diagnostics.period == 1.0 and cfg.diagnostics.input_timeout == 2.0
    np.testing.assert_allclose(cfg.radar_to_base["front"].translation, [3.41, 0.0, 0.5])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.score_threshold = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.camera_to_base["back"] = cfg.camera_to_base["front"]  # type: ignore[index]


def test_numbers_given_as_integers_become_floats() -> None:
    """A YAML file may write 1 for a double (rclpy then hands an int): the config holds a float."""
    cfg = DetectorNodeConfig.from_parameters({**default_parameters(), "tf_wait": 2, "camera_set_window": 0})
    assert isinstance(cfg.tf_wait, float) and cfg.tf_wait == 2.0 and isinstance(cfg.camera_set_window, float)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("score_threshold", 1.5, "parameter score_threshold: 1.5 is greater than the maximum"),
        ("backend", "tensorflow", "parameter backend: 'tensorflow' is not one of"),
        ("radar_sweeps", 0, "parameter radar_sweeps: 0 is less than the minimum"),
        ("diagnostics.period", "fast", "parameter diagnostics.period: 'fast' is not of type"),
        ("camera_to_base.front.rotation", [0.0, 0.0, 0.0, 0.0], "camera_to_base.front.rotation is a zero quaternion"),
        ("scor_threshold", 0.5, "parameter scor_threshold: not a parameter of detector_node"),
    ],
)
def test_a_bad_or_unknown_parameter_is_named(name: str, value: Any, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        DetectorNodeConfig.from_parameters({**default_parameters(), name: value})


def test_a_missing_parameter_is_named_and_a_missing_mounting_only_without_tf() -> None:
    p = default_parameters()
    with pytest.raises(ParameterError, match="parameter warn_period: missing"):
        DetectorNodeConfig.from_parameters({k: v for k, v in p.items() if k != "warn_period"})
    two = {**p, "radars": ["front", "rear"]}
    assert list(DetectorNodeConfig.from_parameters(two).radar_to_base) == ["front"]  # tf must give the rear one
    with pytest.raises(ParameterError, match="radar_to_base.rear is not set"):
        DetectorNodeConfig.from_parameters(two).required_mountings()  # the offline replay has no tf
    with pytest.raises(ParameterError, match="radar_to_base.rear is not set"):
        DetectorNodeConfig.from_parameters({**two, "extrinsics_source": "parameters"})


def test_changed_names_what_differs() -> None:
    p = default_parameters()
    cfg = DetectorNodeConfig.from_parameters(p)
    assert cfg.changed(DetectorNodeConfig.from_parameters(dict(p))) == []
    new = {**p, "score_threshold": 0.5, "diagnostics.input_timeout": 4.0, "publish_markers": False}
    assert cfg.changed(DetectorNodeConfig.from_parameters(new)) == [
        "score_threshold", "publish_markers", "diagnostics.input_timeout"
    ]  # fmt: skip
    moved = {**p, "radar_to_base.front.translation": [3.5, 0.0, 0.5]}
    assert cfg.changed(DetectorNodeConfig.from_parameters(moved)) == ["radar_to_base"]


def test_parameters_and_mountings_come_from_the_node_yaml() -> None:
    p = default_parameters()
    assert p["radars"] == ["front"] and p["radar_sweeps"] == 6 and p["cameras"] == ["front"]
    cameras, radars = mountings(p)
    np.testing.assert_allclose(radars["front"].translation, [3.41, 0.0, 0.5])
    camera = cameras["front"]
    np.testing.assert_allclose(camera.rotation @ [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], atol=1e-12)  # optical z forward
    asm = FrameAssembler.from_config(DetectorNodeConfig.from_parameters(p), radars)
    assert asm.radars == ("front",) and asm.cameras == ("front",) and asm.sync.sweeps == 6 and asm.use_ego_pose
    with pytest.raises(ParameterError, match="radar_to_base.rear is not set"):
        mountings({**p, "radars": ["front", "rear"]})
    with pytest.raises(ParameterError, match="camera_to_base.back is not set"):
        mountings({**p, "cameras": ["front", "back"]})
    cameras2, radars2 = mountings({**p, "radars": ["front", "rear"]}, required=False)  # tf must give the rear one
    assert list(radars2) == ["front"] and np.array_equal(cameras2["front"].matrix(), camera.matrix())


def test_the_nuscenes_rig_file_gives_six_cameras_and_five_radars_in_the_readers_order() -> None:
    """config/detector_nuscenes.yaml over the defaults: the synthetic nuScenes rig's sensors and mountings."""
    import yaml

    from imkd_ros.core.shipped import shipped_file
    from imkd_ros.data.synth.rig import RIGS

    doc = yaml.safe_load(shipped_file("config/detector_nuscenes.yaml").read_text())["/**"]["ros__parameters"]
    p = {k: v for k, v in default_parameters().items() if not k.startswith(("camera_to_base.", "radar_to_base."))}
    p.update(flatten_parameters(doc))
    cameras, radars = mountings(p)
    rig = RIGS["nuscenes"]
    assert [f"CAM_{c.upper()}" for c in cameras] == list(rig.cameras)
    assert [f"RADAR_{r.upper()}" for r in radars] == list(rig.radars)
    for name, pose in [*cameras.items(), *((f"_{r}", v) for r, v in radars.items())]:
        channel = f"CAM_{name.upper()}" if not name.startswith("_") else f"RADAR{name.upper()}"
        np.testing.assert_allclose(pose.matrix(), rig.calibrations[channel].sensor_to_ego.matrix(), atol=1e-5)
    asm = FrameAssembler.from_config(DetectorNodeConfig.from_parameters(p), radars)
    assert asm.cameras[0] == "front" and len(asm.cameras) == 6 and len(asm.radars) == 5
    # the rig's file names the shipped surround student: a +-51.2 m grid, not the front model
    from imkd_ros.core.shipped import resolve_checkpoint
    from imkd_ros.model.checkpoint import load_checkpoint

    config = load_checkpoint(resolve_checkpoint(doc["checkpoint"])).config
    assert config.grid.x_range == (-51.2, 51.2) and config.grid.y_range == (-51.2, 51.2)
