"""The nuScenes detection metric (``detection_cvpr_2019``) from pre-matched predictions, cheap enough to bootstrap.

The devkit (``nuscenes.eval.detection.algo.accumulate``) matches greedily: per class and distance threshold it walks
all predictions in one global order (descending score; equal scores: later in ``pred_boxes.all`` first) and gives
each the nearest untaken ground-truth box of its class in *its own sample* if the centre distance is below the
threshold. So whether a prediction is a true positive at a threshold, and its TP errors, do not depend on which
other samples are evaluated: :func:`match_samples` does the matching once, and :func:`metrics_of` recomputes the
curves, AP, TP errors and NDS for any integer multiplicity of the samples (a bootstrap replicate of scenes) in
milliseconds, with the devkit's own arithmetic (``calc_ap``: 101 recall points, ``min_recall``/``min_precision``;
``accumulate`` + ``calc_tp``: NaN-aware cumulative means interpolated by confidence, averaged from ``min_recall``
to the maximum recall, 1 without a true positive; class exceptions: no orientation/velocity/attribute error for
traffic cones, no velocity/attribute error for barriers, barrier yaw modulo pi; NDS from mAP and the five scores).

Input are the devkit's own ``EvalBoxes`` of ``DetectionBox`` after its filters (class range from the LIDAR_TOP ego
pose, boxes without points, bike racks, at most 500 boxes per sample), as :mod:`imkd_ros.evaluation.evaluate` holds
them, so the filtering is the devkit's. As :mod:`imkd_ros.evaluation.evaluate` does, a class without ground truth in the
(weighted) set
is left out of the means rather than scored AP 0. ``test/evaluation/test_metrics_fast.py`` checks every number of the
summary against the devkit to 1e-9.

Pure numpy: the devkit's boxes are read by attribute; nothing of ROS, torch or the devkit is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TP_METRICS",
    "HEADLINE_KEYS",
    "ClassMatches",
    "MatchTable",
    "Scores",
    "match_samples",
    "metrics_of",
]

#: The devkit's TP error names, in its order (``nuscenes.eval.detection.constants.TP_METRICS``).
TP_METRICS: tuple[str, ...] = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")

#: Keys of :meth:`Scores.headline` (as :func:`imkd_ros.evaluation.eval_detector.headline`).
HEADLINE_KEYS: tuple[str, ...] = ("nds", "map", *TP_METRICS)

#: TP errors the devkit does not score for a class (``DetectionEval.evaluate``): NaN, left out of the class mean.
_UNDEFINED: dict[str, frozenset[str]] = {
    "traffic_cone": frozenset({"attr_err", "vel_err", "orient_err"}),
    "barrier": frozenset({"attr_err", "vel_err"}),
}
_N_RECALL = 101  # DetectionMetricData.nelem
_RECALLS = np.linspace(0, 1, _N_RECALL)


@dataclass(frozen=True)
class ClassMatches:
    """The matched predictions of one class, in the devkit's processing order (descending score).

    Attributes:
        sample: ``(P,)`` int, index into :attr:`MatchTable.sample_tokens` of each prediction.
        score: ``(P,)`` float64 detection scores (non-increasing).
        is_tp: ``(T, P)`` bool, true positive at each of :attr:`MatchTable.dist_ths`.
        errors: ``(5, P)`` float64, the :data:`TP_METRICS` of each prediction at :attr:`MatchTable.dist_th_tp`
            (NaN where it is no TP there, and where the devkit gives NaN: GT without velocity or attribute).
        gt_count: ``(S,)`` int, ground-truth boxes of the class per sample.
    """

    sample: np.ndarray
    score: np.ndarray
    is_tp: np.ndarray
    errors: np.ndarray
    gt_count: np.ndarray


@dataclass(frozen=True)
class MatchTable:
    """:func:`match_samples` of one result set: per class the matched predictions, plus the metric settings."""

    sample_tokens: tuple[str, ...]
    classes: tuple[str, ...]
    dist_ths: tuple[float, ...]
    dist_th_tp: float
    min_recall: float
    min_precision: float
    mean_ap_weight: float
    per_class: Mapping[str, ClassMatches]

    @property
    def n_samples(self) -> int:
        return len(self.sample_tokens)


@dataclass(frozen=True)
class Scores:
    """The devkit's summary numbers (``DetectionMetrics.serialize()``), for the classes with ground truth.

    ``label_aps[class][dist_th]``, ``label_tp_errors[class][metric]`` (NaN: undefined for the class),
    ``tp_errors[metric]`` (NaN-mean over classes), ``tp_scores[metric]`` (``max(0, 1 - error)``, 0 for NaN).
    Everything is NaN when no class has ground truth.
    """

    nd_score: float
    mean_ap: float
    tp_errors: dict[str, float]
    tp_scores: dict[str, float]
    mean_dist_aps: dict[str, float]
    label_aps: dict[str, dict[float, float]]
    label_tp_errors: dict[str, dict[str, float]]
    classes: tuple[str, ...]

    def headline(self) -> dict[str, float]:
        """``{"nds", "map", "trans_err", ..., "attr_err"}`` as :func:`imkd_ros.evaluation.eval_detector.headline`."""
        return {"nds": self.nd_score, "map": self.mean_ap, **self.tp_errors}

    def headline_array(self) -> np.ndarray:
        """``(7,)`` float64 in :data:`HEADLINE_KEYS` order."""
        return np.array([self.nd_score, self.mean_ap, *(self.tp_errors[k] for k in TP_METRICS)], dtype=np.float64)


# -- matching -----------------------------------------------------------------------------------------------------
def _quat_yaw(q: np.ndarray) -> np.ndarray:
    """Yaw ``(N,)`` of quaternions ``(N, 4)`` (w, x, y, z) as ``nuscenes.eval.common.utils.quaternion_yaw``: the
    angle of the rotated +x axis in the xy plane."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.arctan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))


