"""The distillation study (``imkd ablate``): what a LiDAR teacher adds when few drives are labelled.

Setting (label-scarce, :mod:`imkd_ros.data.splits`): the training split's drives are divided into a labelled share
(``scarce<P>_labelled``, default 25 %, every weather kept) and the rest, used as unlabelled drives
(``scarce<P>_unlabelled``; their annotations are never read except by the oracle row). The teacher is trained on
the labelled drives only, so that it knows nothing the students could not have been told; its targets are cached
for every training frame. Every student row has the same labelled frames, model, step budget and seeds:

========== ===================================================================================================
key        what the student learns from
========== ===================================================================================================
nokd       labelled frames only (the baseline)
kd1        + stage 1 (LiDAR -> radar features, intensity-weighted)
kd1-2      + stages 1-2 (+ selective fused-feature and response distillation)
kd1-2-3    + stages 1-3 (+ intensity-guided fusion calibration)
pseudo     labelled frames + the unlabelled drives' teacher pseudo-labels, no feature distillation
pseudo-soft the same with soft targets: the heatmap target raised to the teacher's heatmap
pseudo-sv  the same with pseudo-label velocities from the radar's Doppler (``imkd-sv`` without the stages)
pseudo-sv4 ``pseudo-sv`` with pseudo-labels of teacher score >= 0.4 instead of 0.3 (fewer false positives; the
           soft targets keep the teacher's weaker objects from being full negatives)
pseudo-sv25 ``pseudo-sv`` with pseudo-labels of teacher score >= 0.25 (more of the teacher's objects, more false
           positives)
pseudo-sv-w05 ``pseudo-sv`` with the unlabelled frames' detection loss weighted 0.5 (labels count more)
pseudo-sv-w2 ``pseudo-sv`` with it weighted 2 (the unlabelled drives count more)
imkd       stages 1-3 + the unlabelled drives (pseudo-labels and every stage's distillation)
imkd-sv    the same with soft targets and pseudo-label velocities from the radar's Doppler
imkd-svn   ``imkd-sv`` with pseudo-labels that teach no yaw (their rotation regression masked)
oracle     labelled frames + the unlabelled drives WITH their annotations (the upper bound of ``pseudo``/``imkd``)
teacher    the LiDAR teacher itself (reference)
========== ===================================================================================================

Each checkpoint is ``<out>/<key>_s<seed>.pt`` (the teacher ``<out>/teacher.pt``, its cache ``<out>/targets``); one
that exists with the row's settings (checked in its meta) is reused, an interrupted one resumes, so the study can be
run in pieces or its checkpoints trained by ``imkd train`` with the same arguments.

Scoring, on a validation set none of them trained on (``--val-data``/``--val-split``, the large validation set of
the README): every model's detections are cached (``<out>/eval/<name>/results.json``, keyed by the checkpoint's
sha256), scored by the nuscenes-devkit in the students' coverage region (headline: what the camera and radar see,
where the teacher is comparable) and on the whole grid. A row's value is the mean over its seeds (± the standard
deviation over seeds); its difference to ``nokd`` carries a 95 % paired percentile bootstrap interval over scenes
(each replicate draws the scenes with replacement, every model of both rows is rescored on the draw by
:mod:`imkd_ros.evaluation.metrics_fast` and the rows' seed means are differenced). The share of the student-teacher gap
a row closes is ``(row - nokd) / (teacher - nokd)`` in NDS.

Writes ``ablation.json``, ``ablation.md`` and ``ablation.png`` into ``out``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.atomic import atomic_write, atomic_write_text
from imkd_ros.core.errors import InputError
from imkd_ros.distill.config import STAGES, DistillConfig

__all__ = ["StudyRow", "STUDY_ROWS", "StudyPlan", "run_study", "score_study", "METRIC_COLUMNS"]

#: (headline key, column title) of the metrics in the table, in order.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("nds", "NDS"),
    ("map", "mAP"),
    ("trans_err", "mATE"),
    ("scale_err", "mASE"),
    ("orient_err", "mAOE"),
    ("vel_err", "mAVE"),
    ("attr_err", "mAAE"),
)


@dataclass(frozen=True)
class StudyRow:
    """One student row: its key, label, distillation stages, whether it learns from the unlabelled drives
    (``"pseudo"``: teacher pseudo-labels; ``"labels"``: their annotations, the oracle; None: not at all)."""

    key: str
    label: str
    stages: tuple[str, ...] = ()
    unlabelled: str | None = None
    soft: bool = False
    velocity: bool = False
    rotation: bool = True
    threshold: float = 0.3
    weight: float = 1.0


STUDY_ROWS: tuple[StudyRow, ...] = (
    StudyRow("nokd", "no KD (labelled drives only)"),
    StudyRow("kd1", "+ stage 1", ("stage1",)),
    StudyRow("kd1-2", "+ stages 1-2", ("stage1", "stage2")),
    StudyRow("kd1-2-3", "+ stages 1-3", STAGES),
    StudyRow("pseudo", "+ unlabelled drives, pseudo-labels only", (), "pseudo"),
    StudyRow("pseudo-soft", "+ unlabelled drives, soft pseudo-labels only", (), "pseudo", soft=True),
    StudyRow("pseudo-sv", "+ unlabelled drives, soft pseudo-labels with Doppler velocities", (), "pseudo", True, True),
    StudyRow(
        "pseudo-sv4", "`pseudo-sv` with pseudo-labels of teacher score >= 0.4", (), "pseudo", True, True, True, 0.4
    ),
    StudyRow(
        "pseudo-sv25", "`pseudo-sv` with pseudo-labels of teacher score >= 0.25", (), "pseudo", True, True, True, 0.25
    ),
    StudyRow(
        "pseudo-sv-w05", "`pseudo-sv` with the pseudo-label loss weighted 0.5", (), "pseudo", True, True, weight=0.5
    ),
    StudyRow("pseudo-sv-w2", "`pseudo-sv` with the pseudo-label loss weighted 2", (), "pseudo", True, True, weight=2.0),
    StudyRow("imkd", "+ stages 1-3 + unlabelled drives (IMKD)", STAGES, "pseudo"),
    StudyRow("imkd-sv", "IMKD + soft targets + Doppler pseudo-label velocities", STAGES, "pseudo", True, True),
    StudyRow("imkd-svn", "IMKD-sv, pseudo-labels without yaw", STAGES, "pseudo", True, True, False),
    StudyRow("oracle", "oracle: unlabelled drives labelled too", (), "labels"),
)


@dataclass(frozen=True)
class StudyPlan:
    """What :func:`run_study` trains.

    Attributes:
        data: the training dataroot (``imkd synth``); its ``source`` split is divided into labelled / unlabelled.
        out: the study folder.
        fraction: labelled share of the drives.
        seeds: seeds per row key (rows not named: ``default_seeds``).
        steps: optimiser steps of every student (one-cycle schedule over them), ``teacher_steps`` the teacher's.
        rows: row keys to train, in :data:`STUDY_ROWS` order.
        size: ``"default"`` or ``"tiny"`` (tests).
        teacher_augment: train the teacher with global mirror/rotation/scale augmentation
            (:mod:`imkd_ros.data.augment`).
        tta: gather the teacher's targets with mirror test-time augmentation (:mod:`imkd_ros.distill.targets`).
        jobs: training runs at a time, each in its own process with one torch thread (1: one after another here).
        precision: every model's training precision (``TrainConfig.precision``: ``fp32`` or ``bf16``).
        grid: the BEV grid of every model (:data:`imkd_ros.training.train.GRIDS`: ``front``, or ``surround`` for a
            360-degree rig such as ``imkd synth --rig nuscenes``).
        image_size: the students' camera input ``(width, height)``; None: the size's.
    """

    data: Path
    out: Path
    fraction: float = 0.25
    default_seeds: tuple[int, ...] = (0, 1, 2)
    seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    steps: int = 1000
    teacher_steps: int = 1600
    batch_size: int = 4
    lr: float = 2e-3
    rows: tuple[str, ...] = tuple(r.key for r in STUDY_ROWS)
    size: str = "default"
    source: str = "synth_train"
    version: str = "v1.0-synth"
    val_split: str = "synth_val"
    device: str = "cpu"
    teacher_augment: bool = True
    tta: bool = False
    jobs: int = 1
    precision: str = "fp32"
    grid: str = "front"
    image_size: tuple[int, int] | None = None

    def seeds_of(self, key: str) -> tuple[int, ...]:
        return tuple(self.seeds.get(key, self.default_seeds))

    def checkpoint(self, key: str, seed: int) -> Path:
        return self.out / f"{key}_s{seed}.pt"


def _row(key: str) -> StudyRow:
    for r in STUDY_ROWS:
        if r.key == key:
            return r
    raise InputError(f"unknown study row {key!r}: choose from {', '.join(r.key for r in STUDY_ROWS)}")


def _meta(path: Path) -> dict[str, Any] | None:
    from imkd_ros.model.checkpoint import CheckpointError, load_checkpoint

    if not path.is_file():
        return None
    try:
        ck = load_checkpoint(path)
    except CheckpointError:
        return None
    return {**ck.meta, "model_config": ck.config.to_dict()}


#: Train-config fields older checkpoints do not record, with the value they had.
_TRAIN_DEFAULTS: dict[str, Any] = {"augment": False, "precision": "fp32"}


def _matches(meta: dict[str, Any] | None, want: dict[str, Any]) -> bool:
    """A finished checkpoint trained with the settings ``want`` (its model config, train-config fields, distill
    stages, unlabelled split, and for students that learnt from targets the teacher and its test-time augmentation)
    asks for."""
    if meta is None or ("model" in want and meta.get("model_config") != want["model"]):
        return False
    train = meta.get("train") or {}
    if any(train.get(k, _TRAIN_DEFAULTS.get(k)) != v for k, v in want["train"].items()):
        return False
    if "teacher" in want:
        got = meta.get("targets") or {}
        if (got.get("teacher_sha256"), got.get("teacher_tta")) != want["teacher"]:
            return False
    stages = tuple((meta.get("distill") or {}).get("stages") or ())
    unl = (meta.get("unlabelled") or {}).get("split")
    soft = bool((meta.get("unlabelled") or {}).get("soft", False))
    vel = bool((meta.get("unlabelled") or {}).get("velocity", False))
    rot = bool((meta.get("unlabelled") or {}).get("rotation", True))
    flags = (soft, vel) if len(want["soft"]) == 2 else (soft, vel, rot)
    if (
        "threshold" in want
        and abs(float((meta.get("unlabelled") or {}).get("threshold", 0.3)) - want["threshold"]) > 1e-9
    ):
        return False
    if "weight" in want and abs(float((meta.get("unlabelled") or {}).get("weight", 1.0)) - want["weight"]) > 1e-9:
        return False
    return stages == tuple(want["stages"]) and unl == want["unlabelled"] and flags == tuple(want["soft"])


def _train_config(plan: StudyPlan, split: str, steps: int, seed: int, augment: bool = False) -> Any:
    """The TrainConfig of a study checkpoint: the step budget rules (``max_steps`` ends the run and sizes the
    one-cycle schedule)."""
    from imkd_ros.training.train import TrainConfig

    return TrainConfig(epochs=10**6, batch_size=plan.batch_size, lr=plan.lr, seed=seed, val_every=0,
                       version=plan.version, train_split=split, val_split=plan.val_split, max_steps=steps,
                       augment=augment, precision=plan.precision)  # fmt: skip


def _want(
    cfg: Any, stages: Sequence[str], unl: str | None, soft: tuple[bool, ...] = (False, False), model: Any = None
) -> dict[str, Any]:
    """What :func:`_matches` compares a checkpoint's meta with (``model``: its ModelConfig, when given)."""
    keys = ("batch_size", "lr", "seed", "train_split", "max_steps", "augment", "precision")
    want = {"train": {k: getattr(cfg, k) for k in keys}, "stages": tuple(stages), "unlabelled": unl, "soft": soft}
    return want if model is None else {**want, "model": model.to_dict()}


