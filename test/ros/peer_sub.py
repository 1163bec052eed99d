"""Subscriber process of the ROS 2 runtime test (run as a script by ``test_runtime.py``).

Subscribes to the test image and radar topics, converts every message with :mod:`imkd_ros.ros.convert` and checks
it byte for byte against what the publisher must have sent (:mod:`peer_common`). Stops at the first bad message,
after ``--count`` good images and good clouds, or after ``--timeout`` s, and prints one line
``SUMMARY {json}``. Exit 0 only when ``--count`` of each arrived and none was bad; 1 otherwise; 130 on interrupt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import peer_common as pc
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image, PointCloud2

from imkd_ros.ros.convert import ConversionError, image_to_array, pointcloud2_to_array


class Tally:
    """What arrived: good sequence numbers per topic, image latencies (ms), reasons for bad messages."""

    def __init__(self) -> None:
        self.images: list[int] = []
        self.clouds: list[int] = []
        self.latency_ms: list[float] = []
        self.bad: list[str] = []
        self.first_s: float | None = None

    def on_image(self, msg: Image) -> None:
        latency = (time.time_ns() - (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)) / 1e6
        try:
            seq = pc.parse_frame_id(msg.header.frame_id)
            err = pc.check_image(image_to_array(msg), seq)
        except (ConversionError, ValueError) as exc:
            seq, err = -1, f"image: {exc}"
        if err:
            self.bad.append(err)
            return
        self.images.append(seq)
        self.latency_ms.append(latency)

    def on_cloud(self, msg: PointCloud2) -> None:
        try:
            seq = pc.parse_frame_id(msg.header.frame_id)
            err = pc.check_cloud(pointcloud2_to_array(msg), seq)
        except (ConversionError, ValueError) as exc:
            seq, err = -1, f"cloud: {exc}"
        if err:
            self.bad.append(err)
            return
        self.clouds.append(seq)

    def summary(self, count: int) -> dict:
        # the publisher starts at seq 0 once it has matched this subscriber and sends cloud ``k`` just before
        # image ``k``: images 0..k were published if image k arrived, 0..k-1 if cloud k arrived
        published = max(max(self.images, default=-1) + 1, max(self.clouds, default=0))
        lat = sorted(self.latency_ms)
        return {
            "ok": len(self.images) >= count and len(self.clouds) >= count and not self.bad,
            "images": len(self.images),
            "clouds": len(self.clouds),
            "bad": self.bad[:5],
            "images_published_min": published,
            "images_missing": sorted(set(range(published)) - set(self.images))[:10],
            "image_delivered_fraction": round(len(set(self.images)) / published, 4) if published else 0.0,
            "image_latency_ms_median": round(statistics.median(lat), 2) if lat else None,
            "image_latency_ms_max": round(lat[-1], 2) if lat else None,
            "first_message_s": None if self.first_s is None else round(self.first_s, 2),
        }


def run(count: int, timeout: float, reliable: bool) -> int:
    node = rclpy.create_node("imkd_test_sub")
    tally = Tally()
    try:
        qos = pc.sensor_qos(reliable)
        node.create_subscription(Image, pc.IMAGE_TOPIC, tally.on_image, qos)
        node.create_subscription(PointCloud2, pc.CLOUD_TOPIC, tally.on_cloud, qos)
        t0 = time.monotonic()
        while len(tally.images) < count or len(tally.clouds) < count:
            if tally.bad or time.monotonic() - t0 > timeout:
                break
            rclpy.spin_once(node, timeout_sec=0.1)
            if tally.first_s is None and (tally.images or tally.clouds or tally.bad):
                tally.first_s = time.monotonic() - t0
        summary = tally.summary(count)
        print("SUMMARY " + json.dumps(summary), flush=True)
        return 0 if summary["ok"] else 1
    finally:
        node.destroy_node()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="good images and clouds needed")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    parser.add_argument("--reliable", action="store_true", help="RELIABLE instead of BEST_EFFORT")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    try:
        return run(args.count, args.timeout, args.reliable)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