def _angle_diff(x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray:
    """``nuscenes.eval.common.utils.angle_diff``, vectorised: signed smallest difference from y to x."""
    diff = np.mod(x - y + period / 2, period) - period / 2
    return np.where(diff > np.pi, diff - 2 * np.pi, diff)


def _pair_errors(class_name: str, gt: Sequence[Any], pred: Sequence[Any]) -> np.ndarray:
    """``(5, K)`` TP errors of matched (gt, pred) box pairs, as ``accumulate`` computes them."""
    if not gt:
        return np.zeros((len(TP_METRICS), 0))
    gt_t = np.array([b.translation[:2] for b in gt], dtype=np.float64)
    pr_t = np.array([b.translation[:2] for b in pred], dtype=np.float64)
    gt_s = np.array([b.size for b in gt], dtype=np.float64)
    pr_s = np.array([b.size for b in pred], dtype=np.float64)
    if not ((gt_s > 0).all() and (pr_s > 0).all()):
        raise ValueError(f"match_samples: a matched {class_name} box has a size <= 0 (the devkit asserts > 0)")
    gt_v = np.array([b.velocity for b in gt], dtype=np.float64)
    pr_v = np.array([b.velocity for b in pred], dtype=np.float64)
    trans = np.linalg.norm(pr_t - gt_t, axis=1)
    vel = np.linalg.norm(pr_v - gt_v, axis=1)
    inter = np.prod(np.minimum(gt_s, pr_s), axis=1)
    scale = 1.0 - inter / (np.prod(gt_s, axis=1) + np.prod(pr_s, axis=1) - inter)
    period = np.pi if class_name == "barrier" else 2 * np.pi
    yaw_gt = _quat_yaw(np.array([b.rotation for b in gt], dtype=np.float64))
    yaw_pr = _quat_yaw(np.array([b.rotation for b in pred], dtype=np.float64))
    orient = np.abs(_angle_diff(yaw_gt, yaw_pr, period))
    attr = np.array(
        [
            np.nan if g.attribute_name == "" else 1.0 - float(g.attribute_name == p.attribute_name)
            for g, p in zip(gt, pred, strict=True)
        ]
    )
    return np.stack([trans, scale, orient, vel, attr])  # TP_METRICS order


def _match_class(
    class_name: str,
    gt_by_sample: list[list[Any]],
    preds: list[tuple[int, Any]],
    dist_ths: tuple[float, ...],
    tp_index: int,
) -> ClassMatches:
    """Greedy matching of one class at every threshold (see the module docstring)."""
    n_samples, n_th = len(gt_by_sample), len(dist_ths)
    gt_count = np.array([len(g) for g in gt_by_sample], dtype=np.int64)
    sample = np.array([s for s, _ in preds], dtype=np.int64)
    score = np.array([float(b.detection_score) for _, b in preds], dtype=np.float64)
    # The devkit's order: sorted((score, index)) reversed, i.e. descending score, then descending list position.
    order = np.lexsort((np.arange(len(preds)), score))[::-1]
    sample, score = sample[order], score[order]
    boxes = [preds[i][1] for i in order]
    is_tp = np.zeros((n_th, len(boxes)), dtype=bool)
    matched_gt: list[Any] = []
    matched_pred: list[int] = []
    max_th = max(dist_ths)
    # Each sample's predictions in the global order (a stable sort keeps it), matched against that sample only.
    by_sample = np.argsort(sample, kind="stable")
    starts = np.searchsorted(sample[by_sample], np.arange(n_samples + 1))
    for s in range(n_samples):
        rows = by_sample[starts[s] : starts[s + 1]]
        gts = gt_by_sample[s]
        if len(rows) == 0 or not gts:
            continue
        gxy = np.array([g.translation[:2] for g in gts], dtype=np.float64)
        pxy = np.array([boxes[j].translation[:2] for j in rows], dtype=np.float64)
        d = np.sqrt(((pxy[:, None, :] - gxy[None, :, :]) ** 2).sum(axis=2))  # (p, g)
        d[np.isnan(d)] = np.inf  # the devkit never picks a NaN distance
        taken = np.zeros((n_th, len(gts)), dtype=bool)
        for r in np.flatnonzero((d < max_th).any(axis=1)):  # the others are false positives at every threshold
            for t, th in enumerate(dist_ths):
                dd = np.where(taken[t], np.inf, d[r])
                k = int(np.argmin(dd))  # first minimum: the devkit's strict '<' scan keeps the first
                if dd[k] < th:
                    taken[t, k] = True
                    is_tp[t, rows[r]] = True
                    if t == tp_index:
                        matched_gt.append(gts[k])
                        matched_pred.append(int(rows[r]))
    errors = np.full((len(TP_METRICS), len(boxes)), np.nan)
    if matched_pred:
        errors[:, matched_pred] = _pair_errors(class_name, matched_gt, [boxes[j] for j in matched_pred])
    return ClassMatches(sample, score, is_tp, errors, gt_count)


def match_samples(gt_boxes: Any, pred_boxes: Any, cfg: Any) -> MatchTable:
    """Match every prediction once, per class and distance threshold (see the module docstring).

    Args:
        gt_boxes, pred_boxes: devkit ``EvalBoxes`` of ``DetectionBox`` after the devkit's filters (e.g.
            ``DetectionEval.gt_boxes`` / ``.pred_boxes`` or :func:`imkd_ros.evaluation.evaluate._select` of them), with
            the same sample tokens.
        cfg: the devkit's ``DetectionConfig`` (``center_distance``); its ``class_names`` are the classes matched.

    Returns:
        The :class:`MatchTable`; its samples in the order of ``gt_boxes.sample_tokens``.

    Raises:
        ValueError: different sample tokens, another distance function, or a matched box with a size <= 0.
    """
    tokens = tuple(gt_boxes.sample_tokens)
    if set(pred_boxes.sample_tokens) != set(tokens):
        raise ValueError("match_samples: ground truth and predictions have different sample tokens")
    if cfg.dist_fcn != "center_distance":
        raise ValueError(f"match_samples: only the center_distance metric is implemented, not {cfg.dist_fcn!r}")
    classes = tuple(cfg.class_names)
    dist_ths = tuple(float(t) for t in cfg.dist_ths)
    index = {t: i for i, t in enumerate(tokens)}
    gt_of: dict[str, list[list[Any]]] = {c: [[] for _ in tokens] for c in classes}
    for i, t in enumerate(tokens):
        for b in gt_boxes[t]:
            if b.detection_name in gt_of:
                gt_of[b.detection_name][i].append(b)
    preds_of: dict[str, list[tuple[int, Any]]] = {c: [] for c in classes}
    for t in pred_boxes.sample_tokens:  # the order of pred_boxes.all
        for b in pred_boxes[t]:
            if b.detection_name in preds_of:
                preds_of[b.detection_name].append((index[t], b))
    tp_index = dist_ths.index(float(cfg.dist_th_tp))
    per_class = {c: _match_class(c, gt_of[c], preds_of[c], dist_ths, tp_index) for c in classes}
    return MatchTable(
        sample_tokens=tokens,
        classes=classes,
        dist_ths=dist_ths,
        dist_th_tp=float(cfg.dist_th_tp),
        min_recall=float(cfg.min_recall),
        min_precision=float(cfg.min_precision),
        mean_ap_weight=float(cfg.mean_ap_weight),
        per_class=per_class,
    )


# -- metrics ------------------------------------------------------------------------------------------------------
def _cummean(x: np.ndarray) -> np.ndarray:
    """``nuscenes.eval.common.utils.cummean`` of each row of ``x`` ``(R, K)``: NaN-aware running mean, all ones for
    an all-NaN row."""
    sums = np.nancumsum(x, axis=1)
    counts = np.cumsum(~np.isnan(x), axis=1)
    out = np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)
    out[np.isnan(x).all(axis=1)] = 1.0
    return out


