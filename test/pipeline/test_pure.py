"""The detector node's logic lives in modules without rclpy or ROS message types (so it is tested as plain
functions and runs where ROS is not installed): importing them loads neither."""

from __future__ import annotations

import subprocess
import sys

PURE = (
    "imkd_ros.pipeline.tf",
    "imkd_ros.pipeline.extrinsics",
    "imkd_ros.pipeline.diagnostics",
    "imkd_ros.pipeline.params",
    "imkd_ros.pipeline.objects",
    "imkd_ros.pipeline.assemble",
    "imkd_ros.pipeline.sync",
    "imkd_ros.bag.interfaces",
)


def test_node_logic_imports_no_ros() -> None:
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {PURE!r}]; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'vision_msgs', "
        "'autoware_perception_msgs', 'tf2_msgs', 'diagnostic_msgs', 'geometry_msgs', 'std_msgs')); print(bad)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert res.stdout.strip() == "[]", res.stdout