def _teacher_job(plan: StudyPlan, labelled: str) -> tuple[Path, dict[str, Any]] | None:
    """``<out>/teacher.pt`` and the keyword arguments of its training call when it is missing or trained with other
    settings (the plan's steps and augmentation on the labelled drives); None when it is there."""
    from imkd_ros.training.train import model_config_for

    teacher = plan.out / "teacher.pt"
    t_cfg = _train_config(plan, labelled, plan.teacher_steps, 0, plan.teacher_augment)
    model = model_config_for("lidar", plan.size, plan.grid)
    if _matches(_meta(teacher), _want(t_cfg, (), None, (False, False), model)):
        return None
    kwargs = {"model_cfg": model, "cfg": t_cfg, "command": "imkd ablate (teacher)"}
    return teacher, kwargs


def _row_job(plan: StudyPlan, row: StudyRow, seed: int, labelled: str, unlabelled: str, teacher_id: Any) -> Any:
    """The keyword arguments of the training call of ``row`` x ``seed``, or None when its checkpoint is there with
    the row's settings (and, for rows that learn from targets, ``teacher_id``: the cache's teacher sha256 and TTA)."""
    from imkd_ros.distill.pseudo import PseudoLabelConfig
    from imkd_ros.training.train import model_config_for

    split = plan.source if row.unlabelled == "labels" else labelled
    cfg = _train_config(plan, split, plan.steps, seed)
    unl = unlabelled if row.unlabelled == "pseudo" else None
    model = model_config_for("fusion", plan.size, plan.grid, plan.image_size)
    want = _want(cfg, row.stages, unl, (row.soft, row.velocity, row.rotation), model)
    if unl:
        want["threshold"] = row.threshold
        want["weight"] = row.weight
    uses_targets = bool(row.stages or unl)
    if uses_targets:
        want["teacher"] = teacher_id
    if _matches(_meta(plan.checkpoint(row.key, seed)), want):
        return None
    return {
        "model_cfg": model,
        "cfg": cfg,
        "command": f"imkd ablate (row {row.key}, seed {seed})",
        "distill": DistillConfig(stages=row.stages) if uses_targets else None,
        "targets": plan.out / "targets" if uses_targets else None,
        "unlabelled": PseudoLabelConfig(
            unl, row.threshold, row.weight, soft=row.soft, velocity=row.velocity, rotation=row.rotation
        )
        if unl
        else None,
    }


