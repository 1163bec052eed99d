"""imkd_ros.ros.convert as plain functions: round trips, padding, byte order, views, and every error path."""

from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from imkd_ros.ros.convert import (
    ConversionError,
    array_to_compressed,
    array_to_image,
    array_to_pointcloud2,
    compressed_to_array,
    fields_to_matrix,
    image_to_array,
    pointcloud2_to_array,
)

ALL_DTYPES = np.dtype(
    [
        ("f32", "<f4"),
        ("i8", "i1"),
        ("i16", "<i2"),
        ("u8", "u1"),
        ("u16", "<u2"),
        ("i32", "<i4"),
        ("u32", "<u4"),
        ("f64", "<f8"),
        ("rgb3", "u1", (3,)),
    ]
)


def _random_cloud(n: int, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cloud = np.zeros(n, dtype=dtype)
    for name in dtype.names:
        base = dtype[name].base
        shape = (n, *dtype[name].shape)
        if base.kind == "f":
            cloud[name] = rng.normal(0, 100, shape).astype(base)
        else:
            info = np.iinfo(base)
            cloud[name] = rng.integers(info.min, info.max, shape, endpoint=True, dtype=base)
    return cloud


def _raw_cloud(
    fields: list[tuple[str, int, int]], point_step: int, width: int, data: bytes, **kw: object
) -> SimpleNamespace:
    """A PointCloud2-like object built by hand (name, offset, datatype), height 1 unless given."""
    msg = SimpleNamespace(
        height=1,
        width=width,
        fields=[SimpleNamespace(name=n, offset=o, datatype=d, count=1) for n, o, d in fields],
        is_bigendian=False,
        point_step=point_step,
        row_step=point_step * width,
        data=data,
    )
    for key, value in kw.items():
        setattr(msg, key, value)
    return msg


# ------------------------------------------------------------------------------------------------- point clouds


def test_pointcloud_round_trip_all_datatypes() -> None:
    cloud = _random_cloud(50, ALL_DTYPES)
    header = Header(frame_id="radar")
    header.stamp.sec = 7
    msg = array_to_pointcloud2(cloud, header)
    assert isinstance(msg, PointCloud2)
    assert msg.header.frame_id == "radar" and msg.header.stamp.sec == 7
    assert (msg.height, msg.width, msg.point_step) == (1, 50, ALL_DTYPES.itemsize)
    assert msg.row_step == 50 * ALL_DTYPES.itemsize and not msg.is_bigendian and msg.is_dense
    types = {f.name: (f.datatype, f.offset, f.count) for f in msg.fields}
    assert types["f32"] == (PointField.FLOAT32, 0, 1)
    assert types["i8"][0] == PointField.INT8 and types["u8"][0] == PointField.UINT8
    assert types["i16"][0] == PointField.INT16 and types["u16"][0] == PointField.UINT16
    assert types["i32"][0] == PointField.INT32 and types["u32"][0] == PointField.UINT32
    assert types["f64"][0] == PointField.FLOAT64 and types["rgb3"] == (PointField.UINT8, 26, 3)
    back = pointcloud2_to_array(msg)
    assert back.shape == (50,)
    assert back.dtype.names == ALL_DTYPES.names
    for name in ALL_DTYPES.names:
        assert back.dtype[name] == ALL_DTYPES[name], name
        np.testing.assert_array_equal(back[name], cloud[name])


def test_pointcloud_organised_and_big_endian_input() -> None:
    dt = np.dtype([("x", ">f4"), ("id", ">i2")])
    cloud = np.zeros((2, 3), dtype=dt)
    cloud["x"] = np.arange(6, dtype=np.float32).reshape(2, 3) + 0.5
    cloud["id"] = np.arange(6).reshape(2, 3) - 3
    msg = array_to_pointcloud2(cloud)
    assert (msg.height, msg.width) == (2, 3) and not msg.is_bigendian
    back = pointcloud2_to_array(msg)
    np.testing.assert_array_equal(back["x"], cloud["x"].reshape(-1))
    np.testing.assert_array_equal(back["id"], cloud["id"].reshape(-1))


def test_pointcloud_reads_big_endian_message() -> None:
    values = np.array([1.5, -2.25, 1e6], dtype=">f4")
    ids = np.array([300, -7, 12], dtype=">i2")
    packed = np.zeros(
        3, dtype=np.dtype({"names": ["x", "id"], "formats": [">f4", ">i2"], "offsets": [0, 4], "itemsize": 8})
    )
    packed["x"], packed["id"] = values, ids
    msg = _raw_cloud([("x", 0, PointField.FLOAT32), ("id", 4, PointField.INT16)], 8, 3, packed.tobytes())
    msg.is_bigendian = True
    back = pointcloud2_to_array(msg)
    np.testing.assert_array_equal(back["x"], values.astype(np.float32))
    np.testing.assert_array_equal(back["id"], ids.astype(np.int16))
    msg.is_bigendian = False  # the same bytes read little-endian are different numbers
    assert not np.array_equal(pointcloud2_to_array(msg)["x"], values)


def test_pointcloud_point_and_row_padding() -> None:
    # 2 rows x 3 points; each point x,y,z float32 + 4 pad bytes (point_step 16); each row + 8 pad bytes.
    xyz = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    rows = []
    for r in range(2):
        row = b"".join(xyz[r, c].tobytes() + b"\xee" * 4 for c in range(3)) + b"\xff" * 8
        rows.append(row)
    fields = [("x", 0, PointField.FLOAT32), ("y", 4, PointField.FLOAT32), ("z", 8, PointField.FLOAT32)]
    msg = _raw_cloud(fields, 16, 3, b"".join(rows), height=2, row_step=56)
    back = pointcloud2_to_array(msg)
    assert back.shape == (6,) and back.dtype.itemsize == 16
    np.testing.assert_array_equal(np.stack([back["x"], back["y"], back["z"]], axis=1), xyz.reshape(6, 3))
    np.testing.assert_array_equal(fields_to_matrix(back, ["z", "x"]), xyz.reshape(6, 3)[:, [2, 0]])


def test_pointcloud_is_a_view_on_message_data() -> None:
    msg = array_to_pointcloud2(_random_cloud(10, ALL_DTYPES))
    assert isinstance(msg.data, array.array)
    back = pointcloud2_to_array(msg)
    assert np.shares_memory(back, np.frombuffer(msg.data, dtype=np.uint8))
    msg.data[0:4] = array.array("B", np.float32(42.0).tobytes())
    assert back["f32"][0] == 42.0


def test_pointcloud_field_selection_and_missing_field() -> None:
    cloud = _random_cloud(5, ALL_DTYPES)
    msg = array_to_pointcloud2(cloud)
    sub = pointcloud2_to_array(msg, fields=["u16", "f32"])
    assert sub.dtype.names == ("u16", "f32")
    np.testing.assert_array_equal(sub["u16"], cloud["u16"])
    with pytest.raises(ConversionError, match="no field 'rcs'"):
        pointcloud2_to_array(msg, fields=["f32", "rcs"])
    with pytest.raises(ConversionError, match="no field 'rcs'"):
        fields_to_matrix(cloud, ["rcs"])
    with pytest.raises(ConversionError, match="count 3"):
        fields_to_matrix(cloud, ["rgb3"])


def test_pointcloud_nan_makes_not_dense_and_empty_cloud() -> None:
    cloud = np.zeros(3, dtype=[("x", "<f4"), ("i", "<i4")])
    cloud["x"][1] = np.nan
    assert not array_to_pointcloud2(cloud).is_dense
    empty = array_to_pointcloud2(np.zeros(0, dtype=ALL_DTYPES))
    assert empty.width == 0 and len(empty.data) == 0
    back = pointcloud2_to_array(empty)
    assert back.shape == (0,) and back.dtype.names == ALL_DTYPES.names


def test_pointcloud_from_rosbags_message() -> None:
    """The reader is duck-typed: a message deserialised by rosbags (numpy ``data``) converts the same way."""
    from rclpy.serialization import serialize_message
    from rosbags.typesys import Stores, get_typestore

    cloud = _random_cloud(20, ALL_DTYPES, seed=3)
    raw = serialize_message(array_to_pointcloud2(cloud, Header(frame_id="r")))
    bag_msg = get_typestore(Stores.ROS2_KILTED).deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    assert isinstance(bag_msg.data, np.ndarray)
    back = pointcloud2_to_array(bag_msg)
    for name in ALL_DTYPES.names:
        np.testing.assert_array_equal(back[name], cloud[name])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"data": b"\x00" * 23}, r"data length 23 does not match height\*row_step 24"),
        ({"row_step": 8}, r"row_step 8 < width 2 \* point_step 12"),
        ({"point_step": 6, "row_step": 12}, "spans bytes 4..8 beyond point_step 6"),
        ({"fields": [SimpleNamespace(name="x", offset=0, datatype=9, count=1)]}, "field 'x' has unknown datatype 9"),
        (
            {"fields": [SimpleNamespace(name="x", offset=0, datatype=7, count=1)] * 2},
            "two fields named 'x'",
        ),
        ({"fields": [SimpleNamespace(name="x", offset=0, datatype=7, count=0)]}, "count 0"),
    ],
)
def test_pointcloud_errors(change: dict, match: str) -> None:
    msg = _raw_cloud([("x", 0, PointField.FLOAT32), ("y", 4, PointField.FLOAT32)], 12, 2, b"\x00" * 24)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ConversionError, match=match):
        pointcloud2_to_array(msg)


