"""Test peer of test_detector_node.py's lifecycle test: drives ``detector_lifecycle_node`` through its transitions
with the standard ``lifecycle_msgs`` services from another process, and checks after each what the node offers on
the graph (subscriptions to the camera, publishers of detections and /diagnostics). Prints ``SUMMARY <json>``.

Run: python lifecycle_driver.py --node /detector_node --timeout 120
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image


def _call(client: Any, request: Any, timeout: float) -> Any:
    future = client.call_async(request)
    end = time.monotonic() + timeout
    while not future.done() and time.monotonic() < end:
        time.sleep(0.02)
    return future.result() if future.done() else None


def _wait(pred: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--node", default="/detector_node")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    rclpy.init()
    me = Node("lifecycle_driver")
    executor = SingleThreadedExecutor()
    executor.add_node(me)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    image_pub = me.create_publisher(Image, "/camera/image", 1)
    get_state = me.create_client(GetState, f"{args.node}/get_state")
    change = me.create_client(ChangeState, f"{args.node}/change_state")
    out: dict[str, Any] = {"steps": []}
    try:
        if not (get_state.wait_for_service(timeout_sec=args.timeout) and change.wait_for_service(timeout_sec=30)):
            print("driver: no lifecycle services", file=sys.stderr)
            return 3

        def state() -> str:
            res = _call(get_state, GetState.Request(), 30)
            return res.current_state.label if res else "?"

        def graph() -> dict[str, int]:
            return {
                "image_subscribers": image_pub.get_subscription_count(),
                "objects_publishers": me.count_publishers(f"{args.node}/output/objects"),
                "detected_objects_publishers": me.count_publishers(f"{args.node}/output/detected_objects"),
                "diagnostics_publishers": me.count_publishers("/diagnostics"),
                "tf_static_subscribers": me.count_subscribers("/tf_static"),
            }

        out["initial"] = {"state": state(), **graph()}
        for name, tid, settled in (
            ("configure", Transition.TRANSITION_CONFIGURE, lambda g: g["image_subscribers"] == 0),
            ("activate", Transition.TRANSITION_ACTIVATE, lambda g: g["image_subscribers"] > 0
                and g["diagnostics_publishers"] > 0 and g["detected_objects_publishers"] > 0),
            ("deactivate", Transition.TRANSITION_DEACTIVATE, lambda g: g["image_subscribers"] == 0
                and g["objects_publishers"] == 0),
            ("cleanup", Transition.TRANSITION_CLEANUP, lambda g: g["image_subscribers"] == 0),
            ("configure", Transition.TRANSITION_CONFIGURE, lambda g: True),
            ("activate", Transition.TRANSITION_ACTIVATE, lambda g: g["image_subscribers"] > 0),
            ("shutdown", Transition.TRANSITION_ACTIVE_SHUTDOWN, lambda g: g["image_subscribers"] == 0),
        ):  # fmt: skip
            t0 = time.monotonic()
            res = _call(change, ChangeState.Request(transition=Transition(id=tid)), args.timeout)
            ok = bool(res and res.success)
            _wait(lambda s=settled: s(graph()), 20.0)  # discovery of the graph change
            out["steps"].append(
                {"transition": name, "success": ok, "state": state(), "s": round(time.monotonic() - t0, 2), **graph()}
            )
        print("SUMMARY " + json.dumps(out), flush=True)
    finally:
        executor.shutdown()
        spinner.join(timeout=10.0)
        me.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
