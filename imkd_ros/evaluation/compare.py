"""Paired comparison of detectors with bootstrap confidence intervals (``imkd compare``).

Every checkpoint runs on the same frames of a split (read once), is scored by the nuscenes-devkit in each named
region, and its headline (NDS, mAP, mATE, mASE, mAOE, mAVE, mAAE) is compared with the FIRST checkpoint's:

- the difference is the devkit's number of the model minus the devkit's number of the reference, on the full split;
- its 95 % confidence interval is a paired percentile bootstrap over scenes: a replicate draws as many scenes as the
  split has, with replacement; every sample of a scene drawn k times counts k times; the same draws serve all
  models and all regions of a replicate (paired), and the metric is recomputed on each replicate with
  :mod:`imkd_ros.evaluation.metrics_fast` (the devkit's metric from pre-matched predictions, checked against the devkit
  to 1e-9). The interval is the 2.5th to 97.5th percentile of the replicate differences; its half-width tells how
  large a difference the split can resolve. Scenes, not samples, are resampled because the samples of a scene are
  strongly correlated (same objects, weather, place).

Writes into ``out_dir``: ``<model>/results.json`` (devkit submission format), ``<model>/<region>/`` the devkit's
``metrics_summary.json`` / ``metrics_details.json``, and ``compare.json`` (all numbers), ``compare.md`` (a table
per region) and ``compare.png`` (per region: the NDS difference of each model with its interval).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imkd_ros.core.atomic import atomic_write, atomic_write_text
from imkd_ros.core.errors import InputError
from imkd_ros.evaluation.metrics_fast import HEADLINE_KEYS, MatchTable, match_samples, metrics_of

__all__ = [
    "CONFIDENCE",
    "Delta",
    "ModelScore",
    "RegionComparison",
    "Comparison",
    "scene_draws",
    "bootstrap_headlines",
    "paired_deltas",
    "nds_ci_halfwidth",
    "compare_detectors",
    "run_detectors",
    "results_meta",
    "score_regions",
]

#: Coverage of the bootstrap intervals.
CONFIDENCE = 0.95

_TITLES: dict[str, str] = {
    "nds": "NDS",
    "map": "mAP",
    "trans_err": "mATE",
    "scale_err": "mASE",
    "orient_err": "mAOE",
    "vel_err": "mAVE",
    "attr_err": "mAAE",
}
_DELTA_COLUMNS: tuple[str, ...] = ("nds", "map", "vel_err")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


class _Contains(Protocol):
    def contains(self, xy: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Delta:
    """A model's difference to the reference: ``value`` on the full split (devkit numbers), ``[lo, hi]`` the
    bootstrap interval (:data:`CONFIDENCE`)."""

    value: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0

    def to_dict(self) -> dict[str, float | None]:
        return {k: _finite(v) for k, v in (("value", self.value), ("lo", self.lo), ("hi", self.hi))} | {
            "half_width": _finite(self.half_width)
        }


@dataclass(frozen=True)
class ModelScore:
    """One model in one region: its devkit headline (:data:`~imkd_ros.evaluation.metrics_fast.HEADLINE_KEYS`) and its
    :class:`Delta` to the reference per headline key (all exactly 0 for the reference)."""

    name: str
    headline: dict[str, float]
    deltas: dict[str, Delta]


@dataclass(frozen=True)
class RegionComparison:
    """All models in one region.

    ``valid_replicates``: replicates with ground truth in the region (the others are left out of the intervals);
    ``fast_vs_devkit``: the largest difference between the fast scorer's and the devkit's full-split headline (a
    self-check; about 1e-15).
    """

    region: str
    area: dict[str, Any]
    samples: int
    scenes: int
    gt_boxes: int
    valid_replicates: int
    fast_vs_devkit: float
    models: tuple[ModelScore, ...]

    def model(self, name: str) -> ModelScore:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in region {self.region!r}: {[m.name for m in self.models]}")


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_detectors` measured and wrote: the model names (the first is the reference), a
    :class:`RegionComparison` per region, the files, and ``seconds_per_replicate`` (the fast scorer over all models
    and regions per bootstrap replicate, measured)."""

    split: str
    version: str
    models: tuple[str, ...]
    checkpoints: tuple[Path, ...]
    bootstrap: int
    seed: int
    regions: dict[str, RegionComparison]
    seconds_per_replicate: float
    json: Path
    markdown: Path
    png: Path

    def nds_ci_halfwidth(self, model: str, region: str | None = None) -> float:
        """Half-width of the 95 % interval of ``model``'s NDS difference to the reference (default: the first
        region)."""
        reg = self.regions[region if region is not None else next(iter(self.regions))]
        return reg.model(model).deltas["nds"].half_width


