"""collate_frames on the synthetic dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.data.dataset import Batch, collate_frames
from imkd_ros.data.reader import NuScenesReader


@pytest.fixture(scope="module")
def reader(synth_root: Path) -> NuScenesReader:
    return NuScenesReader(synth_root, "v1.0-synth", radar_sweeps=3)


def test_collate_batches_frames(reader: NuScenesReader) -> None:
    tokens = reader.split_samples("synth_val")[:3]
    frames = [reader.frame(t) for t in tokens]
    b = collate_frames(frames)
    assert len(b) == 3 and b.tokens == tokens
    h, w = frames[0].image.shape[:2]
    assert isinstance(b, Batch)
    assert b.images.shape == (3, 1, 3, h, w) and b.images.dtype == torch.float32
    assert 0.0 <= float(b.images.min()) and float(b.images.max()) <= 1.0
    np.testing.assert_allclose(b.images[1, 0].permute(1, 2, 0).numpy() * 255.0, frames[1].image, atol=1e-3)
    assert b.intrinsics.shape == (3, 1, 3, 3) and b.cam_to_ego.shape == (3, 1, 4, 4)
    assert b.ego_to_global.shape == (3, 4, 4)
    n = [len(f.radar) for f in frames]
    assert b.radar.shape == (3, max(n), 7) and b.radar_mask.dtype == torch.bool
    assert b.radar_mask.sum(dim=1).tolist() == n
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(b.radar[i, : n[i]].numpy(), f.radar)
        assert not b.radar[i, n[i] :].any()
    m = [len(f.lidar) for f in frames]
    assert b.lidar.shape == (3, max(m), 6) and b.lidar_mask.sum(dim=1).tolist() == m
    assert b.timestamps.dtype == torch.int64 and b.timestamps.tolist() == [f.timestamp for f in frames]
    assert [len(g) for g in b.gt] == [len(f.gt) for f in frames]
    assert b.weathers == [f.weather for f in frames]


def test_collate_without_lidar_and_image(synth_root: Path) -> None:
    reader = NuScenesReader(synth_root, "v1.0-synth", load_lidar=False, load_image=False)
    batch = collate_frames([reader.frame(t) for t in reader.split_samples("synth_val")[:2]])
    assert batch.images is None and batch.lidar is None and batch.lidar_mask is None
    assert batch.radar.shape[0] == 2
    moved = batch.to("cpu")
    assert moved.radar.data_ptr() == batch.radar.data_ptr()


def test_collate_rejects_inconsistent_frames(reader: NuScenesReader) -> None:
    a, b = (reader.frame(t) for t in reader.split_samples("synth_val")[:2])
    with pytest.raises(ValueError, match="no frames"):
        collate_frames([])
    b.images = (b.image[:-2],)
    with pytest.raises(ValueError, match="different shapes"):
        collate_frames([a, b])
    two = dataclasses.replace(a, images=(a.image, a.image), cameras=(a.camera, a.camera))
    with pytest.raises(ValueError, match="has 2 cameras"):
        collate_frames([a, two])
    assert collate_frames([two, two]).images.shape[:2] == (2, 2)
    with pytest.raises(ValueError, match="2 images for 1 camera"):
        dataclasses.replace(a, images=(a.image, a.image))
    b.images = None
    with pytest.raises(ValueError, match="mix loaded and missing images"):
        collate_frames([a, b])
    a.radar = a.radar[:, :5]
    with pytest.raises(ValueError, match=r"radar is \(\d+, 5\)"):
        collate_frames([a])