def test_array_to_pointcloud_errors() -> None:
    with pytest.raises(ConversionError, match="structured array"):
        array_to_pointcloud2(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ConversionError, match="field 't' has dtype int64"):
        array_to_pointcloud2(np.zeros(2, dtype=[("x", "<f4"), ("t", "<i8")]))
    with pytest.raises(ConversionError, match=r"shape \(N,\) or \(H, W\)"):
        array_to_pointcloud2(np.zeros((1, 2, 3), dtype=[("x", "<f4")]))
    assert issubclass(ConversionError, ValueError)


# ------------------------------------------------------------------------------------------------------- images


def _rgb(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_image_round_trip_rgb8_is_view() -> None:
    rgb = _rgb()
    msg = array_to_image(rgb, Header(frame_id="cam"))
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 5, 15, "rgb8")
    assert msg.header.frame_id == "cam"
    back = image_to_array(msg)
    np.testing.assert_array_equal(back, rgb)
    assert np.shares_memory(back, np.frombuffer(msg.data, dtype=np.uint8))


def test_image_round_trip_bgr8_and_mono8() -> None:
    rgb = _rgb()
    msg = array_to_image(rgb, encoding="bgr8")
    assert msg.encoding == "bgr8"
    assert bytes(msg.data[:3]) == rgb[0, 0, ::-1].tobytes()  # really stored as B, G, R
    back = image_to_array(msg)
    np.testing.assert_array_equal(back, rgb)
    assert back.flags.c_contiguous
    grey = rgb[..., 0].copy()
    msg = array_to_image(grey, encoding="mono8")
    assert (msg.step, msg.encoding) == (5, "mono8")
    np.testing.assert_array_equal(image_to_array(msg), np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_image_row_padding(encoding: str) -> None:
    rgb = _rgb(4, 3, seed=1)
    channels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., :1]}
    alpha = np.full((4, 3, 1), 7, dtype=np.uint8)
    channels["rgba8"] = np.concatenate([rgb, alpha], axis=2)
    channels["bgra8"] = np.concatenate([rgb[..., ::-1], alpha], axis=2)
    pix = channels[encoding]
    row_bytes = pix.shape[1] * pix.shape[2]
    step = row_bytes + 5
    data = b"".join(pix[r].tobytes() + b"\xab" * 5 for r in range(4))
    msg = SimpleNamespace(height=4, width=3, step=step, encoding=encoding, is_bigendian=0, data=data)
    want = np.repeat(rgb[..., :1], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(image_to_array(msg), want)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"encoding": "yuv422"}, "unsupported encoding 'yuv422'"),
        ({"data": b"\x00" * 50}, r"data length 50 does not match height\*step 60 \(4\*15\)"),
        ({"step": 8, "data": b"\x00" * 32}, r"step 8 < width 5 \* 3 channels"),
    ],
)
def test_image_errors(change: dict, match: str) -> None:
    msg = SimpleNamespace(height=4, width=5, step=15, encoding="rgb8", is_bigendian=0, data=b"\x00" * 60)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ConversionError, match=match):
        image_to_array(msg)


