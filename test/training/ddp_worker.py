"""Run by torchrun in test_train.py: trains a tiny teacher for a few steps, then every rank saves its replica."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from imkd_ros.training.train import TrainConfig, model_config_for, train

if __name__ == "__main__":
    data, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=1, batch_size=2, seed=3, max_steps=3, val_split="synth_val")
    res = train(data, out / "teacher.pt", model_config_for("lidar", "tiny"), cfg, progress=False)
    torch.save(res.model.state_dict(), out / f"replica{os.environ['RANK']}.pt")