# -- the bootstrap ------------------------------------------------------------------------------------------------
def scene_draws(n_scenes: int, replicates: int, seed: int) -> np.ndarray:
    """``(replicates, n_scenes)`` int: how often each scene is drawn in each replicate (``n_scenes`` draws with
    replacement, ``numpy.random.default_rng(seed)``)."""
    if n_scenes < 1 or replicates < 1:
        raise ValueError(f"scene_draws: need >= 1 scene and replicate, got {n_scenes} and {replicates}")
    idx = np.random.default_rng(seed).integers(0, n_scenes, size=(replicates, n_scenes))
    counts = np.zeros((replicates, n_scenes), dtype=np.int64)
    np.add.at(counts, (np.arange(replicates)[:, None], idx), 1)
    return counts


def _scene_index(table: MatchTable, scene_of: Mapping[str, str], scenes: Sequence[str]) -> np.ndarray:
    col = {s: i for i, s in enumerate(scenes)}
    try:
        return np.array([col[scene_of[t]] for t in table.sample_tokens], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"bootstrap: sample or scene {exc} is not among the drawn scenes") from exc


def bootstrap_headlines(
    tables: Sequence[MatchTable], scene_of: Mapping[str, str], scenes: Sequence[str], draws: np.ndarray
) -> np.ndarray:
    """The headline of each table on each replicate.

    Args:
        tables: ``M`` match tables (e.g. one per model, of the same samples).
        scene_of: sample token -> scene name.
        scenes: the scene names of the columns of ``draws``.
        draws: ``(B, len(scenes))`` :func:`scene_draws`.

    Returns:
        ``(B, M, 7)`` float64 in :data:`~imkd_ros.evaluation.metrics_fast.HEADLINE_KEYS` order; NaN in a replicate
        without ground truth.
    """
    weights = [draws[:, _scene_index(t, scene_of, scenes)] for t in tables]  # (B, S_m) each
    out = np.empty((len(draws), len(tables), len(HEADLINE_KEYS)))
    for b in range(len(draws)):
        for m, table in enumerate(tables):
            out[b, m] = metrics_of(table, weights[m][b]).headline_array()
    return out


def paired_deltas(point: np.ndarray, replicates: np.ndarray, confidence: float = CONFIDENCE) -> list[dict[str, Delta]]:
    """Differences to model 0 with percentile intervals.

    Args:
        point: ``(M, 7)`` full-set headlines (:data:`~imkd_ros.evaluation.metrics_fast.HEADLINE_KEYS` order).
        replicates: ``(B, M, 7)`` :func:`bootstrap_headlines`; replicates with a NaN are ignored per entry.
        confidence: interval coverage.

    Returns:
        Per model ``{headline key: Delta}``.
    """
    diff = replicates - replicates[:, :1, :]  # (B, M, 7); exactly 0 for model 0
    q = 100.0 * (1.0 - confidence) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN entries give NaN
        lo, hi = np.nanpercentile(diff, [q, 100.0 - q], axis=0)
    value = point - point[:1]
    return [
        {k: Delta(float(value[m, i]), float(lo[m, i]), float(hi[m, i])) for i, k in enumerate(HEADLINE_KEYS)}
        for m in range(len(point))
    ]


def nds_ci_halfwidth(
    reference: MatchTable,
    other: MatchTable,
    scene_of: Mapping[str, str],
    *,
    replicates: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> float:
    """Half-width of the paired bootstrap interval of ``other``'s NDS minus ``reference``'s, over the scenes of
    ``reference``'s samples: how large an NDS difference a split of this size resolves."""
    scenes = sorted({scene_of[t] for t in reference.sample_tokens})
    boot = bootstrap_headlines([reference, other], scene_of, scenes, scene_draws(len(scenes), replicates, seed))
    point = np.stack([metrics_of(reference).headline_array(), metrics_of(other).headline_array()])
    return paired_deltas(point, boot, confidence)[1]["nds"].half_width


# -- detectors ----------------------------------------------------------------------------------------------------
def _model_names(checkpoints: Sequence[Path], runtimes: Sequence[tuple[str, str]]) -> list[str]:
    """File stems, with ``.backend-precision`` for a model not run by PyTorch in fp32, made unique."""
    names: list[str] = []
    for c, (backend, precision) in zip(checkpoints, runtimes, strict=True):
        stem = c.stem if (backend, precision) == ("torch", "fp32") else f"{c.stem}.{backend}-{precision}"
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem) or "model"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


