"""The package's ROS 2 interfaces for offline use: the same ``.msg`` texts that rosidl builds, registered in a
``rosbags`` typestore (no ROS needed), so bags with ``imkd_msgs/msg/TeacherTargets``, ``vision_msgs/msg/...`` or
``autoware_perception_msgs/msg/...`` messages are written and read without a ROS install; and the readers of the
detector's messages (:func:`detections_to_boxes`, :func:`object_velocities`), which work on rclpy and rosbags
messages alike.

Definitions come from the repository's ``msg/`` folder (``msg/*.msg``: package ``imkd_msgs``; ``msg/<package>/msg``:
the stand-ins :data:`STANDINS` of vision_msgs 4.x, autoware_perception_msgs and tf2_msgs) or, for an installed
package, from ``<prefix>/share/imkd_ros/msg``. rosbags computes the same RIHS01 type hashes as rosidl (tested).
A stand-in whose types the typestore already has (rosbags ships tf2_msgs) is not registered again.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.errors import ImkdError
from imkd_ros.core.transforms import quat_to_yaw
from imkd_ros.core.types import Boxes

__all__ = [
    "read_detections",
    "InterfaceError",
    "IMKD_MSGS",
    "VISION_MSGS",
    "AUTOWARE_PERCEPTION_MSGS",
    "TF2_MSGS",
    "STANDINS",
    "msg_dir",
    "interface_definitions",
    "register_interfaces",
    "make_typestore",
    "detection_id",
    "detections_to_boxes",
    "object_velocities",
]

#: Package name of the package's own interfaces (``msg/*.msg``).
IMKD_MSGS = "imkd_msgs"
#: Package name of the vision_msgs stand-in (``msg/vision_msgs/msg/*.msg``).
VISION_MSGS = "vision_msgs"
#: Package name of the autoware_perception_msgs stand-in (``msg/autoware_perception_msgs/msg/*.msg``).
AUTOWARE_PERCEPTION_MSGS = "autoware_perception_msgs"
#: Package name of the tf2_msgs stand-in (``msg/tf2_msgs/msg/*.msg``).
TF2_MSGS = "tf2_msgs"
#: The stand-ins of ROS interface packages the PyPI wheels lack, each in ``msg/<package>/msg``.
STANDINS: tuple[str, ...] = (VISION_MSGS, AUTOWARE_PERCEPTION_MSGS, TF2_MSGS)


class InterfaceError(ImkdError):
    """The interface definitions cannot be found or parsed."""


def msg_dir() -> Path:
    """The folder holding the ``.msg`` files: ``<repo>/msg`` in the source tree, else
    ``<sys.prefix>/share/imkd_ros/msg``.

    Raises:
        InterfaceError: neither holds ``TeacherTargets.msg``.
    """
    candidates = [Path(__file__).resolve().parents[2] / "msg", Path(sys.prefix) / "share" / "imkd_ros" / "msg"]
    for path in candidates:
        if (path / "TeacherTargets.msg").is_file():
            return path
    raise InterfaceError(f"interface definitions not found; looked in {', '.join(str(p) for p in candidates)}")


def interface_definitions(root: str | Path | None = None) -> dict[str, str]:
    """Full type name -> ``.msg`` text, e.g. ``"imkd_msgs/msg/TeacherTargets"``,
    ``"vision_msgs/msg/Detection3DArray"`` and ``"autoware_perception_msgs/msg/DetectedObjects"``; ``root`` defaults
    to :func:`msg_dir`."""
    root = Path(root) if root is not None else msg_dir()
    out: dict[str, str] = {}
    for package, folder in ((IMKD_MSGS, root), *((s, root / s / "msg") for s in STANDINS)):
        for path in sorted(folder.glob("*.msg")):
            out[f"{package}/msg/{path.stem}"] = path.read_text(encoding="utf-8")
    if f"{IMKD_MSGS}/msg/TeacherTargets" not in out:
        raise InterfaceError(f"{root}: no TeacherTargets.msg")
    return out


def register_interfaces(typestore: Any, root: str | Path | None = None, *, vision_msgs: bool = True) -> Any:
    """Register the definitions in a rosbags ``typestore`` (in place) and return it.

    Args:
        typestore: a ``rosbags.typesys.store.Typestore``, e.g. ``get_typestore(Stores.ROS2_KILTED)``.
        root: the ``msg`` folder (default :func:`msg_dir`).
        vision_msgs: also register the vision_msgs stand-in (skip it when the typestore already has them).

    Types the typestore already holds (tf2_msgs in rosbags' ROS 2 stores) are left as they are.

    Raises:
        InterfaceError: a definition does not parse.
    """
    from rosbags.typesys import get_types_from_msg
    from rosbags.typesys.base import TypesysError

    types: dict[str, Any] = {}
    for name, text in interface_definitions(root).items():
        if (not vision_msgs and name.startswith(f"{VISION_MSGS}/")) or name in typestore.fielddefs:
            continue
        try:
            types.update(get_types_from_msg(text, name))
        except TypesysError as exc:
            raise InterfaceError(f"{name}: definition does not parse ({exc})") from exc
    typestore.register(types)
    return typestore


def make_typestore(root: str | Path | None = None) -> Any:
    """A ROS 2 Kilted rosbags typestore with the package's interfaces and the stand-ins registered."""
    from rosbags.typesys import Stores, get_typestore

    return register_interfaces(get_typestore(Stores.ROS2_KILTED), root)


# ------------------------------------------------------------------------------------- reading detection messages

#: ``Detection3D.id`` as written before velocities moved to DetectedObjects: ``"<index> vx=<vx> vy=<vy>"``; still
#: read from old bags.
_LEGACY_ID_RE = re.compile(r"^\s*(\d+)\s+vx=(\S+)\s+vy=(\S+)\s*$")


def detection_id(index: int) -> str:
    """The ``Detection3D.id`` of the detector node: the detection's index in its frame (``"0"``, ``"1"``, ...), the
    same index as its object in the frame's ``DetectedObjects``. An identifier, no payload (vision_msgs' meaning);
    a tracker would put its track id here."""
    return str(int(index))


def object_velocities(msg: Any) -> np.ndarray:
    """``autoware_perception_msgs/DetectedObjects`` (rclpy or rosbags message) -> velocities ``(N, 2)`` (m/s) in
    the message's frame: each object's object-frame linear twist rotated by its heading; NaN where ``has_twist`` is
    false (:mod:`imkd_ros.pipeline.objects` has the conventions)."""
    from imkd_ros.pipeline.objects import velocity_from_object_frame

    n = len(msg.objects)
    yaw, twist = np.zeros(n), np.full((n, 2), np.nan)
    for i, o in enumerate(msg.objects):
        k = o.kinematics
        q = k.pose_with_covariance.pose.orientation
        yaw[i] = quat_to_yaw((q.w, q.x, q.y, q.z))
        if k.has_twist:
            lin = k.twist_with_covariance.twist.linear
            twist[i] = (lin.x, lin.y)
    return velocity_from_object_frame(yaw, twist) if n else np.zeros((0, 2))


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def detections_to_boxes(msg: Any, frame: str = "ego", objects: Any | None = None) -> Boxes:
    """A ``vision_msgs/Detection3DArray`` (an rclpy message or a rosbags-deserialised one) -> :class:`Boxes` named
    ``frame``: class from the first hypothesis's ``class_id`` (a class name of :data:`imkd_ros.core.classes.CLASSES`),
    ``bbox.size`` (x length, y width, z height) -> (w, l, h), yaw from the orientation; velocity from ``objects``,
    the ``autoware_perception_msgs/DetectedObjects`` of the same frame (same stamp, one object per detection in the
    same order: :func:`object_velocities`). Without ``objects`` the velocity is NaN, except in messages written
    before the DetectedObjects output, whose ``id`` carried it (``"<i> vx=.. vy=.."``; still read).

    Raises:
        InterfaceError: a detection without hypotheses or with an unknown class name; ``objects`` of another stamp
            or with another number of objects.
    """
    n = len(msg.detections)
    center, size, yaw = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros(n)
    vel, label, score = np.full((n, 2), np.nan), np.zeros(n, dtype=np.int64), np.zeros(n)
    for i, d in enumerate(msg.detections):
        if not len(d.results):
            raise InterfaceError(f"Detection3DArray: detection {i} has no hypothesis")
        name = str(d.results[0].hypothesis.class_id)
        if name not in CLASSES:
            raise InterfaceError(f"Detection3DArray: detection {i} has unknown class_id {name!r}")
        label[i], score[i] = CLASSES.index(name), float(d.results[0].hypothesis.score)
        p, s = d.bbox.center, d.bbox.size
        center[i] = (p.position.x, p.position.y, p.position.z)
        size[i] = (s.y, s.x, s.z)
        q = p.orientation
        yaw[i] = quat_to_yaw((q.w, q.x, q.y, q.z))
        m = _LEGACY_ID_RE.match(str(d.id)) if objects is None else None
        if m:
            vel[i] = (float(m.group(2)), float(m.group(3)))
    if objects is not None:
        if _stamp(objects) != _stamp(msg) or len(objects.objects) != n:
            raise InterfaceError(
                f"DetectedObjects (stamp {_stamp(objects)}, {len(objects.objects)} objects) does not belong to the "
                f"Detection3DArray (stamp {_stamp(msg)}, {n} detections)"
            )
        vel = object_velocities(objects)
    return Boxes(center, size, yaw, vel, label, score, frame)


def read_detections(bag: Path, node: str = "/detector_node") -> dict[int, Any]:
    """Detections recorded in ``bag`` by header stamp (ns) -> :class:`~imkd_ros.core.types.Boxes` (ego frame): the
    node's ``output/objects`` (classes, boxes) with the velocities of its ``output/detected_objects`` of the same
    stamp (NaN where a frame's DetectedObjects were not recorded)."""
    from rosbags.highlevel import AnyReader

    topics = (f"{node}/output/objects", f"{node}/output/detected_objects")
    msgs: dict[str, dict[int, Any]] = {t: {} for t in topics}
    with AnyReader([bag], default_typestore=make_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            msgs[conn.topic][msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg
    detections, objects = (msgs[t] for t in topics)
    return {stamp: detections_to_boxes(msg, "ego", objects.get(stamp)) for stamp, msg in detections.items()}
