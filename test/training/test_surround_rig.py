"""The surround rig end to end on tiny data: ``imkd synth --rig nuscenes`` -> ``imkd train student --grid surround``
(six cameras and five radars read from the dataset's own sensor table) -> ``imkd eval`` (scored on the 360-degree
grid and in the union of the eleven sensors' sectors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imkd_ros.cli import main as cli_main
from imkd_ros.data.synth import write_dataset
from imkd_ros.data.synth.rig import RIGS
from imkd_ros.model.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def surround_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("surround_e2e")
    write_dataset(root, scenes=2, samples_per_scene=3, seed=11, weathers=("clear",), camera_sweeps=False, workers=1,
                  rig="nuscenes")  # fmt: skip
    return root


def test_train_and_eval_a_surround_student(surround_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "surround.pt"
    args = ["train", "student", "--data", str(surround_root), "--out", str(ckpt), "--size", "tiny", "--grid"]
    args += ["surround", "--epochs", "1", "--batch-size", "2", "--val-every", "0", "--threads", "1"]
    assert cli_main([*args, "--image-size", "96x40"]) == 2  # 40 is not a multiple of 16: refused, named
    assert cli_main([*args, "--image-size", "96x48"]) == 0
    loaded = load_checkpoint(ckpt)
    assert loaded.config.grid.x_range == (-51.2, 51.2) and loaded.config.grid.y_range == (-51.2, 51.2)
    assert loaded.config.image.input_size == (96, 48)
    assert all(torch.isfinite(v).all() for v in loaded.state_dict.values())
    out = tmp_path / "eval"
    assert cli_main(["eval", "--data", str(surround_root), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["eval_scope"]["gt_boxes"] > 0
    region = json.loads((out / "coverage" / "metrics_summary.json").read_text())["eval_scope"]["region"]
    rig = RIGS["nuscenes"]
    assert [s["name"] for s in region["sectors"]] == [*rig.cameras, *rig.radars]
