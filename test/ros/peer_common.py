"""What the runtime test's two processes agree on: topics, QoS, and the content of message ``seq``.

Both sides regenerate the payload of sequence number ``seq`` from a fixed seed, so the subscriber checks every
byte it receives against what the publisher must have sent. The sequence number travels in ``header.frame_id``
(``"<frame>#<seq>"``); ``header.stamp`` is the publisher's wall clock just before ``publish``, for latency.
rclpy is imported only inside :func:`sensor_qos`, so the checks are plain unit-testable functions.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from imkd_ros.data.pcd import RADAR_PCD_DTYPE

__all__ = [
    "SEED",
    "IMAGE_TOPIC",
    "CLOUD_TOPIC",
    "IMAGE_SHAPE",
    "N_POINTS",
    "RADAR_DTYPE",
    "expected_image",
    "expected_cloud",
    "image_digest",
    "frame_id",
    "parse_frame_id",
    "check_image",
    "check_cloud",
    "parse_summary",
    "sensor_qos",
]

SEED = 20251215
IMAGE_TOPIC = "imkd_test/image"
CLOUD_TOPIC = "imkd_test/radar"
IMAGE_SHAPE = (900, 1600, 3)  # nuScenes camera, (H, W, 3) uint8 RGB: 4.32 MB per message
N_POINTS = 200

#: The 18 fields of a nuScenes radar PCD in file order, packed without alignment (43 bytes per point), so that the
#: cloud mixes float32, int8 and int16 at unaligned offsets.
RADAR_DTYPE = RADAR_PCD_DTYPE

_BASE_IMAGE: np.ndarray | None = None


def expected_image(seq: int) -> np.ndarray:
    """The ``(900, 1600, 3)`` uint8 RGB image number ``seq``: a seeded random base plus ``seq`` (mod 256)."""
    global _BASE_IMAGE
    if _BASE_IMAGE is None:
        _BASE_IMAGE = np.random.default_rng(SEED).integers(0, 256, IMAGE_SHAPE, dtype=np.uint8)
    return _BASE_IMAGE + np.uint8(seq % 256)


def expected_cloud(seq: int) -> np.ndarray:
    """Radar cloud number ``seq``: ``(200,)`` structured :data:`RADAR_DTYPE`, values drawn from ``(SEED, seq)``."""
    rng = np.random.default_rng((SEED, seq))
    cloud = np.zeros(N_POINTS, dtype=RADAR_DTYPE)
    for name in RADAR_DTYPE.names:
        dt = RADAR_DTYPE[name]
        if dt.kind == "f":
            cloud[name] = rng.normal(0.0, 30.0, N_POINTS).astype(dt)
        else:
            info = np.iinfo(dt)
            cloud[name] = rng.integers(info.min, info.max, N_POINTS, endpoint=True, dtype=dt)
    return cloud


def image_digest(rgb: np.ndarray) -> str:
    """SHA-256 of an image's shape and pixel bytes."""
    h = hashlib.sha256(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).data)
    return h.hexdigest()


def frame_id(frame: str, seq: int) -> str:
    return f"{frame}#{seq}"


def parse_frame_id(text: str) -> int:
    """Sequence number from ``"<frame>#<seq>"``; ValueError if malformed."""
    frame, sep, seq = text.rpartition("#")
    if not sep or not seq.isdigit():
        raise ValueError(f"frame_id {text!r} carries no '#<seq>'")
    return int(seq)


def check_image(rgb: np.ndarray, seq: int) -> str | None:
    """None if ``rgb`` is exactly image ``seq``, else why not."""
    if rgb.shape != IMAGE_SHAPE or rgb.dtype != np.uint8:
        return f"image {seq}: shape {rgb.shape} {rgb.dtype}, expected {IMAGE_SHAPE} uint8"
    if image_digest(rgb) != image_digest(expected_image(seq)):
        return f"image {seq}: checksum mismatch"
    return None


def check_cloud(cloud: np.ndarray, seq: int) -> str | None:
    """None if structured ``cloud`` holds exactly the values of cloud ``seq`` (field by field, bitwise), else why
    not."""
    want = expected_cloud(seq)
    if cloud.shape != want.shape:
        return f"cloud {seq}: {cloud.shape} points, expected {want.shape}"
    if cloud.dtype.names != want.dtype.names:
        return f"cloud {seq}: fields {cloud.dtype.names}, expected {want.dtype.names}"
    for name in want.dtype.names:
        if cloud.dtype[name] != want.dtype[name]:
            return f"cloud {seq}: field '{name}' has dtype {cloud.dtype[name]}, expected {want.dtype[name]}"
        if cloud[name].tobytes() != want[name].tobytes():
            return f"cloud {seq}: field '{name}' values differ"
    return None


def parse_summary(stdout: str) -> dict:
    """The subscriber's last ``SUMMARY {json}`` line."""
    lines = [line for line in stdout.splitlines() if line.startswith("SUMMARY ")]
    if not lines:
        raise ValueError(f"no SUMMARY line in subscriber output:\n{stdout}")
    return json.loads(lines[-1][len("SUMMARY ") :])


def sensor_qos(reliable: bool = False):
    """SensorDataQoS as the brief fixes it: BEST_EFFORT, KEEP_LAST depth 1, VOLATILE (rclpy's
    ``qos_profile_sensor_data`` has depth 5). ``reliable=True`` gives the RELIABLE variant, for comparison runs."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )
