"""Detector messages as plain functions: Boxes <-> ``vision_msgs/Detection3DArray``, Boxes -> RViz
``visualization_msgs/MarkerArray``, ``CameraInfo`` <-> :class:`~imkd_ros.types.Calibration`, radar
``PointCloud2`` -> points, and the assembly of a :class:`~imkd_ros.types.Frame` from synchronised messages.

Readers work on rclpy messages and on rosbags' deserialised messages alike (attribute access only).

Conventions of ``~/output/objects`` (``vision_msgs/Detection3DArray``), one ``Detection3D`` per box:

* ``header``: the camera image's header stamp; ``frame_id`` the frame the boxes are in (``base_link``: ego, x
  forward, y left, z up).
* ``results[0].hypothesis.class_id``: the nuScenes detection class name (``"car"``, ``"pedestrian"``, ...), ``score``
  the detection score; ``results[0].pose.pose``: the box centre pose (covariance unknown: zeros).
* ``bbox.center``: centre (m) and heading as a quaternion about +z; ``bbox.size``: ``x`` = length (along the
  heading), ``y`` = width, ``z`` = height (m) -- the box's own axes, unlike :class:`Boxes`' (w, l, h).
* ``id``: vision_msgs 4.x has no velocity field, so the velocity (m/s, output frame) travels here as
  ``"<index> vx=<vx> vy=<vy>"`` (``nan`` when unknown); :func:`detections_to_boxes` (from
  :mod:`imkd_ros.interfaces`, usable without ROS on bag messages) reads it back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Vector3
from geometry_msgs.msg import Pose as PoseMsg
from sensor_msgs.msg import CameraInfo, PointCloud2
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesis, ObjectHypothesisWithPose
from visualization_msgs.msg import Marker, MarkerArray

from imkd_ros.classes import CLASSES
from imkd_ros.interfaces import detection_id, detections_to_boxes
from imkd_ros.ros.convert import ConversionError, fields_to_matrix, pointcloud2_to_array
from imkd_ros.ros.sync import NS_PER_S
from imkd_ros.transforms import Pose, quat_to_matrix, yaw_to_quat
from imkd_ros.types import Boxes, Calibration, Frame

__all__ = [
    "RADAR_MSG_FIELDS",
    "stamp_to_ns",
    "ns_to_stamp",
    "make_header",
    "pose_to_msg",
    "msg_to_pose",
    "pose_stamped",
    "boxes_to_detections",
    "detections_to_boxes",
    "boxes_to_markers",
    "camera_info_to_calibration",
    "calibration_to_camera_info",
    "check_image",
    "radar_points",
    "radar_to_ego",
    "assemble_frame",
]

#: The fields a radar ``PointCloud2`` must carry (sensor frame: m, dBsm, m/s); others (the rest of the 18 nuScenes
#: radar fields) are used for the devkit's default filters when present.
RADAR_MSG_FIELDS: tuple[str, ...] = ("x", "y", "z", "rcs", "vx_comp", "vy_comp")
_FILTER_FIELDS = ("invalid_state", "dyn_prop", "ambig_state")

#: RViz colour (r, g, b) of each class, in :data:`imkd_ros.classes.CLASSES` order.
_CLASS_RGB: tuple[tuple[float, float, float], ...] = (
    (0.12, 0.47, 0.71),  # car
    (1.00, 0.50, 0.05),  # truck
    (0.55, 0.34, 0.29),  # construction_vehicle
    (0.84, 0.15, 0.16),  # bus
    (0.58, 0.40, 0.74),  # trailer
    (0.50, 0.50, 0.50),  # barrier
    (0.89, 0.47, 0.76),  # motorcycle
    (0.74, 0.74, 0.13),  # bicycle
    (0.17, 0.63, 0.17),  # pedestrian
    (0.09, 0.75, 0.81),  # traffic_cone
)


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
    """:class:`~imkd_ros.transforms.Pose` -> ``geometry_msgs/Pose`` (quaternion order x, y, z, w on the wire)."""
    w, x, y, z = (float(v) for v in pose.quat)
    t = pose.translation
    return PoseMsg(
        position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])), orientation=Quaternion(x=x, y=y, z=z, w=w)
    )


def msg_to_pose(msg: Any) -> Pose:
    """``geometry_msgs/Pose`` -> :class:`~imkd_ros.transforms.Pose`.

    Raises:
        ConversionError: a non-finite value or a zero quaternion.
    """
    q = np.array([msg.orientation.w, msg.orientation.x, msg.orientation.y, msg.orientation.z], dtype=np.float64)
    t = np.array([msg.position.x, msg.position.y, msg.position.z], dtype=np.float64)
    if not (np.isfinite(q).all() and np.isfinite(t).all()) or np.linalg.norm(q) < 1e-9:
        raise ConversionError(f"Pose is not finite or has a zero quaternion: q={q}, t={t}")
    return Pose(quat_to_matrix(q), t)


def pose_stamped(pose: Pose, stamp_ns: int, frame_id: str) -> PoseStamped:
    return PoseStamped(header=make_header(stamp_ns, frame_id), pose=pose_to_msg(pose))


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
        vx, vy = (float(v) for v in boxes.velocity[i])
        dets.append(
            Detection3D(
                header=header,
                results=[hyp],
                bbox=BoundingBox3D(center=pose, size=Vector3(x=float(l), y=float(w), z=float(h))),
                id=detection_id(i, vx, vy),
            )
        )
    out.detections = dets
    return out


def _color(label: int, alpha: float = 1.0) -> ColorRGBA:
    r, g, b = _CLASS_RGB[label % len(_CLASS_RGB)]
    return ColorRGBA(r=r, g=g, b=b, a=alpha)


def boxes_to_markers(boxes: Boxes, header: Header, *, min_speed: float = 0.5, text_size: float = 1.0) -> MarkerArray:
    """RViz markers of ``boxes`` in BEV: first a ``DELETEALL``, then per box a ``LINE_LIST`` outline of its
    footprint at the centre height with a heading tick (namespace ``boxes``), a ``TEXT_VIEW_FACING`` label
    ``"<class> <score>"`` above it (``labels``), and, when the speed is finite and above ``min_speed`` m/s, an
    ``ARROW`` from the centre to centre + velocity x 1 s (``velocity``). Marker ids are the box index."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    corners = boxes.corners()[:, :4, :] if len(boxes) else np.zeros((0, 4, 3))  # bottom face, CCW
    forever = Duration(sec=0, nanosec=0)
    for i in range(len(boxes)):
        label, c = int(boxes.label[i]), boxes.center[i]
        z = float(c[2])
        ring = [Point(x=float(p[0]), y=float(p[1]), z=z) for p in corners[i]]
        front = Point(x=0.5 * (ring[0].x + ring[3].x), y=0.5 * (ring[0].y + ring[3].y), z=z)
        points = [ring[0], ring[1], ring[1], ring[2], ring[2], ring[3], ring[3], ring[0]]
        points += [Point(x=float(c[0]), y=float(c[1]), z=z), front]
        outline = Marker(header=header, ns="boxes", id=i, type=Marker.LINE_LIST, action=Marker.ADD, lifetime=forever)
        outline.pose.orientation.w = 1.0
        outline.scale.x = 0.12
        outline.color = _color(label)
        outline.points = points
        text = Marker(header=header, ns="labels", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position = Point(x=float(c[0]), y=float(c[1]), z=z + 0.5 * float(boxes.size[i, 2]) + 0.6)
        text.pose.orientation.w = 1.0
        text.scale.z = text_size
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = f"{CLASSES[label]} {boxes.score[i]:.2f}"
        markers += [outline, text]
        v = boxes.velocity[i]
        if np.isfinite(v).all() and float(np.hypot(v[0], v[1])) > min_speed:
            arrow = Marker(header=header, ns="velocity", id=i, type=Marker.ARROW, action=Marker.ADD)
            arrow.pose.orientation.w = 1.0
            arrow.points = [
                Point(x=float(c[0]), y=float(c[1]), z=z),
                Point(x=float(c[0] + v[0]), y=float(c[1] + v[1]), z=z),
            ]
            arrow.scale = Vector3(x=0.15, y=0.4, z=0.4)  # shaft diameter, head diameter, head length
            arrow.color = _color(label)
            markers.append(arrow)
    return MarkerArray(markers=markers)


# ------------------------------------------------------------------------------------------------------- camera


def camera_info_to_calibration(msg: Any, camera_to_ego: Pose, channel: str = "CAM_FRONT") -> Calibration:
    """``sensor_msgs/CameraInfo`` (pinhole ``k``, ``width``, ``height``) + the camera's mounting -> Calibration.

    Raises:
        ConversionError: zero size, a non-finite ``k`` or a non-positive focal length.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ConversionError(f"CameraInfo has size {width}x{height}")
    if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ConversionError(f"CameraInfo has an unusable camera matrix k={k.reshape(-1).tolist()}")
    return Calibration(channel, camera_to_ego, k, (width, height))


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


def check_image(image: np.ndarray, calibration: Calibration) -> None:
    """Raise :class:`ConversionError` unless ``image`` ``(H, W, 3)`` matches the CameraInfo size ``(W, H)``."""
    w, h = calibration.image_size or (None, None)
    if image.shape[1] != w or image.shape[0] != h:
        raise ConversionError(
            f"image size {image.shape[1]}x{image.shape[0]} does not match CameraInfo {w}x{h} ({calibration.channel})"
        )
    if image.size == 0:
        raise ConversionError("image is empty")


# -------------------------------------------------------------------------------------------------------- radar


def radar_points(msg: PointCloud2 | Any, *, max_points: int = 5000, default_filters: bool = True) -> np.ndarray:
    """Radar ``PointCloud2`` (sensor frame) -> ``(N, 6)`` float32 columns :data:`RADAR_MSG_FIELDS`.

    With ``default_filters`` and the fields ``invalid_state``, ``dyn_prop``, ``ambig_state`` present, the points the
    nuScenes devkit's default filters reject are dropped first (as the dataset reader does).

    Raises:
        ConversionError: missing fields, an empty cloud (before or after filtering), more than ``max_points``
            points, or a non-finite value.
    """
    cloud = pointcloud2_to_array(msg)
    n = len(cloud)
    if n == 0:
        raise ConversionError("radar PointCloud2 is empty")
    if n > max_points:
        raise ConversionError(f"radar PointCloud2 has {n} points, more than max_radar_points {max_points}")
    if default_filters and all(f in cloud.dtype.names for f in _FILTER_FIELDS):
        from imkd_ros.data.pcd import radar_default_mask

        cloud = cloud[radar_default_mask(cloud)]
        if len(cloud) == 0:
            raise ConversionError(f"radar PointCloud2: all {n} points rejected by the default filters")
    pts = fields_to_matrix(cloud, RADAR_MSG_FIELDS, np.float32)
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise ConversionError(f"radar PointCloud2 has {int(bad.sum())} of {len(pts)} points with NaN/inf values")
    return pts


def radar_to_ego(points: np.ndarray, sensor_to_ref: Pose, lag_s: float) -> np.ndarray:
    """One radar sweep ``(N, 6)`` (sensor frame, :data:`RADAR_MSG_FIELDS`) -> ``(N, 7)`` float32 columns
    :data:`imkd_ros.types.RADAR_FEATURES` in the reference ego frame, as the dataset reader builds them: positions
    moved by ``sensor_to_ref``, compensated velocity ``(vx, vy, 0)`` rotated alike, positions advanced by
    ``v * lag_s``; ``time_lag = max(lag_s, 0)`` (``lag_s`` = reference time - sweep time, s)."""
    xyz = points[:, 0:3].astype(np.float64)
    vel = sensor_to_ref.rotate(points[:, 4:6])
    xyz = sensor_to_ref.apply(xyz)
    xyz[:, :2] += vel * lag_s
    out = np.empty((len(points), 7), dtype=np.float32)
    out[:, 0:3] = xyz
    out[:, 3] = points[:, 3]
    out[:, 4:6] = vel
    out[:, 6] = max(lag_s, 0.0)
    return out


def assemble_frame(
    stamp_ns: int,
    image: np.ndarray,
    camera: Calibration,
    sweeps: Sequence[tuple[int, np.ndarray, Pose]],
    ego_pose_at: Callable[[int], Pose | None] | None = None,
    *,
    token: str = "",
) -> Frame:
    """A :class:`Frame` (ego frame at ``stamp_ns``) from a camera image and radar sweeps.

    Args:
        stamp_ns: the camera stamp (ns), the reference time.
        image: ``(H, W, 3)`` uint8 RGB.
        camera: its calibration (intrinsics from CameraInfo, mounting from the parameters).
        sweeps: ``(stamp_ns, points (N, 6) sensor frame, sensor_to_ego)`` per sweep, any radar, any order.
        ego_pose_at: ``stamp_ns -> ego -> fixed-frame pose`` (e.g. :meth:`PoseBuffer.lookup`). With poses at both
            the camera and a sweep stamp, the sweep is moved ``sensor -> ego(sweep) -> fixed -> ego(camera)`` as
            the reader does; otherwise the ego is taken as not moving between the two.
        token: the Frame's token.
    """
    ref_pose = ego_pose_at(stamp_ns) if ego_pose_at is not None else None
    fixed_to_ref = ref_pose.inverse() if ref_pose is not None else None
    parts = []
    for t, pts, sensor_to_ego in sweeps:
        pose = sensor_to_ego
        if fixed_to_ref is not None:
            sweep_pose = ego_pose_at(t)
            if sweep_pose is not None:
                pose = fixed_to_ref @ sweep_pose @ sensor_to_ego
        parts.append(radar_to_ego(pts, pose, (stamp_ns - t) / NS_PER_S))
    radar = np.concatenate(parts, axis=0) if parts else np.zeros((0, 7), np.float32)
    return Frame(
        token=token,
        timestamp=int(stamp_ns // 1000),
        scene="",
        image=image,
        camera=camera,
        radar=radar,
        lidar=None,
        ego_pose=ref_pose if ref_pose is not None else Pose.identity(),
    )
