"""Errors of :mod:`imkd_ros.bag`."""

from __future__ import annotations

from imkd_ros.errors import ImkdError

__all__ = ["BagError"]


class BagError(ImkdError):
    """A bag that cannot be read or written as asked: missing, truncated or corrupt, a needed topic absent, a
    message of an unexpected type or content. The message names the bag path and the topic or message."""
