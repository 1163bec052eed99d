"""Options and settings that several ``imkd`` verbs share.

``imkd teacher-targets`` (a dataset split) and ``imkd bag teacher-targets`` (a bag) run the same teacher into the
same cache format: :func:`add_teacher_target_arguments` adds their common options, :func:`teacher_target_options`
turns them into the keyword arguments both cache builders take. :func:`set_torch_threads` applies ``--threads``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_teacher_target_arguments", "teacher_target_options", "set_torch_threads"]


def add_teacher_target_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of a teacher-target cache build: shards, batching, the intensity maps' density saturation,
    device, threads, debug PNGs and ``--overwrite`` (read back with :func:`teacher_target_options`)."""
    p.add_argument("--shard-size", type=int, default=32, help="samples per shard (default 32)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per teacher forward pass")
    p.add_argument("--density-saturation", type=float, default=64.0, help="LiDAR points per cell at density 1")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--debug-pngs", type=int, default=2, help="intensity-map PNGs written to OUT/debug/")
    p.add_argument("--overwrite", action="store_true", help="replace an incompatible cache in --out")


def teacher_target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`imkd_ros.distill.targets.build_target_cache` and
    :func:`imkd_ros.apps.bag_targets.build_bag_target_cache` that :func:`add_teacher_target_arguments` added
    (``--threads`` is process-wide: :func:`set_torch_threads`)."""
    from imkd_ros.distill.intensity import IntensitySpec

    return {
        "shard_size": args.shard_size,
        "batch_size": args.batch_size,
        "spec": IntensitySpec(density_saturation=args.density_saturation),
        "device": args.device,
        "overwrite": args.overwrite,
        "debug_pngs": args.debug_pngs,
    }


def set_torch_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; None or 0 leaves torch's default. It is process-wide, so only an entry
    point sets it."""
    if threads:
        import torch

        torch.set_num_threads(threads)
