"""imkd_ros.evaluation.metrics_fast against the real nuscenes-devkit: every number of the summary to 1e-9, on perturbed
ground
truth (noise, drops, double detections, false positives, a class without predictions), with sample weights (a
scene counted twice, a scene left out), in a region, and without any prediction."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.evaluation.evaluate import (
    CAMERA_RADAR_META,
    Region,
    _load_eval,
    _score,
    _select,
    boxes_to_results,
    evaluate_results,
    write_results,
)
from imkd_ros.evaluation.metrics_fast import TP_METRICS, MatchTable, Scores, match_samples, metrics_of

VERSION = "v1.0-synth"
SPLIT = "synth_all"  # 4 scenes x 4 samples
FRONT = Region(x_min=0.0, x_max=60.0, y_min=-30.0, y_max=30.0, half_fov=math.radians(35.0))


def _perturb(gt: Boxes, rng: np.random.Generator) -> Boxes:
    """Noisy detections of ``gt``: ~15 % dropped, no bicycles, position/size/yaw/velocity noise (some yaws
    flipped, some velocities unknown), double detections, and false positives (also of the absent class trailer),
    all with distinct random scores."""
    keep = (rng.random(len(gt)) > 0.15) & (gt.label != CLASSES.index("bicycle"))
    g = gt[keep]
    n = len(g)
    center = g.center + np.c_[rng.normal(0, 0.6, (n, 2)), rng.normal(0, 0.1, n)]
    size = g.size * np.exp(rng.normal(0, 0.15, (n, 3)))
    yaw = g.yaw + rng.normal(0, 0.2, n) + np.pi * (rng.random(n) < 0.2)
    vel = np.where(np.isfinite(g.velocity), g.velocity, 0.0) + rng.normal(0, 0.7, (n, 2))
    vel[rng.random(n) < 0.1] = np.nan
    dup = rng.random(n) < 0.2  # a second, weaker box near the first
    m = int(dup.sum())
    n_fp = 6
    fp_labels = rng.choice([CLASSES.index(c) for c in ("car", "pedestrian", "traffic_cone", "trailer")], n_fp)
    fp_center = np.c_[rng.uniform(-40, 40, (n_fp, 2)), np.ones(n_fp)]
    return Boxes(
        center=np.concatenate([center, center[dup] + rng.normal(0, 0.5, (m, 3)), fp_center]),
        size=np.concatenate([size, size[dup], np.tile([1.0, 2.0, 1.5], (n_fp, 1))]),
        yaw=np.concatenate([yaw, yaw[dup], rng.uniform(-np.pi, np.pi, n_fp)]),
        velocity=np.concatenate([vel, vel[dup], np.zeros((n_fp, 2))]),
        label=np.concatenate([g.label, g.label[dup], fp_labels]),
        score=np.concatenate([rng.uniform(0.3, 1.0, n), rng.uniform(0.05, 0.5, m), rng.uniform(0.0, 0.7, n_fp)]),
        frame="ego",
    )  # fmt: skip


@pytest.fixture(scope="module")
def frames(synth_root: Path) -> list[Frame]:
    reader = NuScenesReader(synth_root, VERSION, load_image=False, load_lidar=False, radar_sweeps=1)
    return [reader.frame(t) for t in reader.split_samples(SPLIT)]


@pytest.fixture(scope="module")
def results_path(frames: list[Frame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("fast") / "results.json"
    write_results(path, {f.token: boxes_to_results(f, _perturb(f.gt, rng)) for f in frames}, CAMERA_RADAR_META)
    return path


@pytest.fixture(scope="module")
def loaded(synth_root: Path, results_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The devkit's DetectionEval of ``results_path`` (GT and predictions loaded and filtered)."""
    return _load_eval(synth_root, VERSION, SPLIT, results_path, tmp_path_factory.mktemp("de"), False)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


def assert_matches_devkit(summary: dict[str, Any], got: Scores) -> None:
    """Every number of a devkit summary (as :func:`evaluate_results` returns it) equals ``got`` to 1e-9."""
    assert set(got.classes) == set(summary["label_aps"]) == set(summary["eval_scope"]["classes"])
    assert _same(summary["nd_score"], got.nd_score), (summary["nd_score"], got.nd_score)
    assert _same(summary["mean_ap"], got.mean_ap), (summary["mean_ap"], got.mean_ap)
    for m in TP_METRICS:
        assert _same(summary["tp_errors"][m], got.tp_errors[m]), (m, summary["tp_errors"][m], got.tp_errors[m])
        assert _same(summary["tp_scores"][m], got.tp_scores[m]), m
    for c in got.classes:
        assert _same(summary["mean_dist_aps"][c], got.mean_dist_aps[c]), c
        assert {float(k) for k in summary["label_aps"][c]} == set(got.label_aps[c])
        for th, ap in summary["label_aps"][c].items():
            assert _same(ap, got.label_aps[c][float(th)]), (c, th, ap, got.label_aps[c][float(th)])
        for m, e in summary["label_tp_errors"][c].items():
            assert _same(e, got.label_tp_errors[c][m]), (c, m, e, got.label_tp_errors[c][m])


def _table(de: Any, region: Region | None = None) -> MatchTable:
    gt, pred = _select(de, de.gt_boxes.sample_tokens, region)
    return match_samples(gt, pred, de.cfg)