def _class_metrics(
    cm: ClassMatches, weights: np.ndarray, table: MatchTable, tp_index: int
) -> tuple[list[float], list[float]] | None:
    """APs per threshold and the five TP errors of one class; None without ground truth."""
    npos = int(cm.gt_count @ weights)
    if npos == 0:
        return None
    w = weights[cm.sample]
    if np.all(w == 1):
        is_tp, conf, errors = cm.is_tp, cm.score, cm.errors
    else:
        rows = np.repeat(np.arange(len(w)), w)  # each prediction once per copy of its sample
        is_tp, conf, errors = cm.is_tp[:, rows], cm.score[rows], cm.errors[:, rows]
    first = round(100 * table.min_recall) + 1
    aps: list[float] = []
    tp_errors = [1.0] * len(TP_METRICS)  # DetectionMetricData.no_predictions
    tpc_all = np.cumsum(is_tp, axis=1).astype(float)  # (T, P') true positives so far, per threshold
    fpc_all = np.arange(1, is_tp.shape[1] + 1, dtype=float) - tpc_all  # the rest are false positives
    for t in range(len(table.dist_ths)):
        tpc, fpc = tpc_all[t], fpc_all[t]
        if not len(tpc) or tpc[-1] == 0:
            aps.append(0.0)  # no_predictions: precision 0 everywhere
            continue
        rec = tpc / float(npos)
        prec = np.interp(_RECALLS, rec, tpc / (fpc + tpc), right=0)
        p = prec[first:] - table.min_precision
        p[p < 0] = 0
        aps.append(float(p.sum() / p.size) / (1.0 - table.min_precision))  # np.mean, without its overhead
        if t != tp_index:
            continue
        conf_i = np.interp(_RECALLS, rec, conf, right=0)
        nonzero = np.flatnonzero(conf_i)
        last = int(nonzero[-1]) if len(nonzero) else 0
        if last < first:
            continue  # calc_tp: 1 for every error
        tp = is_tp[t]
        match_conf = conf[tp][::-1]
        curves = _cummean(errors[:, tp])
        x = conf_i[::-1]
        tp_errors = [float(np.interp(x, match_conf, c[::-1])[::-1][first : last + 1].mean()) for c in curves]
    return aps, tp_errors


