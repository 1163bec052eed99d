"""Test peer of test_detector_node.py: publishes a known scene to a running detector_node (the rig only on
``/tf_static``: the node is started with wrong mounting parameters), then malformed messages, then one more good
frame, while recording ``/diagnostics``; prints ``SUMMARY <json>``.

Phases (stamps in ns):
    0. an image before any CameraInfo (must give no output);
    1. the scene's first keyframes in lockstep (each must give detections with its stamp);
    2. the burst: wrong encoding, image size not matching CameraInfo, a zero camera matrix, NaN / field-less /
       oversized radar clouds (and an empty one: a sweep of no points, no warning), a repeated (already processed)
       frame, and a frame from an hour ago (time going backwards);
    3. the fuzz: ``--fuzz`` malformed messages spread over every input (image, CameraInfo, radar, ego pose, /tf,
       /tf_static): broken sizes, encodings, steps and fields, NaN and inf, zero and non-unit quaternions, loops in
       the tf tree, unknown frames;
    4. the scene's last keyframe in lockstep (must still give detections);
    5. diagnostics: the processing WARN threshold set very low through the node's parameter service (and a read-only
       and an out-of-range change refused), then the inputs stop: ``/diagnostics`` must say so.

Run: python node_driver.py --data ROOT --split synth_val --timeout 120 --fuzz 1000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from tf2_msgs.msg import TFMessage

from imkd_ros.bag.interfaces import object_velocities
from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose
from imkd_ros.data.pcd import RADAR_PCD_DTYPE
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.nodes.player import FRAMES, STATIC_QOS, Player, play, timeline
from imkd_ros.ros.convert import array_to_image, array_to_pointcloud2
from imkd_ros.ros.messages import calibration_to_camera_info, detections_to_boxes, make_header, transform_stamped

HOUR = 3600 * 10**9


def _detections(msg: Any) -> list[dict]:
    b = detections_to_boxes(msg)
    return [
        {"label": CLASSES[int(b.label[i])], "center": b.center[i].tolist(), "score": float(b.score[i])}
        for i in range(len(b))
    ]


def _objects(msg: Any) -> list[dict]:
    v = object_velocities(msg)
    out = []
    for i, o in enumerate(msg.objects):
        p = o.kinematics.pose_with_covariance.pose.position
        out.append(
            {
                "center": [p.x, p.y, p.z],
                "velocity": [float(x) if np.isfinite(x) else None for x in v[i]],
                "label": int(o.classification[0].label),
                "existence_probability": float(o.existence_probability),
                "has_twist": bool(o.kinematics.has_twist),
            }
        )
    return out


def _markers(msg: Any) -> dict:
    ms = msg.markers
    return {
        "first_action": int(ms[0].action) if ms else None,
        "frame_ids": sorted({m.header.frame_id for m in ms}),
        "by_ns": {ns: sum(m.ns == ns for m in ms[1:]) for ns in ("boxes", "labels", "velocity")},
        "line_points": sorted({len(m.points) for m in ms[1:] if m.ns == "boxes"}),
    }


# ---------------------------------------------------------------------------------------------------------- fuzz


def _bad_image(rng: random.Random, stamp: int) -> Image:
    """An Image with at least one defect the node must reject."""
    kind = rng.randrange(6)
    w, h = rng.choice([(1600, 900), (8, 6), (0, 0), (3, 1)])
    enc = rng.choice(["rgb8", "bgr8", "mono8", "rgba8", "yuv422", "32FC1", "", "rgb16"])
    msg = Image(header=make_header(stamp, rng.choice([FRAMES["camera"], "nope", ""])), width=w, height=h, encoding=enc)
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4}.get(enc, 3)
    msg.step = w * ch
    n = w * h * ch
    if kind == 0:  # data too short
        msg.data = bytes(max(0, min(n, 64) - 1))
    elif kind == 1:  # an unsupported encoding
        msg.encoding = rng.choice(["yuv422", "bayer_rggb8", "nonsense"])
        msg.data = bytes(min(n, 64))
    elif kind == 2:  # the right amount of data for a small image: its size does not match CameraInfo
        msg.width, msg.height, msg.encoding, msg.step = 8, 6, "rgb8", 24
        msg.data = bytes(rng.getrandbits(8) for _ in range(144))
    elif kind == 3:  # a step smaller than a row
        msg.step = max(0, msg.step - 1)
        msg.data = bytes(min(n, 64))
    elif kind == 4:  # a huge claimed size with no data
        msg.width, msg.height, msg.step, msg.data = 100000, 100000, 300000, b""
    else:  # big-endian flag with an odd step
        msg.is_bigendian, msg.step, msg.data = 1, 7, bytes(5)
    return msg


def _bad_camera_info(rng: random.Random, stamp: int, good: CameraInfo) -> CameraInfo:
    msg = CameraInfo(header=make_header(stamp, FRAMES["camera"]), width=good.width, height=good.height, k=good.k)
    kind = rng.randrange(5)
    if kind == 0:
        msg.k = [float("nan")] * 9
    elif kind == 1:
        msg.k = [0.0] * 9
    elif kind == 2:
        msg.width, msg.height = 0, rng.choice([0, 900])
    elif kind == 3:
        k = list(good.k)
        k[0] = -abs(k[0])
        msg.k = k
    else:  # a frame tf does not know: the node waits (the calibration it has stays)
        msg.header.frame_id = f"unknown_camera_{rng.randrange(10**9)}"
    return msg


def _bad_cloud(rng: random.Random, stamp: int) -> PointCloud2:
    n = rng.choice([0, 1, 20, 6000])
    pts = np.zeros(n, dtype=RADAR_PCD_DTYPE)
    if n:
        pts["x"] = rng.uniform(1, 50)
        pts["ambig_state"] = 3
    kind = rng.randrange(7)
    if kind == 0 and n:
        pts["vx_comp"][rng.randrange(n)] = rng.choice([np.nan, np.inf, -np.inf])
    if kind == 1:
        pts = pts[["x", "y", "z"]]
    frame = FRAMES["radar"] if kind != 6 else f"unknown_radar_{rng.randrange(10**9)}"
    msg = array_to_pointcloud2(pts, make_header(stamp, frame))
    if kind == 2:  # data length not matching width x point_step
        msg.data = bytes(msg.data)[: max(0, len(msg.data) - 3)]
    elif kind == 3:  # a point_step smaller than the fields
        msg.point_step = max(1, msg.point_step - 4)
    elif kind == 4:  # an unknown datatype
        msg.fields = [PointField(name="x", offset=0, datatype=99, count=1)]
    elif kind == 5:  # width x height disagreeing with the data
        msg.width, msg.height = msg.width + 7, 3
    elif kind == 6 and n in (0, 6000):  # an unknown frame on an otherwise bad cloud
        pass
    if kind in (0, 6) and n in (1, 20):  # a cloud that could be valid gets a NaN too: every fuzz message is bad
        pts2 = pts.copy()
        pts2["x"][0] = np.nan
        msg = array_to_pointcloud2(pts2, msg.header)
    return msg


def _bad_pose(rng: random.Random, stamp: int) -> PoseStamped:
    msg = PoseStamped(header=make_header(stamp, "map"))
    kind = rng.randrange(3)
    if kind == 0:
        msg.pose.position.x = float("nan")
        msg.pose.orientation.w = 1.0
    elif kind == 1:
        msg.pose.orientation.w = msg.pose.orientation.x = 0.0
    else:
        msg.pose.orientation.z = float("inf")
    return msg


def _bad_tf(rng: random.Random, stamp: int) -> TFMessage:
    def ts(parent: str, child: str, t: tuple, q: tuple) -> Any:  # q: w, x, y, z
        m = transform_stamped(Pose.identity(), stamp, parent, child)
        m.transform.translation.x, m.transform.translation.y, m.transform.translation.z = (float(v) for v in t)
        m.transform.rotation.w, m.transform.rotation.x, m.transform.rotation.y, m.transform.rotation.z = (
            float(v) for v in q
        )
        return m

    u = f"fuzz_{rng.randrange(10**9)}"
    kind = rng.randrange(7)
    if kind == 0:  # NaN
        return TFMessage(transforms=[ts("base_link", FRAMES["radar"], (float("nan"), 0, 0), (1, 0, 0, 0))])
    if kind == 1:  # non-unit quaternion
        return TFMessage(transforms=[ts("base_link", FRAMES["camera"], (1, 0, 1), (2.0, 0.3, 0, 0))])
    if kind == 2:  # zero quaternion
        return TFMessage(transforms=[ts("base_link", FRAMES["radar"], (0, 0, 0), (0, 0, 0, 0))])
    if kind == 3:  # a loop: base_link under the radar
        return TFMessage(transforms=[ts(FRAMES["radar"], "base_link", (0, 0, 0), (1, 0, 0, 0))])
    if kind == 4:  # a loop among unknown frames
        return TFMessage(
            transforms=[ts(u, u + "_b", (0, 0, 0), (1, 0, 0, 0)), ts(u + "_b", u, (0, 0, 0), (1, 0, 0, 0))]
        )
    if kind == 5:  # self-parent, empty frame
        return TFMessage(transforms=[ts(u, u, (0, 0, 0), (1, 0, 0, 0)), ts("", u, (0, 0, 0), (1, 0, 0, 0))])
    return TFMessage(transforms=[ts(u, u + "_child", (1e12, 0, 0), (1, 0, 0, 0))])  # unknown frames, absurd values


def fuzz(player: Player, n: int, t0: int, cal_info: CameraInfo, seed: int = 0) -> dict[str, int]:
    """``n`` malformed messages over every input (stamps just after ``t0``, so none is "from the future")."""
    rng = random.Random(seed)
    node = player
    qos = QoSProfile(depth=10)
    pubs = {
        "tf": node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100)),
        "tf_static": node.create_publisher(TFMessage, "/tf_static", STATIC_QOS),  # a second static broadcaster
        "ego_pose": player.pubs["ego_pose"],
        "image": player.pubs["image"],
        "camera_info": player.pubs["camera_info"],
        "radar": player.pubs["radar"],
    }
    del qos
    counts = dict.fromkeys(pubs, 0)
    kinds = list(pubs)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        stamp = t0 + (i + 1) * 1000
        if kind == "image":
            msg: Any = _bad_image(rng, stamp)
        elif kind == "camera_info":
            msg = _bad_camera_info(rng, stamp, cal_info)
        elif kind == "radar":
            msg = _bad_cloud(rng, stamp)
        elif kind == "ego_pose":
            msg = _bad_pose(rng, stamp)
        else:
            msg = _bad_tf(rng, stamp)
        pubs[kind].publish(msg)
        counts[kind] += 1
        time.sleep(0.004)
    return counts


# ---------------------------------------------------------------------------------------------------- diagnostics


class Diagnostics:
    """``/diagnostics`` as received: (monotonic s, {component: (level, message)})."""

    def __init__(self, node: Any, name: str = "detector_node") -> None:
        self.name = name
        self.records: list[tuple[float, dict[str, tuple[int, str]]]] = []
        self._lock = threading.Lock()
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on, QoSProfile(depth=50))

    def _on(self, msg: DiagnosticArray) -> None:
        rec = {}
        for s in msg.status:
            if s.hardware_id == self.name:
                level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
                rec[s.name.split(": ", 1)[1]] = (int(level), s.message)
        with self._lock:
            self.records.append((time.monotonic(), rec))

    def since(self, t: float) -> list[dict[str, tuple[int, str]]]:
        with self._lock:
            return [r for s, r in self.records if s >= t]

    def wait(self, pred: Any, t: float, timeout: float) -> dict | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for r in self.since(t):
                if pred(r):
                    return r
            time.sleep(0.1)
        return None


def set_parameter(node: Any, target: str, name: str, value: Any, timeout: float = 30.0) -> tuple[bool, str]:
    client = node.create_client(SetParameters, f"{target}/set_parameters")
    if not client.wait_for_service(timeout_sec=timeout):
        return False, "no parameter service"
    if isinstance(value, bool):
        pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
    end = time.monotonic() + timeout
    while not future.done() and time.monotonic() < end:
        time.sleep(0.05)
    node.destroy_client(client)
    if not future.done():
        return False, "no answer"
    result = future.result().results[0]
    return bool(result.successful), str(result.reason)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="synth_val")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--fuzz", type=int, default=1000)
    args = p.parse_args()
    reader = NuScenesReader(args.data, load_lidar=False, load_image=False)
    scene = reader.split_scenes(args.split)[0]
    events = timeline(reader, [scene])
    cams = [i for i, e in enumerate(events) if e.kind == "camera"]
    first, last = events[: cams[-2] + 1], events[cams[-2] + 1 : cams[-1] + 1]

    rclpy.init()
    player = Player(reader, None)
    diagnostics = Diagnostics(player)
    executor = SingleThreadedExecutor()
    executor.add_node(player)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    out: dict = {"scene": scene}
    try:
        if not player.wait_matched(args.timeout):
            print("driver: detector_node did not appear", file=sys.stderr)
            return 3
        print("MATCHED", flush=True)
        # phase 0: an image before any CameraInfo
        early = events[cams[0]].stamp - 10**6
        player.pubs["image"].publish(array_to_image(np.zeros((900, 1600, 3), np.uint8), make_header(early, "cam")))
        time.sleep(1.0)
        # phase 1: good frames
        t_good = time.monotonic()
        frames = play(player, first, rate=4.0, lockstep=True, answer_timeout=args.timeout)
        # phase 2: the burst
        t = events[cams[-2]].stamp
        bad: list[int] = []
        cal = reader.frame(events[cams[0]].sample).camera
        cam = FRAMES["camera"]

        def image(stamp: int, pixels: np.ndarray, encoding: str = "rgb8") -> None:
            msg = array_to_image(pixels, make_header(stamp, cam))
            msg.encoding = encoding
            player.pubs["image"].publish(msg)
            bad.append(stamp)
            time.sleep(0.3)  # the node keeps one message per input (depth 1): give it time to take each

        def radar(stamp: int, cloud: np.ndarray) -> None:
            player.pubs["radar"].publish(array_to_pointcloud2(cloud, make_header(stamp, FRAMES["radar"])))
            time.sleep(0.3)

        full = np.zeros((900, 1600, 3), np.uint8)
        image(t + 1_000_000, full, "yuv422")
        image(t + 2_000_000, np.zeros((450, 800, 3), np.uint8))
        info = calibration_to_camera_info(cal, make_header(t + 3_000_000, cam))
        info.k = [0.0] * 9
        player.pubs["camera_info"].publish(info)
        time.sleep(0.3)
        pts = np.zeros(20, dtype=RADAR_PCD_DTYPE)
        pts["ambig_state"] = 3
        pts["x"] = 10.0
        radar(t + 4_000_000, pts[:0])
        nan = pts.copy()
        nan["rcs"][3] = np.nan
        radar(t + 5_000_000, nan)
        radar(t + 6_000_000, pts[["x", "y", "z", "vx_comp", "vy_comp"]])
        radar(t + 7_000_000, np.zeros(6000, dtype=RADAR_PCD_DTYPE))
        player.publish(events[cams[-2]])  # a frame already processed
        time.sleep(0.3)
        image(t - HOUR, full)  # an hour ago: time went backwards
        time.sleep(2.0)
        # phase 3: the fuzz (stamps after the hour-ago reset, before the next good frame)
        good_info = calibration_to_camera_info(cal, make_header(t, cam))
        out["fuzz"] = fuzz(player, args.fuzz, t + 10_000_000, good_info) if args.fuzz else {}
        time.sleep(2.0)
        # phase 4: one more good frame
        frames += play(player, last, rate=4.0, lockstep=True, answer_timeout=args.timeout)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            f["stamp_ns"] in player.markers and f["stamp_ns"] in player.detected_objects for f in frames
        ):
            time.sleep(0.05)
        time.sleep(0.5)
        t_after = time.monotonic()
        # phase 5: diagnostics. All OK while good frames flowed?
        ok = [r for r in diagnostics.since(t_good) if r and all(level == 0 for level, _ in r.values())]
        out["diag_all_ok_seen"] = bool(ok)
        out["diag_components"] = sorted(diagnostics.since(t_good)[-1]) if diagnostics.since(t_good) else []
        out["set_readonly"] = set_parameter(player, "/detector_node", "checkpoint", "/other.pt")
        out["set_out_of_range"] = set_parameter(player, "/detector_node", "score_threshold", 1.5)
        out["set_warn"] = set_parameter(player, "/detector_node", "diagnostics.processing_warn_ms", 0.001)
        t_warn = time.monotonic()
        warn = diagnostics.wait(lambda r: r.get("processing", (0,))[0] == 1, t_warn, 15.0)
        out["diag_processing_warn"] = warn.get("processing") if warn else None
        # the inputs stop (nothing is published any more): STALE/ERROR
        t_stop = time.monotonic()
        stopped = diagnostics.wait(
            lambda r: any(k.startswith("input ") and v[0] >= 2 for k, v in r.items()), t_stop + 1.0, 20.0
        )
        out["diag_inputs_stopped"] = {k: v for k, v in (stopped or {}).items() if k.startswith("input ")}
        out["diag_wait_s"] = round(time.monotonic() - t_after, 1)
        out["frames"] = [
            {
                "stamp_ns": f["stamp_ns"],
                "sample_token": f["sample_token"],
                "detections": _detections(player.objects[f["stamp_ns"]]) if f["stamp_ns"] in player.objects else None,
                "objects": (
                    _objects(player.detected_objects[f["stamp_ns"]])
                    if f["stamp_ns"] in player.detected_objects
                    else None
                ),
                "markers": _markers(player.markers[f["stamp_ns"]]) if f["stamp_ns"] in player.markers else None,
                "frame_id": player.objects[f["stamp_ns"]].header.frame_id if f["stamp_ns"] in player.objects else None,
            }
            for f in frames
        ]
        out["early_stamp"], out["bad_stamps"] = early, bad
        out["answered_stamps"] = sorted(player.objects)
        print("SUMMARY " + json.dumps(out), flush=True)
    finally:
        executor.shutdown()
        spinner.join(timeout=10.0)
        player.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
