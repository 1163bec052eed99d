"""ROS message <-> numpy conversion for point clouds and images, as plain functions.

No sensor_msgs_py or cv_bridge (neither is installable from PyPI); the readers work on any object with the
message's attributes (rclpy messages, and rosbags' deserialised messages whose ``data`` is a numpy array), the
writers build rclpy messages.

Conventions:
    * A point cloud is a numpy structured array of shape ``(N,)`` with ``N = height * width`` (row-major for
      organised clouds), one named field per ``PointField``, each in its own dtype.
    * An image is ``(H, W, 3)`` uint8 RGB, the project's single image representation (see
      :class:`imkd_ros.types.Frame`).

Every problem raises :class:`ConversionError` (a ``ValueError``) whose message names the message type and what is
wrong, so that a node can log it as a throttled warning and drop the frame.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField

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

#: PointField datatype constant -> numpy dtype character code (byte order added per message).
_POINTFIELD_TO_DTYPE: dict[int, str] = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}
_DTYPE_TO_POINTFIELD: dict[tuple[str, int], int] = {
    (np.dtype(code).kind, np.dtype(code).itemsize): datatype for datatype, code in _POINTFIELD_TO_DTYPE.items()
}

#: Image encodings :func:`image_to_array` reads, with their channel count.
IMAGE_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_WRITE_ENCODINGS = ("rgb8", "bgr8", "mono8")
_COMPRESSED_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}


class ConversionError(ValueError):
    """A message could not be converted; the text says which message and what is wrong."""


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


def _to_msg_bytes(arr: np.ndarray) -> array.array:
    """Contiguous array -> ``array.array('B')`` (the type rclpy stores ``uint8[]`` in; one copy, no per-byte
    Python work)."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)))
    return out


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
        code = _POINTFIELD_TO_DTYPE.get(int(f.datatype))
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
    (e.g. the radar features of :data:`imkd_ros.types.RADAR_FEATURES` that a message carries).

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
