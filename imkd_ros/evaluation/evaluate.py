"""Detections -> nuScenes result JSON -> nuscenes-devkit ``DetectionEval`` (config ``detection_cvpr_2019``).

The metric is the devkit's own; this module only prepares its input and works around its pitfalls:

- results must hold every sample of the split (missing samples are an error here; samples outside the split are
  dropped from a copy of the results file written next to the metrics, since the devkit refuses them for the
  predefined nuScenes splits);
- a result set or ground truth without any box crashes the devkit ("Invalid box type: None"): a clear
  :class:`EvaluationError` instead;
- every evaluated sample needs a ``LIDAR_TOP`` keyframe (the devkit measures the class range from its ego pose);
- ``cfg.class_names`` is narrowed to the classes present in the (filtered) ground truth, since an absent class
  would score AP 0; curves are not rendered;
- scores are written as Python floats, velocities that are not known as 0 (strict JSON has no NaN).

:func:`evaluate_regions` scores one result file in several ego-frame areas (the model's grid and its coverage region,
:mod:`imkd_ros.evaluation.coverage`) from one devkit load.

Custom splits (the synthetic world's ``synth_train``/``synth_val``) are read by the devkit itself from
``<dataroot>/<version>/splits.json``; the predefined ones (``val``, ``mini_val``, ...) need the matching version.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imkd_ros.core.atomic import atomic_write_text
from imkd_ros.core.classes import CLASSES, DEFAULT_ATTRIBUTE
from imkd_ros.core.errors import ImkdError
from imkd_ros.core.transforms import Pose, yaw_to_quat
from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.reader import weather_of_description

__all__ = [
    "EvaluationError",
    "Area",
    "Region",
    "RegionEvaluation",
    "MOVING_SPEED",
    "META_KEYS",
    "CAMERA_RADAR_META",
    "attribute_of",
    "boxes_to_results",
    "write_results",
    "evaluate_results",
    "evaluate_regions",
]

#: Speed (m/s, over ground) above which a predicted box gets the "moving" attribute of its class.
MOVING_SPEED = 0.5

#: The keys of the devkit's ``meta`` block.
META_KEYS: tuple[str, ...] = ("use_camera", "use_lidar", "use_radar", "use_map", "use_external")

#: ``meta`` of a camera + radar detector (the IMKD student).
CAMERA_RADAR_META: dict[str, bool] = {
    "use_camera": True,
    "use_lidar": False,
    "use_radar": True,
    "use_map": False,
    "use_external": False,
}

_VEHICLES = ("car", "truck", "construction_vehicle", "bus", "trailer")
_CYCLES = ("motorcycle", "bicycle")
_MAX_BOXES_PER_SAMPLE = 500  # detection_cvpr_2019


class EvaluationError(ImkdError):
    """The evaluation cannot run: bad or empty results, a split or dataroot the devkit cannot use."""


class Area(Protocol):
    """An area of the ego frame that GT and predictions are restricted to: :class:`Region` (a rectangle) or
    :class:`imkd_ros.evaluation.coverage.Coverage` (what a rig sees)."""

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which ego-frame points ``(N, 2+)`` are inside."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Plain dict written into a summary's ``eval_scope.region``."""
        ...


