"""The environment and command line of detector_node child processes (imkd_ros.pipeline.env), without starting one."""

from __future__ import annotations

from pathlib import Path

from imkd_ros.pipeline.env import DETECTOR_REMAPS, child_env, node_command

REPO = Path(__file__).resolve().parents[2]


def test_child_env_puts_this_source_tree_first() -> None:
    env = child_env()
    assert env["PYTHONPATH"].split(":")[0] == str(REPO)
    assert env["PYTHONUNBUFFERED"] == "1" and 1 <= int(env["ROS_DOMAIN_ID"]) <= 101


def test_node_command_files_parameters_and_remaps(tmp_path: Path) -> None:
    cmd = node_command(tmp_path / "m.pt", tmp_path / "p.yaml", score_threshold=0.0, extrinsics_source="tf")
    files = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--params-file"]
    assert files == [str(REPO / "config" / "detector.yaml"), str(tmp_path / "p.yaml")]  # defaults, then overrides
    params = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]
    assert f"checkpoint:={tmp_path / 'm.pt'}" in params and "score_threshold:=0.0" in params
    assert "extrinsics_source:=tf" in params
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "-r"] == list(DETECTOR_REMAPS)
