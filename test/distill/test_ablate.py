"""`imkd ablate`: the label-scarce study end to end with tiny models and two-step schedules, on a dataset with two
weathers (labelled and unlabelled drives in each), scored on another dataset; a second call retrains nothing and
detects nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imkd_ros.apps import ablate as ablate_mod
from imkd_ros.cli import main as cli_main
from imkd_ros.distill.cache import file_sha256
from imkd_ros.model.checkpoint import load_checkpoint
from imkd_ros.training.train import model_config_for


@pytest.fixture(scope="module")
def study_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 scenes x 2 samples, clear / rain cycled: synth_train = scenes 0, 1, 2, 4, 5 (clear 0, 2, 4; rain 1, 5)."""
    from imkd_ros.data.synth import write_dataset

    root = tmp_path_factory.mktemp("study_data")
    write_dataset(root, scenes=6, samples_per_scene=2, seed=3, weathers=("clear", "rain"), camera_sweeps=False,
                  workers=1)  # fmt: skip
    return root


def test_label_scarce_study(
    study_data: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "study"
    args = ["ablate", "--data", str(study_data), "--val-data", str(synth_root), "--val-split", "synth_all",
            "--out", str(out), "--size", "tiny", "--steps", "2", "--teacher-steps", "2", "--seeds", "1",
            "--row-seeds", "nokd=2", "--rows", "nokd,kd1-2-3,pseudo-soft,imkd,oracle", "--bootstrap", "50",
            "--teacher-augment", "--tta", "--shipped-row", "imkd", "--jobs", "2"]  # fmt: skip
    assert cli_main(args) == 0

    # who learnt from what: the teacher and every student on the 2 labelled drives (4 frames); the pseudo-label
    # rows also on the 3 unlabelled drives (6 frames); the oracle on all 5 drives with their labels
    splits = json.loads((study_data / "v1.0-synth" / "splits.json").read_text())
    assert splits["scarce25_labelled"] == ["scene-0000", "scene-0001"]
    assert splits["scarce25_unlabelled"] == ["scene-0002", "scene-0004", "scene-0005"]
    meta = {p.stem: load_checkpoint(p).meta for p in out.glob("*.pt") if not p.name.endswith(".train.pt")}
    assert sorted(meta) == ["imkd_s0", "kd1-2-3_s0", "nokd_s0", "nokd_s1", "oracle_s0", "pseudo-soft_s0", "teacher"]
    assert meta["teacher"]["train"]["train_split"] == "scarce25_labelled" and meta["teacher"]["train_frames"] == 4
    assert meta["teacher"]["train"]["augment"] is True and meta["nokd_s0"]["train"]["augment"] is False
    for k in ("kd1-2-3_s0", "pseudo-soft_s0", "imkd_s0"):  # learnt from the mirror-TTA targets of this teacher
        assert meta[k]["targets"]["teacher_tta"] == "mirror-y", k
        assert meta[k]["targets"]["teacher_sha256"] == file_sha256(out / "teacher.pt"), k
    for k in ("nokd_s0", "nokd_s1", "kd1-2-3_s0", "pseudo-soft_s0", "imkd_s0"):
        assert meta[k]["train"]["train_split"] == "scarce25_labelled" and meta[k]["train_frames"] == 4, k
        assert meta[k]["train"]["max_steps"] == 2
    assert meta["oracle_s0"]["train_frames"] == 10 and meta["oracle_s0"]["unlabelled"] is None
    assert "epoch 1: loss" in (out / "nokd_s1_train.log").read_text()  # --jobs: each run's lines in its own log
    assert meta["nokd_s0"]["distill"] is None and meta["nokd_s1"]["train"]["seed"] == 1
    assert meta["kd1-2-3_s0"]["distill"]["stages"] == ["stage1", "stage2", "stage3"]
    assert meta["kd1-2-3_s0"]["unlabelled"] is None
    assert meta["pseudo-soft_s0"]["distill"] is None and meta["pseudo-soft_s0"]["unlabelled"]["frames"] == 6
    assert meta["pseudo-soft_s0"]["unlabelled"]["soft"] is True and meta["imkd_s0"]["unlabelled"]["soft"] is False
    assert meta["imkd_s0"]["distill"]["stages"] == ["stage1", "stage2", "stage3"]
    assert meta["imkd_s0"]["unlabelled"]["split"] == "scarce25_unlabelled"

    report = json.loads((out / "ablation.json").read_text())
    assert report["val"]["split"] == "synth_all" and report["val"]["samples"] == 16 and report["val"]["scenes"] == 4
    for region in ("coverage", "grid"):
        rows = {r["key"]: r for r in report["regions"][region]["rows"]}
        assert list(rows) == ["nokd", "kd1-2-3", "pseudo-soft", "imkd", "oracle", "teacher"]
        nokd = rows["nokd"]
        assert nokd["seeds"] == 2 and len(nokd["per_seed"]) == 2
        assert nokd["mean"]["nds"] == pytest.approx((nokd["per_seed"][0]["nds"] + nokd["per_seed"][1]["nds"]) / 2)
        assert nokd["delta"]["nds"] == {"value": 0.0, "lo": 0.0, "hi": 0.0}
        for k in ("kd1-2-3", "imkd", "oracle"):
            d = rows[k]["delta"]["nds"]
            assert d["value"] == pytest.approx(rows[k]["mean"]["nds"] - nokd["mean"]["nds"])
            assert rows[k]["seeds"] == 1 and "gap_closed" in rows[k]
    cov = json.loads((out / "eval" / "nokd_s0" / "coverage" / "metrics_summary.json").read_text())
    grid = json.loads((out / "eval" / "nokd_s0" / "grid" / "metrics_summary.json").read_text())
    assert 0 < cov["eval_scope"]["gt_boxes"] < grid["eval_scope"]["gt_boxes"]
    assert set(report["goals"]) >= {"delta_nds", "delta_nds_ci", "gap_closed", "mave_not_worse"}
    assert (
        report["goals"]["row"] == "imkd"
        and "## Goals (coverage region, `imkd` vs `nokd`)" in (out / "ablation.md").read_text()
    )
    md = (out / "ablation.md").read_text()
    assert "## Region `coverage` (headline)" in md and "| no KD (labelled drives only) (`nokd`) | 2 |" in md
    assert (out / "ablation.png").stat().st_size > 10_000

    # a second call finds everything: no training, no detection
    def forbidden(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("recomputed what the study already had")

    monkeypatch.setattr("imkd_ros.training.train.train", forbidden)
    monkeypatch.setattr("imkd_ros.evaluation.compare.run_detectors", forbidden)
    assert cli_main(args) == 0
    assert json.loads((out / "ablation.json").read_text())["regions"] == report["regions"]


def test_unknown_row_is_refused(tmp_path: Path) -> None:
    plan = ablate_mod.StudyPlan(data=tmp_path, out=tmp_path / "o", rows=("nokd", "stage9"))
    with pytest.raises(ValueError, match="stage9"):
        ablate_mod.run_study(plan)


def test_a_student_of_another_teacher_or_targets_is_not_reused() -> None:
    meta = {"train": {"seed": 0}, "distill": {"stages": ["stage1"]}, "unlabelled": None,
            "targets": {"teacher_sha256": "abc", "teacher_tta": None}}  # fmt: skip
    want = {"train": {"seed": 0}, "stages": ("stage1",), "unlabelled": None, "soft": (False, False)}
    assert ablate_mod._matches(meta, dict(want, teacher=("abc", None)))
    assert not ablate_mod._matches(meta, dict(want, teacher=("abd", None)))  # another teacher
    assert not ablate_mod._matches(meta, dict(want, teacher=("abc", "mirror-y")))  # targets with TTA
    # a checkpoint from before the augment field was recorded trained without it
    assert ablate_mod._matches(meta, dict(want, train={"seed": 0, "augment": False}, teacher=("abc", None)))
    assert not ablate_mod._matches(meta, dict(want, train={"seed": 0, "augment": True}, teacher=("abc", None)))
    # pseudo-labels of another score threshold (pseudo-sv4 vs pseudo-sv)
    pseudo = dict(meta, unlabelled={"split": "u", "soft": True, "velocity": True, "threshold": 0.3})
    want_u = dict(want, unlabelled="u", soft=(True, True, True), teacher=("abc", None))
    assert ablate_mod._matches(pseudo, dict(want_u, threshold=0.3))
    assert not ablate_mod._matches(pseudo, dict(want_u, threshold=0.4))


def test_a_study_in_bf16_trains_in_bf16_and_reuses_no_float32_checkpoint(tmp_path: Path) -> None:
    plan = ablate_mod.StudyPlan(data=tmp_path, out=tmp_path / "o", precision="bf16")
    cfg = ablate_mod._train_config(plan, "labelled", 10, 0)
    assert cfg.precision == "bf16"
    want = ablate_mod._want(cfg, (), None)
    assert want["train"]["precision"] == "bf16"
    meta = {"train": {k: v for k, v in want["train"].items() if k != "precision"}}  # before precision was recorded
    assert not ablate_mod._matches(meta, want)  # such a checkpoint trained in float32
    assert ablate_mod._matches(meta, dict(want, train=dict(want["train"], precision="fp32")))
    assert ablate_mod._matches({"train": dict(meta["train"], precision="bf16")}, want)


def test_a_surround_study_trains_surround_models_and_reuses_no_front_checkpoint(tmp_path: Path) -> None:
    plan = ablate_mod.StudyPlan(data=tmp_path, out=tmp_path / "o", grid="surround", image_size=(352, 128))
    teacher = ablate_mod._teacher_job(plan, "labelled")
    assert teacher is not None and teacher[1]["model_cfg"].grid.x_range == (-51.2, 51.2)
    row = ablate_mod._row_job(plan, ablate_mod._row("nokd"), 0, "labelled", "unlabelled", None)
    model = row["model_cfg"]
    assert model.grid.y_range == (-51.2, 51.2) and model.image.input_size == (352, 128)
    want = ablate_mod._want(row["cfg"], (), None, (False, False, True), model)
    meta = {"train": dict(want["train"]), "unlabelled": None}
    assert ablate_mod._matches(dict(meta, model_config=model.to_dict()), want)
    for other in (model_config_for("fusion"), model_config_for("fusion", grid="surround")):  # front grid; 704x256
        assert not ablate_mod._matches(dict(meta, model_config=other.to_dict()), want)
    assert not ablate_mod._matches(meta, want)  # no model config known: not reused
