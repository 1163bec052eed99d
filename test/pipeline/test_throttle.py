"""The nodes' throttled warnings: one line per kind per period, then a count of the suppressed ones."""

from __future__ import annotations

from imkd_ros.pipeline.throttle import WarningThrottle


def test_one_line_per_kind_per_period_with_the_suppressed_count(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("imkd_ros.pipeline.throttle.time.monotonic", lambda: now[0])
    lines: list[str] = []
    w = WarningThrottle(lines.append, period=5.0)
    w.warn("image", "bad image")
    w.warn("image", "bad image")
    w.warn("radar", "bad radar")  # another kind is not throttled by the first
    now[0] += 4.9
    w.warn("image", "bad image")
    assert lines == ["bad image", "bad radar"]
    now[0] += 0.2
    w.warn("image", "bad image")
    w.warn("image", "bad image")
    assert lines == ["bad image", "bad radar", "bad image (2 more like it suppressed)"]