@dataclass(frozen=True)
class _Described:
    """A region without ``to_dict`` (only ``contains``), described by its name in the devkit summary."""

    area: Any
    name: str

    def contains(self, xy: np.ndarray) -> np.ndarray:
        return self.area.contains(xy)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": type(self.area).__name__, "name": self.name}


def run_detectors(
    dataroot: Path, version: str, split: str, detectors: Sequence[Any], batch_size: int
) -> tuple[list[dict[str, list[dict[str, Any]]]], dict[str, str]]:
    """Devkit result dicts of every detector on every sample of ``split`` (frames read once), and sample -> scene."""
    from imkd_ros.data.check import usable_samples
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.evaluation.evaluate import boxes_to_results

    teachers = {d.config.lidar.sweeps for d in detectors if d.is_teacher}
    if len(teachers) > 1:
        raise InputError(f"the teachers read different LiDAR sweeps {sorted(teachers)}; compare them separately")
    reader = NuScenesReader(
        dataroot,
        version,
        lidar_sweeps=teachers.pop() if teachers else 1,
        load_lidar=any(d.is_teacher for d in detectors),
        load_image=not all(d.is_teacher for d in detectors),
    )
    tokens = reader.split_samples(split)
    scenes = reader.split_scenes(split)
    if len(scenes) < 2:
        raise InputError(f"split {split!r} has {len(scenes)} scene(s); a bootstrap over scenes needs at least 2")
    usable_samples(reader, tokens, what=f"split {split} of {dataroot}")  # every bad file named before any model runs
    results: list[dict[str, list[dict[str, Any]]]] = [{} for _ in detectors]
    for i in range(0, len(tokens), batch_size):
        frames = [reader.frame(t) for t in tokens[i : i + batch_size]]
        for det, res in zip(detectors, results, strict=True):
            for f, boxes in zip(frames, det.detect_batch(frames), strict=True):
                res[f.token] = boxes_to_results(f, boxes)
    return results, {t: reader.scene_of(t) for t in tokens}


def results_meta(detector: Any) -> dict[str, Any]:
    """The devkit results ``meta`` of a detector's modalities."""
    from imkd_ros.evaluation.evaluate import CAMERA_RADAR_META

    meta = dict(CAMERA_RADAR_META)
    if detector.is_teacher:
        meta.update(use_camera=False, use_radar=False, use_lidar=True)
    return meta


def score_regions(
    dataroot: Path, version: str, split: str, results_path: Path, areas: Mapping[str, Any], model: str
) -> dict[str, tuple[dict[str, Any], MatchTable]]:
    """One results file scored by the devkit in each region (summaries written under ``results_path.parent /
    <region>``): ``{region: (devkit summary, match table for the bootstrap)}``."""
    from imkd_ros.evaluation.evaluate import _load_eval, _score, _select

    de = _load_eval(dataroot, version, split, results_path, results_path.parent, False)
    out = {}
    for rname, area in areas.items():
        gt, pred = _select(de, de.gt_boxes.sample_tokens, area)
        scope = {"version": version, "split": split, "region_name": rname, "model": model}
        out[rname] = (
            _score(de, gt, pred, results_path.parent / rname, None, area, scope),
            match_samples(gt, pred, de.cfg),
        )
    return out


