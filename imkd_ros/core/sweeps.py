"""Which sensor sweeps make a frame, and how each is moved into the frame's ego frame: ONE implementation for the
dataset reader (training, ``imkd eval``, teacher targets), the bag pipelines and the nodes.

**Causal selection** (:func:`select_sweeps`, the default everywhere): a frame at reference time ``t_ref`` (the
camera stamp) uses the newest sweep stamped at or before ``t_ref`` and no older than ``max_delay`` (the *key
sweep*), then up to ``count - 1`` earlier sweeps no older than ``max_age``, newest first. A running node can only
have sweeps that arrived before the camera frame it answers, so this is the only selection that trains and
evaluates a model on what it is deployed on.

The **nuScenes convention** (:data:`NUSCENES`: the sensor's keyframe, i.e. the sweep nearest the LiDAR keyframe,
often 10-30 ms *after* the camera, and the sweeps before it) is kept as an explicit option of
:class:`imkd_ros.data.reader.NuScenesReader` for comparisons with published numbers. It is not deployable: a node
would have to wait for a future sweep.

**Moving a sweep** (:func:`radar_sweep_to_ref`, :func:`lidar_sweep_to_ref`): ``sensor -> ego(sweep time) ->
fixed frame -> ego(reference time)`` is one :class:`~imkd_ros.core.transforms.Pose` built by :func:`sweep_to_ref`
(without ego poses the ego is taken as standing still). Radar positions are then advanced by the rotated
ego-motion-compensated velocity times the lag, ``p' = p + v_comp * (t_ref - t_sweep)``, so moving objects line up
with the reference time; the lag is a feature column (``time_lag = max(lag, 0)``). Stamps are integer
nanoseconds; the lag in seconds is :func:`lag_seconds` (one arithmetic, so all callers get bit-equal points).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import LIDAR_FEATURES, RADAR_FEATURES

__all__ = [
    "CAUSAL",
    "NUSCENES",
    "SELECTIONS",
    "SweepWindow",
    "select_sweeps",
    "lag_seconds",
    "sweep_to_ref",
    "radar_sweep_to_ref",
    "lidar_sweep_to_ref",
]

#: Selection names: causal (deployable, the default) and the nuScenes keyframe convention (comparisons only).
CAUSAL = "causal"
NUSCENES = "nuscenes"
SELECTIONS: tuple[str, ...] = (CAUSAL, NUSCENES)

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class SweepWindow:
    """How many sweeps a frame takes and how old they may be.

    Attributes:
        count: sweeps per sensor, counting the key sweep (>= 1).
        max_delay: largest age (s) of the key sweep, ``t_ref - t_key`` (the node's ``max_camera_radar_delay``);
            it should exceed one sensor period.
        max_age: largest age (s) of any accumulated sweep (the node's ``max_sweep_age``).
    """

    count: int = 6
    max_delay: float = 0.1
    max_age: float = 0.6

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"SweepWindow.count must be >= 1, got {self.count}")
        if self.max_delay <= 0 or self.max_age < 0:
            raise ValueError(f"SweepWindow: max_delay ({self.max_delay}) must be > 0 and max_age ({self.max_age}) >= 0")

    @property
    def max_delay_ns(self) -> int:
        return int(round(self.max_delay * NS_PER_S))

    @property
    def max_age_ns(self) -> int:
        return int(round(self.max_age * NS_PER_S))


def select_sweeps(stamps: Sequence[int], t_ref: int, window: SweepWindow) -> list[int]:
    """Causal sweep selection (module docstring).

    Args:
        stamps: sweep stamps (ns) of one sensor, ascending.
        t_ref: the reference (camera) stamp, ns.
        window: count and age limits.

    Returns:
        Indices into ``stamps``, key sweep first then older ones; empty when no sweep lies in
        ``[t_ref - max_delay, t_ref]``.
    """
    k = bisect.bisect_right(stamps, t_ref) - 1
    if k < 0 or t_ref - stamps[k] > window.max_delay_ns:
        return []
    chosen = [k]
    j = k - 1
    while j >= 0 and len(chosen) < window.count and t_ref - stamps[j] <= window.max_age_ns:
        chosen.append(j)
        j -= 1
    return chosen


def lag_seconds(t_ref_ns: int, t_sweep_ns: int) -> float:
    """``t_ref - t_sweep`` in seconds from integer nanoseconds (one arithmetic for every caller)."""
    return (int(t_ref_ns) - int(t_sweep_ns)) * 1e-9


def sweep_to_ref(sensor_to_ego: Pose, sweep_ego_pose: Pose | None, ref_ego_pose: Pose | None) -> Pose:
    """``sensor -> ego(reference)`` of one sweep: ``ego(ref)^-1 @ ego(sweep) @ sensor_to_ego`` with both ego poses
    (ego -> fixed frame) known, else the mounting alone (the ego taken as standing still)."""
    if sweep_ego_pose is None or ref_ego_pose is None:
        return sensor_to_ego
    return ref_ego_pose.inverse() @ sweep_ego_pose @ sensor_to_ego


def radar_sweep_to_ref(points: np.ndarray, sensor_to_ref: Pose, lag_s: float) -> np.ndarray:
    """One radar sweep ``(N, 6)`` (sensor frame; columns x, y, z, rcs, vx_comp, vy_comp) -> ``(N, 7)`` float32
    :data:`~imkd_ros.core.types.RADAR_FEATURES` in the reference ego frame: positions moved by ``sensor_to_ref``,
    compensated velocity ``(vx, vy, 0)`` rotated alike, positions advanced by ``v * lag_s``,
    ``time_lag = max(lag_s, 0)``."""
    xyz = np.asarray(points[:, 0:3], dtype=np.float64)
    vel = sensor_to_ref.rotate(np.asarray(points[:, 4:6], dtype=np.float64))
    xyz = sensor_to_ref.apply(xyz)
    xyz[:, :2] += vel * lag_s
    out = np.empty((len(points), len(RADAR_FEATURES)), dtype=np.float32)
    out[:, 0:3] = xyz
    out[:, 3] = points[:, 3]
    out[:, 4:6] = vel
    out[:, 6] = max(lag_s, 0.0)
    return out


def lidar_sweep_to_ref(points: np.ndarray, sensor_to_ref: Pose, lag_s: float) -> np.ndarray:
    """One LiDAR sweep ``(N, 5)`` (sensor frame; x, y, z, intensity, ring) -> ``(N, 6)`` float32
    :data:`~imkd_ros.core.types.LIDAR_FEATURES` in the reference ego frame: positions moved by ``sensor_to_ref`` (in
    float64, not advanced: LiDAR has no velocity), intensity and ring kept, ``time_lag = max(lag_s, 0)``."""
    out = np.empty((len(points), len(LIDAR_FEATURES)), dtype=np.float32)
    out[:, 0:3] = sensor_to_ref.apply(np.asarray(points[:, :3], dtype=np.float64))
    out[:, 3:5] = points[:, 3:5]
    out[:, 5] = max(lag_s, 0.0)
    return out
