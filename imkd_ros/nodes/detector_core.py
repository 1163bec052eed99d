"""The detector's ROS side, shared by ``detector_node`` (plain) and ``detector_lifecycle_node`` (managed): parameters,
subscriptions, publishers, the model thread and ``/diagnostics``, attached to an rclpy node in four steps.

* :meth:`DetectorCore.__init__` declares every parameter with its descriptor from ``config/detector.schema.json``
  and reads the values into :attr:`DetectorCore.config`, a frozen
  :class:`~imkd_ros.pipeline.detector_params.DetectorNodeConfig` (a bad one:
  :class:`~imkd_ros.pipeline.params.ParameterError` naming it); a ``ros2 param set`` replaces it with a new one;
* :meth:`DetectorCore.load` loads the model and builds the pipeline (lifecycle: configure);
* :meth:`DetectorCore.start` creates the subscriptions (camera, CameraInfo, radars, ego pose, ``/tf_static``,
  ``/tf``), publishers and the diagnostics timer (lifecycle: activate);
* :meth:`DetectorCore.stop` destroys them (deactivate); :meth:`DetectorCore.release` stops the model thread and drops
  the model (cleanup).

Everything with logic lives in ROS-free modules: frame assembly and sync (:mod:`imkd_ros.pipeline.assemble`), the tf
tree (:mod:`imkd_ros.pipeline.tf`), where extrinsics come from (:mod:`imkd_ros.pipeline.extrinsics`), diagnostics
(:mod:`imkd_ros.pipeline.diagnostics`), parameters (:mod:`imkd_ros.pipeline.params`), message conversion
(:mod:`imkd_ros.ros.messages`, :mod:`imkd_ros.pipeline.objects`).

Threads: subscription callbacks (conversion, pairing, frame assembly: milliseconds) run in the executor; the model
runs in one worker thread fed through a one-slot mailbox, so radar sweeps keep arriving during inference and, under
load, the newest frame replaces one still waiting (no queue grows). Bad input gives a throttled warning that names
the problem; the message is dropped and the node goes on.
"""

from __future__ import annotations

import json
import math
import resource
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

from autoware_perception_msgs.msg import DetectedObjects
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float64
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Frame
from imkd_ros.pipeline.assemble import AssembledFrame, FrameAssembler, FrameInputError
from imkd_ros.pipeline.detector_params import DetectorNodeConfig, default_parameters
from imkd_ros.pipeline.diagnostics import DiagnosticsMonitor
from imkd_ros.pipeline.extrinsics import ExtrinsicsResolver
from imkd_ros.pipeline.params import MOUNTING_GROUPS, ParameterError, check_names, parameter_spec, validate_parameters
from imkd_ros.pipeline.sync import NS_PER_S, SyncEvent
from imkd_ros.pipeline.tf import TfBuffer, transforms_of
from imkd_ros.pipeline.throttle import WarningThrottle
from imkd_ros.ros.convert import ConversionError, compressed_to_array, image_to_array, pointcloud2_to_array
from imkd_ros.ros.messages import (
    boxes_to_detections,
    boxes_to_markers,
    boxes_to_objects,
    camera_info_to_calibration,
    make_header,
    pose_msg_to_pose,
    stamp_to_ns,
)

__all__ = ["DetectorCore", "TF_QOS", "TF_STATIC_QOS"]

#: ``debug_timing`` spans of a frame, in order (logged as ``<name>_ms``): its image's way from the publisher to the
#: image callback, the executor's work on it, the mailbox wait, ``Detector.detect``, the detections built and
#: published, the markers built and published (after the detections).
_SPANS = ("transport", "callback", "handoff", "model", "detections", "markers")

#: tf2_ros' listener QoS: ``/tf`` depth 100 (volatile), ``/tf_static`` depth 100 reliable + transient local.
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


