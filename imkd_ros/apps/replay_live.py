"""``imkd bag replay-eval --live``: the bag played into a ROS 2 graph, ``detector_node`` answering in another
process, its answers recorded and handed back for scoring.

Core module (no rclpy): it starts two child processes with :func:`imkd_ros.pipeline.env.child_env` (the project's
Fast DDS profile, localhost discovery, a random domain id):

* ``detector_node`` (:func:`imkd_ros.pipeline.env.node_command`: ``config/detector.yaml``, a parameter file with the
  bag's mountings and radar names from ``tf_static`` plus the user's overrides, ``use_sim_time``, the player's topic
  remappings; score threshold 0 unless one is given, so that it publishes what ``imkd eval`` scores);
* the bag player (:mod:`imkd_ros.nodes.bag_player`): ``/clock`` and the sensor messages at ``rate`` x real time,
  free-running, recording the node's outputs into ``<out>/live/outputs`` (MCAP).

A camera frame the node did not answer (dropped by its sync, or replaced in its one-slot mailbox while the model was
busy with an earlier frame) counts as missed; the report splits the misses into those the node's sync drops by
itself (found by running the same bag through the offline frame assembly without a model) and those lost to load.
Files in ``<out>/live/``: ``detector_params.yaml``, ``player.json``, ``detector_node.log``, ``player.log``,
``outputs/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from imkd_ros.apps.replay import FrameRecord, Replay, node_parameters, replay_offline, sample_keys, sensor_rig
from imkd_ros.bag.errors import BagError
from imkd_ros.bag.source import BagSource
from imkd_ros.core.types import Boxes
from imkd_ros.pipeline.env import stop_process

__all__ = ["write_node_parameters", "bag_player_command", "replay_live"]


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return out


def write_node_parameters(path: Path, params: Mapping[str, Any]) -> Path:
    """A ROS 2 parameter file (``/**: ros__parameters``) holding the flat ``params`` (dotted names nested)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": _nested(params)}}, sort_keys=False), encoding="utf-8")
    return path


def bag_player_command(
    src: BagSource, summary: Path, outputs: Path, *, rate: float, frames: str, wait: float, settle: float
) -> list[str]:
    """The command line of :mod:`imkd_ros.nodes.bag_player` for ``src`` (its topics passed on)."""
    cmd = [sys.executable, "-m", "imkd_ros.nodes.bag_player", "--bag", str(src.path), "--summary", str(summary)]
    cmd += ["--out-bag", str(outputs), "--rate", str(rate), "--frames", frames]
    cmd += ["--wait", str(wait), "--settle", str(settle)]
    for role, topic in src.topics.to_dict().items():
        cmd += ["--topic", f"{role}={','.join(topic) if isinstance(topic, list) else topic}"]
    return cmd


class _NoModel:
    """A stand-in detector for counting what the sync alone drops."""

    def detect(self, frame: Any) -> Boxes:
        return Boxes.empty()


def replay_live(
    src: BagSource,
    checkpoint: Path,
    out: str | PathLike[str],
    *,
    rate: float = 1.0,
    params: Mapping[str, Any] | None = None,
    frames: str = "keyframes",
    gt_stamps: Sequence[int] | None = None,
    device: str = "cpu",
    score_threshold: float | None = None,
    timeout: float = 120.0,
) -> Replay:
    """Play ``src`` into ROS 2 with ``detector_node`` running ``checkpoint`` (module docstring) and return what it
    answered as a :class:`~imkd_ros.apps.replay.Replay` (mode ``"live"``; ``frame_drops``, ``radar_drops`` and
    ``input_errors`` are what the node's sync and checks drop on this bag (the offline assembly without a model),
    ``extra["live"]`` the frames published, answered and missed (by sync / under load) and the logs).

    Raises:
        BagError: a bad bag (topics, mountings).
        RuntimeError: a child process failed (its log is named).
    """
    from imkd_ros.bag.interfaces import read_detections

    live = Path(out) / "live"
    if live.exists():
        shutil.rmtree(live)
    live.mkdir(parents=True)
    rig = sensor_rig(src)
    p = node_parameters(rig, params)
    unknown = [r for r in p["radars"] if r not in rig.radar_names]
    if unknown:
        raise BagError(f"radar {unknown[0]!r} (parameter radars) has no topic; the bag's radars: {rig.radar_names}")
    if len(rig.camera_names) > 1 and sorted(p["cameras"]) != sorted(rig.camera_names):
        raise BagError(
            f"a live replay feeds the node every camera of the bag ({', '.join(rig.camera_names)}); parameter "
            f"cameras names {list(p['cameras'])} (replay offline to use fewer)"
        )
    node_cmd = _node_command(live, checkpoint, p, params, device, score_threshold)
    summary_path, outputs = live / "player.json", live / "outputs"
    player_cmd = bag_player_command(src, summary_path, outputs, rate=rate, frames=frames, wait=timeout, settle=timeout)
    # the player waits up to `timeout` for the node and for the last answer, and plays the bag at `rate`
    # (keyframes come at about 2 Hz: a second of bag per keyframe is generous)
    gts = set(gt_stamps if gt_stamps is not None else src.ground_truth())
    limit = 2 * timeout + 60 + (len(gts) / rate if rate > 0 else 0.0)
    node_log, player_log = live / "detector_node.log", live / "player.log"
    wall = _run_node_and_player(node_cmd, player_cmd, node_log, player_log, limit)
    played = json.loads(summary_path.read_text())
    records = _records(played["frames"], read_detections(outputs), sample_keys(src), gts)
    sync_only = replay_offline(src, _NoModel(), params=params, frames=frames, gt_stamps=sorted(gts))
    missed = sum(r.detections is None for r in records)
    sync_drops = sum(sync_only.frame_drops.values())
    extra = {
        "live": {
            "rate": rate,
            "frames_published": len(records),
            "frames_answered": len(records) - missed,
            "frames_missed": missed,
            "missed_by_sync": min(sync_drops, missed),
            "missed_under_load": max(missed - sync_drops, 0),
            "sync_drops_offline": sync_only.frame_drops,
            "player_wall_s": float(played.get("wall_s", 0.0)),
            "node_log": str(node_log),
            "player_log": str(player_log),
            "outputs_bag": str(outputs),
        },
        "parameters": {k: p[k] for k in sorted(p)},
    }
    return Replay(
        "live",
        sorted(records, key=lambda r: r.stamp_ns),
        dict(sync_only.frame_drops),
        dict(sync_only.radar_drops),
        dict(sync_only.input_errors),
        list(sync_only.examples),
        float(played.get("wall_s", wall)),
        float(played.get("data_s", sync_only.data_s)),
        extra,
    )


def _records(
    frames: Sequence[Mapping[str, Any]], recorded: Mapping[int, Boxes], keys: Mapping[int, str], gts: set[int]
) -> list[FrameRecord]:
    """A record per frame the player published (its summary's ``frames``), with the node's answer where it gave one."""
    records = []
    for f in frames:
        stamp = int(f["stamp_ns"])
        rec = FrameRecord(stamp, keys.get(stamp, str(stamp)), stamp in gts)
        if stamp in recorded:
            rec.detections = recorded[stamp]
            rec.latency_ms, rec.processing_ms = f["latency_ms"], f["processing_ms"]
        records.append(rec)
    return records


def _node_command(
    live: Path,
    checkpoint: Path,
    p: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    device: str,
    score_threshold: float | None,
) -> list[str]:
    """detector_node's command line: the rig's parameters and the user's overrides in ``live/detector_params.yaml``,
    each camera's and radar's inputs remapped to the bag player's topics
    (:func:`imkd_ros.pipeline.topics.detector_remaps`)."""
    from imkd_ros.pipeline.env import node_command

    of_rig = ("cameras", "radars", "compressed_image", "camera_to_base.", "radar_to_base.")
    rig_params = {k: v for k, v in p.items() if k.startswith(of_rig)}
    param_file = write_node_parameters(live / "detector_params.yaml", {**rig_params, **(params or {})})
    node_cmd = node_command(
        Path(checkpoint).resolve(),
        param_file,
        device=device,
        use_sim_time=True,
        score_threshold=0.0 if score_threshold is None else score_threshold,
        cameras=tuple(str(c) for c in p["cameras"]),
        radars=tuple(str(r) for r in p["radars"]),
    )
    return node_cmd


def _run_node_and_player(
    node_cmd: list[str], player_cmd: list[str], node_log: Path, player_log: Path, limit: float
) -> float:
    """Run the node in the background and the player to its end (at most ``limit`` s), logs to the two files; the
    wall time (s).

    Raises:
        RuntimeError: the player timed out or failed (its log is named).
    """
    from imkd_ros.pipeline.env import child_env

    env = child_env()
    t0 = time.perf_counter()
    with node_log.open("w") as nlog, player_log.open("w") as plog:
        node = subprocess.Popen(node_cmd, env=env, stdout=nlog, stderr=subprocess.STDOUT)
        try:
            player = subprocess.run(
                player_cmd, env=env, stdout=plog, stderr=subprocess.STDOUT, timeout=limit, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"the bag player did not finish within {limit:.0f} s; see {player_log}, {node_log}"
            ) from exc
        finally:
            stop_process(node)
    wall = time.perf_counter() - t0
    if player.returncode != 0:
        raise RuntimeError(
            f"the bag player failed (rc {player.returncode}); see {player_log} and {node_log}:\n"
            + player_log.read_text()[-2000:]
        )
    return wall
