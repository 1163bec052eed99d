"""The DetectedObjects layout without ROS (imkd_ros.pipeline.objects): the documented nuScenes -> Autoware class
mapping, object-frame velocities and their inverse, and the reader on rosbags messages."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.bag.interfaces import detections_to_boxes, object_velocities
from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.pipeline.objects import (
    AUTOWARE_LABEL_OF_CLASS,
    AUTOWARE_LABELS,
    object_specs,
    velocity_from_object_frame,
    velocity_to_object_frame,
)


def test_class_mapping_is_the_documented_one() -> None:
    expected = {
        "car": "CAR", "truck": "TRUCK", "construction_vehicle": "TRUCK", "bus": "BUS", "trailer": "TRAILER",
        "barrier": "UNKNOWN", "motorcycle": "MOTORCYCLE", "bicycle": "BICYCLE", "pedestrian": "PEDESTRIAN",
        "traffic_cone": "UNKNOWN",
    }  # fmt: skip
    assert {c: AUTOWARE_LABELS[v] for c, v in expected.items()} == AUTOWARE_LABEL_OF_CLASS
    assert set(AUTOWARE_LABEL_OF_CLASS) == set(CLASSES)


def test_object_frame_velocity_round_trips() -> None:
    rng = np.random.default_rng(0)
    yaw, v = rng.uniform(-np.pi, np.pi, 50), rng.normal(0, 5, (50, 2))
    t = velocity_to_object_frame(yaw, v)
    np.testing.assert_allclose(np.hypot(*t.T), np.hypot(*v.T))  # a rotation
    np.testing.assert_allclose(velocity_from_object_frame(yaw, t), v, atol=1e-12)
    # a car heading along +y driving forward at 3 m/s: x = 3 in its own frame
    np.testing.assert_allclose(
        velocity_to_object_frame(np.array([np.pi / 2]), np.array([[0.0, 3.0]])), [[3.0, 0.0]], atol=1e-12
    )


def test_specs_and_the_rosbags_reader() -> None:
    from imkd_ros.bag.convert import default_typestore, detections_msg, make_header, objects_msg

    boxes = Boxes(
        [[5.0, 1.0, 0.5], [9.0, -2.0, 0.4]], [[0.6, 0.6, 1.0], [1.9, 4.4, 1.5]], [0.1, 2.0],
        [[np.nan, np.nan], [-4.0, 1.5]], [CLASSES.index("traffic_cone"), CLASSES.index("construction_vehicle")],
        [0.4, 0.7],
    )  # fmt: skip
    specs = object_specs(boxes)
    assert [s.label for s in specs] == [AUTOWARE_LABELS["UNKNOWN"], AUTOWARE_LABELS["TRUCK"]]
    assert specs[0].twist is None and specs[1].dimensions == (4.4, 1.9, 1.5)
    store = default_typestore()
    header = make_header(123, "base_link", store)
    name = "autoware_perception_msgs/msg/DetectedObjects"
    objects = store.deserialize_cdr(store.serialize_cdr(objects_msg(boxes, header, store), name), name)
    v = object_velocities(objects)
    assert np.isnan(v[0]).all() and v[1] == pytest.approx([-4.0, 1.5])
    back = detections_to_boxes(detections_msg(boxes, header, store), objects=objects)
    np.testing.assert_array_equal(back.label, boxes.label)  # the exact class stays on the Detection3DArray
    np.testing.assert_allclose(back.velocity[1], [-4.0, 1.5])