def test_array_to_image_errors() -> None:
    with pytest.raises(ConversionError, match="unsupported encoding 'yuv422'"):
        array_to_image(_rgb(), encoding="yuv422")
    with pytest.raises(ConversionError, match=r"\(H, W, 3\) uint8 RGB"):
        array_to_image(_rgb().astype(np.float32))
    with pytest.raises(ConversionError, match=r"\(H, W, 3\) uint8 RGB"):
        array_to_image(_rgb()[..., :2])
    with pytest.raises(ConversionError, match=r"mono8\) needs an \(H, W\) uint8"):
        array_to_image(_rgb(), encoding="mono8")


def test_compressed_png_is_lossless_and_jpeg_close() -> None:
    rgb = _rgb(32, 48, seed=2)
    msg = array_to_compressed(rgb, Header(frame_id="cam"), fmt="png")
    assert isinstance(msg, CompressedImage)
    assert msg.format == "rgb8; png compressed bgr8" and msg.header.frame_id == "cam"
    assert bytes(msg.data[1:4]) == b"PNG"
    np.testing.assert_array_equal(compressed_to_array(msg), rgb)
    # a smooth image survives JPEG closely; channel order must be kept (a swapped R/B would be far off)
    yy, xx = np.mgrid[0:32, 0:48]
    smooth = np.stack([xx * 5, yy * 7, 255 - xx * 5], axis=2).astype(np.uint8)
    jmsg = array_to_compressed(smooth, fmt="jpeg", quality=95)
    assert jmsg.format == "rgb8; jpeg compressed bgr8"
    assert bytes(jmsg.data[:2]) == b"\xff\xd8"
    back = compressed_to_array(jmsg)
    assert back.shape == smooth.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - smooth).mean() < 3.0


