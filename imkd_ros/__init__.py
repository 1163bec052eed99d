"""imkd_ros: Intensity-aware multi-level knowledge distillation for camera-radar 3D detection, as a ROS 2 package.

The core (this package minus ``ros/`` and ``nodes/``) never imports rclpy; see ARCHITECTURE in the README.
"""

__version__ = "0.1.0"
