"""When each synthetic sensor fires: sweep timestamps, keyframes and keyframe intervals of one scene.

Times are integer microseconds since the scene start (``Scenario.start_us``). Samples (keyframes) come at
``keyframe_hz`` (2 Hz); the LiDAR is the reference, as in nuScenes: sample ``k``'s timestamp is the ``k``-th LiDAR
keyframe, ``(k + 1) * P - 1 / lidar_hz`` with ``P = 1 / keyframe_hz`` (so ``lidar_hz / keyframe_hz - 1`` LiDAR sweeps
precede the first keyframe and the first keyframe has a full history). The camera fires at its own rate, phased so
that one frame lands ``camera_delay_us`` after each LiDAR keyframe (nuScenes cameras expose a few ms after the LiDAR
sweeps past them); that frame is the camera keyframe. The radar runs free at its rate with a per-scene phase; its
keyframe is the sweep nearest to the LiDAR keyframe. Every channel's chain starts at ``t >= 0`` and ends at its last
keyframe.

Keyframe interval ``k`` of a channel holds its sweeps after keyframe ``k - 1`` up to and including keyframe ``k``; the
writer makes one job of each interval (all channels), and a sweep's ``sample_token`` is its interval's sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CAMERA_DELAY_US", "ChannelSchedule", "SceneSchedule", "scene_schedule", "scene_duration"]

#: Camera keyframe lag behind the LiDAR keyframe (microseconds).
CAMERA_DELAY_US = 8_000


@dataclass(frozen=True)
class ChannelSchedule:
    """The sweeps of one channel in one scene.

    Attributes:
        channel: sensor channel name.
        offsets_us: ``(n,)`` int64, sweep times in microseconds since the scene start, strictly increasing.
        keyframes: ``(samples,)`` int64, index into ``offsets_us`` of each sample's keyframe.
        interval: ``(n,)`` int64, the keyframe interval (sample index) each sweep belongs to.
    """

    channel: str
    offsets_us: np.ndarray
    keyframes: np.ndarray
    interval: np.ndarray

    def sweeps_of(self, k: int) -> np.ndarray:
        """Indices ``(m,)`` of the sweeps in keyframe interval ``k`` (the last one is keyframe ``k``)."""
        return np.flatnonzero(self.interval == k)


@dataclass(frozen=True)
class SceneSchedule:
    """All channels' sweeps of one scene.

    Attributes:
        sample_offsets_us: ``(samples,)`` int64, sample (LiDAR keyframe) times since the scene start.
        channels: channel name -> :class:`ChannelSchedule`.
    """

    sample_offsets_us: np.ndarray
    channels: dict[str, ChannelSchedule]


def scene_duration(samples: int, keyframe_hz: float) -> float:
    """Scene length (s) that covers ``samples`` keyframe intervals: every sweep of the scene lies before it."""
    return samples / keyframe_hz


def _channel(
    channel: str, rate_hz: float, phase_us: float, targets_us: np.ndarray, sweeps: bool, exact: bool
) -> ChannelSchedule:
    step = 1e6 / rate_hz
    if not sweeps:
        offsets = targets_us.astype(np.int64)
        keyframes = np.arange(len(offsets), dtype=np.int64)
    else:
        n = int(np.floor((targets_us[-1] + step - phase_us) / step)) + 1
        offsets = np.round(phase_us + np.arange(n) * step).astype(np.int64)
        keyframes = np.abs(offsets[None, :] - targets_us[:, None]).argmin(axis=1).astype(np.int64)
        if exact and not np.array_equal(offsets[keyframes], targets_us):
            raise AssertionError(f"{channel}: keyframes do not fall on sweeps ({offsets[keyframes]} vs {targets_us})")
        if np.any(np.diff(keyframes) <= 0):
            raise ValueError(f"{channel}: {rate_hz} Hz is too slow for distinct keyframes")
        offsets = offsets[: keyframes[-1] + 1]
    interval = np.searchsorted(keyframes, np.arange(len(offsets)), side="left").astype(np.int64)
    return ChannelSchedule(channel, offsets, keyframes, interval)


def scene_schedule(
    samples: int,
    rates_hz: dict[str, float],
    keyframe_hz: float,
    radar_phase: float,
    camera_sweeps: bool = True,
    reference: str = "LIDAR_TOP",
    camera_delay_us: dict[str, int] | None = None,
) -> SceneSchedule:
    """Sweep times of every channel of one scene (see the module docstring).

    Args:
        samples: number of keyframes (>= 1).
        rates_hz: channel -> sweep rate; channels named ``CAM_*`` are cameras, ``RADAR_*`` radars.
        keyframe_hz: sample rate (2 Hz in nuScenes); the reference rate must be a whole multiple of it.
        radar_phase: radar sweep phase as a fraction of its period, in [0, 1) (per scene).
        camera_sweeps: False writes camera keyframes only.
        reference: the channel whose keyframes define the samples.
        camera_delay_us: per camera, its exposure after the reference keyframe (default :data:`CAMERA_DELAY_US`).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if reference not in rates_hz:
        raise ValueError(f"reference channel {reference!r} not in rates {sorted(rates_hz)}")
    per = rates_hz[reference] / keyframe_hz
    if abs(per - round(per)) > 1e-9 or round(per) < 1:
        raise ValueError(f"{reference} rate {rates_hz[reference]} Hz is not a multiple of {keyframe_hz} Hz")
    period = 1e6 / keyframe_hz
    ref_step = 1e6 / rates_hz[reference]
    sample_offsets = np.round(period - ref_step + np.arange(samples) * period).astype(np.int64)
    channels: dict[str, ChannelSchedule] = {}
    for ch, rate in rates_hz.items():
        step = 1e6 / rate
        if ch == reference:
            channels[ch] = _channel(ch, rate, 0.0, sample_offsets, True, True)
        elif ch.startswith("CAM"):
            targets = sample_offsets + (camera_delay_us or {}).get(ch, CAMERA_DELAY_US)
            phase = float(targets[0]) % step
            exact = abs((period / step) - round(period / step)) < 1e-9
            channels[ch] = _channel(ch, rate, phase, targets, camera_sweeps, exact)
        else:
            channels[ch] = _channel(ch, rate, float(radar_phase) % 1.0 * step, sample_offsets, True, False)
    return SceneSchedule(sample_offsets, channels)
