"""The detector node's ``/diagnostics``, computed without ROS: :class:`DiagnosticsMonitor` counts what happens and
:meth:`DiagnosticsMonitor.statuses` turns it into ``diagnostic_msgs/DiagnosticStatus`` contents (:class:`Status`),
which the node publishes as one ``DiagnosticArray`` per ``diagnostics_period`` (about 1 Hz).

Statuses (name ``"<node>: <component>"``, ``hardware_id`` the node name, as Autoware's detectors do):

* ``processing``: the longest processing time (callback + model + publishing, ms) of the frames finished since the
  last report (the last frame's when none finished): OK, WARN at ``processing_warn_ms``, ERROR at
  ``processing_error_ms``.
* ``input <topic>`` per input: OK while messages arrive; STALE before the first message; ERROR once none came for
  ``input_timeout`` seconds (the node cannot work without it). The optional ego pose is OK when never received and
  WARN when it stops.
* ``extrinsics``: the source of each sensor's mounting (tf or parameters) and its frame; OK when every sensor with a
  message has a mounting from tf (or from the parameters when ``extrinsics_source`` says so), WARN when one fell
  back to its parameters or is still waiting for tf.
* ``model``: backend, device, checkpoint; OK once loaded, ERROR otherwise.
* ``frames``: frames processed, frames dropped by the synchroniser (by reason), messages dropped as bad input (by
  reason), frames replaced while the model was busy; WARN when bad input arrived since the last report.

Pure Python (no rclpy); thread-safe (the executor and the model thread report into it).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OK", "WARN", "ERROR", "STALE", "LEVEL_NAMES", "Status", "DiagnosticsMonitor"]

#: ``diagnostic_msgs/DiagnosticStatus`` levels.
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


@dataclass(frozen=True)
class Status:
    """One ``DiagnosticStatus``: level, name, message, hardware_id and key-value pairs (strings)."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...] = ()

    def value(self, key: str) -> str | None:
        return dict(self.values).get(key)


@dataclass
class _Input:
    optional: bool
    last: float | None = None
    count: int = 0


