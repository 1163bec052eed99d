"""ROS message -> numpy (and core type) readers that need no ROS installation: they read any object with the
message's attributes (an rclpy message, a rosbags-deserialised one). :mod:`imkd_ros.ros.convert` and
:mod:`imkd_ros.ros.messages` re-export them next to the writers (which build rclpy messages); :mod:`imkd_ros.bag`
uses them directly (:mod:`imkd_ros.bag.convert`). Poses are :class:`~imkd_ros.core.transforms.Pose` (child -> parent,
quaternions ``(w, x, y, z)`` in the core, ``x, y, z, w`` fields on the wire).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from imkd_ros.core.errors import ImkdError
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration

__all__ = [
    "ConversionError",
    "POINTFIELD_DTYPES",
    "IMAGE_ENCODINGS",
    "pointcloud2_to_array",
    "fields_to_matrix",
    "image_to_array",
    "compressed_to_array",
    "pose_msg_to_pose",
    "transform_msg_to_pose",
    "camera_info_to_calibration",
]

#: ``sensor_msgs/PointField`` datatype constant (INT8=1 ... FLOAT64=8) -> numpy dtype code (byte order added per
#: message).
POINTFIELD_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}

#: Image encodings :func:`image_to_array` reads, with their channel count.
IMAGE_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class ConversionError(ImkdError, ValueError):
    """A message could not be converted; the text says which message and what is wrong (bad input: an
    :class:`~imkd_ros.core.errors.ImkdError`, and a ``ValueError``)."""


def _as_uint8_buffer(data: Any, what: str) -> np.ndarray:
    """``data`` (array.array('B'), bytes, memoryview, list of ints or numpy uint8 array) as a 1-D uint8 array,
    without a copy where the object exposes a buffer."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ConversionError(f"{what}.data has dtype {data.dtype}, expected uint8")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


# --------------------------------------------------------------------------------------------------- point clouds


def _cloud_dtype(msg: Any) -> np.dtype:
    """Structured dtype of one point of ``msg``: fields at their offsets, itemsize ``point_step``."""
    order = ">" if msg.is_bigendian else "<"
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    point_step = int(msg.point_step)
    for f in msg.fields:
        if f.name in names:
            raise ConversionError(f"PointCloud2 has two fields named '{f.name}'")
        code = POINTFIELD_DTYPES.get(int(f.datatype))
        if code is None:
            raise ConversionError(f"PointCloud2 field '{f.name}' has unknown datatype {f.datatype}")
        count = int(f.count)
        if count < 1:
            raise ConversionError(f"PointCloud2 field '{f.name}' has count {count}, expected >= 1")
        dt = np.dtype(order + code)
        end = int(f.offset) + dt.itemsize * count
        if f.offset < 0 or end > point_step:
            raise ConversionError(
                f"PointCloud2 field '{f.name}' spans bytes {f.offset}..{end} beyond point_step {point_step}"
            )
        names.append(f.name)
        formats.append(dt if count == 1 else (dt, (count,)))
        offsets.append(int(f.offset))
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    except ValueError as err:  # overlapping fields
        raise ConversionError(f"PointCloud2 fields do not fit one point: {err}") from err


def pointcloud2_to_array(msg: Any, fields: Sequence[str] | None = None) -> np.ndarray:
    """``sensor_msgs/PointCloud2`` -> structured array ``(height * width,)``.

    Each field keeps its own dtype (a field with ``count > 1`` becomes a sub-array ``(count,)``); byte order follows
    ``is_bigendian``; padding inside a point (``point_step``) and at row ends (``row_step``) is skipped.
    Without row padding the result is a zero-copy view on ``msg.data``: copy it before writing to it if the message
    must stay intact.

    Args:
        msg: the message (or any object with its attributes, e.g. a rosbags message).
        fields: if given, only these fields in this order (a view where possible); a missing one is an error.

    Raises:
        ConversionError: unknown datatype, field outside the point, ``row_step < width * point_step``, data length
            not ``height * row_step``, missing requested field.
    """
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    dtype = _cloud_dtype(msg)
    if fields is not None:
        missing = [name for name in fields if name not in dtype.names]
        if missing:
            raise ConversionError(
                f"PointCloud2 has no field '{missing[0]}' (fields: {', '.join(dtype.names) or 'none'})"
            )
    data = _as_uint8_buffer(msg.data, "PointCloud2")
    n = height * width
    if n and point_step <= 0:
        raise ConversionError(f"PointCloud2 point_step is {point_step} for {n} points")
    if row_step < width * point_step:
        raise ConversionError(f"PointCloud2 row_step {row_step} < width {width} * point_step {point_step}")
    if data.size != height * row_step:
        raise ConversionError(
            f"PointCloud2 data length {data.size} does not match height*row_step {height * row_step}"
            f" ({height}*{row_step})"
        )
    if n == 0:
        out = np.zeros((0,), dtype=dtype)
    else:
        grid = np.ndarray((height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))
        out = grid.reshape(n)  # a view unless rows are padded
    if fields is not None:
        out = out[list(fields)]
    return out


