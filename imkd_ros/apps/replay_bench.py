"""Benchmark of ``imkd bag replay-eval`` (offline): :func:`bench_replay_eval`, called by the ``bag`` benchmark of
:mod:`imkd_ros.apps.bench`."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

__all__ = ["bench_replay_eval"]


def bench_replay_eval(
    repeats: int, workdir: Path, *, bag: Path | None = None, checkpoint: Path | None = None, threads: int = 2
) -> dict[str, float]:
    """Offline replay evaluation of a bag: read, pair and assemble (the node's code), detect (batch 1, ``threads``
    torch threads) and score with the devkit; the report's pictures are not drawn. Medians over ``repeats``:

    * ``bag_replay_eval_frames_per_s``: evaluated frames per wall second;
    * ``bag_replay_eval_x_realtime``: seconds of bag per wall second;
    * ``bag_replay_eval_no_model_frames_per_s``: the same without the model (reading, sync, assembly, scoring);
    * ``bag_replay_eval_frames``: frames evaluated per run.

    Args:
        repeats: runs (>= 1).
        workdir: scratch folder.
        bag: the bag (default: 2 synthetic scenes x 6 keyframes exported to ``workdir``).
        checkpoint: the model (default: the shipped student, a random default-size one where none is shipped).
        threads: torch intra-op threads during the runs.
    """
    import torch

    from imkd_ros.apps.node_bench import bench_checkpoint
    from imkd_ros.apps.replay import evaluate_replay, open_bag, replay_offline
    from imkd_ros.core.types import Boxes
    from imkd_ros.evaluation.eval_detector import model_region
    from imkd_ros.inference.detector import Detector

    if bag is None:
        from imkd_ros.bag.export import export_bag
        from imkd_ros.data.synth import write_dataset

        root, bag = workdir / "replay-data", workdir / "replay-bag"
        if not bag.exists():
            write_dataset(root, scenes=2, samples_per_scene=6, seed=0, weathers=("clear", "rain"), camera_sweeps=False)
            export_bag(root, bag)
    detector = Detector.from_checkpoint(checkpoint or bench_checkpoint(workdir))

    class _NoModel:
        def detect(self, frame: object) -> Boxes:
            return Boxes.empty()

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rates: dict[str, list[float]] = {"model": [], "x_realtime": [], "no_model": []}
    frames = 0
    try:
        for r in range(max(1, repeats)):
            for key, det in (("model", detector), ("no_model", _NoModel())):
                src = open_bag(bag)
                t0 = time.perf_counter()
                replay = replay_offline(src, det)
                evaluate_replay(src, replay, workdir / f"replay-eval-{key}-{r}", region=model_region(detector.config))
                wall = time.perf_counter() - t0
                frames = len(replay.frames)
                rates[key].append(frames / wall)
                if key == "model":
                    rates["x_realtime"].append(replay.data_s / wall)
    finally:
        torch.set_num_threads(saved_threads)
    return {
        "bag_replay_eval_frames_per_s": statistics.median(rates["model"]),
        "bag_replay_eval_x_realtime": statistics.median(rates["x_realtime"]),
        "bag_replay_eval_no_model_frames_per_s": statistics.median(rates["no_model"]),
        "bag_replay_eval_frames": float(frames),
    }
