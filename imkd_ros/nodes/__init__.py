"""ROS 2 nodes of imkd_ros (rclpy): :mod:`.detector_node` (camera + radar -> 3D detections) and its managed variant
:mod:`.detector_lifecycle_node`, both thin shells around :mod:`.detector_core`, :mod:`.teacher_node`
(LiDAR -> TeacherTargets), :mod:`.player` (plays a nuScenes-format sequence into the graph and records the detector's
outputs; the demo's other process), :mod:`.bag_player` (plays a bag with /clock) and :mod:`.spin` (their ``main``).

Nodes are thin: they convert messages with :mod:`imkd_ros.ros`, call the core, and convert back. Import the
submodules directly; this ``__init__`` imports nothing.
"""

__all__: list[str] = []
