"""Test peer of test_spin.py: runs :func:`imkd_ros.nodes.spin.run_node` on one scripted misbehaviour and prints
``RC <code>``. The scenarios stand in for where a Ctrl-C can land; rclpy's own SIGINT handler raises
KeyboardInterrupt at once but shuts the context down from another thread a moment later.

Run: python spin_driver.py SCENARIO   (see SCENARIOS)
"""

from __future__ import annotations

import sys
import threading

import rclpy
from rclpy.node import Node

from imkd_ros.nodes.spin import run_node


def _later(fn, delay: float = 0.2) -> None:  # noqa: ANN001
    threading.Timer(delay, fn).start()


class _Node(Node):
    def __init__(
        self, *, spin_error: type[BaseException] | None = None, destroy_error: type[BaseException] | None = None
    ) -> None:
        super().__init__("spin_probe")
        self._destroy_error = destroy_error
        if spin_error is not None:

            def fire() -> None:
                raise spin_error("from a callback")

            self.create_timer(0.05, fire)

    def destroy_node(self) -> None:
        super().destroy_node()
        if self._destroy_error is not None:
            raise self._destroy_error("from the teardown")


def _build_fails_as_context_goes_down() -> Node:
    _later(rclpy.try_shutdown)  # what rclpy's deferred SIGINT handler does
    raise RuntimeError("rcl call on a context being shut down")


def _build_interrupted() -> Node:
    raise KeyboardInterrupt


def _build_interrupted_after_node_exists() -> Node:
    _Node(destroy_error=RuntimeError)  # the context holds it and destroys it at shutdown: the teardown fails
    raise KeyboardInterrupt


def _build_genuine_bug() -> Node:
    raise RuntimeError("a genuine bug while building the node")


def _build_bad_parameter() -> Node:
    raise ValueError("parameter backend: 'tensorrt' is not one of ...")


SCENARIOS = {
    "build_fails_as_context_goes_down": _build_fails_as_context_goes_down,
    "build_interrupted": _build_interrupted,
    "build_interrupted_after_node_exists": _build_interrupted_after_node_exists,
    "genuine_bug": _build_genuine_bug,
    "bad_parameter": _build_bad_parameter,
    "interrupt_while_spinning": lambda: _Node(spin_error=KeyboardInterrupt),
    "interrupt_in_teardown": lambda: _Node(spin_error=KeyboardInterrupt, destroy_error=KeyboardInterrupt),
    "teardown_fails_after_interrupt": lambda: _Node(spin_error=KeyboardInterrupt, destroy_error=RuntimeError),
}

if __name__ == "__main__":
    rc = run_node("spin_probe", SCENARIOS[sys.argv[1]], [])
    print(f"RC {rc}", flush=True)
    sys.exit(rc)
