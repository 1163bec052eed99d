"""Training: a tiny model's loss falls, --resume continues exactly, DDP replicas stay identical, checkpoints load
with weights_only and fail clearly when broken, and the Detector / `imkd eval` run on the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import stop_after

from imkd_ros.cli import main as cli_main
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.inference.detector import Detector
from imkd_ros.model.checkpoint import CheckpointError, load_checkpoint
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.training import train as train_mod
from imkd_ros.training.train import TrainConfig, model_config_for, train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_student(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, train_mod.TrainResult]:
    out = tmp_path_factory.mktemp("train") / "student.pt"
    cfg = TrainConfig(epochs=8, batch_size=4, lr=3e-3, seed=0)
    res = train(synth_root, out, model_config_for("fusion", "tiny"), cfg, progress=False)
    return out, res


def test_tiny_student_loss_falls_and_files_are_written(tiny_student: tuple[Path, train_mod.TrainResult]) -> None:
    out, res = tiny_student
    assert res.epochs == 8 and len(res.losses) == 8
    assert res.losses[-1] < 0.7 * res.losses[0], res.losses
    stem = out.with_suffix("")
    log = json.loads(Path(f"{stem}_log.json").read_text())
    assert [r["epoch"] for r in log] == list(range(1, 9))
    assert "val_nds" in log[-1] and 0.0 <= log[-1]["val_nds"] <= 1.0
    assert Path(f"{stem}_log.csv").read_text().count("\n") == 9
    assert Path(f"{stem}_loss.png").stat().st_size > 1000
    assert (Path(f"{stem}_val") / "metrics_summary.json").is_file()


def test_checkpoint_round_trip_weights_only(tiny_student: tuple[Path, train_mod.TrainResult]) -> None:
    out, res = tiny_student
    ck = load_checkpoint(out)
    assert ck.kind == "student" and ck.config == model_config_for("fusion", "tiny")
    assert ck.meta["train"]["epochs"] == 8 and ck.meta["train_frames"] > 0
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(ck.state_dict[k], v.cpu(), rtol=0, atol=0)
    assert not ck.training_state  # the shipped file carries no optimizer state
    assert load_checkpoint(Path(f"{out}.train.pt")).training_state["epoch"] == 8


def test_broken_checkpoints_give_clear_errors(tmp_path: Path, tiny_student: tuple[Path, train_mod.TrainResult]) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Detector.from_checkpoint(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_student[0].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt"):
        Detector.from_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an imkd checkpoint"):
        load_checkpoint(foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "imkd-checkpoint-1", "evil": np.random.default_rng(0)}, pickled)
    with pytest.raises(CheckpointError):  # weights_only refuses arbitrary objects
        load_checkpoint(pickled)


def test_detector_detects_in_ego_frame(synth_root: Path, tiny_student: tuple[Path, train_mod.TrainResult]) -> None:
    det = Detector.from_checkpoint(tiny_student[0], device="cpu", score_threshold=0.0)
    reader = NuScenesReader(synth_root, load_lidar=False)
    frames = [reader.frame(t) for t in reader.split_samples("synth_val")[:2]]
    one = det.detect(frames[0])
    batch = det.detect_batch(frames)
    assert one.frame == "ego" and len(batch) == 2
    np.testing.assert_allclose(one.center, batch[0].center, atol=1e-4)
    g = det.config.grid
    assert len(one) > 0
    assert np.isfinite(one.center).all()
    inside = (one.center[:, 0] >= g.x_range[0] - 2) & (one.center[:, 0] <= g.x_range[1] + 2)
    assert inside.mean() > 0.9  # peaks are grid cells; only the (barely trained) offsets move them
    assert np.all(np.diff(one.score) <= 1e-6)  # sorted by score


def test_imkd_eval_cli(
    synth_root: Path,
    tiny_student: tuple[Path, train_mod.TrainResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "eval"
    rc = cli_main(
        ["eval", "--data", str(synth_root), "--checkpoint", str(tiny_student[0]), "--out", str(out), "--bev-pngs", "1"]
    )
    assert rc == 0
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert {"nd_score", "mean_ap", "tp_errors", "label_aps"} <= set(summary)
    assert summary["eval_scope"]["region"] is not None
    # and in the coverage region: the grid within the camera's and the radar's fields of view (from calibration)
    cov = json.loads((out / "coverage" / "metrics_summary.json").read_text())
    region = cov["eval_scope"]["region"]
    assert region["kind"] == "coverage" and [s["name"] for s in region["sectors"]] == ["CAM_FRONT", "RADAR_FRONT"]
    assert 0 < cov["eval_scope"]["gt_boxes"] < summary["eval_scope"]["gt_boxes"]
    assert json.loads((out / "coverage" / "by_weather.json").read_text())
    printed = capsys.readouterr().out
    assert "coverage NDS" in printed and "grid     NDS" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["use_camera"] and not results["meta"]["use_lidar"]
    assert len(list((out / "bev").glob("*.png"))) == 1
    assert json.loads((out / "by_weather.json").read_text())
    assert cli_main(["eval", "--data", str(synth_root), "--checkpoint", str(tmp_path / "x.pt"), "--out", str(out)]) == 2


def test_eval_holds_one_batch_of_frames_not_the_split(
    synth_root: Path, tiny_student: tuple[Path, train_mod.TrainResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate_detector reads the split's frames as it detects them: when a batch reaches the model, the frames
    still alive are that batch, the last of the one before, the first frame (its rig gives the coverage region) and
    the BEV picture's; not all 16 (reading the split up front took 17 GB for 864 surround keyframes)."""
    import gc
    import weakref

    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.evaluation.eval_detector import evaluate_detector
    from imkd_ros.inference.detector import Detector

    refs: list[weakref.ref[Any]] = []
    read = NuScenesReader.frame

    def frame(self: NuScenesReader, token: str) -> Any:
        f = read(self, token)
        refs.append(weakref.ref(f))
        return f

    monkeypatch.setattr(NuScenesReader, "frame", frame)
    det = Detector.from_checkpoint(tiny_student[0], "cpu")
    alive: list[int] = []
    detect = det.detect_batch

    def detect_batch(frames: Any) -> Any:
        gc.collect()
        alive.append(sum(r() is not None for r in refs))
        return detect(frames)

    det.detect_batch = detect_batch  # type: ignore[method-assign]
    res = evaluate_detector(
        det, None, tmp_path / "eval", dataroot=synth_root, split="synth_all", batch_size=2, bev_pngs=1
    )
    assert res["frames"] == 16 and len(alive) == 8
    assert max(alive) <= 2 + 1 + 1 + 1, alive
    assert len(list((tmp_path / "eval" / "bev").glob("*.png"))) == 1


