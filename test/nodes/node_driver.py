"""Test peer of test_detector_node.py: publishes a known scene to a running detector_node, then a burst of
malformed messages, then one more good frame; records what comes back and prints ``SUMMARY <json>``.

Phases (stamps in ns):
    0. an image before any CameraInfo (must give no output);
    1. the scene's first keyframes in lockstep (each must give detections with its stamp);
    2. the burst: wrong encoding, image size not matching CameraInfo, a zero camera matrix, empty / NaN /
       field-less / oversized radar clouds, a repeated (already processed) frame, and a frame from an hour ago
       (time going backwards);
    3. the scene's last keyframe in lockstep (must still give detections).

Run: python node_driver.py --data ROOT --split synth_val --timeout 120
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from imkd_ros.classes import CLASSES
from imkd_ros.data.pcd import RADAR_PCD_DTYPE
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.nodes.player import Player, play, timeline
from imkd_ros.ros.convert import array_to_image, array_to_pointcloud2
from imkd_ros.ros.messages import calibration_to_camera_info, detections_to_boxes, make_header

HOUR = 3600 * 10**9


def _detections(msg) -> list[dict]:  # noqa: ANN001
    b = detections_to_boxes(msg)
    return [
        {"label": CLASSES[int(b.label[i])], "center": b.center[i].tolist(), "score": float(b.score[i])}
        for i in range(len(b))
    ]


def _markers(msg) -> dict:  # noqa: ANN001
    ms = msg.markers
    return {
        "first_action": int(ms[0].action) if ms else None,
        "frame_ids": sorted({m.header.frame_id for m in ms}),
        "by_ns": {ns: sum(m.ns == ns for m in ms[1:]) for ns in ("boxes", "labels", "velocity")},
        "line_points": sorted({len(m.points) for m in ms[1:] if m.ns == "boxes"}),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="synth_val")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    reader = NuScenesReader(args.data, load_lidar=False, load_image=False)
    scene = reader.split_scenes(args.split)[0]
    events = timeline(reader, [scene])
    cams = [i for i, e in enumerate(events) if e.kind == "camera"]
    first, last = events[: cams[-2] + 1], events[cams[-2] + 1 : cams[-1] + 1]

    rclpy.init()
    player = Player(reader, None)
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
        frames = play(player, first, rate=4.0, lockstep=True, answer_timeout=args.timeout)
        # phase 2: the burst
        t = events[cams[-2]].stamp
        bad: list[int] = []
        cal = reader.frame(events[cams[0]].sample).camera

        def image(stamp: int, pixels: np.ndarray, encoding: str = "rgb8") -> None:
            msg = array_to_image(pixels, make_header(stamp, "cam"))
            msg.encoding = encoding
            player.pubs["image"].publish(msg)
            bad.append(stamp)
            time.sleep(0.3)  # the node keeps one message per input (depth 1): give it time to take each

        def radar(stamp: int, cloud: np.ndarray) -> None:
            player.pubs["radar"].publish(array_to_pointcloud2(cloud, make_header(stamp, "radar_front")))
            time.sleep(0.3)

        full = np.zeros((900, 1600, 3), np.uint8)
        image(t + 1_000_000, full, "yuv422")
        image(t + 2_000_000, np.zeros((450, 800, 3), np.uint8))
        info = calibration_to_camera_info(cal, make_header(t + 3_000_000, "cam"))
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
        # phase 3: one more good frame
        frames += play(player, last, rate=4.0, lockstep=True, answer_timeout=args.timeout)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(f["stamp_ns"] in player.markers for f in frames):
            time.sleep(0.05)
        time.sleep(0.5)
        out["frames"] = [
            {
                "stamp_ns": f["stamp_ns"],
                "sample_token": f["sample_token"],
                "detections": _detections(player.objects[f["stamp_ns"]]) if f["stamp_ns"] in player.objects else None,
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