def test_equals_devkit_on_perturbed_predictions(synth_root: Path, results_path: Path, loaded: Any, tmp_path: Path):
    summary = evaluate_results(synth_root, VERSION, SPLIT, results_path, tmp_path)
    table = _table(loaded)
    got = metrics_of(table, np.ones(table.n_samples, dtype=int))
    assert_matches_devkit(summary, got)
    assert got.headline() == {"nds": got.nd_score, "map": got.mean_ap, **got.tp_errors}
    # the perturbation exercises what it should: partial APs, a class without predictions, NaN-excepted classes
    assert 0.1 < got.mean_ap < 0.9 and 0.1 < got.nd_score < 0.9
    assert got.label_aps["bicycle"] == dict.fromkeys(table.dist_ths, 0.0)
    assert all(got.label_tp_errors["bicycle"][m] == 1.0 for m in TP_METRICS)
    assert math.isnan(got.label_tp_errors["traffic_cone"]["orient_err"]) and "barrier" in got.classes
    assert 0 < got.label_aps["car"][0.5] < got.label_aps["car"][4.0] < 1
    assert "trailer" not in got.classes  # false positives of a class without ground truth are not scored


def test_equals_devkit_in_a_region(synth_root: Path, results_path: Path, loaded: Any, tmp_path: Path) -> None:
    summary = evaluate_results(synth_root, VERSION, SPLIT, results_path, tmp_path, region=FRONT)
    assert_matches_devkit(summary, metrics_of(_table(loaded, FRONT)))


def _scene_of(synth_root: Path, tokens: tuple[str, ...]) -> np.ndarray:
    reader = NuScenesReader(synth_root, VERSION, load_image=False, load_lidar=False)
    return np.array([reader.scene_of(t) for t in tokens])


def test_scene_weight_two_equals_devkit_on_duplicated_scene(synth_root: Path, loaded: Any, tmp_path: Path) -> None:

    table = _table(loaded)
    scenes = _scene_of(synth_root, table.sample_tokens)
    twice = scenes == "scene-0001"
    gt, pred = _select(loaded, loaded.gt_boxes.sample_tokens, None)
    for t in [t for t, d in zip(table.sample_tokens, twice, strict=True) if d]:
        for src, dst in ((loaded.gt_boxes, gt), (loaded.pred_boxes, pred)):
            copies = [copy.copy(b) for b in src[t]]
            for b in copies:
                b.sample_token = t + "-copy"
            dst.add_boxes(t + "-copy", copies)
    assert len(gt.sample_tokens) == table.n_samples + int(twice.sum())
    summary = _score(loaded, gt, pred, tmp_path, None, None, {"split": SPLIT})
    weights = np.where(twice, 2, 1)
    assert_matches_devkit(summary, metrics_of(table, weights))
    assert metrics_of(table).nd_score != pytest.approx(metrics_of(table, weights).nd_score, abs=1e-6)


def test_scene_weight_zero_equals_devkit_without_the_scene(synth_root: Path, loaded: Any, tmp_path: Path) -> None:
    table = _table(loaded)
    scenes = _scene_of(synth_root, table.sample_tokens)
    for left_out in ("scene-0000", "scene-0003"):
        kept = [t for t, s in zip(table.sample_tokens, scenes, strict=True) if s != left_out]
        gt, pred = _select(loaded, kept, None)
        summary = _score(loaded, gt, pred, tmp_path / left_out, None, None, {"split": SPLIT})
        assert_matches_devkit(summary, metrics_of(table, (scenes != left_out).astype(int)))
        # a region and weights together
        gt, pred = _select(loaded, kept, FRONT)
        summary = _score(loaded, gt, pred, tmp_path / f"{left_out}-front", None, FRONT, {"split": SPLIT})
        assert_matches_devkit(summary, metrics_of(_table(loaded, FRONT), (scenes != left_out).astype(int)))


def test_no_predictions_equals_devkit(loaded: Any, tmp_path: Path) -> None:
    from nuscenes.eval.common.data_classes import EvalBoxes

    gt, _ = _select(loaded, loaded.gt_boxes.sample_tokens, None)
    empty = EvalBoxes()
    for t in gt.sample_tokens:
        empty.add_boxes(t, [])
    summary = _score(loaded, gt, empty, tmp_path, None, None, {"split": SPLIT})
    got = metrics_of(match_samples(gt, empty, loaded.cfg))
    assert_matches_devkit(summary, got)
    assert got.mean_ap == 0.0 and got.nd_score == 0.0


def test_weights_are_checked_and_no_ground_truth_gives_nan(loaded: Any) -> None:
    table = _table(loaded)
    with pytest.raises(ValueError, match="shape"):
        metrics_of(table, np.ones(3, dtype=int))
    with pytest.raises(ValueError, match="non-negative integers"):
        metrics_of(table, np.full(table.n_samples, -1))
    with pytest.raises(ValueError, match="non-negative integers"):
        metrics_of(table, np.full(table.n_samples, 0.5))
    none = metrics_of(table, np.zeros(table.n_samples, dtype=int))
    assert math.isnan(none.nd_score) and none.classes == ()
    assert np.isnan(none.headline_array()).all()
