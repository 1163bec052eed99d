"""nuScenes detection metrics (devkit ``detection_cvpr_2019``) of boxes held in memory, without a dataroot.

``imkd eval`` scores a result file against a nuScenes-format dataroot (:mod:`imkd_ros.evaluation.evaluate`). A bag has
no dataroot: its ground truth and the replayed detections are :class:`~imkd_ros.core.types.Boxes` per frame. This module
feeds them through the same devkit code that ``DetectionEval`` runs, in the same order:

1. both become devkit ``DetectionBox`` objects in the GLOBAL frame (predictions through
   :func:`imkd_ros.evaluation.evaluate.boxes_to_results`, as ``imkd eval`` writes them; ground truth likewise, score
   -1);
2. the devkit's own ``add_center_dist`` and ``filter_eval_boxes`` (class range, GT with zero points, bike racks)
   run on them, handed a minimal stand-in for the ``NuScenes`` object that knows, per frame, the ego position the
   range is measured from (the devkit uses the ``LIDAR_TOP`` keyframe's ego pose) and no bike racks;
3. the optional ego-frame area (:class:`~imkd_ros.evaluation.evaluate.Region`,
:class:`~imkd_ros.evaluation.coverage.Coverage`) is applied
   as ``imkd eval`` applies it;
4. :func:`imkd_ros.evaluation.evaluate` 's scorer narrows the classes to those with ground truth and runs the devkit's
   ``DetectionEval.evaluate`` (``accumulate`` / ``calc_ap`` / ``calc_tp`` / ``DetectionMetrics``), writing the
   devkit's ``metrics_summary.json`` and ``metrics_details.json``.

Keys of the input mappings are anything with a stable ``str()`` (sample tokens, stamps in ns): they become the
devkit's sample tokens. Samples are evaluated in the order of the ``gt`` mapping.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose, yaw_to_quat
from imkd_ros.core.types import Boxes
from imkd_ros.evaluation.evaluate import (
    CAMERA_RADAR_META,
    META_KEYS,
    Area,
    EvaluationError,
    _in_region,
    _score,
    attribute_of,
    boxes_to_results,
)

__all__ = ["MAX_BOXES_PER_SAMPLE", "gt_detection_boxes", "pred_detection_boxes", "evaluate_boxes"]

#: The devkit's limit of predictions per sample (``detection_cvpr_2019``).
MAX_BOXES_PER_SAMPLE = 500


class _Poses:
    """The part of the devkit's ``NuScenes`` object that ``add_center_dist`` and ``filter_eval_boxes`` read: per
    sample, the ego pose the class range is measured from (``sample -> LIDAR_TOP sample_data -> ego_pose``) and no
    annotations (so no bike racks)."""

    def __init__(self, translations: Mapping[str, Sequence[float]]) -> None:
        self._t = {k: [float(v) for v in t] for k, t in translations.items()}

    def get(self, table: str, token: str) -> dict[str, Any]:
        if table == "sample":
            return {"token": token, "data": {"LIDAR_TOP": token}, "anns": []}
        if table == "sample_data":
            return {"token": token, "ego_pose_token": token}
        if table == "ego_pose":
            return {"token": token, "translation": self._t[token]}
        raise KeyError(f"metrics: no table {table!r} here (token {token})")


def gt_detection_boxes(
    token: str,
    boxes_ego: Boxes,
    ego_pose: Pose,
    attributes: Sequence[str] | None = None,
    num_pts: Sequence[int] | None = None,
) -> list[Any]:
    """Ground-truth ``DetectionBox`` es of one sample in the GLOBAL frame, as the devkit's ``load_gt`` builds them.

    Args:
        token: the sample token.
        boxes_ego: the ground truth in the ego frame (``frame == "ego"``); velocity ``(N, 2)`` m/s, NaN unknown.
        ego_pose: ego -> global.
        attributes: per box the nuScenes attribute name (``""`` none); default:
        :func:`imkd_ros.evaluation.evaluate.attribute_of`
            of the class and the box's speed (annotated datasets carry their own: pass them).
        num_pts: per box LiDAR + radar points (0: the devkit drops the box); default -1 (kept, like predictions).

    Raises:
        EvaluationError: boxes not in the ego frame, or a per-box list of the wrong length.
    """
    from nuscenes.eval.detection.data_classes import DetectionBox

    if boxes_ego.frame != "ego":
        raise EvaluationError(f"ground truth of {token}: boxes are in frame {boxes_ego.frame!r}, expected 'ego'")
    n = len(boxes_ego)
    for name, values in (("attributes", attributes), ("num_pts", num_pts)):
        if values is not None and len(values) != n:
            raise EvaluationError(f"ground truth of {token}: {len(values)} {name} for {n} boxes")
    g = boxes_ego.transform(ego_pose, "global")
    out = []
    for i in range(n):
        name = CLASSES[int(g.label[i])]
        attr = attributes[i] if attributes is not None else attribute_of(name, float(np.linalg.norm(g.velocity[i])))
        out.append(
            DetectionBox(
                sample_token=token,
                translation=tuple(float(v) for v in g.center[i]),
                size=tuple(float(v) for v in g.size[i]),
                rotation=tuple(float(v) for v in yaw_to_quat(float(g.yaw[i]))),
                velocity=tuple(float(v) for v in g.velocity[i]),
                num_pts=-1 if num_pts is None else int(num_pts[i]),
                detection_name=name,
                detection_score=-1.0,
                attribute_name=attr,
            )
        )
    return out


def pred_detection_boxes(token: str, boxes_ego: Boxes, ego_pose: Pose) -> list[Any]:
    """Predicted ``DetectionBox`` es of one sample in the GLOBAL frame: the result dicts ``imkd eval`` writes
    (:func:`imkd_ros.evaluation.evaluate.boxes_to_results`) read back as the devkit's ``load_prediction`` reads them.

    Raises:
        EvaluationError: more than :data:`MAX_BOXES_PER_SAMPLE` boxes.
    """
    from nuscenes.eval.detection.data_classes import DetectionBox

    if len(boxes_ego) > MAX_BOXES_PER_SAMPLE:
        raise EvaluationError(f"sample {token}: {len(boxes_ego)} predictions (devkit max {MAX_BOXES_PER_SAMPLE})")
    return [DetectionBox.deserialize(d) for d in boxes_to_results(token, boxes_ego, ego_pose)]


def _checked_keys(
    gt: Mapping[Hashable, Boxes],
    pred: Mapping[Hashable, Boxes],
    poses: Mapping[Hashable, Pose],
    range_poses: Mapping[Hashable, Pose],
    meta: Mapping[str, bool],
) -> tuple[list[Hashable], list[str]]:
    """:func:`evaluate_boxes`' sample keys (in ``gt``'s order) and their tokens (``str(key)``), after its checks.

    Raises:
        EvaluationError: see :func:`evaluate_boxes`.
    """
    keys = list(gt)
    if not keys:
        raise EvaluationError("evaluate_boxes: no samples to evaluate (empty ground truth mapping)")
    tokens = [str(k) for k in keys]
    if len(set(tokens)) != len(tokens):
        raise EvaluationError("evaluate_boxes: two sample keys have the same str()")
    extra = [k for k in pred if k not in gt]
    if extra:
        raise EvaluationError(
            f"evaluate_boxes: {len(extra)} prediction keys have no ground truth entry, e.g. {extra[0]}"
        )
    for name, mapping in (("poses", poses), ("range_poses", range_poses)):
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise EvaluationError(f"evaluate_boxes: {name} has no entry for sample {missing[0]}")
    if set(meta) != set(META_KEYS):
        raise EvaluationError(f"evaluate_boxes: meta needs exactly {list(META_KEYS)}, got {sorted(meta)}")
    return keys, tokens


def evaluate_boxes(
    gt: Mapping[Hashable, Boxes],
    pred: Mapping[Hashable, Boxes],
    poses: Mapping[Hashable, Pose],
    out_dir: str | PathLike[str],
    *,
    range_poses: Mapping[Hashable, Pose] | None = None,
    gt_attributes: Mapping[Hashable, Sequence[str]] | None = None,
    gt_num_pts: Mapping[Hashable, Sequence[int]] | None = None,
    region: Area | None = None,
    classes: Sequence[str] | None = None,
    meta: Mapping[str, bool] = CAMERA_RADAR_META,
    scope: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``pred`` against ``gt`` with the nuScenes devkit (see the module docstring) and write
    ``metrics_summary.json`` and ``metrics_details.json`` into ``out_dir``.

    Args:
        gt: per sample the ground truth in its ego frame; every sample to be evaluated is a key (order kept).
        pred: per sample the detections in the same ego frame; a sample missing here has no detections. Keys
            not in ``gt`` are an error.
        poses: per sample ego -> global of the boxes' ego frame (the camera keyframe's ego pose).
        range_poses: per sample the ego pose whose position the class range is measured from and whose frame
            ``region`` is in (the devkit: the ``LIDAR_TOP`` keyframe's); default ``poses``.
        gt_attributes: per sample, per GT box the attribute name (see :func:`gt_detection_boxes`).
        gt_num_pts: per sample, per GT box LiDAR + radar points (0: dropped, as the devkit does).
        region: score only boxes whose centre lies in this ego-frame area (``imkd eval``: the model's BEV grid).
        classes: restrict to these detection classes (default all; only those with GT are scored).
        meta: the devkit ``meta`` block (:data:`imkd_ros.evaluation.evaluate.META_KEYS`).
        scope: extra entries of the summary's ``eval_scope``.

    Returns:
        The summary as written: the devkit's keys (``nd_score``, ``mean_ap``, ``label_aps``, ``tp_errors``, ...)
        plus ``meta`` and ``eval_scope`` (classes, region, counts, ``scope``).

    Raises:
        EvaluationError: no samples, a sample without a pose, prediction keys outside ``gt``, bad meta, too many
            boxes, or no ground truth of the wanted classes left after the filters.
    """
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes
    from nuscenes.eval.detection.evaluate import DetectionEval

    range_poses = poses if range_poses is None else range_poses
    keys, tokens = _checked_keys(gt, pred, poses, range_poses, meta)
    gt_boxes, pred_boxes = EvalBoxes(), EvalBoxes()
    for k, t in zip(keys, tokens, strict=True):
        attrs = None if gt_attributes is None else gt_attributes.get(k)
        pts = None if gt_num_pts is None else gt_num_pts.get(k)
        gt_boxes.add_boxes(t, gt_detection_boxes(t, gt[k], poses[k], attrs, pts))
        pred_boxes.add_boxes(t, pred_detection_boxes(t, pred.get(k, Boxes.empty()), poses[k]))

    cfg = config_factory("detection_cvpr_2019")
    nusc = _Poses({t: range_poses[k].translation for k, t in zip(keys, tokens, strict=True)})
    gt_boxes, pred_boxes = add_center_dist(nusc, gt_boxes), add_center_dist(nusc, pred_boxes)
    # the devkit's filter cannot name the box type of a set without any box: there is nothing to filter then
    if gt_boxes.all:
        gt_boxes = filter_eval_boxes(nusc, gt_boxes, cfg.class_range)
    if pred_boxes.all:
        pred_boxes = filter_eval_boxes(nusc, pred_boxes, cfg.class_range)
    if region is not None:
        for k, t in zip(keys, tokens, strict=True):
            gt_boxes.boxes[t] = _in_region(gt_boxes.boxes[t], range_poses[k], region)
            pred_boxes.boxes[t] = _in_region(pred_boxes.boxes[t], range_poses[k], region)

    de = DetectionEval.__new__(DetectionEval)  # the devkit's evaluator without its dataroot loading
    de.cfg, de.meta, de.verbose = cfg, {k: bool(meta[k]) for k in META_KEYS}, False
    de.gt_boxes, de.pred_boxes, de.sample_tokens = gt_boxes, pred_boxes, gt_boxes.sample_tokens
    return _score(de, gt_boxes, pred_boxes, Path(out_dir), classes, region, dict(scope or {}))
