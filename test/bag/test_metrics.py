"""``imkd_ros.bag.metrics``: the devkit detection metric on boxes held in memory.

Hand-made boxes: perfect predictions score mAP 1 and NDS 1, shifted ones have TP errors > 0, the class range is
measured from the range pose, bad input is named. On the synthetic dataset: the same numbers as ``imkd eval``'s
scoring of a result file against the dataroot (the devkit's own loading and filtering), to float precision.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.bag.metrics import evaluate_boxes, gt_detection_boxes
from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes
from imkd_ros.evaluation.evaluate import EvaluationError, Region

CAR, PED = CLASSES.index("car"), CLASSES.index("pedestrian")


def _scene(n_samples: int = 3) -> tuple[dict[str, Boxes], dict[str, Pose]]:
    """Per sample a car, a moving pedestrian and a parked car ahead of an ego that drives along a rotated road."""
    gt, poses = {}, {}
    for k in range(n_samples):
        gt[f"s{k}"] = Boxes(
            center=[[10.0 + k, 2.0, 0.8], [20.0, -3.0 - k, 0.9], [35.0, 5.0, 0.8]],
            size=[[1.9, 4.5, 1.6], [0.7, 0.7, 1.8], [1.9, 4.6, 1.5]],
            yaw=[0.1, 1.2, -0.3],
            velocity=[[5.0, 0.0], [0.0, -1.4], [0.0, 0.0]],
            label=[CAR, PED, CAR],
            score=[1.0, 1.0, 1.0],
        )
        poses[f"s{k}"] = Pose.from_yaw(0.7 + 0.05 * k, [100.0 + 5 * k, 50.0 + 3 * k, 0.0])
    return gt, poses


def _with(boxes: Boxes, **changes: np.ndarray) -> Boxes:
    fields = {f: getattr(boxes, f) for f in ("center", "size", "yaw", "velocity", "label", "score")}
    fields.update(changes)
    return Boxes(**fields)


def test_perfect_predictions_score_one_and_shifted_ones_have_errors(tmp_path: Path) -> None:
    gt, poses = _scene()
    pred = {k: _with(b, score=np.array([0.9, 0.8, 0.7])) for k, b in gt.items()}
    s = evaluate_boxes(gt, pred, poses, tmp_path / "perfect")
    assert s["mean_ap"] == pytest.approx(1.0) and s["nd_score"] == pytest.approx(1.0)
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in s["tp_errors"].values())
    assert s["eval_scope"]["classes"] == ["car", "pedestrian"] and s["eval_scope"]["gt_boxes"] == 9
    assert json.loads((tmp_path / "perfect" / "metrics_summary.json").read_text())["nd_score"] == s["nd_score"]
    assert (tmp_path / "perfect" / "metrics_details.json").is_file()

    shifted = {
        k: _with(
            b, center=b.center + [0.3, 0.4, 0.0], yaw=b.yaw + 0.2, velocity=b.velocity + 1.0, score=[0.9, 0.8, 0.7]
        )
        for k, b in gt.items()
    }
    e = evaluate_boxes(gt, shifted, poses, tmp_path / "shifted")
    assert e["tp_errors"]["trans_err"] == pytest.approx(0.5)  # |(0.3, 0.4)|, rotation-invariant
    assert e["tp_errors"]["orient_err"] == pytest.approx(0.2)
    assert e["tp_errors"]["vel_err"] == pytest.approx(np.sqrt(2.0))
    assert e["mean_ap"] < 1.0 and e["nd_score"] < s["nd_score"]

    # a missing sample in pred = no detections there; a detection of the wrong class is a false positive
    partial = {k: v for k, v in pred.items() if k != "s0"}
    partial["s1"] = _with(pred["s1"], label=[PED, CAR, CAR])
    p = evaluate_boxes(gt, partial, poses, tmp_path / "partial")
    assert 0.0 < p["mean_ap"] < 1.0


def test_class_range_is_measured_from_the_range_pose_and_region_applies(tmp_path: Path) -> None:
    gt, poses = _scene(1)
    pred = {k: _with(b, score=[0.9, 0.8, 0.7]) for k, b in gt.items()}
    # the pedestrian at 20 m is in range (40 m); moved 25 m back, the range origin puts it at ~45 m: dropped
    back = {k: p @ Pose.from_yaw(0.0, [-25.0, 0.0, 0.0]) for k, p in poses.items()}
    s = evaluate_boxes(gt, pred, poses, tmp_path / "a", range_poses=back)
    assert s["eval_scope"]["classes"] == ["car"] and s["eval_scope"]["gt_boxes"] == 1  # only the car at 10 m left
    r = evaluate_boxes(gt, pred, poses, tmp_path / "b", region=Region(0.0, 30.0, -10.0, 10.0))
    assert r["eval_scope"]["gt_boxes"] == 2 and r["eval_scope"]["pred_boxes"] == 2


def test_gt_attributes_and_points_are_used(tmp_path: Path) -> None:
    gt, poses = _scene(1)
    box = gt_detection_boxes("s0", gt["s0"], poses["s0"])
    assert [b.attribute_name for b in box] == ["vehicle.moving", "pedestrian.moving", "vehicle.parked"]
    assert box[0].translation == pytest.approx(tuple(poses["s0"].apply(gt["s0"].center)[0]))
    pred = {k: _with(b, score=[0.9, 0.8, 0.7]) for k, b in gt.items()}
    wrong = {"s0": ["vehicle.parked", "pedestrian.moving", "vehicle.parked"]}  # the moving car annotated parked
    s = evaluate_boxes(gt, pred, poses, tmp_path / "attr", gt_attributes=wrong)
    right = evaluate_boxes(gt, pred, poses, tmp_path / "right")  # inferred from the speeds: all correct here
    assert right["tp_errors"]["attr_err"] == 0.0 and s["tp_errors"]["attr_err"] > 0.1
    assert s["mean_ap"] == right["mean_ap"] and s["tp_errors"]["trans_err"] == right["tp_errors"]["trans_err"]
    n = evaluate_boxes(gt, pred, poses, tmp_path / "pts", gt_num_pts={"s0": [5, 0, 3]})
    assert n["eval_scope"]["gt_boxes"] == 2 and n["eval_scope"]["classes"] == ["car"]


def test_bad_input_is_named(tmp_path: Path) -> None:
    gt, poses = _scene(2)
    with pytest.raises(EvaluationError, match="no samples"):
        evaluate_boxes({}, {}, {}, tmp_path)
    with pytest.raises(EvaluationError, match="prediction keys have no ground truth entry, e.g. zz"):
        evaluate_boxes(gt, {"zz": Boxes.empty()}, poses, tmp_path)
    with pytest.raises(EvaluationError, match="poses has no entry for sample s1"):
        evaluate_boxes(gt, {}, {"s0": poses["s0"]}, tmp_path)
    with pytest.raises(EvaluationError, match="2 attributes for 3 boxes"):
        evaluate_boxes(gt, {}, poses, tmp_path, gt_attributes={"s0": ["", ""]})
    with pytest.raises(EvaluationError, match="frame 'global'"):
        evaluate_boxes({"s0": gt["s0"].transform(poses["s0"], "global")}, {}, poses, tmp_path)
    with pytest.raises(EvaluationError, match="500"):
        many = Boxes(
            np.zeros((501, 3)), np.ones((501, 3)), np.zeros(501), np.zeros((501, 2)), np.zeros(501), np.ones(501)
        )
        evaluate_boxes(gt, {"s0": many}, poses, tmp_path)
    empty = evaluate_boxes(gt, {}, poses, tmp_path / "empty")  # no predictions at all: scores 0, no crash
    assert empty["mean_ap"] == 0.0


def test_same_numbers_as_the_devkit_on_a_dataroot(synth_root: Path, tmp_path: Path) -> None:
    """Perturbed ground truth as detections: evaluate_boxes (no dataroot) == evaluate_results (the devkit loading
    the dataroot and a result file), given the annotations' attributes and point counts and the LIDAR_TOP poses."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.evaluation.evaluate import CAMERA_RADAR_META, boxes_to_results, evaluate_results, write_results

    reader = NuScenesReader(synth_root, load_lidar=False, load_image=False)
    rng = np.random.default_rng(0)
    gt, pred, poses, lidar_poses, attrs, pts, results = {}, {}, {}, {}, {}, {}, {}
    for t in reader.split_samples("synth_train"):
        f = reader.frame(t)
        g = f.gt
        p = _with(
            g,
            center=g.center + rng.normal(0, 0.3, g.center.shape),
            size=g.size * 1.05,
            yaw=g.yaw + 0.1,
            velocity=np.nan_to_num(g.velocity) + 0.2,
            score=rng.uniform(0.1, 1.0, len(g)),
        )[rng.uniform(size=len(g)) < 0.8]
        anns = {a["token"]: a for a in reader.annotations(t)}
        gt[t], pred[t], poses[t] = g, p, f.ego_pose
        lidar_poses[t] = reader.ego_pose_of(reader.keyframe_token(t, "LIDAR_TOP"))
        attrs[t] = [(anns[k]["attribute_names"] or [""])[0] for k in g.tokens]
        pts[t] = [anns[k]["num_lidar_pts"] + anns[k]["num_radar_pts"] for k in g.tokens]
        results[t] = boxes_to_results(f, p)
    write_results(tmp_path / "results.json", results, CAMERA_RADAR_META)
    region = Region(0.0, 51.2, -25.6, 25.6)
    ref = evaluate_results(
        synth_root, "v1.0-synth", "synth_train", tmp_path / "results.json", tmp_path / "dev", region=region
    )
    got = evaluate_boxes(
        gt, pred, poses, tmp_path / "mem", range_poses=lidar_poses, gt_attributes=attrs, gt_num_pts=pts, region=region
    )
    assert got["nd_score"] == pytest.approx(ref["nd_score"], abs=1e-9)
    assert got["mean_ap"] == pytest.approx(ref["mean_ap"], abs=1e-9)
    for k, v in ref["tp_errors"].items():
        assert got["tp_errors"][k] == pytest.approx(v, abs=1e-9), k
    for k in ("classes", "samples", "gt_boxes", "pred_boxes"):
        assert got["eval_scope"][k] == ref["eval_scope"][k], k
