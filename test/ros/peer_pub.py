"""Publisher process of the ROS 2 runtime test (run as a script by ``test_runtime.py``).

Waits until both topics have a matched subscription (discovery takes ~1-4 s; no blind sleep), then publishes
image ``seq`` (1600x900 rgb8) and radar cloud ``seq`` (200 points, 18 mixed-dtype fields) at ``--rate`` Hz until
the subscriber leaves (its process finished) or ``--timeout`` s pass. Prints ``MATCHED <s>`` and
``PUBLISHED <count>``; exit 0 when the subscriber left, 1 on timeout, 130 on interrupt.
"""

from __future__ import annotations

import argparse
import sys
import time

import peer_common as pc
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header

from imkd_ros.ros.convert import array_to_image, array_to_pointcloud2


def _stamp_now(header: Header) -> None:
    ns = time.time_ns()
    header.stamp.sec, header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000


def run(rate: float, timeout: float, reliable: bool) -> int:
    node = rclpy.create_node("imkd_test_pub")
    try:
        qos = pc.sensor_qos(reliable)
        pub_image = node.create_publisher(Image, pc.IMAGE_TOPIC, qos)
        pub_cloud = node.create_publisher(PointCloud2, pc.CLOUD_TOPIC, qos)
        t0 = time.monotonic()
        deadline = t0 + timeout
        while pub_image.get_subscription_count() == 0 or pub_cloud.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print(f"TIMEOUT no subscriber matched within {timeout:.0f} s", flush=True)
                return 1
            time.sleep(0.02)  # polling a condition, not waiting a guessed time
        print(f"MATCHED {time.monotonic() - t0:.2f}", flush=True)
        seq = 0
        next_t = time.monotonic()
        while pub_image.get_subscription_count() > 0:
            if time.monotonic() > deadline:
                print(f"TIMEOUT subscriber still running after {timeout:.0f} s; PUBLISHED {seq}", flush=True)
                return 1
            image = array_to_image(pc.expected_image(seq), Header(frame_id=pc.frame_id("CAM_FRONT", seq)))
            cloud = array_to_pointcloud2(pc.expected_cloud(seq), Header(frame_id=pc.frame_id("RADAR_FRONT", seq)))
            _stamp_now(cloud.header)
            pub_cloud.publish(cloud)
            _stamp_now(image.header)
            pub_image.publish(image)
            seq += 1
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.monotonic()))
        print(f"PUBLISHED {seq}", flush=True)
        return 0
    finally:
        node.destroy_node()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second per topic")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    parser.add_argument("--reliable", action="store_true", help="RELIABLE instead of BEST_EFFORT")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    try:
        return run(args.rate, args.timeout, args.reliable)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