def compare_detectors(
    dataroot: str | PathLike[str],
    version: str,
    split: str,
    checkpoints: Sequence[str | PathLike[str]],
    out_dir: str | PathLike[str],
    *,
    regions: Mapping[str, _Contains] | None = None,
    bootstrap: int = 2000,
    seed: int = 0,
    batch_size: int = 4,
    device: str = "cpu",
    runtimes: Sequence[str] = (),
) -> Comparison:
    """Run each checkpoint on ``split``, score it with the devkit per region and compare it with the first one
    (see the module docstring).

    Args:
        dataroot, version, split: the dataset and split (as :func:`imkd_ros.evaluation.evaluate.evaluate_results`).
        checkpoints: two or more checkpoints (teacher or student); the first is the reference. A model is named by
            its file stem (made unique with ``-2``, ``-3``, ...).
        out_dir: output folder (see the module docstring).
        regions: ``{name: area}``, an area being anything with ``contains(xy (N, 2) ego frame) -> bool (N,)``
            (:class:`imkd_ros.evaluation.evaluate.Region`, :class:`imkd_ros.evaluation.coverage.Coverage`, ...); names
            are folder names.
            Default: ``{"coverage": ..., "grid": ...}``: the coverage region (:mod:`imkd_ros.evaluation.coverage`) of
            the first student among the checkpoints (what its sensors see; the headline of a student-teacher
            comparison), and the first checkpoint's whole BEV grid; the grid alone when all are teachers.
        bootstrap: replicates (>= 1).
        seed: seed of the scene draws.
        batch_size: frames per forward pass.
        device: ``"cpu"`` or ``"cuda"``.
        runtimes: how each checkpoint runs, ``"BACKEND[:PRECISION]"``
            (:func:`~imkd_ros.inference.detector.parse_runtime`): none (PyTorch, fp32), one for all, or one per
            checkpoint; a model run otherwise than PyTorch in fp32 is named ``<stem>.<backend>-<precision>`` (the
            same checkpoint can be compared with itself in another precision).

    Raises:
        CheckpointError: a checkpoint is missing or corrupt.
        EvaluationError: the devkit cannot score a model (e.g. no detections, no ground truth in a region).
        ValueError: fewer than two checkpoints, a split of fewer than two scenes, a bad region name,
            ``bootstrap`` < 1, teachers with different LiDAR sweeps.
    """
    from imkd_ros.inference.detector import Detector

    paths = [Path(c) for c in checkpoints]
    parsed = _checked_runtimes(len(paths), runtimes, bootstrap, batch_size)
    dataroot, out_dir = Path(dataroot), Path(out_dir)
    detectors = [
        Detector.from_checkpoint(p, device=device, backend=b, precision=q)
        for p, (b, q) in zip(paths, parsed, strict=True)
    ]
    names = _model_names(paths, [(d.backend, d.precision) for d in detectors])
    areas = _checked_areas(_default_areas(dataroot, version, split, detectors) if regions is None else dict(regions))

    results, scene_of = run_detectors(dataroot, version, split, detectors, batch_size)
    summaries, tables = _score_models(dataroot, version, split, out_dir, areas, names, detectors, results)
    scenes = sorted({scene_of[t] for t in tables[next(iter(areas))][0].sample_tokens})
    draws = scene_draws(len(scenes), bootstrap, seed)
    t0 = time.perf_counter()
    compared = {
        rname: _compare_region(rname, area, names, summaries[rname], tables[rname], scene_of, scenes, draws)
        for rname, area in areas.items()
    }
    per_replicate = (time.perf_counter() - t0) / bootstrap
    out = Comparison(
        split=split,
        version=version,
        models=tuple(names),
        checkpoints=tuple(paths),
        bootstrap=bootstrap,
        seed=seed,
        regions=compared,
        seconds_per_replicate=per_replicate,
        json=out_dir / "compare.json",
        markdown=out_dir / "compare.md",
        png=out_dir / "compare.png",
    )
    _write_files(out)
    return out


