"""imkd_ros.evaluation.compare / `imkd compare`: paired bootstrap over scenes. End to end on the synthetic dataset with
tiny
(untrained) checkpoints: files, the reference's (and its copy's) difference exactly 0 with interval [0, 0], the
headline equal to evaluate_results on the same results file; on perturbed ground truth: the interval contains the
full-split difference."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from imkd_ros.cli import main
from imkd_ros.core.types import Boxes
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.evaluation.compare import (
    bootstrap_headlines,
    compare_detectors,
    nds_ci_halfwidth,
    paired_deltas,
    scene_draws,
)
from imkd_ros.evaluation.eval_detector import headline, model_region
from imkd_ros.evaluation.evaluate import (
    CAMERA_RADAR_META,
    Region,
    _load_eval,
    _select,
    boxes_to_results,
    evaluate_results,
    write_results,
)
from imkd_ros.evaluation.metrics_fast import HEADLINE_KEYS, MatchTable, match_samples, metrics_of
from imkd_ros.model import ModelConfig
from imkd_ros.model.checkpoint import build_model, save_checkpoint

VERSION = "v1.0-synth"
SPLIT = "synth_all"  # 4 scenes x 4 samples


def _tiny_checkpoint(path: Path, modalities: tuple[str, ...], seed: int) -> Path:
    """An untrained tiny model that keeps every decoded box (score threshold 0), so each sample has detections."""
    torch.manual_seed(seed)
    cfg = ModelConfig.tiny(modalities)
    cfg = replace(cfg, decode=replace(cfg.decode, score_threshold=0.0))
    return save_checkpoint(path, build_model(cfg), cfg, meta={"seed": seed})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    a = _tiny_checkpoint(d / "student_a.pt", ("camera", "radar"), 0)
    out = {
        "a": a,
        "b": _tiny_checkpoint(d / "student_b.pt", ("camera", "radar"), 1),
        "teacher": _tiny_checkpoint(d / "teacher.pt", ("lidar",), 2),
        "a_copy": d / "copy" / "student_a.pt",  # same stem: named student_a-2
    }
    out["a_copy"].parent.mkdir()
    shutil.copy(a, out["a_copy"])
    return out


class _Front:
    """A region with only ``contains`` (no ``to_dict``): the front half of the grid."""

    def contains(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy)[:, 0] >= 0.0


def test_compare_end_to_end(synth_root: Path, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    ckpts = [checkpoints[k] for k in ("a", "b", "a_copy", "teacher")]
    grid = model_region(ModelConfig.tiny())
    near = Region(x_min=0.0, x_max=30.0, y_min=-15.0, y_max=15.0)
    res = compare_detectors(
        synth_root,
        VERSION,
        SPLIT,
        ckpts,
        out,
        regions={"grid": grid, "near": near, "front": _Front()},
        bootstrap=100,
        seed=3,
    )
    assert res.models == ("student_a", "student_b", "student_a-2", "teacher")
    for f in (res.json, res.markdown, res.png):
        assert f.is_file() and f.stat().st_size > 500, f
    on_disk = json.loads(res.json.read_text())
    assert on_disk["reference"] == "student_a" and set(on_disk["regions"]) == {"grid", "near", "front"}
    md = res.markdown.read_text()
    assert md.count("## Region") == 3 and "| student_b |" in md and "ΔNDS [95 % CI]" in md
    results = json.loads((out / "teacher" / "results.json").read_text())
    assert results["meta"]["use_lidar"] and not results["meta"]["use_camera"] and len(results["results"]) == 16

    for rname, area in (("grid", grid), ("near", near), ("front", None)):
        reg = res.regions[rname]
        assert reg.scenes == 4 and reg.samples == 16 and reg.valid_replicates == 100
        assert reg.fast_vs_devkit < 1e-9
        for name in ("student_a", "student_a-2"):  # the reference and a copy of it: paired, so exactly 0
            for k in HEADLINE_KEYS:
                d = reg.model(name).deltas[k]
                assert (d.value, d.lo, d.hi) == (0.0, 0.0, 0.0), (rname, name, k, d)
        b = reg.model("student_b").deltas["nds"]
        assert b.lo <= b.hi and b.half_width == (b.hi - b.lo) / 2
        assert res.nds_ci_halfwidth("student_b", rname) == b.half_width
        summary = json.loads((out / "student_b" / rname / "metrics_summary.json").read_text())
        assert headline(summary) == reg.model("student_b").headline
        if area is not None:  # the headline is evaluate_results' on the same results file
            again = evaluate_results(
                synth_root, VERSION, SPLIT, out / "student_b" / "results.json", tmp_path / rname, region=area
            )
            assert headline(again) == reg.model("student_b").headline
    assert res.regions["front"].area == {"kind": "_Front", "name": "front"}
    assert res.regions["near"].gt_boxes < res.regions["grid"].gt_boxes


def test_compare_cli(synth_root: Path, checkpoints: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "cli"
    args = ["compare", "--data", str(synth_root), "--split", SPLIT, "--out", str(out), "--bootstrap", "20"]
    rc = main(args + ["--checkpoint", str(checkpoints["a"]), "--checkpoint", str(checkpoints["b"])])
    assert rc == 0
    text = capsys.readouterr().out
    assert "grid: 16 samples, 4 scenes" in text and "student_b" in text and "compare.md" in text
    assert "coverage: 16 samples, 4 scenes" in text  # the default regions: the student's coverage and the grid
    regions = json.loads((out / "compare.json").read_text())["regions"]
    assert list(regions) == ["coverage", "grid"] and regions["coverage"]["gt_boxes"] < regions["grid"]["gt_boxes"]
    summary = evaluate_results(
        synth_root,
        VERSION,
        SPLIT,
        out / "student_a" / "results.json",
        tmp_path / "again",
        region=model_region(ModelConfig.tiny()),
    )
    row = json.loads((out / "compare.json").read_text())["regions"]["grid"]["models"][0]
    assert row["headline"] == pytest.approx(headline(summary), abs=0)
    assert row["delta"]["nds"] == {"value": 0.0, "lo": 0.0, "hi": 0.0, "half_width": 0.0}

    capsys.readouterr()  # the devkit's progress bars
    missing = tmp_path / "nope.pt"
    assert main(args + ["--checkpoint", str(checkpoints["a"]), "--checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imkd compare: error:") and str(missing) in err and "\n" not in err
    assert main(args + ["--checkpoint", str(checkpoints["a"])]) == 2
    assert "at least two checkpoints" in capsys.readouterr().err
    one_scene = ["--split", "synth_val", "--checkpoint", str(checkpoints["a"]), "--checkpoint", str(checkpoints["b"])]
    assert main(args[:3] + ["--out", str(out), *one_scene]) == 2
    assert "needs at least 2" in capsys.readouterr().err


# -- the bootstrap on perturbed ground truth -----------------------------------------------------------------------
def _noisy(gt: Boxes, rng: np.random.Generator, sigma: float) -> Boxes:
    """Detections of ``gt``: centre noise ``sigma`` (m), a fifth dropped, random scores."""
    g = gt[rng.random(len(gt)) > 0.2]
    n = len(g)
    center = g.center + np.c_[rng.normal(0, sigma, (n, 2)), np.zeros(n)]
    vel = np.where(np.isfinite(g.velocity), g.velocity, 0.0) + rng.normal(0, sigma, (n, 2))
    return Boxes(center, g.size, g.yaw + rng.normal(0, 0.1, n), vel, g.label, rng.uniform(0.1, 1.0, n), "ego")


@pytest.fixture(scope="module")
def noisy_tables(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[MatchTable], dict]:
    reader = NuScenesReader(synth_root, VERSION, load_image=False, load_lidar=False, radar_sweeps=1)
    frames = [reader.frame(t) for t in reader.split_samples(SPLIT)]
    d = tmp_path_factory.mktemp("noisy")
    tables = []
    for i, sigma in enumerate((0.3, 0.9)):
        rng = np.random.default_rng(10 + i)
        path = d / f"r{i}.json"
        write_results(path, {f.token: boxes_to_results(f, _noisy(f.gt, rng, sigma)) for f in frames}, CAMERA_RADAR_META)
        de = _load_eval(synth_root, VERSION, SPLIT, path, d / f"o{i}", False)
        gt, pred = _select(de, de.gt_boxes.sample_tokens, None)
        tables.append(match_samples(gt, pred, de.cfg))
    return tables, {f.token: f.scene for f in frames}


def test_bootstrap_interval_contains_the_full_split_difference(noisy_tables: tuple[list[MatchTable], dict]) -> None:
    tables, scene_of = noisy_tables
    scenes = sorted(set(scene_of.values()))
    draws = scene_draws(len(scenes), 400, seed=0)
    assert draws.shape == (400, 4) and (draws.sum(axis=1) == 4).all()
    assert np.array_equal(draws, scene_draws(len(scenes), 400, seed=0))
    boot = bootstrap_headlines(tables, scene_of, scenes, draws)
    assert boot.shape == (400, 2, len(HEADLINE_KEYS)) and np.isfinite(boot).all()
    all_ones = np.flatnonzero((draws == 1).all(axis=1))  # a replicate that is the full split
    point = np.stack([metrics_of(t).headline_array() for t in tables])
    for b in all_ones:
        np.testing.assert_array_equal(boot[b], point)
    deltas = paired_deltas(point, boot)
    for k in ("nds", "map", "trans_err"):
        d = deltas[1][k]
        assert d.lo <= d.value <= d.hi, (k, d)
        assert d.half_width > 0
    assert deltas[1]["nds"].value < 0 and deltas[1]["trans_err"].value > 0  # more noise: worse
    assert all((d.value, d.lo, d.hi) == (0.0, 0.0, 0.0) for d in deltas[0].values())
    width = nds_ci_halfwidth(tables[0], tables[1], scene_of, replicates=400, seed=0)
    assert width == deltas[1]["nds"].half_width
    assert math.isfinite(width) and 0 < width < abs(deltas[1]["nds"].value) + 1
