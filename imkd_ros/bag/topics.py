"""The topics of a bag, by role: :class:`BagTopics`.

Defaults are the topics :mod:`imkd_ros.nodes.player` publishes (:data:`imkd_ros.pipeline.topics.PLAYER_TOPICS`)
and ``imkd bag export`` writes; a bag recorded elsewhere is read by naming its topics (``BagTopics(image="/cam/img")``,
``BagTopics.from_mapping(...)`` or ``--topic image=/cam/img`` on the command line). Bottom module: imports nothing of
ours but the errors and the players' topic names.

Roles and message types (types are read from the bag; these are what the roles accept):

* ``image``: one or more (one per camera, the reference camera first) ``sensor_msgs/msg/Image`` (rgb8, bgr8, rgba8,
  bgra8, mono8) or ``sensor_msgs/msg/CompressedImage`` (JPEG/PNG) topics; header stamp = exposure time, ``frame_id``
  the camera's (optical) frame.
* ``camera_info``: ``sensor_msgs/msg/CameraInfo`` (pinhole ``k``, ``width``, ``height``), one per ``image`` topic,
  in the same order.
* ``radar``: one or more ``sensor_msgs/msg/PointCloud2`` topics with the 18 nuScenes radar fields (at least
  ``x y z rcs vx_comp vy_comp``), sensor frame, unfiltered.
* ``lidar``: ``sensor_msgs/msg/PointCloud2`` with ``x y z intensity ring`` (float32, float32, float32, float32,
  uint16 as exported; any numeric types are read). A per-point ``time`` field, when a foreign bag has one, is
  ignored: the time lag of a sweep is its header stamp's.
* ``ego_pose``: ``geometry_msgs/msg/PoseStamped``, ``base_link`` in ``map`` (ego -> map).
* ``odom``: ``nav_msgs/msg/Odometry``, the same pose plus the twist in ``base_link``.
* ``tf`` / ``tf_static``: ``tf2_msgs/msg/TFMessage``; ``tf`` carries map -> base_link per sensor stamp, ``tf_static``
  base_link -> sensor frames.
* ``ground_truth``: ``vision_msgs/msg/Detection3DArray`` in ``base_link`` per keyframe (conventions of
  :mod:`imkd_ros.ros.messages`: class name in ``class_id``, ``id`` the index).
* ``ground_truth_objects``: ``autoware_perception_msgs/msg/DetectedObjects``, the same boxes at the same stamps
  with their velocities (object-frame twist, :mod:`imkd_ros.pipeline.objects`). Optional: bags written before it carry
  the velocity in the ``ground_truth`` ids, which are still read.
* ``sample_token``: ``std_msgs/msg/String`` holding the nuScenes sample token, logged at the keyframe's (reference)
  camera stamp (optional: without it frames are keyed by their stamp).

A rig of several cameras (the nuScenes surround rig): ``image`` and ``camera_info`` hold one topic per camera
(``BagTopics(image=("/a/image", "/b/image"), camera_info=("/a/info", "/b/info"))``, on the command line
``--topic image=/a/image,/b/image``); a single topic stays a plain string, as before. :meth:`BagTopics.for_rig`
gives the players' topics of a rig (:func:`imkd_ros.pipeline.topics.camera_topic`,
:func:`~imkd_ros.pipeline.topics.radar_topic`), and :meth:`BagTopics.for_bag` widens the single-camera, single-radar
defaults to the per-camera and per-radar topics of a bag written with them (``imkd bag export`` of a surround
dataset), so such a bag is read without naming its topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from imkd_ros.bag.errors import BagError
from imkd_ros.pipeline.topics import PLAYER_TOPICS, camera_topic, radar_topic

__all__ = ["BagTopics"]

#: Roles that take several topics (a comma list on the command line); ``image`` and ``camera_info`` pair by order.
_MULTI = ("image", "camera_info", "radar")
_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def _topics(value: str | Iterable[str]) -> tuple[str, ...]:
    """A role's value as a tuple of topics: one string is one topic."""
    return (value,) if isinstance(value, str) else tuple(value)


def _front_first(names: list[str]) -> list[str]:
    """``names`` with ``"front"`` (the reference camera of the players' rigs) moved first."""
    return sorted(names, key=lambda n: n != "front")