def metrics_of(table: MatchTable, sample_weights: np.ndarray | Sequence[int] | None = None) -> Scores:
    """The devkit's metrics of the samples of ``table``, each counted ``sample_weights[i]`` times.

    Args:
        table: :func:`match_samples`.
        sample_weights: ``(S,)`` non-negative integers in the order of ``table.sample_tokens`` (None: all ones).
            A weight of 2 equals the devkit run with a second copy of the sample (under another token, its boxes in
            the same order; with equal scores of different predictions the devkit's tie order may differ), 0 equals
            leaving the sample out.

    Returns:
        :class:`Scores` of the classes of ``table`` that have ground truth in the weighted set.

    Raises:
        ValueError: weights of the wrong shape, negative or not integers.
    """
    if sample_weights is None:
        weights = np.ones(table.n_samples, dtype=np.int64)
    else:
        raw = np.asarray(sample_weights)
        if raw.shape != (table.n_samples,):
            raise ValueError(f"metrics_of: sample_weights has shape {raw.shape}, expected ({table.n_samples},)")
        weights = raw.astype(np.int64)
        if not np.array_equal(weights, raw) or (weights < 0).any():
            raise ValueError("metrics_of: sample_weights must be non-negative integers")
    tp_index = table.dist_ths.index(table.dist_th_tp)
    label_aps: dict[str, dict[float, float]] = {}
    label_tp: dict[str, dict[str, float]] = {}
    for c in table.classes:
        got = _class_metrics(table.per_class[c], weights, table, tp_index)
        if got is None:
            continue
        aps, errs = got
        label_aps[c] = dict(zip(table.dist_ths, aps, strict=True))
        undefined = _UNDEFINED.get(c, frozenset())
        label_tp[c] = {m: (np.nan if m in undefined else e) for m, e in zip(TP_METRICS, errs, strict=True)}
    classes = tuple(label_aps)
    if not classes:
        nan = float("nan")
        return Scores(nan, nan, dict.fromkeys(TP_METRICS, nan), dict.fromkeys(TP_METRICS, nan), {}, {}, {}, ())
    mean_dist_aps = {c: float(np.mean(list(d.values()))) for c, d in label_aps.items()}
    mean_ap = float(np.mean(list(mean_dist_aps.values())))
    tp_errors = {}
    for m in TP_METRICS:
        vals = np.array([label_tp[c][m] for c in classes])
        tp_errors[m] = float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")
    tp_scores = {m: max(0.0, 1.0 - e) for m, e in tp_errors.items()}  # max(0.0, nan) is 0.0, as in the devkit
    nds = float(table.mean_ap_weight * mean_ap + np.sum(list(tp_scores.values())))
    nds = nds / float(table.mean_ap_weight + len(tp_scores))
    return Scores(nds, mean_ap, tp_errors, tp_scores, mean_dist_aps, label_aps, label_tp, classes)
