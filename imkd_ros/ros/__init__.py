"""The ROS 2 side of imkd_ros: message conversion (:mod:`.convert`, :mod:`.messages`) and process environment
(:mod:`.env`); and, without rclpy, the detector node's logic: frame assembly and sync (:mod:`.assemble`,
:mod:`.sync`), the tf tree (:mod:`.tf`), where extrinsics come from (:mod:`.extrinsics`), ``/diagnostics``
(:mod:`.diagnostics`), the parameter schema (:mod:`.params`) and the DetectedObjects layout (:mod:`.objects`).

Only this subpackage and ``imkd_ros.nodes`` may import rclpy or ROS message types. Import the submodules directly;
this ``__init__`` imports nothing so that :mod:`.env` stays usable where ROS libraries are not loaded.
"""

__all__: list[str] = []
