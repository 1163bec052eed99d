"""The node's parameter schema (config/detector.schema.json, JSON Schema draft-07): config/detector.yaml passes, a
bad file gives one clear error naming the parameter (in the tests and at node start-up), every parameter has a
description, model-defining ones and frames are read-only, thresholds are not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from imkd_ros.pipeline.detector_params import default_parameters
from imkd_ros.pipeline.env import ros_env
from imkd_ros.pipeline.params import (
    ParameterError,
    check_names,
    load_schema,
    node_properties,
    parameter_spec,
    validate_file,
    validate_parameters,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_file_is_valid_draft07() -> None:
    schema = json.loads((REPO / "config" / "detector.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    doc = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(doc)  # the file as a whole, with the standard validator
    assert validate_file(REPO / "config" / "detector.yaml")["output_frame"] == "base_link"
    validate_parameters(default_parameters())


def test_every_parameter_is_described_and_yaml_and_schema_agree() -> None:
    props = node_properties()
    flat = default_parameters()
    mounting = ("camera_to_base.", "radar_to_base.")
    assert {n for n in flat if not n.startswith(mounting)} == {n for n in props if not n.startswith(mounting)}
    for name, value in flat.items():
        spec = parameter_spec(name)
        assert len(spec.description) > 10, name
        if "_to_base." not in name:  # the mountings are the rig's, no schema default
            assert props[name]["default"] == value, name
    read_only = {n for n in flat if parameter_spec(n).read_only}
    assert {"checkpoint", "device", "backend", "threads", "radars", "output_frame", "extrinsics_source"} <= read_only
    assert "camera_to_base.front.rotation" in read_only and "radar_to_base.front.translation" in read_only
    assert {"cameras", "camera_set_lead", "camera_set_window"} <= read_only
    changeable = {"score_threshold", "diagnostics.processing_warn_ms", "diagnostics.processing_error_ms", "tf_wait"}
    assert not changeable & read_only
    s = parameter_spec("score_threshold")
    assert (s.minimum, s.maximum) == (0.0, 1.0) and "changeable" in s.constraints()
    assert parameter_spec("device").enum == ("cuda", "cpu")
    assert load_schema()["definitions"]["detector_node"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score_threshold": 1.5}, "parameter score_threshold: 1.5 is greater than the maximum of 1.0"),
        ({"score_treshold": 0.5}, "parameter score_treshold: not a parameter of detector_node"),
        ({"device": "gpu"}, "parameter device: 'gpu' is not one of"),
        ({"radar_sweeps": 0}, "parameter radar_sweeps: 0 is less than the minimum of 1"),
        (
            {"camera_to_base": {"front": {"translation": [1, 2], "rotation": [1, 0, 0, 0]}}},
            "parameter camera_to_base.front.translation",
        ),
        ({"cameras": ["front", "front"]}, "parameter cameras"),
        ({"extrinsics_source": "guess"}, "parameter extrinsics_source"),
        ({"diagnostics": {"period": 0.0}}, "parameter diagnostics"),
    ],
)
def test_a_bad_file_gives_one_error_naming_the_parameter(tmp_path: Path, change: dict, message: str) -> None:
    doc = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())
    doc["/**"]["ros__parameters"].update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParameterError) as info:
        validate_file(path)
    text = str(info.value)
    assert message in text and text.count("parameter ") - text.count("a parameter ") == 1 and "\n" not in text, text


def test_overrides_are_checked_by_name() -> None:
    check_names(["score_threshold", "radar_to_base.rear.rotation", "use_sim_time", "qos_overrides./tf.depth"])
    with pytest.raises(ParameterError, match="parameter sore_threshold: not a parameter"):
        check_names(["sore_threshold"])


def test_node_start_up_refuses_a_bad_parameter_file(tmp_path: Path) -> None:
    """At start-up (before the model loads): one line naming the parameter, exit 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"score_threshold": 7.0, "radar_sweeps": 6}}}))
    cmd = [sys.executable, "-m", "imkd_ros.nodes.detector_node", "--ros-args", "--params-file", str(bad)]
    res = subprocess.run(cmd, env=ros_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("detector_node: error: parameter score_threshold"), res.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"score_treshold": 0.5}}}))
    cmd[-1] = str(typo)
    res = subprocess.run(cmd, env=ros_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "parameter score_treshold: not a parameter of detector_node" in res.stderr
