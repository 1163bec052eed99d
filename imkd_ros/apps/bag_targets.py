"""Teacher targets from a bag's LiDAR (``imkd bag teacher-targets``): the cache of :mod:`imkd_ros.distill.cache`,
written by the same loop as the dataset's (:func:`imkd_ros.distill.targets.fill_target_cache`), optionally also as
``imkd_msgs/msg/TeacherTargets`` messages in an output bag; and the TeacherTargets message <-> cache sample
conversion that :mod:`imkd_ros.nodes.teacher_node` uses too.

Frames come from :meth:`imkd_ros.bag.source.BagSource.lidar_frames`: for a bag exported from a dataset (it has the
sample-token topic) they are keyed by sample token and equal the dataset reader's frames bit for bit, so the cache
equals the one :func:`imkd_ros.distill.targets.build_target_cache` writes from the dataset (same keys, same shard
plan for the same samples, bit-identical float16 maps and boxes); other bags are keyed by LiDAR stamp.

Deterministic (eval-mode teacher, fixed order, byte-identical shards) and resumable: shards already written with
the same teacher, bag and settings are verified and kept. A truncated or corrupt bag raises
:class:`~imkd_ros.bag.errors.BagError` when the reading reaches the damage; the shards written before stay valid
and a rerun on a repaired bag reuses them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.bag.errors import BagError, check_output_bag
from imkd_ros.bag.source import BagSource
from imkd_ros.bag.topics import BagTopics
from imkd_ros.core.atomic import atomic_dir
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration, Frame
from imkd_ros.distill.cache import FORMAT_VERSION, CacheHeader, TargetCache, TargetGrid, TeacherTargets
from imkd_ros.distill.intensity import DEFAULT_SPEC, IntensitySpec

__all__ = [
    "TEACHER_TARGETS_TYPE",
    "BagTargetsReport",
    "lidar_frame",
    "targets_msg_fields",
    "targets_from_msg",
    "build_bag_target_cache",
    "write_targets_bag",
]

#: The message type of teacher targets in bags and on topics.
TEACHER_TARGETS_TYPE = "imkd_msgs/msg/TeacherTargets"

# collate_frames wants a camera; the teacher never looks at it
_NO_CAMERA = Calibration("NONE", Pose.identity(), np.eye(3), (1, 1))


def lidar_frame(key: str, stamp_ns: int, lidar: np.ndarray, config: Any) -> Frame:
    """A LiDAR-only :class:`Frame` for the teacher, cut to its grid as training does
    (:func:`imkd_ros.model.preprocess.shrink_frame`).

    Args:
        key: the frame's token (sample token or stamp).
        stamp_ns: the reference time (ns); ``Frame.timestamp`` is it in microseconds.
        lidar: ``(N, 6)`` float32 :data:`imkd_ros.core.types.LIDAR_FEATURES` in the ego frame at ``stamp_ns``.
        config: the teacher's :class:`imkd_ros.model.ModelConfig`.
    """
    from imkd_ros.model.preprocess import shrink_frame

    frame = Frame(
        token=key,
        timestamp=int(stamp_ns) // 1000,
        scene="",
        images=None,
        cameras=(_NO_CAMERA,),
        radar=np.zeros((0, 7), np.float32),
        lidar=np.asarray(lidar, dtype=np.float32),
        ego_pose=Pose.identity(),
    )
    return shrink_frame(frame, config)


def targets_msg_fields(t: TeacherTargets, header: CacheHeader) -> dict[str, Any]:
    """The fields of a ``TeacherTargets`` message (all but ``header``) for one sample: maps flattened row-major
    as float32, boxes ``(N * 9,)``. Works for rclpy's and rosbags' message classes alike
    (``cls(header=..., **fields)``)."""
    g = header.grid
    return {
        "sample_token": t.sample_token,
        "format_version": FORMAT_VERSION,
        "x_min": float(g.x_min),
        "x_max": float(g.x_max),
        "y_min": float(g.y_min),
        "y_max": float(g.y_max),
        "cell": float(g.cell),
        "height": int(g.height),
        "width": int(g.width),
        "intensity_names": list(header.intensity_names),
        "intensity": np.ascontiguousarray(t.intensity, dtype=np.float32).reshape(-1),
        "feature_channels": int(t.features.shape[0]),
        "features": np.ascontiguousarray(t.features, dtype=np.float32).reshape(-1),
        "class_names": list(header.class_names),
        "heatmap": np.ascontiguousarray(t.heatmap, dtype=np.float32).reshape(-1),
        "boxes": np.ascontiguousarray(t.boxes, dtype=np.float32).reshape(-1),
        "box_labels": np.ascontiguousarray(t.labels, dtype=np.int32).reshape(-1),
        "box_scores": np.ascontiguousarray(t.scores, dtype=np.float32).reshape(-1),
    }


def targets_from_msg(msg: Any) -> tuple[TeacherTargets, TargetGrid]:
    """A ``TeacherTargets`` message (rclpy or rosbags) -> the cache's :class:`TeacherTargets` (maps float32,
    ``timestamp`` = header stamp in microseconds) and its grid.

    Raises:
        BagError: another format version, or arrays whose lengths do not fit the grid.
    """
    where = f"TeacherTargets({msg.sample_token})"
    if int(msg.format_version) != FORMAT_VERSION:
        raise BagError(f"{where}: format version {msg.format_version}, this code reads {FORMAT_VERSION}")
    h, w, c = int(msg.height), int(msg.width), int(msg.feature_channels)
    grid = TargetGrid(float(msg.x_min), float(msg.x_max), float(msg.y_min), float(msg.y_max), float(msg.cell), h, w)

    def arr(name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        a = np.asarray(getattr(msg, name), dtype=dtype)
        if a.size != int(np.prod(shape)):
            raise BagError(f"{where}: {name} has {a.size} values, expected {shape}")
        return a.reshape(shape)

    k, n = len(msg.class_names), len(msg.box_labels)
    stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
    t = TeacherTargets(
        str(msg.sample_token),
        stamp // 1000,
        arr("features", np.float32, (c, h, w)),
        arr("intensity", np.float32, (len(msg.intensity_names), h, w)),
        arr("heatmap", np.float32, (k, h, w)),
        arr("boxes", np.float32, (n, 9)),
        arr("box_labels", np.int32, (n,)),
        arr("box_scores", np.float32, (n,)),
    )
    return t, grid


@dataclass(frozen=True)
class BagTargetsReport:
    """What :func:`build_bag_target_cache` did.

    Attributes:
        root: the cache folder.
        samples: samples in the cache; shards: shards in it.
        computed_shards, computed_samples: what the teacher ran for in this call.
        reused_shards: shards kept from an interrupted earlier build (checksums verified).
        bytes: bytes of all shards.
        seconds: wall time of this call.
        bag_seconds: the bag's duration (s).
        out_bag: the TeacherTargets bag written, if any.
    """

    root: Path
    samples: int
    shards: int
    computed_shards: int
    computed_samples: int
    reused_shards: int
    bytes: int
    seconds: float
    bag_seconds: float
    out_bag: Path | None = None

    @property
    def frames_per_s(self) -> float:
        """Samples computed per wall second of this call (bag reading, teacher and cache writing included)."""
        return self.computed_samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def x_realtime(self) -> float:
        """Bag seconds covered per wall second, counting the computed share of the samples."""
        share = self.computed_samples / self.samples if self.samples else 0.0
        return self.bag_seconds * share / self.seconds if self.seconds > 0 else 0.0


def _check_arguments(shard_size: int, batch_size: int, out_bag: str | PathLike[str] | None) -> None:
    """:func:`build_bag_target_cache`'s checks before the bag is opened."""
    from imkd_ros.distill.errors import TargetCacheError

    if shard_size < 1 or batch_size < 1:
        raise TargetCacheError(f"shard_size ({shard_size}) and batch_size ({batch_size}) must be >= 1")
    if out_bag is not None:
        check_output_bag(out_bag, "--out-bag")
    if out_bag is not None and Path(out_bag).exists():
        raise BagError(f"{out_bag} exists; a bag is never overwritten (choose another --out-bag)")


