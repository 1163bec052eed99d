"""Throttled warnings of the nodes: one line per kind of problem per period, with a count of those suppressed.
Pure Python (no rclpy): the node passes its logger's ``warning``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["WarningThrottle"]


class WarningThrottle:
    """``warn(kind, text)`` logs ``text`` through ``log`` unless a warning of ``kind`` was logged less than
    ``period`` seconds ago (monotonic clock); then it only counts it, and the next logged one says how many were
    suppressed."""

    def __init__(self, log: Callable[[str], object], period: float) -> None:
        self._log = log
        self.period = float(period)
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, kind: str, text: str) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(kind, (-math.inf, 0))
        if now - last >= self.period:
            more = f" ({suppressed} more like it suppressed)" if suppressed else ""
            self._log(f"{text}{more}")
            self._last[kind] = (now, 0)
        else:
            self._last[kind] = (last, suppressed + 1)
