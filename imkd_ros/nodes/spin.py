"""The ``main`` of every node console script: init, build, spin, stop cleanly on Ctrl-C, one-line user errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from imkd_ros.errors import ImkdError

__all__ = ["run_node"]


def run_node(name: str, make: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Run the node ``make()`` builds until Ctrl-C or an external shutdown.

    Returns:
        0 on a clean stop (also when SIGINT arrives while the node is still being built: rclpy's signal handler
        shuts the context down under it and the next rcl call fails); 2 after a user error (missing file, bad
        parameter, :class:`~imkd_ros.errors.ImkdError`), printed as one line ``<name>: error: ...``.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (FileNotFoundError, ValueError, ImkdError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            try:
                node.destroy_node()
            except Exception:  # a Ctrl-C during start-up already shut the context down under the node
                if rclpy.ok():
                    raise
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0
