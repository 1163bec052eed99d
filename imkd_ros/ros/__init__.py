"""The ROS 2 side of imkd_ros: message <-> numpy conversion (:mod:`.convert`) and the detector's message builders
(:mod:`.messages`). The node's logic that needs no ROS lives in :mod:`imkd_ros.pipeline`.

Only this subpackage and ``imkd_ros.nodes`` may import rclpy or ROS message types. Import the submodules directly;
this ``__init__`` imports nothing.
"""

__all__: list[str] = []
