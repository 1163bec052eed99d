"""Errors of :mod:`imkd_ros.bag`."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from imkd_ros.core.errors import ImkdError

__all__ = ["BagError", "check_output_bag"]


class BagError(ImkdError):
    """A bag that cannot be read or written as asked: missing, truncated or corrupt, a needed topic absent, a
    message of an unexpected type or content. The message names the bag path and the topic or message."""


def check_output_bag(path: str | PathLike[str], what: str = "OUT") -> Path:
    """A path to write a ROS 2 bag (a folder) at, refused when it ends in ``.bag``: rosbags' ``AnyReader`` takes any
    path ending in ``.bag`` for a ROS 1 bag file and cannot open a rosbag2 folder of that name (nor could our own
    readers), so such a bag would be written and then be unreadable.

    Raises:
        BagError: the name ends in ``.bag`` (the message suggests the name without it).
    """
    path = Path(path)
    if path.name.lower().endswith(".bag"):
        raise BagError(
            f"{what} {path}: a ROS 2 bag is a folder, and a folder named '*.bag' is taken for a ROS 1 bag by rosbags "
            f"(AnyReader) and cannot be opened; choose another name, e.g. {path.with_name(path.name[:-4] or 'out')}"
        )
    return path
