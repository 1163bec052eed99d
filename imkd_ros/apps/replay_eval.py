"""``imkd bag replay-eval``'s library call: replay a bag offline (:func:`imkd_ros.apps.replay.replay_offline`) or
live (:func:`imkd_ros.apps.replay_live.replay_live`), score it on the grid and the coverage region, and write the
report (:mod:`imkd_ros.bag.report`). Its own module so that the offline replay and the live one, which builds on
it, do not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from imkd_ros.apps.replay import bag_coverage, evaluate_replay, open_bag, read_params_file, replay_offline
from imkd_ros.bag.errors import BagError
from imkd_ros.bag.topics import BagTopics

__all__ = ["run_replay_eval"]


def run_replay_eval(
    bag: str | PathLike[str],
    checkpoint: str | PathLike[str],
    out: str | PathLike[str],
    *,
    live: bool = False,
    rate: float = 1.0,
    topics: BagTopics = BagTopics(),  # noqa: B008 - frozen dataclass
    device: str = "cpu",
    frames: str = "keyframes",
    params_file: str | PathLike[str] | None = None,
    score_threshold: float | None = None,
    bev_frames: int = 40,
    gt_attributes: Mapping[str, Sequence[str]] | None = None,
    timeout: float = 120.0,
    progress: bool = False,
    runtime: str = "torch:fp32",
) -> dict[str, Any]:
    """Replay ``bag`` (offline or live), score it, and write the report into ``out`` (see
    :mod:`imkd_ros.bag.report` for the files). Returns the report dict (as ``report.json``). Torch's thread count
    is the caller's (``imkd bag replay-eval --threads`` sets it).

    Args:
        bag, checkpoint, out: the bag, the model, the output folder (created; files in it are replaced).
        live: play into a ROS graph with ``detector_node`` instead of the offline assembly.
        rate: live playback speed (x real time).
        topics: the bag's topics.
        device: ``"cpu"`` or ``"cuda"``.
        frames: ``"keyframes"`` or ``"all"`` camera frames fed.
        params_file: a ROS 2 parameter file for the node (both modes).
        score_threshold: detections below are dropped (None: the model's decode threshold, as ``imkd eval``).
        bev_frames: BEV PNGs (and GIF frames) drawn, evenly over the evaluated frames.
        gt_attributes: see :func:`imkd_ros.apps.replay.evaluate_replay`.
        timeout: live: seconds to wait for the node to come up and for its last answers.
        progress: progress bars.
        runtime: ``BACKEND[:PRECISION]`` of the model (:func:`~imkd_ros.inference.detector.parse_runtime`), offline
            and in the live node alike (default PyTorch fp32, as ``imkd eval``; the node's own default is
            ``auto:auto``); a ``backend`` / ``precision`` in ``params_file`` wins, for both modes.

    Raises:
        BagError, EvaluationError, CheckpointError: bad bag, nothing to score, bad checkpoint.
    """
    from imkd_ros.bag.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src, overrides, detector, gt = _open_replay(bag, topics, checkpoint, runtime, params_file, device, score_threshold)
    stamps = sorted(gt)
    if live:
        from imkd_ros.apps.replay_live import replay_live

        replay = replay_live(
            src,
            Path(checkpoint),
            out,
            rate=rate,
            params=overrides,
            frames=frames,
            gt_stamps=stamps,
            device=device,
            score_threshold=score_threshold,
            timeout=timeout,
        )
    else:
        replay = replay_offline(src, detector, params=overrides, frames=frames, gt_stamps=stamps, progress=progress)
    summary, coverage_summary = _score(src, replay, out, detector.config, gt, gt_attributes)
    return write_report(
        out,
        src,
        replay,
        summary,
        gt,
        checkpoint=str(checkpoint),
        device=device,
        rate=rate if live else None,
        bev_frames=bev_frames,
        coverage_summary=coverage_summary,
    )


def _open_replay(
    bag: str | PathLike[str],
    topics: BagTopics,
    checkpoint: str | PathLike[str],
    runtime: str,
    params_file: str | PathLike[str] | None,
    device: str,
    score_threshold: float | None,
) -> tuple[Any, dict[str, Any], Any, dict[int, Any]]:
    """What a replay runs on (the arguments as :func:`run_replay_eval`'s): the bag, the node parameters the replay
    sets (``backend`` and ``precision`` from ``runtime``, under what ``params_file`` sets: it wins), the detector
    they give, and the bag's ground truth.

    Raises:
        BagError: the bag has no ground truth messages.
    """
    from imkd_ros.inference.detector import Detector, parse_runtime

    src = open_bag(bag, topics)
    backend, precision = parse_runtime(runtime)
    overrides = {"backend": backend, "precision": precision, **(read_params_file(params_file) if params_file else {})}
    detector = Detector.from_checkpoint(
        checkpoint, device, score_threshold, backend=overrides["backend"], precision=overrides["precision"]
    )
    gt = src.ground_truth()
    if not gt:
        raise BagError(f"bag {src.path}: no ground truth messages on {topics.ground_truth}")
    return src, overrides, detector, gt


def _score(
    src: Any, replay: Any, out: Path, config: Any, gt: Any, gt_attributes: Mapping[str, Sequence[str]] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replay scored on the model's grid (into ``out``) and on the rig's coverage region (``out/coverage``)."""
    from imkd_ros.evaluation.eval_detector import model_region

    summary = evaluate_replay(src, replay, out, region=model_region(config), gt=gt, gt_attributes=gt_attributes)
    coverage = bag_coverage(src, config, replay.extra.get("parameters", {}).get("cameras"))
    coverage_summary = evaluate_replay(
        src, replay, out / "coverage", region=coverage, gt=gt, gt_attributes=gt_attributes
    )
    return summary, coverage_summary
