"""Messages <-> numpy for bags, without rclpy: readers for rosbags' deserialised messages (any object with the
message's attributes), builders of rosbags message objects for writing.

The point cloud, image, pose and camera_info readers are the node's own (:mod:`imkd_ros.pipeline.arrays`, no ROS
needed); errors are
:class:`MessageError` (the same class as :class:`~imkd_ros.pipeline.arrays.ConversionError`, a ``ValueError``). A point
cloud is a structured array ``(N,)``, an image ``(H, W, 3)``
uint8 RGB, poses are :class:`~imkd_ros.core.transforms.Pose` (child -> parent, quaternions ``(w, x, y, z)`` in the
core, ``x, y, z, w`` fields on the wire).

Builders need a rosbags typestore holding the types (default: :func:`imkd_ros.bag.interfaces.make_typestore`, made
once per process).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from imkd_ros.bag.interfaces import detection_id
from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import yaw_to_quat
from imkd_ros.core.types import Boxes, Calibration
from imkd_ros.pipeline.arrays import (
    POINTFIELD_DTYPES,
    ConversionError,
    camera_info_to_calibration,
    compressed_to_array,
    fields_to_matrix,
    image_to_array,
    pointcloud2_to_array,
    pose_msg_to_pose,
    transform_msg_to_pose,
)
from imkd_ros.pipeline.objects import ORIENTATION_AVAILABLE, SHAPE_BOUNDING_BOX, object_specs

__all__ = [
    "MessageError",
    "NS_PER_S",
    "POINTFIELD_DTYPES",
    "default_typestore",
    "stamp_to_ns",
    "header_stamp_ns",
    "cloud_to_array",
    "cloud_columns",
    "image_msg_to_array",
    "pose_msg_to_pose",
    "transform_msg_to_pose",
    "camera_info_to_calibration",
    "make_header",
    "cloud_msg",
    "image_msg",
    "compressed_image_msg",
    "camera_info_msg",
    "pose_msg",
    "pose_stamped_msg",
    "transform_stamped_msg",
    "tf_msg",
    "odometry_msg",
    "detections_msg",
    "objects_msg",
    "string_msg",
]

NS_PER_S = 1_000_000_000

_DTYPE_TO_POINTFIELD = {(np.dtype(c).kind, np.dtype(c).itemsize): k for k, c in POINTFIELD_DTYPES.items()}


#: A message could not be converted; the text says which message type and what is wrong. The same class as the
#: readers' :class:`imkd_ros.pipeline.arrays.ConversionError`, so one ``except`` covers both.
MessageError = ConversionError


@functools.lru_cache(maxsize=1)
def default_typestore() -> Any:
    """The process-wide typestore of :func:`imkd_ros.bag.interfaces.make_typestore` (ROS 2 Kilted + imkd_msgs + the
    stand-ins)."""
    from imkd_ros.bag.interfaces import make_typestore

    return make_typestore()


def _types(store: Any | None) -> dict[str, Any]:
    return (store if store is not None else default_typestore()).types


# -------------------------------------------------------------------------------------------------------- readers


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def header_stamp_ns(msg: Any) -> int | None:
    """The header stamp (ns) of a message: ``msg.header``, else the first transform's of a ``TFMessage``, else
    the first marker's of a ``MarkerArray``; None when it has none."""
    if hasattr(msg, "header"):
        return stamp_to_ns(msg.header.stamp)
    for attr in ("transforms", "markers"):
        items = getattr(msg, attr, None)
        if items:
            return stamp_to_ns(items[0].header.stamp)
    return None


def cloud_to_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/PointCloud2`` -> structured array ``(height * width,)``
    (:func:`imkd_ros.pipeline.arrays.pointcloud2_to_array`, the node's reader)."""
    return pointcloud2_to_array(msg)


def cloud_columns(cloud: np.ndarray, names: Sequence[str], dtype: Any = np.float32) -> np.ndarray:
    """Fields ``names`` of a structured cloud ``(N,)`` as a dense ``(N, len(names))`` matrix of ``dtype``
    (:func:`imkd_ros.pipeline.arrays.fields_to_matrix`)."""
    return fields_to_matrix(cloud, names, dtype)


def image_msg_to_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or ``sensor_msgs/CompressedImage`` (JPEG/PNG) -> ``(H, W,
    3)`` uint8 RGB (a message is compressed when it has a ``format`` field and no ``encoding``); the node's readers
    :func:`~imkd_ros.pipeline.arrays.image_to_array` / :func:`~imkd_ros.pipeline.arrays.compressed_to_array`.
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_array(msg)
    return image_to_array(msg)


# ------------------------------------------------------------------------------------------------------- builders


def make_header(stamp_ns: int, frame_id: str, store: Any | None = None) -> Any:
    """``std_msgs/Header`` with the stamp ``stamp_ns`` (ns, >= 0)."""
    t = _types(store)
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)


