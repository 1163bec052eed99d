"""``imkd bag replay-eval``: run a detector over a bag's camera and radar exactly as ``detector_node`` would, and
score it against the bag's ground truth with the nuScenes devkit.

Offline (default, no ROS): the bag's image, camera_info, radar and ego-pose messages are read in log-time order (at
equal log times: ego pose, camera_info, radar, then image, the order the player publishes them) and fed to
:class:`imkd_ros.pipeline.assemble.FrameAssembler` -- the pairing (:class:`~imkd_ros.pipeline.sync.CameraRadarSync`,
keep-latest camera slot, multi-sweep radar moved through the ego poses) and frame assembly code that the node runs, with
the node's parameters (``config/detector.yaml``, plus an optional parameter file). Every assembled frame goes through
:class:`~imkd_ros.inference.detector.Detector` one at a time, as in the node.

Live (``--live``, :mod:`imkd_ros.apps.replay_live`): the bag is played into a ROS graph at ``--rate`` x real time
with ``/clock``, ``detector_node`` runs in another process, and its recorded outputs are scored; frames it did not
answer count as frames without detections.

Both score the detections of the ground-truth frames (the bag's ``ground_truth`` stamps) with
:func:`imkd_ros.bag.metrics.evaluate_boxes`, as ``imkd eval`` scores a dataset: the devkit's class ranges measured
from the ego pose of the LiDAR sweep nearest to each keyframe (the devkit uses the LIDAR_TOP keyframe's), and only
boxes inside the model's BEV grid (:func:`imkd_ros.evaluation.eval_detector.model_region`); and again, into
``coverage/``, only
boxes the model's sensors can see (:func:`bag_coverage`, from the bag's ``camera_info`` and ``tf_static``). A
ground-truth frame that sync dropped or the node missed is scored with no detections.

Which camera frames are fed: ``frames="keyframes"`` (default) only images whose stamp has ground truth (as the
player publishes keyframes only), ``"all"`` every image (detections of all, scores of the keyframes).

Several cameras (a bag of the nuScenes surround rig, :meth:`imkd_ros.bag.topics.BagTopics.for_bag`): every camera
of the bag goes into the assembler (node parameter ``cameras``: the bag's camera names, the reference camera first,
:attr:`SensorRig.camera_names`; a parameter file may name fewer, e.g. ``cameras: [front]`` for a front-rig model),
paired into camera sets as the node pairs them, each camera's mounting moved into the reference camera's ego frame
with the ego pose at its own exposure. With ``frames="keyframes"`` the other cameras' images are those that can
belong to a keyframe's set (:func:`in_camera_set`). The frames equal the dataset reader's bit for bit.

Known difference to ``imkd eval`` on an exported dataset: the node pairs a camera frame with the newest radar sweep
not later than it (it cannot wait for the future), the dataset reader with the radar keyframe, the sweep nearest
to the LiDAR keyframe, which can be up to half a radar period after the camera. Where they differ the frame's radar
is one sweep (about 77 ms) older; scores then differ slightly. The report counts such frames only indirectly
(per frame it lists the key sweep's offset from the camera stamp, ``key_sweep_offset_ms``).

A radar sweep without points (an empty cloud, or every point rejected by the default filters; radars facing empty
space send them) is a sweep of no points to the node's frame assembly, as to the reader: the same sweeps are
selected.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imkd_ros.bag.errors import BagError
from imkd_ros.bag.topics import BagTopics
from imkd_ros.core.transforms import Pose

if TYPE_CHECKING:  # imported where used: this module is imported whenever the `imkd` parser is built
    import numpy as np

    from imkd_ros.bag.source import BagMessage, BagSource
    from imkd_ros.core.types import Boxes, Calibration
    from imkd_ros.evaluation.coverage import Coverage
    from imkd_ros.model import ModelConfig

__all__ = [
    "NEEDED_ROLES",
    "MAX_GAP_S",
    "FRAME_CHOICES",
    "FRAME_DROP_KINDS",
    "SensorRig",
    "FrameRecord",
    "Replay",
    "open_bag",
    "sensor_rig",
    "node_parameters",
    "read_params_file",
    "ordered_messages",
    "in_camera_set",
    "sample_keys",
    "replay_offline",
    "range_poses",
    "bag_coverage",
    "evaluate_replay",
]

#: Roles (:class:`BagTopics` fields) a bag needs for replay-eval.
NEEDED_ROLES: tuple[str, ...] = ("image", "camera_info", "radar", "tf_static", "ground_truth")
#: A gap between consecutive messages longer than this (s) is not bag time (a cut between scenes).
MAX_GAP_S = 1.0
#: Values of the ``frames`` option.
FRAME_CHOICES: tuple[str, ...] = ("keyframes", "all")
#: Sync event kinds that drop a camera frame (the others drop radar sweeps).
FRAME_DROP_KINDS: tuple[str, ...] = (
    "superseded",
    "no_radar",
    "missing_camera",
    "out_of_order",
    "duplicate",
    "time_reset",
)
#: The kinds a radar sweep or another camera's frame can report about the reference camera's frame.
_CAMERA_ONLY = ("superseded", "no_radar", "missing_camera")
#: The camera's name in the node's parameters (``cameras``) on a bag of one camera.
_CAMERA = "front"

#: At equal log times, as the player publishes: the rig first, then the ego pose, CameraInfo, radar, image.
_ORDER = {"tf_static": -1, "ego_pose": 0, "camera_info": 1, "radar": 2, "image": 3}


@dataclass(frozen=True)
class SensorRig:
    """The sensors' names and mountings as the node's parameters hold them.

    Attributes:
        camera_names: camera name per image topic (in :attr:`BagTopics.image` order, the reference camera
            first): ``"front"`` for a bag of one camera, else the topic's part before its last
            (``/camera/front_left/image`` -> ``"front_left"``).
        image_topics, info_topics: the cameras' image and camera_info topics.
        camera_frames: the cameras' ``frame_id`` (of their first camera_info).
        compressed_image: the image topics carry ``sensor_msgs/CompressedImage``.
        camera_to_base: camera name -> mounting (optical frame -> ``base_link``).
        calibrations: camera name -> its first CameraInfo with its static mounting (for the coverage region).
        radar_names: radar name per radar topic (in :attr:`BagTopics.radar` order), e.g. ``"front"``.
        radar_topics: the radar topics.
        radar_to_base: radar name -> mounting.
    """

    camera_names: tuple[str, ...]
    image_topics: tuple[str, ...]
    info_topics: tuple[str, ...]
    camera_frames: tuple[str, ...]
    compressed_image: bool
    camera_to_base: dict[str, Pose]
    calibrations: dict[str, Calibration]
    radar_names: tuple[str, ...]
    radar_topics: tuple[str, ...]
    radar_to_base: dict[str, Pose]

    def name_of(self, topic: str) -> str:
        """The radar name of a radar topic."""
        return self.radar_names[self.radar_topics.index(topic)]

    def camera_of(self, topic: str) -> str:
        """The camera name of an image or camera_info topic."""
        topics = self.image_topics if topic in self.image_topics else self.info_topics
        return self.camera_names[topics.index(topic)]


@dataclass
class FrameRecord:
    """One camera frame that reached the detector (offline) or was published (live).

    Attributes:
        stamp_ns: its header stamp.
        key: the sample token when the bag has one for this stamp, else ``str(stamp_ns)``.
        keyframe: it has ground truth.
        detections: boxes (ego frame), None when it got none (dropped by sync, not run, missed by the node).
        latency_ms: offline: from the message that completed the frame to the detections (assembly + model);
            live: from publishing the image to receiving the detections.
        processing_ms: live: the node's own processing time (``~/debug/processing_time_ms``); offline = latency.
        key_sweep_offset_ms: per radar, key sweep stamp - camera stamp (ms; offline only; never > 0: the key
            sweep is the newest at or before the camera, :func:`imkd_ros.core.sweeps.select_sweeps`).
        nuscenes_key_differs: offline, on a bag with LiDAR: True where the nuScenes keyframe convention (the
            radar sweep nearest the sample's LiDAR keyframe) would have given another key sweep than the causal
            one the node uses (for at least one radar), None when unknown.
        radar: the frame's radar points ``(N, 7)`` (:data:`imkd_ros.core.types.RADAR_FEATURES`; offline only), for the
            BEV pictures.
    """

    stamp_ns: int
    key: str
    keyframe: bool
    detections: Boxes | None = None
    latency_ms: float | None = None
    processing_ms: float | None = None
    key_sweep_offset_ms: dict[str, float] = field(default_factory=dict)
    nuscenes_key_differs: bool | None = None
    radar: np.ndarray | None = None


@dataclass
class Replay:
    """What a replay produced (offline or live).

    Attributes:
        mode: ``"offline"`` or ``"live"``.
        frames: one record per camera frame fed, in time order.
        frame_drops: sync event kind -> camera frames dropped (plus ``"pending_at_end"``: waiting for radar when
            the bag ended; live: ``"node_missed"``).
        radar_drops: sync event kind -> radar sweeps dropped.
        input_errors: input kind -> messages rejected (bad message, no CameraInfo yet, ...).
        examples: up to 20 sentences naming dropped or rejected messages.
        wall_s: wall time of the replay (reading, assembly, model; live: playing).
        data_s: the time the replayed messages cover (s): their span without gaps longer than
            :data:`MAX_GAP_S` (between scenes).
        extra: mode-specific figures (live: rate, frames published/answered, the node's log).
    """

    mode: str
    frames: list[FrameRecord]
    frame_drops: dict[str, int]
    radar_drops: dict[str, int]
    input_errors: dict[str, int]
    examples: list[str]
    wall_s: float
    data_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def detections(self) -> dict[int, Boxes]:
        """Stamp -> detections of the frames that got some."""
        return {f.stamp_ns: f.detections for f in self.frames if f.detections is not None}


# -------------------------------------------------------------------------------------------------------- the bag


def open_bag(path: str | PathLike[str], topics: BagTopics = BagTopics()) -> BagSource:  # noqa: B008 - frozen
    """The bag with every role replay-eval needs (:data:`NEEDED_ROLES`).

    Raises:
        BagError: not a bag, or a needed topic is missing (named, with the bag's topics).
    """
    from imkd_ros.bag.source import BagSource

    return BagSource(path, topics, need=NEEDED_ROLES)


def _first(src: BagSource, role_or_topic: str) -> BagMessage:
    msg = next(iter(src.messages([role_or_topic])), None)
    if msg is None:
        raise BagError(f"bag {src.path}: no message on {role_or_topic}")
    return msg


def _camera_names(image_topics: Sequence[str]) -> tuple[str, ...]:
    """The cameras' names: ``("front",)`` for one camera, else each image topic's part before its last."""
    if len(image_topics) == 1:
        return (_CAMERA,)
    parts = [t.strip("/").split("/") for t in image_topics]
    return tuple(p[-2] if len(p) > 1 else p[-1] for p in parts)


def sensor_rig(src: BagSource) -> SensorRig:
    """The camera and radar mountings from the bag's ``tf_static`` (for the frame ids of the first camera_info
    message of each camera and the first message of each radar); camera names from the image topics
    (:attr:`SensorRig.camera_names`), radar names from the topics' last parts (``/radar/front`` -> ``front``).

    Raises:
        BagError: no message on a needed topic, no static transform for a sensor frame, two cameras or radars
            with the same name, or cameras of both image types.
    """
    from imkd_ros.bag.convert import MessageError, camera_info_to_calibration

    image_topics, info_topics = src.topics.topics_of("image"), src.topics.topics_of("camera_info")
    cameras = _camera_names(image_topics)
    if len(set(cameras)) != len(cameras):
        raise BagError(f"image topics {list(image_topics)} do not give distinct camera names ({list(cameras)})")
    frames, cam_mounts, calibrations = [], {}, {}
    for name, topic in zip(cameras, info_topics, strict=True):
        info = _first(src, topic)
        frame = str(info.msg.header.frame_id)
        frames.append(frame)
        cam_mounts[name] = src.sensor_to_ego(frame, info.log_ns)
        try:
            calibrations[name] = camera_info_to_calibration(info.msg, cam_mounts[name], frame.upper())
        except MessageError as exc:
            raise BagError(f"bag {src.path}: {topic} at log time {info.log_ns}: {exc}") from exc
    kinds = {src.topics_in_bag[t].endswith("/CompressedImage") for t in image_topics}
    if len(kinds) != 1:
        raise BagError(f"bag {src.path}: image topics {list(image_topics)} mix Image and CompressedImage")
    topics = tuple(src.topics.radar)
    names = tuple(t.rstrip("/").rsplit("/", 1)[-1] for t in topics)
    if len(set(names)) != len(names):
        raise BagError(f"radar topics {list(topics)} do not have distinct last parts (the radar names)")
    mounts = {}
    for name, topic in zip(names, topics, strict=True):
        first = _first(src, topic)
        mounts[name] = src.sensor_to_ego(str(first.msg.header.frame_id), first.log_ns)
    return SensorRig(
        cameras,
        tuple(image_topics),
        tuple(info_topics),
        tuple(frames),
        kinds.pop(),
        cam_mounts,
        calibrations,
        names,
        topics,
        mounts,
    )


def _flow(pose: Pose) -> dict[str, list[float]]:
    return {"translation": [float(v) for v in pose.translation], "rotation": [float(v) for v in pose.quat]}


def node_parameters(rig: SensorRig, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The detector node's parameters for this bag: ``config/detector.yaml`` defaults, the rig's mountings, camera
    and radar names and image type, then ``overrides`` (flat dotted names). Flat dict
    (``"radar_to_base.front.rotation"``)."""
    from imkd_ros.pipeline.detector_params import default_parameters

    params = {k: v for k, v in default_parameters().items() if not k.startswith(("camera_to_base.", "radar_to_base."))}
    params["cameras"] = list(rig.camera_names)
    params["radars"] = list(rig.radar_names)
    params["compressed_image"] = rig.compressed_image
    for name, pose in rig.camera_to_base.items():
        for part, values in _flow(pose).items():
            params[f"camera_to_base.{name}.{part}"] = values
    for name, pose in rig.radar_to_base.items():
        for part, values in _flow(pose).items():
            params[f"radar_to_base.{name}.{part}"] = values
    params.update(overrides or {})
    return params


def _bag_poses(
    mounts: Mapping[str, Pose], bag: Mapping[str, Pose], params: Mapping[str, Any], kind: str
) -> dict[str, Pose]:
    """``mounts`` (of the parameters) with the bag's own :class:`Pose` wherever the parameter holds the bag's
    mounting (not overridden): a pose's way through the ``[w, x, y, z]`` parameter changes its last bits, and a
    camera moved into the reference frame would then differ from the reader's by ~1e-16."""
    out = {}
    for name, pose in mounts.items():
        ours = bag.get(name)
        same = ours is not None and all(
            params.get(f"{kind}_to_base.{name}.{part}") == values for part, values in _flow(ours).items()
        )
        out[name] = ours if same else pose
    return out


def read_params_file(path: str | PathLike[str]) -> dict[str, Any]:
    """Flat parameters of a ROS 2 parameter file (``/**:`` or ``detector_node:`` -> ``ros__parameters``).

    Raises:
        BagError: unreadable file or no ``ros__parameters`` block.
    """
    import yaml

    from imkd_ros.pipeline.params import flatten_parameters

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BagError(f"parameter file {path}: unreadable ({exc})") from exc
    for key in ("/**", "detector_node", "/detector_node"):
        if isinstance(doc, dict) and isinstance(doc.get(key), dict) and "ros__parameters" in doc[key]:
            return flatten_parameters(doc[key]["ros__parameters"])
    raise BagError(f"parameter file {path}: no '/**: ros__parameters:' (or 'detector_node:') block")


def ordered_messages(src: BagSource, roles: Sequence[str]) -> Iterator[BagMessage]:
    """The messages of ``roles`` (of tf_static, image, camera_info, radar, ego_pose) in log-time order, at equal log
    times tf_static, ego pose, camera_info, radar, image (the order the node gets them from the players)."""
    batch: list[BagMessage] = []
    for m in src.messages(roles):
        if batch and m.log_ns != batch[0].log_ns:
            yield from sorted(batch, key=lambda b: _ORDER[src.topics.role_of(b.topic) or "image"])
            batch = []
        batch.append(m)
    yield from sorted(batch, key=lambda b: _ORDER[src.topics.role_of(b.topic) or "image"])


def in_camera_set(stamp: int, refs: Sequence[int], lead_ns: int, window_ns: int) -> bool:
    """Whether another camera's frame stamped ``stamp`` can belong to the camera set of one of the reference stamps
    ``refs`` (ascending): ``ref - lead_ns <= stamp <= ref + window_ns`` (the sync's ``camera_lead`` and
    ``camera_window``)."""
    i = bisect.bisect_left(refs, stamp - window_ns)
    return i < len(refs) and refs[i] <= stamp + lead_ns


def sample_keys(src: BagSource) -> dict[int, str]:
    """Keyframe stamp (ns) -> sample token, from the ``sample_token`` topic (empty without it)."""
    if not src.has("sample_token"):
        return {}
    return {stamp: key for key, stamp in src.keyframes()}


# --------------------------------------------------------------------------------------------------------- offline


def replay_offline(
    src: BagSource,
    detector: Any,
    *,
    params: Mapping[str, Any] | None = None,
    frames: str = "keyframes",
    gt_stamps: Sequence[int] | None = None,
    progress: bool = False,
) -> Replay:
    """Feed the bag through the node's frame assembly and run ``detector`` on every frame it assembles (module
    docstring).

    Args:
        src: the bag (:func:`open_bag`).
        detector: a :class:`~imkd_ros.inference.detector.Detector` (``detect(frame) -> Boxes``).
        params: node parameter overrides (flat names, e.g. ``{"radar_sweeps": 6}``) over the bag's rig and
            ``config/detector.yaml``.
        frames: ``"keyframes"`` (images with ground truth) or ``"all"``.
        gt_stamps: the ground-truth stamps (default: read from the bag).
        progress: a progress bar.

    Raises:
        BagError: unreadable bag, missing topics or mountings, a bad ``frames``.
    """
    from tqdm import tqdm

    from imkd_ros.pipeline.assemble import FrameAssembler
    from imkd_ros.pipeline.detector_params import DetectorNodeConfig

    if frames not in FRAME_CHOICES:
        raise BagError(f"frames must be one of {FRAME_CHOICES}, got {frames!r}")
    rig = sensor_rig(src)
    p = node_parameters(rig, params)
    try:
        config = DetectorNodeConfig.from_parameters(p)
        camera_to_base, radar_to_base = config.required_mountings()
        camera_to_base = _bag_poses(camera_to_base, rig.camera_to_base, p, "camera")
        radar_to_base = _bag_poses(radar_to_base, rig.radar_to_base, p, "radar")
        assembler = FrameAssembler.from_config(config, radar_to_base)
    except ValueError as exc:
        raise BagError(f"bag {src.path}: node parameters: {exc}") from exc
    unknown = [c for c in camera_to_base if c not in rig.camera_names]
    if unknown:
        raise BagError(f"camera {unknown[0]!r} (parameter cameras) has no topic; the bag's cameras: {rig.camera_names}")
    unknown = [r for r in radar_to_base if r not in rig.radar_names]
    if unknown:
        raise BagError(f"radar {unknown[0]!r} (parameter radars) has no topic; the bag's radars: {rig.radar_names}")
    use_pose = assembler.use_ego_pose and src.has("ego_pose")
    gts = set(gt_stamps if gt_stamps is not None else src.ground_truth())
    run = _OfflineRun(src, rig, assembler, (camera_to_base, radar_to_base), gts, frames == "keyframes")
    roles = ["image", "camera_info", "radar"] + (["ego_pose"] if use_pose else [])
    t_start = time.perf_counter()
    bar = tqdm(desc="replay", unit="msg", disable=not progress)
    for m in ordered_messages(src, roles):
        bar.update(1)
        run.message(m, detector)
    bar.close()
    return run.result(p, time.perf_counter() - t_start)


class _OfflineRun:
    """The state of one offline replay: each message through the assembler (:meth:`message`), the records, drop
    and error counts, and the :class:`Replay` at the end (:meth:`result`).

    Args:
        mountings: camera name -> base and radar name -> base (``DetectorNodeConfig.required_mountings``; the
            cameras of the node's parameters, the reference camera first).
        gts: the ground-truth stamps.
        keyframes_only: replay only the images with ground truth.
    """

    def __init__(
        self,
        src: BagSource,
        rig: SensorRig,
        assembler: Any,
        mountings: tuple[Mapping[str, Pose], Mapping[str, Pose]],
        gts: set[int],
        keyframes_only: bool,
    ) -> None:
        self.src, self.rig, self.assembler = src, rig, assembler
        self.camera_to_base, self.radar_to_base = mountings
        self.gts, self.keyframes_only = gts, keyframes_only
        self.reference = next(iter(self.camera_to_base))
        self.gt_sorted = sorted(gts)
        self.keys = sample_keys(src)
        self.records: dict[int, FrameRecord] = {}
        self.frame_drops: Counter[str] = Counter()
        self.radar_drops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.data_ns, self.last = 0, None
        self.radar_stamps: dict[str, list[int]] = {}
        self.key_stamps: dict[int, dict[str, int]] = {}

    def note(self, counter: Counter[str], kind: str, text: str) -> None:
        counter[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(text)

    def message(self, m: Any, detector: Any) -> None:
        """One bag message: into the assembler; a frame it completes goes through ``detector``."""
        from imkd_ros.bag.convert import MessageError
        from imkd_ros.pipeline.assemble import FrameInputError

        if self.last is not None and 0 <= m.log_ns - self.last <= MAX_GAP_S * 1e9:
            self.data_ns += m.log_ns - self.last
        self.last = m.log_ns
        role = self.src.topics.role_of(m.topic)
        t0 = time.perf_counter()
        try:
            fed = self._feed(role, m)
        except (MessageError, FrameInputError) as exc:
            self.note(self.errors, role or "message", f"{m.topic} at {m.stamp_ns}: {exc}; dropped")
            return
        if fed is None:
            return
        done, events, source = fed
        for e in events:
            if e.kind in _CAMERA_ONLY or (source == "camera" and e.kind in FRAME_DROP_KINDS):
                self.note(self.frame_drops, e.kind, e.text)
            elif source == "view":  # another camera's frame the sync rejected (a duplicate, a time reset)
                self.note(self.errors, f"camera_{e.kind}", e.text)
            else:
                self.note(self.radar_drops, e.kind, e.text)
        if done is not None:
            self._detect(done, detector, t0)

    def _feed(self, role: str | None, m: Any) -> tuple[Any, list[Any], str] | None:
        """(assembled frame or None, sync events, what the message was: ``"camera"`` the reference camera's image,
        ``"view"`` another camera's, ``"radar"``); None: skipped."""
        from imkd_ros.bag.convert import (
            camera_info_to_calibration,
            cloud_to_array,
            pose_msg_to_pose,
        )

        asm = self.assembler
        if role == "ego_pose":
            asm.add_pose(m.stamp_ns, pose_msg_to_pose(m.msg.pose))
        elif role == "camera_info":
            camera = self.rig.camera_of(m.topic)
            if camera in self.camera_to_base:
                mount = self.camera_to_base[camera]
                asm.set_calibration(camera_info_to_calibration(m.msg, mount, m.msg.header.frame_id.upper()), camera)
        elif role == "radar":
            name = self.rig.name_of(m.topic)
            if name not in self.radar_to_base:
                return None
            self.radar_stamps.setdefault(name, []).append(m.stamp_ns)
            return (*asm.add_radar(name, m.stamp_ns, cloud_to_array(m.msg)), "radar")
        else:  # image
            return self._image(m)
        return None, [], "radar"

    def _image(self, m: Any) -> tuple[Any, list[Any], str] | None:
        """A camera image into the assembler (see :meth:`_feed`); the reference camera's gets a record."""
        from imkd_ros.bag.convert import image_msg_to_array

        asm = self.assembler
        camera = self.rig.camera_of(m.topic)
        if camera not in self.camera_to_base:
            return None
        if camera == self.reference:
            if self.keyframes_only and m.stamp_ns not in self.gts:
                return None
            key = self.keys.get(m.stamp_ns, str(m.stamp_ns))
            self.records[m.stamp_ns] = FrameRecord(m.stamp_ns, key, m.stamp_ns in self.gts)
        elif self.keyframes_only:
            sync = asm.sync
            if not in_camera_set(m.stamp_ns, self.gt_sorted, sync.camera_lead_ns, sync.camera_window_ns):
                return None
        if camera not in asm.calibrations:
            where = "" if len(self.camera_to_base) == 1 else f" of camera {camera}"
            text = f"image {m.stamp_ns}{where}: no CameraInfo received yet; image dropped"
            self.note(self.errors, "no_camera_info", text)
            return None
        source = "camera" if camera == self.reference else "view"
        return (*asm.add_camera(m.stamp_ns, image_msg_to_array(m.msg), None, camera), source)

    def _detect(self, done: Any, detector: Any, t0: float) -> None:
        try:
            boxes = detector.detect(done.frame)
        except Exception as exc:  # noqa: BLE001 - as the node: a failing frame is reported, the replay goes on
            self.note(self.errors, "model", f"detector failed on frame {done.stamp}: {exc}")
            return
        rec = self.records[done.stamp]
        rec.detections = boxes
        rec.latency_ms = rec.processing_ms = (time.perf_counter() - t0) * 1e3
        rec.key_sweep_offset_ms = {name: (s[0] - done.stamp) / 1e6 for name, s in done.sweeps.items()}
        self.key_stamps[done.stamp] = {name: s[0] for name, s in done.sweeps.items()}
        rec.radar = done.frame.radar

    def result(self, p: Mapping[str, Any], seconds: float) -> Replay:
        differs = _nuscenes_key_differs(self.src, self.key_stamps, self.radar_stamps)
        for stamp, d in differs.items():
            self.records[stamp].nuscenes_key_differs = d
        pending = self.assembler.sync.pending_stamp
        if pending is not None:
            text = f"camera frame {pending}: still waiting for radar when the bag ended"
            self.note(self.frame_drops, "pending_at_end", text)
        return Replay(
            "offline",
            [self.records[s] for s in sorted(self.records)],
            dict(self.frame_drops),
            dict(self.radar_drops),
            dict(self.errors),
            self.examples,
            seconds,
            self.data_ns / 1e9,
            {
                "parameters": {k: p[k] for k in sorted(p)},
                "frames_key_sweep_differs_from_nuscenes": sum(differs.values()) if differs else None,
            },
        )


def _nuscenes_key_differs(
    src: BagSource, used: Mapping[int, Mapping[str, int]], radar_stamps: Mapping[str, Sequence[int]]
) -> dict[int, bool]:
    """Per frame stamp: would the nuScenes keyframe convention (per radar, the sweep nearest the sample's LiDAR
    keyframe, i.e. the LiDAR sweep nearest the camera stamp) have chosen another key sweep than ``used``? Empty
    without a LiDAR topic."""
    lidar = src.lidar_stamps
    if not used or not lidar:
        return {}
    sorted_radar = {n: sorted(s) for n, s in radar_stamps.items()}
    out = {}
    for stamp, keys in used.items():
        lidar_key = _nearest(lidar, stamp)
        out[stamp] = any(_nearest(sorted_radar[n], lidar_key) != k for n, k in keys.items())
    return out


def _nearest(stamps: Sequence[int], t: int) -> int:
    """The stamp of the non-empty ascending ``stamps`` nearest to ``t`` (the earlier one on a tie)."""
    i = bisect.bisect_left(stamps, t)
    near = [stamps[j] for j in (i - 1, i) if 0 <= j < len(stamps)]
    return min(near, key=lambda x: (abs(x - t), x))


def range_poses(src: BagSource, stamps: Sequence[int], max_offset_s: float = 0.1) -> dict[int, Pose]:
    """Per keyframe stamp, the ego pose the devkit measures class ranges from: that of the LiDAR sweep nearest to
    the stamp (the sample's LIDAR_TOP keyframe in nuScenes) when the bag has LiDAR within ``max_offset_s``, else
    the pose at the stamp itself; stamps without any pose are left out."""
    lidar = src.lidar_stamps
    out = {}
    for s in stamps:
        at = s
        if lidar:
            best = _nearest(lidar, s)
            if abs(best - s) <= max_offset_s * 1e9:
                at = best
        pose = src.ego_pose_at(at)
        if pose is not None:
            out[s] = pose
    return out


def bag_coverage(src: BagSource, config: ModelConfig, cameras: Sequence[str] | None = None) -> Coverage:
    """The coverage region of a model on the bag's rig (:func:`imkd_ros.evaluation.coverage.rig_coverage`): each
    camera's first ``camera_info`` with its static mounting, the radar mountings (:func:`sensor_rig`). ``cameras``:
    only these camera names (the node's ``cameras`` parameter; default every camera of the bag)."""
    from imkd_ros.evaluation.coverage import rig_coverage

    if config.is_teacher:
        return rig_coverage(config, (), {})
    rig = sensor_rig(src)
    names = rig.camera_names if cameras is None else tuple(cameras)
    calibrations = tuple(rig.calibrations[n] for n in names if n in rig.calibrations)
    radars = rig.radar_to_base if "radar" in config.modalities else {}
    return rig_coverage(config, calibrations if "camera" in config.modalities else (), radars)


def evaluate_replay(
    src: BagSource,
    replay: Replay,
    out_dir: str | PathLike[str],
    *,
    region: Any = None,
    gt: Mapping[int, Boxes] | None = None,
    gt_attributes: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Score ``replay``'s detections of the ground-truth frames with :func:`imkd_ros.bag.metrics.evaluate_boxes`
    into ``out_dir`` (``metrics_summary.json``, ``metrics_details.json``).

    Args:
        src: the bag.
        replay: its replay.
        out_dir: output folder.
        region: the model's BEV area (:func:`imkd_ros.evaluation.eval_detector.model_region`), its coverage region
            (:func:`bag_coverage`), or None.
        gt: ground truth by stamp (default: the bag's).
        gt_attributes: sample key -> per GT box nuScenes attribute name (bags carry none: by default the
            attribute is inferred from class and speed, :func:`imkd_ros.evaluation.evaluate.attribute_of`).

    Raises:
        EvaluationError: no ground truth, or none of the scored classes left after the filters.
    """
    from imkd_ros.bag.metrics import evaluate_boxes

    gt = src.ground_truth() if gt is None else gt
    stamps = sorted(gt)
    keys = sample_keys(src)
    key = {s: keys.get(s, str(s)) for s in stamps}
    poses = {s: src.ego_pose_at(s) or Pose.identity() for s in stamps}
    ranges = range_poses(src, stamps)
    dets = replay.detections
    summary = evaluate_boxes(
        {key[s]: gt[s] for s in stamps},
        {key[s]: dets[s] for s in stamps if s in dets},
        {key[s]: poses[s] for s in stamps},
        out_dir,
        range_poses={key[s]: ranges.get(s, poses[s]) for s in stamps},
        gt_attributes=gt_attributes,
        region=region,
        scope={"bag": str(src.path), "mode": replay.mode, "gt_attributes": "given" if gt_attributes else "inferred"},
    )
    return summary


# ------------------------------------------------------------------------------------------------------ the verb
