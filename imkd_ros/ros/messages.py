"""Detector messages as plain functions: Boxes <-> ``vision_msgs/Detection3DArray``, Boxes ->
``autoware_perception_msgs/DetectedObjects`` (the velocities), Boxes -> RViz ``visualization_msgs/MarkerArray``,
``CameraInfo`` <-> :class:`~imkd_ros.core.types.Calibration`. The ROS-free part (radar points of a cloud, image checks,
the assembly of a :class:`~imkd_ros.core.types.Frame` from synchronised sweeps) lives in
:mod:`imkd_ros.pipeline.assemble`,
shared with the offline bag replay; the readers (poses, ``CameraInfo``) in :mod:`imkd_ros.pipeline.arrays`.

Readers work on rclpy messages and on rosbags' deserialised messages alike (attribute access only).

Conventions of ``~/output/objects`` (``vision_msgs/Detection3DArray``), one ``Detection3D`` per box:

* ``header``: the camera image's header stamp; ``frame_id`` the frame the boxes are in (``base_link``: ego, x
  forward, y left, z up).
* ``results[0].hypothesis.class_id``: the nuScenes detection class name (``"car"``, ``"pedestrian"``, ...), ``score``
  the detection score; ``results[0].pose.pose``: the box centre pose (covariance unknown: zeros).
* ``bbox.center``: centre (m) and heading as a quaternion about +z; ``bbox.size``: ``x`` = length (along the
  heading), ``y`` = width, ``z`` = height (m) -- the box's own axes, unlike :class:`Boxes`' (w, l, h).
* ``id``: the detection's index in the frame (:func:`imkd_ros.bag.interfaces.detection_id`), an identifier without
  payload (vision_msgs' meaning; a track id if tracking ever exists).

vision_msgs has no velocity: it travels in ``~/output/detected_objects`` (``autoware_perception_msgs/DetectedObjects``,
same header, one object per detection in the same order; conventions and the class mapping in
:mod:`imkd_ros.pipeline.objects`). :func:`detections_to_boxes` (from :mod:`imkd_ros.bag.interfaces`, usable without ROS
on bag messages) reads both back into :class:`Boxes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from autoware_perception_msgs.msg import DetectedObject, DetectedObjects, ObjectClassification
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Transform, TransformStamped, Vector3
from geometry_msgs.msg import Pose as PoseMsg
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import ColorRGBA, Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesis, ObjectHypothesisWithPose
from visualization_msgs.msg import Marker, MarkerArray

from imkd_ros.bag.interfaces import detection_id, detections_to_boxes, object_velocities
from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose, yaw_to_quat
from imkd_ros.core.types import Boxes, Calibration
from imkd_ros.pipeline import assemble as _assemble
from imkd_ros.pipeline.arrays import camera_info_to_calibration, pose_msg_to_pose  # re-exported
from imkd_ros.pipeline.assemble import RADAR_MSG_FIELDS, assemble_frame  # re-exported (moved there)
from imkd_ros.pipeline.objects import ORIENTATION_AVAILABLE, SHAPE_BOUNDING_BOX, object_specs
from imkd_ros.pipeline.sync import NS_PER_S
from imkd_ros.ros.convert import ConversionError

__all__ = [
    "RADAR_MSG_FIELDS",
    "stamp_to_ns",
    "ns_to_stamp",
    "make_header",
    "pose_to_msg",
    "pose_msg_to_pose",
    "pose_stamped",
    "transform_stamped",
    "tf_message",
    "boxes_to_detections",
    "detections_to_boxes",
    "boxes_to_objects",
    "object_velocities",
    "boxes_to_markers",
    "camera_info_to_calibration",
    "calibration_to_camera_info",
    "assemble_frame",
]

# ------------------------------------------------------------------------------------------------- stamps, poses


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> ``builtin_interfaces/Time``."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=int(sec), nanosec=int(nanosec))


def make_header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


def pose_to_msg(pose: Pose) -> PoseMsg:
    """:class:`~imkd_ros.core.transforms.Pose` -> ``geometry_msgs/Pose`` (quaternion order x, y, z, w on the wire)."""
    w, x, y, z = (float(v) for v in pose.quat)
    t = pose.translation
    return PoseMsg(
        position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])), orientation=Quaternion(x=x, y=y, z=z, w=w)
    )


def pose_stamped(pose: Pose, stamp_ns: int, frame_id: str) -> PoseStamped:
    return PoseStamped(header=make_header(stamp_ns, frame_id), pose=pose_to_msg(pose))


def transform_stamped(pose: Pose, stamp_ns: int, parent: str, child: str) -> TransformStamped:
    """``child -> parent`` :class:`Pose` -> ``geometry_msgs/TransformStamped`` (``header.frame_id`` = parent)."""
    m = pose_to_msg(pose)
    p = m.position
    return TransformStamped(
        header=make_header(stamp_ns, parent),
        child_frame_id=child,
        transform=Transform(translation=Vector3(x=p.x, y=p.y, z=p.z), rotation=m.orientation),
    )


def tf_message(transforms: list[TransformStamped]) -> TFMessage:
    """``tf2_msgs/TFMessage`` of the given transforms."""
    return TFMessage(transforms=list(transforms))


# ---------------------------------------------------------------------------------------------------- detections


def _yaw_quat_msg(yaw: float) -> Quaternion:
    w, x, y, z = yaw_to_quat(yaw)
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def boxes_to_detections(boxes: Boxes, header: Header) -> Detection3DArray:
    """:class:`Boxes` (in the frame ``header.frame_id`` names) -> ``Detection3DArray`` (conventions: module
    docstring). ``header`` is used as given: pass the input image's header, never ``now()``."""
    out = Detection3DArray(header=header)
    dets = []
    for i in range(len(boxes)):
        c, (w, l, h) = boxes.center[i], boxes.size[i]
        pose = PoseMsg(
            position=Point(x=float(c[0]), y=float(c[1]), z=float(c[2])), orientation=_yaw_quat_msg(boxes.yaw[i])
        )
        hyp = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=CLASSES[int(boxes.label[i])], score=float(boxes.score[i]))
        )
        hyp.pose.pose = pose
        dets.append(
            Detection3D(
                header=header,
                results=[hyp],
                bbox=BoundingBox3D(center=pose, size=Vector3(x=float(l), y=float(w), z=float(h))),
                id=detection_id(i),
            )
        )
    out.detections = dets
    return out


