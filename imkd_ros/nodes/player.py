"""``python -m imkd_ros.nodes.player``: play a nuScenes-format sequence into the ROS graph and record the
detector's answers (the demo's and the benchmark's sensor side).

Publishes, in timestamp order and paced at ``--rate`` x real time, for each scene of ``--split``: ``/clock``
(rosgraph_msgs/Clock), every camera of the dataset's rig (sensor_msgs/Image rgb8 and CameraInfo: ``/camera/image`` and
``/camera/camera_info`` for a single camera, ``/camera/<name>/image`` and ``/camera/<name>/camera_info`` for several,
:func:`imkd_ros.pipeline.topics.camera_topic`; keyframes only unless ``--all-camera-frames``), every radar sweep of
every radar (PointCloud2 with the 18 nuScenes radar fields, unfiltered, sensor frame: ``/radar/front`` for a single
radar, ``/radar/<name>`` for several), the ego pose of each published sample_data (``/ego_pose`` PoseStamped,
``base_link`` in ``map``) and the rig (``base_link`` -> each sensor's frame, its channel in lower case:
``cam_front``, ``radar_front``, ..., from the dataset's calibration) on ``/tf_static`` (reliable, transient local;
the whole set again when a sensor's calibration first appears, as a static broadcaster does; the first scene's
before anything else), so the detector finds its extrinsics in tf. It subscribes to the detector's outputs and
writes inputs and outputs to an MCAP bag (rosbags; openable in RViz's bag player or Foxglove).

``--repeat N`` plays the sequence N times back to back, each pass shifted in time to follow the previous one (a
long drive for load and memory tests; the ego poses repeat).

``--lockstep``: after each camera keyframe (on a rig of several cameras: after the last camera of its set), wait for
the detections with that stamp before going on (complete, deterministic results; the measured latency is the unloaded
end-to-end latency, from the set's last image). Without it the player runs free
and the detector keeps up as it can (load tests). A JSON summary lists every camera frame's publish and receive
wall times, latency, detection count and the node's processing time.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from autoware_perception_msgs.msg import DetectedObjects
from geometry_msgs.msg import PoseStamped
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float64
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from imkd_ros.data.pcd import read_radar_pcd
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.pipeline.topics import PLAYER_TOPICS, camera_topic, radar_topic, sensor_name
from imkd_ros.ros.convert import array_to_image, array_to_pointcloud2
from imkd_ros.ros.messages import (
    calibration_to_camera_info,
    make_header,
    ns_to_stamp,
    pose_stamped,
    stamp_to_ns,
    tf_message,
    transform_stamped,
)

__all__ = ["STATIC_QOS", "FRAMES", "Event", "timeline", "repeated", "Recorder", "Player", "play", "serve", "main"]

#: The topics published (:data:`imkd_ros.pipeline.topics.PLAYER_TOPICS`).
TOPICS = PLAYER_TOPICS
NODE = "/detector_node"
#: tf frame ids of the front rig's sensors: each sensor's frame is its channel in lower case (``imkd bag export``
#: names them alike).
FRAMES = {"camera": "cam_front", "radar": "radar_front"}
_INFO, _CLOUD = "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/PointCloud2"


#: A static broadcaster's QoS (tf2_ros): reliable, transient local, depth 1.
STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True, order=True)
class Event:
    """One sample_data to publish: ``stamp`` (ns), ``kind`` (``"camera"``: the reference camera's frame, the one a
    detection answers; ``"view"``: another camera's; ``"radar"``), its token, whether it is a keyframe, the sample
    it belongs to, its channel, and for camera frames whether it is the last of its camera set (``last``; the
    set's reference stamp ``ref`` for a view)."""

    stamp: int
    kind: str
    token: str = field(compare=False)
    keyframe: bool = field(compare=False)
    sample: str = field(compare=False)
    channel: str = field(compare=False, default="")
    last: bool = field(compare=False, default=True)
    ref: int = field(compare=False, default=0)


def timeline(reader: NuScenesReader, scenes: Sequence[str], all_camera_frames: bool = False) -> list[Event]:
    """The camera and radar sample_data of ``scenes`` in time order (camera keyframes only unless
    ``all_camera_frames``), every camera and radar of the rig; the radars' full sweep chains, so the first keyframes
    have their history. A reference-camera frame (``reader.camera``) and the other cameras' frames after it, up to
    the next one, form a set: its last frame has ``last`` and every view the set's ``ref``."""
    events: list[Event] = []
    channels = [(ch, "camera" if ch == reader.camera else "view") for ch in reader.cameras]
    channels += [(ch, "radar") for ch in reader.radars]
    for scene in scenes:
        samples = reader.scene_samples(scene)
        for channel, kind in channels:
            first = reader.keyframe_token(samples[0], channel)
            sd = first
            while reader.sample_data(sd)["prev"]:
                sd = reader.sample_data(sd)["prev"]
            last = reader.keyframe_token(samples[-1], channel)
            while True:
                rec = reader.sample_data(sd)
                if kind == "radar" or all_camera_frames or rec["is_key_frame"]:
                    stamp, key = int(rec["timestamp"]) * 1000, bool(rec["is_key_frame"])
                    events.append(Event(stamp, kind, sd, key, rec["sample_token"], channel))
                if sd == last or not rec["next"]:
                    break
                sd = rec["next"]
    return _camera_sets(sorted(events))


def _camera_sets(events: list[Event]) -> list[Event]:
    """``events`` with each camera set's last frame marked and its views given the set's reference stamp."""
    out, members = list(events), []  # members: indices of the current set's camera frames

    def close() -> None:
        for j in members:
            out[j] = replace(out[j], last=j == members[-1], ref=out[members[0]].stamp)

    for i, ev in enumerate(events):
        if ev.kind == "camera":
            close()
            members = [i]
        elif ev.kind == "view" and members:
            members.append(i)
    close()
    return [ev for ev in out if ev.kind != "view" or ev.ref]  # a view before the first reference frame: no set


def repeated(events: Sequence[Event], times: int, gap_ns: int = 100_000_000) -> list[Event]:
    """``events`` played ``times`` times: pass k shifted by k x (their time span + ``gap_ns``), so data time keeps
    going forward (tokens and poses repeat)."""
    if times <= 1 or not events:
        return list(events)
    period = events[-1].stamp - events[0].stamp + gap_ns
    return [replace(ev, stamp=ev.stamp + k * period) for k in range(times) for ev in events]


@dataclass
class _Answer:
    received: float  # wall (perf_counter) when the detections arrived
    detections: int
    processing_ms: float | None = None


class Recorder(Node):
    """Listener of a detector node's outputs (detections, markers, its debug timings), kept by stamp and written,
    with the input topics a subclass records, to an MCAP bag. Subclasses publish the inputs into :attr:`pubs`
    (keys ``"image"`` and ``"radar"`` at least, for :meth:`wait_matched`).

    Args:
        name: this node's name.
        bag: MCAP bag folder to write (must not exist), or None.
        node: the detector node's name (its output topics).
        inputs: input topic -> message type name recorded in the bag besides the outputs.
    """

    def __init__(self, name: str, bag: Path | None, node: str = NODE, inputs: dict[str, str] | None = None) -> None:
        super().__init__(name)
        self.pubs: dict[str, Any] = {}
        self.answers: dict[int, _Answer] = {}
        self.objects: dict[int, Detection3DArray] = {}  # the detections received, by stamp
        self.detected_objects: dict[int, DetectedObjects] = {}  # their velocities, by stamp
        self.markers: dict[int, MarkerArray] = {}
        self._last_answer: int | None = None
        self._cv = threading.Condition()
        out_qos = QoSProfile(depth=100)
        self.out_topics = {
            "objects": (f"{node}/output/objects", Detection3DArray, "vision_msgs/msg/Detection3DArray"),
            "detected_objects": (
                f"{node}/output/detected_objects",
                DetectedObjects,
                "autoware_perception_msgs/msg/DetectedObjects",
            ),
            "markers": (f"{node}/output/markers", MarkerArray, "visualization_msgs/msg/MarkerArray"),
            "processing": (f"{node}/debug/processing_time_ms", Float64, "std_msgs/msg/Float64"),
            "latency": (f"{node}/debug/pipeline_latency_ms", Float64, "std_msgs/msg/Float64"),
        }
        self.subs = {
            key: self.create_subscription(cls, topic, lambda m, k=key: self._on_output(k, m), out_qos)
            for key, (topic, cls, _) in self.out_topics.items()
        }
        self._now = 0
        self._writer, self._conns, self._lock = None, {}, threading.Lock()
        if bag is not None:
            self._open_bag(bag, inputs or {})

    # -- bag ------------------------------------------------------------------------------------------------------
    def _open_bag(self, path: Path, inputs: dict[str, str]) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        from imkd_ros.bag.interfaces import make_typestore

        store = make_typestore()
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        types = dict(inputs)
        types.update({topic: name for topic, _, name in self.out_topics.values()})
        for topic, name in types.items():
            self._conns[topic] = self._writer.add_connection(topic, name, typestore=store)

    def _record(self, topic: str, msg: Any, stamp: int) -> None:
        with self._lock:  # checked under the lock: an answer may arrive while close() runs
            if self._writer is not None:
                self._writer.write(self._conns[topic], int(stamp), serialize_message(msg))

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # -- outputs ------------------------------------------------------------------------------------------------
    def _on_output(self, key: str, msg: Any) -> None:
        now = time.perf_counter()
        topic = self.out_topics[key][0]
        stamp = stamp_to_ns(msg.header.stamp) if hasattr(msg, "header") else self._now
        if key == "markers":
            stamp = stamp_to_ns(msg.markers[0].header.stamp) if msg.markers else self._now
        self._record(topic, msg, stamp)
        with self._cv:
            if key == "objects":
                self.answers[stamp] = _Answer(now, len(msg.detections))
                self.objects[stamp] = msg
                self._last_answer = stamp
            elif key == "detected_objects":
                self.detected_objects[stamp] = msg
            elif key == "markers":
                self.markers[stamp] = msg
            elif key == "processing" and self._last_answer is not None:  # published right after the objects
                self.answers[self._last_answer].processing_ms = float(msg.data)
            self._cv.notify_all()

    def wait_answer(self, stamp: int, timeout: float) -> bool:
        with self._cv:
            # an answer is complete with its velocities: the DetectedObjects of the same stamp (published right
            # after the Detection3DArray) may arrive a moment later
            return self._cv.wait_for(lambda: stamp in self.answers and stamp in self.detected_objects, timeout=timeout)

    def prepare(self, events: Sequence[Event]) -> None:
        """Called by :func:`play` before the first event (subclasses publish the rig on ``/tf_static`` here, so the
        detector knows its extrinsics before the first sensor message)."""

    def wait_matched(self, timeout: float) -> bool:
        """True once the detector subscribes to every camera and radar (publishers keyed ``image...`` and
        ``radar...``) and ``/tf_static`` where this player publishes it, and publishes its detections."""
        end = time.monotonic() + timeout
        sensors = [pub for key, pub in self.pubs.items() if key.split(" ")[0] in ("image", "radar")]
        while time.monotonic() < end:
            if (
                all(pub.get_subscription_count() > 0 for pub in sensors)
                and ("tf_static" not in self.pubs or self.pubs["tf_static"].get_subscription_count() > 0)
                and self.subs["objects"].get_publisher_count() > 0
            ):
                return True
            time.sleep(0.05)
        return False


class Player(Recorder):
    """Publisher of a sequence plus recorder of the detector's outputs (see the module docstring)."""

    def __init__(self, reader: NuScenesReader, bag: Path | None, node: str = NODE) -> None:
        cams, radars = reader.cameras, reader.radars
        #: channel -> (publisher key, topic, message type name) of everything played per sensor
        self.topics: dict[str, list[tuple[str, str, str]]] = {
            **{
                ch: [
                    (f"image {ch}", camera_topic("image", sensor_name(ch), len(cams)), "sensor_msgs/msg/Image"),
                    (f"camera_info {ch}", camera_topic("camera_info", sensor_name(ch), len(cams)), _INFO),
                ]
                for ch in cams
            },
            **{ch: [(f"radar {ch}", radar_topic(sensor_name(ch), len(radars)), _CLOUD)] for ch in radars},
        }
        inputs = {topic: kind for sensor in self.topics.values() for _, topic, kind in sensor}
        inputs[TOPICS["ego_pose"]] = "geometry_msgs/msg/PoseStamped"
        inputs[TOPICS["tf_static"]] = "tf2_msgs/msg/TFMessage"
        super().__init__("imkd_player", bag, node, inputs)
        self.reader = reader
        qos = QoSProfile(depth=10)
        types = {"sensor_msgs/msg/Image": Image, _INFO: CameraInfo, _CLOUD: PointCloud2}
        for sensor in self.topics.values():
            for key, topic, kind in sensor:
                self.pubs[key] = self.create_publisher(types[kind], topic, qos)
        for role, channel in (("image", cams[0]), ("camera_info", cams[0]), ("radar", radars[0])):
            self.pubs[role] = self.pubs[f"{role} {channel}"]  # the reference camera's and first radar's, by role
        self.pubs.update(
            {
                "ego_pose": self.create_publisher(PoseStamped, TOPICS["ego_pose"], qos),
                "clock": self.create_publisher(Clock, "/clock", qos),
                "tf_static": self.create_publisher(TFMessage, TOPICS["tf_static"], STATIC_QOS),
            }
        )
        self._statics: dict[str, Any] = {}  # child frame -> TransformStamped (the rig published so far)
        self._static_cs: set[str] = set()
        self._calibrations: dict[str, Any] = {}
        self._pixels: dict[str, np.ndarray] = {}

    # -- inputs ---------------------------------------------------------------------------------------------------
    def _publish_rig(self, evs: Sequence[Event], stamp: int) -> None:
        """The mountings of the sensors of ``evs`` whose calibration is new on ``/tf_static`` (the whole rig, as a
        static broadcaster republishes it), stamped ``stamp``."""
        new = False
        for ev in evs:
            cs_token = self.reader.sample_data(ev.token)["calibrated_sensor_token"]
            if cs_token in self._static_cs:
                continue
            self._static_cs.add(cs_token)
            child = ev.channel.lower()
            self._statics[child] = transform_stamped(self.reader.sensor_to_ego(ev.token), stamp, "base_link", child)
            new = True
        if new:
            msg = tf_message(list(self._statics.values()))
            self.pubs["tf_static"].publish(msg)
            self._record(TOPICS["tf_static"], msg, stamp)

    def prepare(self, events: Sequence[Event]) -> None:
        """The rig of the first event of every sensor on ``/tf_static`` before anything else is played."""
        firsts = {ev.channel: ev for ev in reversed(events)}
        if firsts:
            self._publish_rig(list(firsts.values()), events[0].stamp)

    def preload(self, events: Sequence[Event]) -> None:
        """Decode the camera images of ``events`` now, so that publishing them later costs no file reading (load
        tests at several times the sensor rate)."""
        for ev in events:
            if ev.kind != "radar" and ev.token not in self._pixels:
                self._pixels[ev.token] = self._read_image(ev)

    def _read_image(self, ev: Event) -> np.ndarray:
        from PIL import Image as PILImage

        with PILImage.open(self.reader.dataroot / self.reader.sample_data(ev.token)["filename"]) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    def publish(self, ev: Event) -> float:
        """Publish ``ev`` (clock first, then its ego pose, then the data) and record it; returns the wall time
        (``perf_counter``) at which the data message was handed to the middleware."""
        r = self.reader
        self._now = ev.stamp
        self.pubs["clock"].publish(Clock(clock=ns_to_stamp(ev.stamp)))
        pose = pose_stamped(r.ego_pose_of(ev.token), ev.stamp, "map")
        self.pubs["ego_pose"].publish(pose)
        self._record(TOPICS["ego_pose"], pose, ev.stamp)
        rec = r.sample_data(ev.token)
        self._publish_rig([ev], ev.stamp)  # a new calibration (another scene's rig)
        header = make_header(ev.stamp, ev.channel.lower())
        if ev.kind == "radar":
            ((_, radar_topic_, _),) = self.topics[ev.channel]
            cloud = array_to_pointcloud2(read_radar_pcd(r.dataroot / rec["filename"], filtered=False), header)
            t_pub = time.perf_counter()
            self.pubs[f"radar {ev.channel}"].publish(cloud)
            self._record(radar_topic_, cloud, ev.stamp)
            return t_pub
        pixels = self._pixels.get(ev.token)  # kept: a repeated sequence publishes it again
        if pixels is None:
            pixels = self._read_image(ev)
        cs = rec["calibrated_sensor_token"]
        if cs not in self._calibrations:  # one camera calibration per scene: that of its keyframes
            self._calibrations[cs] = next(c for c in r.frame(ev.sample).cameras if c.channel == ev.channel)
        info = calibration_to_camera_info(self._calibrations[cs], header)
        (_, image_topic, _), (_, info_topic, _) = self.topics[ev.channel]
        self.pubs[f"camera_info {ev.channel}"].publish(info)
        image = array_to_image(pixels, header)
        t_pub = time.perf_counter()
        self.pubs[f"image {ev.channel}"].publish(image)
        if ev.keyframe:
            self._record(info_topic, info, ev.stamp)
            self._record(image_topic, image, ev.stamp)
        return t_pub


def play(
    player: Player,
    events: Sequence[Event],
    *,
    rate: float = 1.0,
    lockstep: bool = True,
    answer_timeout: float = 60.0,
    settle: float = 5.0,
    max_gap: float = 1.0,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Publish ``events`` paced at ``rate`` x real time; returns one record per published camera frame. A jump in
    data time of more than ``max_gap`` seconds, or back in time (a cut between scenes), is not waited for: the
    pacing clock restarts at that event. ``clock`` (seconds) and ``sleep`` pace it (tests inject a virtual time)."""
    published: list[tuple[Event, float]] = []
    prepare = getattr(player, "prepare", None)  # Recorder subclasses: the rig on /tf_static first
    if prepare is not None:
        prepare(events)
    if not lockstep:
        player.preload(events)
    t_wall, t_data = clock(), events[0].stamp if events else 0
    prev = t_data
    for ev in events:
        if not 0 <= ev.stamp - prev <= max_gap * 1e9:
            t_wall, t_data = clock(), ev.stamp
        prev = ev.stamp
        if rate > 0:
            delay = (ev.stamp - t_data) / 1e9 / rate - (clock() - t_wall)
            if delay > 0:
                sleep(delay)
        t_pub = player.publish(ev)
        if ev.kind == "camera":
            published.append((ev, t_pub))
        if ev.kind in ("camera", "view") and ev.last:  # a set complete: its latency counts from here
            ref = ev.stamp if ev.kind == "camera" else ev.ref
            if published and published[-1][0].stamp == ref:
                published[-1] = (published[-1][0], t_pub)
            if lockstep and not player.wait_answer(ref, answer_timeout):
                player.get_logger().warning(f"no detections for frame {ref} within {answer_timeout} s")
            if lockstep:  # the data clock goes on from here in wall time
                t_wall, t_data = clock(), ev.stamp
    if not lockstep and published:
        player.wait_answer(published[-1][0].stamp, settle)
    out = []
    for ev, t_pub in published:
        ans = player.answers.get(ev.stamp)
        out.append(
            {
                "stamp_ns": ev.stamp,
                "sample_token": ev.sample if ev.keyframe else None,
                "keyframe": ev.keyframe,
                "published_s": t_pub,
                "latency_ms": None if ans is None else (ans.received - t_pub) * 1e3,
                "detections": None if ans is None else ans.detections,
                "processing_ms": None if ans is None else ans.processing_ms,
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imkd_ros.nodes.player", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="nuScenes-format dataroot")
    p.add_argument("--version", default="v1.0-synth")
    p.add_argument("--split", default="synth_val", help="scenes to play")
    p.add_argument("--bag", default=None, help="MCAP bag folder to write (must not exist)")
    add_serve_arguments(p)
    p.add_argument("--lockstep", action="store_true", help="wait for each keyframe's detections")
    p.add_argument("--all-camera-frames", action="store_true", help="publish camera sweeps too")
    p.add_argument("--answer-timeout", type=float, default=60.0)
    p.add_argument("--repeat", type=int, default=1, help="play the sequence this many times back to back")
    args, ros_args = p.parse_known_args(argv)
    reader = NuScenesReader(args.data, args.version, load_lidar=False, load_image=False)
    events = repeated(timeline(reader, reader.split_scenes(args.split), args.all_camera_frames), args.repeat)
    rclpy.init(args=["prog", *ros_args])
    player = Player(reader, Path(args.bag) if args.bag else None, args.node)
    return serve(player, events, args, lockstep=args.lockstep, answer_timeout=args.answer_timeout)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of every player that :func:`serve` runs: ``--summary``, ``--rate``, ``--node``, ``--wait``."""
    p.add_argument("--summary", required=True, help="JSON summary to write")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed (x real time; 0: as fast as possible)")
    p.add_argument("--node", default=NODE, help="the detector node's name (its output topics)")
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the detector to appear")


def serve(
    player: Any,
    events: Sequence[Event],
    args: argparse.Namespace,
    *,
    lockstep: bool,
    answer_timeout: float,
    settle: float = 5.0,
    info: dict[str, Any] | None = None,
) -> int:
    """Spin ``player`` (a :class:`Recorder` with ``publish``/``preload``, rclpy initialised), wait ``args.wait`` s
    for the detector, :func:`play` ``events`` at ``args.rate`` and write the JSON summary ``args.summary``
    (``frames``, ``wall_s``, ``events`` and ``info``); then shut down (``args``: :func:`add_serve_arguments`).
    Returns the exit status (0; 3: the detector did not appear; 130: interrupted)."""
    wait, rate, summary = args.wait, args.rate, Path(args.summary)
    executor = SingleThreadedExecutor()
    executor.add_node(player)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rc = 0
    try:
        if not player.wait_matched(wait):
            print(
                f"player: the detector ({player.out_topics['objects'][0]}) did not appear within {wait} s",
                file=sys.stderr,
            )
            rc = 3
        else:
            print("MATCHED", flush=True)
            t0 = time.perf_counter()
            frames = play(player, events, rate=rate, lockstep=lockstep, answer_timeout=answer_timeout, settle=settle)
            out = {"frames": frames, "wall_s": time.perf_counter() - t0, "events": len(events), **(info or {})}
            summary.write_text(json.dumps(out, indent=1) + "\n")
            print(f"DONE {sum(f['latency_ms'] is not None for f in frames)}/{len(frames)} frames answered", flush=True)
    except (KeyboardInterrupt, ExternalShutdownException):
        rc = 130
    finally:
        player.close()
        executor.shutdown()
        spinner.join(timeout=10.0)
        player.destroy_node()
        rclpy.try_shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
