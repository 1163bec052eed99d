"""Bad input files never cost a run: every bad file is named in one error before anything runs, a corrupt image
is a one-line error naming it, and ``--skip-bad-frames`` skips and lists the frames instead (``imkd eval``,
``imkd teacher-targets``, ``imkd train``). Real files, really damaged (truncated JPEG, PCD and .pcd.bin, bit rot in
a JPEG), in a linked copy of the session's synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imkd_ros.cli import main as cli_main
from imkd_ros.data.check import check_file, check_samples, read_frames, usable_samples
from imkd_ros.data.errors import BadFilesError, DataError, ImageFileError
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.model.checkpoint import save_checkpoint

from .damage import flip_bytes, linked_copy, truncate


@pytest.fixture(scope="module")
def damaged(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A copy of ``synth_root`` whose synth_val samples 1, 2 and 3 each read one truncated file: the camera JPEG of
    sample 1, the key radar PCD of sample 2, the key LiDAR sweep of sample 3; and one train sample whose JPEG has
    bit rot (passes the cheap checks, fails to decode)."""
    root = linked_copy(synth_root, tmp_path_factory.mktemp("damaged") / "data")
    reader = NuScenesReader(root)
    val = reader.split_samples("synth_val")
    files = {t: dict(reader.frame_files(t)) for t in val}  # kind -> the first file of that kind
    bad = {
        "image": truncate(files[val[1]]["image"]),
        "radar": truncate(files[val[2]]["radar"], 0.7),
        "lidar": truncate(files[val[3]]["lidar"], 0.3),
    }
    rotten_sample = reader.split_samples("synth_train")[5]
    rotten = flip_bytes(dict(reader.frame_files(rotten_sample))["image"])
    return {"root": root, "val": val, "bad": bad, "rotten": rotten, "rotten_sample": rotten_sample}


