"""The ``main`` of every node console script: init, build, spin, stop cleanly on Ctrl-C, one-line user errors."""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from imkd_ros.core.errors import ImkdError

__all__ = ["run_node"]

# rclpy's SIGINT handler raises KeyboardInterrupt in the main thread at once but shuts the context down from another
# thread a moment later: an rcl call in between fails while rclpy.ok() still says True. This long for that to settle.
_SHUTDOWN_SETTLE_S = 1.0


def _shutting_down() -> bool:
    """Whether the context is going down (a Ctrl-C or an external shutdown), waiting briefly for rclpy's handler."""
    deadline = time.monotonic() + _SHUTDOWN_SETTLE_S
    while rclpy.ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def run_node(name: str, make: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Run the node ``make()`` builds until Ctrl-C or an external shutdown. ``SIGUSR1`` prints every thread's
    Python stack to stderr and the node goes on (to see where a stuck node waits).

    Returns:
        0 on a clean stop, whenever the Ctrl-C lands: while the node is being built (rclpy's signal handler shuts the
        context down under it and the next rcl call fails), spinning, or being torn down; 2 after a user error
        (missing file, bad parameter, :class:`~imkd_ros.core.errors.ImkdError`), printed as one line
        ``<name>: error: ...``.
    """
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's Python stack to stderr (a hung node)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return _run(name, make, args)
    except KeyboardInterrupt:  # a second Ctrl-C, or the first one landing in the teardown
        rclpy.try_shutdown()
        return 0


def _run(name: str, make: Callable[[], Node], args: Sequence[str] | None) -> int:
    rclpy.init(args=args)
    node, interrupted = None, False
    try:
        node = make()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    except (FileNotFoundError, ValueError, ImkdError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        if not _shutting_down():
            raise
        interrupted = True
    finally:
        if node is not None:
            try:
                node.destroy_node()
            except Exception:  # the context went down under the node's entities
                if not (interrupted or _shutting_down()):
                    raise
        try:
            rclpy.try_shutdown()  # also destroys the nodes the context still holds (one half-built by a Ctrl-C)
        except Exception:
            if not interrupted:
                raise
    return 0