@dataclass
class DiagnosticsMonitor:
    """What the node reports (module docstring).

    Args:
        node: the node's name (status names and ``hardware_id``).
        inputs: input topic -> optional (True for the ego pose).
        processing_warn_ms, processing_error_ms, input_timeout: thresholds (changeable at run time).
        clock: monotonic seconds.
    """

    node: str
    inputs: Mapping[str, bool] = field(default_factory=dict)
    processing_warn_ms: float = 200.0
    processing_error_ms: float = 1000.0
    input_timeout: float = 2.0
    clock: Callable[[], float] = time.monotonic
    model: dict[str, str] = field(default_factory=dict)
    _inputs: dict[str, _Input] = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._inputs = {name: _Input(bool(opt)) for name, opt in self.inputs.items()}
        self.frames_done = 0
        self.frames_replaced = 0
        self.sync_drops: Counter[str] = Counter()
        self.bad_input: Counter[str] = Counter()
        self._bad_at_report = 0
        self._window: list[float] = []
        self._last_ms: float | None = None
        self.model_loaded = False

    # -- reports (any thread) -------------------------------------------------------------------------------------
    def watch(self, name: str, optional: bool = False) -> None:
        """Report on input ``name`` from now on (STALE until its first message)."""
        with self._lock:
            self._inputs.setdefault(name, _Input(bool(optional)))

    def unwatch_all(self) -> None:
        """Forget the inputs (a deactivated node has none)."""
        with self._lock:
            self._inputs.clear()

    def received(self, name: str) -> None:
        """A message arrived on input ``name``."""
        with self._lock:
            rec = self._inputs.setdefault(name, _Input(False))
            rec.last, rec.count = self.clock(), rec.count + 1

    def processed(self, processing_ms: float) -> None:
        with self._lock:
            self.frames_done += 1
            self._window.append(float(processing_ms))
            self._last_ms = float(processing_ms)

    def replaced(self) -> None:
        with self._lock:
            self.frames_replaced += 1

    def sync_dropped(self, kind: str) -> None:
        with self._lock:
            self.sync_drops[kind] += 1

    def bad(self, kind: str) -> None:
        with self._lock:
            self.bad_input[kind] += 1

    def set_model(self, loaded: bool, **info: Any) -> None:
        with self._lock:
            self.model_loaded = bool(loaded)
            self.model = {k: str(v) for k, v in info.items()}

    # -- the report (the diagnostics timer) ------------------------------------------------------------------------
    def statuses(self, extrinsics: Mapping[str, Any] | None = None, extrinsics_source: str = "auto") -> list[Status]:
        """The statuses now (module docstring); ``extrinsics``: sensor -> :class:`imkd_ros.pipeline.extrinsics.
        SensorExtrinsics` of the resolver. Starts a new processing-time window."""
        with self._lock:
            now = self.clock()
            out = [
                self._processing(),
                *self._input_statuses(now),
                self._extrinsics(extrinsics or {}, extrinsics_source),
            ]
            out += [self._model(), self._frames()]
            self._window = []
            self._bad_at_report = sum(self.bad_input.values())
        return out

    def _status(self, level: int, component: str, message: str, values: Sequence[tuple[str, Any]] = ()) -> Status:
        return Status(level, f"{self.node}: {component}", message, self.node, tuple((k, str(v)) for k, v in values))

    def _processing(self) -> Status:
        thresholds = [("warn_ms", self.processing_warn_ms), ("error_ms", self.processing_error_ms)]
        if self._last_ms is None:
            return self._status(OK, "processing", "no frame processed yet", thresholds)
        recent = bool(self._window)
        ms = max(self._window) if recent else self._last_ms
        values = [("max_ms" if recent else "last_ms", f"{ms:.1f}"), ("frames", len(self._window)), *thresholds]
        what = f"{ms:.1f} ms" + ("" if recent else " (last frame; none since the last report)")
        if ms >= self.processing_error_ms:
            return self._status(ERROR, "processing", f"{what} >= {self.processing_error_ms:g} ms", values)
        if ms >= self.processing_warn_ms:
            return self._status(WARN, "processing", f"{what} >= {self.processing_warn_ms:g} ms", values)
        return self._status(OK, "processing", what, values)

    def _input_statuses(self, now: float) -> list[Status]:
        out = []
        for name, rec in self._inputs.items():
            comp = f"input {name}"
            if rec.last is None:
                level = OK if rec.optional else STALE
                out.append(self._status(level, comp, "no message yet" + (" (optional)" if rec.optional else "")))
                continue
            age = now - rec.last
            values = [("age_s", f"{age:.2f}"), ("messages", rec.count), ("timeout_s", self.input_timeout)]
            if age > self.input_timeout:
                level = WARN if rec.optional else ERROR
                out.append(self._status(level, comp, f"no message for {age:.1f} s", values))
            else:
                out.append(self._status(OK, comp, f"last message {age:.2f} s ago", values))
        return out

    def _extrinsics(self, states: Mapping[str, Any], source: str) -> Status:
        values: list[tuple[str, Any]] = [("extrinsics_source", source)]
        level, parts = OK, []
        for sensor, st in sorted(states.items()):
            values += [(f"{sensor} frame", st.frame_id), (f"{sensor} source", st.source)]
            parts.append(f"{sensor}: {st.source}")
            if st.source == "waiting" or (st.source == "parameters" and source != "parameters"):
                level = WARN
                values.append((f"{sensor} detail", st.detail))
        if not states:
            return self._status(OK, "extrinsics", "no sensor message yet", values)
        return self._status(level, "extrinsics", ", ".join(parts), values)

    def _model(self) -> Status:
        values = sorted(self.model.items())
        if not self.model_loaded:
            return self._status(ERROR, "model", "not loaded", values)
        return self._status(
            OK, "model", f"loaded ({self.model.get('backend', '?')} on {self.model.get('device', '?')})", values
        )

    def _frames(self) -> Status:
        values: list[tuple[str, Any]] = [("processed", self.frames_done), ("replaced_while_busy", self.frames_replaced)]
        values += [(f"sync_dropped {k}", v) for k, v in sorted(self.sync_drops.items())]
        values += [(f"bad_input {k}", v) for k, v in sorted(self.bad_input.items())]
        sync, bad = sum(self.sync_drops.values()), sum(self.bad_input.values())
        new_bad = bad - self._bad_at_report
        message = f"{self.frames_done} processed, {sync} dropped by sync, {bad} messages dropped as bad input"
        values += [("sync_dropped", sync), ("bad_input", bad)]
        if new_bad > 0:
            return self._status(WARN, "frames", f"{message} ({new_bad} since the last report)", values)
        return self._status(OK, "frames", message, values)
