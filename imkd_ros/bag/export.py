"""A nuScenes-format dataset (the real nuScenes or the synthetic world) -> a ROS 2 bag: :func:`export_bag`
(``imkd bag export``).

Written with ``rosbags`` (no ROS needed), rosbag2 format version 9, storage ``mcap`` (default) or ``sqlite3``.
Per scene, in timestamp order, every message's log time equal to its header stamp (the sensor timestamp, ns):

* ``tf_static`` (``tf2_msgs/TFMessage``) at the scene's first stamp: ``base_link`` -> ``cam_front`` (one per
  exported camera, ``cam_<name>``), ``radar_front`` (one per exported radar, ``radar_<name>``), ``lidar_top`` (the
  calibrated_sensor records; frame ids are the channel names in lower case). Repeated per scene: real datasets
  change calibration between logs.
* every camera (default: all of the dataset's sensor table, ``CAM_FRONT`` first; the front rig has one, the nuScenes
  surround rig six, exposed one after the other): ``sensor_msgs/Image`` rgb8 (the JPEG decoded, as the reader does)
  or, with ``compressed``, ``sensor_msgs/CompressedImage`` holding the dataset's JPEG bytes unchanged; ``CameraInfo``
  with every image, each at its own exposure stamp. Keyframes only unless ``all_camera_frames``. Topics: the
  players' (:meth:`BagTopics.for_rig`): ``/camera/image`` and ``/camera/camera_info`` for one camera,
  ``/camera/<name>/image`` and ``/camera/<name>/camera_info`` for several (``<name>`` as
  :func:`imkd_ros.pipeline.topics.sensor_name`: ``CAM_FRONT_LEFT`` -> ``front_left``).
* every radar sweep of every radar (default: all of the dataset's; ``/radar/front`` for one, ``/radar/<name>`` for
  several) over the scene's chain (including those before its first keyframe, so the first keyframes have
  their history): ``PointCloud2`` with the 18 nuScenes radar fields in their file dtypes, unfiltered, sensor frame.
* every LiDAR sweep likewise: ``PointCloud2`` ``x y z intensity`` float32 and ``ring`` uint16 (float32 if a file
  holds non-integer rings), sensor frame.
* for every stamp with data, the ego pose: ``/ego_pose`` ``geometry_msgs/PoseStamped`` (``base_link`` in ``map``),
  ``/tf`` ``map -> base_link``, ``/odom`` ``nav_msgs/Odometry`` whose twist (in ``base_link``) is the central
  difference of the neighbouring poses (one-sided at a scene's ends; linear m/s, yaw rate rad/s). Quaternions and
  translations are the dataset's records, written unchanged, so a bag reader gets the reader's poses bit for bit.
* per keyframe, at the reference camera keyframe's stamp (the reader's reference time): the ground truth
  ``vision_msgs/Detection3DArray`` in ``base_link`` at that stamp (the reader's :attr:`Frame.gt`: detection classes
  only), the same boxes as ``autoware_perception_msgs/DetectedObjects`` with the devkit velocities
  (``ground_truth_objects``), and the sample token (``std_msgs/String``), so that caches and results built from the
  bag are keyed like the dataset's. Unlabelled scenes (:meth:`imkd_ros.data.reader.NuScenesReader.is_labelled`
  False, e.g. ``imkd synth --unlabelled-scenes``) get no ground-truth message at all (an empty one would claim "no
  object here"), only the sample token: teacher targets cover their keyframes, replay evaluation scores only the
  labelled ones.

Ground-truth filter (as the devkit's detection eval, ``filter_eval_boxes``): boxes whose annotation has no LiDAR
and no radar point (``num_lidar_pts + num_radar_pts == 0``) are not exported. The devkit's class-range filter is
not applied (it depends on the eval config); replay evaluation applies it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.bag.convert import (
    camera_info_msg,
    cloud_msg,
    compressed_image_msg,
    default_typestore,
    detections_msg,
    image_msg,
    make_header,
    objects_msg,
    odometry_msg,
    pose_stamped_msg,
    string_msg,
    tf_msg,
    transform_stamped_msg,
)
from imkd_ros.bag.errors import BagError, check_output_bag
from imkd_ros.bag.topics import BagTopics
from imkd_ros.core.atomic import atomic_dir
from imkd_ros.core.transforms import quat_to_matrix, wrap_angle

__all__ = ["STORAGES", "export_bag", "lidar_cloud", "frame_id_of"]

#: Storage plugins ``export_bag`` writes.
STORAGES: tuple[str, ...] = ("mcap", "sqlite3")
_LIDAR = "LIDAR_TOP"


def _latched() -> list[Any]:
    """The QoS ``tf_static`` is offered with (reliable, transient local), so that ``ros2 bag play`` latches it."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return [
        Qos(
            QosHistory.KEEP_LAST,
            1,
            QosReliability.RELIABLE,
            QosDurability.TRANSIENT_LOCAL,
            zero,
            zero,
            QosLiveliness.AUTOMATIC,
            zero,
            False,
        )
    ]


