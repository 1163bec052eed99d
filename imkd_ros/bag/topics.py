"""The topics of a bag, by role: :class:`BagTopics`.

Defaults are the topics :mod:`imkd_ros.nodes.player` publishes (:data:`imkd_ros.pipeline.topics.PLAYER_TOPICS`)
and ``imkd bag export`` writes; a bag recorded elsewhere is read by naming its topics (``BagTopics(image="/cam/img")``,
``BagTopics.from_mapping(...)`` or ``--topic image=/cam/img`` on the command line). Bottom module: imports nothing of
ours but the errors and the players' topic names.

Roles and message types (types are read from the bag; these are what the roles accept):

* ``image``: ``sensor_msgs/msg/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or ``sensor_msgs/msg/CompressedImage``
  (JPEG/PNG); header stamp = exposure time, ``frame_id`` the camera's (optical) frame.
* ``camera_info``: ``sensor_msgs/msg/CameraInfo`` (pinhole ``k``, ``width``, ``height``).
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
* ``sample_token``: ``std_msgs/msg/String`` holding the nuScenes sample token, logged at the keyframe's camera
  stamp (optional: without it frames are keyed by their stamp).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from imkd_ros.bag.errors import BagError
from imkd_ros.pipeline.topics import PLAYER_TOPICS

__all__ = ["BagTopics"]


@dataclass(frozen=True)
class BagTopics:
    """Topic of each role (see the module docstring for the message types)."""

    image: str = PLAYER_TOPICS["image"]
    camera_info: str = PLAYER_TOPICS["camera_info"]
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
        radar = (self.radar,) if isinstance(self.radar, str) else tuple(self.radar)
        object.__setattr__(self, "radar", radar)
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
        """The topics of role ``name`` (several for ``radar``, one otherwise).

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
    def from_mapping(cls, m: Mapping[str, Any] | Iterable[str] | None) -> BagTopics:
        """Defaults overridden by ``m``: a mapping ``{"image": "/cam/img", "radar": ["/r1", "/r2"]}`` (``radar``
        also as ``"/r1,/r2"``), or strings ``"image=/cam/img"`` as given on the command line (``--topic``).

        Raises:
            BagError: an unknown role, a string without ``=``, or a topic that is not an absolute name.
        """
        if m is None:
            return cls()
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
            if key == "radar":
                parts = value.split(",") if isinstance(value, str) else list(value)
                value = tuple(p.strip() for p in parts if p.strip())
            changes[key] = value
        return replace(cls(), **changes)

    def to_dict(self) -> dict[str, Any]:
        """Role -> topic (``radar`` as a list), e.g. for a cache header or a report."""
        return {name: list(self.radar) if name == "radar" else getattr(self, name) for name in self.names()}
