"""``teacher_node``: LiDAR in, teacher targets out (``ros2 run imkd_ros teacher_node``), so that a recording
session captures distillation targets next to the sensor data.

Thin: the cloud is converted (:mod:`imkd_ros.ros.convert`), moved into ``base_link``
(:func:`imkd_ros.core.sweeps.lidar_sweep_to_ref`), cut to the teacher's grid and run through it exactly as
``imkd bag teacher-targets`` does (:func:`imkd_ros.apps.bag_targets.lidar_frame`,
:func:`imkd_ros.distill.targets.compute_teacher_targets`); the result is published as
``imkd_msgs/msg/TeacherTargets`` (:func:`imkd_ros.apps.bag_targets.targets_msg_fields`; maps float32, unlike the
cache's float16).

Topics (remap with ``-r``): in ``~/input/lidar`` (``sensor_msgs/PointCloud2`` with ``x y z intensity ring``, sensor
frame); out ``~/output/targets`` (``imkd_msgs/msg/TeacherTargets``: header = the input's stamp with ``frame_id`` =
``output_frame``; ``sample_token`` = the stamp in ns as text, the key ``imkd bag teacher-targets`` gives frames of a
bag without sample tokens).

Parameters: ``config/teacher.yaml`` (their defaults and meaning), read at start-up into a
:class:`~imkd_ros.pipeline.teacher_params.TeacherNodeConfig` (a bad or unknown one stops the node with one line
naming it): ``checkpoint``, ``device``, ``output_frame``, ``lidar_to_base.translation`` / ``.rotation`` (the
LiDAR's mounting), ``density_saturation``, ``max_points``, ``warn_period``.

One sweep per message (no accumulation yet; the shipped teacher is trained on ``lidar.sweeps`` = 5 accumulated
sweeps, so live targets see fewer points than the offline caches). Clouds are processed in the subscription
callback; the input queue has depth 1, so under load the newest cloud waits and older ones are dropped. Bad input
gives a throttled warning that names the problem; the message is dropped and the node goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from imkd_msgs.msg import TeacherTargets as TeacherTargetsMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2

from imkd_ros.apps.bag_targets import lidar_frame, targets_msg_fields
from imkd_ros.bag.source import LIDAR_MSG_FIELDS
from imkd_ros.core.shipped import resolve_checkpoint
from imkd_ros.core.sweeps import lidar_sweep_to_ref
from imkd_ros.data.dataset import collate_frames
from imkd_ros.distill.intensity import IntensitySpec
from imkd_ros.distill.targets import compute_teacher_targets, load_teacher, target_header
from imkd_ros.nodes.spin import run_node
from imkd_ros.pipeline.teacher_params import TeacherNodeConfig, teacher_default_parameters
from imkd_ros.pipeline.throttle import WarningThrottle
from imkd_ros.ros.convert import ConversionError, fields_to_matrix, pointcloud2_to_array
from imkd_ros.ros.messages import stamp_to_ns

__all__ = ["TeacherNode", "main"]


class TeacherNode(Node):
    """The teacher node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("teacher_node", **kwargs)
        values = {n: self.declare_parameter(n, v).value for n, v in teacher_default_parameters().items()}
        self.config = cfg = TeacherNodeConfig.from_parameters(values)
        self._warn = WarningThrottle(self.get_logger().warning, cfg.warn_period).warn

        path = resolve_checkpoint(cfg.checkpoint)
        self.teacher = load_teacher(path, cfg.device)
        self.spec = IntensitySpec(density_saturation=cfg.density_saturation)
        self.header = target_header(self.teacher, path, self.spec, {"live": self.get_name()})
        self.get_logger().info(f"teacher {path} on {next(self.teacher.parameters()).device}")

        qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability)
        self.create_subscription(PointCloud2, "~/input/lidar", self._on_lidar, qos)
        self.pub = self.create_publisher(TeacherTargetsMsg, "~/output/targets", 10)
        self.frames_done = 0

    def _on_lidar(self, msg: PointCloud2) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            cloud = pointcloud2_to_array(msg)
            if len(cloud) > self.config.max_points:
                raise ConversionError(
                    f"LiDAR PointCloud2 has {len(cloud)} points, more than max_points {self.config.max_points}"
                )
            pts = fields_to_matrix(cloud, LIDAR_MSG_FIELDS, np.float32)
            if not np.isfinite(pts).all():
                raise ConversionError("LiDAR PointCloud2 has NaN/inf values")
        except ConversionError as exc:
            self._warn("lidar", f"~/input/lidar: {exc}; cloud dropped")
            return
        points = lidar_sweep_to_ref(pts, self.config.lidar_to_base, 0.0)
        frame = lidar_frame(str(stamp), stamp, points, self.teacher.config)
        try:
            targets = compute_teacher_targets(self.teacher, collate_frames([frame]), self.spec)[0]
        except Exception as exc:  # noqa: BLE001 - a failing frame must not stop the node
            self._warn("model", f"teacher failed on cloud {stamp}: {exc}")
            return
        out = TeacherTargetsMsg(**targets_msg_fields(targets, self.header))
        out.header = msg.header
        out.header.frame_id = self.config.output_frame
        self.pub.publish(out)
        self.frames_done += 1


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``teacher_node`` (takes ``--ros-args ...``)."""
    return run_node("teacher_node", TeacherNode, args)


if __name__ == "__main__":
    sys.exit(main())
