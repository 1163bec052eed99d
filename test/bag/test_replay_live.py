"""``imkd bag replay-eval --live`` for real: the bag player and ``detector_node`` as two ROS 2 processes at 1x real
time on a one-scene bag; the node's answers are recorded, scored and reported with the frames it missed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.apps.replay_eval import run_replay_eval

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "student_nokd.pt"


@pytest.mark.skipif(not MODEL.is_file(), reason=f"shipped model {MODEL} missing")
def test_live_replay_at_rate_one(exported_bag: Path, tmp_path: Path) -> None:
    from imkd_ros.bag.interfaces import read_detections

    offline = run_replay_eval(exported_bag, MODEL, tmp_path / "offline", bev_frames=0)
    out = tmp_path / "live"
    rep = run_replay_eval(exported_bag, MODEL, out, live=True, rate=1.0, bev_frames=2, timeout=120.0)
    live, frames = rep["live"], rep["frames"]
    logs = f"{(out / 'live' / 'detector_node.log').read_text()}\n{(out / 'live' / 'player.log').read_text()}"
    assert rep["mode"] == "live" and live["rate"] == 1.0, logs
    assert live["frames_published"] == 4 and frames["evaluated"] == 4, logs
    assert live["frames_answered"] + live["frames_missed"] == 4 and live["frames_answered"] >= 2, logs
    assert live["missed_by_sync"] == 0 and rep["sync"]["frame_drops"] == {}
    assert live["missed_under_load"] == live["frames_missed"]
    assert frames["keyframes_without_detections"] == live["frames_missed"]
    assert "live: 4 frames published" in (out / "report.md").read_text()

    # the node's answers carry the camera stamps and are the offline replay's detections (same assembly code,
    # velocities rounded to 1e-4 m/s in the messages); the node also wrote them to the player's bag
    recorded = read_detections(out / "live" / "outputs")
    by_stamp = {f["stamp_ns"]: f for f in offline["per_frame"]}
    answered = [f for f in rep["per_frame"] if f["detections"] is not None]
    assert {f["stamp_ns"] for f in answered} == set(recorded) <= set(by_stamp)
    for f in answered:
        assert f["detections"] == by_stamp[f["stamp_ns"]]["detections"], f
        assert f["latency_ms"] > 0  # processing_ms may still be on its way for the last frame
    if live["frames_missed"] == 0:
        # the node may run the model with another torch thread count than this process: float sums differ in the
        # last bits, which moves scores/boxes by ~1e-6 and the metrics by up to ~1e-4 (a wrong pairing moves them
        # by far more)
        assert rep["metrics"]["map"] == pytest.approx(offline["metrics"]["map"], abs=1e-3)
        assert rep["metrics"]["nds"] == pytest.approx(offline["metrics"]["nds"], abs=1e-3)
    assert np.isfinite(rep["latency_ms"]["p50"]) and json.loads((out / "report.json").read_text())["live"] == live


def test_pacing_does_not_wait_through_the_cut_between_scenes() -> None:
    """Scenes an hour apart in one bag: the player publishes across the cut at once, and paces within a scene (on a
    virtual clock that only sleeping advances)."""
    from imkd_ros.nodes.player import Event, play

    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    class Fake:
        answers: dict = {}

        def __init__(self) -> None:
            self.published: list[float] = []

        def preload(self, events: object) -> None:
            pass

        def publish(self, ev: Event) -> float:
            self.published.append(now[0])
            return now[0]

        def wait_answer(self, stamp: int, timeout: float) -> bool:
            return False

    hour, step = 3600 * 10**9, 100_000_000
    events = [Event(t, "camera", str(t), True, "") for t in (0, step, hour, hour + step, 5 * step)]  # + a jump back
    fake = Fake()
    rows = play(fake, events, rate=1.0, lockstep=False, settle=0.0, clock=lambda: now[0], sleep=sleep)
    assert len(rows) == 5 and sleeps == pytest.approx([0.1, 0.1])  # within each scene only: not the hour, not back
    assert np.diff(fake.published) == pytest.approx([0.1, 0.0, 0.1, 0.0])
