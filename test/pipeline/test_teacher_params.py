"""The teacher node's parameters (config/teacher.yaml -> TeacherNodeConfig): the YAML is the one source of the
defaults, its mounting is the rig's LIDAR_TOP, and every bad, missing or unknown parameter is refused with an error
that names it (in the library here, and at node start-up in test/bag/test_teacher_node.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from imkd_ros.data.synth.rig import RIG
from imkd_ros.pipeline.params import ParameterError
from imkd_ros.pipeline.teacher_params import TeacherNodeConfig, teacher_default_parameters


def test_the_yaml_defaults_build_the_config_with_the_rigs_lidar_mounting() -> None:
    params = teacher_default_parameters()
    assert sorted(params) == [
        "checkpoint", "density_saturation", "device", "lidar_to_base.rotation", "lidar_to_base.translation",
        "max_points", "output_frame", "warn_period",
    ]  # fmt: skip
    cfg = TeacherNodeConfig.from_parameters(params)
    assert (cfg.checkpoint, cfg.device, cfg.output_frame) == ("teacher.pt", "cpu", "base_link")
    lidar = RIG["LIDAR_TOP"].sensor_to_ego
    np.testing.assert_allclose(cfg.lidar_to_base.rotation, lidar.rotation, atol=1e-12)
    np.testing.assert_allclose(cfg.lidar_to_base.translation, lidar.translation, atol=1e-12)
    assert (cfg.density_saturation, cfg.max_points, cfg.warn_period) == (64.0, 400000, 5.0)
    assert isinstance(cfg.max_points, int) and isinstance(cfg.density_saturation, float)
    with pytest.raises(AttributeError):
        cfg.device = "cuda"  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("device", "gpu", "parameter device: 'gpu' is not one of cpu, cuda"),
        ("checkpoint", "", "parameter checkpoint:"),
        ("output_frame", 3, "parameter output_frame:"),
        ("max_points", 0, "parameter max_points: 0 is below the minimum of 1"),
        ("max_points", 2.5, "parameter max_points: 2.5 is not an integer"),
        ("density_saturation", 0.0, "parameter density_saturation: must be greater than 0"),
        ("density_saturation", float("nan"), "parameter density_saturation:"),
        ("warn_period", -1.0, "parameter warn_period: -1.0 is below the minimum of 0.0"),
        ("warn_period", True, "parameter warn_period: True is not a number"),
        ("lidar_to_base.rotation", [0.0, 0.0, 0.0, 0.0], "parameter lidar_to_base.rotation is a zero quaternion"),
        ("lidar_to_base.translation", [1.0, 2.0], "parameter lidar_to_base:"),
        ("lidar_to_base.translation", ["a", "b", "c"], "parameter lidar_to_base:"),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter(name: str, value: Any, says: str) -> None:
    params = {**teacher_default_parameters(), name: value}
    with pytest.raises(ParameterError) as err:
        TeacherNodeConfig.from_parameters(params)
    assert says in str(err.value)
    assert isinstance(err.value, ValueError)


def test_an_unknown_or_missing_parameter_is_refused_and_ros_own_pass() -> None:
    params = teacher_default_parameters()
    with pytest.raises(ParameterError, match=r"parameter max_point: not a parameter of teacher_node"):
        TeacherNodeConfig.from_parameters({**params, "max_point": 10})
    with pytest.raises(ParameterError, match=r"parameter warn_period: not set"):
        TeacherNodeConfig.from_parameters({k: v for k, v in params.items() if k != "warn_period"})
    ros = {"use_sim_time": False, "qos_overrides./parameter_events.publisher.depth": 1000}
    assert TeacherNodeConfig.from_parameters({**params, **ros}).device == "cpu"
