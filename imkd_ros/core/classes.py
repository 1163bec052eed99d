"""The nuScenes detection classes and the mapping from full category names.

Bottom module: imports nothing of ours.
"""

from __future__ import annotations

__all__ = ["CLASSES", "CATEGORY_OF_CLASS", "class_of_category", "DEFAULT_ATTRIBUTE"]

#: Detection class names, in the order used for label ids everywhere in the project.
CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)

#: The nuScenes category (full name) written for each detection class by the synthetic world.
CATEGORY_OF_CLASS: dict[str, str] = {
    "car": "vehicle.car",
    "truck": "vehicle.truck",
    "construction_vehicle": "vehicle.construction",
    "bus": "vehicle.bus.rigid",
    "trailer": "vehicle.trailer",
    "barrier": "movable_object.barrier",
    "motorcycle": "vehicle.motorcycle",
    "bicycle": "vehicle.bicycle",
    "pedestrian": "human.pedestrian.adult",
    "traffic_cone": "movable_object.trafficcone",
}

#: Attribute written for a class when nothing more specific applies (None: nuScenes has none for the class).
DEFAULT_ATTRIBUTE: dict[str, str | None] = {
    "car": "vehicle.parked",
    "truck": "vehicle.parked",
    "construction_vehicle": "vehicle.parked",
    "bus": "vehicle.parked",
    "trailer": "vehicle.parked",
    "barrier": None,
    "motorcycle": "cycle.without_rider",
    "bicycle": "cycle.without_rider",
    "pedestrian": "pedestrian.standing",
    "traffic_cone": None,
}

_PREFIX_TO_CLASS: tuple[tuple[str, str], ...] = (
    ("vehicle.car", "car"),
    ("vehicle.truck", "truck"),
    ("vehicle.construction", "construction_vehicle"),
    ("vehicle.bus", "bus"),
    ("vehicle.trailer", "trailer"),
    ("movable_object.barrier", "barrier"),
    ("vehicle.motorcycle", "motorcycle"),
    ("vehicle.bicycle", "bicycle"),
    ("human.pedestrian.adult", "pedestrian"),
    ("human.pedestrian.child", "pedestrian"),
    ("human.pedestrian.construction_worker", "pedestrian"),
    ("human.pedestrian.police_officer", "pedestrian"),
    ("movable_object.trafficcone", "traffic_cone"),
)


def class_of_category(category: str) -> str | None:
    """Detection class of a nuScenes category name (as the devkit maps it), or None if it is not detected."""
    for prefix, name in _PREFIX_TO_CLASS:
        if category == prefix or category.startswith(prefix + "."):
            return name
    return None
