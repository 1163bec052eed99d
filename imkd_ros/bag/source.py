"""A read-only view of any ROS 2 bag (rosbag2 folder with ``metadata.yaml``, or a bare ``.mcap`` / ``.db3``):
:class:`BagSource`.

Message types are read from the bag: each connection's type name and, where the bag stores it, its message
definition (``ros2msg`` or ``ros2idl``), so bags written by other tools (``ros2 bag record``, rosbag2_py, rclpy
serialisation, mcap-ros2-support) deserialise with their own definitions. Types a bag does not define come from
:func:`imkd_ros.bag.interfaces.make_typestore` (ROS 2 Kilted, ``imkd_msgs``, the vision_msgs stand-in); when the bag
records a type hash (RIHS01) for such a type it must match. Deserialised messages are rosbags dataclasses (arrays
as numpy views); :mod:`imkd_ros.bag.convert` turns them into the core's types.

Frames: the ego frame is ``base_frame`` (``base_link``); sensor mountings come from ``tf_static`` (chains of static
transforms are composed down to ``base_frame``; the set in force at a time is the union of the ``tf_static``
messages logged up to then, the first ones before); ego poses from the ``ego_pose`` topic, else ``odom``, else
``map -> base_link`` on ``tf``.

Every problem with the bag raises :class:`~imkd_ros.bag.errors.BagError` naming the bag and the topic or message.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.bag.convert import (
    MessageError,
    camera_info_to_calibration,
    cloud_columns,
    cloud_to_array,
    default_typestore,
    header_stamp_ns,
    pose_msg_to_pose,
    transform_msg_to_pose,
)
from imkd_ros.bag.errors import BagError
from imkd_ros.bag.recover import RECOVER_HINT
from imkd_ros.bag.topics import BagTopics
from imkd_ros.core.geometry import pose_at
from imkd_ros.core.sweeps import SweepWindow, lag_seconds, lidar_sweep_to_ref, select_sweeps, sweep_to_ref
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes, Calibration

__all__ = ["BagMessage", "BagSource", "LIDAR_MSG_FIELDS"]

#: The LiDAR PointCloud2 fields read, in :data:`imkd_ros.core.types.LIDAR_FEATURES` order (``time_lag`` is per sweep).
LIDAR_MSG_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity", "ring")


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message.

    Attributes:
        topic: its topic.
        msgtype: its type, e.g. ``"sensor_msgs/msg/PointCloud2"``.
        log_ns: the time it was logged (ns).
        stamp_ns: its header stamp (ns); the log time for messages without a header (``std_msgs/String``); for a
            ``TFMessage`` its first transform's stamp.
        msg: the rosbags message object.
    """

    topic: str
    msgtype: str
    log_ns: int
    stamp_ns: int
    msg: Any