def frame_id_of(channel: str) -> str:
    """The tf frame id of a nuScenes channel: ``"CAM_FRONT"`` -> ``"cam_front"``."""
    return channel.lower()


def lidar_cloud(points: np.ndarray) -> np.ndarray:
    """``(N, 5)`` float32 LiDAR points (x, y, z, intensity, ring; as in ``.pcd.bin``) -> structured ``(N,)`` with
    ``x y z intensity`` float32 and ``ring`` uint16 (float32 when a ring value is not an integer in 0-65535)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 5)
    ring = pts[:, 4]
    integral = bool(np.all((ring == np.round(ring)) & (ring >= 0) & (ring <= 65535)))
    dtype = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")] + [("ring", "<u2" if integral else "<f4")]
    )
    out = np.empty(len(pts), dtype=dtype)
    for j, name in enumerate(dtype.names):
        out[name] = pts[:, j]
    return out


@dataclass(frozen=True, order=True)
class _Event:
    stamp: int
    order: int  # camera 0, radar 1, lidar 2 at equal stamps
    channel: str
    token: str
    keyframe: bool
    sample: str


def _chain(reader: Any, samples: Sequence[str], channel: str) -> list[str]:
    """The channel's sample_data tokens of a scene: from the start of its chain to its last keyframe."""
    sd = reader.keyframe_token(samples[0], channel)
    while reader.sample_data(sd)["prev"]:
        sd = reader.sample_data(sd)["prev"]
    last = reader.keyframe_token(samples[-1], channel)
    out = []
    while True:
        out.append(sd)
        nxt = reader.sample_data(sd)["next"]
        if sd == last or not nxt:
            return out
        sd = nxt


