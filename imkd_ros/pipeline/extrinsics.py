"""Where the detector node's sensor mountings (extrinsics) come from: tf first, the parameters as the fallback.

Pure Python (no rclpy). The node asks :meth:`ExtrinsicsResolver.mounting` for each sensor message with the
message's ``header.frame_id``; the answer is the transform ``frame_id -> output_frame`` (sensor -> ``base_link``)
or None (not known yet: the node drops the message with a throttled warning and waits).

Sources, by ``extrinsics_source`` (parameter):

* ``auto`` (default): tf (:class:`imkd_ros.pipeline.tf.TfBuffer`, fed from ``/tf_static`` and ``/tf``) takes precedence.
  When tf has no transform for a sensor's frame ``tf_wait`` seconds after that sensor's first message, the
  parameters (``camera_to_base``, ``radar_to_base.<name>``) are used, with one warning that says so; if tf later
  gets the transform, tf is used again (one info line).
* ``tf``: tf only; the node waits (throttled warning) until tf knows every sensor's frame.
* ``parameters``: the parameters only (tf is not consulted), as before tf support.

A mounting found in tf is cached per (sensor, frame) and looked up again only when the tree changed; if that fails
(a broken update: a loop, a frame re-parented away), the last good mounting stays in use and the failure is
reported, so one bad ``/tf`` message cannot stop the detector. Every change of source is queued as a sentence in
:attr:`ExtrinsicsResolver.notes` for the node to log; :meth:`ExtrinsicsResolver.states` feeds ``/diagnostics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from imkd_ros.core.transforms import Pose
from imkd_ros.pipeline.tf import TfBuffer, TfError

__all__ = ["EXTRINSICS_SOURCES", "SensorExtrinsics", "ExtrinsicsResolver"]

#: Values of the ``extrinsics_source`` parameter.
EXTRINSICS_SOURCES: tuple[str, ...] = ("auto", "tf", "parameters")


@dataclass
class SensorExtrinsics:
    """The state of one sensor (``"camera"``, ``"radar front"``): the frame of its latest message, the source in
    use (``"tf"``, ``"parameters"`` or ``"waiting"``), the mounting (None while waiting) and a sentence saying
    why."""

    sensor: str
    frame_id: str
    source: str
    pose: Pose | None
    detail: str


@dataclass
class _Entry:
    state: SensorExtrinsics
    first_seen: float
    tf_version: int = -1  # the buffer version of the last tf lookup


class ExtrinsicsResolver:
    """Sensor mountings from tf or the parameters (module docstring).

    Args:
        tf: the transform tree.
        output_frame: the frame the mountings map into (``output_frame``, ``base_link``).
        parameters: sensor name -> its mounting from the parameters (``"camera"``, ``"radar <name>"``).
        source: ``auto``, ``tf`` or ``parameters``.
        tf_wait: seconds (``auto``) after a sensor's first message before its parameters are used.
        clock: monotonic seconds (tests pass their own).

    Raises:
        ValueError: an unknown ``source`` or a negative ``tf_wait``.
    """

    def __init__(
        self,
        tf: TfBuffer,
        output_frame: str,
        parameters: Mapping[str, Pose],
        source: str = "auto",
        tf_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if source not in EXTRINSICS_SOURCES:
            raise ValueError(f"extrinsics_source must be one of {', '.join(EXTRINSICS_SOURCES)}, got {source!r}")
        if tf_wait < 0:
            raise ValueError(f"tf_wait must be >= 0, got {tf_wait}")
        self.tf, self.output_frame, self.source = tf, output_frame, source
        self.parameters = dict(parameters)
        self.tf_wait, self.clock = float(tf_wait), clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._latest: dict[str, tuple[str, str]] = {}  # sensor -> key of its latest message
        self.notes: list[str] = []

    def describe(self) -> str:
        """One sentence for the start-up log: which source is used and how."""
        frame = self.output_frame
        if self.source == "parameters":
            return "extrinsics: from the parameters camera_to_base / radar_to_base.<name> (extrinsics_source)"
        if self.source == "tf":
            return f"extrinsics: from tf (/tf_static, /tf) as {frame} <- each message's header.frame_id; no fallback"
        return (
            f"extrinsics: from tf (/tf_static, /tf) as {frame} <- each message's header.frame_id; a sensor whose frame"
            f" tf does not know {self.tf_wait:g} s after its first message falls back to its parameters"
        )

    def mounting(self, sensor: str, frame_id: str) -> Pose | None:
        """The mounting (sensor -> ``output_frame``) for a message of ``sensor`` in ``frame_id``, or None while it
        is not known (see the module docstring)."""
        key = (sensor, str(frame_id))
        self._latest[sensor] = key
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None:
            entry = _Entry(SensorExtrinsics(sensor, key[1], "waiting", None, "no message yet"), now)
            self._entries[key] = entry
        state = entry.state
        if self.source == "parameters":
            self._set(entry, "parameters", self.parameters.get(sensor), "extrinsics_source is 'parameters'")
            return state.pose
        if entry.tf_version != self.tf.version or state.source != "tf":
            entry.tf_version = self.tf.version
            try:
                if not key[1]:
                    raise TfError("the message has an empty header.frame_id")
                pose = self.tf.lookup(self.output_frame, key[1])
            except TfError as exc:
                if state.source == "tf" and state.pose is not None:  # keep the last good one
                    state.detail = f"tf {self.output_frame} <- {key[1]} (last good; the current tree fails: {exc})"
                elif self.source == "auto" and now - entry.first_seen >= self.tf_wait:
                    text = f"no transform {self.output_frame} <- {key[1]!r} in tf after {self.tf_wait:g} s ({exc})"
                    self._set(entry, "parameters", self.parameters.get(sensor), text)
                else:
                    state.detail = f"waiting for tf {self.output_frame} <- {key[1]!r}: {exc}"
            else:
                self._set(entry, "tf", pose, f"tf {self.output_frame} <- {key[1]}")
        return state.pose

    def _set(self, entry: _Entry, source: str, pose: Pose | None, detail: str) -> None:
        state = entry.state
        changed = state.source != source
        if source == "parameters" and pose is None:
            source, detail = "waiting", f"{detail}; and no parameters for {state.sensor}"
        if source == "tf" and state.pose is not None and state.source == "tf":
            changed = changed or not (
                (abs(state.pose.translation - pose.translation).max() < 1e-9)  # type: ignore[union-attr]
                and (abs(state.pose.rotation - pose.rotation).max() < 1e-9)  # type: ignore[union-attr]
            )
        state.source, state.pose, state.detail = source, pose, detail
        if changed and source != "waiting":
            self.notes.append(f"extrinsics of {state.sensor} (frame {state.frame_id!r}): {source}: {detail}")

    def states(self) -> dict[str, SensorExtrinsics]:
        """Sensor -> the state of its latest message's frame (sensors without a message yet are missing)."""
        return {sensor: self._entries[key].state for sensor, key in self._latest.items()}

    def take_notes(self) -> list[str]:
        """The source changes since the last call (sentences to log)."""
        out, self.notes = self.notes, []
        return out