def _frame_keys(source: BagSource) -> list[str]:
    """The keys of the bag's LiDAR frames (:meth:`BagSource.keyframes`), in order.

    Raises:
        BagError: no frame, or a key twice.
    """
    topics = source.topics
    keys = [k for k, _ in source.keyframes()]
    if not keys:
        raise BagError(f"bag {source.path} has no LiDAR frames on {topics.lidar}")
    if len(set(keys)) != len(keys):
        raise BagError(f"bag {source.path}: a frame key appears twice on {topics.sample_token} or {topics.lidar}")
    return keys


def build_bag_target_cache(
    bag: str | PathLike[str],
    teacher_checkpoint: str | PathLike[str],
    out: str | PathLike[str],
    *,
    topics: BagTopics = BagTopics(),  # noqa: B008 - frozen dataclass
    shard_size: int = 32,
    batch_size: int = 4,
    spec: IntensitySpec = DEFAULT_SPEC,
    lidar_sweeps: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    debug_pngs: int = 2,
    progress: bool = True,
    out_bag: str | PathLike[str] | None = None,
    storage: str = "mcap",
) -> BagTargetsReport:
    """Write (or finish) the teacher-target cache of the bag's LiDAR frames under ``out`` (see the module
    docstring), and with ``out_bag`` also a bag of ``TeacherTargets`` messages on ``/teacher/targets``.

    Args:
        bag: the input bag (any ROS 2 bag with a LiDAR topic and ``tf_static`` for its frame).
        teacher_checkpoint: the LiDAR teacher.
        out: the cache folder (an interrupted build resumes).
        topics: the bag's topics.
        shard_size, batch_size, spec, lidar_sweeps, device, overwrite, debug_pngs, progress: as for
            :func:`imkd_ros.distill.targets.build_target_cache` (``lidar_sweeps`` as the reader's).
        out_bag: a new bag for the targets as messages (must not exist).
        storage: its storage, ``"mcap"`` or ``"sqlite3"``.

    Raises:
        BagError: the bag is missing, truncated or corrupt, or lacks the LiDAR; ``out_bag`` exists.
        CheckpointError, TargetCacheError: as :func:`~imkd_ros.distill.targets.build_target_cache`.
    """
    from imkd_ros.distill.cache import TargetCacheWriter
    from imkd_ros.distill.targets import fill_target_cache, load_teacher, target_header

    _check_arguments(shard_size, batch_size, out_bag)
    t0 = time.perf_counter()
    out = Path(out)
    source = BagSource(bag, topics, need=("lidar", "tf_static"))
    teacher = load_teacher(teacher_checkpoint, device)
    lidar_sweeps = teacher.config.lidar.sweeps if lidar_sweeps is None else int(lidar_sweeps)
    keys = _frame_keys(source)
    plan = [keys[i : i + shard_size] for i in range(0, len(keys), shard_size)]
    origin = {
        "bag": str(source.path.resolve()),
        "topics": {"lidar": topics.lidar, "sample_token": topics.sample_token if source.has("sample_token") else None},
        "lidar_sweeps": lidar_sweeps,
    }
    writer = TargetCacheWriter(
        out, target_header(teacher, teacher_checkpoint, spec, origin), plan, shard_size, overwrite=overwrite
    )
    wanted = {k for i in writer.pending() for k in plan[i]}

    def frames() -> Iterator[Frame]:
        for key, stamp, pts in source.lidar_frames(lidar_sweeps, keys=wanted):
            yield lidar_frame(key, stamp, pts, teacher.config)

    computed = fill_target_cache(
        writer, teacher, frames(), batch_size=batch_size, spec=spec, debug_pngs=debug_pngs, progress=progress
    )
    cache = TargetCache(out)
    seconds = time.perf_counter() - t0
    written = write_targets_bag(cache, out_bag, storage=storage) if out_bag is not None else None
    return BagTargetsReport(
        out,
        len(cache),
        len(plan),
        computed,
        len(wanted),
        len(plan) - computed,
        cache.nbytes(),
        seconds,
        source.duration_s,
        written,
    )


