"""Teacher targets from a LiDAR teacher: per batch (:func:`compute_teacher_targets`, also what a teacher node or the
bag pipeline calls) and over a whole split into a cache (:func:`build_target_cache`, ``imkd teacher-targets``).

The teacher runs once per training sample, in eval mode: its BEV features, the intensity maps
(:mod:`imkd_ros.distill.intensity`), the sigmoid of its heatmap logits and its decoded boxes are written in the
format of :mod:`imkd_ros.distill.cache`.

With ``tta`` (mirror test-time augmentation) the teacher also sees each frame mirrored left-right (y -> -y) and the
two head outputs are merged before the heatmap is stored and the boxes are decoded (CenterPoint's flip testing, for
what a mirror keeps). Mirrored back, a head output at row r comes from row ``h - 1 - r`` (the grid's y range is
symmetric), with ``dy' = 1 - dy`` (the centre's offset inside its cell), ``sin yaw' = -sin yaw``, ``vy' = -vy``.
Merged: the heatmap ``logit((sigmoid(a) + sigmoid(b')) / 2)``, the offsets, height and log sizes ``(r_a + r_b') / 2``;
yaw and velocity stay the plain pass's (a mirrored drive is a left-hand-traffic drive, where the side of the road no
longer tells the heading: :mod:`imkd_ros.data.augment`). The BEV features and intensity maps stay the plain pass's
too (features are not mirror-equivariant channel by channel). Only the pseudo-labels and soft targets change.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imkd_ros.core.types import Frame
from imkd_ros.data.check import SkippedFrame, usable_samples
from imkd_ros.data.dataset import Batch, collate_frames
from imkd_ros.distill.cache import (
    BOX_COLUMNS,
    CacheHeader,
    TargetCache,
    TargetCacheWriter,
    TargetGrid,
    TeacherTargets,
    file_sha256,
)
from imkd_ros.distill.errors import TargetCacheError
from imkd_ros.distill.intensity import DEFAULT_SPEC, IntensitySpec, draw_intensity, teacher_intensity
from imkd_ros.model import Teacher, TeacherInputs
from imkd_ros.model.checkpoint import load_checkpoint
from imkd_ros.model.decode import decode
from imkd_ros.model.head import HeadOutput

__all__ = [
    "CacheBuildReport",
    "compute_teacher_targets",
    "merge_heads",
    "mirror_head_back",
    "load_teacher",
    "target_header",
    "fill_target_cache",
    "build_target_cache",
]


@dataclass(frozen=True)
class CacheBuildReport:
    """What :func:`build_target_cache` did.

    Attributes:
        root: the cache folder.
        samples: samples in the cache.
        shards: shards in the cache.
        computed_shards: shards the teacher ran for in this call.
        reused_shards: shards kept from an interrupted earlier build (checksums verified).
        bytes: bytes of all shards.
        seconds: wall time of this call.
        skipped: samples left out for bad input files (``skip_bad_frames``; also in the header's
            ``source.skipped_samples``).
    """

    root: Path
    samples: int
    shards: int
    computed_shards: int
    reused_shards: int
    bytes: int
    seconds: float
    skipped: tuple[SkippedFrame, ...] = ()


def mirror_head_back(head: HeadOutput) -> HeadOutput:
    """The head output of a y-mirrored input expressed on the plain grid (module docstring)."""
    heat = torch.flip(head.heatmap, dims=[-2])
    reg = torch.flip(head.regression, dims=[-2]).clone()
    reg[:, 1] = 1.0 - reg[:, 1]  # dy
    reg[:, 6] = -reg[:, 6]  # sin yaw
    reg[:, 9] = -reg[:, 9]  # vy
    return HeadOutput(heat, reg)


def merge_heads(a: HeadOutput, b: HeadOutput) -> HeadOutput:
    """Mean probability (returned as logits) of two head outputs on one grid, mean offsets, height and sizes;
    rotation and velocity of ``a`` (module docstring)."""
    p = (torch.sigmoid(a.heatmap) + torch.sigmoid(b.heatmap)) / 2
    reg = a.regression.clone()
    box = slice(0, 6)  # offset (2), height (1), log size (3): REGRESSION_GROUPS
    reg[:, box] = (a.regression[:, box] + b.regression[:, box]) / 2
    return HeadOutput(torch.logit(p, eps=1e-6), reg)


@torch.inference_mode()
def compute_teacher_targets(
    teacher: Teacher, batch: Batch, spec: IntensitySpec = DEFAULT_SPEC, tta: bool = False
) -> list[TeacherTargets]:
    """Run ``teacher`` (put in eval mode) on a batch's LiDAR.

    Args:
        teacher: the LiDAR teacher.
        batch: frames with ``lidar`` ``(B, M, 6)`` and ``lidar_mask`` (any device; the teacher's is used).
        spec: intensity normalisation.
        tta: also run the mirrored frames and merge the heads (module docstring).

    Returns:
        one :class:`TeacherTargets` per frame (maps float32, ``(C, H, W)`` on the head grid).

    Raises:
        TargetCacheError: the batch carries no LiDAR; ``tta`` on a grid whose y range is not symmetric.
    """
    if batch.lidar is None:
        raise TargetCacheError(f"teacher targets need LiDAR; frames {batch.tokens[:3]} have none")
    teacher.eval()
    device = next(teacher.parameters()).device
    lidar, mask = batch.lidar.to(device), batch.lidar_mask.to(device)
    out = teacher.features(TeacherInputs(lidar, mask))
    head = out.head
    if tta:
        y0, y1 = teacher.config.grid.y_range
        if abs(y0 + y1) > 1e-9:
            raise TargetCacheError(f"mirror TTA needs a grid symmetric in y, got y_range {(y0, y1)}")
        mirrored = lidar.clone()
        mirrored[..., 1] = -mirrored[..., 1]
        head = merge_heads(head, mirror_head_back(teacher.features(TeacherInputs(mirrored, mask)).head))
    maps = teacher_intensity(out, teacher.config, spec, batch.lidar, batch.lidar_mask).cpu().numpy()
    feats = out.bev.float().cpu().numpy()
    heat = torch.sigmoid(head.heatmap.float()).cpu().numpy()
    dets = decode(head, teacher.config)
    result = []
    for i, det in enumerate(dets):
        b = det.to_boxes()
        boxes = np.concatenate([b.center, b.size, b.yaw[:, None], b.velocity], axis=1).astype(np.float32)
        result.append(
            TeacherTargets(
                batch.tokens[i],
                int(batch.timestamps[i]),
                feats[i],
                maps[i],
                heat[i],
                boxes.reshape(-1, 9),
                b.label.astype(np.int32),
                b.score.astype(np.float32),
            )
        )
    return result


def load_teacher(teacher_checkpoint: str | Path, device: str = "cpu") -> Teacher:
    """The teacher of a checkpoint, built on ``device`` (``"cpu"``/``"cuda"``; CUDA falls back to the CPU).

    Raises:
        CheckpointError: the checkpoint is missing or corrupt.
        TargetCacheError: it is not a teacher's.
    """
    from imkd_ros.inference.detector import resolve_device

    ckpt = load_checkpoint(teacher_checkpoint)
    if ckpt.kind != "teacher" or not ckpt.config.is_teacher:
        raise TargetCacheError(f"{teacher_checkpoint} is a {ckpt.kind} checkpoint; teacher targets need the teacher")
    return ckpt.build(resolve_device(device))


def target_header(
    teacher: Teacher, teacher_checkpoint: str | Path, spec: IntensitySpec, source: dict[str, Any], tta: bool = False
) -> CacheHeader:
    """The cache header of ``teacher``'s targets: its grid, channels and classes, ``spec``, the checkpoint (path,
    sha256, model name; ``"tta": "mirror-y"`` when the heads were merged with the mirrored pass), ``source`` (what
    the frames were read from, with the reader settings) and what its decoded boxes hold (the teacher's decoding
    threshold and limit)."""
    config = teacher.config
    who = {"checkpoint": str(Path(teacher_checkpoint).resolve()), "sha256": file_sha256(teacher_checkpoint)}
    who["name"] = config.name
    if tta:
        who["tta"] = "mirror-y"
    return CacheHeader(
        grid=TargetGrid.from_model_config(config),
        feature_channels=config.bev.channels,
        class_names=tuple(config.classes),
        intensity_spec=spec.to_dict(),
        teacher=who,
        source=dict(source),
        boxes={
            "columns": list(BOX_COLUMNS),
            "frame": "ego",
            "score_threshold": float(config.decode.score_threshold),
            "max_detections": int(config.decode.max_detections),
        },
    )


def fill_target_cache(
    writer: TargetCacheWriter,
    teacher: Teacher,
    frames: Iterable[Frame],
    *,
    batch_size: int = 4,
    spec: IntensitySpec = DEFAULT_SPEC,
    debug_pngs: int = 2,
    progress: bool = True,
    tta: bool = False,
) -> int:
    """Run ``teacher`` over ``frames`` into the pending shards of ``writer``, then mark the cache complete: the one
    "frames -> cache" loop of the dataset (:func:`build_target_cache`) and the bag pipeline
    (:func:`imkd_ros.apps.bag_targets.build_bag_target_cache`).

    Args:
        writer: the cache being written (or resumed).
        teacher: the LiDAR teacher.
        frames: the frames of the samples of ``writer.pending()`` shards, in plan order, already cut to the teacher
            (:func:`imkd_ros.model.preprocess.shrink_frame`); read lazily, one shard at a time.
        batch_size: frames per teacher forward pass.
        spec: intensity normalisation.
        debug_pngs: intensity PNGs of the first computed samples, written to ``<cache>/debug/``.
        progress: a tqdm bar over shards.
        tta: merge each frame's head with its mirrored pass (module docstring).

    Returns:
        the number of shards computed.

    Raises:
        TargetCacheError: ``frames`` ends early or yields samples out of plan order. Errors raised by ``frames``
            (e.g. a corrupt bag) propagate; the shards written before stay valid and are reused by a rerun.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise TargetCacheError(f"batch_size ({batch_size}) must be >= 1")
    pending = writer.pending()
    reused = len(writer.plan) - len(pending)
    if reused and progress:
        print(
            f"teacher-targets: resuming {writer.root}: {reused} of {len(writer.plan)} shards already written",
            file=sys.stderr,
        )
    it = iter(frames)
    pngs_left = debug_pngs
    for i in tqdm(pending, desc="teacher targets", unit="shard", disable=not progress):
        shard: list[Frame] = []
        for token in writer.plan[i]:
            frame = next(it, None)
            if frame is None:
                raise TargetCacheError(f"the frames ended before sample {token} of shard {i}")
            shard.append(frame)
        targets: list[TeacherTargets] = []
        for k in range(0, len(shard), batch_size):
            targets.extend(compute_teacher_targets(teacher, collate_frames(shard[k : k + batch_size]), spec, tta))
        for t in targets[: max(pngs_left, 0)]:
            draw_intensity(
                writer.root / "debug" / f"intensity_{t.sample_token[:12]}.png",
                t.intensity,
                writer.header.grid.extent,
                title=f"teacher intensity maps, sample {t.sample_token}",
            )
            pngs_left -= 1
        writer.write_shard(i, targets)
    writer.finish()
    return len(pending)


