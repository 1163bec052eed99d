"""``detector_lifecycle_node``: the detector as a managed (lifecycle) node (``ros2 run imkd_ros
detector_lifecycle_node``; ``ros2 launch imkd_ros detector.launch.py lifecycle:=true``).

The same detector as ``detector_node`` (:class:`imkd_ros.nodes.detector_core.DetectorCore`), driven by the standard
transitions (``lifecycle_msgs`` services ``~/change_state``, ``~/get_state``; ``ros2 lifecycle set``):

* construction (unconfigured): parameters declared and checked;
* configure: loads the model (a missing checkpoint: the transition fails and the node stays unconfigured);
* activate: creates the subscriptions (inputs, ``/tf_static``, ``/tf``), publishers and the ``/diagnostics`` timer;
* deactivate: destroys them (the model stays loaded);
* cleanup: releases the model; shutdown: all of it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from imkd_ros.nodes.detector_core import DetectorCore
from imkd_ros.nodes.spin import run_node

__all__ = ["DetectorLifecycleNode", "main"]


class DetectorLifecycleNode(LifecycleNode):
    """The managed detector (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("detector_node", **kwargs)
        self.core = DetectorCore(self)
        self._loaded = self._active = False

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.core.load()
        except Exception as exc:  # noqa: BLE001 - a failed transition is reported, the node stays unconfigured
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._loaded = True
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.start()
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        if self._active:
            self.core.stop()
            self._active = False

    def _release(self) -> None:
        if self._loaded:
            self.core.release()
            self._loaded = False

    def destroy_node(self) -> None:
        self._stop()
        self._release()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``detector_lifecycle_node`` (takes ``--ros-args ...``); starts unconfigured."""
    return run_node("detector_lifecycle_node", DetectorLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