def fields_to_matrix(cloud: np.ndarray, names: Sequence[str], dtype: Any = np.float32) -> np.ndarray:
    """Columns ``names`` of a structured cloud ``(N,)`` as a dense matrix ``(N, len(names))`` of ``dtype``
    (e.g. the radar features of :data:`imkd_ros.core.types.RADAR_FEATURES` that a message carries).

    Raises:
        ConversionError: a name is not a field of ``cloud`` or is a multi-count field.
    """
    if cloud.dtype.names is None:
        raise ConversionError(f"expected a structured point array, got dtype {cloud.dtype}")
    out = np.empty((len(cloud), len(names)), dtype=dtype)
    for j, name in enumerate(names):
        if name not in cloud.dtype.names:
            raise ConversionError(
                f"PointCloud2 has no field '{name}' (fields: {', '.join(cloud.dtype.names) or 'none'})"
            )
        if cloud.dtype[name].shape:
            raise ConversionError(f"PointCloud2 field '{name}' has count {cloud.dtype[name].shape[0]}, expected 1")
        out[:, j] = cloud[name]
    return out


# images


def image_to_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8 or mono8) -> ``(H, W, 3)`` uint8 RGB.

    Row padding (``step > width * channels``) is skipped; alpha is dropped; mono8 is replicated to 3 channels.
    For unpadded rgb8 the result is a zero-copy view on ``msg.data``; otherwise a new C-contiguous array.

    Raises:
        ConversionError: unsupported encoding, ``step`` too small, data length not ``height * step``.
    """
    encoding = str(msg.encoding).lower()
    channels = IMAGE_ENCODINGS.get(encoding)
    if channels is None:
        raise ConversionError(
            f"Image has unsupported encoding '{msg.encoding}' (supported: {', '.join(IMAGE_ENCODINGS)})"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = _as_uint8_buffer(msg.data, "Image")
    if step < width * channels:
        raise ConversionError(f"Image step {step} < width {width} * {channels} channels ({encoding})")
    if data.size != height * step:
        raise ConversionError(
            f"Image data length {data.size} does not match height*step {height * step} ({height}*{step})"
        )
    pixels = np.ndarray((height, width, channels), dtype=np.uint8, buffer=data, strides=(step, channels, 1))
    if encoding == "rgb8":
        return pixels if pixels.flags.c_contiguous else np.ascontiguousarray(pixels)
    if height == 0 or width == 0:
        return np.zeros((height, width, 3), dtype=np.uint8)
    # cv2 reads row-padded arrays directly and is ~10x faster than numpy's strided channel shuffles
    code = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB}.get(encoding)
    if code is None:  # mono8
        return cv2.cvtColor(pixels[..., 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(pixels, code)


def compressed_to_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG or PNG, colour or grey) -> ``(H, W, 3)`` uint8 RGB.

    Raises:
        ConversionError: empty data, or bytes that do not decode as an image.
    """
    data = _as_uint8_buffer(msg.data, "CompressedImage")
    fmt = str(getattr(msg, "format", ""))
    if data.size == 0:
        raise ConversionError(f"CompressedImage (format '{fmt}') has no data")
    if "compresseddepth" in fmt.lower():
        raise ConversionError(f"CompressedImage has unsupported format '{fmt}' (depth images are not colour images)")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConversionError(f"CompressedImage (format '{fmt}', {data.size} bytes) could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------------- poses, camera info


def _pose(q: Any, t: Any, what: str) -> Pose:
    quat = np.array([q.w, q.x, q.y, q.z], dtype=np.float64)
    trans = np.array([t.x, t.y, t.z], dtype=np.float64)
    if not (np.isfinite(quat).all() and np.isfinite(trans).all()) or np.linalg.norm(quat) < 1e-9:
        raise ConversionError(f"{what} is not finite or has a zero quaternion: q={quat}, t={trans}")
    return Pose.from_quat(quat, trans)


def pose_msg_to_pose(msg: Any) -> Pose:
    """``geometry_msgs/Pose`` -> :class:`Pose` (``Pose.from_quat``, so a quaternion written from a nuScenes record
    gives back the reader's pose bit for bit).

    Raises:
        ConversionError: a non-finite value or a zero quaternion.
    """
    return _pose(msg.orientation, msg.position, "Pose")


def transform_msg_to_pose(msg: Any) -> Pose:
    """``geometry_msgs/Transform`` (child -> parent) -> :class:`Pose`.

    Raises:
        ConversionError: a non-finite value or a zero quaternion.
    """
    return _pose(msg.rotation, msg.translation, "Transform")


def camera_info_to_calibration(msg: Any, sensor_to_ego: Pose, channel: str = "CAM_FRONT") -> Calibration:
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
    return Calibration(channel, sensor_to_ego, k, (width, height))
