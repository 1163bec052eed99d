"""detector_node in-process, callbacks called directly (no middleware): with ``debug_timing`` each processed frame
logs one ``timing {json}`` line that :func:`imkd_ros.apps.node_bench.parse_timing` reads, with every span, the frame's
stamp and its counts; ``threads`` sets torch's intra-op threads; without ``debug_timing`` nothing is logged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from rclpy.parameter import Parameter

from imkd_ros.apps.node_bench import SPANS, parse_timing
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration
from imkd_ros.model import ModelConfig
from imkd_ros.model.checkpoint import build_model, save_checkpoint
from imkd_ros.ros.convert import array_to_image, array_to_pointcloud2
from imkd_ros.ros.messages import RADAR_MSG_FIELDS, calibration_to_camera_info, make_header

W, H = 320, 180
STAMP = 1_700_000_000_000_000_000


class _Logger:
    """Stands in for the node's logger: keeps what is logged."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = debug = info


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(("camera", "radar"))
    return save_checkpoint(tmp_path_factory.mktemp("timing") / "tiny.pt", build_model(cfg), cfg)


@pytest.fixture
def ros() -> Iterator[None]:
    threads = torch.get_num_threads()
    rclpy.init()
    yield
    rclpy.try_shutdown()
    torch.set_num_threads(threads)


def _node(checkpoint: Path, timing: bool, threads: int):  # noqa: ANN202 - DetectorNode, imported late
    from imkd_ros.nodes.detector_node import DetectorNode

    overrides = [
        Parameter("checkpoint", value=str(checkpoint)),
        Parameter("device", value="cpu"),
        Parameter("backend", value="torch"),  # the threads parameter goes to PyTorch whole (ONNX Runtime: 1 beside it)
        Parameter("score_threshold", value=0.0),
        Parameter("debug_timing", value=timing),
        Parameter("threads", value=threads),
        Parameter("publish_markers", value=True),
        Parameter("extrinsics_source", value="parameters"),  # no tf here
    ]
    node = DetectorNode(parameter_overrides=overrides)
    logger = _Logger()
    node.get_logger = lambda: logger  # the worker thread logs through it
    return node, logger


def _feed(node, stamp: int) -> None:  # noqa: ANN001
    """CameraInfo, one radar sweep just before ``stamp``, then the image (published 3 ms ago)."""
    k = np.array([[200.0, 0, W / 2], [0, 200.0, H / 2], [0, 0, 1]])
    cal = Calibration("CAM_FRONT", Pose.identity(), k, (W, H))
    node.core._on_camera_info("front", calibration_to_camera_info(cal, make_header(stamp, "cam")))
    rng = np.random.default_rng(0)
    cloud = np.zeros(30, dtype=[(f, "<f4") for f in RADAR_MSG_FIELDS])
    cloud["x"], cloud["y"], cloud["rcs"] = rng.uniform(5, 40, 30), rng.uniform(-8, 8, 30), 5.0
    node.core._on_radar("front", array_to_pointcloud2(cloud, make_header(stamp - 20_000_000, "radar_front")))
    image = array_to_image(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), make_header(stamp, "cam"))
    node.core._on_image("front", image, {"source_timestamp": time.time_ns() - 3_000_000, "received_timestamp": 0})


def _wait_done(node, n: int) -> None:  # noqa: ANN001
    end = time.monotonic() + 60
    while node.core.frames_done < n and time.monotonic() < end:
        time.sleep(0.01)
    assert node.core.frames_done == n


def test_debug_timing_logs_every_span(ros: None, tiny_checkpoint: Path) -> None:
    node, logger = _node(tiny_checkpoint, timing=True, threads=1)
    try:
        assert torch.get_num_threads() == 1
        _feed(node, STAMP)
        _wait_done(node, 1)
    finally:
        node.destroy_node()  # joins the model thread: the frame's record (logged after frames_done) is written
    records = parse_timing(logger.lines)
    assert len(records) == 1, logger.lines
    rec = records[0]
    for name in (*SPANS, "markers"):
        assert rec[f"{name}_ms"] >= 0.0, name
    assert rec["transport_ms"] >= 3.0  # the image was "published" 3 ms before its callback
    assert rec["model_ms"] > 0.0
    assert rec["stamp"] == STAMP
    assert rec["radar_points"] == 30
    assert rec["model_page_faults"] >= 0


def test_no_timing_lines_without_debug_timing(ros: None, tiny_checkpoint: Path) -> None:
    node, logger = _node(tiny_checkpoint, timing=False, threads=2)
    try:
        assert torch.get_num_threads() == 2
        _feed(node, STAMP)
        _wait_done(node, 1)
    finally:
        node.destroy_node()
    assert parse_timing(logger.lines) == []


def test_parse_timing_reads_ros_log_lines() -> None:
    lines = [
        '[INFO] [1700000000.1] [detector_node]: timing {"transport_ms": 2.5, "model_ms": 50.0, "stamp": 7}',
        "[INFO] [1700000000.2] [detector_node]: model /m.pt (torch, 2 threads) on cpu, radars ['front']",
        "[WARN] [1700000000.3] [detector_node]: ~/input/image: image is empty; frame dropped",
    ]
    assert parse_timing(lines) == [{"transport_ms": 2.5, "model_ms": 50.0, "stamp": 7}]