def test_compressed_grey_png_gives_three_channels() -> None:
    import cv2

    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    ok, buf = cv2.imencode(".png", grey)
    assert ok
    msg = SimpleNamespace(format="png", data=buf.tobytes())
    np.testing.assert_array_equal(compressed_to_array(msg), np.repeat(grey[..., None], 3, axis=2))


def test_compressed_errors() -> None:
    with pytest.raises(ConversionError, match=r"format 'jpeg', 4 bytes\) could not be decoded"):
        compressed_to_array(SimpleNamespace(format="jpeg", data=b"abcd"))
    with pytest.raises(ConversionError, match="has no data"):
        compressed_to_array(SimpleNamespace(format="jpeg", data=b""))
    with pytest.raises(ConversionError, match="unsupported format 'compressedDepth"):
        compressed_to_array(SimpleNamespace(format="compressedDepth png", data=b"\x89PNG"))
    with pytest.raises(ConversionError, match="unsupported format 'webp'"):
        array_to_compressed(_rgb(), fmt="webp")
    with pytest.raises(ConversionError, match=r"\(H, W, 3\) uint8 RGB"):
        array_to_compressed(_rgb()[..., 0])


def test_images_from_views_and_empty_images() -> None:
    view = _rgb(8, 10, seed=4)[::2, ::-1]  # non-contiguous input, e.g. a crop or a flip
    for encoding in ("rgb8", "bgr8"):
        np.testing.assert_array_equal(image_to_array(array_to_image(view, encoding=encoding)), view)
    np.testing.assert_array_equal(compressed_to_array(array_to_compressed(view, fmt="png")), view)
    for encoding in ("rgb8", "bgr8"):
        assert image_to_array(array_to_image(np.zeros((0, 5, 3), np.uint8), encoding=encoding)).shape == (0, 5, 3)
    assert image_to_array(array_to_image(np.zeros((3, 0), np.uint8), encoding="mono8")).shape == (3, 0, 3)
    with pytest.raises(ConversionError, match="cannot encode an empty image"):
        array_to_compressed(np.zeros((0, 5, 3), np.uint8))
