"""Teacher and student training: one straight-line loop, torchrun-ready.

``imkd train teacher|student --data DIR --out CKPT [--variant fusion|camera|radar] [--epochs N] [--seed S]
[--resume] [--targets CACHE [--kd stage1,stage2,stage3] [--kd-config YAML]]``
or, data parallel over processes, ``torchrun --nproc_per_node 2 -m imkd_ros.training.train teacher ...``
(gloo on CPU, NCCL on GPU; each rank sees its share of every epoch through a ``DistributedSampler``; rank 0 logs,
validates and writes files).

Data flow: the reader's Frames of the training split are read once and kept in memory, shrunk to what the model needs
(:func:`~imkd_ros.model.preprocess.shrink_frame`: the image resized/cropped to the model input with its intrinsics
adjusted, LiDAR cut to the BEV grid area), then batched by :func:`imkd_ros.data.dataset.collate_frames` every step.

Distillation (students): ``--targets CACHE`` (a teacher-target cache of ``imkd teacher-targets``) adds the IMKD
losses of :mod:`imkd_ros.distill` for the stages named by ``--kd`` (default: all three; ``none``: plain training),
weighted as in :class:`~imkd_ros.distill.config.DistillConfig` (``--kd-config`` YAML overrides its fields). The cache
is read into memory once; the teacher never runs in this loop. The training-only adapters
(:class:`~imkd_ros.distill.adapters.DistillHeads`) are saved in ``CKPT.train.pt`` only; ``CKPT`` holds the student
alone, with the distillation config and the cache's teacher hash in its meta.

Unlabelled drives (students): ``--unlabelled-split S [--pseudo-label-threshold T] [--pseudo-label-weight W]`` adds
the frames of split S, whose teacher targets must be in the cache(s) (``--targets`` may be repeated, e.g. the
labelled split's cache and one built from the drives' bags). They join the labelled frames in one shuffled pool;
labelled frames learn from their labels, unlabelled ones from the teacher's boxes with score >= T (velocity masked),
both from the distillation losses: :mod:`imkd_ros.distill.pseudo` documents the mixing and the per-frame loss
masking. The log gains ``pl_*`` (pseudo-label losses), ``frames_labelled``, ``frames_unlabelled`` and
``pseudo_boxes`` (rank 0's counts per epoch); the checkpoint meta records ``unlabelled`` (split, threshold, weight,
frames).

Files written next to ``--out CKPT``: the checkpoint (weights + model config + meta, see
:mod:`imkd_ros.model.checkpoint`), ``CKPT.train.pt`` (the same plus optimizer/scheduler/epoch, for ``--resume``),
``<stem>_log.json`` and ``<stem>_log.csv`` (per-epoch losses and validation metrics), ``<stem>_loss.png``, and
``<stem>_val/`` (the last validation's devkit output).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from imkd_ros.core.errors import InputError
from imkd_ros.core.types import Frame
from imkd_ros.data.augment import GlobalAugment, augment_lidar_batch
from imkd_ros.data.check import SkippedFrame, add_skip_bad_frames_argument, read_frames, usable_samples
from imkd_ros.data.dataset import collate_frames
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetBank
from imkd_ros.distill.cache import FORMAT_VERSION as TARGETS_FORMAT_VERSION
from imkd_ros.distill.cache import TargetCache
from imkd_ros.distill.config import DistillConfig, parse_stages
from imkd_ros.distill.errors import DistillConfigError
from imkd_ros.distill.pseudo import PseudoLabelConfig, SemiSupervisedStudent, pseudo_labels
from imkd_ros.inference.detector import Detector, model_inputs
from imkd_ros.model import ModelConfig, Student, Teacher
from imkd_ros.model.checkpoint import load_checkpoint, save_checkpoint
from imkd_ros.model.precision import PRECISIONS, training_autocast
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.training.streaming import StreamedFrames, frame_scenes, frame_tokens

__all__ = [
    "TrainConfig",
    "TrainResult",
    "VARIANTS",
    "model_config_for",
    "parse_image_size",
    "train",
    "step_losses",
    "distill_config_from_args",
    "pseudo_config_from_args",
    "main",
]

#: ``--variant`` -> the modalities of the model it trains.
VARIANTS: dict[str, tuple[str, ...]] = {
    "fusion": ("camera", "radar"),
    "camera": ("camera",),
    "radar": ("radar",),
    "lidar": ("lidar",),
}

#: BEV grids of :func:`model_config_for`: name -> ``(x_range, y_range)`` in metres (ego frame).
GRIDS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "front": ((0.0, 51.2), (-25.6, 25.6)),
    "surround": ((-51.2, 51.2), (-51.2, 51.2)),
}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the model's own settings live in :class:`ModelConfig`).

    Attributes:
        epochs: passes over the training split.
        batch_size: frames per step per process.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm.
        seed: seeds python, numpy and torch (model init and data order).
        val_every: validate every this many epochs (0: only after the last).
        version, train_split, val_split: dataset version and split names.
        max_steps: stop after this many optimiser steps (tests); None: run all epochs.
        radar_sweeps: radar sweeps accumulated per frame.
        augment: move each teacher frame and its boxes by a random mirror/rotation/scale before the step
            (:mod:`imkd_ros.data.augment`); teachers only.
        stream: read training (and unlabelled) frames from disk as batches need them instead of keeping them in
            memory (:mod:`imkd_ros.training.streaming`); the same batches either way.
        workers: DataLoader worker processes reading ahead (0: the training process reads).
        frame_cache: with ``stream``, a folder keeping each shrunk frame after its first read
            (:mod:`imkd_ros.training.frame_cache`); None: every read decodes the dataset's files.
        precision: ``fp32``, or ``bf16``: the forward pass under bfloat16 autocast, losses, weights and optimiser
            in float32 (:mod:`imkd_ros.model.precision`); about 1.6-1.7x faster steps on CPUs with AMX/AVX512-BF16
            (``imkd bench --only train``).
    """

    epochs: int = 20
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-2
    grad_clip: float = 10.0
    seed: int = 0
    val_every: int = 0
    version: str = "v1.0-synth"
    train_split: str = "synth_train"
    val_split: str = "synth_val"
    max_steps: int | None = None
    radar_sweeps: int = 6
    augment: bool = False
    stream: bool = False
    workers: int = 0
    precision: str = "fp32"
    frame_cache: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"TrainConfig.precision: {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.frame_cache is not None and not self.stream:
            raise InputError("TrainConfig.frame_cache (--frame-cache) needs stream (--stream)")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced (rank 0's view)."""

    checkpoint: Path
    epochs: int
    steps: int
    losses: list[float]
    metrics: dict[str, float]
    seconds: float
    model: nn.Module | None = field(default=None, repr=False, compare=False)


def model_config_for(
    variant: str, size: str = "default", grid: str = "front", image_size: tuple[int, int] | None = None
) -> ModelConfig:
    """The model config of a ``--variant`` at ``size`` ``"default"``, ``"tiny"`` or ``"paper"`` (ResNet-50, 704x256:
    :meth:`ModelConfig.paper`; with ``--grid surround`` the paper's +-51.2 m BEV) on the BEV ``grid`` of
    :data:`GRIDS` (``"front"``: ahead of the ego, for a front rig; ``"surround"``: all around it, for a 360-degree
    rig; the cell size is the size's). ``image_size`` ``(width, height)`` replaces the size's camera input (e.g.
    ``(352, 128)``, Lift-Splat-Shoot's, for six cameras on a CPU)."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}: choose from {', '.join(VARIANTS)}")
    if size not in ("default", "tiny", "paper"):
        raise InputError(f"unknown model size {size!r}: choose default, tiny or paper")
    if grid not in GRIDS:
        raise InputError(f"unknown BEV grid {grid!r}: choose from {', '.join(GRIDS)}")
    cfg = getattr(ModelConfig, size)(VARIANTS[variant])
    x_range, y_range = GRIDS[grid]
    cfg = replace(cfg, grid=replace(cfg.grid, x_range=x_range, y_range=y_range))
    return cfg if image_size is None else replace(cfg, image=replace(cfg.image, input_size=tuple(image_size)))


def parse_image_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (``--image-size``) -> ``(width, height)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--image-size {text!r}: expected WIDTHxHEIGHT, e.g. 352x128") from None
    return w, h


# -- distributed helpers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(device=torch.device(device))
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return _Dist(rank, world, torch.device("cuda", local))
    dist.init_process_group("gloo")
    return _Dist(rank, world, torch.device("cpu"))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- the loop -----------------------------------------------------------------------------------------------------


@dataclass
class _SplitReader:
    """How a run reads its splits: the reader, the model the frames are shrunk for, progress bars, the bad-frame
    policy (frames left out are collected in :attr:`skipped`) and, with ``stream`` (the reader's keyword
    arguments), :class:`StreamedFrames` read on use instead of frames in memory."""

    reader: NuScenesReader
    config: ModelConfig
    progress: bool
    skip_bad: bool
    stream: dict[str, Any] | None = None
    cache: str | None = None
    skipped: list[SkippedFrame] = field(default_factory=list)

    def frames(self, split: str, what: str) -> Sequence[Frame] | StreamedFrames:
        """The split's frames shrunk to the model; every file they read is checked first
        (:mod:`imkd_ros.data.check`): bad files raise one error naming them, or with ``skip_bad`` their frames are
        left out and added to :attr:`skipped`."""
        from tqdm import tqdm

        reader, where = self.reader, f"split {split} of {self.reader.dataroot}"
        tokens = reader.split_samples(split)
        if not tokens:
            raise InputError(f"split {split!r} of {reader.dataroot} has no samples")
        if self.stream is not None:
            good, bad = usable_samples(reader, tokens, skip_bad=self.skip_bad, what=where)
            frames: Sequence[Frame] | StreamedFrames = StreamedFrames(
                self.stream, good, self.config, [reader.scene_of(t) for t in good], self.cache
            )
        else:
            bar = {"desc": f"reading {what}", "unit": "frame", "disable": not self.progress, "leave": False}
            frames, bad = read_frames(reader, tokens, skip_bad=self.skip_bad, what=where,
                                      transform=lambda f: shrink_frame(f, self.config),
                                      progress=lambda toks: tqdm(toks, **bar))  # fmt: skip
        for b in bad:
            print(f"skipped frame {b.sample} ({b.scene}) of split {split}: {b.reason}", file=sys.stderr)
        self.skipped.extend(bad)
        if not frames:
            raise InputError(f"split {split!r} of {reader.dataroot}: every one of its {len(tokens)} frames was skipped")
        return frames


def _check_unlabelled(
    unlabelled: PseudoLabelConfig, is_teacher: bool, cache_paths: Sequence[str | Path], train_split: str
) -> None:
    """Fail early (before reading frames) on unlabelled frames that cannot be learnt from."""
    if is_teacher:
        raise DistillConfigError("unlabelled frames (--unlabelled-split) train students; the teacher uses labels")
    if not cache_paths:
        raise DistillConfigError(
            f"--unlabelled-split {unlabelled.split} needs the teacher-target cache(s) holding its samples (--targets): "
            "their pseudo-labels and distillation targets come from the teacher"
        )
    if unlabelled.split == train_split:
        raise DistillConfigError(f"--unlabelled-split {unlabelled.split} is the training split")
    for path in cache_paths:
        floor = TargetCache(path).header.min_box_score
        if unlabelled.threshold < floor:
            raise DistillConfigError(
                f"--pseudo-label-threshold {unlabelled.threshold} is below the scores {path} kept (the teacher's "
                f"decoding threshold {floor}); use a threshold >= {floor}"
            )


def _read_unlabelled(
    splits: _SplitReader, unlabelled: PseudoLabelConfig, train_frames: Sequence[Frame] | StreamedFrames
) -> Sequence[Frame] | StreamedFrames:
    """The frames of the unlabelled split (none when the split lists no scene); their annotations, if any, are
    never used."""
    reader = splits.reader
    tokens = reader.split_samples(unlabelled.split)
    shared = set(tokens) & set(frame_tokens(train_frames))
    if shared:
        raise DistillConfigError(
            f"--unlabelled-split {unlabelled.split} shares {len(shared)} samples with the training split (e.g. "
            f"{sorted(shared)[0]}); a frame is either labelled or not"
        )
    if not tokens:
        return []
    return splits.frames(unlabelled.split, "unlabelled")


def step_losses(
    model: nn.Module,
    batch: Any,
    core: Student | Teacher,
    bank: TargetBank | None = None,
    pseudo: tuple[list[bool], list[Any]] | None = None,
    precision: str = "fp32",
) -> Any:
    """The model's losses on ``batch``: ``bank`` gives the teacher targets (distillation), ``pseudo`` the per-frame
    unlabelled flags and the ground truth with those frames' pseudo-labels (runs with unlabelled frames). Only the
    model's call runs under ``precision``'s autocast (:func:`~imkd_ros.model.precision.training_autocast`): the
    targets are gathered (float16 in the cache) and cast to float32 outside it."""
    autocast = training_autocast(precision, batch.radar.device)
    if isinstance(core, Teacher):
        with autocast:
            return model(model_inputs(core, batch), gt=batch.gt)
    extra: dict[str, Any] = {} if bank is None else {"targets": bank.batch(batch.tokens, batch.radar.device)}
    gt = batch.gt
    if pseudo is not None:
        extra["pseudo"], gt = pseudo
    with autocast:
        return model(model_inputs(core, batch), gt=gt, lidar=batch.lidar, lidar_mask=batch.lidar_mask, **extra)


def _write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    stem = out.with_suffix("")
    Path(f"{stem}_log.json").write_text(json.dumps(history, indent=2) + "\n")
    keys = sorted({k for row in history for k in row})
    with open(f"{stem}_log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ep = [r["epoch"] for r in history]
    for key in ("loss", "heatmap", "depth", "det_total", "pl_total", "kd_total"):
        if any(key in r for r in history):
            ax.plot(ep, [r.get(key, math.nan) for r in history], marker="o", ms=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over epoch)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    vals = [(r["epoch"], r["val_nds"]) for r in history if "val_nds" in r]
    if vals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*vals, strict=True), color="k", marker="s", ms=4, label="val NDS")
        ax2.set_ylabel("val NDS")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper center", fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{stem}_loss.png")


@dataclass
class _Run:
    """Everything one training run holds between its steps (built by :func:`_setup`)."""

    out: Path
    data: str | Path
    config: TrainConfig
    dist: _Dist
    core: Student | Teacher
    trainable: nn.Module
    model: nn.Module  # trainable, wrapped for DDP when world > 1
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: Any
    loader: Any
    kd: DistillConfig | None
    unlabelled: PseudoLabelConfig | None
    bank: TargetBank | None
    heads: DistillHeads | None
    pseudo_of: dict[str, Any]
    val_frames: list[Frame]
    val_skipped: list[SkippedFrame]
    meta_base: dict[str, Any]
    t_start: float
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0

    @property
    def state_path(self) -> Path:
        return Path(f"{self.out}.train.pt")

    @property
    def step(self) -> int:
        return int(self.scheduler.last_epoch)


def _check_request(
    config: TrainConfig,
    is_teacher: bool,
    kd: DistillConfig | None,
    cache_paths: Sequence[str | Path],
    unlabelled: PseudoLabelConfig | None,
) -> None:
    """Fail before the (long) reading of the frames on settings that cannot train."""
    if kd is not None:
        if is_teacher:
            raise DistillConfigError("distillation trains students; the teacher is trained without --targets/--kd")
        if not cache_paths:
            raise DistillConfigError(
                f"distillation stages {', '.join(kd.stages)} need a teacher-target cache (--targets)"
            )
        for path in cache_paths:
            TargetCache(path)  # raises on a missing cache or another format version
    if unlabelled is not None:
        _check_unlabelled(unlabelled, is_teacher, cache_paths, config.train_split)
    if config.augment and not is_teacher:
        raise InputError(
            "--augment moves LiDAR frames and boxes (the teacher's training); a student's camera cannot follow it"
        )


def _one_thread(_worker: int) -> None:
    """A DataLoader worker reads and shrinks frames on one thread (the training process keeps the cores)."""
    torch.set_num_threads(1)


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, pool_size: int, world: int) -> Any:
    """The one-cycle schedule over the run's steps (``max_steps`` caps the epochs' steps)."""
    per_rank = math.ceil(pool_size / world)
    steps_per_epoch = max(1, math.ceil(per_rank / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=max(total_steps, 1),
        # OneCycleLR divides by (pct_start * total_steps - 1), which is 0 for 0.2 x 5 steps
        pct_start=0.2 if total_steps != 5 else 0.25,
        div_factor=10.0,
        final_div_factor=100.0,
    )


def _meta_base(
    data: str | Path,
    command: str | None,
    config: TrainConfig,
    dist: _Dist,
    train_frames: int,
    kd: DistillConfig | None,
    unlabelled: PseudoLabelConfig | None,
    unlabelled_frames: Sequence[Frame],
    pseudo_of: dict[str, Any],
    skipped: Sequence[SkippedFrame],
    bank: TargetBank | None,
    cache_paths: Sequence[str | Path],
) -> dict[str, Any]:
    """What every checkpoint of the run records about how it was trained."""
    meta_base = {
        "data": str(data),
        "command": command or " ".join(sys.argv),
        "train": asdict(config),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, torch {torch.__version__}, device {dist.device}",
        "world_size": dist.world,
        "train_frames": train_frames,
        "distill": None if kd is None else kd.to_dict(),
        "unlabelled": None
        if unlabelled is None
        else dict(
            unlabelled.to_dict(),
            frames=len(unlabelled_frames),
            scenes=len(set(frame_scenes(unlabelled_frames))),
            pseudo_boxes=sum(len(b) for b in pseudo_of.values()),
            mixing="one shuffled pool of labelled and unlabelled frames",
        ),
    }
    if skipped:
        meta_base["skipped_frames"] = [s.to_dict() for s in skipped]
    if bank is not None:
        meta_base["targets"] = {
            "path": str(cache_paths[0]) if len(cache_paths) == 1 else [str(p) for p in cache_paths],
            "format_version": TARGETS_FORMAT_VERSION,
            "teacher_sha256": bank.header.teacher.get("sha256"),
            "teacher_tta": bank.header.teacher.get("tta"),
        }
    return meta_base


def _build_model(
    model_config: ModelConfig,
    config: TrainConfig,
    device: torch.device,
    kd: DistillConfig | None,
    unlabelled: PseudoLabelConfig | None,
    cache_paths: Sequence[str | Path],
    pool: Sequence[Frame],
    unlabelled_frames: Sequence[Frame],
) -> tuple[Student | Teacher, nn.Module, TargetBank | None, DistillHeads | None, dict[str, Any]]:
    """The model being trained and what it trains with: ``(core, trainable, bank, heads, pseudo_of)``: the bare
    Student/Teacher, the module whose forward gives the losses (the core, or it wrapped with the distillation heads
    and/or the pseudo-labels), the teacher-target bank of ``pool``, the distillation heads and the pseudo-labels of
    each unlabelled frame."""
    core: Student | Teacher = Teacher(config=model_config) if model_config.is_teacher else Student(config=model_config)
    core.to(device)
    bank: TargetBank | None = None
    heads: DistillHeads | None = None
    trainable: nn.Module = core
    pseudo_of: dict[str, Any] = {}
    if kd is not None or unlabelled is not None:
        bank = TargetBank.from_caches(cache_paths, frame_tokens(pool))
    if kd is not None:
        assert bank is not None
        bank.check_student(model_config, kd)
        # The adapters draw from their own RNG stream: the student's init and the rest of the run stay identical to
        # those of a run without distillation (the ablation compares rows that differ only in the losses).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 7919)
            heads = DistillHeads(model_config.bev.channels, bank.feature_channels, kd).to(device)
        trainable = SemiSupervisedStudent(core, heads, kd)  # every frame labelled: detection + distillation
    if unlabelled is not None:
        assert bank is not None and isinstance(core, Student)
        pseudo_of = {
            f.token: pseudo_labels(
                bank.targets(f.token),
                unlabelled.threshold,
                f.radar if unlabelled.velocity else None,
                unlabelled.rotation,
            )
            for f in unlabelled_frames
        }
        trainable = SemiSupervisedStudent(core, heads, kd, unlabelled.weight, unlabelled.soft)
    return core, trainable, bank, heads, pseudo_of


def _setup(
    data: str | Path,
    out: Path,
    model_config: ModelConfig,
    config: TrainConfig,
    device: str,
    progress: bool,
    command: str | None,
    kd: DistillConfig | None,
    cache_paths: Sequence[str | Path],
    unlabelled: PseudoLabelConfig | None,
    skip_bad_frames: bool,
) -> _Run:
    """Read the frames, build the model (and its distillation heads, pseudo-labels), optimiser, schedule and loader."""
    dist = _init_distributed(device)
    _seed_everything(config.seed)
    t_start = time.perf_counter()
    is_teacher = model_config.is_teacher
    _check_request(config, is_teacher, kd, cache_paths, unlabelled)
    options = {
        "dataroot": data,
        "version": config.version,
        "radar_sweeps": config.radar_sweeps,
        "lidar_sweeps": model_config.lidar.sweeps if is_teacher else 1,
        "load_image": "camera" in model_config.modalities,
        "load_lidar": True,
    }
    reader = NuScenesReader(**options)
    show = progress and dist.main
    stream = options if config.stream else None
    splits = _SplitReader(reader, model_config, show, skip_bad_frames, stream, config.frame_cache)
    train_frames = splits.frames(config.train_split, "train")
    unlabelled_frames: Sequence[Frame] | StreamedFrames = []
    if unlabelled is not None:
        unlabelled_frames = _read_unlabelled(splits, unlabelled, train_frames)
    pool = train_frames + unlabelled_frames  # one shuffled pool of both kinds (imkd_ros.distill.pseudo)
    val_reader = _SplitReader(reader, model_config, show, skip_bad_frames)  # validation frames stay in memory
    val_frames = val_reader.frames(config.val_split, "val") if dist.main else []
    skipped, val_skipped = splits.skipped, val_reader.skipped

    core, trainable, bank, heads, pseudo_of = _build_model(
        model_config, config, dist.device, kd, unlabelled, cache_paths, pool, unlabelled_frames
    )
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _schedule(optimizer, config, len(pool), dist.world)

    model: nn.Module = trainable
    sampler: torch.utils.data.Sampler
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(trainable)
        sampler = torch.utils.data.DistributedSampler(pool, dist.world, dist.rank, shuffle=True, seed=config.seed)
    else:
        sampler = torch.utils.data.RandomSampler(pool, generator=torch.Generator().manual_seed(config.seed))
    loader = torch.utils.data.DataLoader(
        pool,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_frames,
        drop_last=False,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        worker_init_fn=_one_thread if config.workers > 0 else None,
    )

    meta_base = _meta_base(data, command, config, dist, len(train_frames), kd, unlabelled, unlabelled_frames,
                           pseudo_of, skipped + val_skipped, bank, cache_paths)  # fmt: skip
    return _Run(
        out, data, config, dist, core, trainable, model, optimizer, scheduler, sampler, loader, kd, unlabelled,
        bank, heads, pseudo_of, val_frames, val_skipped, meta_base, t_start,
    )  # fmt: skip


def _resume(run: _Run) -> None:
    """Load the run's training state (``<out>.train.pt``) if it exists: model, optimiser, schedule, heads, history
    and RNG; the distillation and unlabelled settings must be the saved ones."""
    if not run.state_path.is_file():
        return
    ck = load_checkpoint(run.state_path)
    kd, unlabelled = run.kd, run.unlabelled
    saved_kd = ck.training_state.get("distill")
    if saved_kd != (None if kd is None else kd.to_dict()):
        raise DistillConfigError(
            f"--resume: {run.state_path} was trained with distillation {saved_kd}, this run asks for "
            f"{None if kd is None else kd.to_dict()}"
        )
    saved_u = ck.training_state.get("unlabelled")
    if saved_u != (None if unlabelled is None else unlabelled.to_dict()):
        raise DistillConfigError(
            f"--resume: {run.state_path} was trained with unlabelled frames {saved_u}, this run asks for "
            f"{None if unlabelled is None else unlabelled.to_dict()}"
        )
    run.core.load_state_dict(ck.state_dict)
    run.optimizer.load_state_dict(ck.training_state["optimizer"])
    run.scheduler.load_state_dict(ck.training_state["scheduler"])
    run.start_epoch = int(ck.training_state["epoch"])
    if run.heads is not None:
        run.heads.load_state_dict(ck.training_state["distill_heads"])
    run.history = json.loads(ck.training_state["history"])
    torch.set_rng_state(ck.training_state["torch_rng"])
    if run.dist.main:
        print(f"resuming from {run.state_path} after epoch {run.start_epoch}", file=sys.stderr)


def _run_epoch(run: _Run, epoch: int, progress: bool) -> dict[str, Any]:
    """One pass over the pool (or up to ``max_steps``): the epoch's log row (mean losses, lr, frame counts)."""
    from tqdm import tqdm

    config, unlabelled = run.config, run.unlabelled
    if isinstance(run.sampler, torch.utils.data.DistributedSampler):
        run.sampler.set_epoch(epoch)
    # A fresh generator per epoch: data order depends only on (seed, epoch), which makes --resume exact.
    if isinstance(run.sampler, torch.utils.data.RandomSampler):
        run.sampler.generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    # augmentation draws depend only on (seed, epoch) too
    aug_rng = np.random.default_rng([config.seed, epoch, 104729]) if config.augment else None
    wants_bank = run.kd is not None or (unlabelled is not None and unlabelled.soft)
    run.model.train()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    seen = {"frames_labelled": 0, "frames_unlabelled": 0, "pseudo_boxes": 0}
    bar = tqdm(run.loader, desc=f"epoch {epoch}/{config.epochs}", unit="step",
               disable=not (progress and run.dist.main), leave=False)  # fmt: skip
    for batch in bar:
        if config.max_steps is not None and run.step >= config.max_steps:
            break
        batch = batch.to(run.dist.device)
        if aug_rng is not None:
            lidar, gt = augment_lidar_batch(batch.lidar, batch.gt, GlobalAugment(), aug_rng)
            batch = replace(batch, lidar=lidar, gt=gt)
        pseudo = None
        if unlabelled is not None:
            flags = [t in run.pseudo_of for t in batch.tokens]
            gt = [run.pseudo_of[t] if f else g for t, f, g in zip(batch.tokens, flags, batch.gt, strict=True)]
            pseudo = (flags, gt)
            seen["frames_unlabelled"] += sum(flags)
            seen["frames_labelled"] += len(flags) - sum(flags)
            seen["pseudo_boxes"] += sum(len(run.pseudo_of[t]) for t in batch.tokens if t in run.pseudo_of)
        losses = step_losses(run.model, batch, run.core, run.bank if wants_bank else None, pseudo, config.precision)
        run.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        nn.utils.clip_grad_norm_(run.trainable.parameters(), config.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        for k, v in losses.as_dict().items():  # a key missing from a step (no frame of its kind) is not a 0
            sums[k] = sums.get(k, 0.0) + float(v.detach())
            counts[k] = counts.get(k, 0) + 1
        bar.set_postfix(loss=f"{float(losses.total.detach()):.3f}")
    row: dict[str, Any] = {"epoch": epoch, "step": run.step, "lr": run.scheduler.get_last_lr()[0]}
    row.update({("loss" if k == "total" else k): s / counts[k] for k, s in sums.items()})
    if unlabelled is not None:
        row.update(seen)
    return row


def _validate(run: _Run, row: dict[str, Any]) -> dict[str, float]:
    """Score the model on the validation frames with the devkit (files beside the checkpoint); adds ``val_*`` to
    ``row`` and returns the headline metrics."""
    from imkd_ros.evaluation.eval_detector import evaluate_detector, headline

    res = evaluate_detector(
        Detector(run.core, run.dist.device),
        run.val_frames,
        f"{run.out.with_suffix('')}_val",
        dataroot=run.data,
        version=run.config.version,
        split=run.config.val_split,
        bev_pngs=2,
        skipped=run.val_skipped,
    )
    metrics = headline(res["summary"])
    row.update({f"val_{k}": v for k, v in metrics.items()})
    row["val_by_weather_nds"] = json.dumps({w: round(m["nds"], 4) for w, m in res["by_weather"].items()})
    run.core.train()
    return metrics


def _save_state(run: _Run, epoch: int, metrics: dict[str, float]) -> None:
    """``<out>.train.pt`` (everything --resume needs) and the logs, after an epoch."""
    meta = dict(run.meta_base, epochs_done=epoch, seconds=time.perf_counter() - run.t_start, metrics=metrics)
    training_state = {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "epoch": epoch,
        "history": json.dumps(run.history),
        "torch_rng": torch.get_rng_state(),
        "distill": None if run.kd is None else run.kd.to_dict(),
        "unlabelled": None if run.unlabelled is None else run.unlabelled.to_dict(),
    }
    if run.heads is not None:
        training_state["distill_heads"] = {k: v.detach().cpu().clone() for k, v in run.heads.state_dict().items()}
    save_checkpoint(run.state_path, run.core, run.core.config, meta, training_state)
    _write_logs(run.out, run.history)


def _finish_distributed(run: _Run) -> None:
    """DDP keeps parameters in sync every step and broadcasts buffers at each forward; the BatchNorm statistics of
    the last step are local, so hand rank 0's to everyone: replicas end identical."""
    import torch.distributed as tdist

    for buf in run.core.buffers():
        tdist.broadcast(buf, 0)


def train(
    data: str | Path,
    out: str | Path,
    model_config: ModelConfig,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
    distill: DistillConfig | None = None,
    targets: str | Path | Sequence[str | Path] | None = None,
    unlabelled: PseudoLabelConfig | None = None,
    skip_bad_frames: bool = False,
    on_epoch: Callable[[int], None] | None = None,
    imagenet_weights: str | Path | None = None,
) -> TrainResult:
    """Train ``model_config``'s model (Teacher when its modalities are ``("lidar",)``) on ``data``; see the module
    docstring for the files written. With ``distill`` (at least one stage) a student also learns from the teacher
    targets of the cache ``targets`` (one path, or several caches of one teacher). With ``unlabelled`` it also
    learns from the frames of ``unlabelled.split`` (:mod:`imkd_ros.distill.pseudo`), whose targets must be in
    ``targets`` too. Every input file is checked before training (:mod:`imkd_ros.data.check`); with
    ``skip_bad_frames`` the frames reading a bad file are left out and listed in the checkpoint meta
    (``skipped_frames``) instead of stopping the run. ``imagenet_weights``: a torchvision-format ResNet-50 state_dict
    file loaded into a ``resnet50`` image trunk before the first step (:func:`~imkd_ros.model.resnet.
    load_imagenet_weights`; path and sha256 in the meta). ``on_epoch(epoch)`` is called once each epoch's training state
    and logs are saved (by the main process); what it raises ends the run there, resumable (tests interrupt runs
    this way).

    Raises:
        BadFilesError: bad input files (all listed), without ``skip_bad_frames``.
        DistillConfigError: distillation or unlabelled frames asked of a teacher, without ``targets``, or of a
            student the cache or the stages do not fit; an unlabelled split sharing samples with the training split;
            a pseudo-label threshold below the scores the cache kept; ``resume`` of a run with other settings.
        TargetCacheError: the cache is missing, corrupt, or lacks training (or unlabelled) samples.
    """
    out = Path(out)
    kd = distill if distill is not None and distill.enabled else None
    cache_paths = [] if targets is None else [targets] if isinstance(targets, str | Path) else list(targets)
    run = _setup(data, out, model_config, config, device, progress, command, kd, cache_paths, unlabelled,
                 skip_bad_frames)  # fmt: skip
    if imagenet_weights is not None:
        run.meta_base["imagenet_weights"] = _load_trunk_weights(run.core, imagenet_weights)
    if resume:
        _resume(run)
    metrics: dict[str, float] = {}
    epoch = run.start_epoch
    for epoch in range(run.start_epoch + 1, config.epochs + 1):
        row = _run_epoch(run, epoch, progress)
        last = epoch == config.epochs or (config.max_steps is not None and run.step >= config.max_steps)
        if run.dist.main and run.val_frames and (last or (config.val_every and epoch % config.val_every == 0)):
            metrics = _validate(run, row)
        run.history.append(row)
        if run.dist.main:
            msg = f"epoch {epoch}: loss {row.get('loss', math.nan):.4f}"
            if "val_nds" in row:
                msg += f"  val NDS {row['val_nds']:.4f} mAP {row['val_map']:.4f}"
            print(msg, file=sys.stderr)
            _save_state(run, epoch, metrics)
            if on_epoch is not None:
                on_epoch(epoch)
        if last:
            break
    if run.dist.world > 1:
        _finish_distributed(run)
    seconds = time.perf_counter() - run.t_start
    if run.dist.main:
        save_checkpoint(out, run.core, model_config, dict(run.meta_base, epochs_done=epoch, seconds=seconds,
                                                          metrics=metrics))  # fmt: skip
    if run.dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    return TrainResult(out, epoch, run.step, [r.get("loss", math.nan) for r in run.history], metrics, seconds,
                       run.core)  # fmt: skip


def _load_trunk_weights(core: nn.Module, path: str | Path) -> dict[str, str]:
    """ImageNet weights into ``core``'s ResNet-50 image trunk; what the meta records of them.

    Raises:
        InputError: the model has no ResNet-50 trunk (``--size paper`` has one).
    """
    from imkd_ros.distill.cache import file_sha256
    from imkd_ros.model.resnet import load_imagenet_weights

    camera = getattr(core, "camera_bev", None)
    trunk = None if camera is None else camera.backbone.trunk
    if trunk is None:
        raise InputError("--imagenet-weights needs a student with a ResNet-50 image trunk (--size paper)")
    load_imagenet_weights(trunk, path)
    return {"path": str(path), "sha256": file_sha256(Path(path))}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imkd train`` (shared with ``python -m imkd_ros.training.train``)."""
    p.add_argument("kind", choices=("teacher", "student"), help="which model to train")
    p.add_argument("--data", required=True, help="nuScenes-format dataroot")
    p.add_argument("--out", required=True, help="checkpoint to write (log, loss curve and val output beside it)")
    p.add_argument(
        "--variant",
        default=None,
        choices=("fusion", "camera", "radar"),
        help="student modalities (default fusion: camera + radar)",
    )
    p.add_argument(
        "--size",
        default="default",
        choices=("default", "tiny", "paper"),
        help="model size (tiny: tests; paper: ResNet-50 at 704x256, the IMKD/CRN setting, for a GPU)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="read frames from disk as batches need them (memory flat in the dataset's size) instead of all up front",
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes reading frames ahead (with --stream)")
    p.add_argument(
        "--frame-cache",
        default=None,
        help="with --stream: folder keeping each frame shrunk to the model input after its first read (later epochs "
        "and runs skip decoding; imkd_ros.training.frame_cache)",
    )
    p.add_argument(
        "--precision",
        default=TrainConfig.precision,
        choices=PRECISIONS,
        help="bf16: the forward pass under bfloat16 autocast, losses and weights in float32 (imkd_ros.model.precision)",
    )
    p.add_argument(
        "--imagenet-weights",
        default=None,
        help="torchvision-format ResNet-50 state_dict file (e.g. resnet50-0676ba61.pth) for --size paper's image trunk",
    )
    p.add_argument(
        "--grid",
        default="front",
        choices=tuple(GRIDS),
        help="BEV grid: front (0..51.2 m ahead, +-25.6 m; a front rig) or surround (+-51.2 m; a 360-degree rig)",
    )
    p.add_argument(
        "--image-size",
        default=None,
        help="camera input WIDTHxHEIGHT (multiples of 16) instead of the size's (default 704x256), e.g. 352x128",
    )
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--val-every", type=int, default=TrainConfig.val_every, help="epochs between validations")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--version", default=TrainConfig.version)
    p.add_argument("--train-split", default=TrainConfig.train_split)
    p.add_argument("--val-split", default=TrainConfig.val_split)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads per process")
    p.add_argument("--resume", action="store_true", help="continue from CKPT.train.pt if it exists")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="move each frame and its boxes by a random rotation and scale (imkd_ros.data.augment); default: on for "
        "the teacher, which alone can (students: the camera cannot follow)",
    )
    add_skip_bad_frames_argument(p, "the checkpoint meta")
    _add_distill_arguments(p)


def _add_distill_arguments(p: argparse.ArgumentParser) -> None:
    """``imkd train``'s arguments of distillation and pseudo-labels."""
    p.add_argument(
        "--targets",
        action="append",
        default=None,
        help="teacher-target cache (imkd teacher-targets): distil the student; repeat for several caches of one "
        "teacher (e.g. the labelled split's and the unlabelled drives')",
    )
    p.add_argument(
        "--kd",
        default=None,
        help="distillation stages, e.g. stage1,stage2,stage3 (default with --targets: all; none: no distillation)",
    )
    p.add_argument("--kd-config", default=None, help="YAML of DistillConfig fields (weights, intensity mix, ...)")
    p.add_argument(
        "--unlabelled-split",
        default=None,
        help="also learn from this split's unlabelled frames (teacher pseudo-labels + KD; their targets in --targets)",
    )
    p.add_argument(
        "--pseudo-label-threshold",
        type=float,
        default=None,
        help=f"teacher boxes with at least this score are pseudo-labels (default {PseudoLabelConfig.threshold})",
    )
    p.add_argument(
        "--pseudo-label-weight",
        type=float,
        default=None,
        help=f"weight of the unlabelled frames' detection loss (default {PseudoLabelConfig.weight})",
    )
    p.add_argument(
        "--pseudo-label-soft",
        action="store_true",
        help="unlabelled frames' heatmap targets raised to the teacher's heatmap (weak teacher objects stop being "
        "full negatives)",
    )
    p.add_argument(
        "--pseudo-label-velocity",
        action="store_true",
        help="pseudo-labels keep the teacher's velocity refined by the radar's Doppler where the box has returns",
    )
    p.add_argument(
        "--pseudo-label-no-rotation",
        action="store_true",
        help="pseudo-labels teach no yaw (their rotation regression is masked)",
    )


def distill_config_from_args(args: argparse.Namespace) -> DistillConfig | None:
    """The :class:`DistillConfig` of ``--targets``/``--kd``/``--kd-config`` (None: no distillation).

    Raises:
        DistillConfigError: ``--kd`` stages without ``--targets``, distillation for the teacher, a bad YAML.
    """
    targets = getattr(args, "targets", None)
    kd_text = getattr(args, "kd", None)
    kd_yaml = getattr(args, "kd_config", None)
    if targets is None:
        if (kd_text and parse_stages(kd_text)) or kd_yaml:
            raise DistillConfigError("--kd/--kd-config need a teacher-target cache: add --targets CACHE")
        return None
    if getattr(args, "kind", "student") == "teacher":
        raise DistillConfigError("--targets distils students; the teacher is trained without it")
    base = DistillConfig()
    if kd_yaml:
        import yaml

        path = Path(kd_yaml)
        if not path.is_file():
            raise DistillConfigError(f"--kd-config {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DistillConfigError(f"--kd-config {path} is not valid YAML: {exc}") from exc
        base = DistillConfig.from_dict(data)
    if kd_text is not None:
        base = replace(base, stages=parse_stages(kd_text))
    return base


def pseudo_config_from_args(args: argparse.Namespace) -> PseudoLabelConfig | None:
    """The :class:`PseudoLabelConfig` of ``--unlabelled-split``/``--pseudo-label-*`` (None: labelled frames only).

    Raises:
        DistillConfigError: ``--pseudo-label-*`` without ``--unlabelled-split``, a bad threshold or weight.
    """
    split = getattr(args, "unlabelled_split", None)
    threshold = getattr(args, "pseudo_label_threshold", None)
    weight = getattr(args, "pseudo_label_weight", None)
    soft = bool(getattr(args, "pseudo_label_soft", False))
    velocity = bool(getattr(args, "pseudo_label_velocity", False))
    rotation = not getattr(args, "pseudo_label_no_rotation", False)
    if split is None:
        if threshold is not None or weight is not None or soft or velocity or not rotation:
            raise DistillConfigError(
                "--pseudo-label-threshold/-weight/-soft/-velocity/-no-rotation need --unlabelled-split SPLIT"
            )
        return None
    return PseudoLabelConfig(
        split,
        PseudoLabelConfig.threshold if threshold is None else threshold,
        PseudoLabelConfig.weight if weight is None else weight,
        soft,
        velocity,
        rotation,
    )


def _augment_of(args: argparse.Namespace) -> bool:
    """``--augment`` / ``--no-augment``, else on for the teacher and off for students."""
    chosen = getattr(args, "augment", None)
    return bool(chosen) if chosen is not None else getattr(args, "kind", None) == "teacher"


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``imkd train`` / ``imkd ablate`` arguments (``--val-every`` optional)."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        val_every=getattr(args, "val_every", TrainConfig.val_every),
        version=args.version,
        train_split=args.train_split,
        val_split=args.val_split,
        max_steps=args.max_steps,
        augment=_augment_of(args),
        stream=getattr(args, "stream", False),
        workers=getattr(args, "workers", 0),
        precision=getattr(args, "precision", TrainConfig.precision),
        frame_cache=getattr(args, "frame_cache", None),
    )


def run_from_args(args: argparse.Namespace, command: str | None = None) -> TrainResult:
    """Train from parsed :func:`add_train_arguments` arguments; ``command`` is recorded in the checkpoint meta."""
    if args.kind == "teacher" and args.variant not in (None, "lidar"):
        raise InputError("--variant applies to students; the teacher is LiDAR only")
    variant = "lidar" if args.kind == "teacher" else (args.variant or "fusion")
    if args.threads:
        torch.set_num_threads(args.threads)
    kd = distill_config_from_args(args)
    unlabelled = pseudo_config_from_args(args)
    cfg = train_config_from_args(args)
    image_size = parse_image_size(args.image_size) if getattr(args, "image_size", None) else None
    return train(
        args.data,
        args.out,
        model_config_for(variant, args.size, args.grid, image_size),
        cfg,
        resume=args.resume,
        device=args.device,
        command=command or "python -m imkd_ros.training.train " + " ".join(sys.argv[1:]),
        distill=kd,
        targets=args.targets,
        unlabelled=unlabelled,
        skip_bad_frames=getattr(args, "skip_bad_frames", False),
        imagenet_weights=getattr(args, "imagenet_weights", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m imkd_ros.training.train`` (what torchrun runs)."""
    p = argparse.ArgumentParser(prog="python -m imkd_ros.training.train", description=__doc__.splitlines()[0])
    add_train_arguments(p)
    print_result(run_from_args(p.parse_args(argv)))
    return 0


def print_result(res: TrainResult) -> None:
    """One JSON line summing up a run (printed by rank 0 only)."""
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {"checkpoint": str(res.checkpoint), "epochs": res.epochs, "steps": res.steps}
        print(json.dumps(dict(summary, metrics=res.metrics, seconds=round(res.seconds, 1))))


if __name__ == "__main__":
    sys.exit(main())
