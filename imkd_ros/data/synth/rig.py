"""The synthetic ego vehicle's sensor rig: one front camera, one front radar and one roof LiDAR, mounted as on the
nuScenes Renault Zoe, and the sensors' sampling rates.

Mountings are sensor -> ego poses (:class:`imkd_ros.core.transforms.Pose`):

- ``CAM_FRONT``: optical centre at (1.70, 0.02, 1.51) m, axes z forward (ego +x), x right (ego -y), y down (ego -z);
  1600 x 900 pixels, focal length 1266.4 px, principal point (816.3, 491.5).
- ``RADAR_FRONT``: at (3.41, 0.0, 0.50) m, axes as the ego's (x forward, y left, z up).
- ``LIDAR_TOP``: at (0.99, 0.0, 1.84) m, yawed -90 deg as in nuScenes: sensor x points to the ego's right, y forward,
  z up.
"""

from __future__ import annotations

import numpy as np

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration

__all__ = ["RIG", "RATES_HZ", "KEYFRAME_HZ", "CAMERA_INTRINSIC", "CAMERA_SIZE"]

#: CAM_FRONT pinhole matrix ``(3, 3)`` in pixels (nuScenes-like).
CAMERA_INTRINSIC = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
#: CAM_FRONT image size ``(width, height)`` in pixels.
CAMERA_SIZE: tuple[int, int] = (1600, 900)

# Columns are the camera's x (right), y (down), z (forward) axes written in the ego frame.
_CAM_ROTATION = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

#: Sensor channel -> calibration (sensor -> ego mounting, camera intrinsics).
RIG: dict[str, Calibration] = {
    "CAM_FRONT": Calibration(
        "CAM_FRONT", Pose(_CAM_ROTATION, [1.70, 0.02, 1.51]), CAMERA_INTRINSIC.copy(), CAMERA_SIZE
    ),
    "RADAR_FRONT": Calibration("RADAR_FRONT", Pose.from_yaw(0.0, [3.41, 0.0, 0.50])),
    "LIDAR_TOP": Calibration("LIDAR_TOP", Pose.from_yaw(-np.pi / 2.0, [0.99, 0.0, 1.84])),
}

#: Sweep rate of each sensor (Hz), as in nuScenes.
RATES_HZ: dict[str, int] = {"CAM_FRONT": 12, "RADAR_FRONT": 13, "LIDAR_TOP": 20}

#: Keyframe (annotated sample) rate in Hz.
KEYFRAME_HZ = 2