def _checked_runtimes(n_models: int, runtimes: Sequence[str], bootstrap: int, batch_size: int) -> list[tuple[str, str]]:
    """``(backend, precision)`` for each of ``n_models`` checkpoints from :func:`compare_detectors`' ``runtimes``,
    once its arguments are checked.

    Raises:
        InputError: fewer than two checkpoints, ``bootstrap`` or ``batch_size`` < 1, a runtime count that is not 0, 1
            or ``n_models``.
    """
    from imkd_ros.inference.detector import parse_runtime

    if n_models < 2:
        raise InputError(f"compare needs at least two checkpoints, got {n_models}")
    if bootstrap < 1:
        raise InputError(f"bootstrap must be >= 1 replicate, got {bootstrap}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if len(runtimes) not in (0, 1, n_models):
        raise InputError(f"{len(runtimes)} runtimes for {n_models} checkpoints: give none, one, or one per checkpoint")
    parsed = [parse_runtime(r) for r in runtimes] or [("torch", "fp32")]
    return parsed * n_models if len(parsed) == 1 else parsed


def _write_files(c: Comparison) -> None:
    """``compare.json``, ``compare.md`` and ``compare.png`` of ``c``."""
    atomic_write_text(c.json, json.dumps(_to_json(c), indent=2, allow_nan=False) + "\n")
    atomic_write_text(c.markdown, _markdown(c))
    _plot(c)


def _score_models(
    dataroot: Path,
    version: str,
    split: str,
    out_dir: Path,
    areas: Mapping[str, Any],
    names: Sequence[str],
    detectors: Sequence[Any],
    results: Sequence[Any],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[MatchTable]]]:
    """Each model's results written (``out_dir/<name>/results.json``) and scored per region: the devkit summaries and
    the match tables by region, models in order."""
    from imkd_ros.evaluation.evaluate import write_results

    summaries: dict[str, list[dict[str, Any]]] = {r: [] for r in areas}
    tables: dict[str, list[MatchTable]] = {r: [] for r in areas}
    for name, det, res in zip(names, detectors, results, strict=True):
        results_path = out_dir / name / "results.json"
        write_results(results_path, res, results_meta(det))
        for rname, (summary, table) in score_regions(dataroot, version, split, results_path, areas, name).items():
            summaries[rname].append(summary)
            tables[rname].append(table)
    return summaries, tables


def _default_areas(dataroot: Path, version: str, split: str, detectors: Sequence[Any]) -> dict[str, Any]:
    """:func:`compare_detectors`' default regions: the first student's coverage (when there is a student), the first
    checkpoint's grid."""
    from imkd_ros.evaluation.eval_detector import model_region

    areas: dict[str, Any] = {}
    students = [d for d in detectors if not d.is_teacher]
    if students:
        from imkd_ros.data.reader import NuScenesReader
        from imkd_ros.evaluation.coverage import dataset_coverage

        cov_reader = NuScenesReader(dataroot, version, load_lidar=False)
        token = cov_reader.split_samples(split)[0]
        areas["coverage"] = dataset_coverage(students[0].config, cov_reader, token)
    areas["grid"] = model_region(detectors[0].config)
    return areas


def _checked_areas(areas: dict[str, Any]) -> dict[str, Any]:
    """The regions, checked (plain folder names, a ``contains``), each with a ``to_dict`` (:class:`_Described`)."""
    if not areas:
        raise ValueError("compare needs at least one region")
    for name, area in areas.items():
        if not _NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"region name {name!r} is not a plain folder name (letters, digits, _ . -)")
        if not callable(getattr(area, "contains", None)):
            raise ValueError(f"region {name!r} has no contains(xy) method")
    return {n: a if callable(getattr(a, "to_dict", None)) else _Described(a, n) for n, a in areas.items()}


def _compare_region(
    rname: str,
    area: Any,
    names: Sequence[str],
    summaries: Sequence[dict[str, Any]],
    tables: Sequence[MatchTable],
    scene_of: Mapping[str, str],
    scenes: Sequence[str],
    draws: np.ndarray,
) -> RegionComparison:
    """One region: each model's devkit headline, its bootstrap replicates and its paired deltas to the first model
    (a warning when the fast scorer differs from the devkit)."""
    from imkd_ros.evaluation.eval_detector import headline

    point = np.array([[headline(s)[k] for k in HEADLINE_KEYS] for s in summaries])
    fast = np.array([metrics_of(t).headline_array() for t in tables])
    gap = float(np.nanmax(np.abs(fast - point))) if np.isfinite(point).any() else 0.0
    if gap > 1e-6:
        warnings.warn(f"region {rname}: fast scorer differs from the devkit by {gap:.2e}", stacklevel=3)
    boot = bootstrap_headlines(tables, scene_of, scenes, draws)
    deltas = paired_deltas(point, boot)
    scope = summaries[0]["eval_scope"]
    return RegionComparison(
        region=rname,
        area=area.to_dict(),
        samples=int(scope["samples"]),
        scenes=len({scene_of[t] for t in tables[0].sample_tokens}),
        gt_boxes=int(scope["gt_boxes"]),
        valid_replicates=int(np.isfinite(boot[:, 0, 0]).sum()),
        fast_vs_devkit=gap,
        models=tuple(
            ModelScore(n, dict(zip(HEADLINE_KEYS, map(float, point[m]), strict=True)), deltas[m])
            for m, n in enumerate(names)
        ),
    )


