"""The package's interfaces: the vision_msgs stand-in is wire-compatible with vision_msgs 4.x (type hashes of the
real package), the rosidl build (``make setup``) and the rosbags typestore agree, and bytes cross between rclpy and
rosbags both ways."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.interfaces import InterfaceError, interface_definitions, make_typestore, register_interfaces

#: RIHS01 hashes of the REAL vision_msgs 4.x (rosidl_generator_type_description output of a ROS 2 Jazzy build of
#: ros-perception/vision_msgs), independent of the definitions in this repository.
REAL_VISION_MSGS_HASHES = {
    "vision_msgs/msg/Detection3D": "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "vision_msgs/msg/BoundingBox3D": "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "vision_msgs/msg/ObjectHypothesis": "RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc"
    ),
    "vision_msgs/msg/LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "vision_msgs/msg/BoundingBox2DArray": "RIHS01_2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691",
    "vision_msgs/msg/BoundingBox2D": "RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "vision_msgs/msg/Point2D": "RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "vision_msgs/msg/Pose2D": "RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "vision_msgs/msg/Classification": "RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
}
VISION_MSGS_4 = {
    "BoundingBox2D",
    "BoundingBox2DArray",
    "BoundingBox3D",
    "BoundingBox3DArray",
    "Classification",
    "Detection2D",
    "Detection2DArray",
    "Detection3D",
    "Detection3DArray",
    "LabelInfo",
    "ObjectHypothesis",
    "ObjectHypothesisWithPose",
    "Point2D",
    "Pose2D",
    "VisionClass",
    "VisionInfo",
}


def test_definitions_cover_vision_msgs_4_and_teacher_targets() -> None:
    defs = interface_definitions()
    assert {n.split("/")[-1] for n in defs if n.startswith("vision_msgs/")} == VISION_MSGS_4
    assert "imkd_msgs/msg/TeacherTargets" in defs
    text = defs["imkd_msgs/msg/TeacherTargets"]
    fields = [line.split("#")[0].split() for line in text.splitlines() if line.split("#")[0].strip()]
    assert [f[1] for f in fields] == [
        "header", "sample_token", "format_version", "x_min", "x_max", "y_min", "y_max", "cell", "height", "width",
        "intensity_names", "intensity", "feature_channels", "features", "class_names", "heatmap", "boxes",
        "box_labels", "box_scores",
    ]  # fmt: skip


def test_stand_in_has_the_real_vision_msgs_type_hashes() -> None:
    store = make_typestore()
    for name, expected in REAL_VISION_MSGS_HASHES.items():
        assert store.hash_rihs01(name) == expected, name


def test_a_changed_field_changes_the_hash(tmp_path: Path) -> None:
    """Control: the hash comparison above would notice a wrong definition."""
    from rosbags.typesys import Stores, get_typestore

    root = tmp_path / "msg"
    (root / "vision_msgs" / "msg").mkdir(parents=True)
    for name, text in interface_definitions().items():
        pkg, _, stem = name.split("/")
        folder = root if pkg == "imkd_msgs" else root / "vision_msgs" / "msg"
        (folder / f"{stem}.msg").write_text(text.replace("float64 score", "float32 score"))
    store = register_interfaces(get_typestore(Stores.ROS2_KILTED), root)
    assert (
        store.hash_rihs01("vision_msgs/msg/ObjectHypothesis")
        != REAL_VISION_MSGS_HASHES["vision_msgs/msg/ObjectHypothesis"]
    )
    with pytest.raises(InterfaceError, match="no TeacherTargets.msg"):
        interface_definitions(tmp_path)


def _installed_json(package: str, name: str) -> dict:
    """The rosidl type description of an installed interface (the stand-in built by `make setup`, or a real
    vision_msgs found through the ament index)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        path = Path(get_package_share_directory(package)) / "msg" / f"{name}.json"
    except PackageNotFoundError:
        pytest.fail(f"{package} is not installed: the interfaces are not built (run `make setup`)")
    return json.loads(path.read_text())


def test_rosidl_build_and_rosbags_agree() -> None:
    store = make_typestore()
    for name in sorted(VISION_MSGS_4):
        assert _installed_json("vision_msgs", name)["type_hashes"][0]["hash_string"] == store.hash_rihs01(
            f"vision_msgs/msg/{name}"
        )
    tt = _installed_json("imkd_msgs", "TeacherTargets")["type_hashes"][0]
    assert tt["type_name"] == "imkd_msgs/msg/TeacherTargets"
    assert tt["hash_string"] == store.hash_rihs01("imkd_msgs/msg/TeacherTargets")


def test_bytes_cross_between_rclpy_and_rosbags() -> None:
    from imkd_msgs.msg import TeacherTargets
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection3DArray

    from imkd_ros.ros.messages import boxes_to_detections, detections_to_boxes, make_header
    from imkd_ros.types import Boxes

    store = make_typestore()
    boxes = Boxes([[1.0, 2.0, 0.5]], [[1.9, 4.5, 1.6]], [0.4], [[3.0, -1.0]], [0], [0.8])
    raw = serialize_message(boxes_to_detections(boxes, make_header(42_000_000_007, "base_link")))
    seen = store.deserialize_cdr(raw, "vision_msgs/msg/Detection3DArray")
    assert seen.header.stamp.sec == 42 and seen.header.stamp.nanosec == 7
    back = detections_to_boxes(seen)  # the reader works on rosbags messages too
    np.testing.assert_allclose(back.center, boxes.center)
    np.testing.assert_allclose(back.velocity, boxes.velocity, atol=1e-4)
    again = deserialize_message(bytes(store.serialize_cdr(seen, "vision_msgs/msg/Detection3DArray")), Detection3DArray)
    assert again.detections[0].results[0].hypothesis.class_id == "car"

    msg = TeacherTargets(sample_token="abc", format_version=1, height=2, width=3, feature_channels=1)
    msg.header.frame_id = "base_link"
    msg.intensity_names = ["density", "reflectance", "activation"]
    msg.intensity = np.linspace(0, 1, 18, dtype=np.float32)
    msg.boxes = np.arange(9, dtype=np.float32)
    msg.box_labels = np.array([4], dtype=np.int32)
    seen = store.deserialize_cdr(serialize_message(msg), "imkd_msgs/msg/TeacherTargets")
    assert seen.sample_token == "abc" and seen.intensity_names == ["density", "reflectance", "activation"]
    np.testing.assert_array_equal(seen.intensity, np.linspace(0, 1, 18, dtype=np.float32))
    assert list(seen.box_labels) == [4]
    back = deserialize_message(bytes(store.serialize_cdr(seen, "imkd_msgs/msg/TeacherTargets")), TeacherTargets)
    np.testing.assert_array_equal(back.boxes, np.arange(9, dtype=np.float32))
