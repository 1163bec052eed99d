"""Detections as ``autoware_perception_msgs/DetectedObjects``, without ROS: the nuScenes -> Autoware class mapping,
velocities in the object frame, and one message-free description per object that the rclpy builder
(:func:`imkd_ros.ros.messages.boxes_to_objects`) and the rosbags builder (:func:`imkd_ros.bag.convert.objects_msg`)
turn into messages.

Conventions of ``~/output/detected_objects`` (what Autoware's detectors publish and its multi-object tracker reads):

* ``header``: the camera image's header (stamp and ``output_frame``), as ``~/output/objects``; the objects are in
  the same order as its detections.
* ``existence_probability``: the detection score.
* ``classification``: one entry, ``label`` = :data:`AUTOWARE_LABEL_OF_CLASS` of the nuScenes class, ``probability``
  1.0 (the model gives one class per box; its confidence is the existence probability, as in Autoware's
  lidar_centerpoint).
* ``kinematics.pose_with_covariance.pose``: box centre and heading (quaternion about +z); no covariance
  (``has_position_covariance`` false); ``orientation_availability`` AVAILABLE (the model regresses sin and cos of the
  heading, so front and back are told apart).
* ``kinematics.twist_with_covariance.twist.linear``: the velocity (m/s) in the **object frame** (x along the heading,
  y to its left: the output-frame velocity rotated by -yaw, REP 103's body-frame twist), z and angular 0;
  ``has_twist`` true when the velocity is finite (zeros and false otherwise); ``has_twist_covariance`` false.
  (Autoware's lidar_centerpoint writes only the speed into ``linear.x``; the full vector here loses nothing, and a
  tracker reading ``linear.x`` gets the velocity along the heading.)
* ``shape``: ``BOUNDING_BOX``, ``dimensions`` = (length along the heading, width, height) m, empty footprint.

Class mapping (nuScenes detection class -> ``ObjectClassification`` label): car -> CAR, truck -> TRUCK,
construction_vehicle -> TRUCK, bus -> BUS, trailer -> TRAILER, motorcycle -> MOTORCYCLE, bicycle -> BICYCLE,
pedestrian -> PEDESTRIAN, barrier -> UNKNOWN, traffic_cone -> UNKNOWN. Autoware has no label for construction
vehicles (a large vehicle: TRUCK) nor for static road furniture (an obstacle of unknown kind: UNKNOWN, which its
tracker still tracks). The exact nuScenes class stays on ``~/output/objects`` (``vision_msgs/Detection3DArray``,
``results[0].hypothesis.class_id``), which readers pair with these objects by stamp and index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import yaw_to_quat
from imkd_ros.core.types import Boxes

__all__ = [
    "AUTOWARE_LABELS",
    "AUTOWARE_LABEL_OF_CLASS",
    "SHAPE_BOUNDING_BOX",
    "ORIENTATION_AVAILABLE",
    "ObjectSpec",
    "object_specs",
    "velocity_to_object_frame",
    "velocity_from_object_frame",
]

#: ``autoware_perception_msgs/ObjectClassification`` label constants (upstream values).
AUTOWARE_LABELS: dict[str, int] = {
    "UNKNOWN": 0,
    "CAR": 1,
    "TRUCK": 2,
    "BUS": 3,
    "TRAILER": 4,
    "MOTORCYCLE": 5,
    "BICYCLE": 6,
    "PEDESTRIAN": 7,
    "ANIMAL": 8,
    "HAZARD": 9,
    "OVER_DRIVABLE": 10,
    "UNDER_DRIVABLE": 11,
}

#: nuScenes detection class name -> Autoware label (module docstring).
AUTOWARE_LABEL_OF_CLASS: dict[str, int] = {
    "car": AUTOWARE_LABELS["CAR"],
    "truck": AUTOWARE_LABELS["TRUCK"],
    "construction_vehicle": AUTOWARE_LABELS["TRUCK"],
    "bus": AUTOWARE_LABELS["BUS"],
    "trailer": AUTOWARE_LABELS["TRAILER"],
    "barrier": AUTOWARE_LABELS["UNKNOWN"],
    "motorcycle": AUTOWARE_LABELS["MOTORCYCLE"],
    "bicycle": AUTOWARE_LABELS["BICYCLE"],
    "pedestrian": AUTOWARE_LABELS["PEDESTRIAN"],
    "traffic_cone": AUTOWARE_LABELS["UNKNOWN"],
}
assert set(AUTOWARE_LABEL_OF_CLASS) == set(CLASSES)

#: ``Shape.BOUNDING_BOX`` and ``DetectedObjectKinematics.AVAILABLE``.
SHAPE_BOUNDING_BOX = 0
ORIENTATION_AVAILABLE = 2


def velocity_to_object_frame(yaw: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Velocities ``(N, 2)`` in the boxes' frame -> ``(N, 2)`` in each object's frame (rotated by ``-yaw`` ``(N,)``:
    x along the heading, y to its left)."""
    yaw, v = np.asarray(yaw, dtype=np.float64), np.asarray(velocity, dtype=np.float64).reshape(-1, 2)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]], axis=1)


def velocity_from_object_frame(yaw: np.ndarray, twist: np.ndarray) -> np.ndarray:
    """The inverse of :func:`velocity_to_object_frame`: ``(N, 2)`` object-frame linear twist -> ``(N, 2)`` in the
    boxes' frame (rotated by ``yaw``)."""
    yaw, t = np.asarray(yaw, dtype=np.float64), np.asarray(twist, dtype=np.float64).reshape(-1, 2)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * t[:, 0] - s * t[:, 1], s * t[:, 0] + c * t[:, 1]], axis=1)


@dataclass(frozen=True)
class ObjectSpec:
    """One ``DetectedObject``, message-free (module docstring): ``position`` (m), ``orientation`` quaternion
    (w, x, y, z), ``dimensions`` (length, width, height) m, ``twist`` the object-frame linear velocity (x, y) m/s or
    None (``has_twist`` false)."""

    existence_probability: float
    label: int
    probability: float
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    dimensions: tuple[float, float, float]
    twist: tuple[float, float] | None


def object_specs(boxes: Boxes) -> list[ObjectSpec]:
    """One :class:`ObjectSpec` per box of ``boxes``, in order."""
    twist = velocity_to_object_frame(boxes.yaw, boxes.velocity) if len(boxes) else np.zeros((0, 2))
    out = []
    for i in range(len(boxes)):
        w, l, h = (float(v) for v in boxes.size[i])
        tw = twist[i]
        out.append(
            ObjectSpec(
                existence_probability=float(boxes.score[i]),
                label=AUTOWARE_LABEL_OF_CLASS[CLASSES[int(boxes.label[i])]],
                probability=1.0,
                position=tuple(float(v) for v in boxes.center[i]),  # type: ignore[arg-type]
                orientation=tuple(float(v) for v in yaw_to_quat(float(boxes.yaw[i]))),  # type: ignore[arg-type]
                dimensions=(l, w, h),
                twist=(float(tw[0]), float(tw[1])) if np.isfinite(tw).all() else None,
            )
        )
    return out
