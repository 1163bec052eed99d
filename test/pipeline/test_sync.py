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


# ------------------------------------------------------------------------------------------------- camera sets

#: nuScenes-like exposure delays after the reference camera (ms): the LiDAR's beam passes each camera in turn.
_STAGGER_MS = {"front": 0, "front_right": 8, "back_right": 15, "back": 25, "back_left": 35, "front_left": 42}


def _rig_streams(seconds: float, rng: np.random.Generator, lost: frozenset[tuple[str, int]] = frozenset()):
    """Six cameras at 12 Hz exposed in turn, a radar at 13 Hz, jittered, each message delivered ``latency`` after
    its stamp (so deliveries interleave across sets); ``lost`` (camera, frame index) never arrive."""
    events = []
    for i, t0 in enumerate(np.arange(0.05, seconds, 1 / 12) * NS_PER_S):
        for cam, d in _STAGGER_MS.items():
            if (cam, i) not in lost:
                t = int(t0 + d * MS + rng.normal(0, 1.0) * MS)
                events.append((t + int(rng.uniform(5, 60) * MS), "camera", cam, t, i))
    for t in np.arange(0.0, seconds, 1 / 13) * NS_PER_S:
        events.append((int(t) + 3 * MS, "radar", "front", int(t), -1))
    return sorted(events)


def _run_rig(sync: CameraRadarSync, events) -> tuple[list, list]:
    sets, drops = [], []
    for _, kind, name, t, i in events:
        if kind == "camera":
            out, ev = sync.add_camera(t, (name, i), camera=name)
        else:
            out, ev = sync.add_radar(name, t, f"pts{t}")
        drops += ev
        if out is not None:
            sets.append(out)
    return sets, drops


def test_camera_sets_pair_staggered_cameras_of_the_same_sample_whatever_the_arrival_order() -> None:
    """Cameras exposed up to 42 ms after the reference (half a 12 Hz period: a frame of sample i is as close to
    sample i+1's reference as to its own), delivered with random latencies so that frames of consecutive samples
    interleave: every set holds the six frames of one sample, none is reused. (A set whose last frame comes after
    the next sample's reference frame is dropped: keep-latest.)"""
    cams = tuple(_STAGGER_MS)
    sync = CameraRadarSync(["front"], cameras=cams, camera_lead=0.01, camera_window=0.06)
    sets, drops = _run_rig(sync, _rig_streams(4.0, np.random.default_rng(1)))
    assert len(sets) >= 40 and all(d.kind == "missing_camera" for d in drops)
    for s in sets:
        assert list(s.cameras) == list(cams)
        samples = {view.data[1] for view in s.cameras.values()}
        assert len(samples) == 1 and s.camera == ("front", samples.pop())
        assert all(0 <= v.stamp - s.stamp <= 50 * MS for v in s.cameras.values())
        assert s.radar["front"][0].stamp <= s.stamp
    used = [v.data for s in sets for v in s.cameras.values()]
    assert len(used) == len(set(used))


def test_a_missing_camera_drops_its_set_and_names_the_camera() -> None:
    cams = tuple(_STAGGER_MS)
    lost = frozenset({("back", 10), ("front_left", 20)})
    sync = CameraRadarSync(["front"], cameras=cams, camera_lead=0.01, camera_window=0.06)
    events = sorted((e[3] + 2 * MS, *e[1:]) for e in _rig_streams(3.0, np.random.default_rng(2), lost))  # stamp order
    sets, drops = _run_rig(sync, events)
    samples = sorted(s.camera[1] for s in sets)
    n = len({e[4] for e in events if e[1] == "camera"})
    assert samples == [i for i in range(n) if i not in (10, 20)]
    missing = [d for d in drops if d.kind == "missing_camera"]
    refs = {e[4]: e[3] for e in events if e[2] == "front" and e[1] == "camera"}
    assert [d.stamp for d in missing] == [refs[10], refs[20]]
    assert "camera back" in missing[0].text and "camera front_left" in missing[1].text
    assert all("every camera or not at all" in d.text for d in missing)
    assert not [d for d in drops if d.kind != "missing_camera"]


def test_camera_set_arguments_and_unknown_cameras() -> None:
    sync = CameraRadarSync(["front"], cameras=("a", "b"))
    _, ev = sync.add_camera(0, "x", camera="c")
    assert [e.kind for e in ev] == ["unknown_camera"] and "'c'" in ev[0].text
    sync.add_camera(5 * MS, "b0", camera="b")
    _, ev = sync.add_camera(5 * MS, "b0", camera="b")
    assert [e.kind for e in ev] == ["duplicate"]
    with pytest.raises(ValueError, match="cameras must be unique"):
        CameraRadarSync(["front"], cameras=("a", "a"))
    with pytest.raises(ValueError, match="camera_window"):
        CameraRadarSync(["front"], cameras=("a",), camera_window=-1)


def test_a_set_waiting_for_a_camera_is_superseded_with_the_camera_named() -> None:
    sync = CameraRadarSync(["front"], cameras=("a", "b"), max_delay=0.1)
    sync.add_radar("front", 0, "r")
    out, _ = sync.add_camera(10 * MS, "a0", camera="a")
    assert out is None and sync.pending_stamp == 10 * MS  # b's frame not there yet
    out, ev = sync.add_camera(93 * MS, "a1", camera="a")
    assert out is None and [e.kind for e in ev] == ["missing_camera"] and "frame of camera b" in ev[0].text
    out, _ = sync.add_camera(100 * MS, "b1", camera="b")
    assert out is not None and out.camera == "a1" and out.cameras["b"].data == "b1"
