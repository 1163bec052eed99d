"""A transform tree from ``/tf_static`` and ``/tf`` without tf2: what the detector node needs to know its sensors'
mountings (extrinsics).

Pure Python and numpy (no rclpy, no message types), so it is tested as plain functions; the node converts each
``geometry_msgs/TransformStamped`` into :meth:`TfBuffer.set_transform` arguments (:func:`transforms_of`).

Behaviour, as tf2's ``BufferCore`` where it matters here:

* **Merge by child frame.** Each child frame has one parent and one transform; a later transform of the same child
  replaces it, whoever publishes it (several static broadcasters may each publish part of the tree; a static
  broadcaster republishes its whole accumulated set).
* **Checks on insert** (the transform is refused with a :class:`TfError` naming it, the tree is left as it was):
  empty frame ids, a frame that is its own parent, non-finite values, a translation beyond
  :data:`MAX_TRANSLATION`, a quaternion whose squared norm is off 1 by more than :data:`QUATERNION_TOLERANCE`
  (tf2's check; within it the quaternion is normalised). A leading ``/`` of a frame id is dropped, as tf2 does.
* **Lookups** chain transforms from each frame up to the first common ancestor, so anything above it (a dynamic
  ``map -> base_link`` on ``/tf``) does not matter. Loops in the tree (``a -> b -> a``) and chains deeper than
  ``max_depth`` are reported as errors, never followed forever.
* **Time.** Only the latest transform of each child is kept and lookups use it (a sensor mounting is rigid; what a
  lookup at a stamp would add is interpolation of moving chains, which the node does not need). Each change bumps
  :attr:`TfBuffer.version`, so callers can cache lookups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imkd_ros.core.transforms import Pose, quat_to_matrix

__all__ = [
    "TfError",
    "QUATERNION_TOLERANCE",
    "MAX_TRANSLATION",
    "TransformRecord",
    "TfBuffer",
    "transforms_of",
]

#: A quaternion is accepted when ``| |q|^2 - 1 | <= QUATERNION_TOLERANCE`` (tf2's ``QUATERNION_NORMALIZATION_
#: TOLERANCE``), then normalised.
QUATERNION_TOLERANCE = 1e-2
#: Largest translation accepted (m); anything larger is a broken message, not a vehicle.
MAX_TRANSLATION = 1e7


class TfError(ValueError):
    """A transform that cannot be stored, or a lookup that cannot be answered; the text says which frames and
    why."""


def _frame(name: Any) -> str:
    name = str(name)
    return name[1:] if name.startswith("/") else name


@dataclass(frozen=True)
class TransformRecord:
    """The stored transform of a child frame: ``pose`` child -> ``parent``, its stamp (ns), whether it came from
    ``/tf_static``, and the number of the update that stored it (:attr:`TfBuffer.version`)."""

    parent: str
    child: str
    pose: Pose
    stamp: int
    static: bool
    version: int


class TfBuffer:
    """The transform tree (module docstring).

    Args:
        max_depth: longest chain a lookup follows (tf2's limit is 1000; a vehicle's is a handful).
    """

    def __init__(self, max_depth: int = 64) -> None:
        self.max_depth = int(max_depth)
        self._records: dict[str, TransformRecord] = {}
        self.version = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def frames(self) -> set[str]:
        """Every frame named as a child or a parent."""
        return set(self._records) | {r.parent for r in self._records.values()}

    def record(self, child: str) -> TransformRecord | None:
        """The stored transform of ``child`` (None if it has none)."""
        return self._records.get(_frame(child))

    def clear(self) -> None:
        self._records.clear()
        self.version += 1

    def set_transform(
        self,
        parent: str,
        child: str,
        translation: Sequence[float],
        rotation: Sequence[float],
        stamp: int = 0,
        *,
        static: bool = False,
    ) -> None:
        """Store ``child -> parent`` (``translation`` [x, y, z] m, ``rotation`` quaternion (w, x, y, z)), replacing
        what ``child`` had.

        Raises:
            TfError: the transform is refused (module docstring); the tree is unchanged.
        """
        parent, child = _frame(parent), _frame(child)
        what = f"transform {parent or '<empty>'} -> {child or '<empty>'}"
        if not parent or not child:
            raise TfError(f"{what}: empty frame id")
        if parent == child:
            raise TfError(f"{what}: a frame cannot be its own parent")
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        q = np.asarray(rotation, dtype=np.float64).reshape(-1)
        if t.shape != (3,) or q.shape != (4,):
            raise TfError(f"{what}: need a translation [x, y, z] and a quaternion, got {t.size} and {q.size} values")
        if not (np.isfinite(t).all() and np.isfinite(q).all()):
            raise TfError(f"{what}: non-finite values (translation {t.tolist()}, rotation {q.tolist()})")
        if float(np.abs(t).max()) > MAX_TRANSLATION:
            raise TfError(f"{what}: translation {t.tolist()} beyond {MAX_TRANSLATION:g} m")
        n2 = float(q @ q)
        if abs(n2 - 1.0) > QUATERNION_TOLERANCE:
            raise TfError(f"{what}: quaternion (w, x, y, z) {q.tolist()} is not normalised (|q| = {math.sqrt(n2):.4g})")
        self.version += 1
        pose = Pose(quat_to_matrix(q / math.sqrt(n2)), t)
        self._records[child] = TransformRecord(parent, child, pose, int(stamp), bool(static), self.version)

    def add(
        self, transforms: Iterable[tuple[str, str, Sequence[float], Sequence[float], int]], *, static: bool
    ) -> list[str]:
        """Store each ``(parent, child, translation, rotation_wxyz, stamp)`` of one ``TFMessage``, independently (a
        bad one does not stop the others, as tf2's listener does). Returns the error texts of those refused."""
        errors = []
        for parent, child, t, q, stamp in transforms:
            try:
                self.set_transform(parent, child, t, q, stamp, static=static)
            except TfError as exc:
                errors.append(str(exc))
        return errors

    def _chain(self, frame: str) -> list[tuple[str, Pose | None]]:
        """``[(frame, None), (parent, frame -> parent), (grandparent, frame -> grandparent), ...]`` up to the root.

        Raises:
            TfError: a loop or a chain deeper than ``max_depth``.
        """
        out: list[tuple[str, Pose | None]] = [(frame, None)]
        seen = {frame}
        pose: Pose | None = None
        cur = frame
        while cur in self._records:
            rec = self._records[cur]
            pose = rec.pose if pose is None else rec.pose @ pose
            cur = rec.parent
            if cur in seen:
                path = " -> ".join([f for f, _ in out] + [cur])
                raise TfError(f"loop in the transform tree: {path}")
            if len(out) > self.max_depth:
                raise TfError(f"transform chain from {frame} deeper than {self.max_depth} frames")
            seen.add(cur)
            out.append((cur, pose))
        return out

    def lookup(self, target: str, source: str) -> Pose:
        """The transform ``source -> target`` (``p_target = pose.apply(p_source)``), tf2's
        ``lookupTransform(target, source, latest)``.

        Raises:
            TfError: an unknown frame, frames in different trees, or a loop.
        """
        target, source = _frame(target), _frame(source)
        if target == source:
            return Pose.identity()
        known = self.frames
        for name in (target, source):
            if name not in known:
                raise TfError(f"frame {name!r} does not exist in the transform tree")
        up_source, up_target = self._chain(source), self._chain(target)
        on_target = {f: p for f, p in up_target}
        for frame, source_to_anc in up_source:
            if frame in on_target:
                target_to_anc = on_target[frame]
                s = source_to_anc if source_to_anc is not None else Pose.identity()
                return s if target_to_anc is None else target_to_anc.inverse() @ s
        raise TfError(
            f"frames {target!r} and {source!r} are not connected (roots {up_target[-1][0]!r} and {up_source[-1][0]!r})"
        )

    def can_transform(self, target: str, source: str) -> bool:
        try:
            self.lookup(target, source)
        except TfError:
            return False
        return True


def transforms_of(msg: Any) -> list[tuple[str, str, tuple[float, ...], tuple[float, ...], int]]:
    """A ``tf2_msgs/TFMessage`` (rclpy or rosbags message) -> :meth:`TfBuffer.add` input: per transform
    ``(header.frame_id, child_frame_id, translation, rotation (w, x, y, z), stamp ns)``. Field values are taken as
    they are (checks happen in :meth:`TfBuffer.set_transform`)."""
    out = []
    for ts in msg.transforms:
        tr, q = ts.transform.translation, ts.transform.rotation
        stamp = int(ts.header.stamp.sec) * 1_000_000_000 + int(ts.header.stamp.nanosec)
        out.append(
            (
                str(ts.header.frame_id),
                str(ts.child_frame_id),
                (float(tr.x), float(tr.y), float(tr.z)),
                (float(q.w), float(q.x), float(q.y), float(q.z)),
                stamp,
            )
        )
    return out
