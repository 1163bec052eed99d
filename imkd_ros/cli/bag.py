"""The ``imkd bag`` verb group: ``imkd bag export``, ``imkd bag teacher-targets``, ``imkd bag recover`` (here) and
``imkd bag replay-eval`` (:func:`imkd_ros.apps.replay_eval.run_replay_eval`).

Each subcommand parses its arguments and calls one library function; errors reach :func:`imkd_ros.cli.imkd.main`,
which prints them as one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from imkd_ros.cli.options import add_device_argument, picked, rounded

__all__ = ["add_bag_parser", "add_replay_eval", "add_topic_argument"]


def add_topic_argument(p: argparse.ArgumentParser) -> None:
    """``--topic ROLE=TOPIC`` (repeatable): the bag's topic names where they differ from the defaults of
    :class:`imkd_ros.bag.topics.BagTopics`; read back with ``BagTopics.from_mapping(args.topic)``."""
    from imkd_ros.bag.topics import BagTopics

    p.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="ROLE=TOPIC",
        help=f"a topic name other than the default, e.g. image=/cam/img (roles: {', '.join(BagTopics.names())}; "
        "radar takes a comma list); repeatable",
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from imkd_ros.bag.export import export_bag

    scenes = args.scenes
    if args.split:
        from imkd_ros.data.reader import NuScenesReader

        scenes = (scenes or []) + NuScenesReader(args.data, args.version, load_lidar=False).split_scenes(args.split)
    stats = export_bag(
        args.data,
        args.out,
        **picked(args, "version", "storage", "compressed", "cameras", "radars"),
        scenes=scenes,
        topics=args.topic,
        all_camera_frames=not args.keyframes_only,
        progress=True,
    )
    print(json.dumps(rounded(stats, 3)))
    return 0


def _cmd_teacher_targets(args: argparse.Namespace) -> int:
    from imkd_ros.apps.bag_targets import build_bag_target_cache
    from imkd_ros.bag.topics import BagTopics
    from imkd_ros.cli.options import cache_summary, run_teacher_targets

    rep = run_teacher_targets(
        args,
        build_bag_target_cache,
        args.bag,
        topics=BagTopics.from_mapping(args.topic),
        lidar_sweeps=args.lidar_sweeps,
        out_bag=args.out_bag,
    )
    out_bag = None if rep.out_bag is None else str(rep.out_bag)
    print(json.dumps(rounded({**cache_summary(rep), "frames_per_s": rep.frames_per_s, "out_bag": out_bag}, 3)))
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    from imkd_ros.bag.recover import recover_bag

    rep = recover_bag(args.bag_in, args.bag_out)
    print(rep.summary())
    print(json.dumps(rounded(rep.to_dict(), 3)))
    return 0


def _cmd_replay_eval(args: argparse.Namespace) -> int:
    from imkd_ros.apps.replay_eval import run_replay_eval
    from imkd_ros.bag.topics import BagTopics
    from imkd_ros.cli.options import set_torch_threads

    # On a busy 2-CPU machine 1 thread was measured 8x faster than 2 (bag_replay_eval_frames_per_s)
    set_torch_threads(args.threads)
    rep = run_replay_eval(
        args.bag,
        args.checkpoint,
        args.out,
        **picked(args, "live", "rate", "device", "frames", "params_file", "score_threshold", "bev_frames"),
        **picked(args, "timeout", "runtime"),
        topics=BagTopics.from_mapping(args.topic),
        progress=not args.quiet,
    )
    m, c, f, lat, live = rep["metrics"], rep["coverage_metrics"], rep["frames"], rep["latency_ms"], rep["live"]
    missed = f", {live['frames_missed']} missed by the node at {args.rate:g}x" if live else ""
    print(f"coverage NDS {c['nds']:.4f}  mAP {c['map']:.4f}  mATE {c['trans_err']:.3f}  mAVE {c['vel_err']:.3f}")
    print(
        f"grid     NDS {m['nds']:.4f}  mAP {m['map']:.4f}  mATE {m['trans_err']:.3f}  mAVE {m['vel_err']:.3f}  "
        f"({f['evaluated']} frames evaluated, {f['keyframes_without_detections']} without detections; "
        f"{sum(rep['sync']['frame_drops'].values())} dropped by sync{missed}; latency p50 {lat['p50']:.1f} ms) "
        f"-> {args.out}"
    )
    return 0


def add_replay_eval(sub: Any) -> argparse.ArgumentParser:
    """Add ``replay-eval`` to the ``imkd bag`` subparsers ``sub``; returns its parser."""
    from imkd_ros.apps.replay import FRAME_CHOICES

    r = sub.add_parser(
        "replay-eval",
        help="run a checkpoint over a bag as detector_node would (offline or --live) and score it with the devkit",
        description="Run a checkpoint over a bag's camera and radar as detector_node would (offline: the node's "
        "pairing and frame assembly without ROS; --live: the bag played into ROS 2 with detector_node in another "
        "process) and score it against the bag's ground truth with the nuScenes devkit. Writes report.md/.json, "
        "metrics_summary.json, BEV PNGs and a GIF, and an MCAP bag of the detections and markers into --out.",
    )
    r.add_argument("--bag", required=True, help="ROS 2 bag (folder with metadata.yaml, or a .mcap/.db3 file)")
    r.add_argument("--checkpoint", required=True, help="model checkpoint (.pt)")
    r.add_argument("--out", required=True, help="output folder: report.md/.json, metrics_summary.json, bev/, GIF, bag")
    r.add_argument("--live", action="store_true", help="play into ROS 2 with detector_node in another process")
    r.add_argument("--rate", type=float, default=1.0, help="--live playback speed, x real time (default 1)")
    add_topic_argument(r)
    r.add_argument("--frames", choices=FRAME_CHOICES, default="keyframes", help="camera frames fed (default keyframes)")
    r.add_argument("--params-file", default=None, help="detector_node parameter file (sync settings, ...)")
    r.add_argument("--score-threshold", type=float, default=None, help="default: the model's, as imkd eval")
    add_device_argument(r)
    r.add_argument(
        "--runtime",
        default="torch:fp32",
        help="BACKEND[:PRECISION] of the model, offline and in the live node (default torch:fp32, as imkd eval; "
        "auto:auto is the node's default)",
    )
    r.add_argument("--bev-frames", type=int, default=40, help="BEV PNGs / GIF frames (default 40)")
    r.add_argument("--timeout", type=float, default=120.0, help="--live: seconds to wait for the node")
    r.add_argument("--threads", type=int, default=None, help="offline: torch intra-op threads (default torch's)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_replay_eval)
    return r


def add_bag_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``bag`` verb with its subcommands to ``imkd``'s subparsers ``sub``; returns the ``bag`` parser."""
    from imkd_ros.cli.options import add_teacher_target_arguments

    bag = sub.add_parser(
        "bag", help="ROS 2 bags: export a dataset, teacher targets from a bag, replay evaluation, recover a crashed bag"
    )
    bsub = bag.add_subparsers(dest="bag_verb", required=True, metavar="<bag verb>")

    e = bsub.add_parser("export", help="write a nuScenes-format dataset (scenes) into a ROS 2 bag")
    e.add_argument("--data", required=True, help="nuScenes-format dataroot")
    e.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    e.add_argument("--version", default="v1.0-synth", help="dataset version folder (default v1.0-synth)")
    e.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="bag storage (default mcap)")
    e.add_argument("--scenes", nargs="+", default=None, help="scene names (default: all scenes)")
    e.add_argument("--split", default=None, help="add the scenes of this split (splits.json or the devkit's)")
    e.add_argument("--compressed", action="store_true", help="cameras as CompressedImage (the dataset's JPEGs)")
    frames = e.add_mutually_exclusive_group()
    frames.add_argument(
        "--keyframes-only", action="store_true", help="only the camera keyframes (default: every camera frame)"
    )
    frames.add_argument("--all-camera-frames", action="store_true", help="every camera frame (the default)")
    e.add_argument(
        "--cameras",
        nargs="+",
        default=None,
        metavar="CHANNEL",
        help="camera channels, the reference first (default: every camera of the dataset, CAM_FRONT first)",
    )
    e.add_argument("--radars", nargs="+", default=None, metavar="CHANNEL", help="radar channels (default: every radar)")
    add_topic_argument(e)
    e.set_defaults(func=_cmd_export)

    t = bsub.add_parser("teacher-targets", help="run the LiDAR teacher over a bag into a teacher-target cache")
    t.add_argument("--bag", required=True, help="input bag (folder, .mcap or .db3)")
    t.add_argument("--out-bag", default=None, help="also write the targets as TeacherTargets messages to this bag")
    t.add_argument(
        "--lidar-sweeps",
        type=int,
        default=None,
        help="LiDAR sweeps per frame (default: the teacher config's lidar.sweeps)",
    )
    add_teacher_target_arguments(t)
    add_topic_argument(t)
    t.set_defaults(func=_cmd_teacher_targets)

    r = bsub.add_parser(
        "recover",
        help="write the readable part of a truncated or damaged bag (a crashed recording) as a new, valid bag",
        description="Reads a cut or damaged MCAP or sqlite3 bag in order up to the damage (an sqlite3 bag as of its "
        "last complete transaction) and writes what it holds as a new bag of the same storage, with metadata.yaml; "
        "prints how many messages and seconds were saved and lost.",
    )
    r.add_argument("bag_in", metavar="IN", help="the damaged bag (folder, with or without metadata.yaml, or a file)")
    r.add_argument("bag_out", metavar="OUT", help="the bag folder to write (must not exist)")
    r.set_defaults(func=_cmd_recover)

    add_replay_eval(bsub)
    return bag
