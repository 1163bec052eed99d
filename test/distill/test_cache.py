"""The teacher-target cache: bit-exact float16 round trip, the index, checksums and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.distill.cache import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    CacheHeader,
    TargetCache,
    TargetCacheWriter,
    TargetGrid,
    TeacherTargets,
)
from imkd_ros.distill.errors import TargetCacheError
from imkd_ros.model import ModelConfig

GRID = TargetGrid(0.0, 6.4, -3.2, 3.2, 0.8, 8, 8)
HEADER = CacheHeader(GRID, 5, ("car", "truck"), intensity_spec={"density_saturation": 64.0}, teacher={"sha256": "x"})


def _sample(i: int, n_boxes: int, dtype: type = np.float16) -> TeacherTargets:
    rng = np.random.default_rng(i)
    return TeacherTargets(
        f"tok{i:03d}",
        1_600_000_000_000_000 + i,
        (rng.standard_normal((5, 8, 8)) * 3).astype(dtype),
        rng.random((3, 8, 8)).astype(dtype),
        rng.random((2, 8, 8)).astype(dtype),
        rng.standard_normal((n_boxes, 9)).astype(np.float32),
        rng.integers(0, 10, n_boxes).astype(np.int32),
        rng.random(n_boxes).astype(np.float32),
    )


def _write(root: Path, samples: list[TeacherTargets], shard: int = 2) -> TargetCacheWriter:
    plan = [[s.sample_token for s in samples[i : i + shard]] for i in range(0, len(samples), shard)]
    w = TargetCacheWriter(root, HEADER, plan, shard)
    for i in w.pending():
        w.write_shard(i, samples[i * shard : (i + 1) * shard])
    w.finish()
    return w


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    samples = [_sample(i, n) for i, n in enumerate([3, 0, 5, 1, 2])]
    _write(tmp_path, samples)
    cache = TargetCache(tmp_path)
    assert cache.complete and len(cache) == 5 and cache.tokens == [s.sample_token for s in samples]
    back = cache.load_all()
    for s in samples:
        r = back[s.sample_token]
        assert r.timestamp == s.timestamp
        for name in ("features", "intensity", "heatmap", "boxes", "labels", "scores"):
            a, b = getattr(s, name), getattr(r, name)
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert a.tobytes() == b.tobytes(), name  # bit-exact, NaN-safe comparison
    one = cache.get("tok002")
    assert one.to_boxes().frame == "ego" and len(one.to_boxes()) == 5
    np.testing.assert_array_equal(one.to_boxes().size, samples[2].boxes[:, 3:6].astype(np.float64))


def test_float32_input_is_stored_as_float16(tmp_path: Path) -> None:
    s = _sample(7, 2, np.float32)
    _write(tmp_path, [s])
    r = TargetCache(tmp_path).get(s.sample_token)
    assert r.features.dtype == np.float16
    assert r.features.tobytes() == s.features.astype(np.float16).tobytes()


def test_index_contents(tmp_path: Path) -> None:
    _write(tmp_path, [_sample(i, 1) for i in range(3)])
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert index["format"] == FORMAT_NAME and index["format_version"] == FORMAT_VERSION
    h = index["header"]
    assert h["grid"] == GRID.to_dict() and h["feature_channels"] == 5 and h["map_dtype"] == "float16"
    assert h["intensity_names"] == ["density", "reflectance", "activation"] and h["class_names"] == ["car", "truck"]
    assert [len(s["tokens"]) for s in index["shards"]] == [2, 1]
    assert all(len(s["sha256"]) == 64 and s["bytes"] > 0 for s in index["shards"])
    assert index["samples"] == {"tok000": [0, 0], "tok001": [0, 1], "tok002": [1, 0]}
    assert CacheHeader.from_dict(h) == HEADER


def test_grid_of_model_config() -> None:
    g = TargetGrid.from_model_config(ModelConfig.default())
    assert (g.height, g.width, g.cell) == (64, 64, pytest.approx(0.8))
    assert g.matches(TargetGrid.from_dict(g.to_dict())) and not g.matches(GRID)
    with pytest.raises(TargetCacheError, match="x span"):
        TargetGrid(0.0, 10.0, 0.0, 6.4, 0.8, 8, 8)


def test_corruption_and_misuse_give_clear_errors(tmp_path: Path) -> None:
    samples = [_sample(i, 1) for i in range(4)]
    _write(tmp_path, samples)
    cache = TargetCache(tmp_path)
    with pytest.raises(TargetCacheError, match="nope is not in the teacher-target cache"):
        cache.get("nope")
    with pytest.raises(TargetCacheError, match="1 of 2 samples are not in"):
        cache.load_all(["tok000", "nope"])
    shard = tmp_path / "shard_00001.npz"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(TargetCacheError, match="shard_00001.npz fails its sha256"):
        TargetCache(tmp_path).verify()
    with pytest.raises(TargetCacheError, match="sha256"):
        TargetCache(tmp_path).load_all()
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    index["format_version"] = FORMAT_VERSION + 1
    (tmp_path / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(TargetCacheError, match="format version"):
        TargetCache(tmp_path)
    with pytest.raises(TargetCacheError, match="index.json not found"):
        TargetCache(tmp_path / "missing")


def test_writer_checks_shapes_and_plan(tmp_path: Path) -> None:
    w = TargetCacheWriter(tmp_path, HEADER, [["tok000"]], 1)
    with pytest.raises(TargetCacheError, match="the plan says"):
        w.write_shard(0, [_sample(1, 0)])
    bad = _sample(0, 0)
    bad = TeacherTargets(
        bad.sample_token, 0, bad.features[:4], bad.intensity, bad.heatmap, bad.boxes, bad.labels, bad.scores
    )
    with pytest.raises(TargetCacheError, match="features"):
        w.write_shard(0, [bad])
    with pytest.raises(TargetCacheError, match="not written yet"):
        w.finish()
    overflow = _sample(0, 0, np.float32)
    overflow.features[0, 0, 0] = 1e6
    with pytest.raises(TargetCacheError, match="not finite in float16"):
        w.write_shard(0, [overflow])
    with pytest.raises(TargetCacheError, match="intensity must be"):
        TeacherTargets(
            "t",
            0,
            np.zeros((5, 8, 8)),
            np.zeros((2, 8, 8)),
            np.zeros((2, 8, 8)),
            np.zeros((0, 9)),
            np.zeros(0),
            np.zeros(0),
        )


def test_incompatible_existing_cache_is_not_overwritten(tmp_path: Path) -> None:
    _write(tmp_path, [_sample(i, 1) for i in range(2)])
    other = CacheHeader(GRID, 5, ("car", "truck"), teacher={"sha256": "another teacher"})
    with pytest.raises(TargetCacheError, match="another teacher, dataset"):
        TargetCacheWriter(tmp_path, other, [["tok000", "tok001"]], 2)
    w = TargetCacheWriter(tmp_path, other, [["tok000", "tok001"]], 2, overwrite=True)
    assert w.pending() == [0]
