"""The topics the players publish, defined once: :mod:`imkd_ros.nodes.player` and :mod:`imkd_ros.nodes.bag_player`
publish on them, :class:`imkd_ros.bag.topics.BagTopics` takes them as its defaults (``imkd bag export`` writes them),
and detector_node's inputs are remapped to them (:data:`imkd_ros.pipeline.env.DETECTOR_REMAPS`).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["PLAYER_TOPICS", "radar_topic", "camera_topic", "sensor_name", "detector_remaps"]

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


def camera_topic(role: str, name: str, count: int) -> str:
    """The topic the player publishes camera ``name``'s ``role`` (``"image"`` or ``"camera_info"``) on, of ``count``
    cameras: ``/camera/image`` and ``/camera/camera_info`` for a single camera, else ``/camera/<name>/<role>``."""
    if role not in ("image", "camera_info"):
        raise ValueError(f"camera topic role must be image or camera_info, got {role!r}")
    return PLAYER_TOPICS[role] if count == 1 else f"/camera/{name}/{role}"


def sensor_name(channel: str) -> str:
    """The node's name of a nuScenes sensor channel (its ``cameras`` / ``radars`` entries): the channel without its
    kind, in lower case (``"CAM_FRONT_LEFT"`` -> ``"front_left"``, ``"RADAR_BACK_RIGHT"`` -> ``"back_right"``)."""
    kind, _, rest = channel.partition("_")
    if kind not in ("CAM", "RADAR") or not rest:
        raise ValueError(f"not a camera or radar channel: {channel!r}")
    return rest.lower()


def detector_remaps(cameras: tuple[str, ...] | list[str], radars: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """detector_node's input remappings (``-r`` arguments) onto the players' topics for a rig of ``cameras`` and
    ``radars`` (the node's names): ``~/input/image`` or ``~/input/image/<name>`` (as the node subscribes) ->
    :func:`camera_topic`, the radars -> :func:`radar_topic`, and the ego pose."""

    def node_side(kind: str, name: str, count: int) -> str:
        return f"~/input/{kind}" if count == 1 else f"~/input/{kind}/{name}"

    out = []
    for c in cameras:
        out += [
            f"{node_side(role, c, len(cameras))}:={camera_topic(role, c, len(cameras))}"
            for role in ("image", "camera_info")
        ]
    out += [f"{node_side('radar', r, len(radars))}:={radar_topic(r, len(radars))}" for r in radars]
    out.append(f"~/input/ego_pose:={PLAYER_TOPICS['ego_pose']}")
    return tuple(out)