@dataclass
class _Job:
    """A frame ready for the model, with what the outputs need."""

    frame: Frame
    header: Any
    callback_s: float  # time spent in the executor on it (conversion, pairing, assembly)
    transport_s: float  # the image's way from its publisher to the image callback (nan when unknown)
    dispatched: float  # perf_counter when it entered the mailbox


def _descriptor(name: str, value: Any) -> ParameterDescriptor:
    spec = parameter_spec(name)
    d = ParameterDescriptor(
        name=name,
        description=spec.description,
        additional_constraints=spec.constraints(),
        read_only=spec.read_only,
    )
    if spec.minimum is not None and spec.maximum is not None:
        if spec.type == "integer" and not isinstance(value, float):
            d.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
        elif spec.type == "number":
            d.floating_point_range = [FloatingPointRange(from_value=spec.minimum, to_value=spec.maximum, step=0.0)]
    return d


def _is_mounting(name: str) -> bool:
    """A per-sensor mounting parameter (``camera_to_base.<name>.*``, ``radar_to_base.<name>.*``), declared for the
    sensors named in ``cameras`` / ``radars`` only."""
    return name.split(".", 1)[0] in MOUNTING_GROUPS


def _input_topic(kind: str, name: str, names: list[str]) -> str:
    """``~/input/<kind>`` for the only sensor of its kind, ``~/input/<kind>/<name>`` for one of several."""
    return f"~/input/{kind}" if len(names) == 1 else f"~/input/{kind}/{name}"


