"""Building the teacher-target cache from a dataset: contents equal the teacher's outputs, an interrupted build
resumes without recomputing finished shards (and ends byte-identical), and `imkd teacher-targets` runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.cli import main as cli_main
from imkd_ros.data.dataset import collate_frames
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.distill import targets as targets_mod
from imkd_ros.distill.cache import INDEX_NAME, TargetCache
from imkd_ros.distill.targets import CacheBuildReport, build_target_cache
from imkd_ros.model import Student, TeacherInputs
from imkd_ros.model.checkpoint import load_checkpoint, save_checkpoint
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.training.train import model_config_for


def test_cache_holds_the_teacher_outputs(
    synth_root: Path, tiny_teacher_ckpt: Path, tiny_cache: CacheBuildReport
) -> None:
    teacher = load_checkpoint(tiny_teacher_ckpt).build()
    # the cache reads the LiDAR sweeps the teacher was configured (trained) for
    assert tiny_cache.root.is_dir() and teacher.config.lidar.sweeps > 1
    reader = NuScenesReader(synth_root, load_image=False, lidar_sweeps=teacher.config.lidar.sweeps)
    tokens = reader.split_samples("synth_train")
    assert tiny_cache.samples == len(tokens) == 12 and tiny_cache.shards == 3 and tiny_cache.computed_shards == 3
    cache = TargetCache(tiny_cache.root)
    assert cache.complete and cache.tokens == tokens
    assert cache.header.teacher["sha256"] and cache.header.source["split"] == "synth_train"
    assert len(list((tiny_cache.root / "debug").glob("intensity_*.png"))) == 1
    assert cache.header.source["lidar_sweeps"] == teacher.config.lidar.sweeps
    frames = [shrink_frame(reader.frame(t), teacher.config) for t in tokens[5:7]]
    batch = collate_frames(frames)
    with torch.no_grad():
        out = teacher.features(TeacherInputs(batch.lidar, batch.lidar_mask))
    for i, tok in enumerate(tokens[5:7]):
        t = cache.get(tok)
        assert t.features.shape == (16, 16, 16) and t.heatmap.shape == (10, 16, 16) and t.intensity.dtype == np.float16
        np.testing.assert_array_equal(t.features, out.bev[i].numpy().astype(np.float16))
        np.testing.assert_array_equal(t.heatmap, torch.sigmoid(out.head.heatmap[i]).numpy().astype(np.float16))
        assert t.timestamp == frames[i].timestamp
        assert 0.0 <= t.intensity.min() and t.intensity.max() <= 1.0 and t.intensity[0].max() > 0
        assert t.boxes.shape[1] == 9 and len(t.labels) == len(t.scores) == len(t.boxes)


def test_interrupted_build_resumes_without_recomputing(
    synth_root: Path,
    tiny_teacher_ckpt: Path,
    tiny_cache: CacheBuildReport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = targets_mod.compute_teacher_targets
    calls: list[str] = []

    def interrupted(teacher, batch, spec, tta=False):  # noqa: ANN001, ANN202
        calls.append(batch.tokens[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(teacher, batch, spec, tta)

    out = tmp_path / "cache"
    monkeypatch.setattr(targets_mod, "compute_teacher_targets", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_target_cache(synth_root, tiny_teacher_ckpt, out, shard_size=4, progress=False, debug_pngs=0)
    index = json.loads((out / INDEX_NAME).read_text())
    assert not index["complete"] and len(index["samples"]) == 4
    assert sorted(p.name for p in out.glob("shard_*")) == ["shard_00000.npz"]  # no half-written shard left
    first = out / "shard_00000.npz"
    mtime = first.stat().st_mtime_ns

    def counting(teacher, batch, spec, tta=False):  # noqa: ANN001, ANN202
        calls.append(batch.tokens[0])
        return real(teacher, batch, spec, tta)

    calls.clear()
    monkeypatch.setattr(targets_mod, "compute_teacher_targets", counting)
    rep = build_target_cache(synth_root, tiny_teacher_ckpt, out, shard_size=4, progress=False, debug_pngs=0)
    assert (rep.computed_shards, rep.reused_shards, rep.samples) == (2, 1, 12)
    assert len(calls) == 2 and first.stat().st_mtime_ns == mtime
    resumed = json.loads((out / INDEX_NAME).read_text())
    full = json.loads((tiny_cache.root / INDEX_NAME).read_text())
    assert resumed["complete"]
    assert [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in full["shards"]]  # byte-identical
    calls.clear()
    again = build_target_cache(synth_root, tiny_teacher_ckpt, out, shard_size=4, progress=False, debug_pngs=0)
    assert (again.computed_shards, again.reused_shards, calls) == (0, 3, [])


def test_a_corrupt_shard_is_recomputed(synth_root: Path, tiny_teacher_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    build_target_cache(
        synth_root, tiny_teacher_ckpt, out, split="synth_val", shard_size=2, progress=False, debug_pngs=0
    )
    shard = out / "shard_00001.npz"
    shard.write_bytes(shard.read_bytes()[:1000])
    rep = build_target_cache(
        synth_root, tiny_teacher_ckpt, out, split="synth_val", shard_size=2, progress=False, debug_pngs=0
    )
    assert (rep.computed_shards, rep.reused_shards) == (1, 1)
    TargetCache(out).verify()


def test_imkd_teacher_targets_cli(
    synth_root: Path, tiny_teacher_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli_cache"
    args = [
        "teacher-targets",
        "--data",
        str(synth_root),
        "--teacher",
        str(tiny_teacher_ckpt),
        "--out",
        str(out),
        "--split",
        "synth_val",
        "--shard-size",
        "3",
        "--debug-pngs",
        "0",
    ]
    assert cli_main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (first["samples"], first["shards"], first["computed_shards"]) == (4, 2, 2)
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reused_shards"] == 2
    cfg = model_config_for("fusion", "tiny")
    student_ckpt = tmp_path / "student.pt"
    save_checkpoint(student_ckpt, Student(config=cfg), cfg)
    assert cli_main([*args[:4], str(student_ckpt), "--out", str(tmp_path / "x")]) == 2
    assert "is a student checkpoint" in capsys.readouterr().err
    assert cli_main([*args[:4], str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _mirror(boxes: np.ndarray) -> np.ndarray:
    """Cached box rows (x, y, z, w, l, h, yaw, vx, vy) mirrored y -> -y."""
    m = boxes.copy()
    m[:, 1], m[:, 6], m[:, 8] = -m[:, 1], -m[:, 6], -m[:, 8]
    return m


def test_mirrored_head_decodes_to_the_mirrored_boxes() -> None:
    from imkd_ros.model.decode import decode
    from imkd_ros.model.head import HeadOutput

    cfg = model_config_for("lidar", "tiny")
    g = torch.Generator().manual_seed(0)
    k, h, w = len(cfg.classes), cfg.grid.out_ny, cfg.grid.out_nx
    heat = torch.full((1, k, h, w), -8.0)
    for c, r, q in [(0, 3, 5), (1, 10, 2), (2, 7, 12), (0, 14, 9)]:  # distinct peaks, off the middle row
        heat[0, c, r, q] = float(torch.rand(1, generator=g)) * 4
    reg = torch.randn(1, 10, h, w, generator=g)
    reg[:, 0:2] = torch.rand(1, 2, h, w, generator=g)  # offsets inside the cell
    head = HeadOutput(heat, reg)
    plain = decode(head, cfg)[0].to_boxes()
    back = decode(targets_mod.mirror_head_back(head), cfg)[0].to_boxes()
    rows = lambda b: np.c_[b.center, b.size, b.yaw, b.velocity][np.argsort(-b.score)]  # noqa: E731
    assert len(plain) == 4 and np.array_equal(np.sort(plain.score), np.sort(back.score))
    np.testing.assert_allclose(rows(back), _mirror(rows(plain)), atol=1e-5)


def test_tta_targets_are_mirror_symmetric(synth_root: Path, tiny_teacher_ckpt: Path) -> None:
    teacher = load_checkpoint(tiny_teacher_ckpt).build()
    reader = NuScenesReader(synth_root, load_image=False, lidar_sweeps=teacher.config.lidar.sweeps)
    frames = [shrink_frame(reader.frame(t), teacher.config) for t in reader.split_samples("synth_train")[:2]]
    batch = collate_frames(frames)
    mirrored = batch.lidar.clone()
    mirrored[..., 1] = -mirrored[..., 1]
    from dataclasses import replace

    a = targets_mod.compute_teacher_targets(teacher, batch, tta=True)
    b = targets_mod.compute_teacher_targets(teacher, replace(batch, lidar=mirrored), tta=True)
    plain = targets_mod.compute_teacher_targets(teacher, batch)
    for ta, tb, tp in zip(a, b, plain, strict=True):
        np.testing.assert_allclose(ta.heatmap, tb.heatmap[:, ::-1, :], atol=1e-5)
        assert np.abs(ta.heatmap - tp.heatmap).max() > 1e-4  # the mirrored pass changed something (untrained: small)
        np.testing.assert_array_equal(ta.features, tp.features)  # features stay the plain pass's
        strong = ta.scores > ta.scores.max() - 0.05 if len(ta.scores) else ta.scores > 0
        assert len(ta.boxes) == len(tb.boxes)
        for row in _mirror(ta.boxes[strong])[:, :6]:  # centre and size; yaw and velocity are each plain pass's
            assert np.abs(tb.boxes[:, :6] - row).max(axis=1).min() < 1e-3, row


def test_merged_head_keeps_the_plain_rotation_and_velocity() -> None:
    from imkd_ros.model.head import HeadOutput

    g = torch.Generator().manual_seed(1)
    a, b = (HeadOutput(torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 10, 4, 5, generator=g)) for _ in "ab")
    m = targets_mod.merge_heads(a, b)
    torch.testing.assert_close(torch.sigmoid(m.heatmap), (torch.sigmoid(a.heatmap) + torch.sigmoid(b.heatmap)) / 2)
    torch.testing.assert_close(m.regression[:, :6], (a.regression[:, :6] + b.regression[:, :6]) / 2)
    assert torch.equal(m.regression[:, 6:], a.regression[:, 6:])


def test_tta_is_recorded_and_a_plain_cache_is_not_reused(
    synth_root: Path, tiny_teacher_ckpt: Path, tmp_path: Path
) -> None:
    from imkd_ros.distill.errors import TargetCacheError

    rep = build_target_cache(synth_root, tiny_teacher_ckpt, tmp_path / "c", split="synth_val", progress=False,
                             debug_pngs=0, tta=True)  # fmt: skip
    assert TargetCache(rep.root).header.teacher["tta"] == "mirror-y"
    build_target_cache(synth_root, tiny_teacher_ckpt, tmp_path / "p", split="synth_val", progress=False, debug_pngs=0)
    assert "tta" not in TargetCache(tmp_path / "p").header.teacher
    with pytest.raises(TargetCacheError):
        build_target_cache(synth_root, tiny_teacher_ckpt, tmp_path / "p", split="synth_val", progress=False,
                           debug_pngs=0, tta=True)  # fmt: skip
