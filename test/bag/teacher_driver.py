"""Test peer of test_teacher_node.py: plays LiDAR sweeps of a bag (rosbags bytes deserialised by rclpy) to a
running teacher_node, one at a time, and records the TeacherTargets that come back.

Sequence: ``--count`` sweeps in lockstep (each must give targets with its stamp; a sweep is re-sent when nothing came
back within 5 s, since the node's input is best-effort), with two malformed clouds (no ``intensity`` field; must
give no output) after the first. Writes the received messages' contents to ``--out`` (npz) and prints
``SUMMARY <json>``.

Run: python teacher_driver.py --bag BAG --out OUT.npz --count 3 --timeout 120
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np
import rclpy
from imkd_msgs.msg import TeacherTargets
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import PointCloud2

from imkd_ros.ros.convert import array_to_pointcloud2
from imkd_ros.ros.messages import make_header, stamp_to_ns


class Driver(Node):
    def __init__(self) -> None:
        super().__init__("teacher_driver")
        self.pub = self.create_publisher(PointCloud2, "/lidar/top", QoSProfile(depth=10))
        self.sub = self.create_subscription(TeacherTargets, "/teacher/targets", self._on_targets, QoSProfile(depth=10))
        self.received: dict[int, TeacherTargets] = {}
        self.cv = threading.Condition()

    def _on_targets(self, msg: TeacherTargets) -> None:
        with self.cv:
            self.received.setdefault(stamp_to_ns(msg.header.stamp), msg)
            self.cv.notify_all()

    def wait(self, stamp: int, timeout: float) -> bool:
        with self.cv:
            return self.cv.wait_for(lambda: stamp in self.received, timeout=timeout)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bag", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    raws = []
    with Reader(args.bag) as reader:  # the bag's own bytes, as rosbags wrote them
        conns = [c for c in reader.connections if c.topic == "/lidar/top"]
        for _, _, raw in reader.messages(connections=conns):
            raws.append(bytes(raw))
            if len(raws) == args.count:
                break
    clouds = [deserialize_message(raw, PointCloud2) for raw in raws]
    rclpy.init()
    node = Driver()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        end = time.monotonic() + args.timeout
        while node.pub.get_subscription_count() == 0 or node.sub.get_publisher_count() == 0:
            if time.monotonic() > end:
                print("driver: teacher_node did not appear", file=sys.stderr)
                return 3
            time.sleep(0.05)
        print("MATCHED", flush=True)
        bad = np.zeros(100, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
        bad_stamps: list[int] = []
        stamps: list[int] = []
        sends = 0
        for k, cloud in enumerate(clouds):
            stamp = stamp_to_ns(cloud.header.stamp)
            stamps.append(stamp)
            for _ in range(12):
                sends += 1
                node.pub.publish(cloud)
                if node.wait(stamp, 5.0):
                    break
            if k == 0:  # the connection works: now the malformed clouds (twice: the input is best-effort)
                for j in (1, 2):
                    bad_stamps.append(stamp + j * 1_000_000)
                    node.pub.publish(array_to_pointcloud2(bad, make_header(bad_stamps[-1], "lidar_top")))
                    time.sleep(0.5)
        time.sleep(0.5)
        out = {"bad_stamps": bad_stamps, "stamps": stamps, "answered": sorted(node.received), "sends": sends}
        arrays = {}
        for stamp, m in node.received.items():
            out[str(stamp)] = {
                "frame_id": m.header.frame_id,
                "sample_token": m.sample_token,
                "format_version": m.format_version,
                "grid": [m.x_min, m.x_max, m.y_min, m.y_max, m.cell, m.height, m.width, m.feature_channels],
                "intensity_names": list(m.intensity_names),
                "class_names": list(m.class_names),
            }
            for name in ("features", "intensity", "heatmap", "boxes", "box_labels", "box_scores"):
                arrays[f"{stamp}_{name}"] = np.asarray(getattr(m, name))
        np.savez(args.out, **arrays)
        print("SUMMARY " + json.dumps(out), flush=True)
    finally:
        executor.shutdown()
        spinner.join(timeout=10.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
