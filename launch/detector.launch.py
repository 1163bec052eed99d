"""ROS 2 launch file of the imkd_ros detector (a real ROS 2 install with launch_ros; not runnable from the PyPI
wheels, where the same executables run directly, see the README).

    ros2 launch imkd_ros detector.launch.py image:=/cam_front/image_raw radar:=/radar_front/points rviz:=true
    ros2 launch imkd_ros detector.launch.py rig:=nuscenes   (its params file names models/student_nuscenes.pt)

Arguments (documented in the README, section "The detector as a ROS 2 node"): rig (front: the default params file
<share>/imkd_ros/config/detector.yaml; nuscenes: config/detector_nuscenes.yaml, six cameras and five radars),
params_file (a file of your own instead; its cameras and radars set the subscriptions), checkpoint (overrides
the parameter; "" keeps the file's value), device,
use_sim_time, extrinsics_source ("" keeps the file's value: auto), lifecycle (true: the managed
detector_lifecycle_node instead of detector_node), autostart (lifecycle: configure and activate it at once), rviz,
the input topics image, camera_info, radar, ego_pose (one camera, one radar; with several cameras or radars each
is remapped to the player's /camera/<name>/image, /camera/<name>/camera_info, /radar/<name>), and sensor_tf /
camera_frame (static transforms base_link -> each sensor's frame from the params' mountings: camera_frame for a
single camera, cam_<name> / radar_<name> otherwise, for a vehicle without robot_state_publisher; the detector reads
its extrinsics from tf).
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
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription

#: rig:= -> its parameter file and its RViz layout in the share folder.
RIG_PARAMS = {"front": "config/detector.yaml", "nuscenes": "config/detector_nuscenes.yaml"}
RIG_RVIZ = {"front": "config/imkd.rviz", "nuscenes": "config/imkd_nuscenes.rviz"}


def _rig_parameters(share: str, params_file: str) -> dict:
    """The node's parameters as it will see them: the defaults (config/detector.yaml) under the params file's."""
    import yaml

    def read(path: str) -> dict:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)["/**"]["ros__parameters"]

    params = read(os.path.join(share, "config", "detector.yaml"))
    for key, value in read(params_file).items():
        params[key] = value  # a mapping (camera_to_base, radar_to_base) is replaced whole: the file's rig
    return params


def _static_tf(params: dict, frames: dict[tuple[str, str], str]) -> list:
    """static_transform_publisher nodes for the sensor mountings of the parameters (for a vehicle whose tf tree does
    not have them; the detector looks its extrinsics up in tf); ``frames``: (group, sensor name) -> frame id."""
    mounts = [(frame, params[group][name]) for (group, name), frame in frames.items()]
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
    share = get_package_share_directory("imkd_ros")
    if arg("rig") not in RIG_PARAMS:
        raise ValueError(f"rig:={arg('rig')} is not one of {', '.join(RIG_PARAMS)}")
    params_file = arg("params_file") or os.path.join(share, RIG_PARAMS[arg("rig")])
    params = _rig_parameters(share, params_file)
    cameras, radars = list(params["cameras"]), list(params["radars"])
    remaps, frames = [("~/input/ego_pose", arg("ego_pose"))], {}
    if len(cameras) == 1:
        remaps += [("~/input/image", arg("image")), ("~/input/camera_info", arg("camera_info"))]
        frames[("camera_to_base", cameras[0])] = arg("camera_frame")
    for name in cameras if len(cameras) > 1 else []:
        remaps += [(f"~/input/image/{name}", f"/camera/{name}/image")]
        remaps += [(f"~/input/camera_info/{name}", f"/camera/{name}/camera_info")]
        frames[("camera_to_base", name)] = f"cam_{name}"
    remaps += [("~/input/radar", arg("radar"))] if len(radars) == 1 else []
    remaps += [(f"~/input/radar/{name}", f"/radar/{name}") for name in (radars if len(radars) > 1 else [])]
    frames.update({("radar_to_base", name): f"radar_{name}" for name in radars})
    tf = _static_tf(params, frames) if arg("sensor_tf").lower() == "true" else []
    if arg("rviz").lower() == "true":  # the rig's layout: one image display per camera, one cloud per radar
        rviz = os.path.join(share, RIG_RVIZ.get(arg("rig"), RIG_RVIZ["front"]))
        sim = arg("use_sim_time").lower() == "true"
        tf.append(Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", rviz],
                       parameters=[{"use_sim_time": sim}]))  # fmt: skip
    common = {
        "package": "imkd_ros",
        "name": "detector_node",
        "namespace": "",
        "output": "screen",
        "parameters": [params_file, overrides],
        "remappings": remaps,
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
        DeclareLaunchArgument("rig", default_value="front", description="front or nuscenes: the rig's params file"),
        DeclareLaunchArgument("params_file", default_value="", description="'' : config/detector[_<rig>].yaml"),
        DeclareLaunchArgument("checkpoint", default_value="", description="model .pt; '' keeps the params file's"),
        DeclareLaunchArgument("device", default_value="cuda", description="cuda (falls back to cpu) or cpu"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="true when playing a bag"),
        DeclareLaunchArgument(
            "extrinsics_source", default_value="", description="auto | tf | parameters; '' keeps the params file's"
        ),
        DeclareLaunchArgument("lifecycle", default_value="false", description="true: detector_lifecycle_node"),
        DeclareLaunchArgument("autostart", default_value="true", description="lifecycle: configure + activate"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with the rig's layout"),
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
    ]
    return LaunchDescription(actions)