class DetectorCore:
    """The detector on ``node`` (module docstring). ``node.get_name()`` names the diagnostics.

    Raises:
        ParameterError: a parameter that is not the node's, or a bad value (named).
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        defaults = default_parameters()
        validate_parameters(defaults)  # the shipped file itself
        overrides = {n: prm.value for n, prm in getattr(node, "_parameter_overrides", {}).items()}
        check_names(overrides)
        # the values as given, checked before rclpy sees them: one sentence naming the parameter
        given = {**defaults, **{n: v for n, v in overrides.items() if n in defaults or _is_mounting(n)}}
        validate_parameters({n: v for n, v in given.items() if v is not None})
        for name, value in defaults.items():
            if not _is_mounting(name):
                self._declare(name, value)
        p = {name: node.get_parameter(name).value for name in defaults if not _is_mounting(name)}
        for group, names in (("camera_to_base", p["cameras"]), ("radar_to_base", p["radars"])):
            for name in names:  # one mounting per sensor named in cameras / radars
                for part in ("translation", "rotation"):
                    key = f"{group}.{name}.{part}"
                    self._declare(key, defaults.get(key))
                    try:
                        value = node.get_parameter(key).value
                    except ParameterUninitializedException:  # declared without a value: tf must give it
                        value = None
                    if value is not None:
                        p[key] = list(value)
        self._values = p  # the flat values, which a ros2 param set changes
        self.config = cfg = DetectorNodeConfig.from_parameters(p)
        node.add_on_set_parameters_callback(self._on_set_parameters)

        self._warn = WarningThrottle(lambda text: self.log.warning(text), cfg.warn_period).warn
        self.tf = TfBuffer()
        fallback = {
            **{f"camera {c}": pose for c, pose in cfg.camera_to_base.items()},
            **{f"radar {r}": pose for r, pose in cfg.radar_to_base.items()},
        }
        self.extrinsics = ExtrinsicsResolver(self.tf, cfg.output_frame, fallback, cfg.extrinsics_source, cfg.tf_wait)
        self.monitor = DiagnosticsMonitor(
            node.get_name(),
            processing_warn_ms=cfg.diagnostics.processing_warn_ms,
            processing_error_ms=cfg.diagnostics.processing_error_ms,
            input_timeout=cfg.diagnostics.input_timeout,
        )
        self.detector: Any = None
        self.assembler: FrameAssembler | None = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timers: list[Any] = []
        self._pub_lock = threading.Lock()
        self._camera_waiting: dict[str, str] = {}  # camera -> the frame id it waits for extrinsics of
        self._mailbox: _Job | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
        self._inputs: dict[str, str] = {}
        self.frames_done = 0
        self.frames_skipped = 0

    @property
    def log(self) -> Any:
        """The node's logger (looked up at each use)."""
        return self.node.get_logger()

    # -- parameters --------------------------------------------------------------------------------------------------
    def _declare(self, name: str, default: Any) -> None:
        try:
            if default is None:
                self.node.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY, _descriptor(name, None))
            else:
                self.node.declare_parameter(name, default, _descriptor(name, default))
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            raise ParameterError(f"parameter {name}: {exc}") from exc

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Thresholds change at run time (checked against the schema first); read-only ones are refused by rclpy
        (their descriptor) before this is called."""
        values = dict(self._values)
        for prm in params:
            if prm.name not in values and not _is_mounting(prm.name):
                continue  # use_sim_time and other ROS parameters
            values[prm.name] = prm.value
        try:
            new = DetectorNodeConfig.from_parameters(values)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        changed = self.config.changed(new)
        self._values, self.config = values, new
        self._apply(new, changed)
        if changed:
            self.log.info("parameters changed: " + ", ".join(f"{n}={values[n]}" if n in values else n for n in changed))
        return SetParametersResult(successful=True)

    def _apply(self, cfg: DetectorNodeConfig, changed: list[str]) -> None:
        """Hand the changeable settings to the parts that hold them (``publish_markers`` and ``debug_timing`` are read
        from :attr:`config` per frame); the warning throttle is rebuilt only when ``warn_period`` is in ``changed``."""
        if self.detector is not None:
            self.detector.score_threshold = cfg.score_threshold
        if self.assembler is not None:
            self.assembler.max_radar_points = cfg.max_radar_points
            self.assembler.radar_default_filters = cfg.radar_default_filters
        self.extrinsics.tf_wait = cfg.tf_wait
        if "warn_period" in changed:
            self._warn = WarningThrottle(lambda text: self.log.warning(text), cfg.warn_period).warn
        for name in ("processing_warn_ms", "processing_error_ms", "input_timeout"):
            setattr(self.monitor, name, getattr(cfg.diagnostics, name))

    # -- life cycle --------------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model and build the pipeline; start the model thread.

        Raises:
            FileNotFoundError, CheckpointError: the checkpoint (named).
        """
        import torch

        from imkd_ros.core.shipped import resolve_checkpoint
        from imkd_ros.inference.detector import Detector, inference_threads, torch_threads_for

        cfg = self.config
        path = resolve_checkpoint(cfg.checkpoint)
        threads = inference_threads(cfg.threads)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.detector = Detector.from_checkpoint(
                path, cfg.device, cfg.score_threshold, backend=cfg.backend, threads=threads, precision=cfg.precision
            )
        for w in caught:
            self.log.warning(str(w.message))
        # process-wide (the worker thread's OpenMP team follows it); one thread beside ONNX Runtime's own pool
        torch.set_num_threads(torch_threads_for(self.detector.backend, threads))
        used = self.detector.backend  # "auto" resolved
        self.monitor.set_model(
            True, checkpoint=path, backend=used, precision=self.detector.precision, device=self.detector.device
        )
        self.log.info(
            f"model {path} ({used}, {self.detector.precision}, {threads} threads) on {self.detector.device}, "
            f"cameras {self.config.cameras} (reference {self.config.cameras[0]}), radars {self.config.radars}"
        )
        self.log.info(self.extrinsics.describe())
        self.assembler = FrameAssembler.from_config(cfg, dict.fromkeys(cfg.radars))
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="detector", daemon=True)
        self._worker.start()

    def start(self) -> None:
        """Subscriptions, publishers and the diagnostics timer."""
        node, cfg = self.node, self.config
        qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability)
        # radar sweeps and poses are accumulated, not just the latest used: a short queue so none is lost in a burst
        qos_acc = QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability)
        image_type = CompressedImage if cfg.compressed_image else Image
        with self._pub_lock:
            self._pubs = {
                "detected_objects": node.create_publisher(DetectedObjects, "~/output/detected_objects", 10),
                "objects": node.create_publisher(Detection3DArray, "~/output/objects", 10),
                "markers": node.create_publisher(MarkerArray, "~/output/markers", 10),
                "processing": node.create_publisher(Float64, "~/debug/processing_time_ms", 10),
                "latency": node.create_publisher(Float64, "~/debug/pipeline_latency_ms", 10),
                "diagnostics": node.create_publisher(DiagnosticArray, "/diagnostics", 10),
            }
        subs = [
            ("", node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), TF_STATIC_QOS)),
            ("", node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS)),
        ]
        # Created in the order messages of one instant are best handled (rclpy's executor runs the callbacks that
        # are ready together in creation order): tf, the ego pose and CameraInfo before the sensor data they serve,
        # the radar before the image, as the offline replay (imkd_ros.apps.replay) orders equal log times.
        if self.assembler is not None and self.assembler.use_ego_pose:
            subs.append(("ego_pose", node.create_subscription(PoseStamped, "~/input/ego_pose", self._on_pose, qos_acc)))
        for c in self.config.cameras:
            cb = lambda m, c=c: self._on_camera_info(c, m)  # noqa: E731
            topic = _input_topic("camera_info", c, self.config.cameras)
            subs.append((f"camera_info {c}", node.create_subscription(CameraInfo, topic, cb, qos)))
        for r in self.config.radars:
            cb = lambda m, r=r: self._on_radar(r, m)  # noqa: E731
            subs.append(
                (
                    f"radar {r}",
                    node.create_subscription(PointCloud2, _input_topic("radar", r, self.config.radars), cb, qos_acc),
                )
            )
        for c in self.config.cameras:
            cb = lambda m, info, c=c: self._on_image(c, m, info)  # noqa: E731
            topic = _input_topic("image", c, self.config.cameras)
            subs.append((f"image {c}", node.create_subscription(image_type, topic, cb, qos)))
        self._subs = [s for _, s in subs]
        self._inputs = {key: s.topic_name for key, s in subs if key}  # input key -> resolved topic
        for key, topic in self._inputs.items():
            self.monitor.watch(topic, optional=key == "ego_pose")
        # a steady clock: diagnostics go on while a bag is paused or /clock is missing (use_sim_time)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers = [node.create_timer(cfg.diagnostics.period, self.publish_diagnostics, clock=steady)]

    def stop(self) -> None:
        """Destroy the subscriptions, publishers and timers (the model stays loaded)."""
        for t in self._timers:
            self.node.destroy_timer(t)
        for s in self._subs:
            self.node.destroy_subscription(s)
        with self._pub_lock:
            for pub in self._pubs.values():
                self.node.destroy_publisher(pub)
            self._pubs = {}
        self._timers, self._subs = [], []
        self.monitor.unwatch_all()

    def close(self) -> None:
        """:meth:`stop`, then :meth:`release`: the node is going away."""
        self.stop()
        self.release()

    def release(self) -> None:
        """Stop the model thread and drop the model and the pipeline state."""
        with self._cv:
            self._stop = True
            self._mailbox = None
            self._cv.notify()
        if self._worker is not None and self._worker.is_alive():  # not started when a Ctrl-C cut load() short
            self._worker.join(timeout=10.0)
        self._worker = None
        self.detector, self.assembler = None, None
        self.monitor.set_model(False)

    # -- diagnostics -------------------------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        statuses = self.monitor.statuses(self.extrinsics.states(), self.extrinsics.source)
        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.status = [
            DiagnosticStatus(
                level=bytes([s.level]),
                name=s.name,
                message=s.message,
                hardware_id=s.hardware_id,
                values=[KeyValue(key=k, value=v) for k, v in s.values],
            )
            for s in statuses
        ]
        self._publish("diagnostics", msg)

    def _publish(self, key: str, msg: Any) -> bool:
        with self._pub_lock:
            pub = self._pubs.get(key)
            if pub is None:
                return False
            pub.publish(msg)
            return True

    def _bad(self, kind: str, text: str) -> None:
        self.monitor.bad(kind)
        self._warn(kind, text)

    def _notes(self) -> None:
        for note in self.extrinsics.take_notes():
            self.log.info(note) if ": tf:" in note else self.log.warning(note)

    def _events(self, events: list[SyncEvent]) -> None:
        for e in events:
            self.monitor.sync_dropped(e.kind)
            if e.kind == "superseded":  # the frame rate exceeds the radar's or radar lags: expected, not bad input
                self.log.debug(e.text)
            else:
                self._warn(f"sync_{e.kind}", e.text)

    # -- callbacks (executor thread) ---------------------------------------------------------------------------------
    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        topic = "/tf_static" if static else "/tf"
        for error in self.tf.add(transforms_of(msg), static=static):
            self._bad("tf", f"{topic}: {error}; transform ignored")

    def _mounting(self, sensor: str, frame_id: str) -> Pose | None:
        pose = self.extrinsics.mounting(sensor, frame_id)
        self._notes()
        if pose is None:
            state = self.extrinsics.states().get(sensor)
            detail = state.detail if state is not None else ""
            self._warn(f"extrinsics {sensor}", f"{sensor}: waiting for extrinsics: {detail}; message dropped")
        return pose

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        key = f"camera_info {camera}"
        self.monitor.received(self._inputs.get(key, key))
        if self.assembler is None:
            return
        mounting = self._mounting(f"camera {camera}", msg.header.frame_id)
        if mounting is None:
            self._camera_waiting[camera] = msg.header.frame_id
            return
        self._camera_waiting.pop(camera, None)
        try:
            self.assembler.set_calibration(camera_info_to_calibration(msg, mounting, camera), camera)
        except ConversionError as exc:
            self._bad("camera_info", f"{self._inputs.get(key, key)}: {exc}; ignored")

    def _on_pose(self, msg: PoseStamped) -> None:
        self.monitor.received(self._inputs.get("ego_pose", "ego_pose"))
        if self.assembler is None:
            return
        try:
            self.assembler.add_pose(stamp_to_ns(msg.header.stamp), pose_msg_to_pose(msg.pose))
        except ConversionError as exc:
            self._bad("ego_pose", f"~/input/ego_pose: {exc}; dropped")

    def _on_radar(self, name: str, msg: PointCloud2) -> None:
        t0 = time.perf_counter()
        self.monitor.received(self._inputs.get(f"radar {name}", name))
        if self.assembler is None:
            return
        mounting = self._mounting(f"radar {name}", msg.header.frame_id)
        if mounting is None:
            self.monitor.bad("no_extrinsics")
            return
        try:
            done, events = self.assembler.add_radar(
                name, stamp_to_ns(msg.header.stamp), pointcloud2_to_array(msg), mounting
            )
        except (ConversionError, FrameInputError) as exc:
            self._bad(f"radar_{name}", f"radar {name}: {exc}; sweep dropped")
            return
        self._events(events)
        if done is not None:  # the frame waited for this sweep: its image conversion counts too
            image_s, transport_s = done.extra
            self._dispatch(done, image_s + time.perf_counter() - t0, transport_s)

    def _on_image(self, camera: str, msg: Image | CompressedImage, info: MessageInfo) -> None:
        t0 = time.perf_counter()
        key = f"image {camera}"
        topic = self._inputs.get(key, key)
        self.monitor.received(topic)
        if self.assembler is None:
            return
        # the image's way from the publisher's write to here (system clock; meaningful with the publisher on this
        # machine; nan where the middleware gives no source timestamp)
        sent = info.get("source_timestamp") if info else None
        transport_s = (time.time_ns() - sent) / NS_PER_S if sent else math.nan
        if camera not in self.assembler.calibrations:  # checked before converting the image: no work for nothing
            if camera in self._camera_waiting:
                self.monitor.bad("no_extrinsics")
                self._warn(f"extrinsics camera {camera}", f"camera {camera}: waiting for extrinsics; image dropped")
            else:
                info_topic = self._inputs.get(f"camera_info {camera}", "camera_info")
                self._bad("no_camera_info", f"no CameraInfo received yet on {info_topic}; image dropped")
            return
        try:
            image = compressed_to_array(msg) if isinstance(msg, CompressedImage) else image_to_array(msg)
            stamp = stamp_to_ns(msg.header.stamp)
            extra = (time.perf_counter() - t0, transport_s)
            done, events = self.assembler.add_camera(stamp, image, extra, camera)
        except (ConversionError, FrameInputError) as exc:
            self._bad("image", f"{topic}: {exc}; frame dropped")
            return
        self._events(events)
        if done is not None:
            self._dispatch(done, time.perf_counter() - t0, transport_s)

    def _dispatch(self, done: AssembledFrame, callback_s: float, transport_s: float) -> None:
        """Hand an assembled frame to the worker; ``callback_s``: executor time spent on it (conversion, pairing,
        assembly); ``transport_s``: its image's time from the publisher to the callback."""
        header = make_header(done.stamp, self.config.output_frame)
        job = _Job(done.frame, header, callback_s, transport_s, time.perf_counter())
        with self._cv:
            if self._mailbox is not None:
                self.frames_skipped += 1
                self.monitor.replaced()
                self.log.debug(f"detector busy: frame {self._mailbox.header.stamp} replaced by a newer one")
            self._mailbox = job
            self._cv.notify()

    # -- model (worker thread) ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._mailbox is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                job, self._mailbox = self._mailbox, None
            detector = self.detector
            if detector is None:
                continue
            timing = self.config.debug_timing
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt if timing else 0
            t0 = time.perf_counter()
            try:
                boxes = detector.detect(job.frame)
            except Exception as exc:  # noqa: BLE001 - a failing frame must not stop the node
                self._bad("model", f"detector failed on frame {job.header.stamp.sec}.{job.header.stamp.nanosec}: {exc}")
                continue
            t1 = time.perf_counter()
            if timing:  # fresh memory pages the model call touched (each costs ~2 us)
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            # the velocities first: a consumer that waits for ~/output/objects finds them there
            self._publish("detected_objects", boxes_to_objects(boxes, job.header))
            self._publish("objects", boxes_to_detections(boxes, job.header))
            t2 = time.perf_counter()
            # after the detections: RViz's markers do not delay the consumers of the objects
            if self.config.publish_markers:
                self._publish("markers", boxes_to_markers(boxes, job.header))
            t3 = time.perf_counter()
            self.frames_done += 1
            processing_ms = (job.callback_s + t3 - t0) * 1e3
            self.monitor.processed(processing_ms)
            self._publish("processing", Float64(data=processing_ms))
            if timing:
                spans = (job.transport_s, job.callback_s, t0 - job.dispatched, t1 - t0, t2 - t1, t3 - t2)
                record = {f"{k}_ms": round(v * 1e3, 3) for k, v in zip(_SPANS, spans, strict=True)}
                record.update({f"detect_{k}": round(v, 3) for k, v in detector.last_timing.items()})
                record.update(
                    stamp=stamp_to_ns(job.header.stamp),
                    boxes=len(boxes),
                    radar_points=len(job.frame.radar),
                    model_page_faults=faults,
                )
                self.log.info(f"timing {json.dumps(record)}")
            now = self.node.get_clock().now().nanoseconds
            self._publish("latency", Float64(data=(now - stamp_to_ns(job.header.stamp)) / NS_PER_S * 1e3))