def _cache_samples(reader: Any, splits: list[str], data: str | Path, skip_bad: bool) -> tuple[list[str], list[Any]]:
    """The samples of ``splits`` in order, each once, that can be read (and the skipped ones, with ``skip_bad``).

    Raises:
        TargetCacheError: no samples, or every one skipped.
    """
    split = ",".join(splits)
    tokens = list(dict.fromkeys(t for s in splits for t in reader.split_samples(s)))
    if not tokens:
        raise TargetCacheError(f"split {split!r} of {data} has no samples")
    tokens, skipped = usable_samples(reader, tokens, skip_bad=skip_bad, what=f"split {split} of {data}")
    if not tokens:
        raise TargetCacheError(f"split {split!r} of {data}: every sample was skipped for bad input files")
    return tokens, skipped


def build_target_cache(
    data: str | Path,
    teacher_checkpoint: str | Path,
    out: str | Path,
    *,
    split: str = "synth_train",
    version: str = "v1.0-synth",
    shard_size: int = 32,
    batch_size: int = 4,
    spec: IntensitySpec = DEFAULT_SPEC,
    radar_sweeps: int = 6,
    lidar_sweeps: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    debug_pngs: int = 2,
    progress: bool = True,
    skip_bad_frames: bool = False,
    tta: bool = False,
) -> CacheBuildReport:
    """Write (or finish) the teacher-target cache of ``split`` under ``out``.

    ``split`` may be a comma list of splits (``"synth_train,synth_unlabelled"``): their samples in that order, each
    once. Samples are taken in split order and cut into shards of ``shard_size``; shards already written by an
    interrupted build with the same teacher, data and settings are verified and kept. ``lidar_sweeps`` (None: the
    teacher's ``ModelConfig.lidar.sweeps``, what it was trained on) LiDAR sweeps are accumulated per sample.
    ``debug_pngs`` intensity PNGs (:func:`~imkd_ros.distill.intensity.draw_intensity`) of the first computed samples
    go to ``out/debug/``. Every file the samples read is checked before the teacher runs
    (:mod:`imkd_ros.data.check`); with ``skip_bad_frames`` the samples reading a bad one are left out of the cache
    (listed in its header's ``source.skipped_samples`` and the report) instead of stopping the build. ``tta``
    merges each frame's head with its mirrored pass (module docstring; recorded in the header).

    Raises:
        BadFilesError: bad input files (all listed), without ``skip_bad_frames``.
        CheckpointError: the teacher checkpoint is missing or corrupt.
        TargetCacheError: the checkpoint is not a teacher's, the split is empty, or ``out`` holds an incompatible
            cache (and not ``overwrite``).
    """
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.model.preprocess import shrink_frame

    if shard_size < 1 or batch_size < 1:
        raise TargetCacheError(f"shard_size ({shard_size}) and batch_size ({batch_size}) must be >= 1")
    t0 = time.perf_counter()
    out = Path(out)
    teacher = load_teacher(teacher_checkpoint, device)
    lidar_sweeps = teacher.config.lidar.sweeps if lidar_sweeps is None else int(lidar_sweeps)
    reader = NuScenesReader(
        data, version, radar_sweeps=radar_sweeps, lidar_sweeps=lidar_sweeps, load_image=False, load_lidar=True
    )
    splits = [s.strip() for s in split.split(",") if s.strip()]
    tokens, skipped = _cache_samples(reader, splits, data, skip_bad_frames)
    plan = [tokens[i : i + shard_size] for i in range(0, len(tokens), shard_size)]
    source = {
        "dataroot": str(Path(data).resolve()),
        "version": version,
        "split": ",".join(splits),
        "radar_sweeps": radar_sweeps,
        "lidar_sweeps": lidar_sweeps,
    }
    if skipped:  # only then: caches of complete splits keep the header they always had
        source["skipped_samples"] = [s.to_dict() for s in skipped]
    writer = TargetCacheWriter(
        out, target_header(teacher, teacher_checkpoint, spec, source, tta), plan, shard_size, overwrite=overwrite
    )
    frames = (shrink_frame(reader.frame(t), teacher.config) for i in writer.pending() for t in plan[i])
    computed = fill_target_cache(
        writer, teacher, frames, batch_size=batch_size, spec=spec, debug_pngs=debug_pngs, progress=progress, tta=tta
    )
    cache = TargetCache(out)
    seconds = time.perf_counter() - t0
    return CacheBuildReport(out, len(cache), len(plan), computed, len(plan) - computed, cache.nbytes(), seconds,
                            tuple(skipped))  # fmt: skip