def _twists(stamps: list[int], poses: list[tuple[list[float], list[float]]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pose, (linear velocity in the ego frame (3,), angular velocity (3,)) by central differences."""
    out = []
    n = len(stamps)
    for i in range(n):
        a, b = max(i - 1, 0), min(i + 1, n - 1)
        dt = (stamps[b] - stamps[a]) / 1e9
        if n < 2 or dt <= 0:
            out.append((np.zeros(3), np.zeros(3)))
            continue
        ra, rb = quat_to_matrix(poses[a][0]), quat_to_matrix(poses[b][0])
        ri = quat_to_matrix(poses[i][0])
        v = ri.T @ (np.asarray(poses[b][1]) - np.asarray(poses[a][1])) / dt
        yaw = float(wrap_angle(math.atan2(rb[1, 0], rb[0, 0]) - math.atan2(ra[1, 0], ra[0, 0])))
        out.append((v, np.array([0.0, 0.0, yaw / dt])))
    return out


def _load(root: Path, version: str, table: str) -> dict[str, dict[str, Any]]:
    with open(root / version / f"{table}.json", encoding="utf-8") as f:
        return {r["token"]: r for r in json.load(f)}


def export_bag(
    data: str | PathLike[str],
    out: str | PathLike[str],
    *,
    version: str = "v1.0-synth",
    storage: str = "mcap",
    scenes: Sequence[str] | None = None,
    topics: BagTopics | Mapping[str, Any] | Iterable[str] | None = None,
    compressed: bool = False,
    all_camera_frames: bool = False,
    cameras: Sequence[str] | None = None,
    radars: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``scenes`` (default: all, in time order) of the dataset at ``data`` into a new bag ``out`` (see the
    module docstring for the content).

    Args:
        data: the nuScenes-format dataroot.
        out: the bag folder to create (must not exist).
        version: the table folder, e.g. ``"v1.0-synth"``, ``"v1.0-mini"``.
        storage: ``"mcap"`` or ``"sqlite3"``.
        scenes: scene names; they must not overlap in time.
        topics: topic names (``topics.image`` / ``topics.camera_info`` pair with ``cameras``, ``topics.radar``
            with ``radars``, in order); default :meth:`BagTopics.for_rig` of the exported sensors (the players'
            topics; for one camera and one radar :class:`BagTopics`' defaults); a mapping or ``ROLE=TOPIC`` strings
            override those defaults (:meth:`BagTopics.from_mapping`, ``--topic``).
        compressed: cameras as CompressedImage (the dataset's JPEG bytes) instead of rgb8 Image.
        all_camera_frames: also the cameras' non-keyframes (sweeps; ``imkd bag export`` sets it unless
            ``--keyframes-only``: a recorded drive has every frame).
        cameras: the camera channels, the reference camera first (default: the dataset's, as
            :class:`~imkd_ros.data.reader.NuScenesReader` orders them: ``CAM_FRONT`` first).
        radars: the radar channels, one topic each (default: the dataset's).
        progress: show a progress bar.

    Returns:
        stats: ``bag``, ``storage``, ``scenes``, ``keyframes``, ``messages`` (topic -> count), ``bytes``, ``seconds``,
        ``data_seconds`` (the scenes' time span), ``mb_per_s``, ``x_realtime`` (data seconds per wall second),
        ``gt_boxes`` and ``gt_boxes_dropped`` (no LiDAR and no radar point), ``unlabelled_scenes`` and
        ``unlabelled_keyframes`` (exported without ground truth).

    Raises:
        BagError: ``out`` exists or ends in ``.bag`` (:func:`imkd_ros.bag.errors.check_output_bag`), no scene,
            unknown storage, camera or radar channels and topics of different lengths, overlapping scenes, or a
            failure while writing (the partial bag is removed). The bag is written in a temporary folder beside
            ``out`` and renamed when complete (:func:`imkd_ros.core.atomic.atomic_dir`): a killed export leaves no
            ``out``, only ``.<name>.partial/``, whose readable part ``imkd bag recover`` saves.
        DatasetError: the dataset is missing, malformed, or lacks a scene or a channel's keyframe.
    """
    from imkd_ros.data.reader import NuScenesReader

    t0 = time.perf_counter()
    out = _check_arguments(out, storage)
    reader = NuScenesReader(
        data, version, cameras=cameras, radars=radars, radar_sweeps=1, load_lidar=False, load_image=False
    )
    cameras, radars = reader.cameras, reader.radars
    topics = _check_topics(topics, cameras, radars)
    root = Path(data)
    names = list(scenes) if scenes is not None else reader.scene_names
    if not names:
        raise BagError(f"no scene to export from {root / version} (an empty scene list or split)")
    plans = _plan(reader, names, cameras, radars, all_camera_frames)
    _check_files(reader, plans, cameras, f"scenes {', '.join(names)} of {root / version}")
    unlabelled = {name for name in names if not reader.is_labelled(name)}
    types = _message_types(topics, compressed)

    def scene_writer(writer: Any) -> _SceneWriter:
        return _SceneWriter(writer, reader, root, version, topics, types, compressed, cameras, radars)

    bag = _write(out, storage, scene_writer, plans, unlabelled, progress)
    return _stats(out, storage, plans, unlabelled, bag, time.perf_counter() - t0)


def _write(
    out: Path,
    storage: str,
    scene_writer: Callable[[Any], _SceneWriter],
    plans: list[_Plan],
    unlabelled: set[str],
    progress: bool,
) -> _SceneWriter:
    """Write every planned scene into a bag that appears under ``out`` only when complete (a failure removes the
    partial bag); the scene writer, with its counts."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with atomic_dir(out) as inner:
        writer = Writer(inner, version=9, storage_plugin=plugin)
        try:
            writer.open()
            bag = scene_writer(writer)
            bar = tqdm(total=sum(len(p[2]) for p in plans), desc="bag export", unit="msg", disable=not progress)
            for name, samples, events in plans:
                bag.write_scene(samples, events, name in unlabelled, bar.update)
            bar.close()
            writer.close()
        except BaseException:
            if writer.storage is not None:
                writer.abort()  # the partial bag is removed with its temporary folder
            raise
    return bag


def _stats(
    out: Path, storage: str, plans: list[_Plan], unlabelled: set[str], bag: _SceneWriter, seconds: float
) -> dict[str, Any]:
    """:func:`export_bag`'s return value."""
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "bag": str(out),
        "storage": storage,
        "scenes": [p[0] for p in plans],
        "keyframes": bag.keyframes,
        "messages": bag.counts,
        "bytes": size,
        "seconds": seconds,
        "data_seconds": bag.data_ns / 1e9,
        "mb_per_s": size / 1e6 / seconds,
        "x_realtime": bag.data_ns / 1e9 / seconds,
        "gt_boxes": bag.gt_kept,
        "gt_boxes_dropped": bag.gt_dropped,
        "unlabelled_scenes": [p[0] for p in plans if p[0] in unlabelled],
        "unlabelled_keyframes": bag.unlabelled_keyframes,
    }


def _check_arguments(out: str | PathLike[str], storage: str) -> Path:
    """The output bag's path, after the checks that need no dataset (see :func:`export_bag`'s Raises)."""
    out = check_output_bag(out)
    if storage not in STORAGES:
        raise BagError(f"unknown bag storage {storage!r}; choose from {', '.join(STORAGES)}")
    if out.exists():
        raise BagError(f"{out} exists; a bag is never overwritten (choose another --out)")
    return out


def _check_topics(topics: Any, cameras: Sequence[str], radars: Sequence[str]) -> BagTopics:
    """``topics``, or the players' topics of the rig (:meth:`BagTopics.for_rig`) with the overrides ``topics``
    names, checked against the channels.

    Raises:
        BagError: a different number of camera (radar) channels and image (radar) topics.
    """
    from imkd_ros.pipeline.topics import sensor_name

    if not isinstance(topics, BagTopics):
        rig = BagTopics.for_rig([sensor_name(c) for c in cameras], [sensor_name(r) for r in radars])
        topics = BagTopics.from_mapping(topics, base=rig)
    images = topics.topics_of("image")
    if len(cameras) != len(images):
        raise BagError(f"{len(cameras)} camera channels {list(cameras)} but {len(images)} image topics {list(images)}")
    if len(radars) != len(topics.radar):
        raise BagError(
            f"{len(radars)} radar channels {list(radars)} but {len(topics.radar)} radar topics {list(topics.radar)}"
        )
    return topics


_Plan = tuple[str, list[str], list[_Event]]


def _plan(
    reader: Any, names: Sequence[str], cameras: Sequence[str], radars: Sequence[str], all_camera_frames: bool
) -> list[_Plan]:
    """Each scene's events in time order (scene name, its samples, events), scenes in time order.

    Raises:
        BagError: two scenes overlap in time.
    """
    order = {**{c: 0 for c in cameras}, **{r: 1 for r in radars}, _LIDAR: 2}
    plans = []
    for name in names:
        samples = reader.scene_samples(name)
        events = []
        for ch in (*cameras, *radars, _LIDAR):
            for sd in _chain(reader, samples, ch):
                rec = reader.sample_data(sd)
                if ch in cameras and not (all_camera_frames or rec["is_key_frame"]):
                    continue
                events.append(
                    _Event(
                        int(rec["timestamp"]) * 1000, order[ch], ch, sd, bool(rec["is_key_frame"]), rec["sample_token"]
                    )
                )
        events.sort()
        plans.append((name, samples, events))
    plans.sort(key=lambda p: p[2][0].stamp)
    for (a, _, ea), (b, _, eb) in zip(plans, plans[1:], strict=False):
        if eb[0].stamp <= ea[-1].stamp:
            raise BagError(f"scenes {a} and {b} overlap in time; export them into separate bags")
    return plans


def _check_files(reader: Any, plans: list[_Plan], cameras: Sequence[str], where: str) -> None:
    """Every file the bag will hold, checked before anything is written: all bad files in one error."""
    from imkd_ros.data.check import FileProblem, bad_files_error, check_file

    problems: list[FileProblem] = []
    for _, _, events in plans:
        for ev in events:
            path = reader.dataroot / reader.sample_data(ev.token)["filename"]
            kind = "image" if ev.channel in cameras else "lidar" if ev.channel == _LIDAR else "radar"
            reason = check_file(kind, path)
            if reason is not None:
                problems.append(FileProblem(str(path), reason, (ev.token,)))
    if problems:
        n = sum(len(p[2]) for p in plans)
        hint = "replace them or export other scenes (nothing was written)"
        raise bad_files_error(problems, n, where, hint, "messages")


def _message_types(topics: BagTopics, compressed: bool) -> dict[str, str]:
    """Topic -> message type of every topic the bag holds.

    Raises:
        BagError: two roles share a topic.
    """
    image = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    types = {
        **{t: image for t in topics.topics_of("image")},
        **{t: "sensor_msgs/msg/CameraInfo" for t in topics.topics_of("camera_info")},
        **{t: "sensor_msgs/msg/PointCloud2" for t in topics.radar},
        topics.lidar: "sensor_msgs/msg/PointCloud2",
        topics.ego_pose: "geometry_msgs/msg/PoseStamped",
        topics.odom: "nav_msgs/msg/Odometry",
        topics.tf: "tf2_msgs/msg/TFMessage",
        topics.tf_static: "tf2_msgs/msg/TFMessage",
        topics.ground_truth: "vision_msgs/msg/Detection3DArray",
        topics.ground_truth_objects: "autoware_perception_msgs/msg/DetectedObjects",
        topics.sample_token: "std_msgs/msg/String",
    }
    if len(types) != 8 + 2 * len(topics.topics_of("image")) + len(topics.radar):
        raise BagError(f"two roles share a topic: {topics.to_dict()}")
    return types


class _SceneWriter:
    """Writes planned scenes into an open rosbags ``Writer`` (connections added here) and counts what it wrote:
    ``counts`` (topic -> messages), ``keyframes``, ``unlabelled_keyframes``, ``gt_kept``, ``gt_dropped``,
    ``data_ns`` (the scenes' time span)."""

    def __init__(
        self,
        writer: Any,
        reader: Any,
        root: Path,
        version: str,
        topics: BagTopics,
        types: dict[str, str],
        compressed: bool,
        cameras: Sequence[str],
        radars: Sequence[str],
    ) -> None:
        self.store = default_typestore()
        self.types = types
        self.writer, self.reader, self.topics, self.compressed = writer, reader, topics, compressed
        self.cameras, self.radars = tuple(cameras), tuple(radars)
        self.camera = self.cameras[0]  # the reference camera: keyframes are stamped with its exposure
        self.topic_of = {_LIDAR: topics.lidar, **dict(zip(radars, topics.radar, strict=True))}
        self.camera_topics = dict(
            zip(cameras, zip(topics.topics_of("image"), topics.topics_of("camera_info"), strict=True), strict=True)
        )
        self.ego_rec, self.cs_rec = _load(root, version, "ego_pose"), _load(root, version, "calibrated_sensor")
        self.counts = dict.fromkeys(self.types, 0)
        self.gt_kept = self.gt_dropped = self.keyframes = self.unlabelled_keyframes = 0
        self.data_ns = 0
        self.conns = {
            t: writer.add_connection(
                t, m, typestore=self.store, offered_qos_profiles=_latched() if t == topics.tf_static else ()
            )
            for t, m in self.types.items()
        }

    def write(self, topic: str, stamp: int, msg: Any) -> None:
        self.writer.write(self.conns[topic], stamp, self.store.serialize_cdr(msg, self.types[topic]))
        self.counts[topic] += 1

    def write_scene(self, samples: list[str], events: list[_Event], unlabelled: bool, done: Any) -> None:
        """One scene: ``tf_static`` first, then per event its ego pose (once per stamp) and its message, on
        keyframes the ground truth (or, unlabelled, only the sample token); ``done(1)`` after each event."""
        first = events[0].stamp
        self.data_ns += events[-1].stamp - first
        self._tf_static(samples, first)
        pose_of, twist = self._poses(events)
        done_pose: set[int] = set()
        info_of: dict[str, Any] = {}
        for ev in events:
            if ev.stamp not in done_pose:
                done_pose.add(ev.stamp)
                self._ego(ev.stamp, *pose_of[ev.stamp], *twist[ev.stamp])
            self._sensor(ev, info_of)
            if ev.channel == self.camera and ev.keyframe:
                self._keyframe(ev, unlabelled)
            done(1)

    def _tf_static(self, samples: list[str], first: int) -> None:
        """The mountings of this scene's keyframe sample_data."""
        store, statics = self.store, []
        for ch in (*self.cameras, *self.radars, _LIDAR):
            sd = self.reader.sample_data(self.reader.keyframe_token(samples[0], ch))
            cs = self.cs_rec[sd["calibrated_sensor_token"]]
            header = make_header(first, "base_link", store)
            statics.append(transform_stamped_msg(cs["rotation"], cs["translation"], header, frame_id_of(ch), store))
        self.write(self.topics.tf_static, first, tf_msg(statics, store))

    def _poses(self, events: list[_Event]) -> tuple[dict[int, Any], dict[int, tuple[np.ndarray, np.ndarray]]]:
        """Ego poses (rotation, translation) at every stamp with data, and their twists from the neighbours."""
        pose_of: dict[int, tuple[list[float], list[float]]] = {}
        for ev in events:
            rec = self.ego_rec[self.reader.sample_data(ev.token)["ego_pose_token"]]
            pose_of.setdefault(ev.stamp, (rec["rotation"], rec["translation"]))
        stamps = sorted(pose_of)
        return pose_of, dict(zip(stamps, _twists(stamps, [pose_of[s] for s in stamps]), strict=True))

    def _ego(self, t: int, q: list[float], tr: list[float], lin: np.ndarray, ang: np.ndarray) -> None:
        store, topics = self.store, self.topics
        self.write(topics.ego_pose, t, pose_stamped_msg(q, tr, make_header(t, "map", store), store))
        header = make_header(t, "map", store)
        self.write(topics.tf, t, tf_msg([transform_stamped_msg(q, tr, header, "base_link", store)], store))
        self.write(topics.odom, t, odometry_msg(q, tr, lin, ang, header, "base_link", store))

    def _sensor(self, ev: _Event, info_of: dict[str, Any]) -> None:
        """The event's camera image (+ camera_info), LiDAR or radar cloud."""
        from imkd_ros.data.pcd import read_lidar_bin, read_radar_pcd
        from imkd_ros.data.reader import read_image

        store, topics, t = self.store, self.topics, ev.stamp
        rec = self.reader.sample_data(ev.token)
        path = self.reader.dataroot / rec["filename"]
        header = make_header(t, frame_id_of(ev.channel), store)
        if ev.channel in self.camera_topics:
            cs_token = rec["calibrated_sensor_token"]
            if cs_token not in info_of:  # intrinsics and size: those of the sample's frame
                info_of[cs_token] = next(c for c in self.reader.frame(ev.sample).cameras if c.channel == ev.channel)
            if self.compressed:
                img = compressed_image_msg(path.read_bytes(), header, "jpeg", store)
            else:
                img = image_msg(read_image(path), header, store)
            image_topic, info_topic = self.camera_topics[ev.channel]
            self.write(image_topic, t, img)
            self.write(info_topic, t, camera_info_msg(info_of[cs_token], header, store))
        elif ev.channel == _LIDAR:
            self.write(topics.lidar, t, cloud_msg(lidar_cloud(read_lidar_bin(path)), header, store))
        else:
            self.write(self.topic_of[ev.channel], t, cloud_msg(read_radar_pcd(path, filtered=False), header, store))

    def _keyframe(self, ev: _Event, unlabelled: bool) -> None:
        """A reference camera keyframe's ground truth (boxes without a LiDAR or radar point dropped) and sample
        token."""
        store, topics, t = self.store, self.topics, ev.stamp
        self.keyframes += 1
        if unlabelled:
            self.unlabelled_keyframes += 1
            self.write(topics.sample_token, t, string_msg(ev.sample, store))
            return
        gt = self.reader.frame(ev.sample).gt
        pts = {
            a["token"]: a.get("num_lidar_pts", 1) + a.get("num_radar_pts", 0)
            for a in self.reader.annotations(ev.sample)
        }
        keep = np.array([pts.get(tok, 1) > 0 for tok in (gt.tokens or [])], dtype=bool)
        self.gt_dropped += int((~keep).sum())
        gt = gt[keep] if len(gt) else gt
        self.gt_kept += len(gt)
        gt_header = make_header(t, "base_link", store)
        self.write(topics.ground_truth, t, detections_msg(gt, gt_header, store))
        self.write(topics.ground_truth_objects, t, objects_msg(gt, gt_header, store))
        self.write(topics.sample_token, t, string_msg(ev.sample, store))
