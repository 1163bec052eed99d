"""Shared fixtures of the distillation tests: a tiny LiDAR teacher checkpoint and its teacher-target cache of the
``synth_root`` training split (3 shards of 4 samples). Torch runs single-threaded (see test/model/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import torch_threads

from imkd_ros.distill.targets import CacheBuildReport, build_target_cache
from imkd_ros.model import Teacher
from imkd_ros.model.checkpoint import save_checkpoint
from imkd_ros.training.train import model_config_for


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every distillation test on one torch thread (test/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny teacher (eval-mode BatchNorm makes its outputs deterministic, which is all the cache
    tests need)."""
    torch.manual_seed(0)
    cfg = model_config_for("lidar", "tiny")
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_checkpoint(path, Teacher(config=cfg), cfg, {"note": "untrained test teacher"})
    return path


@pytest.fixture(scope="session")
def tiny_cache(synth_root: Path, tiny_teacher_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> CacheBuildReport:
    with torch_threads(1):
        out = tmp_path_factory.mktemp("targets") / "cache"
        return build_target_cache(synth_root, tiny_teacher_ckpt, out, shard_size=4, progress=False, debug_pngs=1)
