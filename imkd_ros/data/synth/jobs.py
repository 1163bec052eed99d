"""The synthetic dataset's unit of work: one keyframe interval of one scene, all channels.

A job renders and writes every sweep of its interval (camera JPEG, radar PCD, LiDAR ``.pcd.bin``) and annotates the
interval's keyframe; it is a pure function of its :class:`IntervalJob`, so jobs run in any order, in any process, and
give bit-identical files. Every sensor call gets ``np.random.default_rng([scene seed, crc32(channel), sweep index])``.

Annotation rule: at the sample time (the LiDAR keyframe) an actor gets an annotation if at least one point of the
keyframe LIDAR_TOP or RADAR_FRONT file lies in its box, counted exactly as the devkit counts
(:func:`count_points_in_boxes`); ``visibility`` bins the LiDAR's visible fraction of the actor.
"""

from __future__ import annotations

import functools
import multiprocessing
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

from imkd_ros.core.transforms import yaw_to_quat
from imkd_ros.data.pcd import (
    RADAR_AMBIG_STATES,
    RADAR_DYNPROP_STATES,
    RADAR_INVALID_STATES,
    write_lidar_bin,
    write_radar_pcd,
)
from imkd_ros.data.synth.camera import render_camera
from imkd_ros.data.synth.lidar import lidar_sweep
from imkd_ros.data.synth.radar import radar_sweep
from imkd_ros.data.synth.rig import KEYFRAME_HZ, RIGS, SynthRig
from imkd_ros.data.synth.schedule import SceneSchedule, scene_duration, scene_schedule
from imkd_ros.data.synth.tables import calibrated_sensor_record, pose_fields, visibility_token
from imkd_ros.data.synth.world import Scenario, make_scenario

__all__ = [
    "CHANNELS",
    "file_extension",
    "JPEG_QUALITY",
    "SceneSpec",
    "IntervalJob",
    "SweepRecord",
    "AnnotationRecord",
    "JobResult",
    "scenario_of",
    "schedule_of",
    "sensor_rng",
    "count_points_in_boxes",
    "encode_jpeg",
    "run_job",
    "run_jobs",
]

#: Channels of the default (``front``) rig, in table order.
CHANNELS: tuple[str, ...] = RIGS["front"].channels
#: cv2 JPEG quality of the camera images.
JPEG_QUALITY = 90


def file_extension(channel: str) -> str:
    """File name ending of a channel's files: cameras ``.jpg``, radars ``.pcd``, the LiDAR ``.pcd.bin``."""
    return ".jpg" if channel.startswith("CAM") else ".pcd" if channel.startswith("RADAR") else ".pcd.bin"


@dataclass(frozen=True)
class SceneSpec:
    """What defines one scene's content: dataset seed, scene index, weather, keyframe count, camera sweeps on/off."""

    seed: int
    index: int
    weather: str
    samples: int
    camera_sweeps: bool
    rig: str = "front"

    @property
    def key(self) -> str:
        """Identity of the scene's content: the root of all its tokens (the ``front`` rig's keys are those of the
        datasets written before there were rigs)."""
        base = f"imkd-synth/{self.seed}/{self.index}/{self.weather}/{self.samples}"
        return base if self.rig == "front" else f"{base}/{self.rig}"

    @property
    def sensors(self) -> SynthRig:
        return RIGS[self.rig]

    @property
    def logfile(self) -> str:
        """The scene's log name, the prefix of its file names (unique per content, like nuScenes' logs)."""
        return f"synth-s{self.seed}-n{self.samples}-{self.weather}-{self.index:04d}"


@dataclass(frozen=True)
class IntervalJob:
    """Keyframe interval ``interval`` (its sweeps and its keyframe) of one scene, written under ``root``;
    ``annotate=False`` (a scene written without annotations) skips the keyframe's annotation. The files do not
    depend on it."""

    root: str
    scene: SceneSpec
    interval: int
    annotate: bool = True


@dataclass(frozen=True)
class SweepRecord:
    """One written sensor file: channel, timestamp (us), path relative to the dataroot, keyframe flag, and the ego
    pose (ego -> global) at that timestamp as ``translation`` / ``rotation`` lists."""

    channel: str
    timestamp: int
    filename: str
    is_key_frame: bool
    ego: dict[str, list[float]]


