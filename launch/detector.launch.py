"""ROS 2 launch file of the imkd_ros detector (a real ROS 2 install with launch_ros; not runnable from the PyPI
wheels, where the same executable runs directly, see the README).

    ros2 launch imkd_ros detector.launch.py image:=/cam_front/image_raw radar:=/radar_front/points rviz:=true

Arguments: params_file (default <share>/imkd_ros/config/detector.yaml), checkpoint (overrides the parameter;
"" keeps the file's value), device, use_sim_time, rviz, the input topics image, camera_info, radar, ego_pose, and
sensor_tf / camera_frame (static TFs base_link -> camera_frame and -> radar_front from the params file's
mountings, for RViz).
The Fast DDS shared-memory profile (config/fastdds.xml) is used unless FASTDDS_DEFAULT_PROFILES_FILE is set.
No side effects beyond starting the nodes.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def _static_tf(params_file: str, camera_frame: str, radar_frames: dict[str, str]) -> list:
    """static_transform_publisher nodes for the sensor mountings of the params file (RViz needs them to draw the
    radar points and the camera frustum in base_link; the detector itself reads them as parameters)."""
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
    overrides = {
        "device": LaunchConfiguration("device").perform(context),
        "use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true",
    }
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    if checkpoint:
        overrides["checkpoint"] = checkpoint
    params_file = LaunchConfiguration("params_file").perform(context)
    tf = []
    if LaunchConfiguration("sensor_tf").perform(context).lower() == "true":
        tf = _static_tf(params_file, LaunchConfiguration("camera_frame").perform(context), {"front": "radar_front"})
    return tf + [
        Node(
            package="imkd_ros",
            executable="detector_node",
            name="detector_node",
            output="screen",
            parameters=[params_file, overrides],
            remappings=[
                ("~/input/image", LaunchConfiguration("image").perform(context)),
                ("~/input/camera_info", LaunchConfiguration("camera_info").perform(context)),
                ("~/input/radar", LaunchConfiguration("radar").perform(context)),
                ("~/input/ego_pose", LaunchConfiguration("ego_pose").perform(context)),
            ],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("imkd_ros")
    actions = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "detector.yaml")),
        DeclareLaunchArgument("checkpoint", default_value="", description="model .pt; '' keeps the params file's"),
        DeclareLaunchArgument("device", default_value="cuda", description="cuda (falls back to cpu) or cpu"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="true when playing a bag"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/imkd.rviz"),
        DeclareLaunchArgument("image", default_value="/camera/image"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info"),
        DeclareLaunchArgument("radar", default_value="/radar/front"),
        DeclareLaunchArgument("ego_pose", default_value="/ego_pose"),
        DeclareLaunchArgument("sensor_tf", default_value="true", description="static TFs of the mountings"),
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
