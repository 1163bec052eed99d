"""Streamed training frames (``imkd train --stream [--workers N]``): read from disk on use, with the batches, and so
the weights, of the in-memory path to the bit; the recipe (not a reader) travels to DataLoader workers."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.data.reader import NuScenesReader
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.training.streaming import StreamedFrames, frame_scenes, frame_tokens
from imkd_ros.training.train import TrainConfig, model_config_for, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_streamed_training_gives_the_in_memory_weights(synth_root: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, batch_size=4, lr=3e-3, seed=3, max_steps=5, val_every=0)
    model = model_config_for("fusion", "tiny")
    runs = {
        "memory": cfg,
        "stream": replace(cfg, stream=True),
        "stream+2 workers": replace(cfg, stream=True, workers=2),
    }
    weights = {}
    for name, c in runs.items():
        res = train(synth_root, tmp_path / f"{name.replace(' ', '_')}.pt", model, c, progress=False)
        assert res.steps == 5
        weights[name] = res.model.state_dict()
    for name in ("stream", "stream+2 workers"):
        for k, v in weights["memory"].items():
            assert torch.equal(v, weights[name][k]), (name, k)


def test_streamed_frames_read_on_use(synth_root: Path) -> None:
    options = {"dataroot": synth_root, "version": "v1.0-synth", "load_lidar": True}
    reader = NuScenesReader(**options)
    tokens = reader.split_samples("synth_val")
    config = model_config_for("fusion", "tiny")
    frames = StreamedFrames(options, tokens, config, [reader.scene_of(t) for t in tokens])
    assert len(frames) == len(tokens) and frame_tokens(frames) == tokens
    assert set(frame_scenes(frames)) == set(reader.split_scenes("synth_val"))
    want = shrink_frame(reader.frame(tokens[1]), config)
    got = frames[1]
    assert got.token == tokens[1] and np.array_equal(got.images[0], want.images[0])
    assert np.array_equal(got.radar, want.radar) and np.array_equal(got.lidar, want.lidar)
    assert frames._reader is not None and pickle.loads(pickle.dumps(frames))._reader is None  # the recipe travels
    both = frames + frames
    assert len(both) == 2 * len(tokens)
    with pytest.raises(ValueError, match="one reader and model"):
        frames + StreamedFrames(options, tokens, model_config_for("radar", "tiny"), frame_scenes(frames))