def _resolve(path: Path) -> Path:
    """The path rosbags opens: the bag folder when it has ``metadata.yaml``, else its only ``.mcap``/``.db3``."""
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        files = sorted([*path.glob("*.mcap"), *path.glob("*.db3")])
        if len(files) == 1:
            return files[0]
        raise BagError(f"{path}: not a ROS 2 bag (no metadata.yaml and {len(files)} .mcap/.db3 files)")
    return path


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class BagSource:
    """Read-only view of a ROS 2 bag (see the module docstring).

    Args:
        path: bag folder, or a single ``.mcap`` / ``.db3`` file.
        topics: the topic of each role.
        need: roles (field names of :class:`BagTopics`) whose topics must be in the bag.
        base_frame: the ego frame's name in tf and in the ground truth.
        map_frame: the fixed frame ego poses on ``tf`` are given in.

    Attributes:
        path: the bag path as given.
        topics: the roles' topics (the single-camera, single-radar defaults widened to the bag's per-camera and
            per-radar topics where it has them instead, :meth:`BagTopics.for_bag`).
        topics_in_bag: topic -> message type, for every topic of the bag.
        start_ns, end_ns: log time of the first message and just after the last (ns).
        duration_s: ``(end_ns - start_ns) / 1e9``.
        size_bytes: bytes on disk of the bag's files.

    Raises:
        BagError: the path is missing or not a readable bag, a needed topic is absent (the message lists the
            bag's topics), or a type has neither a definition in the bag nor a known one with the same hash.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        topics: BagTopics = BagTopics(),  # noqa: B008 - frozen dataclass, immutable default
        *,
        need: Sequence[str] = (),
        base_frame: str = "base_link",
        map_frame: str = "map",
    ) -> None:
        self.path = Path(path)
        self.topics = topics
        self.base_frame = base_frame
        self.map_frame = map_frame
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        self._open_path = _resolve(self.path)
        try:
            with self._reader() as reader:
                self._connections = list(reader.connections)
                self.start_ns = int(reader.start_time) if reader.message_count else 0
                self.end_ns = int(reader.end_time) if reader.message_count else 0
                self.message_count = int(reader.message_count)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - rosbags and sqlite raise many kinds for a broken file
            raise BagError(
                f"bag {self.path} cannot be opened (truncated or corrupt?): {exc}; "
                + RECOVER_HINT.format(path=self.path)
            ) from exc
        self.duration_s = (self.end_ns - self.start_ns) / 1e9
        self.size_bytes = _size(self.path)
        self.topics_in_bag: dict[str, str] = {}
        for c in self._connections:
            self.topics_in_bag.setdefault(c.topic, c.msgtype)
        self._store = self._typestore()
        self.topics = topics = topics.for_bag(self.topics_in_bag)
        missing = [(n, t) for n in need for t in topics.topics_of(n) if t not in self.topics_in_bag]
        if missing:
            name, topic = missing[0]
            raise BagError(
                f"bag {self.path} has no topic {topic} ({name}); its topics: "
                + (", ".join(f"{t} ({m})" for t, m in sorted(self.topics_in_bag.items())) or "none")
            )

    # -- opening and types --------------------------------------------------------------------------------------
    def _reader(self) -> Any:
        from rosbags.rosbag2 import Reader

        return Reader(self._open_path)

    def _typestore(self) -> Any:
        """The known types, with the bag's own definitions taking precedence (see the module docstring)."""
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

        base = default_typestore()
        bag_types: dict[str, Any] = {}
        for c in self._connections:
            text = c.msgdef.data if c.msgdef is not None else ""
            if not text or not text.strip() or c.msgdef.format == MessageDefinitionFormat.NONE:
                continue
            try:
                if c.msgdef.format == MessageDefinitionFormat.MSG:
                    bag_types.update(get_types_from_msg(text, c.msgtype))
                else:
                    sep = "=" * 80 + "\n"
                    for part in text.split(sep)[1:] if text.startswith(sep + "IDL: ") else [text]:
                        idl = part.split("\n", 1)[1] if part.startswith("IDL: ") else part
                        bag_types.update(get_types_from_idl(idl))
            except Exception as exc:  # noqa: BLE001 - a definition the parser rejects
                raise BagError(
                    f"bag {self.path}: topic {c.topic}: message definition of {c.msgtype} does not parse: {exc}"
                ) from exc
        changed = {k: v for k, v in bag_types.items() if base.fielddefs.get(k) != v}
        store = base
        if changed:
            store = get_typestore(Stores.EMPTY)
            store.register({**base.fielddefs, **changed})
        for c in self._connections:
            if c.msgtype not in store.fielddefs:
                raise BagError(
                    f"bag {self.path}: topic {c.topic} has type {c.msgtype}, which the bag does not define and "
                    "which is not a known type"
                )
            if c.msgtype not in bag_types and c.digest and c.digest.startswith("RIHS01_"):
                try:
                    have = store.hash_rihs01(c.msgtype)
                except Exception:  # noqa: BLE001 - hashing unsupported for this type: nothing to compare
                    continue
                if have != c.digest:
                    raise BagError(
                        f"bag {self.path}: topic {c.topic}: type {c.msgtype} has hash {c.digest} in the bag but "
                        f"{have} here (recorded with another version of the message, and without its definition)"
                    )
        return store

    @property
    def typestore(self) -> Any:
        """The rosbags typestore messages are deserialised with."""
        return self._store

    def has(self, name: str) -> bool:
        """True when every topic of role ``name`` is in the bag."""
        return all(t in self.topics_in_bag for t in self.topics.topics_of(name))

    def _topics(self, names: Sequence[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            topics = (name,) if name.startswith("/") else self.topics.topics_of(name)
            for t in topics:
                if t not in self.topics_in_bag:
                    raise BagError(
                        f"bag {self.path} has no topic {t}"
                        + ("" if name.startswith("/") else f" ({name})")
                        + "; its topics: "
                        + (", ".join(sorted(self.topics_in_bag)) or "none")
                    )
                if t not in out:
                    out.append(t)
        return out

    # -- messages -----------------------------------------------------------------------------------------------
    def _raw(
        self, topics: Collection[str], start_ns: int | None = None, stop_ns: int | None = None
    ) -> Iterator[tuple[Any, int, Any]]:
        """``(connection, log_ns, raw bytes)`` of ``topics`` in log-time order; read errors -> BagError."""
        where = "at the start"
        try:
            with self._reader() as reader:
                conns = [c for c in reader.connections if c.topic in topics]
                it = reader.messages(connections=conns, start=start_ns, stop=stop_ns)
                while True:
                    try:
                        conn, log_ns, raw = next(it)
                    except StopIteration:
                        return
                    where = f"after {conn.topic} at log time {log_ns}"
                    yield conn, int(log_ns), raw
        except BagError:
            raise
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - rosbags, sqlite3, lz4/zstd raise many kinds for broken data
            raise BagError(
                f"bag {self.path} is truncated or corrupt: reading failed {where}: {exc}; "
                + RECOVER_HINT.format(path=self.path)
            ) from exc

    def _deserialize(self, conn: Any, log_ns: int, raw: Any) -> Any:
        try:
            return self._store.deserialize_cdr(raw, conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - the serde raises several kinds for bad bytes
            raise BagError(
                f"bag {self.path}: message on {conn.topic} ({conn.msgtype}) at log time {log_ns} does not "
                f"deserialise (corrupt?): {exc}"
            ) from exc

    def messages(
        self, names: Sequence[str], *, start_ns: int | None = None, stop_ns: int | None = None
    ) -> Iterator[BagMessage]:
        """The messages of roles ``names`` (field names of :class:`BagTopics`; a name starting with ``/`` is taken
        as a topic) in log-time order, deserialised; optionally only those logged in ``[start_ns, stop_ns)``.

        Raises:
            BagError: a topic not in the bag, or a message that cannot be read or deserialised (raised when the
                iteration reaches it; what was yielded before stays valid).
        """
        topics = self._topics(names)
        for conn, log_ns, raw in self._raw(topics, start_ns, stop_ns):
            msg = self._deserialize(conn, log_ns, raw)
            stamp = header_stamp_ns(msg)
            yield BagMessage(conn.topic, conn.msgtype, log_ns, log_ns if stamp is None else stamp, msg)

    # -- calibration ----------------------------------------------------------------------------------------------
    @functools.cached_property
    def _static(self) -> list[tuple[int, dict[str, tuple[str, Pose]]]]:
        """``tf_static`` messages in log order: ``(log_ns, {child: (parent, child -> parent)})``."""
        out = []
        if not self.has("tf_static"):
            return out
        for m in self.messages(["tf_static"]):
            entries = {}
            for tr in m.msg.transforms:
                try:
                    entries[str(tr.child_frame_id)] = (str(tr.header.frame_id), transform_msg_to_pose(tr.transform))
                except MessageError as exc:
                    raise BagError(f"bag {self.path}: {m.topic} at log time {m.log_ns}: {exc}") from exc
            out.append((m.log_ns, entries))
        return out

    def extrinsics(self, at_ns: int | None = None) -> dict[str, Pose]:
        """Frame -> ``base_frame`` mounting of every frame ``tf_static`` connects to ``base_frame``, as in force at
        log time ``at_ns`` (default: the first ``tf_static`` messages). Empty without ``tf_static``."""
        if not self._static:
            return {}
        first = self._static[0][0]
        limit = first if at_ns is None else max(int(at_ns), first)
        edges: dict[str, tuple[str, Pose]] = {}
        for log_ns, entries in self._static:
            if log_ns > limit:
                break
            edges.update(entries)
        out: dict[str, Pose] = {self.base_frame: Pose.identity()}
        for child in edges:
            chain, frame, seen = [], child, set()
            while frame in edges and frame not in seen and frame != self.base_frame:
                seen.add(frame)
                parent, pose = edges[frame]
                chain.append(pose)
                frame = parent
            if frame == self.base_frame:
                pose = Pose.identity()
                for p in reversed(chain):  # base <- ... <- child
                    pose = pose @ p
                out[child] = chain[0] if len(chain) == 1 else pose
        return out

    def sensor_to_ego(self, frame_id: str, at_ns: int | None = None) -> Pose:
        """Mounting (``frame_id`` -> ``base_frame``) from ``tf_static``.

        Raises:
            BagError: no static transform chain from ``frame_id`` to ``base_frame``.
        """
        ext = self.extrinsics(at_ns)
        if frame_id not in ext:
            raise BagError(
                f"bag {self.path}: no static transform {frame_id} -> {self.base_frame} on {self.topics.tf_static} "
                f"(frames there: {', '.join(sorted(ext)) or 'none'})"
            )
        return ext[frame_id]

    def calibration(self, frame_id: str | None = None, *, at_ns: int | None = None) -> Calibration:
        """The (reference) camera's :class:`Calibration`: intrinsics and size from the first message on its
        ``camera_info`` topic (the first of them) logged at or after ``at_ns`` (default: the first), mounting from
        ``tf_static`` for its header ``frame_id``; channel = that frame id upper-cased. With ``frame_id`` given (e.g.
        ``"lidar_top"``), that sensor's mounting without intrinsics instead.

        Raises:
            BagError: no ``camera_info`` topic or message, an unusable CameraInfo, or no mounting for the frame.
        """
        if frame_id is not None:
            return Calibration(frame_id.upper(), self.sensor_to_ego(frame_id, at_ns))
        reference = self.topics.topics_of("camera_info")[:1]  # the reference camera's
        info = next(iter(self.messages(reference, start_ns=at_ns)), None)
        if info is None and at_ns is not None:
            info = next(iter(self.messages(reference)), None)
        if info is None:
            raise BagError(f"bag {self.path}: no message on {reference[0]} (camera_info)")
        cam_frame = str(info.msg.header.frame_id)
        try:
            return camera_info_to_calibration(info.msg, self.sensor_to_ego(cam_frame, info.log_ns), cam_frame.upper())
        except MessageError as exc:
            raise BagError(f"bag {self.path}: {info.topic} at log time {info.log_ns}: {exc}") from exc

    # -- ego poses ------------------------------------------------------------------------------------------------
    @functools.cached_property
    def lidar_stamps(self) -> list[int]:
        """Header stamps (ns) of the LiDAR sweeps, ascending; empty without a LiDAR topic. Read once."""
        return sorted(m.stamp_ns for m in self.messages(["lidar"])) if self.has("lidar") else []

    @functools.cached_property
    def ego_poses(self) -> tuple[list[int], list[Pose]]:
        """Ego (``base_frame``) -> fixed-frame poses by header stamp, sorted: from ``ego_pose``, else ``odom``,
        else the ``map_frame -> base_frame`` transforms on ``tf``; empty lists when the bag has none."""
        by_stamp: dict[int, Pose] = {}
        try:
            if self.has("ego_pose"):
                for m in self.messages(["ego_pose"]):
                    by_stamp.setdefault(m.stamp_ns, pose_msg_to_pose(m.msg.pose))
            elif self.has("odom"):
                for m in self.messages(["odom"]):
                    by_stamp.setdefault(m.stamp_ns, pose_msg_to_pose(m.msg.pose.pose))
            elif self.has("tf"):
                for m in self.messages(["tf"]):
                    for tr in m.msg.transforms:
                        if tr.child_frame_id == self.base_frame and tr.header.frame_id == self.map_frame:
                            stamp = int(tr.header.stamp.sec) * 1_000_000_000 + int(tr.header.stamp.nanosec)
                            by_stamp.setdefault(stamp, transform_msg_to_pose(tr.transform))
        except MessageError as exc:
            raise BagError(f"bag {self.path}: ego pose: {exc}") from exc
        stamps = sorted(by_stamp)
        return stamps, [by_stamp[s] for s in stamps]

    def ego_pose_at(self, stamp_ns: int, max_gap_s: float = 0.5) -> Pose | None:
        """The ego pose at ``stamp_ns``: the recorded one when a pose has exactly that stamp, else interpolated
        between the two around it (no further apart than ``max_gap_s``); None outside the poses or without any
        (:func:`imkd_ros.core.geometry.pose_at` without an end tolerance)."""
        stamps, poses = self.ego_poses
        return pose_at(stamps, poses, stamp_ns, max_gap_ns=int(round(max_gap_s * 1e9)))

    # -- ground truth, keyframes ----------------------------------------------------------------------------------
    def ground_truth(self) -> dict[int, Boxes]:
        """Ground-truth boxes by header stamp (ns), in the ego frame (``"ego"``) of that stamp, from the
        ``ground_truth`` Detection3DArray messages (class names of :data:`imkd_ros.core.classes.CLASSES`) with the
        velocities of the ``ground_truth_objects`` DetectedObjects of the same stamp (bags without that topic: the
        velocity in the detection ids of older exports; NaN where unknown).

        Raises:
            BagError: no ground-truth topic, a message in another frame than ``base_frame``, an unknown class, or
                DetectedObjects that do not match their Detection3DArray.
        """
        from imkd_ros.bag.interfaces import InterfaceError, detections_to_boxes

        objects: dict[int, Any] = {}
        if self.has("ground_truth_objects"):
            objects = {m.stamp_ns: m.msg for m in self.messages(["ground_truth_objects"])}
        out: dict[int, Boxes] = {}
        for m in self.messages(["ground_truth"]):
            if m.msg.header.frame_id != self.base_frame:
                raise BagError(
                    f"bag {self.path}: {m.topic} at log time {m.log_ns} is in frame {m.msg.header.frame_id!r}, "
                    f"expected {self.base_frame!r}"
                )
            try:
                out[m.stamp_ns] = detections_to_boxes(m.msg, "ego", objects.get(m.stamp_ns))
            except InterfaceError as exc:
                raise BagError(f"bag {self.path}: {m.topic} at log time {m.log_ns}: {exc}") from exc
        return out

    def keyframes(self) -> list[tuple[str, int]]:
        """``(key, stamp_ns)`` of the frames :meth:`lidar_frames` yields, in order: with a ``sample_token`` topic,
        each token and its log time (the keyframe's camera stamp); else ``str(stamp)`` and the header stamp of each
        LiDAR sweep.

        Raises:
            BagError: neither a ``sample_token`` nor a ``lidar`` topic.
        """
        if self.has("sample_token"):
            return [(str(m.msg.data), m.log_ns) for m in self.messages(["sample_token"])]
        return [(str(m.stamp_ns), m.stamp_ns) for m in self.messages(["lidar"])]

    # -- LiDAR ------------------------------------------------------------------------------------------------------
    def _sweep(self, m: BagMessage) -> tuple[int, int, str, np.ndarray]:
        try:
            pts = cloud_columns(cloud_to_array(m.msg), LIDAR_MSG_FIELDS, np.float32)
        except MessageError as exc:
            raise BagError(f"bag {self.path}: {m.topic} at log time {m.log_ns}: {exc}") from exc
        return m.stamp_ns, m.log_ns, str(m.msg.header.frame_id), pts

    def _to_ref(self, sweep: tuple[int, int, str, np.ndarray], ref_ns: int, ref_pose: Pose | None) -> np.ndarray:
        """One sweep ``(N, 5)`` (sensor frame) -> ``(N, 6)`` float32 LiDAR features in the ego frame at ``ref_ns``
        (:func:`imkd_ros.core.sweeps.sweep_to_ref`, :func:`imkd_ros.core.sweeps.lidar_sweep_to_ref`: the reader's
        arithmetic)."""
        stamp, log_ns, frame, pts = sweep
        sweep_pose = self.ego_pose_at(stamp) if ref_pose is not None else None
        pose = sweep_to_ref(self.sensor_to_ego(frame, log_ns), sweep_pose, ref_pose)
        return lidar_sweep_to_ref(pts, pose, lag_seconds(ref_ns, stamp))

    def _frame(self, swept: list[tuple[int, int, str, np.ndarray]], ref_ns: int, keyed_by_sweep: bool) -> np.ndarray:
        """Sweeps (oldest first, the key sweep last) -> one ``(N, 6)`` cloud, newest sweep first as the reader
        concatenates them. ``keyed_by_sweep``: the reference is the key sweep itself, which then needs no pose."""
        ref_pose = self.ego_pose_at(ref_ns)
        parts = [
            self._to_ref(sw, ref_ns, None if keyed_by_sweep and i == 0 else ref_pose)
            for i, sw in enumerate(reversed(swept))
        ]
        return np.concatenate(parts, axis=0)

    def lidar_frames(
        self, sweeps: int = 1, *, keys: Collection[str] | None = None, window: SweepWindow | None = None
    ) -> Iterator[tuple[str, int, np.ndarray]]:
        """LiDAR frames ``(key, stamp_ns, points)``, points ``(N, 6)`` float32 columns
        :data:`imkd_ros.core.types.LIDAR_FEATURES` in the ego frame at ``stamp_ns``, in the order of :meth:`keyframes`.

        With a ``sample_token`` topic (bags exported from a dataset) a frame is a keyframe: key = the sample token,
        ``stamp_ns`` = its log time (the camera keyframe stamp, the dataset's reference time); its sweeps are chosen
        by :func:`imkd_ros.core.sweeps.select_sweeps` (causal: the newest sweep at or before the stamp and earlier ones,
        within ``window``'s ages) and moved sensor -> ego(sweep) -> map -> ego(stamp) exactly as
        :class:`NuScenesReader` does (same selection, poses and arithmetic: bit-equal points for an exported bag).
        Without it every sweep is a frame keyed ``str(stamp_ns)``. Without ego poses the ego is taken as standing
        still between sweeps.

        Args:
            sweeps: sweeps per frame, counting the key sweep (>= 1).
            keys: only these keys are computed (the others are skipped cheaply); default all.
            window: the causal age limits (its ``count`` is replaced by ``sweeps``); default
                :class:`~imkd_ros.core.sweeps.SweepWindow`, as the reader's.

        Raises:
            BagError: no LiDAR topic, a sweep without fields ``x y z intensity ring``, no static transform for its
                frame, a keyframe without a sweep in its window, or a read/deserialisation error.
        """
        if sweeps < 1:
            raise BagError(f"lidar_frames: sweeps must be >= 1, got {sweeps}")
        self._topics(["lidar"])
        wanted = None if keys is None else set(keys)
        if not self.has("sample_token"):
            recent: deque = deque(maxlen=sweeps)
            for m in self.messages(["lidar"]):
                key = str(m.stamp_ns)
                recent.append(m)
                if wanted is None or key in wanted:
                    yield key, m.stamp_ns, self._frame([self._sweep(x) for x in recent], m.stamp_ns, True)
            return
        win = replace(window or SweepWindow(), count=sweeps)
        recent: deque = deque(maxlen=sweeps + 1)  # BagMessages of the newest sweeps
        pending: deque[tuple[str, int]] = deque()

        def emit(final: bool) -> Iterator[tuple[str, int, np.ndarray]]:
            while pending:
                key, ref = pending[0]
                stamps = [m.stamp_ns for m in recent]
                if not final and (not stamps or stamps[-1] <= ref):
                    return  # a sweep at or before the stamp may still come
                pending.popleft()
                idx = select_sweeps(stamps, ref, win)
                if not idx:
                    raise BagError(
                        f"bag {self.path}: keyframe {key} ({ref}) has no LiDAR sweep on {self.topics.lidar} in the "
                        f"{win.max_delay} s before it"
                    )
                if wanted is None or key in wanted:
                    swept = [self._sweep(list(recent)[j]) for j in reversed(idx)]
                    yield key, ref, self._frame(swept, ref, False)

        for m in self.messages(["lidar", "sample_token"]):
            if m.topic == self.topics.sample_token:
                pending.append((str(m.msg.data), m.log_ns))
            else:
                recent.append(m)
            yield from emit(False)
        yield from emit(True)
