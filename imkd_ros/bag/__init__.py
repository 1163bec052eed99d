"""ROS 2 bags without ROS (pure-Python ``rosbags``): datasets exported to bags, bags read back into the core's
types, teacher targets computed from a bag's LiDAR.

* :mod:`~imkd_ros.bag.topics`: :class:`BagTopics`, the topic of each role (defaults: what the player publishes).
* :mod:`~imkd_ros.bag.source`: :class:`BagSource`, a read-only view of any ROS 2 bag (mcap or sqlite3): messages
  in log-time order, calibration, ground truth, LiDAR frames.
* :mod:`~imkd_ros.bag.convert`: message <-> numpy for rosbags' messages (no rclpy).
* :mod:`~imkd_ros.bag.export`: a nuScenes-format dataset -> a bag (``imkd bag export``).
* :mod:`~imkd_ros.apps.bag_targets`: teacher targets from a bag (``imkd bag teacher-targets``), the cache format of
  :mod:`imkd_ros.distill.cache`.
* :mod:`~imkd_ros.bag.recover`: the readable part of a cut or damaged bag as a new bag (``imkd bag recover``).
* :mod:`~imkd_ros.cli.bag`: the ``imkd bag`` verb group.

Nothing here imports rclpy. Import heavier submodules directly; this ``__init__`` re-exports the light ones.
"""

from __future__ import annotations

from imkd_ros.bag.errors import BagError
from imkd_ros.bag.source import BagMessage, BagSource
from imkd_ros.bag.topics import BagTopics

__all__ = ["BagError", "BagMessage", "BagSource", "BagTopics"]
