"""Teacher targets from a bag: the cache equals the one built from the dataset the bag came from (same keys, same
plan, byte-identical shards, so bit-equal float16 maps), also for a scene recorded without annotations; a corrupt
bag stops with a BagError naming the message, the shards written before stay valid, and a rerun on the repaired bag
computes only the rest; the TeacherTargets bag holds the cache's values; ``imkd bag teacher-targets`` runs end to
end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import torch_threads

from imkd_ros.apps.bag_targets import build_bag_target_cache, targets_from_msg, targets_msg_fields
from imkd_ros.bag.errors import BagError
from imkd_ros.bag.source import BagSource
from imkd_ros.cli import main as cli_main
from imkd_ros.distill import targets as targets_mod
from imkd_ros.distill.cache import INDEX_NAME, TargetCache
from imkd_ros.distill.targets import build_target_cache


@pytest.fixture(scope="module")
def dataset_cache(synth_root: Path, bag_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synth_val cache built from the dataset, with one torch thread like the tests (the float sums, and so the
    bits, of a forward pass depend on the thread count)."""
    out = tmp_path_factory.mktemp("targets") / "from_dataset"
    with torch_threads(1):
        build_target_cache(
            synth_root, bag_teacher, out, split="synth_val", shard_size=3, lidar_sweeps=2, progress=False, debug_pngs=0
        )
    return out


def test_bag_targets_equal_the_datasets(
    exported_bag: Path, bag_teacher: Path, dataset_cache: Path, tmp_path: Path
) -> None:
    rep = build_bag_target_cache(
        exported_bag,
        bag_teacher,
        tmp_path / "cache",
        shard_size=3,
        lidar_sweeps=2,
        progress=False,
        debug_pngs=1,
        out_bag=tmp_path / "targets_bag",
    )
    assert (rep.samples, rep.shards, rep.computed_shards, rep.computed_samples) == (4, 2, 2, 4)
    assert rep.frames_per_s > 0 and rep.x_realtime > 0 and 1.5 < rep.bag_seconds < 2.5
    a, b = TargetCache(dataset_cache), TargetCache(tmp_path / "cache")
    assert b.complete and b.tokens == a.tokens  # same keys, same order, same shard plan
    assert b.header.grid == a.header.grid and b.header.source["bag"] == str(exported_bag.resolve())
    ia, ib = (json.loads((p / INDEX_NAME).read_text()) for p in (dataset_cache, tmp_path / "cache"))
    assert [s["sha256"] for s in ib["shards"]] == [s["sha256"] for s in ia["shards"]]  # byte-identical shards
    for tok in a.tokens:
        x, y = a.get(tok), b.get(tok)
        assert x.timestamp == y.timestamp and y.features.dtype == np.float16
        for name in ("features", "intensity", "heatmap", "boxes", "labels", "scores"):
            np.testing.assert_array_equal(getattr(y, name), getattr(x, name))
    assert len(list((tmp_path / "cache" / "debug").glob("intensity_*.png"))) == 1
    # the TeacherTargets bag: one message per sample, at its reference stamp, with the cache's values
    msgs = list(BagSource(rep.out_bag).messages(["/teacher/targets"]))
    assert [m.msg.sample_token for m in msgs] == a.tokens
    for m in msgs:
        t, grid = targets_from_msg(m.msg)
        assert (
            grid.matches(a.header.grid) and m.stamp_ns == t.timestamp * 1000 == a.get(t.sample_token).timestamp * 1000
        )
        assert m.msg.header.frame_id == "base_link" and list(m.msg.class_names) == list(a.header.class_names)
        np.testing.assert_array_equal(t.heatmap, a.get(t.sample_token).heatmap.astype(np.float32))
        np.testing.assert_array_equal(t.boxes, a.get(t.sample_token).boxes)


def test_bag_targets_equal_the_datasets_on_an_unlabelled_scene(
    synth_unlabelled_root: Path, bag_teacher: Path, tmp_path: Path
) -> None:
    """A drive recorded without annotations: its bag holds no ground truth (only the sample tokens), and its targets,
    pseudo-labels included, from the bag equal the dataset's bit for bit."""
    from imkd_ros.bag.export import export_bag

    bag = tmp_path / "bag"
    stats = export_bag(synth_unlabelled_root, bag, scenes=["scene-0001"], all_camera_frames=True)
    assert stats["unlabelled_scenes"] == ["scene-0001"] and stats["keyframes"] == stats["unlabelled_keyframes"] == 2
    assert stats["messages"]["/ground_truth/objects"] == 0 and stats["messages"]["/nuscenes/sample_token"] == 2
    assert BagSource(bag).ground_truth() == {}
    ds, bg = tmp_path / "from_dataset", tmp_path / "from_bag"
    build_target_cache(
        synth_unlabelled_root,
        bag_teacher,
        ds,
        split="synth_unlabelled",
        shard_size=1,
        lidar_sweeps=2,
        progress=False,
        debug_pngs=0,
    )
    build_bag_target_cache(bag, bag_teacher, bg, shard_size=1, lidar_sweeps=2, progress=False, debug_pngs=0)
    a, b = TargetCache(ds), TargetCache(bg)
    assert b.complete and b.tokens == a.tokens and len(a) == 2
    assert b.header.boxes == a.header.boxes and a.header.min_box_score > 0
    ia, ib = (json.loads((p / INDEX_NAME).read_text()) for p in (ds, bg))
    assert [s["sha256"] for s in ib["shards"]] == [s["sha256"] for s in ia["shards"]]  # byte-identical shards
    for tok in a.tokens:
        x, y = a.get(tok), b.get(tok)
        assert x.timestamp == y.timestamp and len(x.boxes) > 0
        for name in ("features", "intensity", "heatmap", "boxes", "labels", "scores"):
            np.testing.assert_array_equal(getattr(y, name), getattr(x, name))


