"""Bag benchmarks (registered as the ``bag`` benchmark of :mod:`imkd_ros.apps.bench`): export and teacher targets.

Numbers are medians over repeats on a synthetic scene (6 keyframes, 3 s of data, all sweeps); absolute times hold
only for the machine they were taken on.
"""

from __future__ import annotations

import statistics
from pathlib import Path

__all__ = ["bench_bag_io"]


def bench_bag_io(repeats: int, workdir: Path) -> dict[str, float]:
    """``bag_export_mb_per_s`` and ``bag_export_x_realtime``: :func:`imkd_ros.bag.export.export_bag` of one scene
    (rgb8 camera keyframes, every radar and LiDAR sweep, poses, ground truth) to MCAP, bag megabytes and data
    seconds per wall second; ``bag_teacher_targets_frames_per_s`` and ``bag_teacher_targets_x_realtime``:
    :func:`imkd_ros.apps.bag_targets.build_bag_target_cache` over that bag with the shipped teacher (an untrained
    default-size teacher when none is shipped), 2 torch threads, CPU, reading, teacher and cache writing included;
    ``bag_export_megabytes`` for scale."""
    import torch

    from imkd_ros.apps.bag_targets import build_bag_target_cache
    from imkd_ros.bag.export import export_bag
    from imkd_ros.data.synth import write_dataset

    data = workdir / "bag-data"
    write_dataset(data, scenes=1, samples_per_scene=6, seed=0, weathers=("clear",), camera_sweeps=False)
    reps = max(repeats, 1)
    exports = [export_bag(data, workdir / f"bag-{r}") for r in range(reps)]
    out = {
        "bag_export_mb_per_s": statistics.median(s["mb_per_s"] for s in exports),
        "bag_export_x_realtime": statistics.median(s["x_realtime"] for s in exports),
        "bag_export_megabytes": exports[0]["bytes"] / 1e6,
    }
    teacher = _teacher(workdir)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reports = [
            build_bag_target_cache(
                workdir / "bag-0", teacher, workdir / f"bag-targets-{r}", progress=False, debug_pngs=0
            )
            for r in range(reps)
        ]
    finally:
        torch.set_num_threads(threads)
    out["bag_teacher_targets_frames_per_s"] = statistics.median(r.frames_per_s for r in reports)
    out["bag_teacher_targets_x_realtime"] = statistics.median(r.x_realtime for r in reports)
    return out


def _teacher(workdir: Path) -> Path:
    """The shipped teacher checkpoint, else an untrained default-size one written under ``workdir``."""
    from imkd_ros.core.shipped import resolve_checkpoint

    try:
        return resolve_checkpoint("teacher.pt")
    except FileNotFoundError:
        from imkd_ros.model import ModelConfig, Teacher
        from imkd_ros.model.checkpoint import save_checkpoint

        cfg = ModelConfig.default(("lidar",))
        path = workdir / "bench-teacher.pt"
        save_checkpoint(path, Teacher(config=cfg), cfg, {"note": "untrained benchmark teacher"})
        return path
