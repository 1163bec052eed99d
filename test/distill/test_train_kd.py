"""KD training: a tiny distilled student's loss falls, the shipped checkpoint holds the student alone (no adapters,
no teacher), the training state resumes exactly, and misuse fails with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import stop_after

from imkd_ros.cli import main as cli_main
from imkd_ros.distill import DistillConfig, DistillConfigError, DistillHeads, TargetCacheError
from imkd_ros.distill.targets import CacheBuildReport, build_target_cache
from imkd_ros.inference.detector import Detector
from imkd_ros.model import Student
from imkd_ros.model.checkpoint import load_checkpoint
from imkd_ros.training.train import TrainConfig, TrainResult, model_config_for, train


@pytest.fixture(scope="module")
def kd_run(synth_root: Path, tiny_cache: CacheBuildReport, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("kd") / "student.pt"
    cfg = TrainConfig(epochs=6, batch_size=4, lr=3e-3, seed=0)
    return train(
        synth_root,
        out,
        model_config_for("fusion", "tiny"),
        cfg,
        progress=False,
        distill=DistillConfig(),
        targets=tiny_cache.root,
    )


def test_kd_loss_falls(kd_run: TrainResult) -> None:
    assert kd_run.losses[-1] < 0.7 * kd_run.losses[0], kd_run.losses
    log = json.loads(Path(f"{kd_run.checkpoint.with_suffix('')}_log.json").read_text())
    for key in ("kd_stage1", "kd_stage2_feature", "kd_stage2_response", "kd_stage3", "kd_total", "det_total"):
        assert key in log[0], key
    assert log[-1]["kd_total"] < 0.7 * log[0]["kd_total"]
    assert log[-1]["kd_stage1"] < log[0]["kd_stage1"] and log[-1]["kd_stage2_feature"] < log[0]["kd_stage2_feature"]
    assert log[0]["loss"] == pytest.approx(log[0]["det_total"] + log[0]["kd_total"], rel=1e-5)


def test_shipped_checkpoint_is_the_student_alone(kd_run: TrainResult, tiny_cache: CacheBuildReport) -> None:
    ck = load_checkpoint(kd_run.checkpoint)
    fresh = Student(config=model_config_for("fusion", "tiny")).state_dict()
    assert set(ck.state_dict) == set(fresh)  # no adapter, no teacher weights
    assert ck.meta["distill"] == DistillConfig().to_dict()
    assert (
        ck.meta["targets"]["teacher_sha256"]
        == json.loads((tiny_cache.root / "index.json").read_text())["header"]["teacher"]["sha256"]
    )
    det = Detector.from_checkpoint(kd_run.checkpoint)
    assert det.config == model_config_for("fusion", "tiny")
    state = load_checkpoint(Path(f"{kd_run.checkpoint}.train.pt")).training_state
    heads = DistillHeads(16, 16, DistillConfig())
    heads.load_state_dict(state["distill_heads"])  # the adapters live in the training state only
    assert state["distill"] == DistillConfig().to_dict()


def test_kd_resume_continues_exactly(synth_root: Path, tiny_cache: CacheBuildReport, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, batch_size=4, seed=3, max_steps=5)
    mc = model_config_for("fusion", "tiny")
    kd = DistillConfig(stages=("stage1", "stage2"))
    kw = {"progress": False, "distill": kd, "targets": tiny_cache.root}
    full = train(synth_root, tmp_path / "full" / "s.pt", mc, cfg, **kw)
    with pytest.raises(KeyboardInterrupt):
        train(synth_root, tmp_path / "cut" / "s.pt", mc, cfg, **kw, on_epoch=stop_after(1))
    with pytest.raises(DistillConfigError, match="--resume"):  # another distillation than the interrupted run's
        train(synth_root, tmp_path / "cut" / "s.pt", mc, cfg, resume=True, progress=False)
    resumed = train(synth_root, tmp_path / "cut" / "s.pt", mc, cfg, resume=True, **kw)
    assert resumed.steps == full.steps == 5
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_misuse_is_reported(
    synth_root: Path,
    tiny_cache: CacheBuildReport,
    tiny_teacher_ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mc = model_config_for("fusion", "tiny")
    cfg = TrainConfig(epochs=1, max_steps=1)
    with pytest.raises(DistillConfigError, match="need a teacher-target cache"):
        train(synth_root, tmp_path / "a.pt", mc, cfg, progress=False, distill=DistillConfig())
    with pytest.raises(DistillConfigError, match="stage3 supervises the camera-radar fusion gates"):
        train(
            synth_root,
            tmp_path / "b.pt",
            model_config_for("radar", "tiny"),
            cfg,
            progress=False,
            distill=DistillConfig(),
            targets=tiny_cache.root,
        )
    with pytest.raises(DistillConfigError, match="grid"):
        train(
            synth_root,
            tmp_path / "c.pt",
            model_config_for("fusion", "default"),
            cfg,
            progress=False,
            distill=DistillConfig(stages=("stage1",)),
            targets=tiny_cache.root,
        )
    val_only = tmp_path / "val_cache"
    build_target_cache(synth_root, tiny_teacher_ckpt, val_only, split="synth_val", progress=False, debug_pngs=0)
    with pytest.raises(TargetCacheError, match="12 of 12 samples are not in the teacher-target cache"):
        train(synth_root, tmp_path / "d.pt", mc, cfg, progress=False, distill=DistillConfig(), targets=val_only)
    base = ["train", "student", "--data", str(synth_root), "--size", "tiny", "--epochs", "1", "--max-steps", "1"]
    assert cli_main([*base, "--out", str(tmp_path / "e.pt"), "--kd", "stage1"]) == 2
    assert "add --targets CACHE" in capsys.readouterr().err
    assert cli_main([*base, "--out", str(tmp_path / "f.pt"), "--targets", str(val_only)]) == 2
    assert "not in the teacher-target cache" in capsys.readouterr().err
    kd_yaml = tmp_path / "kd.yaml"
    kd_yaml.write_text("stage1_weight: 2.0\nstages: [stage1]\n")
    out = tmp_path / "g.pt"
    args = [*base, "--out", str(out), "--targets", str(tiny_cache.root), "--kd-config", str(kd_yaml), "--kd", "2,3"]
    assert cli_main(args) == 0
    assert (
        load_checkpoint(out).meta["distill"] == DistillConfig(stages=("stage2", "stage3"), stage1_weight=2.0).to_dict()
    )