def test_a_corrupt_bag_stops_keeps_finished_shards_and_resumes(
    exported_bag: Path,
    bag_teacher: Path,
    dataset_cache: Path,
    tmp_path: Path,
    rewrite_bag: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = BagSource(exported_bag)
    keys = src.keyframes()
    lidar = [m.stamp_ns for m in src.messages(["lidar"])]
    bad = min(lidar, key=lambda s: abs(s - keys[3][1]))  # the LiDAR keyframe of the 4th sample (2nd shard)
    bag = tmp_path / "bag"
    rewrite_bag(exported_bag, bag, lambda topic, log, raw: raw[:300] if (topic, log) == ("/lidar/top", bad) else None)
    calls: list[str] = []
    real = targets_mod.compute_teacher_targets

    def counting(teacher, batch, spec, tta=False):  # noqa: ANN001, ANN202
        calls.extend(batch.tokens)
        return real(teacher, batch, spec, tta)

    monkeypatch.setattr(targets_mod, "compute_teacher_targets", counting)
    out = tmp_path / "cache"
    with pytest.raises(BagError, match=rf"bag {bag}: message on /lidar/top .* at log time {bad}"):
        build_bag_target_cache(bag, bag_teacher, out, shard_size=3, lidar_sweeps=2, progress=False, debug_pngs=0)
    index = json.loads((out / INDEX_NAME).read_text())
    assert not index["complete"] and sorted(index["samples"]) == sorted(k for k, _ in keys[:3])
    assert sorted(p.name for p in out.glob("shard_*")) == ["shard_00000.npz"]
    TargetCache(out).verify()  # what was written is valid
    first = out / "shard_00000.npz"
    mtime = first.stat().st_mtime_ns
    # repair the bag in place and rerun: only the second shard is computed
    import shutil

    shutil.rmtree(bag)
    rewrite_bag(exported_bag, bag)
    calls.clear()
    rep = build_bag_target_cache(bag, bag_teacher, out, shard_size=3, lidar_sweeps=2, progress=False, debug_pngs=0)
    assert (rep.computed_shards, rep.reused_shards, rep.computed_samples) == (1, 1, 1)
    assert calls == [keys[3][0]] and first.stat().st_mtime_ns == mtime
    resumed = json.loads((out / INDEX_NAME).read_text())
    full = json.loads((dataset_cache / INDEX_NAME).read_text())
    assert resumed["complete"] and [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in full["shards"]]
    calls.clear()
    again = build_bag_target_cache(bag, bag_teacher, out, shard_size=3, lidar_sweeps=2, progress=False, debug_pngs=0)
    assert (again.computed_shards, again.reused_shards, calls) == (0, 2, [])


def test_message_fields_round_trip_and_bad_sizes(dataset_cache: Path) -> None:
    from types import SimpleNamespace

    cache = TargetCache(dataset_cache)
    t = cache.get(cache.tokens[0])
    fields = targets_msg_fields(t, cache.header)
    stamp = t.timestamp * 1000
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp // 10**9, nanosec=stamp % 10**9)))
    msg.__dict__.update(fields)
    back, grid = targets_from_msg(msg)
    assert grid == cache.header.grid and back.sample_token == t.sample_token and back.timestamp == t.timestamp
    np.testing.assert_array_equal(back.features, t.features.astype(np.float32))
    np.testing.assert_array_equal(back.labels, t.labels)
    msg.heatmap = msg.heatmap[:-1]
    with pytest.raises(BagError, match=r"heatmap has \d+ values, expected \(10, 16, 16\)"):
        targets_from_msg(msg)
    msg.format_version = 99
    with pytest.raises(BagError, match="format version 99"):
        targets_from_msg(msg)


def test_imkd_bag_teacher_targets_cli(
    exported_bag: Path, bag_teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bag", "teacher-targets", "--bag", str(exported_bag), "--teacher", str(bag_teacher)]
    out = ["--out", str(tmp_path / "cache"), "--shard-size", "2", "--debug-pngs", "0"]
    assert cli_main([*args, *out, "--out-bag", str(tmp_path / "tt")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["samples"], summary["shards"], summary["computed_shards"]) == (4, 2, 2)
    assert summary["out_bag"] == str(tmp_path / "tt") and (tmp_path / "tt" / "metadata.yaml").is_file()
    assert cli_main([*args, *out]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reused_shards"] == 2
    assert cli_main([*args, *out, "--out-bag", str(tmp_path / "tt")]) == 2
    assert "tt exists" in capsys.readouterr().err
    bad = ["bag", "teacher-targets", "--bag", str(tmp_path / "missing"), "--teacher", str(bag_teacher), *out]
    assert cli_main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imkd bag: error: bag") and "missing does not exist" in err and "\n" not in err
