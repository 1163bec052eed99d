"""ROS message <-> numpy conversion for point clouds and images, as plain functions.

No sensor_msgs_py or cv_bridge (neither is installable from PyPI); the readers (from :mod:`imkd_ros.pipeline.arrays`, no
ROS needed) work on any object with the message's attributes (rclpy messages, and rosbags' deserialised messages
whose ``data`` is a numpy array), the writers build rclpy messages.

Conventions:
    * A point cloud is a numpy structured array of shape ``(N,)`` with ``N = height * width`` (row-major for
      organised clouds), one named field per ``PointField``, each in its own dtype.
    * An image is ``(H, W, 3)`` uint8 RGB, the project's single image representation (see
      :class:`imkd_ros.core.types.Frame`).

Every problem raises :class:`ConversionError` (a ``ValueError``) whose message names the message type and what is
wrong, so that a node can log it as a throttled warning and drop the frame.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField

from imkd_ros.pipeline.arrays import (
    IMAGE_ENCODINGS,
    POINTFIELD_DTYPES,
    ConversionError,
    compressed_to_array,
    fields_to_matrix,
    image_to_array,
    pointcloud2_to_array,
)

__all__ = [
    "ConversionError",
    "pointcloud2_to_array",
    "array_to_pointcloud2",
    "fields_to_matrix",
    "image_to_array",
    "array_to_image",
    "compressed_to_array",
    "array_to_compressed",
    "IMAGE_ENCODINGS",
]

_DTYPE_TO_POINTFIELD: dict[tuple[str, int], int] = {
    (np.dtype(code).kind, np.dtype(code).itemsize): datatype for datatype, code in POINTFIELD_DTYPES.items()
}

_WRITE_ENCODINGS = ("rgb8", "bgr8", "mono8")
_COMPRESSED_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}


def _to_msg_bytes(arr: np.ndarray) -> array.array:
    """Contiguous array -> ``array.array('B')`` (the type rclpy stores ``uint8[]`` in; one copy, no per-byte
    Python work)."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)))
    return out


# --------------------------------------------------------------------------------------------------- point clouds


def array_to_pointcloud2(arr: np.ndarray, header: Any = None) -> PointCloud2:
    """Structured array ``(N,)`` (unorganised, height 1) or ``(H, W)`` (organised) -> ``sensor_msgs/PointCloud2``.

    Field names, offsets and ``point_step`` come from the dtype (padding kept); supported field dtypes are int8,
    uint8, int16, uint16, int32, uint32, float32, float64, each optionally a 1-D sub-array (``count``). Data are
    written little-endian (``is_bigendian`` False). ``is_dense`` is True when every float value is finite.

    Raises:
        ConversionError: not a structured array, more than 2 dimensions, or a field dtype PointField cannot carry.
    """
    arr = np.asarray(arr)
    if arr.dtype.names is None:
        raise ConversionError(f"array_to_pointcloud2 needs a structured array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ConversionError(f"array_to_pointcloud2 needs shape (N,) or (H, W), got {arr.shape}")
    height, width = (1, arr.shape[0]) if arr.ndim == 1 else arr.shape
    le_fields: dict[str, Any] = {}
    msg_fields: list[PointField] = []
    for name in arr.dtype.names:
        fdt, offset = arr.dtype.fields[name][:2]
        base, shape = fdt.subdtype if fdt.subdtype is not None else (fdt, ())
        if len(shape) > 1:
            raise ConversionError(f"field '{name}' has shape {shape}; PointField carries 1-D counts only")
        datatype = _DTYPE_TO_POINTFIELD.get((base.kind, base.itemsize))
        if datatype is None:
            raise ConversionError(f"field '{name}' has dtype {base}, which PointField cannot carry")
        le = base.newbyteorder("<")
        le_fields[name] = (le if not shape else (le, shape), offset)
        msg_fields.append(PointField(name=name, offset=offset, datatype=datatype, count=shape[0] if shape else 1))
    le_dtype = np.dtype(
        {
            "names": list(le_fields),
            "formats": [v[0] for v in le_fields.values()],
            "offsets": [v[1] for v in le_fields.values()],
            "itemsize": arr.dtype.itemsize,
        }
    )
    packed = np.zeros(arr.shape, dtype=le_dtype)  # zeroed so that padding bytes are deterministic
    dense = True
    for name in arr.dtype.names:
        packed[name] = arr[name]
        if arr.dtype[name].base.kind == "f" and dense:
            dense = bool(np.isfinite(arr[name]).all())
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.fields = msg_fields
    msg.is_bigendian = False
    msg.point_step = int(arr.dtype.itemsize)
    msg.row_step = int(arr.dtype.itemsize * width)
    msg.data = _to_msg_bytes(packed)
    msg.is_dense = dense
    return msg


# --------------------------------------------------------------------------------------------------------- images


def _check_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ConversionError(f"{what} needs an (H, W, 3) uint8 RGB array, got {arr.shape} {arr.dtype}")
    return arr


def array_to_image(arr: np.ndarray, header: Any = None, encoding: str = "rgb8") -> Image:
    """``(H, W, 3)`` uint8 RGB -> ``sensor_msgs/Image`` with the given wire ``encoding`` (rgb8 or bgr8); for
    ``encoding="mono8"`` ``arr`` is ``(H, W)`` uint8 grey. Rows are unpadded (``step = W * channels``).

    Raises:
        ConversionError: unsupported encoding, or an array of the wrong shape or dtype for it.
    """
    if encoding not in _WRITE_ENCODINGS:
        raise ConversionError(f"array_to_image: unsupported encoding '{encoding}' (supported: rgb8, bgr8, mono8)")
    if encoding == "mono8":
        arr = np.asarray(arr)
        if arr.dtype != np.uint8 or arr.ndim != 2:
            raise ConversionError(f"array_to_image(mono8) needs an (H, W) uint8 array, got {arr.shape} {arr.dtype}")
        pixels = arr
    else:
        arr = _check_rgb(arr, f"array_to_image({encoding})")
        pixels = arr if encoding == "rgb8" or arr.size == 0 else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * (1 if encoding == "mono8" else 3))
    msg.data = _to_msg_bytes(pixels)
    return msg


def array_to_compressed(arr: np.ndarray, header: Any = None, fmt: str = "jpeg", quality: int = 90) -> CompressedImage:
    """``(H, W, 3)`` uint8 RGB -> ``sensor_msgs/CompressedImage``.

    ``fmt`` is ``"jpeg"`` (lossy, ``quality`` 0-100) or ``"png"`` (lossless). The message's ``format`` follows
    image_transport: ``"rgb8; jpeg compressed bgr8"``.

    Raises:
        ConversionError: unsupported ``fmt`` or an array that is not ``(H, W, 3)`` uint8.
    """
    ext = _COMPRESSED_FORMATS.get(fmt.lower())
    if ext is None:
        raise ConversionError(f"array_to_compressed: unsupported format '{fmt}' (supported: jpeg, png)")
    arr = _check_rgb(arr, "array_to_compressed")
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)] if ext == ".jpg" else []
    if arr.size == 0:
        raise ConversionError(f"array_to_compressed: cannot encode an empty image {arr.shape}")
    ok, buf = cv2.imencode(ext, cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ConversionError(f"array_to_compressed: encoding {arr.shape} as {fmt} failed")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    name = "jpeg" if ext == ".jpg" else "png"
    msg.format = f"rgb8; {name} compressed bgr8"
    msg.data = _to_msg_bytes(buf)
    return msg