def cloud_msg(points: np.ndarray, header: Any, store: Any | None = None) -> Any:
    """Structured array ``(N,)`` -> unorganised ``sensor_msgs/PointCloud2`` (little-endian, padding kept and
    zeroed, ``is_dense`` when every float is finite).

    Raises:
        MessageError: not a structured array, or a field dtype PointField cannot carry.
    """
    t = _types(store)
    points = np.asarray(points)
    if points.dtype.names is None or points.ndim != 1:
        raise MessageError(f"cloud_msg needs a structured (N,) array, got {points.shape} {points.dtype}")
    fields, le = [], {}
    for name in points.dtype.names:
        fdt, offset = points.dtype.fields[name][:2]
        base, shape = fdt.subdtype if fdt.subdtype is not None else (fdt, ())
        code = _DTYPE_TO_POINTFIELD.get((base.kind, base.itemsize))
        if code is None or len(shape) > 1:
            raise MessageError(f"field '{name}' has dtype {fdt}, which PointField cannot carry")
        le[name] = ((base.newbyteorder("<"), shape) if shape else base.newbyteorder("<"), offset)
        fields.append(
            t["sensor_msgs/msg/PointField"](name=name, offset=offset, datatype=code, count=int(np.prod(shape)))
        )
    packed = np.zeros(
        len(points),
        dtype=np.dtype(
            {
                "names": list(le),
                "formats": [v[0] for v in le.values()],
                "offsets": [v[1] for v in le.values()],
                "itemsize": points.dtype.itemsize,
            }
        ),
    )
    dense = True
    for name in points.dtype.names:
        packed[name] = points[name]
        if points.dtype[name].base.kind == "f":
            dense = dense and bool(np.isfinite(points[name]).all())
    return t["sensor_msgs/msg/PointCloud2"](
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=points.dtype.itemsize,
        row_step=points.dtype.itemsize * len(points),
        data=packed.view(np.uint8).reshape(-1),
        is_dense=dense,
    )


def image_msg(rgb: np.ndarray, header: Any, store: Any | None = None) -> Any:
    """``(H, W, 3)`` uint8 RGB -> ``sensor_msgs/Image`` rgb8 (unpadded rows)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MessageError(f"image_msg needs an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    return _types(store)["sensor_msgs/msg/Image"](
        header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=rgb.reshape(-1)
    )


def compressed_image_msg(data: bytes | np.ndarray, header: Any, fmt: str = "jpeg", store: Any | None = None) -> Any:
    """Encoded image bytes (e.g. a JPEG file's) -> ``sensor_msgs/CompressedImage`` with image_transport's format
    string ``"rgb8; <fmt> compressed bgr8"``."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else np.asarray(data, np.uint8)
    return _types(store)["sensor_msgs/msg/CompressedImage"](
        header=header, format=f"rgb8; {fmt} compressed bgr8", data=buf.reshape(-1)
    )


def camera_info_msg(cal: Calibration, header: Any, store: Any | None = None) -> Any:
    """Pinhole :class:`Calibration` (no distortion) -> ``sensor_msgs/CameraInfo`` (``k``, ``r`` = I, ``p`` = [K|0])."""
    if cal.intrinsic is None or cal.image_size is None:
        raise MessageError(f"{cal.channel} has no intrinsics: not a camera")
    t = _types(store)
    k = np.asarray(cal.intrinsic, dtype=np.float64)
    p = np.zeros((3, 4))
    p[:, :3] = k
    return t["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=int(cal.image_size[1]),
        width=int(cal.image_size[0]),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=p.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _quat(wxyz: Sequence[float], store: Any | None) -> Any:
    w, x, y, z = (float(v) for v in wxyz)
    return _types(store)["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)


def pose_msg(quat_wxyz: Sequence[float], translation: Sequence[float], store: Any | None = None) -> Any:
    """``geometry_msgs/Pose`` from a quaternion ``(w, x, y, z)`` and a translation, written as given (no
    renormalisation, so a nuScenes record's values survive the round trip exactly)."""
    t = _types(store)
    x, y, z = (float(v) for v in translation)
    return t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=x, y=y, z=z), orientation=_quat(quat_wxyz, store)
    )


def pose_stamped_msg(
    quat_wxyz: Sequence[float], translation: Sequence[float], header: Any, store: Any | None = None
) -> Any:
    """``geometry_msgs/PoseStamped`` (see :func:`pose_msg`)."""
    return _types(store)["geometry_msgs/msg/PoseStamped"](header=header, pose=pose_msg(quat_wxyz, translation, store))


def transform_stamped_msg(
    quat_wxyz: Sequence[float], translation: Sequence[float], header: Any, child_frame_id: str, store: Any | None = None
) -> Any:
    """``geometry_msgs/TransformStamped`` child -> ``header.frame_id`` (values written as given)."""
    t = _types(store)
    x, y, z = (float(v) for v in translation)
    return t["geometry_msgs/msg/TransformStamped"](
        header=header,
        child_frame_id=child_frame_id,
        transform=t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=x, y=y, z=z), rotation=_quat(quat_wxyz, store)
        ),
    )


