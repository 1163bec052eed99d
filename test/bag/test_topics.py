"""BagTopics: defaults are what the player publishes, overrides from mappings and ``ROLE=TOPIC`` strings, and bad
names give errors that say what is wrong."""

from __future__ import annotations

import pytest

from imkd_ros.bag.errors import BagError
from imkd_ros.bag.topics import BagTopics
from imkd_ros.core.errors import ImkdError
from imkd_ros.pipeline.topics import PLAYER_TOPICS, radar_topic


def test_defaults_are_the_players_topics() -> None:
    t = BagTopics()
    player = PLAYER_TOPICS  # nodes/player.py's TOPICS
    assert player["image"] == t.image and player["camera_info"] == t.camera_info
    assert (player["radar"],) == t.radar and player["ego_pose"] == t.ego_pose and player["tf_static"] == t.tf_static
    assert t.image == "/camera/image" and t.radar == ("/radar/front",)
    assert radar_topic("front", 1) == "/radar/front" and radar_topic("rear", 2) == "/radar/rear"
    assert t.topics_of("radar") == ("/radar/front",) and t.topics_of("lidar") == ("/lidar/top",)
    assert t.role_of("/tf_static") == "tf_static" and t.role_of("/nope") is None
    assert "sample_token" in BagTopics.names() and len(BagTopics.names()) == 11
    assert BagTopics().ground_truth_objects == "/ground_truth/detected_objects"


def test_overrides_from_a_mapping_and_from_strings() -> None:
    a = BagTopics.from_mapping({"image": "/cam/img", "radar": ["/r/a", "/r/b"]})
    assert a.image == "/cam/img" and a.radar == ("/r/a", "/r/b") and a.lidar == BagTopics().lidar
    b = BagTopics.from_mapping(["image=/cam/img", "radar=/r/a, /r/b"])
    assert b == a
    assert BagTopics.from_mapping(None) == BagTopics() == BagTopics.from_mapping([])
    assert BagTopics(radar="/one").radar == ("/one",)  # a single radar topic as a string
    assert BagTopics.from_mapping(a.to_dict()) == a


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"camera": "/x"}, "unknown bag topic role 'camera'"),
        (["image"], "expected ROLE=TOPIC"),
        (["=/x"], "expected ROLE=TOPIC"),
        ({"image": "cam/img"}, r"BagTopics.image: topic 'cam/img' must be an absolute name"),
        ({"radar": ""}, "at least one radar topic"),
    ],
)
def test_bad_overrides_are_named(mapping: object, match: str) -> None:
    with pytest.raises(BagError, match=match) as info:
        BagTopics.from_mapping(mapping)
    assert isinstance(info.value, ImkdError)


def test_unknown_role_in_topics_of() -> None:
    with pytest.raises(BagError, match="unknown bag topic role 'lidars'"):
        BagTopics().topics_of("lidars")


def test_several_cameras_from_a_rig_from_strings_and_from_a_bag() -> None:
    t = BagTopics.for_rig(["front", "back_left"], ["front", "back_right"])
    assert t.image == ("/camera/front/image", "/camera/back_left/image")
    assert t.camera_info == ("/camera/front/camera_info", "/camera/back_left/camera_info")
    assert t.radar == ("/radar/front", "/radar/back_right") and t.topics_of("image") == t.image
    assert BagTopics.for_rig(["front"], ["front"]) == BagTopics()  # one camera, one radar: the defaults
    assert BagTopics.from_mapping(t.to_dict()) == t and t.to_dict()["image"] == list(t.image)
    s = BagTopics.from_mapping([f"image={','.join(t.image)}", f"camera_info={','.join(t.camera_info)}"])
    assert s.image == t.image and s.radar == BagTopics().radar
    assert BagTopics.from_mapping(["lidar=/points"], base=t) == BagTopics.for_rig(
        ["front", "back_left"], ["front", "back_right"], lidar="/points"
    )
    with pytest.raises(BagError, match="2 image topics .* but 1 camera_info topics"):
        BagTopics(image=("/a", "/b"))
    # a bag of the players' surround topics, read with the defaults: front first, then the bag's order
    in_bag = {topic: "sensor_msgs/msg/Image" for topic in reversed(t.image)}
    in_bag.update({topic: "sensor_msgs/msg/CameraInfo" for topic in t.camera_info})
    in_bag.update({topic: "sensor_msgs/msg/PointCloud2" for topic in reversed(t.radar)})
    assert BagTopics().for_bag(in_bag) == t
    assert BagTopics(lidar="/points").for_bag(in_bag) == BagTopics.for_rig(
        ["front", "back_left"], ["front", "back_right"], lidar="/points"
    )
    named = BagTopics(image="/cam/img", camera_info="/cam/info", radar=("/r",))
    assert named.for_bag(in_bag) == named  # topics named otherwise are kept
    front = {"/camera/image": "sensor_msgs/msg/Image", "/radar/front": "sensor_msgs/msg/PointCloud2"}
    assert BagTopics().for_bag(front) == BagTopics()  # a front-rig bag is read as before
