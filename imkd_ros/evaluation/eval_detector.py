"""Run a :class:`~imkd_ros.inference.detector.Detector` over a split and score it with the devkit (``imkd eval``).

Writes into ``out_dir``: ``results.json`` (devkit submission format, global frame), the devkit's
``metrics_summary.json`` / ``metrics_details.json``, ``by_weather/<weather>/metrics_summary.json`` plus a
``by_weather.json`` digest, and BEV PNGs of a few samples under ``bev/`` (ground truth vs detections, radar and
LiDAR points). Models see only the area of their BEV grid, so GT and detections are scored inside that region
(:func:`model_region`); the summary's ``eval_scope`` records it.

The same files again under ``coverage/`` score only what the model's sensors can see: the grid intersected with
the fields of view of the sensors of its modalities, from the dataset's calibration
(:mod:`imkd_ros.evaluation.coverage`). That is the fair region for comparing a camera + radar student with the LiDAR
teacher; for the teacher it is the grid itself.

Bad input files: every file the split's frames read is checked before the model runs (:mod:`imkd_ros.data.check`);
a bad one stops the run with one error listing them all, or, with ``skip_bad_frames`` (``--skip-bad-frames``), the
frames reading them are left out of the score (no ground truth, no detections) and listed in ``skipped_frames.json``
and in every summary's ``eval_scope.skipped_samples``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.atomic import atomic_write_text
from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.check import SkippedFrame, iter_frames, sort_skipped, usable_samples
from imkd_ros.data.errors import DatasetError
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.evaluation.coverage import Coverage, dataset_coverage, grid_region
from imkd_ros.evaluation.evaluate import CAMERA_RADAR_META, Region, boxes_to_results, evaluate_regions
from imkd_ros.inference.detector import Detector
from imkd_ros.model import ModelConfig

__all__ = ["model_region", "evaluate_detector", "headline"]


def model_region(config: ModelConfig) -> Region:
    """The ego-frame rectangle of a model's BEV grid."""
    return grid_region(config.grid)


def headline(summary: dict[str, Any]) -> dict[str, float]:
    """NDS, mAP and the five TP errors of a devkit summary as a flat dict."""
    out = {"nds": float(summary["nd_score"]), "map": float(summary["mean_ap"])}
    for k, v in summary["tp_errors"].items():
        out[k] = float(v)
    return out