@dataclass(frozen=True)
class AnnotationRecord:
    """One actor at one keyframe: world instance id (``"inst-<n>"``), class label, attribute (None: none), global
    box (``translation``, ``size`` (w, l, h), ``rotation`` (w, x, y, z)), visibility token and point counts."""

    instance: str
    label: int
    attribute: str | None
    translation: list[float]
    size: list[float]
    rotation: list[float]
    visibility: str
    num_lidar_pts: int
    num_radar_pts: int


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_job` wrote: the sweeps of every channel in chain order, and the keyframe's annotations."""

    sweeps: list[SweepRecord]
    annotations: list[AnnotationRecord]


@functools.lru_cache(maxsize=8)
def scenario_of(spec: SceneSpec) -> Scenario:
    """The scene's :class:`Scenario` (cached per process)."""
    return make_scenario(spec.seed, spec.index, spec.weather, scene_duration(spec.samples, KEYFRAME_HZ))


@functools.lru_cache(maxsize=8)
def schedule_of(spec: SceneSpec) -> SceneSchedule:
    """The scene's sensor timing (radar phase from the scene seed; cached per process)."""
    scn = scenario_of(spec)
    radar_phase = (scn.seed % 1000) / 1000.0
    rig = spec.sensors
    return scene_schedule(spec.samples, dict(rig.rates_hz), KEYFRAME_HZ, radar_phase, spec.camera_sweeps,
                          camera_delay_us=dict(rig.camera_delay_us))  # fmt: skip


def sensor_rng(scn: Scenario, channel: str, sweep: int) -> np.random.Generator:
    """The generator handed to the sensor of ``channel`` for its ``sweep``-th sweep of the scene (index into its
    :class:`imkd_ros.data.synth.schedule.ChannelSchedule`): seeded by (scene seed, crc32 of the channel, sweep)."""
    return np.random.default_rng([scn.seed, zlib.crc32(channel.encode("ascii")), sweep])


def _filename(spec: SceneSpec, channel: str, timestamp: int, key: bool) -> str:
    folder = "samples" if key else "sweeps"
    return f"{folder}/{channel}/{spec.logfile}__{channel}__{timestamp}{file_extension(channel)}"


def count_points_in_boxes(
    path: str | PathLike[str],
    calibrated_sensor: dict,
    ego_pose: dict,
    boxes: Sequence[dict],
) -> np.ndarray:
    """Points of a LiDAR ``.pcd.bin`` or radar ``.pcd`` file inside each box, exactly as the devkit counts them.

    The file is read with the devkit's own reader (``LidarPointCloud.from_file``, or ``RadarPointCloud.from_file``
    with the default filters passed explicitly), rotated and translated by ``calibrated_sensor`` (sensor -> ego) and
    then by ``ego_pose`` (ego -> global), and tested with ``nuscenes.utils.geometry_utils.points_in_box`` against a
    devkit ``Box(translation, size, Quaternion(rotation))`` -- the steps a devkit user takes, on the same numbers
    as the JSON tables hold, so the counts agree bit for bit (points on a box face included).

    Args:
        path: the sensor file.
        calibrated_sensor, ego_pose: records (or dicts) with ``translation`` ``[x, y, z]`` and ``rotation``
            ``[w, x, y, z]``.
        boxes: dicts with ``translation``, ``size`` ``[w, l, h]`` and ``rotation`` (global frame).

    Returns:
        ``(len(boxes),)`` int64 counts.
    """
    from nuscenes.utils.data_classes import Box, LidarPointCloud, RadarPointCloud
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    path = str(path)
    if path.endswith(".pcd.bin"):
        pc = LidarPointCloud.from_file(path)
    elif path.endswith(".pcd"):
        pc = RadarPointCloud.from_file(
            path,
            invalid_states=list(RADAR_INVALID_STATES),
            dynprop_states=list(RADAR_DYNPROP_STATES),
            ambig_states=list(RADAR_AMBIG_STATES),
        )
    else:
        raise ValueError(f"count_points_in_boxes: {path} is neither a LiDAR .pcd.bin nor a radar .pcd file")
    pc.rotate(Quaternion(calibrated_sensor["rotation"]).rotation_matrix)
    pc.translate(np.array(calibrated_sensor["translation"]))
    pc.rotate(Quaternion(ego_pose["rotation"]).rotation_matrix)
    pc.translate(np.array(ego_pose["translation"]))
    counts = np.zeros(len(boxes), dtype=np.int64)
    if pc.points.shape[1] == 0:
        return counts
    for i, b in enumerate(boxes):
        box = Box(b["translation"], b["size"], Quaternion(b["rotation"]))
        counts[i] = int(points_in_box(box, pc.points[:3, :]).sum())
    return counts


def encode_jpeg(rgb: np.ndarray, where: str) -> bytes:
    """JPEG bytes (quality :data:`JPEG_QUALITY`) of an ``(H, W, 3)`` uint8 RGB image; ``where`` names it in errors."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{where}: render_camera returned {rgb.dtype} {rgb.shape}, expected uint8 (H, W, 3)")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"{where}: cv2.imencode failed to encode the JPEG")
    return buf.tobytes()


def run_job(job: IntervalJob) -> JobResult:
    """Write every sweep of one keyframe interval of one scene, and annotate its keyframe (unless
    ``job.annotate`` is False: no annotations)."""
    spec, k, root = job.scene, job.interval, Path(job.root)
    scn = scenario_of(spec)
    sched = schedule_of(spec)
    sweeps: list[SweepRecord] = []
    keyframe: dict[str, SweepRecord] = {}
    visibility = None
    for channel, calib in spec.sensors.calibrations.items():
        chs = sched.channels[channel]
        key_index = int(chs.keyframes[k])
        for j in chs.sweeps_of(k):
            j = int(j)
            t_off = int(chs.offsets_us[j])
            t = t_off / 1e6
            ts = scn.start_us + t_off
            is_key = j == key_index
            rec = SweepRecord(channel, ts, _filename(spec, channel, ts, is_key), is_key, pose_fields(scn.ego_pose(t)))
            path = root / rec.filename
            rng = sensor_rng(scn, channel, j)
            where = f"{scn.name} {channel} t={t:.6f}s"
            if channel.startswith("CAM"):
                path.write_bytes(encode_jpeg(render_camera(scn, t, calib, rng), where))
            elif channel.startswith("RADAR"):
                write_radar_pcd(path, radar_sweep(scn, t, calib, rng))
            else:
                sweep = lidar_sweep(scn, t, calib, rng)
                write_lidar_bin(path, sweep.points)
                if is_key:
                    visibility = np.asarray(sweep.visibility, dtype=np.float64)
            sweeps.append(rec)
            if is_key:
                keyframe[channel] = rec
    annotations = _annotate(spec, scn, sched, k, root, keyframe, visibility) if job.annotate else []
    return JobResult(sweeps, annotations)


def _annotate(
    spec: SceneSpec,
    scn: Scenario,
    sched: SceneSchedule,
    k: int,
    root: Path,
    keyframe: dict[str, SweepRecord],
    visibility: np.ndarray | None,
) -> list[AnnotationRecord]:
    t = int(sched.sample_offsets_us[k]) / 1e6
    actors = scn.actors(t, "global")
    n = len(actors)
    if n == 0:
        return []
    if visibility is None or visibility.shape != (n,):
        got = None if visibility is None else visibility.shape
        raise ValueError(f"{scn.name} LIDAR_TOP t={t:.6f}s: visibility has shape {got}, expected ({n},)")
    b = actors.boxes
    boxes = [
        {
            "translation": [float(v) for v in b.center[i]],
            "size": [float(v) for v in b.size[i]],
            "rotation": [float(v) for v in yaw_to_quat(float(b.yaw[i]))],
        }
        for i in range(n)
    ]
    counts = {}
    rig = spec.sensors
    for channel in ("LIDAR_TOP", *rig.radars):
        rec = keyframe[channel]
        cs = calibrated_sensor_record("", rig.calibrations[channel])
        counts[channel] = count_points_in_boxes(root / rec.filename, cs, rec.ego, boxes)
    radar_counts = np.sum([counts[r] for r in rig.radars], axis=0)  # every radar's, as nuScenes counts them
    out = []
    for i in range(n):
        n_lidar, n_radar = int(counts["LIDAR_TOP"][i]), int(radar_counts[i])
        if n_lidar + n_radar == 0:
            continue
        out.append(
            AnnotationRecord(
                instance=str(b.tokens[i]) if b.tokens is not None else f"inst-{i}",
                label=int(b.label[i]),
                attribute=actors.attribute[i],
                visibility=visibility_token(float(visibility[i])),
                num_lidar_pts=n_lidar,
                num_radar_pts=n_radar,
                **boxes[i],
            )
        )
    return out


def _init_worker() -> None:
    """Worker processes: one thread each for OpenCV and BLAS (the pool already uses every core)."""
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)


def run_jobs(jobs: list[IntervalJob], workers: int, progress: bool) -> list[JobResult]:
    """Run ``jobs`` in this process (``workers == 1``) or in a forkserver process pool; results in job order."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="imkd synth", unit="keyframe", disable=not progress)
    try:
        if workers == 1 or len(jobs) == 1:
            results = []
            with threadpool_limits(1):
                for job in jobs:
                    results.append(run_job(job))
                    bar.update(1)
            return results
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["imkd_ros.data.synth.jobs", "nuscenes.utils.data_classes"])
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker) as pool:
            results = []
            for res in pool.map(run_job, jobs):
                results.append(res)
                bar.update(1)
            return results
    finally:
        bar.close()
