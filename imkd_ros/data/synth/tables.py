"""The fixed nuScenes tables of the synthetic world and the helpers that build the per-scene records.

Record layouts follow the nuScenes schema (v1.0) field for field, so that ``nuscenes.NuScenes`` loads the result:
``category`` / ``attribute`` / ``visibility`` / ``sensor`` are the same in every synthetic dataset (tokens are md5
hashes of their names, visibility tokens are nuScenes' own ``"1"`` .. ``"4"``); every other record is built by
:mod:`imkd_ros.data.synth.writer`. Poses are written as ``translation`` (metres, list of 3 floats) and ``rotation``
(unit quaternion ``(w, x, y, z)``, list of 4 floats).
"""

from __future__ import annotations

import hashlib

import numpy as np

from imkd_ros.core.classes import CATEGORY_OF_CLASS, CLASSES
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration

__all__ = [
    "TABLE_NAMES",
    "ATTRIBUTES",
    "VISIBILITY_LEVELS",
    "MODALITY",
    "make_token",
    "visibility_token",
    "pose_fields",
    "category_table",
    "attribute_table",
    "visibility_table",
    "sensor_table",
    "calibrated_sensor_record",
]

#: The 13 tables the devkit loads, in its own order.
TABLE_NAMES: tuple[str, ...] = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)

#: The eight nuScenes attributes with their descriptions.
ATTRIBUTES: dict[str, str] = {
    "vehicle.moving": "Vehicle is moving.",
    "vehicle.stopped": "Vehicle, with a driver/rider in/on it, is currently stationary but has an intent to move.",
    "vehicle.parked": "Vehicle is stationary (usually for longer duration) with no immediate intent to move.",
    "cycle.with_rider": "There is a rider on the bicycle or motorcycle.",
    "cycle.without_rider": "There is NO rider on the bicycle or motorcycle.",
    "pedestrian.sitting_lying_down": "The human is sitting or lying down.",
    "pedestrian.standing": "The human is standing.",
    "pedestrian.moving": "The human is moving.",
}

#: nuScenes visibility bins: token -> (level, upper bound of the visible fraction, description).
VISIBILITY_LEVELS: dict[str, tuple[str, float, str]] = {
    "1": ("v0-40", 0.4, "visibility of whole object is between 0 and 40%"),
    "2": ("v40-60", 0.6, "visibility of whole object is between 40 and 60%"),
    "3": ("v60-80", 0.8, "visibility of whole object is between 60 and 80%"),
    "4": ("v80-100", 1.0, "visibility of whole object is between 80 and 100%"),
}

#: Sensor modality of each synthetic channel, by the channel's name prefix.
MODALITY: dict[str, str] = {"CAM": "camera", "RADAR": "radar", "LIDAR": "lidar"}

_CATEGORY_DESCRIPTION: dict[str, str] = {
    "car": "Vehicle designed primarily for personal use, e.g. sedans, hatch-backs, wagons, vans, mini-vans, SUVs.",
    "truck": "Vehicles primarily designed to haul cargo including pick-ups, lorries, trucks and semi-tractors.",
    "construction_vehicle": "Vehicles primarily designed for construction. Typically very slow moving or stationary.",
    "bus": "Rigid bus.",
    "trailer": "Any vehicle trailer, both for trucks, cars and bikes.",
    "barrier": "Temporary road barrier placed in the scene in order to redirect traffic.",
    "motorcycle": "Gasoline or electric powered 2-wheeled vehicle designed to move rapidly (at the speed of traffic).",
    "bicycle": "Human or electric powered 2-wheeled vehicle designed to travel at lower speeds.",
    "pedestrian": "An adult pedestrian moving around the cityscape.",
    "traffic_cone": "All types of traffic cone.",
}


def make_token(*parts: object) -> str:
    """Deterministic 32-hex token: the md5 of the parts joined by ``/`` (e.g. ``make_token("category", name)``)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def visibility_token(fraction: float) -> str:
    """nuScenes visibility token (``"1"`` .. ``"4"``) of a visible fraction in [0, 1] (bins 0-40, 40-60, 60-80,
    80-100 %, upper bounds inclusive; NaN counts as 0)."""
    f = 0.0 if not np.isfinite(fraction) else float(fraction)
    for token, (_, upper, _) in VISIBILITY_LEVELS.items():
        if f <= upper:
            return token
    return "4"


def pose_fields(pose: Pose) -> dict[str, list[float]]:
    """``{"translation": [x, y, z], "rotation": [w, x, y, z]}`` of a pose, as Python floats (JSON round-trips
    them exactly, so whoever reads the tables gets the very same numbers)."""
    return {
        "translation": [float(v) for v in pose.translation],
        "rotation": [float(v) for v in pose.quat],
    }


def category_table() -> list[dict]:
    """One ``category`` record per detection class, with the full nuScenes name (``vehicle.car``)."""
    return [
        {
            "token": make_token("category", CATEGORY_OF_CLASS[name]),
            "name": CATEGORY_OF_CLASS[name],
            "description": _CATEGORY_DESCRIPTION[name],
        }
        for name in CLASSES
    ]


def attribute_table() -> list[dict]:
    """The eight nuScenes ``attribute`` records."""
    return [{"token": make_token("attribute", n), "name": n, "description": d} for n, d in ATTRIBUTES.items()]


def visibility_table() -> list[dict]:
    """The four nuScenes ``visibility`` records (tokens ``"1"`` .. ``"4"``)."""
    return [{"token": t, "level": lvl, "description": d} for t, (lvl, _, d) in VISIBILITY_LEVELS.items()]


def _modality(channel: str) -> str:
    prefix = channel.split("_", 1)[0]
    if prefix not in MODALITY:
        raise ValueError(f"sensor channel {channel!r}: unknown modality (expected a CAM_, RADAR_ or LIDAR_ prefix)")
    return MODALITY[prefix]


def sensor_table(channels: list[str] | tuple[str, ...]) -> list[dict]:
    """One ``sensor`` record per channel (token = md5 of the channel name)."""
    return [{"token": make_token("sensor", ch), "channel": ch, "modality": _modality(ch)} for ch in channels]


def calibrated_sensor_record(token: str, calib: Calibration) -> dict:
    """The ``calibrated_sensor`` record of a mounting: sensor -> ego pose and, for cameras, the ``(3, 3)``
    intrinsic matrix as nested lists (``[]`` for other sensors)."""
    intrinsic = [] if calib.intrinsic is None else [[float(v) for v in row] for row in np.asarray(calib.intrinsic)]
    return {
        "token": token,
        "sensor_token": make_token("sensor", calib.channel),
        **pose_fields(calib.sensor_to_ego),
        "camera_intrinsic": intrinsic,
    }
