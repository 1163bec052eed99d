"""``detector_node``: camera + radar in, 3D detections out (``ros2 run imkd_ros detector_node``).

Thin: messages are converted (:mod:`imkd_ros.ros.convert`, :mod:`imkd_ros.ros.messages`), paired and assembled
into frames by :class:`imkd_ros.ros.assemble.FrameAssembler` (the same code the offline bag replay runs), handed to
:class:`imkd_ros.detector.Detector`, and the boxes converted back. Parameters and topics are documented in
``config/detector.yaml``, which also provides the defaults.

Threads: subscription callbacks (conversion, pairing, frame assembly: milliseconds) run in the executor; the model
runs in one worker thread fed through a one-slot mailbox, so radar sweeps keep arriving during inference and,
under load, the newest frame replaces one still waiting (no queue grows). Bad input gives a throttled warning that
names the problem; the message is dropped and the node goes on.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float64
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from imkd_ros.nodes.spin import run_node
from imkd_ros.ros.assemble import (
    AssembledFrame,
    FrameAssembler,
    FrameInputError,
    default_parameters,
    pose_parameter,
)
from imkd_ros.ros.convert import ConversionError, compressed_to_array, image_to_array, pointcloud2_to_array
from imkd_ros.ros.messages import (
    boxes_to_detections,
    boxes_to_markers,
    camera_info_to_calibration,
    make_header,
    msg_to_pose,
    stamp_to_ns,
)
from imkd_ros.ros.sync import NS_PER_S, SyncEvent
from imkd_ros.ros.throttle import WarningThrottle
from imkd_ros.shipped import DEFAULT_MODEL, resolve_checkpoint
from imkd_ros.transforms import Pose
from imkd_ros.types import Frame

__all__ = ["DEFAULT_MODEL", "DetectorNode", "default_parameters", "resolve_checkpoint", "main"]  # re-exported

#: ``debug_timing`` spans of a frame, in order (logged as ``<name>_ms``): its image's way from the publisher to the
#: image callback, the executor's work on it, the mailbox wait, ``Detector.detect``, the detections built and
#: published, the markers built and published (after the detections).
_SPANS = ("transport", "callback", "handoff", "model", "detections", "markers")


@dataclass
class _Job:
    """A frame ready for the model, with what the outputs need."""

    frame: Frame
    header: Any
    callback_s: float  # time spent in the executor on it (conversion, pairing, assembly)
    transport_s: float  # the image's way from its publisher to the image callback (nan when unknown)
    dispatched: float  # perf_counter when it entered the mailbox


class DetectorNode(Node):
    """The detector node (see the module docstring and ``config/detector.yaml``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("detector_node", **kwargs)
        defaults = default_parameters()
        for name, value in defaults.items():
            if not name.startswith("radar_to_base."):
                self.declare_parameter(name, value)
        p = {name: self.get_parameter(name).value for name in defaults if not name.startswith("radar_to_base.")}
        self._warn = WarningThrottle(self.get_logger().warning, float(p["warn_period"])).warn
        self.output_frame = str(p["output_frame"])
        self.camera_to_base = pose_parameter(p["camera_to_base.translation"], p["camera_to_base.rotation"], "camera")
        self.radar_to_base: dict[str, Pose] = {}
        radars = [str(r) for r in p["radars"]]
        for r in radars:
            vals = []
            for part in ("translation", "rotation"):
                key = f"radar_to_base.{r}.{part}"
                default = defaults.get(key)
                if default is None:
                    self.declare_parameter(key, Parameter.Type.DOUBLE_ARRAY)
                else:
                    self.declare_parameter(key, default)
                value = self.get_parameter(key).value
                if value is None:
                    raise ValueError(f"parameter {key} is not set (radar {r!r} needs its mounting)")
                vals.append(value)
            self.radar_to_base[r] = pose_parameter(vals[0], vals[1], f"radar_to_base.{r}")

        path = resolve_checkpoint(str(p["checkpoint"]))
        import torch

        from imkd_ros.detector import Detector, inference_threads

        threads = inference_threads(int(p["threads"]))
        torch.set_num_threads(threads)  # process-wide; the worker thread's OpenMP team follows it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.detector = Detector.from_checkpoint(
                path, str(p["device"]), float(p["score_threshold"]), backend=str(p["backend"]), threads=threads
            )
        for w in caught:
            self.get_logger().warning(str(w.message))
        self.get_logger().info(
            f"model {path} ({p['backend']}, {threads} threads) on {self.detector.device}, radars {radars}"
        )

        self.assembler = FrameAssembler.from_parameters(p, self.radar_to_base)
        self._markers = bool(p["publish_markers"])
        self._timing = bool(p["debug_timing"])

        qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability)
        # radar sweeps and poses are accumulated, not just the latest used: a short queue so none is lost in a burst
        qos_acc = QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability)
        image_type = CompressedImage if p["compressed_image"] else Image
        # Created in the order messages of one instant are best handled (rclpy's executor runs the callbacks that
        # are ready together in creation order): the ego pose and CameraInfo before the sensor data they serve, the
        # radar before the image, as the offline replay (imkd_ros.bag.replay) orders equal log times.
        if self.assembler.use_ego_pose:
            self.create_subscription(PoseStamped, "~/input/ego_pose", self._on_pose, qos_acc)
        self.create_subscription(CameraInfo, "~/input/camera_info", self._on_camera_info, qos)
        for r in radars:
            topic = "~/input/radar" if len(radars) == 1 else f"~/input/radar/{r}"
            self.create_subscription(PointCloud2, topic, lambda m, r=r: self._on_radar(r, m), qos_acc)
        self.create_subscription(image_type, "~/input/image", self._on_image, qos)
        self.pub_objects = self.create_publisher(Detection3DArray, "~/output/objects", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 10)
        self.pub_processing = self.create_publisher(Float64, "~/debug/processing_time_ms", 10)
        self.pub_latency = self.create_publisher(Float64, "~/debug/pipeline_latency_ms", 10)

        self._mailbox: _Job | None = None
        self._cv = threading.Condition()
        self._stop = False
        self.frames_done = 0
        self.frames_skipped = 0
        self._worker = threading.Thread(target=self._work, name="detector", daemon=True)
        self._worker.start()

    def _events(self, events: list[SyncEvent]) -> None:
        for e in events:
            if e.kind == "superseded":  # the frame rate exceeds the radar's or radar lags: expected, not bad input
                self.get_logger().debug(e.text)
            else:
                self._warn(f"sync_{e.kind}", e.text)

    # -- callbacks (executor thread) ---------------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.assembler.set_calibration(camera_info_to_calibration(msg, self.camera_to_base))
        except ConversionError as exc:
            self._warn("camera_info", f"~/input/camera_info: {exc}; ignored")

    def _on_pose(self, msg: PoseStamped) -> None:
        try:
            self.assembler.add_pose(stamp_to_ns(msg.header.stamp), msg_to_pose(msg.pose))
        except ConversionError as exc:
            self._warn("ego_pose", f"~/input/ego_pose: {exc}; dropped")

    def _on_radar(self, name: str, msg: PointCloud2) -> None:
        t0 = time.perf_counter()
        try:
            done, events = self.assembler.add_radar(name, stamp_to_ns(msg.header.stamp), pointcloud2_to_array(msg))
        except (ConversionError, FrameInputError) as exc:
            self._warn(f"radar_{name}", f"radar {name}: {exc}; sweep dropped")
            return
        self._events(events)
        if done is not None:  # the frame waited for this sweep: its image conversion counts too
            image_s, transport_s = done.extra
            self._dispatch(done, image_s + time.perf_counter() - t0, transport_s)

    def _on_image(self, msg: Image | CompressedImage, info: MessageInfo) -> None:
        t0 = time.perf_counter()
        # the image's way from the publisher's write to here (system clock; meaningful with the publisher on this
        # machine; nan where the middleware gives no source timestamp)
        sent = info.get("source_timestamp") if info else None
        transport_s = (time.time_ns() - sent) / NS_PER_S if sent else math.nan
        if self.assembler.calibration is None:  # checked before converting the image: no work for nothing
            self._warn("no_camera_info", "no CameraInfo received yet on ~/input/camera_info; image dropped")
            return
        try:
            image = compressed_to_array(msg) if isinstance(msg, CompressedImage) else image_to_array(msg)
            stamp = stamp_to_ns(msg.header.stamp)
            done, events = self.assembler.add_camera(stamp, image, (time.perf_counter() - t0, transport_s))
        except (ConversionError, FrameInputError) as exc:
            self._warn("image", f"~/input/image: {exc}; frame dropped")
            return
        self._events(events)
        if done is not None:
            self._dispatch(done, time.perf_counter() - t0, transport_s)

    def _dispatch(self, done: AssembledFrame, callback_s: float, transport_s: float) -> None:
        """Hand an assembled frame to the worker; ``callback_s``: executor time spent on it (conversion, pairing,
        assembly); ``transport_s``: its image's time from the publisher to the callback."""
        header = make_header(done.stamp, self.output_frame)
        job = _Job(done.frame, header, callback_s, transport_s, time.perf_counter())
        with self._cv:
            if self._mailbox is not None:
                self.frames_skipped += 1
                self.get_logger().debug(f"detector busy: frame {self._mailbox.header.stamp} replaced by a newer one")
            self._mailbox = job
            self._cv.notify()

    # -- model (worker thread) -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._mailbox is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                job, self._mailbox = self._mailbox, None
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt if self._timing else 0
            t0 = time.perf_counter()
            try:
                boxes = self.detector.detect(job.frame)
            except Exception as exc:  # noqa: BLE001 - a failing frame must not stop the node
                self._warn(
                    "model", f"detector failed on frame {job.header.stamp.sec}.{job.header.stamp.nanosec}: {exc}"
                )
                continue
            t1 = time.perf_counter()
            if self._timing:  # fresh memory pages the model call touched (each costs ~2 us)
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            self.pub_objects.publish(boxes_to_detections(boxes, job.header))
            t2 = time.perf_counter()
            if self._markers:  # after the detections: RViz's markers do not delay the consumers of the objects
                self.pub_markers.publish(boxes_to_markers(boxes, job.header))
            t3 = time.perf_counter()
            self.frames_done += 1
            self.pub_processing.publish(Float64(data=(job.callback_s + t3 - t0) * 1e3))
            if self._timing:
                spans = (job.transport_s, job.callback_s, t0 - job.dispatched, t1 - t0, t2 - t1, t3 - t2)
                record = {f"{k}_ms": round(v * 1e3, 3) for k, v in zip(_SPANS, spans, strict=True)}
                record.update(
                    stamp=stamp_to_ns(job.header.stamp),
                    boxes=len(boxes),
                    radar_points=len(job.frame.radar),
                    model_page_faults=faults,
                )
                self.get_logger().info(f"timing {json.dumps(record)}")
            now = self.get_clock().now().nanoseconds
            self.pub_latency.publish(Float64(data=(now - stamp_to_ns(job.header.stamp)) / NS_PER_S * 1e3))

    def destroy_node(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``detector_node`` (takes ``--ros-args ...``)."""
    return run_node("detector_node", DetectorNode, args)


if __name__ == "__main__":
    sys.exit(main())