def tf_msg(transforms: Sequence[Any], store: Any | None = None) -> Any:
    """``tf2_msgs/TFMessage`` of ``TransformStamped`` messages."""
    return _types(store)["tf2_msgs/msg/TFMessage"](transforms=list(transforms))


def odometry_msg(
    quat_wxyz: Sequence[float],
    translation: Sequence[float],
    linear: Sequence[float],
    angular: Sequence[float],
    header: Any,
    child_frame_id: str = "base_link",
    store: Any | None = None,
) -> Any:
    """``nav_msgs/Odometry``: pose of ``child_frame_id`` in ``header.frame_id``, twist (m/s, rad/s) in
    ``child_frame_id`` as REP 105 says; covariances unknown (zeros)."""
    t = _types(store)
    vec = t["geometry_msgs/msg/Vector3"]
    twist = t["geometry_msgs/msg/Twist"](linear=vec(*map(float, linear)), angular=vec(*map(float, angular)))
    return t["nav_msgs/msg/Odometry"](
        header=header,
        child_frame_id=child_frame_id,
        pose=t["geometry_msgs/msg/PoseWithCovariance"](
            pose=pose_msg(quat_wxyz, translation, store), covariance=np.zeros(36)
        ),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


def detections_msg(boxes: Boxes, header: Any, store: Any | None = None) -> Any:
    """:class:`Boxes` -> ``vision_msgs/Detection3DArray`` with the conventions of :mod:`imkd_ros.ros.messages`
    (class name in ``results[0].hypothesis.class_id``, ``bbox.size`` = (length, width, height), ``id`` the index in
    the frame); the velocities go into :func:`objects_msg`. Read back (with that message) by
    :func:`imkd_ros.bag.interfaces.detections_to_boxes`."""
    t = _types(store)
    dets = []
    for i in range(len(boxes)):
        c, (w, l, h) = boxes.center[i], boxes.size[i]
        pose = pose_msg(yaw_to_quat(float(boxes.yaw[i])), c, store)
        hyp = t["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=t["vision_msgs/msg/ObjectHypothesis"](
                class_id=CLASSES[int(boxes.label[i])], score=float(boxes.score[i])
            ),
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        )
        dets.append(
            t["vision_msgs/msg/Detection3D"](
                header=header,
                results=[hyp],
                bbox=t["vision_msgs/msg/BoundingBox3D"](
                    center=pose, size=t["geometry_msgs/msg/Vector3"](x=float(l), y=float(w), z=float(h))
                ),
                id=detection_id(i),
            )
        )
    return t["vision_msgs/msg/Detection3DArray"](header=header, detections=dets)


def objects_msg(boxes: Boxes, header: Any, store: Any | None = None) -> Any:
    """:class:`Boxes` -> ``autoware_perception_msgs/DetectedObjects`` as the detector node publishes it (conventions
    and class mapping: :mod:`imkd_ros.pipeline.objects`; velocity as the object-frame twist, ``has_twist`` where it is
    finite)."""
    t = _types(store)
    vec = t["geometry_msgs/msg/Vector3"]
    zero = vec(x=0.0, y=0.0, z=0.0)
    objects = []
    for spec in object_specs(boxes):
        twist = vec(x=spec.twist[0], y=spec.twist[1], z=0.0) if spec.twist is not None else zero
        kinematics = t["autoware_perception_msgs/msg/DetectedObjectKinematics"](
            pose_with_covariance=t["geometry_msgs/msg/PoseWithCovariance"](
                pose=pose_msg(spec.orientation, spec.position, store), covariance=np.zeros(36)
            ),
            has_position_covariance=False,
            orientation_availability=ORIENTATION_AVAILABLE,
            twist_with_covariance=t["geometry_msgs/msg/TwistWithCovariance"](
                twist=t["geometry_msgs/msg/Twist"](linear=twist, angular=zero), covariance=np.zeros(36)
            ),
            has_twist=spec.twist is not None,
            has_twist_covariance=False,
        )
        shape = t["autoware_perception_msgs/msg/Shape"](
            type=SHAPE_BOUNDING_BOX,
            footprint=t["geometry_msgs/msg/Polygon"](points=[]),
            dimensions=vec(*spec.dimensions),
        )
        cls = t["autoware_perception_msgs/msg/ObjectClassification"](label=spec.label, probability=spec.probability)
        objects.append(
            t["autoware_perception_msgs/msg/DetectedObject"](
                existence_probability=spec.existence_probability,
                classification=[cls],
                kinematics=kinematics,
                shape=shape,
            )
        )
    return t["autoware_perception_msgs/msg/DetectedObjects"](header=header, objects=objects)


def string_msg(text: str, store: Any | None = None) -> Any:
    """``std_msgs/String``."""
    return _types(store)["std_msgs/msg/String"](data=str(text))
