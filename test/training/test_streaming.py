"""Streamed training frames (``imkd train --stream [--workers N]``): read from disk on use, with the batches, and so
the weights, of the in-memory path to the bit; the recipe (not a reader) travels to DataLoader workers."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.core.errors import InputError
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.training.frame_cache import FrameCache, frame_from_arrays, frame_to_arrays
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
        "stream+cache": replace(cfg, stream=True, frame_cache=str(tmp_path / "frames")),  # writes the cache
        "stream+cache read": replace(cfg, stream=True, frame_cache=str(tmp_path / "frames"), workers=1),
    }
    weights = {}
    for name, c in runs.items():
        res = train(synth_root, tmp_path / f"{name.replace(' ', '_')}.pt", model, c, progress=False)
        assert res.steps == 5
        weights[name] = res.model.state_dict()
    cached = list((tmp_path / "frames").glob("*/*.npz"))
    assert 0 < len(cached) <= 20  # 5 steps x 4 frames, some drawn twice
    for name in ("stream", "stream+2 workers", "stream+cache", "stream+cache read"):
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
    with pytest.raises(ValueError, match="one reader, model and cache"):
        frames + StreamedFrames(options, tokens, model_config_for("radar", "tiny"), frame_scenes(frames))


def _same_frame(a, b) -> None:  # noqa: ANN001
    assert (a.token, a.timestamp, a.scene, a.weather) == (b.token, b.timestamp, b.scene, b.weather)
    assert len(a.images) == len(b.images) and all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    for ca, cb in zip(a.cameras, b.cameras, strict=True):
        assert (ca.channel, ca.image_size) == (cb.channel, cb.image_size)
        assert np.array_equal(ca.intrinsic, cb.intrinsic)
        assert np.array_equal(ca.sensor_to_ego.matrix(), cb.sensor_to_ego.matrix())
    assert np.array_equal(a.radar, b.radar) and np.array_equal(a.lidar, b.lidar)
    assert np.array_equal(a.ego_pose.matrix(), b.ego_pose.matrix())
    for k in ("center", "size", "yaw", "velocity", "label", "score"):
        np.testing.assert_array_equal(getattr(a.gt, k), getattr(b.gt, k))  # NaN (unknown velocity) equals NaN
        assert getattr(a.gt, k).dtype == getattr(b.gt, k).dtype
    assert a.gt.tokens == b.gt.tokens and a.gt.frame == b.gt.frame


def test_frame_cache_keeps_frames_to_the_bit_and_rebuilds_a_broken_file(synth_root: Path, tmp_path: Path) -> None:
    options = {"dataroot": synth_root, "version": "v1.0-synth", "load_lidar": True}
    reader = NuScenesReader(**options)
    token = reader.split_samples("synth_train")[2]
    config = model_config_for("fusion", "tiny")
    want = shrink_frame(reader.frame(token), config)
    _same_frame(frame_from_arrays(frame_to_arrays(want)), want)
    cache = FrameCache(tmp_path / "c", options, config)
    builds = []

    def build():  # noqa: ANN202
        builds.append(token)
        return want

    _same_frame(cache.get(token, build), want)
    _same_frame(cache.get(token, build), want)  # the second read comes from the file
    assert builds == [token] and cache.path(token).is_file()
    cache.path(token).write_bytes(cache.path(token).read_bytes()[:100])  # truncated on disk
    with pytest.warns(UserWarning, match=f"{token}.npz unreadable"):
        _same_frame(cache.get(token, build), want)
    assert builds == [token, token]
    _same_frame(cache.get(token, build), want)
    # another model input or dataset: another recipe folder, never a frame of the wrong shape
    other = FrameCache(tmp_path / "c", options, model_config_for("fusion", "tiny", image_size=(96, 48)))
    assert other.dir != cache.dir and not other.path(token).is_file()
    assert FrameCache(tmp_path / "c", {**options, "radar_sweeps": 3}, config).dir != cache.dir
    with pytest.raises(InputError, match="needs stream"):
        TrainConfig(frame_cache=str(tmp_path / "c"))