@dataclass(frozen=True)
class Region:
    """An area of the ego frame (x forward, y left, metres) that a front-sensor model is scored on.

    A box is inside when its centre ``(x, y)`` satisfies ``x_min <= x <= x_max`` and ``y_min <= y <= y_max`` and,
    if ``half_fov`` is set, ``|atan2(y, x)| <= half_fov`` (radians, about +x).
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    half_fov: float | None = None

    def __post_init__(self) -> None:
        if not (self.x_min < self.x_max and self.y_min < self.y_max):
            raise ValueError(f"Region bounds are empty: {self}")
        if self.half_fov is not None and not 0.0 < self.half_fov <= math.pi:
            raise ValueError(f"Region.half_fov must be in (0, pi], got {self.half_fov}")

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which ego-frame points ``(N, 2+)`` are inside."""
        p = np.asarray(xy, dtype=np.float64)
        x, y = p[:, 0], p[:, 1]
        inside = (x >= self.x_min) & (x <= self.x_max) & (y >= self.y_min) & (y <= self.y_max)
        if self.half_fov is not None:
            inside &= np.abs(np.arctan2(y, x)) <= self.half_fov
        return inside

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: ``kind`` ``"rectangle"`` and the fields."""
        return {"kind": "rectangle", **asdict(self)}


def attribute_of(class_name: str, speed: float) -> str:
    """The most plausible nuScenes attribute of a detection from its speed (m/s; NaN: unknown).

    Vehicles ``vehicle.moving`` / ``vehicle.parked``, cycles ``cycle.with_rider`` / ``cycle.without_rider``,
    pedestrians ``pedestrian.moving`` / ``pedestrian.standing``, split at :data:`MOVING_SPEED`; ``""`` for barriers
    and traffic cones. An unknown speed gives :data:`imkd_ros.core.classes.DEFAULT_ATTRIBUTE`.
    """
    if class_name not in DEFAULT_ATTRIBUTE:
        raise ValueError(f"unknown detection class {class_name!r}")
    default = DEFAULT_ATTRIBUTE[class_name]
    if default is None:
        return ""
    if not np.isfinite(speed) or speed <= MOVING_SPEED:
        return default
    if class_name in _VEHICLES:
        return "vehicle.moving"
    if class_name in _CYCLES:
        return "cycle.with_rider"
    return "pedestrian.moving"


def boxes_to_results(
    frame_or_sample_token: Frame | str, boxes_ego: Boxes, ego_pose: Pose | None = None
) -> list[dict[str, Any]]:
    """Devkit result dicts of one sample's detections, in the GLOBAL frame.

    Args:
        frame_or_sample_token: the :class:`Frame` (its ``token`` and, by default, its ``ego_pose``) or a sample
            token.
        boxes_ego: detections in the ego frame (``boxes_ego.frame == "ego"``); velocity NaN where unknown.
        ego_pose: ego -> global; required with a bare token.

    Returns:
        One dict per box: ``sample_token``, ``translation`` (3 floats, m), ``size`` (w, l, h), ``rotation``
        (quaternion w, x, y, z about +z), ``velocity`` (vx, vy global m/s; unknown -> 0), ``detection_name``,
        ``detection_score`` (Python float), ``attribute_name`` (:func:`attribute_of`).
    """
    if isinstance(frame_or_sample_token, Frame):
        token = frame_or_sample_token.token
        ego_pose = ego_pose if ego_pose is not None else frame_or_sample_token.ego_pose
    else:
        token = str(frame_or_sample_token)
    if ego_pose is None:
        raise ValueError(f"boxes_to_results({token}): ego_pose is required with a sample token")
    if boxes_ego.frame != "ego":
        raise ValueError(f"boxes_to_results({token}): boxes are in frame {boxes_ego.frame!r}, expected 'ego'")
    g = boxes_ego.transform(ego_pose, "global")
    speed = np.linalg.norm(g.velocity, axis=1)
    vel = np.where(np.isfinite(g.velocity), g.velocity, 0.0)
    out = []
    for i in range(len(g)):
        name = CLASSES[int(g.label[i])]
        out.append(
            {
                "sample_token": token,
                "translation": [float(v) for v in g.center[i]],
                "size": [float(v) for v in g.size[i]],
                "rotation": [float(v) for v in yaw_to_quat(float(g.yaw[i]))],
                "velocity": [float(v) for v in vel[i]],
                "detection_name": name,
                "detection_score": float(g.score[i]),
                "attribute_name": attribute_of(name, float(speed[i])),
            }
        )
    return out


def write_results(
    path: str | PathLike[str], results_by_sample: Mapping[str, Sequence[Mapping[str, Any]]], meta: Mapping[str, bool]
) -> None:
    """Write a devkit result file ``{"meta": ..., "results": {sample_token: [box dict, ...]}}`` (strict JSON).

    Args:
        path: output ``.json``; its folder is created.
        results_by_sample: every sample to be evaluated, including those without detections (empty list).
        meta: the five :data:`META_KEYS` flags, e.g. :data:`CAMERA_RADAR_META`.

    Raises:
        EvaluationError: missing/unknown meta keys, more than 500 boxes in a sample, a box whose
            ``sample_token`` differs from its key, or a non-finite number.
    """
    if set(meta) != set(META_KEYS):
        raise EvaluationError(f"write_results({path}): meta needs exactly {list(META_KEYS)}, got {sorted(meta)}")
    results: dict[str, list[dict[str, Any]]] = {}
    for token, boxes in results_by_sample.items():
        if len(boxes) > _MAX_BOXES_PER_SAMPLE:
            raise EvaluationError(f"write_results({path}): sample {token} has {len(boxes)} boxes (devkit max 500)")
        for b in boxes:
            if b.get("sample_token") != token:
                raise EvaluationError(f"write_results({path}): box of {b.get('sample_token')!r} under key {token}")
        results[token] = [dict(b) for b in boxes]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps({"meta": {k: bool(meta[k]) for k in META_KEYS}, "results": results}, allow_nan=False)
    except ValueError as exc:
        raise EvaluationError(f"write_results({path}): non-finite number in results ({exc})") from exc
    atomic_write_text(path, text)


# -- evaluation -------------------------------------------------------------------------------------------------
def _load_eval(dataroot: Path, version: str, split: str, results_path: Path, out_dir: Path, verbose: bool) -> Any:
    """A devkit ``DetectionEval`` with its GT and predictions loaded and filtered (distance, points, bike racks)."""
    from nuscenes import NuScenes
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.utils.splits import create_splits_scenes, get_scenes_of_custom_split, is_predefined_split

    try:
        data = json.loads(Path(results_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{results_path}: unreadable results file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "meta" not in data:
        raise EvaluationError(f"{results_path}: not a devkit results file (needs 'meta' and a 'results' dict)")

    try:
        nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=verbose)
    except (AssertionError, OSError, KeyError, ValueError) as exc:
        raise EvaluationError(f"devkit cannot load {version} under {dataroot}: {exc}") from exc

    predefined = is_predefined_split(split)
    try:
        scenes = set(create_splits_scenes()[split] if predefined else get_scenes_of_custom_split(split, nusc))
    except (ValueError, AssertionError) as exc:
        raise EvaluationError(f"split {split!r} of {dataroot / version}: {exc}") from exc
    scene_tokens = {s["token"] for s in nusc.scene if s["name"] in scenes}
    tokens = [s["token"] for s in nusc.sample if s["scene_token"] in scene_tokens]
    if not tokens:
        raise EvaluationError(f"split {split!r} has no samples in {dataroot / version}")

    results = data["results"]
    missing = [t for t in tokens if t not in results]
    if missing:
        raise EvaluationError(
            f"{results_path}: {len(missing)} of the {len(tokens)} samples of split {split!r} have no entry "
            f"(e.g. {missing[0]}); write an empty list for samples without detections"
        )
    if not any(results[t] for t in tokens):
        raise EvaluationError(f"{results_path}: no detections in any of the {len(tokens)} samples of split {split!r}")
    no_lidar = [t for t in tokens if "LIDAR_TOP" not in nusc.get("sample", t)["data"]]
    if no_lidar:
        raise EvaluationError(f"sample {no_lidar[0]} (split {split!r}) has no LIDAR_TOP keyframe; the devkit needs one")
    if not any(
        category_to_detection_name(nusc.get("sample_annotation", a)["category_name"])
        for t in tokens
        for a in nusc.get("sample", t)["anns"]
    ):
        raise EvaluationError(f"split {split!r} of {dataroot / version} has no annotations of detection classes")

    out_dir.mkdir(parents=True, exist_ok=True)
    if predefined and set(results) != set(tokens):
        # The devkit requires exactly the split's samples for predefined splits: evaluate a trimmed copy.
        results_path = out_dir / f"results_{split}.json"
        trimmed = {"meta": data["meta"], "results": {t: results[t] for t in tokens}}
        atomic_write_text(results_path, json.dumps(trimmed))

    cfg = config_factory("detection_cvpr_2019")
    try:
        return DetectionEval(nusc, cfg, str(results_path), eval_set=split, output_dir=str(out_dir), verbose=verbose)
    except AssertionError as exc:
        raise EvaluationError(f"devkit rejected {results_path} for split {split!r}: {exc}") from exc


def _ego_poses(de: Any, tokens: Sequence[str]) -> dict[str, Pose]:
    """Ego -> global pose of each sample's LIDAR_TOP keyframe (the pose the devkit measures ranges from)."""
    nusc = de.nusc
    poses = {}
    for t in tokens:
        rec = nusc.get(
            "ego_pose", nusc.get("sample_data", nusc.get("sample", t)["data"]["LIDAR_TOP"])["ego_pose_token"]
        )
        poses[t] = Pose.from_quat(rec["rotation"], rec["translation"])
    return poses


