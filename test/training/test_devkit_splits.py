"""The real-nuScenes path on a synthetic dataroot written as ``v1.0-mini`` with the devkit's scene names: the reader
takes the devkit's own split names (mini_train, mini_val; no splits.json entry for them), ``imkd train`` trains on
mini_train and ``imkd eval`` scores mini_val with the official DetectionEval, as on a real v1.0-mini download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nuscenes.utils import splits as devkit_splits

from imkd_ros.cli import main as cli_main
from imkd_ros.data.reader import NuScenesReader

VERSION = "v1.0-mini"


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    args = ["synth", "--out", str(root), "--scenes", "10", "--samples-per-scene", "2", "--seed", "3", "--version"]
    args += [VERSION, "--scene-names", "mini", "--no-camera-sweeps", "--workers", "1"]
    assert cli_main(args) == 0
    return root


def test_the_devkit_split_names_select_the_devkit_scenes(mini_root: Path) -> None:
    reader = NuScenesReader(mini_root, VERSION, load_lidar=False)
    assert reader.split_scenes("mini_train") == devkit_splits.mini_train
    assert reader.split_scenes("mini_val") == devkit_splits.mini_val
    assert "mini_val" not in json.loads((mini_root / VERSION / "splits.json").read_text())  # the devkit's lists
    assert sorted(reader.scene_names) == sorted(devkit_splits.mini_train + devkit_splits.mini_val)


def test_train_on_mini_train_and_eval_on_mini_val(mini_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "mini.pt"
    args = ["train", "student", "--data", str(mini_root), "--version", VERSION, "--train-split", "mini_train"]
    args += ["--val-split", "mini_val", "--out", str(ckpt), "--size", "tiny", "--epochs", "1", "--threads", "1"]
    assert cli_main(args) == 0
    out = tmp_path / "eval"
    args = ["eval", "--data", str(mini_root), "--version", VERSION, "--split", "mini_val", "--checkpoint", str(ckpt)]
    assert cli_main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["eval_scope"]["samples"] == 2 * len(devkit_splits.mini_val)


def test_bad_scene_names_are_refused(tmp_path: Path) -> None:
    from imkd_ros.core.errors import InputError
    from imkd_ros.data.synth import write_dataset

    with pytest.raises(InputError, match="need 2 distinct"):
        write_dataset(tmp_path, scenes=2, samples_per_scene=1, seed=0, scene_names=["a", "a"], workers=1)
    assert not any(tmp_path.iterdir())