def boxes_to_objects(boxes: Boxes, header: Header) -> DetectedObjects:
    """:class:`Boxes` -> ``autoware_perception_msgs/DetectedObjects`` (conventions and class mapping:
    :mod:`imkd_ros.pipeline.objects`; velocity as the object-frame twist). ``header`` as given (the input image's)."""
    objects = []
    for spec in object_specs(boxes):
        o = DetectedObject(existence_probability=spec.existence_probability)
        o.classification = [ObjectClassification(label=spec.label, probability=spec.probability)]
        k = o.kinematics
        w, x, y, z = spec.orientation
        k.pose_with_covariance.pose = PoseMsg(
            position=Point(x=spec.position[0], y=spec.position[1], z=spec.position[2]),
            orientation=Quaternion(x=x, y=y, z=z, w=w),
        )
        k.orientation_availability = ORIENTATION_AVAILABLE
        if spec.twist is not None:
            k.twist_with_covariance.twist.linear = Vector3(x=spec.twist[0], y=spec.twist[1], z=0.0)
            k.has_twist = True
        o.shape.type = SHAPE_BOUNDING_BOX
        o.shape.dimensions = Vector3(x=spec.dimensions[0], y=spec.dimensions[1], z=spec.dimensions[2])
        objects.append(o)
    return DetectedObjects(header=header, objects=objects)


def boxes_to_markers(boxes: Boxes, header: Header, *, min_speed: float = 0.5, text_size: float = 1.0) -> MarkerArray:
    """RViz markers of ``boxes`` in BEV: first a ``DELETEALL``, then the markers of
    :func:`imkd_ros.pipeline.assemble.marker_specs` (per box a ``LINE_LIST`` footprint outline with a heading tick in
    namespace ``boxes``, a ``TEXT_VIEW_FACING`` label ``"<class> <score>"`` in ``labels``, and for a box faster than
    ``min_speed`` m/s an ``ARROW`` along velocity x 1 s in ``velocity``; marker ids are the box index)."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for spec in _assemble.marker_specs(boxes, min_speed=min_speed, text_size=text_size):
        m = Marker(header=header, ns=spec.ns, id=spec.id, type=spec.type, action=Marker.ADD)
        m.pose.position = Point(x=spec.position[0], y=spec.position[1], z=spec.position[2])
        m.pose.orientation.w = 1.0
        m.scale = Vector3(x=spec.scale[0], y=spec.scale[1], z=spec.scale[2])
        m.color = ColorRGBA(r=spec.color[0], g=spec.color[1], b=spec.color[2], a=spec.color[3])
        m.points = [Point(x=p[0], y=p[1], z=p[2]) for p in spec.points]
        m.text = spec.text
        markers.append(m)
    return MarkerArray(markers=markers)


# ------------------------------------------------------------------------------------------------------- camera


def calibration_to_camera_info(cal: Calibration, header: Header) -> CameraInfo:
    """Calibration (pinhole, no distortion) -> ``CameraInfo`` with ``k``, ``r`` = I, ``p`` = [K | 0]."""
    if cal.intrinsic is None or cal.image_size is None:
        raise ConversionError(f"{cal.channel} has no intrinsics: not a camera")
    k = np.asarray(cal.intrinsic, dtype=np.float64)
    p = np.zeros((3, 4))
    p[:, :3] = k
    return CameraInfo(
        header=header,
        width=int(cal.image_size[0]),
        height=int(cal.image_size[1]),
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k.reshape(-1).tolist(),
        r=np.eye(3).reshape(-1).tolist(),
        p=p.reshape(-1).tolist(),
    )
