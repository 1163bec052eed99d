"""The package's interfaces: the stand-ins are wire-compatible with the real packages (vision_msgs 4.x and tf2_msgs:
type hashes of the real packages; autoware_perception_msgs: the upstream fields and types, and pinned hashes), the
rosidl build (``make setup``) and the rosbags typestore agree, and bytes cross between rclpy and rosbags both
ways."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.bag.interfaces import InterfaceError, interface_definitions, make_typestore, register_interfaces

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


#: The upstream autoware_perception_msgs definitions (autowarefoundation/autoware_msgs, autoware_perception_msgs/msg),
#: fields in order as (type, name): the RIHS01 hash covers exactly these (constants and comments do not count).
AUTOWARE_FIELDS = {
    "DetectedObjects": [("std_msgs/Header", "header"), ("DetectedObject[]", "objects")],
    "DetectedObject": [
        ("float32", "existence_probability"),
        ("ObjectClassification[]", "classification"),
        ("DetectedObjectKinematics", "kinematics"),
        ("Shape", "shape"),
    ],
    "DetectedObjectKinematics": [
        ("geometry_msgs/PoseWithCovariance", "pose_with_covariance"),
        ("bool", "has_position_covariance"),
        ("uint8", "orientation_availability"),
        ("geometry_msgs/TwistWithCovariance", "twist_with_covariance"),
        ("bool", "has_twist"),
        ("bool", "has_twist_covariance"),
    ],
    "ObjectClassification": [("uint8", "label"), ("float32", "probability")],
    "Shape": [("uint8", "type"), ("geometry_msgs/Polygon", "footprint"), ("geometry_msgs/Vector3", "dimensions")],
}
#: RIHS01 of those definitions as computed by rosidl here (no published upstream hash was found to compare with;
#: pinned so that an edit of the stand-in that would break wire compatibility fails).
AUTOWARE_HASHES = {
    "DetectedObjects": "RIHS01_2facd6b15786cbd1f720cdd23d22e6d60d2e7e83b8dff8fd401330e24edb187b",
    "DetectedObject": "RIHS01_395e8cae03c45c86ddb3263f9db58f5a1364bdabdcec56c24c817a372f7d566f",
    "DetectedObjectKinematics": "RIHS01_a01b4e06aa855e7a501b1af1e7c6a9eddb70e728e8f1195372ff5801cae1c9eb",
    "ObjectClassification": "RIHS01_38131fef2df46486c20c12c238faf778328309f4c3e9daa6ffd621732e48dd19",
    "Shape": "RIHS01_1a32ac3073c17e4822d39b7f4c263eb1c4a2bacbf707d6db96e77e867063562b",
}
#: Upstream constants (ObjectClassification labels, orientation availability, shape types).
AUTOWARE_CONSTANTS = {
    "ObjectClassification": {"UNKNOWN": 0, "CAR": 1, "TRUCK": 2, "BUS": 3, "TRAILER": 4, "MOTORCYCLE": 5,
                             "BICYCLE": 6, "PEDESTRIAN": 7, "ANIMAL": 8, "HAZARD": 9, "OVER_DRIVABLE": 10,
                             "UNDER_DRIVABLE": 11},
    "DetectedObjectKinematics": {"UNAVAILABLE": 0, "SIGN_UNKNOWN": 1, "AVAILABLE": 2},
    "Shape": {"BOUNDING_BOX": 0, "CYLINDER": 1, "POLYGON": 2},
}  # fmt: skip


def _fields(text: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
    fields, constants = [], {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if "=" in line:
            name, value = line.split(None, 1)[1].split("=")
            constants[name.strip()] = int(value)
        else:
            typ, name = line.split()[:2]
            fields.append((typ, name))
    return fields, constants


def test_autoware_stand_in_has_the_upstream_fields_constants_and_hashes() -> None:
    defs = interface_definitions()
    names = {n.split("/")[-1] for n in defs if n.startswith("autoware_perception_msgs/")}
    assert names == set(AUTOWARE_FIELDS)
    store = make_typestore()
    for name, expected in AUTOWARE_FIELDS.items():
        fields, constants = _fields(defs[f"autoware_perception_msgs/msg/{name}"])
        assert fields == expected, name
        assert constants == AUTOWARE_CONSTANTS.get(name, {}), name
        assert store.hash_rihs01(f"autoware_perception_msgs/msg/{name}") == AUTOWARE_HASHES[name], name
        assert (
            _installed_json("autoware_perception_msgs", name)["type_hashes"][0]["hash_string"] == AUTOWARE_HASHES[name]
        )


def test_tf2_msgs_stand_in_has_the_real_type_hashes() -> None:
    """rosbags ships the real tf2_msgs definitions: the rosidl build of the stand-in must hash the same."""
    from rosbags.typesys import Stores, get_typestore

    real = get_typestore(Stores.ROS2_KILTED)
    defs = interface_definitions()
    assert {n for n in defs if n.startswith("tf2_msgs/")} == {"tf2_msgs/msg/TFMessage", "tf2_msgs/msg/TF2Error"}
    for name in ("TFMessage", "TF2Error"):
        assert _installed_json("tf2_msgs", name)["type_hashes"][0]["hash_string"] == real.hash_rihs01(
            f"tf2_msgs/msg/{name}"
        )
    assert real.hash_rihs01("tf2_msgs/msg/TFMessage") == (
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
    )


def test_stand_ins_are_marked_and_a_real_package_is_not_shadowed() -> None:
    """`make setup` marks what it built (share/<pkg>/IMKD_STANDIN); the build script skips a package another prefix
    of AMENT_PREFIX_PATH holds for real."""
    from ament_index_python.packages import get_package_share_directory

    for pkg in ("vision_msgs", "autoware_perception_msgs", "tf2_msgs"):
        assert (Path(get_package_share_directory(pkg)) / "IMKD_STANDIN").is_file(), pkg
    script = (Path(__file__).resolve().parents[2] / "msg" / "build_interfaces.sh").read_text()
    assert "for standin in vision_msgs autoware_perception_msgs tf2_msgs; do" in script
    assert '! -e "$p/share/$1/IMKD_STANDIN"' in script


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
    for name in AUTOWARE_FIELDS:
        assert _installed_json("autoware_perception_msgs", name)["type_hashes"][0]["hash_string"] == (
            store.hash_rihs01(f"autoware_perception_msgs/msg/{name}")
        )
    tt = _installed_json("imkd_msgs", "TeacherTargets")["type_hashes"][0]
    assert tt["type_name"] == "imkd_msgs/msg/TeacherTargets"
    assert tt["hash_string"] == store.hash_rihs01("imkd_msgs/msg/TeacherTargets")


def test_bytes_cross_between_rclpy_and_rosbags() -> None:
    from autoware_perception_msgs.msg import DetectedObjects
    from imkd_msgs.msg import TeacherTargets
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection3DArray

    from imkd_ros.core.types import Boxes
    from imkd_ros.ros.messages import boxes_to_detections, boxes_to_objects, detections_to_boxes, make_header

    store = make_typestore()
    boxes = Boxes([[1.0, 2.0, 0.5]], [[1.9, 4.5, 1.6]], [0.4], [[3.0, -1.0]], [0], [0.8])
    header = make_header(42_000_000_007, "base_link")
    raw = serialize_message(boxes_to_detections(boxes, header))
    seen = store.deserialize_cdr(raw, "vision_msgs/msg/Detection3DArray")
    assert seen.header.stamp.sec == 42 and seen.header.stamp.nanosec == 7
    raw_objects = serialize_message(boxes_to_objects(boxes, header))
    objects = store.deserialize_cdr(raw_objects, "autoware_perception_msgs/msg/DetectedObjects")
    back = detections_to_boxes(seen, objects=objects)  # the reader works on rosbags messages too
    np.testing.assert_allclose(back.center, boxes.center)
    np.testing.assert_allclose(back.velocity, boxes.velocity, atol=1e-12)
    again_objects = deserialize_message(
        bytes(store.serialize_cdr(objects, "autoware_perception_msgs/msg/DetectedObjects")), DetectedObjects
    )
    assert again_objects.objects[0].kinematics.has_twist
    # the rosbags builder writes the same message as the rclpy one
    from imkd_ros.bag.convert import make_header as bag_header
    from imkd_ros.bag.convert import objects_msg

    built = objects_msg(boxes, bag_header(42_000_000_007, "base_link", store), store)
    # (compared as rosbags writes them: rclpy leaves CDR padding bytes uninitialised)
    typename = "autoware_perception_msgs/msg/DetectedObjects"
    assert bytes(store.serialize_cdr(built, typename)) == bytes(store.serialize_cdr(objects, typename))
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
