"""``detector_node``: camera + radar in, 3D detections out (``ros2 run imkd_ros detector_node``).

Thin: everything is in :class:`imkd_ros.nodes.detector_core.DetectorCore` (parameters, subscriptions, the model
thread, ``/diagnostics``) and the ROS-free modules it calls. This plain node loads the model and starts at once;
``detector_lifecycle_node`` (:mod:`imkd_ros.nodes.detector_lifecycle_node`) is the managed variant. Parameters and
topics: ``config/detector.yaml`` (defaults) and ``config/detector.schema.json`` (descriptions, ranges).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rclpy.node import Node

from imkd_ros.core.shipped import DEFAULT_MODEL, resolve_checkpoint
from imkd_ros.nodes.detector_core import DetectorCore
from imkd_ros.nodes.spin import run_node
from imkd_ros.pipeline.detector_params import default_parameters

__all__ = ["DEFAULT_MODEL", "DetectorNode", "default_parameters", "resolve_checkpoint", "main"]  # re-exported


class DetectorNode(Node):
    """The detector node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("detector_node", **kwargs)
        self.core = DetectorCore(self)
        self.core.load()
        self.core.start()

    def destroy_node(self) -> None:
        if hasattr(self, "core"):  # not when the constructor failed on a bad parameter (named before)
            self.core.close()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``detector_node`` (takes ``--ros-args ...``)."""
    return run_node("detector_node", DetectorNode, args)


if __name__ == "__main__":
    sys.exit(main())