@dataclass(frozen=True)
class BagTopics:
    """Topic of each role (see the module docstring for the message types). ``image`` and ``camera_info``: one
    topic as a string, several (one per camera, the reference camera first) as a tuple; ``radar``: a tuple."""

    image: str | tuple[str, ...] = PLAYER_TOPICS["image"]
    camera_info: str | tuple[str, ...] = PLAYER_TOPICS["camera_info"]
    radar: tuple[str, ...] = (PLAYER_TOPICS["radar"],)
    lidar: str = "/lidar/top"
    ego_pose: str = PLAYER_TOPICS["ego_pose"]
    odom: str = "/odom"
    tf: str = "/tf"
    tf_static: str = PLAYER_TOPICS["tf_static"]
    ground_truth: str = "/ground_truth/objects"
    ground_truth_objects: str = "/ground_truth/detected_objects"
    sample_token: str = "/nuscenes/sample_token"

    def __post_init__(self) -> None:
        radar = _topics(self.radar)
        object.__setattr__(self, "radar", radar)
        for name in ("image", "camera_info"):
            topics = _topics(getattr(self, name))
            if not topics:
                raise BagError(f"BagTopics.{name}: at least one topic is needed")
            object.__setattr__(self, name, topics[0] if len(topics) == 1 else topics)
        if len(self.topics_of("image")) != len(self.topics_of("camera_info")):
            raise BagError(
                f"BagTopics: {len(self.topics_of('image'))} image topics {list(self.topics_of('image'))} but "
                f"{len(self.topics_of('camera_info'))} camera_info topics {list(self.topics_of('camera_info'))} "
                "(one per camera, in the same order)"
            )
        for name in self.names():
            for topic in self.topics_of(name):
                if not isinstance(topic, str) or not topic.startswith("/") or len(topic) < 2:
                    raise BagError(f"BagTopics.{name}: topic {topic!r} must be an absolute name such as '/x'")
        if not radar:
            raise BagError("BagTopics.radar: at least one radar topic is needed")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The role names (the fields), e.g. ``("image", "camera_info", "radar", ...)``."""
        return tuple(f.name for f in fields(cls))

    def topics_of(self, name: str) -> tuple[str, ...]:
        """The topics of role ``name`` (several for ``radar``, and for ``image`` and ``camera_info`` on a rig of
        several cameras; one otherwise).

        Raises:
            BagError: unknown role name.
        """
        if name not in self.names():
            raise BagError(f"unknown bag topic role {name!r}; roles: {', '.join(self.names())}")
        value = getattr(self, name)
        return tuple(value) if isinstance(value, tuple) else (value,)

    def role_of(self, topic: str) -> str | None:
        """The role a topic plays, or None."""
        for name in self.names():
            if topic in self.topics_of(name):
                return name
        return None

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | Iterable[str] | None, base: BagTopics | None = None) -> BagTopics:
        """Defaults overridden by ``m``: a mapping ``{"image": "/cam/img", "radar": ["/r1", "/r2"]}`` (``radar``,
        ``image`` and ``camera_info`` also as ``"/r1,/r2"``), or strings ``"image=/cam/img"`` as given on the command
        line (``--topic``). ``base``: the topics overridden (default: :class:`BagTopics`' defaults).

        Raises:
            BagError: an unknown role, a string without ``=``, or a topic that is not an absolute name.
        """
        base = cls() if base is None else base
        if m is None:
            return base
        if not isinstance(m, Mapping):
            items: dict[str, Any] = {}
            for s in m:
                key, sep, value = str(s).partition("=")
                if not sep or not key.strip():
                    raise BagError(f"topic override {s!r}: expected ROLE=TOPIC, e.g. image=/cam/img")
                items[key.strip()] = value.strip()
            m = items
        changes: dict[str, Any] = {}
        for key, value in m.items():
            if key not in cls.names():
                raise BagError(f"unknown bag topic role {key!r}; roles: {', '.join(cls.names())}")
            if key in _MULTI:
                parts = value.split(",") if isinstance(value, str) else list(value)
                value = tuple(p.strip() for p in parts if p.strip())
            changes[key] = value
        return replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Role -> topic (``radar``, and ``image`` / ``camera_info`` of several cameras, as a list), e.g. for a
        cache header or a report."""
        out: dict[str, Any] = {}
        for name in self.names():
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def for_rig(cls, cameras: Sequence[str], radars: Sequence[str], **others: str) -> BagTopics:
        """The players' topics of a rig of ``cameras`` and ``radars`` (the node's names, the reference camera
        first): :func:`~imkd_ros.pipeline.topics.camera_topic` and :func:`~imkd_ros.pipeline.topics.radar_topic`
        (the defaults for one camera and one radar); ``others`` set further roles."""
        n = len(cameras)
        return cls(
            image=tuple(camera_topic("image", c, n) for c in cameras),
            camera_info=tuple(camera_topic("camera_info", c, n) for c in cameras),
            radar=tuple(radar_topic(r, len(radars)) for r in radars),
            **others,
        )

    def for_bag(self, topics_in_bag: Mapping[str, str]) -> BagTopics:
        """These topics, with the players' single-camera and single-radar defaults widened to the rig a bag holds
        (``topics_in_bag``: topic -> message type, in the bag's connection order):

        * ``image`` and ``camera_info`` the defaults, no ``/camera/image`` in the bag, but per-camera topics
          ``/camera/<name>/image`` (Image or CompressedImage) with their ``/camera/<name>/camera_info``: all of
          them, camera ``front`` first (the reference camera), then in the bag's order;
        * ``radar`` the default and the bag holding more than one ``/radar/<name>`` PointCloud2 topic: all of them,
          ``front`` first.

        Topics named otherwise are kept as they are.
        """
        changes: dict[str, Any] = {}
        default = BagTopics()
        if (self.image, self.camera_info) == (default.image, default.camera_info) and self.image not in topics_in_bag:
            names = [
                t.split("/")[2]
                for t, m in topics_in_bag.items()
                if m in _IMAGE_TYPES
                and t.count("/") == 3
                and t.startswith("/camera/")
                and t.endswith("/image")
                and camera_topic("camera_info", t.split("/")[2], 2) in topics_in_bag
            ]
            if names:
                names = _front_first(names)
                changes["image"] = tuple(camera_topic("image", c, len(names)) for c in names)
                changes["camera_info"] = tuple(camera_topic("camera_info", c, len(names)) for c in names)
        if self.radar == default.radar:
            radars = [
                t.split("/")[2]
                for t, m in topics_in_bag.items()
                if m == "sensor_msgs/msg/PointCloud2" and t.count("/") == 2 and t.startswith("/radar/")
            ]
            if len(radars) > 1:
                changes["radar"] = tuple(radar_topic(r, len(radars)) for r in _front_first(radars))
        return replace(self, **changes) if changes else self
