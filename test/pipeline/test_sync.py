"""Camera-radar pairing and the ego-pose buffer under jittered, dropped, duplicated and out-of-order streams."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.core.transforms import Pose
from imkd_ros.pipeline.sync import NS_PER_S, CameraRadarSync, PoseBuffer

MS = 1_000_000  # ns


def _streams(seconds: float, rng: np.random.Generator, jitter_ms: float = 5.0) -> list[tuple[str, int]]:
    """Camera at 12 Hz and radar at 13 Hz with Gaussian stamp jitter, merged in stamp order (what a bag plays)."""
    cam = np.arange(0.05, seconds, 1 / 12) * NS_PER_S + rng.normal(0, jitter_ms, 10**4)[: int(seconds * 12)] * MS
    radar = np.arange(0.0, seconds, 1 / 13) * NS_PER_S + rng.normal(0, jitter_ms, 10**4)[: int(seconds * 13)] * MS
    events = [("camera", int(t)) for t in cam] + [("radar", int(t)) for t in radar]
    return sorted(events, key=lambda e: e[1])


def _run(sync: CameraRadarSync, events: list[tuple[str, int]]) -> tuple[list, list]:
    sets, drops = [], []
    for kind, t in events:
        out, ev = sync.add_camera(t, f"img{t}") if kind == "camera" else sync.add_radar("front", t, f"pts{t}")
        drops += ev
        if out is not None:
            sets.append(out)
    return sets, drops


def test_jittered_in_order_streams_pair_every_frame_with_the_nearest_earlier_sweep() -> None:
    events = _streams(5.0, np.random.default_rng(0))
    sync = CameraRadarSync(["front"], max_delay=0.1, sweeps=6, max_sweep_age=0.6)
    sets, drops = _run(sync, events)
    cams = [t for k, t in events if k == "camera"]
    radars = np.array(sorted(t for k, t in events if k == "radar"))
    assert [s.stamp for s in sets] == cams and drops == []
    for s in sets:
        sweeps = s.radar["front"]
        key = sweeps[0].stamp
        earlier = radars[radars <= s.stamp]
        assert key == earlier[-1]  # camera came first: the newest sweep already received
        assert abs(key - s.stamp) <= 0.1 * NS_PER_S
        stamps = [w.stamp for w in sweeps]
        assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)
        assert len(sweeps) == min(6, int((earlier >= s.stamp - 0.6 * NS_PER_S).sum()))
        assert all(w.data == f"pts{w.stamp}" for w in sweeps) and s.camera == f"img{s.stamp}"
    assert sync.stats.emitted == len(cams)


def test_camera_waits_for_a_late_radar_then_pairs_with_it() -> None:
    """The key sweep is the newest at or before the camera (causal): a sweep stamped after the camera never pairs
    it, one stamped before it that arrives late (out of order) does."""
    sync = CameraRadarSync(["front"], max_delay=0.05, sweeps=3)
    assert sync.add_radar("front", 0, "a")[0] is None
    out, ev = sync.add_camera(100 * MS, "img")  # newest sweep 100 ms old: outside the window
    assert out is None and ev == [] and sync.pending_stamp == 100 * MS
    out, ev = sync.add_radar("front", 130 * MS, "future")  # after the camera: never its key sweep
    assert out is None and ev == [] and sync.pending_stamp == 100 * MS
    out, ev = sync.add_radar("front", 80 * MS, "late")  # stamped before the camera, arrived late
    assert out is not None and [w.stamp for w in out.radar["front"]] == [80 * MS, 0]
    assert out.stamp == 100 * MS and sync.pending_stamp is None
    # a frame whose window stays empty is dropped once a sweep past camera + max_delay arrives
    assert sync.add_camera(200 * MS, "img2")[0] is None
    out, ev = sync.add_radar("front", 260 * MS, "b")
    assert out is None and [e.kind for e in ev] == ["no_radar"]


def test_dropped_sweeps_are_skipped_and_a_gap_beyond_max_delay_drops_the_frame() -> None:
    rng = np.random.default_rng(1)
    events = _streams(4.0, rng, jitter_ms=2.0)
    radar = [e for e in events if e[0] == "radar"]
    lost = {radar[i][1] for i in rng.choice(len(radar), size=len(radar) // 5, replace=False)}
    kept = [e for e in events if not (e[0] == "radar" and e[1] in lost)]
    sync = CameraRadarSync(["front"], max_delay=0.1, sweeps=6, max_sweep_age=0.6)
    sets, drops = _run(sync, kept)
    assert all(w.stamp not in lost for s in sets for w in s.radar["front"])
    paired = {s.stamp for s in sets}
    for kind, t in kept:  # a frame is lost only when no sweep was within 100 ms when it had to be decided
        if kind == "camera" and t not in paired:
            assert any(d.stamp == t and d.kind in ("superseded", "no_radar") for d in drops)
    assert len(sets) >= 0.7 * sum(k == "camera" for k, _ in kept)

    sync = CameraRadarSync(["front"], max_delay=0.05, sweeps=2)
    sync.add_radar("front", 0, "a")
    assert sync.add_camera(200 * MS, "img")[0] is None
    out, ev = sync.add_radar("front", 300 * MS, "b")  # next sweep is past the window: can never pair
    assert out is None and [e.kind for e in ev] == ["no_radar"] and "no sweep of radar front" in ev[0].text
    assert sync.pending_stamp is None


def test_duplicates_are_dropped_and_named() -> None:
    sync = CameraRadarSync(["front"], max_delay=0.1, sweeps=2)
    sync.add_radar("front", 10 * MS, "a")
    _, ev = sync.add_radar("front", 10 * MS, "a-again")
    assert [e.kind for e in ev] == ["duplicate"] and "already buffered" in ev[0].text
    assert sync.buffered("front") == [10 * MS]
    out, _ = sync.add_camera(20 * MS, "img")
    assert out is not None and out.radar["front"][0].data == "a"
    out, ev = sync.add_camera(20 * MS, "img-again")
    assert out is None and [e.kind for e in ev] == ["duplicate"]
    assert sync.stats.dropped == {"duplicate": 2}


def test_out_of_order_radar_is_sorted_in_and_old_cameras_are_rejected() -> None:
    rng = np.random.default_rng(2)
    stamps = [int(t) for t in np.arange(0, 1.0, 1 / 13) * NS_PER_S]
    shuffled = stamps.copy()
    for i in range(0, len(shuffled) - 2, 3):  # swap neighbours: packets overtaking each other
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    sync = CameraRadarSync(["front"], max_delay=0.1, sweeps=6, capacity=20)
    for t in shuffled:
        sync.add_radar("front", t, t)
    assert sync.buffered("front") == stamps
    out, _ = sync.add_camera(stamps[-1] + 10 * MS, "img")
    assert [w.stamp for w in out.radar["front"]] == stamps[::-1][:6]

    out, ev = sync.add_camera(stamps[-1] - 30 * MS, "older")  # older than the frame already processed
    assert out is None and [e.kind for e in ev] == ["out_of_order"] and "not newer" in ev[0].text
    # a waiting frame is replaced by a newer one (keep latest) and an older one is refused
    sync2 = CameraRadarSync(["front"], max_delay=0.05)
    sync2.add_camera(100 * MS, "a")
    _, ev = sync2.add_camera(150 * MS, "b")
    assert [e.kind for e in ev] == ["superseded"] and ev[0].stamp == 100 * MS
    _, ev = sync2.add_camera(120 * MS, "c")
    assert [e.kind for e in ev] == ["out_of_order"] and sync2.pending_stamp == 150 * MS
    out, _ = sync2.add_radar("front", 140 * MS, "r")
    assert out.camera == "b"
    del rng


def test_time_going_backwards_resets_and_the_next_frames_pair_again() -> None:
    sync = CameraRadarSync(["front"], max_delay=0.1, sweeps=3, reset_after=1.0)
    for t in (0, 77, 154, 231):
        sync.add_radar("front", (100_000 + t) * MS, t)
    assert sync.add_camera(100_240 * MS, "img")[0] is not None
    out, ev = sync.add_camera(10 * MS, "loop")  # the bag starts over
    assert out is None and [e.kind for e in ev] == ["time_reset"] and "time went backwards" in ev[0].text
    assert sync.buffered("front") == []
    sync.add_radar("front", 5 * MS, "r0")
    out, ev = sync.add_camera(20 * MS, "img2")
    assert ev == [] and out is not None and [w.data for w in out.radar["front"]] == ["r0"]
    # a radar sweep from the past resets as well
    _, ev = sync.add_radar("front", 100_000 * MS, "future")
    _, ev = sync.add_radar("front", 1 * MS, "past")
    assert [e.kind for e in ev] == ["time_reset"]


def test_several_radars_all_needed_and_unknown_source_refused() -> None:
    sync = CameraRadarSync(["front", "left"], max_delay=0.05, sweeps=2)
    sync.add_radar("front", 90 * MS, "f")
    out, _ = sync.add_camera(100 * MS, "img")
    assert out is None
    out, _ = sync.add_radar("left", 120 * MS, "l-after")  # after the camera: not usable
    assert out is None
    out, _ = sync.add_radar("left", 95 * MS, "l")
    assert out is not None and set(out.radar) == {"front", "left"}
    assert out.radar["left"][0].data == "l" and out.radar["front"][0].data == "f"
    _, ev = sync.add_radar("rear", 130 * MS, "x")
    assert [e.kind for e in ev] == ["unknown_source"]
    with pytest.raises(ValueError, match="unique and non-empty"):
        CameraRadarSync(["a", "a"])
    with pytest.raises(ValueError, match="sweeps must be >= 1"):
        CameraRadarSync(["a"], sweeps=0)


def test_sweep_age_limits_accumulation() -> None:
    sync = CameraRadarSync(["front"], max_delay=0.1, sweeps=6, max_sweep_age=0.2)
    for i in range(8):
        sync.add_radar("front", i * 77 * MS, i)
    out, _ = sync.add_camera(7 * 77 * MS + 5 * MS, "img")
    assert [w.data for w in out.radar["front"]] == [7, 6, 5]  # 0, 77, 154 ms old; 231 ms is too old


# -------------------------------------------------------------------------------------------------- ego poses


def test_pose_buffer_lookup_interpolates_and_refuses_gaps() -> None:
    buf = PoseBuffer(capacity=4, max_gap=0.5, tolerance=0.02)
    assert buf.lookup(0) is None
    a, b = Pose.from_yaw(0.0, [0, 0, 0]), Pose.from_yaw(0.4, [10, 2, 0])
    buf.add(0, a)
    buf.add(100 * MS, b)
    mid = buf.lookup(25 * MS)
    np.testing.assert_allclose(mid.translation, [2.5, 0.5, 0], atol=1e-12)
    assert mid.yaw == pytest.approx(0.1)
    assert buf.lookup(100 * MS) is b
    assert buf.lookup(110 * MS) is b  # within tolerance of the end
    assert buf.lookup(130 * MS) is None
    buf.add(900 * MS, a)
    assert buf.lookup(500 * MS) is None  # neighbours 800 ms apart
    for i in range(5):
        buf.add((1000 + i) * MS, a)
    assert len(buf) == 4 and buf.lookup(0) is None
    buf.clear()
    assert len(buf) == 0
