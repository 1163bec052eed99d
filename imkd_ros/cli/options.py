"""Options and settings that several ``imkd`` verbs share.

``imkd teacher-targets`` (a dataset split) and ``imkd bag teacher-targets`` (a bag) run the same teacher into the
same cache format: :func:`add_teacher_target_arguments` adds their common options (the teacher, the cache folder,
the build settings), :func:`run_teacher_targets` runs a cache builder with them (:func:`teacher_target_options`:
the keyword arguments both builders take) and :func:`cache_summary` is what both print of the build.
:func:`set_torch_threads` applies ``--threads``; :func:`add_device_argument` is every verb's ``--device`` and
:func:`add_dataset_arguments` the ``--data --version --split`` of every verb that reads a dataset;
:func:`rounded` rounds a printed summary; :func:`picked` hands options on under their own names.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = [
    "add_dataset_arguments",
    "add_device_argument",
    "add_teacher_target_arguments",
    "cache_summary",
    "picked",
    "rounded",
    "run_teacher_targets",
    "set_torch_threads",
    "teacher_target_options",
]


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda`` (default cpu)."""
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


def picked(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.name}`` for each of ``names``: the options a verb hands to its library function under the
    same keyword (``f(**picked(args, "version", "split"))`` for ``f(version=args.version, split=args.split)``)."""
    return {name: getattr(args, name) for name in names}


def add_dataset_arguments(
    p: argparse.ArgumentParser, split: str, split_help: str = "split name (splits.json or the devkit's)"
) -> None:
    """``--data`` (required), ``--version`` (default v1.0-synth) and ``--split`` (default ``split``)."""
    p.add_argument("--data", required=True, help="nuScenes-format dataroot")
    p.add_argument("--version", default="v1.0-synth", help="dataset version folder (default v1.0-synth)")
    p.add_argument("--split", default=split, help=f"{split_help} (default {split})")


def add_teacher_target_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of a teacher-target cache build: the teacher, the cache folder, shards, batching, the
    intensity maps' density saturation, device, threads, debug PNGs and ``--overwrite`` (read back by
    :func:`run_teacher_targets`)."""
    p.add_argument("--teacher", required=True, help="teacher checkpoint (.pt)")
    p.add_argument("--out", required=True, help="cache folder (index.json + shards); an interrupted build resumes")
    p.add_argument("--shard-size", type=int, default=32, help="samples per shard (default 32)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per teacher forward pass")
    p.add_argument("--density-saturation", type=float, default=64.0, help="LiDAR points per cell at density 1")
    add_device_argument(p)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--debug-pngs", type=int, default=2, help="intensity-map PNGs written to OUT/debug/")
    p.add_argument("--overwrite", action="store_true", help="replace an incompatible cache in --out")


def run_teacher_targets(args: argparse.Namespace, build: Callable[..., Any], source: str, **options: Any) -> Any:
    """``build(source, --teacher, --out, **options)`` with the options of :func:`add_teacher_target_arguments`
    (:func:`teacher_target_options`), ``--threads`` set first; ``build``'s report back."""
    set_torch_threads(args.threads)
    return build(source, args.teacher, args.out, **options, **teacher_target_options(args))


def teacher_target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`imkd_ros.distill.targets.build_target_cache` and
    :func:`imkd_ros.apps.bag_targets.build_bag_target_cache` that :func:`add_teacher_target_arguments` added
    (``--teacher`` and ``--out`` are their positional arguments; ``--threads`` is process-wide:
    :func:`set_torch_threads`)."""
    from imkd_ros.distill.intensity import IntensitySpec

    return {
        "shard_size": args.shard_size,
        "batch_size": args.batch_size,
        "spec": IntensitySpec(density_saturation=args.density_saturation),
        "device": args.device,
        "overwrite": args.overwrite,
        "debug_pngs": args.debug_pngs,
    }


def cache_summary(rep: Any) -> dict[str, Any]:
    """What both teacher-target verbs print of their build's report: the cache folder, samples, shards (computed in
    this call, reused), megabytes and seconds."""
    return {
        "cache": str(rep.root),
        "samples": rep.samples,
        "shards": rep.shards,
        "computed_shards": rep.computed_shards,
        "reused_shards": rep.reused_shards,
        "megabytes": rep.bytes / 1e6,
        "seconds": rep.seconds,
    }


def rounded(d: dict[str, Any], digits: int) -> dict[str, Any]:
    """``d`` with its float values rounded to ``digits`` decimals (for printing)."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in d.items()}


def set_torch_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; None or 0 leaves torch's default. It is process-wide, so only an entry
    point sets it."""
    if threads:
        import torch

        torch.set_num_threads(threads)