# -- reports ------------------------------------------------------------------------------------------------------
def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _to_json(c: Comparison) -> dict[str, Any]:
    return {
        "split": c.split,
        "version": c.version,
        "reference": c.models[0],
        "models": [{"name": n, "checkpoint": str(p)} for n, p in zip(c.models, c.checkpoints, strict=True)],
        "bootstrap": {
            "replicates": c.bootstrap,
            "seed": c.seed,
            "confidence": CONFIDENCE,
            "method": "paired percentile bootstrap over scenes",
            "seconds_per_replicate": c.seconds_per_replicate,
        },
        "regions": {
            name: {
                "area": r.area,
                "samples": r.samples,
                "scenes": r.scenes,
                "gt_boxes": r.gt_boxes,
                "valid_replicates": r.valid_replicates,
                "fast_vs_devkit": r.fast_vs_devkit,
                "models": [
                    {
                        "name": m.name,
                        "headline": {k: _finite(v) for k, v in m.headline.items()},
                        "delta": {k: d.to_dict() for k, d in m.deltas.items()},
                    }
                    for m in r.models
                ],
            }
            for name, r in c.regions.items()
        },
    }


def _fmt_delta(d: Delta) -> str:
    if not math.isfinite(d.value):
        return "n/a"
    return f"{d.value:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"


def _markdown(c: Comparison) -> str:
    ref = c.models[0]
    lines = [
        f"# Detector comparison on {c.split} ({c.version})",
        "",
        f"Reference: `{ref}`. Differences are model minus reference on the full split (nuscenes-devkit, "
        f"detection_cvpr_2019); intervals are {CONFIDENCE:.0%} paired percentile bootstrap intervals over scenes "
        f"({c.bootstrap} replicates, seed {c.seed}; scenes resampled with replacement, the metric recomputed per "
        "replicate).",
        "",
        "Checkpoints: " + ", ".join(f"`{n}` = `{p}`" for n, p in zip(c.models, c.checkpoints, strict=True)),
    ]
    head = [_TITLES[k] for k in HEADLINE_KEYS] + [f"Δ{_TITLES[k]} [95 % CI]" for k in _DELTA_COLUMNS]
    for name, r in c.regions.items():
        lines += [
            "",
            f"## Region `{name}`",
            "",
            f"{r.samples} samples in {r.scenes} scenes, {r.gt_boxes} GT boxes; {r.valid_replicates} of {c.bootstrap} "
            f"replicates with ground truth. Area: `{json.dumps(r.area)}`.",
            "",
            "| model | " + " | ".join(head) + " |",
            "|---" * (len(head) + 1) + "|",
        ]
        for m in r.models:
            cells = [f"{m.headline[k]:.4f}" for k in HEADLINE_KEYS] + [_fmt_delta(m.deltas[k]) for k in _DELTA_COLUMNS]
            lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
        widths = ", ".join(f"`{m.name}` ±{m.deltas['nds'].half_width:.4f}" for m in r.models[1:])
        lines += ["", f"Half-width of the ΔNDS interval: {widths}."]
    return "\n".join(lines) + "\n"


def _plot(c: Comparison) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    regions = list(c.regions.values())
    fig = Figure(figsize=(1.0 + 1.3 * len(c.models) * len(regions), 3.6))
    axes = fig.subplots(1, len(regions), squeeze=False)
    for ax, r in zip(axes[0], regions, strict=True):
        x = np.arange(len(r.models))
        d = [m.deltas["nds"] for m in r.models]
        val = np.array([v.value for v in d])
        err = np.array([[v.value - v.lo for v in d], [v.hi - v.value for v in d]])
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.errorbar(x, val, yerr=np.clip(np.nan_to_num(err), 0.0, None), fmt="o", capsize=4)
        ax.set_xticks(x, [m.name for m in r.models], rotation=20, ha="right")
        ax.set_title(f"{r.region} ({r.scenes} scenes)")
        ax.set_ylabel(f"ΔNDS vs {c.models[0]} ({CONFIDENCE:.0%} CI)")
    fig.tight_layout()
    with atomic_write(c.png, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
