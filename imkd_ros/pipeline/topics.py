"""The topics the players publish, defined once: :mod:`imkd_ros.nodes.player` and :mod:`imkd_ros.nodes.bag_player`
publish on them, :class:`imkd_ros.bag.topics.BagTopics` takes them as its defaults (``imkd bag export`` writes them),
and detector_node's inputs are remapped to them (:data:`imkd_ros.pipeline.env.DETECTOR_REMAPS`).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["PLAYER_TOPICS", "radar_topic"]

#: Role -> topic of what the players publish (read-only).
PLAYER_TOPICS = MappingProxyType(
    {
        "image": "/camera/image",
        "camera_info": "/camera/camera_info",
        "radar": "/radar/front",
        "ego_pose": "/ego_pose",
        "tf_static": "/tf_static",
    }
)


def radar_topic(name: str, count: int) -> str:
    """The topic the bag player publishes radar ``name`` on (of ``count`` radars): ``/radar/front`` for a single
    radar (the demo's remapping of ``~/input/radar``), else ``/radar/<name>``."""
    return PLAYER_TOPICS["radar"] if count == 1 else f"/radar/{name}"
