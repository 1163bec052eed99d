"""The devkit evaluation harness on the synthetic dataset: GT scores perfectly, perturbed boxes score lower."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose, quat_to_yaw
from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.evaluation.evaluate import (
    CAMERA_RADAR_META,
    EvaluationError,
    Region,
    attribute_of,
    boxes_to_results,
    evaluate_regions,
    evaluate_results,
    write_results,
)

VERSION = "v1.0-synth"
FRONT = Region(x_min=0.0, x_max=60.0, y_min=-30.0, y_max=30.0, half_fov=math.radians(35.0))


@pytest.fixture(scope="module")
def frames(synth_root: Path) -> list[Frame]:
    reader = NuScenesReader(synth_root, VERSION, load_image=False, load_lidar=False, radar_sweeps=1)
    return [reader.frame(t) for t in reader.sample_tokens]


def _results(frames: list[Frame], edit: Callable[[Boxes], Boxes] = lambda b: b) -> dict[str, list[dict]]:
    return {f.token: boxes_to_results(f, edit(f.gt)) for f in frames}


def _write(tmp_path: Path, results: dict[str, list[dict]], name: str = "results.json") -> Path:
    path = tmp_path / name
    write_results(path, results, CAMERA_RADAR_META)
    return path


@pytest.fixture(scope="module")
def gt_results_path(frames: list[Frame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("gt"), _results(frames))


def test_ground_truth_scores_perfectly(synth_root: Path, gt_results_path: Path, tmp_path: Path) -> None:
    summary = evaluate_results(synth_root, VERSION, "synth_val", gt_results_path, tmp_path)
    assert summary["mean_ap"] == pytest.approx(1.0, abs=1e-9)
    assert summary["nd_score"] > 0.99
    errors = summary["tp_errors"]
    assert errors["trans_err"] < 1e-6 and errors["scale_err"] < 1e-6 and errors["orient_err"] < 1e-6
    assert errors["vel_err"] < 1e-6  # where the devkit can compute a GT velocity
    assert errors["attr_err"] < 0.05
    assert set(summary["mean_dist_aps"]) == set(summary["eval_scope"]["classes"]) and "car" in summary["mean_dist_aps"]
    assert summary["eval_scope"]["samples"] == 4 and summary["eval_scope"]["gt_boxes"] > 20
    assert summary["meta"] == CAMERA_RADAR_META
    on_disk = json.loads((tmp_path / "metrics_summary.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(summary))
    assert (tmp_path / "metrics_details.json").is_file()


def test_perturbed_boxes_score_lower(synth_root: Path, gt_results_path: Path, frames: list[Frame], tmp_path: Path):
    perfect = evaluate_results(synth_root, VERSION, "synth_val", gt_results_path, tmp_path / "gt")

    def shifted(b: Boxes) -> Boxes:
        return Boxes(b.center + [1.5, 0.0, 0.0], b.size, b.yaw, b.velocity, b.label, b.score, b.frame)

    def resized(b: Boxes) -> Boxes:
        return Boxes(b.center, b.size * [1.5, 0.6, 1.3], b.yaw, b.velocity, b.label, b.score, b.frame)

    shift = evaluate_results(
        synth_root, VERSION, "synth_val", _write(tmp_path, _results(frames, shifted), "s.json"), tmp_path / "s"
    )
    size = evaluate_results(
        synth_root, VERSION, "synth_val", _write(tmp_path, _results(frames, resized), "z.json"), tmp_path / "z"
    )
    assert shift["mean_ap"] < 0.9 * perfect["mean_ap"]  # misses the 0.5 m and 1 m thresholds
    assert shift["tp_errors"]["trans_err"] == pytest.approx(1.5, abs=1e-3)
    assert shift["nd_score"] < perfect["nd_score"]
    assert size["tp_errors"]["scale_err"] > 0.2 and size["nd_score"] < perfect["nd_score"]


def test_region_filters_gt_and_predictions(synth_root: Path, frames: list[Frame], gt_results_path: Path, tmp_path):
    full = evaluate_results(synth_root, VERSION, "synth_val", gt_results_path, tmp_path / "full")
    front = evaluate_results(synth_root, VERSION, "synth_val", gt_results_path, tmp_path / "front", region=FRONT)
    assert 0 < front["eval_scope"]["gt_boxes"] < full["eval_scope"]["gt_boxes"]
    assert front["eval_scope"]["region"]["half_fov"] == pytest.approx(FRONT.half_fov)
    assert front["mean_ap"] == pytest.approx(1.0, abs=1e-9)

    # confident false positives behind the ego: they cost precision everywhere but in the front region
    def with_ghosts(b: Boxes) -> Boxes:
        car = CLASSES.index("car")
        ghost = Boxes([[-12.0, 0.0, 1.0]], [[1.9, 4.6, 1.7]], [0.0], [[0.0, 0.0]], [car], [2.0], "ego")
        return Boxes(
            np.concatenate([b.center, ghost.center]), np.concatenate([b.size, ghost.size]),
            np.concatenate([b.yaw, ghost.yaw]), np.concatenate([b.velocity, ghost.velocity]),
            np.concatenate([b.label, ghost.label]), np.concatenate([b.score, ghost.score]), "ego",
        )  # fmt: skip

    path = _write(tmp_path, _results(frames, with_ghosts), "ghosts.json")
    ghosts_full = evaluate_results(synth_root, VERSION, "synth_val", path, tmp_path / "gf")
    ghosts_front = evaluate_results(synth_root, VERSION, "synth_val", path, tmp_path / "gr", region=FRONT)
    assert ghosts_full["mean_dist_aps"]["car"] < 0.999
    assert ghosts_front["mean_dist_aps"]["car"] == pytest.approx(1.0, abs=1e-9)
    assert ghosts_front["eval_scope"]["pred_boxes"] == front["eval_scope"]["pred_boxes"]

    behind = Region(x_min=-60.0, x_max=-59.0, y_min=-0.5, y_max=0.5)
    with pytest.raises(EvaluationError, match="no ground truth .* and the region"):
        evaluate_results(synth_root, VERSION, "synth_val", gt_results_path, tmp_path / "none", region=behind)


def test_class_restriction(synth_root: Path, gt_results_path: Path, tmp_path: Path) -> None:
    summary = evaluate_results(
        synth_root, VERSION, "synth_val", gt_results_path, tmp_path, classes=["pedestrian", "car", "bus"]
    )
    assert set(summary["mean_dist_aps"]) <= {"pedestrian", "car", "bus"} and "car" in summary["mean_dist_aps"]
    with pytest.raises(EvaluationError, match="unknown classes"):
        evaluate_results(synth_root, VERSION, "synth_val", gt_results_path, tmp_path, classes=["lorry"])


def test_evaluate_by_weather(synth_root: Path, gt_results_path: Path, tmp_path: Path) -> None:
    (grid,) = evaluate_regions(synth_root, VERSION, "synth_train", gt_results_path, [(tmp_path, None)], by_weather=True)
    out = grid.by_weather
    assert sorted(out) == ["clear", "fog", "rain"]  # the three training scenes
    for weather, summary in out.items():
        assert summary["mean_ap"] == pytest.approx(1.0, abs=1e-9)
        assert summary["eval_scope"]["weather"] == weather and summary["eval_scope"]["samples"] == 4
        assert (tmp_path / "by_weather" / weather / "metrics_summary.json").is_file()


def test_evaluate_regions_scores_each_region_from_one_load(
    synth_root: Path, gt_results_path: Path, tmp_path: Path
) -> None:
    """One devkit load, several regions: each scores as its own :func:`evaluate_results` / single-region call would,
    into its own folder; a Coverage region is recorded as such."""
    from imkd_ros.evaluation.coverage import Coverage, Sector

    cov = Coverage(Region(0.0, 60.0, -30.0, 30.0), (Sector.symmetric("S", (0.0, 0.0), 0.0, FRONT.half_fov, 90.0),))
    split = "synth_train"
    grid, front, seen = evaluate_regions(
        synth_root,
        VERSION,
        split,
        gt_results_path,
        [(tmp_path, None), (tmp_path / "front", FRONT), (tmp_path / "cov", cov)],
        by_weather=True,
    )
    alone = evaluate_results(synth_root, VERSION, split, gt_results_path, tmp_path / "alone", region=FRONT)
    (alone_w,) = evaluate_regions(
        synth_root, VERSION, split, gt_results_path, [(tmp_path / "alone_w", FRONT)], by_weather=True
    )
    weather = alone_w.by_weather
    for k in ("nd_score", "mean_ap", "tp_errors", "eval_scope"):
        assert front.summary[k] == alone[k], k
    assert {w: s["nd_score"] for w, s in front.by_weather.items()} == {w: s["nd_score"] for w, s in weather.items()}
    assert 0 < front.summary["eval_scope"]["gt_boxes"] < grid.summary["eval_scope"]["gt_boxes"]
    assert grid.summary["eval_scope"]["region"] is None
    assert front.summary["eval_scope"]["region"] == {"kind": "rectangle", **FRONT.__dict__}
    # the sector of the same half-angle, cut by a wider rectangle: the same boxes as FRONT
    assert seen.summary["eval_scope"]["region"]["kind"] == "coverage"
    assert seen.summary["eval_scope"]["gt_boxes"] == front.summary["eval_scope"]["gt_boxes"]
    for d in (tmp_path, tmp_path / "front", tmp_path / "cov"):
        assert (d / "metrics_summary.json").is_file() and (
            d / "by_weather" / "clear" / "metrics_summary.json"
        ).is_file()


def test_bad_results_raise_clear_errors(synth_root: Path, frames: list[Frame], tmp_path: Path) -> None:
    empty = _write(tmp_path, {f.token: [] for f in frames}, "empty.json")
    with pytest.raises(EvaluationError, match="no detections in any of the 4 samples of split 'synth_val'"):
        evaluate_results(synth_root, VERSION, "synth_val", empty, tmp_path)
    partial = _write(tmp_path, dict(list(_results(frames).items())[:-1]), "partial.json")
    with pytest.raises(EvaluationError, match="1 of the 4 samples of split 'synth_val' have no entry"):
        evaluate_results(synth_root, VERSION, "synth_val", partial, tmp_path)
    with pytest.raises(EvaluationError, match="unreadable results file"):
        evaluate_results(synth_root, VERSION, "synth_val", tmp_path / "absent.json", tmp_path)
    with pytest.raises(EvaluationError, match="synth_other"):
        evaluate_results(synth_root, VERSION, "synth_other", empty, tmp_path)


def test_boxes_to_results_is_global_and_typed() -> None:
    ego = Pose.from_yaw(math.pi / 2, [100.0, 200.0, 0.5])
    car, cone = CLASSES.index("car"), CLASSES.index("traffic_cone")
    boxes = Boxes(
        center=[[10.0, 0.0, 1.0], [5.0, 1.0, 0.5], [7.0, 0.0, 0.5]],
        size=[[1.9, 4.6, 1.7], [0.4, 0.4, 1.0], [1.9, 4.6, 1.7]],
        yaw=[0.1, 0.0, 0.0],
        velocity=[[5.0, 0.0], [np.nan, np.nan], [0.2, 0.0]],
        label=[car, cone, car],
        score=np.array([0.9, 0.5, 0.3], dtype=np.float32),
        frame="ego",
    )
    res = boxes_to_results("tok", boxes, ego)
    assert [r["sample_token"] for r in res] == ["tok"] * 3
    np.testing.assert_allclose(res[0]["translation"], [100.0, 210.0, 1.5], atol=1e-12)
    assert quat_to_yaw(res[0]["rotation"]) == pytest.approx(math.pi / 2 + 0.1)
    np.testing.assert_allclose(res[0]["velocity"], [0.0, 5.0], atol=1e-12)
    assert res[0]["size"] == [1.9, 4.6, 1.7]
    assert [r["attribute_name"] for r in res] == ["vehicle.moving", "", "vehicle.parked"]
    assert res[1]["velocity"] == [0.0, 0.0] and res[1]["detection_name"] == "traffic_cone"
    assert all(type(r["detection_score"]) is float for r in res)
    assert res[2]["detection_score"] == pytest.approx(0.3)

    with pytest.raises(ValueError, match="ego_pose is required"):
        boxes_to_results("tok", boxes)
    with pytest.raises(ValueError, match="expected 'ego'"):
        boxes_to_results("tok", boxes.transform(ego, "global"), ego)


def test_attribute_rule() -> None:
    assert attribute_of("pedestrian", 1.2) == "pedestrian.moving"
    assert attribute_of("pedestrian", 0.1) == "pedestrian.standing"
    assert attribute_of("bicycle", 3.0) == "cycle.with_rider"
    assert attribute_of("motorcycle", float("nan")) == "cycle.without_rider"
    assert attribute_of("barrier", 3.0) == ""
    with pytest.raises(ValueError, match="unknown detection class"):
        attribute_of("lorry", 1.0)


def test_write_results_validates(tmp_path: Path) -> None:
    box = {"sample_token": "a", "translation": [0.0, 0.0, float("nan")]}
    with pytest.raises(EvaluationError, match="non-finite"):
        write_results(tmp_path / "r.json", {"a": [box]}, CAMERA_RADAR_META)
    with pytest.raises(EvaluationError, match="meta needs exactly"):
        write_results(tmp_path / "r.json", {"a": []}, {"use_camera": True})
    with pytest.raises(EvaluationError, match="box of 'a' under key b"):
        write_results(tmp_path / "r.json", {"b": [box]}, CAMERA_RADAR_META)
    with pytest.raises(EvaluationError, match="501 boxes"):
        write_results(tmp_path / "r.json", {"a": [{"sample_token": "a"}] * 501}, CAMERA_RADAR_META)
    write_results(tmp_path / "sub" / "r.json", {"a": []}, CAMERA_RADAR_META)
    assert json.loads((tmp_path / "sub" / "r.json").read_text()) == {"meta": CAMERA_RADAR_META, "results": {"a": []}}


def test_region_contains() -> None:
    r = Region(0.0, 50.0, -10.0, 10.0, half_fov=math.radians(45.0))
    inside = r.contains(np.array([[10.0, 0.0], [10.0, 9.0], [5.0, 9.0], [-1.0, 0.0], [51.0, 0.0], [20.0, -10.5]]))
    assert inside.tolist() == [True, True, False, False, False, False]
    with pytest.raises(ValueError, match="empty"):
        Region(1.0, 0.0, -1.0, 1.0)