def _train_one(train_fn: Callable[..., Any], data: Path, out: Path, kwargs: dict[str, Any], device: str,
               progress: bool, threads: int | None) -> Path:  # fmt: skip
    """One training call (also the body of a worker process of ``--jobs``: ``threads`` set; its stderr, the epoch
    lines, then goes to ``<out stem>_train.log`` beside the checkpoint instead of interleaving with the others')."""
    kw = dict(kwargs)
    if not threads:
        train_fn(data, out, kw.pop("model_cfg"), kw.pop("cfg"), resume=True, device=device, progress=progress, **kw)
        return out
    import contextlib

    import torch

    torch.set_num_threads(threads)
    _exit_with_parent()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.stem + "_train.log"), "a") as log, contextlib.redirect_stderr(log):
        train_fn(data, out, kw.pop("model_cfg"), kw.pop("cfg"), resume=True, device=device, progress=progress, **kw)
    return out


def _exit_with_parent(period: float = 2.0) -> None:
    """Make this worker process exit when the study process that started it is gone (killed: a pool worker would
    otherwise train on alone, holding a core)."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period)
        os._exit(1)

    if not any(t.name == "imkd-parent-watch" for t in threading.enumerate()):
        threading.Thread(target=watch, name="imkd-parent-watch", daemon=True).start()


def _finished(out: Path, future: Any) -> str:
    """The line the study prints when a worker's run ends."""
    if future.cancelled():
        return f"ablate: {out.name} cancelled"
    if future.exception() is not None:
        return f"ablate: {out.name} failed: {future.exception()!r} (see {out.stem}_train.log)"
    seconds = (_meta(out) or {}).get("seconds")
    return f"ablate: {out.name} done" + (f" in {seconds / 60:.1f} min" if seconds else "")