def evaluate_detector(
    detector: Detector,
    frames: Sequence[Frame] | None,
    out_dir: str | Path,
    *,
    dataroot: str | Path,
    version: str = "v1.0-synth",
    split: str = "synth_val",
    reader: NuScenesReader | None = None,
    batch_size: int = 4,
    bev_pngs: int = 3,
    by_weather: bool = True,
    coverage: Coverage | None = None,
    skip_bad_frames: bool = False,
    skipped: Sequence[SkippedFrame] = (),
) -> dict[str, Any]:
    """Detect on every sample of ``split`` (or on ``frames`` when given: those of the split, already read) and
    evaluate on the whole grid (into ``out_dir``) and on the coverage region (into ``out_dir/coverage``).

    Args:
        coverage: the coverage region; default: :func:`imkd_ros.evaluation.coverage.dataset_coverage` of the model with
        the rig of the first frame (the camera calibration of that frame, the radar mountings from ``reader`` or,
            without one, a reader of ``dataroot``).
        skip_bad_frames: leave out the frames that read a bad file instead of failing (see the module docstring).
        skipped: with ``frames`` given: the split's frames left out when they were read (scored as skipped).

    Returns:
        ``{"summary": grid devkit summary, "by_weather": {weather: headline}, "coverage_summary": coverage devkit
        summary, "coverage_by_weather": {weather: headline}, "coverage": the region as a dict,
        "latency_ms_median": ..., "frames": ..., "skipped_frames": [SkippedFrame.to_dict(), ...]}``.

    Raises:
        BadFilesError: bad input files, without ``skip_bad_frames``.
        DatasetError: every frame of the split was skipped.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = list(skipped)
    if frames is None:  # read as detected: one batch in memory, not the split (nuScenes val: 6019 x ~26 MB)
        reader = reader or _reader_for(detector, dataroot, version, bev_pngs)
        split_tokens = reader.split_samples(split)
        tokens, skipped = usable_samples(
            reader, split_tokens, skip_bad=skip_bad_frames, what=f"split {split} of {dataroot}"
        )
        count, stream = len(tokens), iter_frames(reader, tokens, skipped, skip_bad=skip_bad_frames)
    else:
        count, stream = len(frames), iter(frames)
    results, latencies, dets_of, first, pictures = _detect_all(detector, stream, batch_size, _picks(count, bev_pngs))
    if frames is None:  # frames that failed to read were appended as they came
        sort_skipped(skipped, split_tokens)
    if first is None:
        raise DatasetError(f"split {split} of {dataroot}: every one of its {len(skipped)} frames was skipped")
    results_path = _write_results(out_dir / "results.json", detector, {**results, **{s.sample: [] for s in skipped}})
    if coverage is None:
        if reader is None and "radar" in detector.config.modalities:
            reader = NuScenesReader(dataroot, version, load_lidar=False, load_image=False)
        coverage = dataset_coverage(detector.config, reader, first.token, cameras=first.cameras)
    grid, cov = evaluate_regions(
        dataroot,
        version,
        split,
        results_path,
        [(out_dir, model_region(detector.config)), (out_dir / "coverage", coverage)],
        by_weather=by_weather,
        exclude=[s.sample for s in skipped],
    )
    weather, cov_weather = _weather_headlines(out_dir, grid, cov) if by_weather else ({}, {})
    if skipped:
        atomic_write_text(out_dir / "skipped_frames.json", json.dumps([s.to_dict() for s in skipped], indent=2) + "\n")
    _draw_bevs(out_dir / "bev", pictures, dets_of)
    return {
        "summary": grid.summary,
        "by_weather": weather,
        "coverage_summary": cov.summary,
        "coverage_by_weather": cov_weather,
        "coverage": coverage.to_dict(),
        "latency_ms_median": float(np.median(latencies)) if latencies else float("nan"),
        "frames": len(dets_of),
        "skipped_frames": [s.to_dict() for s in skipped],
    }


def _write_results(path: Path, detector: Detector, results: dict[str, list[dict[str, Any]]]) -> Path:
    """The devkit result file (the modalities of the model in its meta); ``path`` back."""
    from imkd_ros.evaluation.evaluate import write_results

    meta = dict(CAMERA_RADAR_META)
    if detector.is_teacher:
        meta.update(use_camera=False, use_radar=False, use_lidar=True)
    write_results(path, results, meta)
    return path


def _reader_for(detector: Detector, dataroot: str | Path, version: str, bev_pngs: int) -> NuScenesReader:
    """A reader of what the model needs (LiDAR sweeps for a teacher, the image for a student; LiDAR also for the
    BEV pictures)."""
    return NuScenesReader(
        dataroot,
        version,
        lidar_sweeps=detector.config.lidar.sweeps if detector.is_teacher else 1,
        load_lidar=bev_pngs > 0 or detector.is_teacher,
        load_image=not detector.is_teacher,
    )


def _weather_headlines(out_dir: Path, grid: Any, cov: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headline per weather on the grid and on the coverage region, written to ``by_weather.json`` in
    ``out_dir`` and ``out_dir/coverage``."""
    weather = {w: headline(s) for w, s in grid.by_weather.items()}
    cov_weather = {w: headline(s) for w, s in cov.by_weather.items()}
    atomic_write_text(out_dir / "by_weather.json", json.dumps(weather, indent=2) + "\n")
    atomic_write_text(out_dir / "coverage" / "by_weather.json", json.dumps(cov_weather, indent=2) + "\n")
    return weather, cov_weather


def _picks(count: int, bev_pngs: int) -> set[int]:
    """Indices of the ``bev_pngs`` frames, of ``count``, drawn as BEV pictures: evenly spread."""
    return set(range(0, count, max(1, count // max(1, bev_pngs)))[:bev_pngs])


def _detect_all(
    detector: Detector, frames: Iterator[Frame], batch_size: int, picks: set[int]
) -> tuple[dict[str, list[dict[str, Any]]], list[float], dict[str, Boxes], Frame | None, list[Frame]]:
    """Detections on ``frames`` in batches of ``batch_size``, each batch dropped once detected: devkit results by
    sample, per-frame latencies (ms, one per batch), the boxes by sample, and the only frames kept: the first (the
    rig the coverage region is built from; None when there was none) and those whose index is in ``picks`` (the BEV
    pictures)."""
    results: dict[str, list[dict[str, Any]]] = {}
    latencies = []
    dets_of = {}
    first, pictures = None, []
    index = 0
    while chunk := list(itertools.islice(frames, batch_size)):
        t0 = time.perf_counter()
        boxes = detector.detect_batch(chunk)
        latencies.append((time.perf_counter() - t0) * 1e3 / len(chunk))
        for f, b in zip(chunk, boxes, strict=True):
            results[f.token] = boxes_to_results(f, b)
            dets_of[f.token] = b
            first = f if first is None else first
            if index in picks:
                pictures.append(f)
            index += 1
    return results, latencies, dets_of, first, pictures


def _draw_bevs(folder: Path, frames: Sequence[Frame], dets_of: Mapping[str, Boxes]) -> None:
    """A BEV picture of each of ``frames`` with its detections."""
    from imkd_ros.evaluation.viz import draw_bev

    for f in frames:
        draw_bev(folder / f"{f.scene}_{f.token[:8]}.png", f, dets_of[f.token])
