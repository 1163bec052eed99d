"""Camera-radar time synchronisation for the detector node: keep-latest pairing plus a radar ring buffer.

Pure Python and numpy (no rclpy), so it is tested as plain functions with jittered, dropped, duplicated and
out-of-order streams. Stamps are integer nanoseconds (``builtin_interfaces/Time`` as ``sec * 10**9 + nanosec``).

The algorithm (:class:`CameraRadarSync`):

* **Radar ring buffers.** One per radar source, holding the newest ``capacity`` sweeps sorted by stamp. A sweep that
  arrives out of order is inserted at its place; one with a stamp already in the buffer is a duplicate and dropped.
* **Keep-latest camera slot.** There is one pending camera frame at most. A newer frame replaces it (the older one
  is dropped as superseded: under load the node works on the newest data, queues never grow). A frame not newer
  than the pending one or than the last frame emitted is dropped as out of order / duplicate.
* **Pairing (causal).** The pending frame (stamp ``t_c``) is emitted as soon as every radar source has a sweep
  stamped in ``[t_c - max_delay, t_c]``; per source the newest such sweep is the *key sweep*, with up to
  ``sweeps - 1`` earlier sweeps no older than ``max_sweep_age`` (:func:`imkd_ros.core.sweeps.select_sweeps`, the same
  selection the dataset reader uses for training and evaluation). A sweep stamped after the camera is never used:
  a camera frame normally arrives after the sweeps before it, so it pairs at once (no waiting); ``max_delay``
  should exceed one radar period. If a source's buffer already holds a sweep newer than ``t_c + max_delay`` but
  none in the window, the frame can never be paired and is dropped (``no radar``). Sweeps stay in the buffer
  (they serve several camera frames).
* **Camera sets** (a rig of several cameras, ``cameras``): the first camera is the *reference*; its frames take
  the keep-latest slot above and set the set's stamp (the model's reference time, as the dataset reader's first
  camera). Every other camera keeps its few newest frames; a set takes, per other camera, its frame stamped within
  ``[t_c - camera_lead, t_c + camera_window]`` nearest to ``t_c`` (nuScenes exposes the six cameras of a sample
  one after the other as the LiDAR turns: up to 42 ms after CAM_FRONT; list first the camera exposed first). The set
  is emitted when every camera and every radar source is there; frames a set used, and older ones, are forgotten.
  A camera whose newest frame is already past the window without one in it misses the set: the reference frame is
  dropped (``missing_camera``, naming the camera) rather than published with a blind sector, which the model was
  never trained on and which would read as "no object there".
* **Time going backwards** (a bag played in a loop, a restarted simulation): a camera frame or radar sweep more
  than ``reset_after`` older than the newest stamp seen resets everything (buffers, pending frame, last emitted
  stamp). That message is dropped, the next ones start the new timeline.

Unlike message_filters' ApproximateTime, one late or lost radar sweep never drops a whole set: the frame pairs
with the sweep that is there, and a lost camera frame costs only itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from imkd_ros.core.geometry import pose_at
from imkd_ros.core.sweeps import SweepWindow, select_sweeps
from imkd_ros.core.transforms import Pose

__all__ = [
    "NS_PER_S",
    "Sweep",
    "SyncedSet",
    "SyncEvent",
    "CameraRadarSync",
    "PoseBuffer",
]

NS_PER_S = 1_000_000_000

#: Frames kept per camera other than the reference one (a few camera periods).
_VIEWS_KEPT = 4

T = TypeVar("T")


@dataclass(frozen=True)
class Sweep(Generic[T]):
    """One radar sweep in a ring buffer: its stamp (ns) and payload (e.g. the ``(N, 6)`` points)."""

    stamp: int
    data: T


@dataclass(frozen=True)
class SyncedSet:
    """A camera frame paired with radar sweeps.

    Attributes:
        stamp: the reference camera frame's stamp (ns); the output header's stamp.
        camera: the reference camera's payload as given to :meth:`CameraRadarSync.add_camera`.
        radar: source name -> sweeps, newest (the key sweep) first, at most ``sweeps`` each.
        cameras: camera name -> its frame in the set (the reference camera's included), in ``cameras`` order.
    """

    stamp: int
    camera: Any
    radar: dict[str, list[Sweep]]
    cameras: dict[str, Sweep] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncEvent:
    """Something the synchroniser dropped or reset, for the node to log.

    Attributes:
        kind: ``"superseded"``, ``"out_of_order"``, ``"duplicate"``, ``"no_radar"``, ``"missing_camera"``,
            ``"time_reset"``, ``"stale_radar"``, ``"unknown_source"`` or ``"unknown_camera"``.
        stamp: the stamp of the message concerned (ns).
        text: a sentence naming the problem.
    """

    kind: str
    stamp: int
    text: str


@dataclass
class _Stats:
    emitted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class CameraRadarSync:
    """Keep-latest camera-radar pairing with per-source radar ring buffers (see the module docstring).

    Args:
        sources: radar source names (at least one).
        max_delay: largest ``t_camera - t_radar`` of a key sweep, seconds (> 0); the key sweep is never newer
            than the camera.
        sweeps: sweeps per source in a set, counting the key sweep (>= 1).
        max_sweep_age: largest ``t_camera - t_sweep`` of an accumulated earlier sweep, seconds.
        capacity: sweeps kept per source (default ``sweeps + 8``).
        reset_after: a stamp this much older than the newest seen resets the state, seconds.
        cameras: camera names, the reference camera first (default: one camera, ``"camera"``).
        camera_lead: how much earlier than the reference frame another camera's frame of its set may be stamped, s.
        camera_window: how much later than the reference frame another camera's frame of its set may be stamped, s.

    Raises:
        ValueError: a bad argument (named in the message).
    """

    def __init__(
        self,
        sources: Sequence[str],
        *,
        max_delay: float = 0.1,
        sweeps: int = 6,
        max_sweep_age: float = 0.6,
        capacity: int | None = None,
        reset_after: float = 1.0,
        cameras: Sequence[str] = ("camera",),
        camera_lead: float = 0.01,
        camera_window: float = 0.06,
    ) -> None:
        sources, cameras = tuple(sources), tuple(cameras)
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"CameraRadarSync: cameras must be unique and non-empty, got {cameras}")
        if camera_lead < 0 or camera_window < 0:
            raise ValueError(
                f"CameraRadarSync: camera_lead ({camera_lead}) and camera_window ({camera_window}) must be >= 0"
            )
        if not sources or len(set(sources)) != len(sources):
            raise ValueError(f"CameraRadarSync: radar sources must be unique and non-empty, got {sources}")
        if max_delay <= 0 or max_sweep_age < 0 or reset_after <= 0:
            raise ValueError(
                f"CameraRadarSync: max_delay ({max_delay}) and reset_after ({reset_after}) must be > 0, "
                f"max_sweep_age ({max_sweep_age}) >= 0"
            )
        if sweeps < 1:
            raise ValueError(f"CameraRadarSync: sweeps must be >= 1, got {sweeps}")
        self.sources = sources
        self.cameras = cameras
        self.camera_lead_ns = int(round(camera_lead * NS_PER_S))
        self.camera_window_ns = int(round(camera_window * NS_PER_S))
        self.max_delay_ns = int(round(max_delay * NS_PER_S))
        self.sweeps = int(sweeps)
        self.max_sweep_age_ns = int(round(max_sweep_age * NS_PER_S))
        self.capacity = int(capacity if capacity is not None else sweeps + 8)
        if self.capacity < self.sweeps:
            raise ValueError(f"CameraRadarSync: capacity {self.capacity} < sweeps {self.sweeps}")
        self.reset_after_ns = int(round(reset_after * NS_PER_S))
        self.window = SweepWindow(self.sweeps, max_delay, max_sweep_age)
        self.stats = _Stats()
        self.reset()

    # -- state -------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all sweeps, the pending frame and the last emitted stamp (not the statistics)."""
        self._stamps: dict[str, list[int]] = {s: [] for s in self.sources}
        self._data: dict[str, list[Any]] = {s: [] for s in self.sources}
        self._views: dict[str, list[Sweep]] = {c: [] for c in self.cameras[1:]}  # the other cameras' frames
        self._pending: tuple[int, Any] | None = None
        self._last_emitted: int | None = None
        self._newest: int | None = None

    @property
    def pending_stamp(self) -> int | None:
        """Stamp of the camera frame waiting for radar, or None."""
        return None if self._pending is None else self._pending[0]

    def buffered(self, source: str) -> list[int]:
        """Stamps (ns) of the sweeps buffered for ``source``, oldest first."""
        return list(self._stamps[source])

    def _drop(self, kind: str, stamp: int, text: str, events: list[SyncEvent]) -> None:
        self.stats.dropped[kind] = self.stats.dropped.get(kind, 0) + 1
        events.append(SyncEvent(kind, stamp, text))

    def _check_time(self, stamp: int, what: str, events: list[SyncEvent]) -> bool:
        """False (and a reset) when ``stamp`` jumps back by more than ``reset_after``."""
        if self._newest is not None and self._newest - stamp > self.reset_after_ns:
            back = (self._newest - stamp) / NS_PER_S
            self.reset()
            self._drop(
                "time_reset",
                stamp,
                f"{what} stamp {stamp / NS_PER_S:.3f} s is {back:.3f} s older than the newest seen (bag loop or "
                "restart?): time went backwards; state reset, message dropped",
                events,
            )
            return False
        self._newest = stamp if self._newest is None else max(self._newest, stamp)
        return True

    # -- input -------------------------------------------------------------------------------------------------
    def add_radar(self, source: str, stamp: int, data: Any) -> tuple[SyncedSet | None, list[SyncEvent]]:
        """Buffer a sweep of ``source``; returns the set it completes (or None) and what was dropped."""
        events: list[SyncEvent] = []
        stamp = int(stamp)
        if source not in self._stamps:
            self._drop("unknown_source", stamp, f"radar source {source!r} is not one of {self.sources}", events)
            return None, events
        if not self._check_time(stamp, f"radar {source}", events):
            return None, events
        stamps, data_list = self._stamps[source], self._data[source]
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp:
            text = f"radar {source}: a sweep with stamp {stamp / NS_PER_S:.3f} s is already buffered (duplicate)"
            self._drop("duplicate", stamp, text, events)
            return None, events
        if len(stamps) >= self.capacity and i == 0:
            text = (
                f"radar {source}: sweep {stamp / NS_PER_S:.3f} s is older than all {len(stamps)} buffered sweeps "
                "(arrived too late)"
            )
            self._drop("stale_radar", stamp, text, events)
            return None, events
        stamps.insert(i, stamp)
        data_list.insert(i, data)
        while len(stamps) > self.capacity:
            stamps.pop(0)
            data_list.pop(0)
        return self._try_emit(events), events

    def add_camera(self, stamp: int, data: Any, camera: str | None = None) -> tuple[SyncedSet | None, list[SyncEvent]]:
        """Offer a frame of ``camera`` (default: the reference camera); returns the set it completes (or None) and
        what was dropped."""
        events: list[SyncEvent] = []
        stamp = int(stamp)
        if camera is not None and camera != self.cameras[0]:
            return self._add_view(camera, stamp, data, events)
        if not self._check_time(stamp, "camera", events):
            return None, events
        if self._last_emitted is not None and stamp <= self._last_emitted:
            kind = "duplicate" if stamp == self._last_emitted else "out_of_order"
            text = (
                f"camera frame {stamp / NS_PER_S:.3f} s is not newer than the last one processed "
                f"({self._last_emitted / NS_PER_S:.3f} s): {kind.replace('_', ' ')}"
            )
            self._drop(kind, stamp, text, events)
            return None, events
        if self._pending is not None:
            old = self._pending[0]
            if stamp <= old:
                kind = "duplicate" if stamp == old else "out_of_order"
                text = (
                    f"camera frame {stamp / NS_PER_S:.3f} s is not newer than the waiting one "
                    f"({old / NS_PER_S:.3f} s): {kind.replace('_', ' ')}"
                )
                self._drop(kind, stamp, text, events)
                return None, events
            # a set still short of a camera when the next reference frame comes lost that camera's frame
            cams = [c for c in self.cameras[1:] if self._view_of(c, old) is None]
            kind = "missing_camera" if cams else "superseded"
            text = f"camera frame {old / NS_PER_S:.3f} s got no {self._missing(old, cams)} before a newer frame came: "
            text += "dropped (a set is published with every camera or not at all)" if kind != "superseded" else kind
            self._drop(kind, old, text, events)
        self._pending = (stamp, data)
        return self._try_emit(events), events

    def _add_view(self, camera: str, stamp: int, data: Any, events: list[SyncEvent]) -> tuple[SyncedSet | None, list]:
        """A frame of a camera other than the reference one: buffered by stamp (the newest few)."""
        if camera not in self._views:
            self._drop("unknown_camera", stamp, f"camera {camera!r} is not one of {self.cameras}", events)
            return None, events
        if not self._check_time(stamp, f"camera {camera}", events):
            return None, events
        frames = self._views[camera]
        stamps = [f.stamp for f in frames]
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp:
            text = f"camera {camera}: a frame with stamp {stamp / NS_PER_S:.3f} s is already buffered (duplicate)"
            self._drop("duplicate", stamp, text, events)
            return None, events
        frames.insert(i, Sweep(stamp, data))
        del frames[: max(0, len(frames) - _VIEWS_KEPT)]
        return self._try_emit(events), events

    # -- pairing -----------------------------------------------------------------------------------------------
    def _view_of(self, camera: str, t_c: int) -> Sweep | None:
        """``camera``'s frame for the set of reference stamp ``t_c``: the one nearest ``t_c`` in the window."""
        lo, hi = t_c - self.camera_lead_ns, t_c + self.camera_window_ns
        fits = [f for f in self._views[camera] if lo <= f.stamp <= hi]
        return min(fits, key=lambda f: (abs(f.stamp - t_c), f.stamp)) if fits else None

    def _missing(self, t_c: int, cams: list[str]) -> str:
        """What the set of reference stamp ``t_c`` still lacks, in words (``cams``: its cameras without a frame)."""
        radars = [s for s in self.sources if not select_sweeps(self._stamps[s], t_c, self.window)]
        parts = []
        if cams:
            parts.append(f"frame of camera {', '.join(cams)}")
        if radars:
            parts.append(f"radar {', '.join(radars)} within {self.max_delay_ns / 1e6:.0f} ms")
        return " and ".join(parts) or "partner"

    def _try_emit(self, events: list[SyncEvent]) -> SyncedSet | None:
        if self._pending is None:
            return None
        t_c, camera = self._pending
        views: dict[str, Sweep] = {self.cameras[0]: Sweep(t_c, camera)}
        for name in self.cameras[1:]:
            view = self._view_of(name, t_c)
            if view is None:
                frames = self._views[name]
                if frames and frames[-1].stamp > t_c + self.camera_window_ns:
                    self._pending = None
                    text = (
                        f"camera frame {t_c / NS_PER_S:.3f} s: camera {name} has no frame from "
                        f"{self.camera_lead_ns / 1e6:.0f} ms before to {self.camera_window_ns / 1e6:.0f} ms after it; "
                        "dropped (a set is published with every camera or not at all)"
                    )
                    self._drop("missing_camera", t_c, text, events)
                return None
            views[name] = view
        chosen: dict[str, list[int]] = {}
        for source in self.sources:
            idx = select_sweeps(self._stamps[source], t_c, self.window)
            if not idx:
                stamps = self._stamps[source]
                if stamps and stamps[-1] > t_c + self.max_delay_ns:
                    self._pending = None
                    text = (
                        f"camera frame {t_c / NS_PER_S:.3f} s: no sweep of radar {source} in the "
                        f"{self.max_delay_ns / 1e6:.0f} ms before it (max camera-radar delay); dropped"
                    )
                    self._drop("no_radar", t_c, text, events)
                return None
            chosen[source] = idx
        radar = {
            source: [Sweep(self._stamps[source][j], self._data[source][j]) for j in idx]
            for source, idx in chosen.items()
        }
        for name, view in views.items():
            if name in self._views:  # a frame used, and the ones before it, serve no later set
                self._views[name] = [f for f in self._views[name] if f.stamp > view.stamp]
        self._pending = None
        self._last_emitted = t_c
        self.stats.emitted += 1
        return SyncedSet(t_c, camera, radar, views)


# ------------------------------------------------------------------------------------------------------ ego poses


class PoseBuffer:
    """Ego poses (``base_link`` -> a fixed frame) by stamp, for moving earlier radar sweeps into the camera frame's
    ego frame.

    Args:
        capacity: poses kept (newest).
        max_gap: a lookup between two poses further apart than this (s), or outside the buffer by more than
            ``tolerance``, finds nothing.
        tolerance: a lookup this close (s) to the first/last pose returns that pose.
    """

    def __init__(self, capacity: int = 256, max_gap: float = 0.5, tolerance: float = 0.02) -> None:
        if capacity < 1:
            raise ValueError(f"PoseBuffer: capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.max_gap_ns = int(round(max_gap * NS_PER_S))
        self.tolerance_ns = int(round(tolerance * NS_PER_S))
        self.clear()

    def clear(self) -> None:
        self._stamps: list[int] = []
        self._poses: list[Pose] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp: int, pose: Pose) -> None:
        """Insert (or replace, for an equal stamp) a pose; the oldest beyond ``capacity`` are forgotten."""
        stamp = int(stamp)
        i = bisect.bisect_left(self._stamps, stamp)
        if i < len(self._stamps) and self._stamps[i] == stamp:
            self._poses[i] = pose
            return
        self._stamps.insert(i, stamp)
        self._poses.insert(i, pose)
        while len(self._stamps) > self.capacity:
            self._stamps.pop(0)
            self._poses.pop(0)

    def lookup(self, stamp: int) -> Pose | None:
        """The pose at ``stamp`` (exact, interpolated, or the nearest end within ``tolerance``), else None
        (:func:`imkd_ros.core.geometry.pose_at`)."""
        return pose_at(self._stamps, self._poses, stamp, max_gap_ns=self.max_gap_ns, end_tolerance_ns=self.tolerance_ns)