def test_imkd_eval_runtime_options(
    synth_root: Path,
    tiny_student: tuple[Path, train_mod.TrainResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``imkd eval --backend openvino --precision fp32`` scores what PyTorch scores (same boxes within 1e-3); a
    precision the backend does not run is a one-line user error."""
    base = ["eval", "--data", str(synth_root), "--checkpoint", str(tiny_student[0]), "--bev-pngs", "0"]
    assert cli_main([*base, "--out", str(tmp_path / "torch")]) == 0
    assert cli_main([*base, "--out", str(tmp_path / "ov"), "--backend", "openvino", "--threads", "1"]) == 0
    want, got = (json.loads((tmp_path / d / "metrics_summary.json").read_text()) for d in ("torch", "ov"))
    assert abs(want["nd_score"] - got["nd_score"]) < 1e-3 and abs(want["mean_ap"] - got["mean_ap"]) < 1e-3
    capsys.readouterr()
    rc = cli_main([*base, "--out", str(tmp_path / "bad"), "--backend", "onnxruntime", "--precision", "bf16"])
    assert rc == 2 and "precision 'bf16': backend 'onnxruntime' runs fp32" in capsys.readouterr().err


def test_training_and_inference_tensors_are_identical(synth_root: Path) -> None:
    """One image path: the batch a student trains on (``shrink_frame`` -> ``collate_frames``) and the batch the
    ``Detector`` builds from the full-size frame at inference (node, eval, replay, ONNX Runtime) are equal to the
    bit: pixels, intrinsics, mounting and radar; both at the model input size, so the network only normalises."""
    from imkd_ros.data.dataset import collate_frames
    from imkd_ros.inference.detector import Detector
    from imkd_ros.model import Student
    from imkd_ros.model.preprocess import fit_intrinsics

    cfg = model_config_for("fusion", "default")
    reader = NuScenesReader(synth_root)
    frame = reader.frame(reader.split_samples("synth_val")[0])
    assert frame.image.shape == (900, 1600, 3)
    small = shrink_frame(frame, cfg)
    assert small.image.shape == (cfg.image.input_size[1], cfg.image.input_size[0], 3)
    want_k = fit_intrinsics(frame.camera.intrinsic, frame.camera.image_size, cfg.image.input_size)
    np.testing.assert_array_equal(small.camera.intrinsic, want_k)
    assert len(small.lidar) < len(frame.lidar)

    train_batch = collate_frames([small])
    infer_batch = Detector(Student(cfg))._collate([frame])
    assert tuple(infer_batch.images.shape[-2:]) == (cfg.image.input_size[1], cfg.image.input_size[0])
    for name in ("images", "intrinsics", "cam_to_ego", "radar", "radar_mask"):
        assert torch.equal(getattr(train_batch, name), getattr(infer_batch, name)), name


def test_resume_continues_exactly(synth_root: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=3, batch_size=4, seed=1)
    mc = model_config_for("lidar", "tiny")
    full = train(synth_root, tmp_path / "full" / "t.pt", mc, cfg, progress=False)

    with pytest.raises(KeyboardInterrupt):
        train(synth_root, tmp_path / "cut" / "t.pt", mc, cfg, progress=False, on_epoch=stop_after(2))
    assert not (tmp_path / "cut" / "t.pt").exists()
    resumed = train(synth_root, tmp_path / "cut" / "t.pt", mc, cfg, resume=True, progress=False)
    assert resumed.steps == full.steps
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_ddp_two_processes_keep_replicas_identical(synth_root: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        str(Path(__file__).with_name("ddp_worker.py")),
        str(synth_root),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "replica0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "replica1.pt", weights_only=True)
    init = train_mod.Teacher(config=model_config_for("lidar", "tiny")).state_dict()
    changed = 0
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
        changed += int(not torch.equal(r0[k], init[k]))
    assert changed > 0  # they did train
    assert (tmp_path / "teacher.pt").is_file()


def test_paper_size_starts_from_imagenet_weights(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``imkd train student --size paper --imagenet-weights FILE``: the ResNet-50 trunk starts from the file (one
    step later its weights are within a step of them, far from a fresh init), the meta names the file; a model
    without that trunk refuses the option with a one-line error."""
    from imkd_ros.model.checkpoint import load_checkpoint
    from imkd_ros.model.resnet import ResNet50Trunk

    torch.manual_seed(5)
    weights = {k: v.clone() for k, v in ResNet50Trunk().state_dict().items()}
    for v in weights.values():
        if v.is_floating_point():
            v.uniform_(0.5, 1.0)  # unlike any initialisation
    weights["fc.weight"], weights["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(weights, tmp_path / "resnet50.pth")
    out = tmp_path / "paper.pt"
    args = ["train", "student", "--data", str(synth_root), "--out", str(out), "--size", "paper", "--grid", "surround"]
    args += ["--max-steps", "1", "--batch-size", "1", "--epochs", "1", "--val-every", "0"]
    assert cli_main([*args, "--imagenet-weights", str(tmp_path / "resnet50.pth")]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.meta["imagenet_weights"]["path"] == str(tmp_path / "resnet50.pth")
    assert len(ckpt.meta["imagenet_weights"]["sha256"]) == 64
    trunk = {k.removeprefix("camera_bev.backbone.trunk."): v for k, v in ckpt.build("cpu").state_dict().items()}
    assert (trunk["layer3.0.conv2.weight"] - weights["layer3.0.conv2.weight"]).abs().max() < 0.05
    capsys.readouterr()
    bad = ["train", "student", "--data", str(synth_root), "--out", str(tmp_path / "x.pt"), "--max-steps", "1"]
    assert cli_main([*bad, "--imagenet-weights", str(tmp_path / "resnet50.pth")]) == 2
    assert "needs a student with a ResNet-50 image trunk (--size paper)" in capsys.readouterr().err
