"""`imkd ablate` end to end with tiny students and a one-epoch schedule: four rows plus the teacher, the table as
Markdown/JSON/PNG, finished rows reused on a second call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imkd_ros.cli import main as cli_main
from imkd_ros.distill import ablate as ablate_mod
from imkd_ros.distill.ablate import ablation_rows
from imkd_ros.distill.config import STAGES, DistillConfig
from imkd_ros.distill.targets import CacheBuildReport


def test_rows() -> None:
    rows = ablation_rows(DistillConfig(stage1_weight=3.0))
    assert [r.key for r in rows] == ["no_kd", "stage1", "stage12", "stage123"]
    assert rows[0].distill is None and [r.distill.stages for r in rows[1:]] == [STAGES[:1], STAGES[:2], STAGES]
    assert all(r.distill.stage1_weight == 3.0 for r in rows[1:])
    study = ablation_rows(intensity_study=True)[4:]
    assert [r.distill.intensity_mix for r in study] == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]


def test_imkd_ablate_cli(
    synth_root: Path, tiny_cache: CacheBuildReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ablation"
    args = [
        "ablate",
        "--data",
        str(synth_root),
        "--targets",
        str(tiny_cache.root),
        "--out",
        str(out),
        "--size",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--seed",
        "5",
    ]
    assert cli_main(args) == 0
    table = json.loads((out / "ablation.json").read_text())
    assert [r["key"] for r in table["rows"]] == ["no_kd", "stage1", "stage12", "stage123"]
    assert table["teacher"] is not None and table["teacher"]["key"] == "teacher"  # the cache's teacher, found
    for r in table["rows"] + [table["teacher"]]:
        assert 0.0 <= r["metrics"]["nds"] <= 1.0 and r["by_weather"]
        assert 0.0 <= r["coverage_metrics"]["nds"] <= 1.0 and r["coverage_by_weather"]
    # scored on the whole grid and on the coverage region: the students' coverage holds fewer GT boxes, the
    # teacher's (LiDAR, all around) is the grid itself
    for grid_dir in [out / r["key"] / "student_val" for r in table["rows"]] + [out / "teacher_eval"]:
        grid = json.loads((grid_dir / "metrics_summary.json").read_text())
        cov = json.loads((grid_dir / "coverage" / "metrics_summary.json").read_text())
        assert cov["eval_scope"]["region"]["kind"] == "coverage"
        assert 0 < cov["eval_scope"]["gt_boxes"] <= grid["eval_scope"]["gt_boxes"]
    teacher_grid = json.loads((out / "teacher_eval" / "metrics_summary.json").read_text())
    teacher_cov = json.loads((out / "teacher_eval" / "coverage" / "metrics_summary.json").read_text())
    assert teacher_cov["eval_scope"]["region"]["sectors"] is None
    for k in ("gt_boxes", "pred_boxes", "samples", "classes"):
        assert teacher_cov["eval_scope"][k] == teacher_grid["eval_scope"][k], k
    assert teacher_cov["nd_score"] == teacher_grid["nd_score"] and teacher_cov["mean_ap"] == teacher_grid["mean_ap"]
    assert table["teacher"]["coverage_metrics"] == table["teacher"]["metrics"]
    assert table["goals"]["region"] == "coverage" and "imkd_gain_nds_grid" in table["goals"]
    assert table["schedule"]["epochs"] == 1 and table["schedule"]["seed"] == 5 and table["schedule"]["size"] == "tiny"
    assert {"imkd_gain_nds", "each_stage_adds", "gap_closed"} <= set(table["goals"])
    md = (out / "ablation.md").read_text()
    assert "| + stages 1-3 (IMKD) | 1,2,3 |" in md and "NDS" in md and "mAVE" in md and "Schedule:" in md
    assert "NDS grid" in md and "coverage region" in md
    assert (out / "ablation.png").stat().st_size > 10_000
    assert (out / "stage123" / "student.pt").is_file()

    def no_training(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a finished row was retrained")

    monkeypatch.setattr(ablate_mod, "train", no_training)
    assert cli_main(args) == 0  # every row reused
    again = json.loads((out / "ablation.json").read_text())
    assert [r["metrics"] for r in again["rows"]] == [r["metrics"] for r in table["rows"]]
    assert [r["coverage_metrics"] for r in again["rows"]] == [r["coverage_metrics"] for r in table["rows"]]
    with pytest.raises(AssertionError, match="retrained"):  # another seed: the rows do not fit, they would retrain
        cli_main([*args[:-2], "--seed", "6"])