def write_targets_bag(
    cache: TargetCache,
    out_bag: str | PathLike[str],
    *,
    topic: str = "/teacher/targets",
    frame_id: str = "base_link",
    storage: str = "mcap",
    tokens: Sequence[str] | None = None,
) -> Path:
    """A new bag with one ``TeacherTargets`` message per cache sample (``tokens``, default all, in cache order),
    logged and stamped at the sample's reference time (``timestamp`` x 1000 ns: the stamp of the ego frame the maps
    are in), ``frame_id`` the ego frame.

    Raises:
        BagError: ``out_bag`` exists or unknown storage.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from imkd_ros.bag.convert import default_typestore, make_header

    out_bag = Path(out_bag)
    if out_bag.exists():
        raise BagError(f"{out_bag} exists; a bag is never overwritten")
    if storage not in ("mcap", "sqlite3"):
        raise BagError(f"unknown bag storage {storage!r}; choose from mcap, sqlite3")
    store = default_typestore()
    cls = store.types[TEACHER_TARGETS_TYPE]
    wanted = cache.tokens if tokens is None else list(tokens)
    samples = cache.load_all(wanted)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    # written beside out_bag and renamed when complete: a killed run leaves no half bag under its name
    with atomic_dir(out_bag) as inner, Writer(inner, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, TEACHER_TARGETS_TYPE, typestore=store)
        for token in sorted(wanted, key=lambda k: (samples[k].timestamp, k)):
            t = samples[token]
            stamp = int(t.timestamp) * 1000
            msg = cls(header=make_header(stamp, frame_id, store), **targets_msg_fields(t, cache.header))
            writer.write(conn, stamp, store.serialize_cdr(msg, TEACHER_TARGETS_TYPE))
    return out_bag
