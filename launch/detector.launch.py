"""ROS 2 launch file of the imkd_ros detector (a real ROS 2 install with launch_ros; not runnable from the PyPI
wheels, where the same executables run directly, see the README).

    ros2 launch imkd_ros detector.launch.py image:=/cam_front/image_raw radar:=/radar_front/points rviz:=true

Arguments (documented in the README, section "The detector as a ROS 2 node"): params_file (default
<share>/imkd_ros/config/detector.yaml), checkpoint (overrides the parameter; "" keeps the file's value), device,
use_sim_time, extrinsics_source ("" keeps the file's value: auto), lifecycle (true: the managed
detector_lifecycle_node instead of detector_node), autostart (lifecycle: configure and activate it at once), rviz,
the input topics image, camera_info, radar, ego_pose, and sensor_tf / camera_frame (static transforms
base_link -> camera_frame and -> radar_front from the params file's mountings, for a vehicle without
robot_state_publisher; the detector reads its extrinsics from tf).
The Fast DDS shared-memory profile (config/fastdds.xml) is used unless FASTDDS_DEFAULT_PROFILES_FILE is set.
No side effects beyond starting the nodes.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription


def _static_tf(params_file: str, camera_frame: str, radar_frames: dict[str, str]) -> list:
    """static_transform_publisher nodes for the sensor mountings of the params file (for a vehicle whose tf tree does
    not have them; the detector looks its extrinsics up in tf)."""
    import yaml

    with open(params_file, encoding="utf-8") as f:
        params = yaml.safe_load(f)["/**"]["ros__parameters"]
    mounts = [(camera_frame, params["camera_to_base"])]
    mounts += [(frame, params["radar_to_base"][name]) for name, frame in radar_frames.items()]
    nodes = []
    for frame, m in mounts:
        (x, y, z), (qw, qx, qy, qz) = m["translation"], m["rotation"]
        args = ["--x", x, "--y", y, "--z", z, "--qx", qx, "--qy", qy, "--qz", qz, "--qw", qw]
        args = [str(a) for a in args] + ["--frame-id", "base_link", "--child-frame-id", frame]
        nodes.append(Node(package="tf2_ros", executable="static_transform_publisher", arguments=args))
    return nodes


def _detector(context, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - launch's OpaqueFunction signature
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {"device": arg("device"), "use_sim_time": arg("use_sim_time").lower() == "true"}
    for name in ("checkpoint", "extrinsics_source"):
        if arg(name):
            overrides[name] = arg(name)
    params_file = arg("params_file")
    tf = []
    if arg("sensor_tf").lower() == "true":
        tf = _static_tf(params_file, arg("camera_frame"), {"front": "radar_front"})
    common = {
        "package": "imkd_ros",
        "name": "detector_node",
        "namespace": "",
        "output": "screen",
        "parameters": [params_file, overrides],
        "remappings": [
            ("~/input/image", arg("image")),
            ("~/input/camera_info", arg("camera_info")),
            ("~/input/radar", arg("radar")),
            ("~/input/ego_pose", arg("ego_pose")),
        ],
    }
    if arg("lifecycle").lower() != "true":
        return [*tf, Node(executable="detector_node", **common)]
    node = LifecycleNode(executable="detector_lifecycle_node", **common)
    actions = [*tf, node]
    if arg("autostart").lower() == "true":  # configure (loads the model), then activate once inactive

        def transition(tid: int) -> EmitEvent:
            return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=tid))

        actions += [
            RegisterEventHandler(
                OnStateTransition(
                    target_lifecycle_node=node,
                    goal_state="inactive",
                    entities=[transition(Transition.TRANSITION_ACTIVATE)],
                )
            ),
            transition(Transition.TRANSITION_CONFIGURE),
        ]
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("imkd_ros")
    actions = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "detector.yaml")),
        DeclareLaunchArgument("checkpoint", default_value="", description="model .pt; '' keeps the params file's"),
        DeclareLaunchArgument("device", default_value="cuda", description="cuda (falls back to cpu) or cpu"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="true when playing a bag"),
        DeclareLaunchArgument(
            "extrinsics_source", default_value="", description="auto | tf | parameters; '' keeps the params file's"
        ),
        DeclareLaunchArgument("lifecycle", default_value="false", description="true: detector_lifecycle_node"),
        DeclareLaunchArgument("autostart", default_value="true", description="lifecycle: configure + activate"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/imkd.rviz"),
        DeclareLaunchArgument("image", default_value="/camera/image"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info"),
        DeclareLaunchArgument("radar", default_value="/radar/front"),
        DeclareLaunchArgument("ego_pose", default_value="/ego_pose"),
        DeclareLaunchArgument("sensor_tf", default_value="false", description="static tf of the params' mountings"),
        DeclareLaunchArgument("camera_frame", default_value="cam_front", description="the image's frame_id"),
    ]
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        actions.append(
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds.xml"))
        )
    actions += [
        OpaqueFunction(function=_detector),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "config", "imkd.rviz")],
            parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ]
    return LaunchDescription(actions)