class _Jobs:
    """Training calls run one after another in this process (``jobs == 1``), or ``jobs`` at a time in worker
    processes of one torch thread each (``jobs > 1``; ``train_fn`` must then be importable, as :func:`train` is)."""

    def __init__(self, plan: StudyPlan, train_fn: Callable[..., Any], progress: bool) -> None:
        self.plan, self.train_fn, self.progress = plan, train_fn, progress
        self.pool = None
        if plan.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(plan.jobs, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, out: Path, kwargs: dict[str, Any], what: str) -> Any:
        from concurrent.futures import Future

        if self.progress:
            print(f"ablate: training {out.name} ({what})", file=sys.stderr)
        if self.pool is not None:
            future = self.pool.submit(_train_one, self.train_fn, self.plan.data, out, kwargs, self.plan.device,
                                      False, 1)  # fmt: skip
            if self.progress:
                future.add_done_callback(lambda f: print(_finished(out, f), file=sys.stderr))
            return future
        done: Future = Future()
        done.set_result(_train_one(self.train_fn, self.plan.data, out, kwargs, self.plan.device, self.progress, None))
        return done

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker (so that it takes a worker's share of the cores) or here."""
        return self.pool.submit(fn, *args, **kwargs).result() if self.pool is not None else fn(*args, **kwargs)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _targets_current(targets: Path, teacher: Path, tta: bool) -> bool:
    """Whether ``targets`` holds a cache of ``teacher`` (its sha256) gathered with ``tta``."""
    from imkd_ros.distill.cache import TargetCache, TargetCacheError, file_sha256

    try:
        header = TargetCache(targets).header.teacher
    except (OSError, ValueError, KeyError, TargetCacheError):  # missing or unreadable: rebuilt
        return False
    return header.get("sha256") == file_sha256(teacher) and bool(header.get("tta")) == bool(tta)


def run_study(plan: StudyPlan, *, progress: bool = True, train_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Make the label-scarce splits, then train what is missing: the teacher on the labelled drives, its targets on
    every training drive, and every row x seed of ``plan`` (module docstring). Rows that learn from no targets are
    trained while the teacher is (``plan.jobs`` at a time). Returns ``{"teacher": path, "targets": path, "rows":
    {key: [checkpoints]}, "seconds": {name: training seconds}}``."""
    from imkd_ros.data.splits import add_label_scarce_splits, label_scarce_split_names
    from imkd_ros.distill.cache import TargetCache
    from imkd_ros.distill.targets import build_target_cache
    from imkd_ros.training.train import train

    rows = [_row(k) for k in plan.rows]
    plan.out.mkdir(parents=True, exist_ok=True)
    add_label_scarce_splits(plan.data, plan.fraction, source=plan.source, version=plan.version)
    labelled, unlabelled = label_scarce_split_names(plan.fraction)
    teacher, targets = plan.out / "teacher.pt", plan.out / "targets"
    jobs = _Jobs(plan, train_fn or train, progress)
    try:
        pending = []
        job = _teacher_job(plan, labelled)
        teacher_done = jobs.submit(teacher, job[1], "teacher on the labelled drives") if job is not None else None
        later = [(r, s) for r in rows for s in plan.seeds_of(r.key) if r.stages or r.unlabelled == "pseudo"]
        for row, seed in ((r, s) for r in rows for s in plan.seeds_of(r.key) if (r, s) not in later):
            kwargs = _row_job(plan, row, seed, labelled, unlabelled, None)
            if kwargs is not None:
                pending.append(jobs.submit(plan.checkpoint(row.key, seed), kwargs, row.label))
        if teacher_done is not None:
            teacher_done.result()  # the independent rows go on meanwhile
        fresh = not _targets_current(targets, teacher, plan.tta)  # else only its missing shards are written
        jobs.call(build_target_cache, plan.data, teacher, targets, split=f"{labelled},{unlabelled}",
                  version=plan.version, device=plan.device, overwrite=fresh, debug_pngs=0, tta=plan.tta)  # fmt: skip
        header = TargetCache(targets).header.teacher
        teacher_id = (header.get("sha256"), header.get("tta"))
        for row, seed in later:
            kwargs = _row_job(plan, row, seed, labelled, unlabelled, teacher_id)
            if kwargs is not None:
                pending.append(jobs.submit(plan.checkpoint(row.key, seed), kwargs, row.label))
        for f in pending:
            f.result()
    finally:
        jobs.close()
    out: dict[str, Any] = {"teacher": teacher, "targets": targets, "rows": {}, "seconds": {}}
    out["seconds"]["teacher"] = (_meta(teacher) or {}).get("seconds")
    for row in rows:
        out["rows"][row.key] = [plan.checkpoint(row.key, s) for s in plan.seeds_of(row.key)]
        for ckpt in out["rows"][row.key]:
            out["seconds"][ckpt.stem] = (_meta(ckpt) or {}).get("seconds")
    return out


# -- scoring ------------------------------------------------------------------------------------------------------
def _detections(
    checkpoints: Sequence[Path], val_data: Path, version: str, split: str, eval_dir: Path, batch_size: int
) -> list[Path]:
    """``results.json`` of every checkpoint on the split, computed for those whose cached file is missing or from
    another checkpoint / split (students in one pass over the frames, teachers in another)."""
    from imkd_ros.distill.cache import file_sha256
    from imkd_ros.evaluation.compare import results_meta, run_detectors
    from imkd_ros.evaluation.evaluate import write_results
    from imkd_ros.inference.detector import Detector

    paths, todo = [], []
    for ckpt in checkpoints:
        key = {"checkpoint_sha256": file_sha256(ckpt), "data": str(val_data), "version": version, "split": split}
        res = eval_dir / ckpt.stem / "results.json"
        stamp = res.with_name("results.key.json")
        if not (res.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == key):
            todo.append((Detector.from_checkpoint(ckpt), res, stamp, key))
        paths.append(res)
    for teachers in (False, True):
        group = [t for t in todo if t[0].is_teacher == teachers]
        if not group:
            continue
        results, _ = run_detectors(val_data, version, split, [t[0] for t in group], batch_size)
        for (det, res, stamp, key), r in zip(group, results, strict=True):
            write_results(res, r, results_meta(det))
            atomic_write_text(stamp, json.dumps(key) + "\n")
    return paths


def _row_entry(
    k: str,
    p: np.ndarray,
    idx: Mapping[str, list[int]],
    names: Sequence[tuple[str, Path]],
    diff: np.ndarray,
    gap_boot: np.ndarray | None,
) -> dict[str, Any]:
    """One row of a region's table: seed mean, std and values of the headline metrics ``p`` (models x 7), the
    difference to no KD with its bootstrap CI (``diff``: replicates x 7) and the gap closed."""
    from imkd_ros.evaluation.metrics_fast import HEADLINE_KEYS

    vals = p[idx[k]]
    mean = vals.mean(axis=0)
    std = vals.std(axis=0, ddof=1) if len(vals) > 1 else np.full(len(HEADLINE_KEYS), np.nan)
    lo, hi = np.nanpercentile(diff, [2.5, 97.5], axis=0)
    entry: dict[str, Any] = {
        "key": k,
        "label": "LiDAR teacher (reference)" if k == "teacher" else _row(k).label,
        "seeds": len(vals),
        "checkpoints": [str(names[i][1]) for i in idx[k]],
        "mean": dict(zip(HEADLINE_KEYS, map(float, mean), strict=True)),
        "std": dict(zip(HEADLINE_KEYS, map(float, std), strict=True)),
        "per_seed": [dict(zip(HEADLINE_KEYS, map(float, v), strict=True)) for v in vals],
        "delta": {
            h: {
                "value": float(mean[j] - p[idx["nokd"]].mean(axis=0)[j]),
                "lo": float(lo[j]),
                "hi": float(hi[j]),
            }  # fmt: skip
            for j, h in enumerate(HEADLINE_KEYS)
        },
    }
    if gap_boot is not None and k not in ("nokd", "teacher"):
        gap = float(p[idx["teacher"]].mean(axis=0)[0] - p[idx["nokd"]].mean(axis=0)[0])
        closed = diff[:, 0] / gap_boot
        glo, ghi = np.nanpercentile(closed, [2.5, 97.5])
        entry["gap_closed"] = {"value": entry["delta"]["nds"]["value"] / gap if gap else math.nan,
                               "lo": float(glo), "hi": float(ghi)}  # fmt: skip
    return entry


def _region_rows(
    p: np.ndarray,
    boot: np.ndarray,
    keys: Sequence[str],
    idx: Mapping[str, list[int]],
    names: Sequence[tuple[str, Path]],
) -> list[dict[str, Any]]:
    """The rows of one region's table from every model's headline metrics ``p`` (models x 7) and their bootstrap
    replicates ``boot`` (replicates x models x 7): each row's seed mean, its difference to ``nokd`` and the gap to
    the teacher (when ``keys`` holds it) are taken replicate by replicate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        row_boot = {k: np.nanmean(boot[:, idx[k], :], axis=1) for k in keys}  # (B, 7) seed means
        ref = row_boot["nokd"]
        gap_boot = row_boot["teacher"][:, 0] - ref[:, 0] if "teacher" in row_boot else None
        return [_row_entry(k, p, idx, names, row_boot[k] - ref, gap_boot) for k in keys]


def score_study(
    rows: Mapping[str, Sequence[Path]],
    teacher: Path | None,
    val_data: str | Path,
    out: str | Path,
    *,
    split: str = "synth_all",
    version: str = "v1.0-synth",
    bootstrap: int = 2000,
    seed: int = 0,
    batch_size: int = 4,
    seconds: Mapping[str, float | None] | None = None,
    commands: Mapping[str, str] | None = None,
    shipped: str = "imkd-sv",
) -> dict[str, Any]:
    """Score the rows' checkpoints (and the teacher) on ``split`` of ``val_data`` and write the table (module
    docstring). ``rows`` maps a row key to its seeds' checkpoints; ``nokd`` must be among them (the reference).
    ``shipped``: the row whose goals (Done-when of the study) are checked."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.evaluation.compare import bootstrap_headlines, scene_draws, score_regions
    from imkd_ros.evaluation.coverage import dataset_coverage
    from imkd_ros.evaluation.eval_detector import headline, model_region
    from imkd_ros.evaluation.metrics_fast import HEADLINE_KEYS
    from imkd_ros.model.checkpoint import load_checkpoint

    if "nokd" not in rows or not rows["nokd"]:
        raise InputError("the study needs the nokd row (the reference)")
    val_data, out = Path(val_data), Path(out)
    names: list[tuple[str, Path]] = [(k, Path(c)) for k, cs in rows.items() for c in cs]
    if teacher is not None:
        names.append(("teacher", Path(teacher)))
    results = _detections([c for _, c in names], val_data, version, split, out / "eval", batch_size)
    student_cfg = load_checkpoint(rows["nokd"][0]).config
    reader = NuScenesReader(val_data, version, load_lidar=False)
    tokens = reader.split_samples(split)
    scene_of = {t: reader.scene_of(t) for t in tokens}
    areas = {"coverage": dataset_coverage(student_cfg, reader, tokens[0]), "grid": model_region(student_cfg)}
    point = {r: [] for r in areas}
    tables = {r: [] for r in areas}
    for (_, ckpt), res in zip(names, results, strict=True):
        for rname, (summary, table) in score_regions(val_data, version, split, res, areas, ckpt.stem).items():
            point[rname].append([headline(summary)[k] for k in HEADLINE_KEYS])
            tables[rname].append(table)
    scenes = sorted(set(scene_of.values()))
    draws = scene_draws(len(scenes), bootstrap, seed)
    keys = list(rows) + (["teacher"] if teacher is not None else [])
    idx = {k: [i for i, (n, _) in enumerate(names) if n == k] for k in keys}
    regions: dict[str, Any] = {}
    for rname in areas:
        boot = bootstrap_headlines(tables[rname], scene_of, scenes, draws)  # (B, M, 7)
        out_rows = _region_rows(np.array(point[rname]), boot, keys, idx, names)
        regions[rname] = {"area": areas[rname].to_dict(), "rows": out_rows}
    report = {
        "val": {
            "data": str(val_data),
            "version": version,
            "split": split,
            "samples": len(tokens),
            "scenes": len(scenes),
        },  # fmt: skip
        "bootstrap": {
            "replicates": bootstrap,
            "seed": seed,
            "confidence": 0.95,
            "method": "paired percentile bootstrap over scenes of the rows' seed means",
        },  # fmt: skip
        "seconds": dict(seconds or {}),
        "commands": dict(commands or {}),
        "regions": regions,
    }
    report["goals"] = _goals(report, shipped)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablation.json", json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "ablation.md", _markdown(report))
    _plot(out / "ablation.png", report)
    return report


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _goals(report: dict[str, Any], shipped: str) -> dict[str, Any]:
    """The Done-when of the study on the coverage region: the shipped recipe's row vs ``nokd``."""
    rows = {r["key"]: r for r in report["regions"]["coverage"]["rows"]}
    if shipped not in rows:
        return {}
    imkd, nokd = rows[shipped], rows["nokd"]
    d = imkd["delta"]["nds"]
    gap = imkd.get("gap_closed", {}).get("value", math.nan)
    return {
        "row": shipped,
        "delta_nds": d["value"],
        "delta_nds_ci": [d["lo"], d["hi"]],
        "delta_nds_at_least_0.05_with_ci_above_0": bool(d["value"] >= 0.05 and d["lo"] > 0),
        "gap_closed": gap,
        "gap_closed_at_least_half": bool(gap >= 0.5),
        "mave_not_worse": bool(imkd["mean"]["vel_err"] <= nokd["mean"]["vel_err"]),
    }


def _cell(row: dict[str, Any], k: str) -> str:
    m, s = row["mean"][k], row["std"][k]
    return f"{m:.4f}" if not math.isfinite(s) else f"{m:.4f} ± {s:.4f}"


def _markdown(report: dict[str, Any]) -> str:
    v, b = report["val"], report["bootstrap"]
    lines = [
        "# IMKD distillation study (label-scarce)",
        "",
        f"Scored on `{v['data']}` split `{v['split']}` ({v['samples']} keyframes, {v['scenes']} scenes never trained "
        f"on) with the official nuscenes-devkit. Values: mean ± std over seeds. Δ: row mean minus the no-KD mean, "
        f"[{b['confidence']:.0%} CI] from a {b['method']} ({b['replicates']} replicates). Gap closed: "
        "(row - no KD) / (teacher - no KD) in NDS. Module: `imkd_ros/apps/ablate.py`.",
    ]
    for rname, reg in report["regions"].items():
        head = [t for _, t in METRIC_COLUMNS] + ["ΔNDS [95 % CI]", "ΔmAVE [95 % CI]", "gap closed [95 % CI]"]
        lines += ["", f"## Region `{rname}`" + (" (headline)" if rname == "coverage" else ""), ""]
        lines += ["| row | seeds | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
        for r in reg["rows"]:
            d, dv = r["delta"]["nds"], r["delta"]["vel_err"]
            g = r.get("gap_closed")
            cells = [_cell(r, k) for k, _ in METRIC_COLUMNS]
            cells.append("-" if r["key"] == "nokd" else f"{d['value']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]")
            cells.append("-" if r["key"] == "nokd" else f"{dv['value']:+.4f} [{dv['lo']:+.4f}, {dv['hi']:+.4f}]")
            cells.append("-" if g is None else f"{g['value']:.2f} [{g['lo']:.2f}, {g['hi']:.2f}]")
            lines.append(f"| {r['label']} (`{r['key']}`) | {r['seeds']} | " + " | ".join(cells) + " |")
    if report.get("goals"):
        goal = f"## Goals (coverage region, `{report['goals'].get('row')}` vs `nokd`)"
        lines += ["", goal, "", "```", json.dumps(report["goals"]), "```"]
    if report.get("seconds"):
        lines += ["", "## Training time per checkpoint (s, 1 thread)", ""]
        lines += [f"- `{k}`: {v:.0f}" if v else f"- `{k}`: n/a" for k, v in report["seconds"].items()]
    if report.get("commands"):
        lines += ["", "## Commands", ""] + [f"- {k}: `{c}`" for k, c in report["commands"].items()]
    return "\n".join(lines) + "\n"


def _plot(path: Path, report: dict[str, Any]) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    regs = list(report["regions"].items())
    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, len(regs), squeeze=False)
    for ax, (rname, reg) in zip(axes[0], regs, strict=True):
        rows = [r for r in reg["rows"] if r["key"] != "nokd"]
        x = np.arange(len(rows))
        val = np.array([r["delta"]["nds"]["value"] for r in rows])
        err = np.array([[r["delta"]["nds"]["value"] - r["delta"]["nds"]["lo"] for r in rows],
                        [r["delta"]["nds"]["hi"] - r["delta"]["nds"]["value"] for r in rows]])  # fmt: skip
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axhline(0.05, color="tab:green", lw=0.8, ls="--")
        ax.errorbar(x, val, yerr=np.clip(np.nan_to_num(err), 0.0, None), fmt="o", capsize=4)
        ax.set_xticks(x, [r["key"] for r in rows], rotation=20, ha="right")
        ax.set_title(f"{rname}")
        ax.set_ylabel("ΔNDS vs no KD (95 % CI)")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