def _in_region(boxes: list[Any], pose: Pose, region: Area) -> list[Any]:
    if not boxes:
        return []
    centers = pose.inverse().apply(np.array([b.translation for b in boxes], dtype=np.float64))
    keep = region.contains(centers[:, :2])
    return [b for b, k in zip(boxes, keep, strict=True) if k]


def _select(de: Any, tokens: Sequence[str], region: Area | None) -> tuple[Any, Any]:
    """The devkit-filtered GT and predictions of ``tokens`` as new ``EvalBoxes``, without boxes outside ``region``."""
    from nuscenes.eval.common.data_classes import EvalBoxes

    poses = _ego_poses(de, tokens) if region is not None else {}
    gt, pred = EvalBoxes(), EvalBoxes()
    for t in tokens:
        g, p = list(de.gt_boxes[t]), list(de.pred_boxes[t])
        if region is not None:
            g, p = _in_region(g, poses[t], region), _in_region(p, poses[t], region)
        gt.add_boxes(t, g)
        pred.add_boxes(t, p)
    return gt, pred


def _score(
    de: Any,
    gt: Any,
    pred: Any,
    out_dir: Path,
    classes: Sequence[str] | None,
    region: Area | None,
    scope: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate ``gt`` against ``pred`` with ``de``'s config narrowed to the present classes; write the devkit's
    two JSON files into ``out_dir`` and return the summary as written."""
    wanted = CLASSES if classes is None else tuple(classes)
    unknown = [c for c in wanted if c not in CLASSES]
    if unknown:
        raise EvaluationError(f"unknown classes {unknown}; expected names from {list(CLASSES)}")
    present = {b.detection_name for b in gt.all}
    names = [c for c in wanted if c in present]
    if not names:
        raise EvaluationError(
            f"no ground truth of classes {list(wanted)} left to evaluate in {scope} after the devkit's filters"
            + (" and the region" if region is not None else "")
        )

    sub = copy.copy(de)  # shallow: shares the loaded NuScenes, gets its own config and boxes
    sub.cfg = copy.copy(de.cfg)
    sub.cfg.class_names = names
    sub.gt_boxes, sub.pred_boxes, sub.sample_tokens = gt, pred, gt.sample_tokens
    metrics, metric_data = sub.evaluate()

    summary = metrics.serialize()
    summary["meta"] = dict(de.meta)
    summary["eval_scope"] = {
        **scope,
        "classes": names,
        "region": None if region is None else region.to_dict(),
        "samples": len(gt.sample_tokens),
        "gt_boxes": len(gt.all),
        "pred_boxes": len(pred.all),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2)
    atomic_write_text(out_dir / "metrics_details.json", json.dumps(metric_data.serialize(), indent=2))
    atomic_write_text(out_dir / "metrics_summary.json", text)
    return json.loads(text)


def evaluate_results(
    dataroot: str | PathLike[str],
    version: str,
    split: str,
    results_path: str | PathLike[str],
    out_dir: str | PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    region: Area | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Score a result file with the devkit's ``DetectionEval`` (``detection_cvpr_2019``, no curves).

    The devkit loads the split's GT and predictions and applies its own filters (class range from the LIDAR_TOP
    ego pose, GT without LiDAR/radar points, bicycles in bike racks). Then, if ``region`` is given, GT and
    predictions whose centre, in the ego frame of the sample's LIDAR_TOP ego pose, lies outside it are removed.
    The scored classes are ``classes`` (default: all) that still have ground truth after that.

    Args:
        dataroot, version: the dataset (all 13 devkit tables and the map must be present).
        split: a custom split of ``<dataroot>/<version>/splits.json`` or a predefined nuScenes split.
        results_path: a devkit result file (:func:`write_results`) with an entry for every sample of the split.
        out_dir: receives ``metrics_summary.json`` and ``metrics_details.json`` (and the devkit's empty
            ``plots/``).
        classes: restrict to these detection classes.
        region: restrict to this ego-frame area (:class:`Region`, :class:`imkd_ros.evaluation.coverage.Coverage`); its
            ``to_dict()`` is recorded in ``eval_scope.region``.
        verbose: let the devkit print.

    Returns:
        The summary as written to ``metrics_summary.json``: the devkit's keys (``nd_score``, ``mean_ap``,
        ``label_aps``, ``mean_dist_aps``, ``tp_errors``, ``label_tp_errors``, ``tp_scores``, ``cfg``, ``meta``,
        ...; distance thresholds as string keys) plus ``eval_scope`` (split, classes, region, counts).

    Raises:
        EvaluationError: see the module docstring.
    """
    dataroot, out_dir = Path(dataroot), Path(out_dir)
    de = _load_eval(dataroot, version, split, Path(results_path), out_dir, verbose)
    gt, pred = _select(de, de.gt_boxes.sample_tokens, region)
    return _score(de, gt, pred, out_dir, classes, region, {"version": version, "split": split})


def _score_by_weather(
    de: Any,
    version: str,
    split: str,
    out_dir: Path,
    classes: Sequence[str] | None,
    region: Area | None,
    exclude: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    nusc = de.nusc
    by_weather: dict[str, list[str]] = {}
    for t in _scored(de, exclude):
        scene = nusc.get("scene", nusc.get("sample", t)["scene_token"])
        by_weather.setdefault(weather_of_description(scene.get("description", "")), []).append(t)
    out = {}
    for weather in sorted(by_weather):
        gt, pred = _select(de, by_weather[weather], region)
        if not {b.detection_name for b in gt.all}.intersection(CLASSES if classes is None else classes):
            continue  # nothing of the wanted classes to score in this weather
        scope = {"version": version, "split": split, "weather": weather, **_skipped_scope(exclude)}
        out[weather] = _score(de, gt, pred, out_dir / weather, classes, region, scope)
    return out


def _scored(de: Any, exclude: Collection[str]) -> list[str]:
    """The split's sample tokens the devkit loaded, less ``exclude`` (frames skipped for bad input files)."""
    skip = set(exclude)
    return [t for t in de.gt_boxes.sample_tokens if t not in skip]


def _skipped_scope(exclude: Collection[str]) -> dict[str, Any]:
    """The ``eval_scope`` entry of skipped samples (none when nothing was skipped, so outputs stay as before)."""
    return {"skipped_samples": sorted(exclude)} if exclude else {}


@dataclass(frozen=True)
class RegionEvaluation:
    """The devkit summary of one region (as :func:`evaluate_results` returns it) and, when asked for, the summary
    per weather tag of the split's scenes (``weather=...`` in the scene description, else ``"unknown"``; a weather
    whose samples have no ground truth left after the filters is left out; else empty)."""

    summary: dict[str, Any]
    by_weather: dict[str, dict[str, Any]]


def evaluate_regions(
    dataroot: str | PathLike[str],
    version: str,
    split: str,
    results_path: str | PathLike[str],
    regions: Sequence[tuple[str | PathLike[str], Area | None]],
    *,
    by_weather: bool = False,
    classes: Sequence[str] | None = None,
    verbose: bool = False,
    exclude: Collection[str] = (),
) -> list[RegionEvaluation]:
    """Score one result file in several regions from one devkit load: per ``(out_dir, region)`` what
    :func:`evaluate_results` writes into ``out_dir`` and, with ``by_weather``, the same per weather into
    ``out_dir/by_weather/<weather>``. E.g. ``[(out, grid), (out / "coverage", coverage)]``.

    ``exclude``: sample tokens left out of the score, ground truth and detections alike (frames skipped for bad
    input files, :mod:`imkd_ros.data.check`; the result file still needs an entry, e.g. empty, for them); listed
    in each summary's ``eval_scope.skipped_samples``.

    Returns:
        One :class:`RegionEvaluation` per entry of ``regions``, in order.
    """
    if not regions:
        raise ValueError("evaluate_regions: no region given")
    dataroot = Path(dataroot)
    de = _load_eval(dataroot, version, split, Path(results_path), Path(regions[0][0]), verbose)
    out = []
    for out_dir, region in regions:
        out_dir = Path(out_dir)
        gt, pred = _select(de, _scored(de, exclude), region)
        scope = {"version": version, "split": split, **_skipped_scope(exclude)}
        summary = _score(de, gt, pred, out_dir, classes, region, scope)
        weather: dict[str, dict[str, Any]] = {}
        if by_weather:
            weather = _score_by_weather(de, version, split, out_dir / "by_weather", classes, region, exclude)
        out.append(RegionEvaluation(summary, weather))
    return out