def test_check_file_tells_each_kind_of_damage(damaged: dict, synth_root: Path, tmp_path: Path) -> None:
    bad = damaged["bad"]
    assert "truncated JPEG" in check_file("image", bad["image"])
    assert "truncated radar PCD" in check_file("radar", bad["radar"])
    assert "not a multiple of 20" in check_file("lidar", bad["lidar"])
    assert check_file("image", damaged["rotten"]) is None  # bit rot keeps the markers: only decoding finds it
    good = dict(NuScenesReader(synth_root).frame_files(damaged["val"][0]))
    assert all(check_file(k, p) is None for k, p in good.items())
    assert check_file("radar", tmp_path / "nope.pcd") == "missing"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert check_file("image", tmp_path / "empty.jpg").startswith("empty file")
    from PIL import Image

    Image.new("RGB", (32, 16)).save(tmp_path / "x.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "x.png").read_bytes()[:-20])
    assert check_file("image", tmp_path / "x.png") is None
    assert "truncated PNG" in check_file("image", tmp_path / "cut.png")


def test_every_bad_file_is_named_in_one_line(damaged: dict) -> None:
    reader = NuScenesReader(damaged["root"])
    problems = check_samples(reader, damaged["val"])
    assert sorted(p.where for p in problems) == sorted(str(p) for p in damaged["bad"].values())
    assert {s for p in problems for s in p.samples} == set(damaged["val"][1:])
    with pytest.raises(BadFilesError) as exc:
        usable_samples(reader, damaged["val"], what="split synth_val")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("3 bad input files in split synth_val (3 of 4 frames read them)")
    assert all(str(p) in msg for p in damaged["bad"].values()) and "--skip-bad-frames" in msg
    good, skipped = usable_samples(reader, damaged["val"], skip_bad=True)
    assert good == damaged["val"][:1] and [s.sample for s in skipped] == damaged["val"][1:]
    assert str(damaged["bad"]["image"]) in skipped[0].reason and skipped[0].scene == reader.scene_of(good[0])


def test_a_corrupt_jpeg_is_a_one_line_error_naming_it_or_skipped(damaged: dict) -> None:
    reader = NuScenesReader(damaged["root"], load_lidar=False)
    with pytest.raises(ImageFileError) as exc:
        reader.frame(damaged["rotten_sample"])
    assert isinstance(exc.value, DataError) and str(exc.value).startswith(f"{damaged['rotten']}: ")
    assert "\n" not in str(exc.value)
    tokens = reader.split_samples("synth_train")
    with pytest.raises(ImageFileError):
        read_frames(reader, tokens)
    frames, skipped = read_frames(reader, tokens, skip_bad=True)
    assert [f.token for f in frames] == [t for t in tokens if t != damaged["rotten_sample"]]
    assert [s.sample for s in skipped] == [damaged["rotten_sample"]] and str(damaged["rotten"]) in skipped[0].reason


@pytest.fixture(scope="module")
def untrained_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imkd_ros.model import Student
    from imkd_ros.training.train import model_config_for

    torch.manual_seed(0)
    cfg = model_config_for("fusion", "tiny")
    path = tmp_path_factory.mktemp("student") / "student.pt"
    return save_checkpoint(path, Student(config=cfg), cfg, {"note": "untrained test student"})


def test_imkd_eval_names_all_bad_files_or_skips_and_lists_them(
    damaged: dict, untrained_student: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--data", str(damaged["root"]), "--checkpoint", str(untrained_student), "--bev-pngs", "0"]
    assert cli_main([*args, "--out", str(tmp_path / "fail")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imkd eval: error: 2 bad input files") and "\n" not in err  # the student reads no LiDAR
    assert str(damaged["bad"]["image"]) in err and str(damaged["bad"]["radar"]) in err
    assert not (tmp_path / "fail" / "results.json").exists()  # stopped before the model ran

    out = tmp_path / "skip"
    assert cli_main([*args, "--out", str(out), "--skip-bad-frames"]) == 0
    err = capsys.readouterr().err
    assert "2 frame(s) skipped" in err and str(damaged["bad"]["image"]) in err
    listed = json.loads((out / "skipped_frames.json").read_text())
    assert [s["sample"] for s in listed] == damaged["val"][1:3]
    for d in (out, out / "coverage"):
        scope = json.loads((d / "metrics_summary.json").read_text())["eval_scope"]
        assert scope["samples"] == 2 and scope["skipped_samples"] == sorted(damaged["val"][1:3])


def test_teacher_targets_and_training_skip_and_record_bad_frames(
    damaged: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imkd_ros.distill.cache import TargetCache
    from imkd_ros.model import Teacher
    from imkd_ros.training.train import TrainConfig, model_config_for, train

    torch.manual_seed(0)
    cfg = model_config_for("lidar", "tiny")
    teacher = save_checkpoint(tmp_path / "teacher.pt", Teacher(config=cfg), cfg, {})
    args = ["teacher-targets", "--data", str(damaged["root"]), "--teacher", str(teacher), "--split", "synth_val"]
    args += ["--debug-pngs", "0", "--out", str(tmp_path / "cache")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "2 bad input files" in err and str(damaged["bad"]["lidar"]) in err  # the teacher reads no image
    assert cli_main([*args, "--skip-bad-frames"]) == 0
    cache = TargetCache(tmp_path / "cache")
    assert sorted(cache.tokens) == sorted([damaged["val"][0], damaged["val"][1]])
    skipped = cache.header.source["skipped_samples"]
    assert [s["sample"] for s in skipped] == damaged["val"][2:]

    with pytest.raises(BadFilesError):
        train(damaged["root"], tmp_path / "s.pt", cfg, TrainConfig(epochs=1, max_steps=1), progress=False)
    res = train(
        damaged["root"],
        tmp_path / "t.pt",
        cfg,
        TrainConfig(epochs=1, batch_size=2, max_steps=1),
        progress=False,
        skip_bad_frames=True,
    )
    from imkd_ros.model.checkpoint import load_checkpoint

    meta = load_checkpoint(res.checkpoint).meta
    assert sorted(s["sample"] for s in meta["skipped_frames"]) == sorted(damaged["val"][2:])
