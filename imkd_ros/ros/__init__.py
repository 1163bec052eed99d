"""The ROS 2 side of imkd_ros: message conversion (:mod:`.convert`) and process environment (:mod:`.env`).

Only this subpackage and ``imkd_ros.nodes`` may import rclpy or ROS message types. Import the submodules directly;
this ``__init__`` imports nothing so that :mod:`.env` stays usable where ROS libraries are not loaded.
"""

__all__: list[str] = []
