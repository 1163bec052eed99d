"""``make demo`` / ``imkd demo``: the main job, the detector as a ROS 2 node on the embedded synthetic sequence.

``--rig front`` (the default) plays the front rig (one camera, one radar); ``--rig nuscenes`` the surround rig (six
cameras exposed one after the other, five radars), into a node subscribed to every one of them. Steps (each says
what it did):

1. write the embedded synthetic default of the rig (:data:`DEMO_DATA`) into ``<out>/data`` unless it is there;
2. pick the model: ``--checkpoint``, else the rig's shipped one (:data:`RIG_MODELS`); without it a tiny stand-in is
   trained on the demo's train split (a minute or two; its scores mean nothing);
3. start ``detector_node`` in one process (``use_sim_time``, ``extrinsics_source: tf``: the mountings come from
   ``/tf_static`` alone; the rig's camera and radar names from the dataset, :func:`rig_parameters`) and the player
   (:mod:`imkd_ros.nodes.player`) in another: it plays the ``synth_val`` scene (the rig on ``/tf_static``, every
   camera and camera_info, every radar, ego pose, ``/clock``) in lockstep with the node and records inputs and outputs
   to ``<out>/bag`` (MCAP);
4. read the detections back from the bag (rosbags, no ROS needed), score them with the nuScenes devkit, print NDS,
   mAP and the latency percentiles, and draw BEV PNGs (ground truth green, the node's detections red).

This module is core (no rclpy): the ROS parts run in the child processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.bag.interfaces import read_detections
from imkd_ros.pipeline.env import child_env, node_command, stop_process

__all__ = ["run_demo", "DEMO_DATA", "RIG_MODELS", "node_parameters", "rig_parameters"]

#: The embedded synthetic default per rig: front, 4 scenes (one per weather) x 8 keyframes, seed 0; nuscenes (six
#: cameras a keyframe: ~6x the rendering), 3 scenes x 6 keyframes.
DEMO_DATA = {
    "front": {"scenes": 4, "samples_per_scene": 8, "seed": 0, "weathers": ("clear", "rain", "fog", "night")},
    "nuscenes": {"scenes": 3, "samples_per_scene": 6, "seed": 0, "weathers": ("clear", "rain", "night")},
}
#: The shipped model of each rig (``models/``).
RIG_MODELS = {"front": "student_imkd.pt", "nuscenes": "student_nuscenes.pt"}
_VERSION = "v1.0-synth"


def _flow(pose: Any) -> dict[str, list[float]]:
    return {"translation": [float(v) for v in pose.translation], "rotation": [float(v) for v in pose.quat]}


def node_parameters(dataroot: Path, path: Path, split: str = "synth_val") -> Path:
    """Write a detector_node parameter file with the camera and radar mountings of ``dataroot``'s rig."""
    import yaml

    from imkd_ros.data.reader import NuScenesReader

    reader = NuScenesReader(dataroot, _VERSION, load_lidar=False, load_image=False)
    token = reader.split_samples(split)[0]
    camera = reader.frame(token).camera
    radar = reader.sensor_to_ego(reader.keyframe_token(token, "RADAR_FRONT"))
    params = {"camera_to_base": {"front": _flow(camera.sensor_to_ego)}, "radar_to_base": {"front": _flow(radar)}}
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, sort_keys=False))
    return path


def rig_parameters(dataroot: Path, path: Path) -> tuple[Path, tuple[str, ...], tuple[str, ...]]:
    """Write a detector_node parameter file naming the dataset's cameras and radars (the node's names of their
    channels, :func:`imkd_ros.pipeline.topics.sensor_name`; their mountings come from ``/tf_static``); returns it
    and the names."""
    import yaml

    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.pipeline.topics import sensor_name

    reader = NuScenesReader(dataroot, _VERSION, load_lidar=False, load_image=False)
    cameras = tuple(sensor_name(c) for c in reader.cameras)
    radars = tuple(sensor_name(r) for r in reader.radars)
    params = {"cameras": list(cameras), "radars": list(radars)}
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, sort_keys=False))
    return path, cameras, radars


def _stand_in_model(data: Path, out: Path, rig: str) -> Path:
    from imkd_ros.training.train import TrainConfig, model_config_for, train

    path = out / "stand_in_tiny.pt"
    if not path.is_file():
        cfg = TrainConfig(epochs=8, batch_size=4, lr=3e-3, seed=0, val_every=10**6)
        grid = "front" if rig == "front" else "surround"
        train(data, path, model_config_for("fusion", "tiny", grid), cfg, progress=True)
    return path


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}  # fmt: skip


def _bev_view(model: Path | str) -> dict[str, tuple[float, float]]:
    """``draw_bev``'s view: its default where the model's grid fits in it (the front grid), else the grid with 3.8 m
    around it (a surround grid of +-51.2 m: +-55 m)."""
    from imkd_ros.model.checkpoint import load_checkpoint

    g = load_checkpoint(model).config.grid
    if g.x_range[0] >= -10.0 and g.x_range[1] <= 60.0 and g.y_range[0] >= -30.0 and g.y_range[1] <= 30.0:
        return {}
    return {"x_range": (g.x_range[0] - 3.8, g.x_range[1] + 3.8), "y_range": (g.y_range[0] - 3.8, g.y_range[1] + 3.8)}


def run_demo(
    out: Path,
    *,
    checkpoint: str | None = None,
    device: str = "cpu",
    split: str = "synth_val",
    rate: float = 1.0,
    timeout: float = 120.0,
    rig: str = "front",
) -> dict[str, float]:
    """Run the demo of ``rig`` into ``out`` (the dataset is reused if present) and return the headline figures.

    Raises:
        RuntimeError: a child process failed (its log is named).
    """
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.evaluation.viz import draw_bev

    if rig not in DEMO_DATA:
        raise ValueError(f"unknown rig {rig!r}: expected one of {', '.join(DEMO_DATA)}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    t_start = time.perf_counter()
    if not (data / _VERSION / "sample.json").is_file():
        print(f"[1/4] writing the embedded synthetic sequence ({rig} rig) into {data} ...", flush=True)
        write_dataset(data, progress=True, rig=rig, **DEMO_DATA[rig])
    else:
        print(f"[1/4] reusing the synthetic sequence in {data}")
    model = _demo_model(checkpoint, data, out, rig)

    print(f"[3/4] detector_node + player ({split}, lockstep, {rate:g}x real time) -> {out / 'bag'}", flush=True)
    bag = out / "bag"
    played = _play(out, data, bag, model, device=device, split=split, rate=rate, timeout=timeout)

    print("[4/4] reading the detections back from the bag and scoring them with the devkit ...", flush=True)
    figures, frames, dets, missing = _score_played(out, data, split, model, played, bag)
    e2e = [f["latency_ms"] for f in played["frames"] if f["latency_ms"] is not None]
    proc = [f["processing_ms"] for f in played["frames"] if f["processing_ms"] is not None]
    lat, pro = _percentiles(e2e), _percentiles(proc)
    figures.update({f"e2e_ms_{k}": v for k, v in lat.items()})
    figures.update({f"node_processing_ms_{k}": v for k, v in pro.items()})
    tokens = list(frames)
    pngs = []
    view = _bev_view(model)
    for t in tokens[:: max(1, len(tokens) // 3)][:3]:
        f = frames[t]
        png = out / "bev" / f"{f.scene}_{t[:8]}.png"
        pngs.append(draw_bev(png, f, dets[t], title=f"{f.scene} {t[:8]}: node", **view))
    figures["wall_s"] = time.perf_counter() - t_start
    (out / "demo_summary.json").write_text(json.dumps({**figures, "model": str(model)}, indent=2) + "\n")

    print(f"      coverage NDS {figures['coverage_nds']:.4f}  mAP {figures['coverage_map']:.4f}  (grid NDS "
          f"{figures['nds']:.4f}  mAP {figures['map']:.4f})  on {len(tokens)} {split} keyframes "
          f"({len(missing)} without an answer), model {model.name}")  # fmt: skip
    print(f"      end-to-end latency (publish -> detections received) ms: p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  "
          f"p99 {lat['p99']:.1f}  max {lat['max']:.1f}; node processing p50 {pro['p50']:.1f}")  # fmt: skip
    print(f"      bag (MCAP, opens in RViz/Foxglove): {bag}")
    for png in pngs:
        print(f"      BEV: {png}")
    print(f"done in {figures['wall_s']:.0f} s: {out / 'demo_summary.json'}")
    return figures


def _demo_model(checkpoint: str | None, data: Path, out: Path, rig: str) -> Path:
    """The checkpoint (default: the rig's shipped model; without one, a tiny stand-in trained on the demo's data)."""
    from imkd_ros.core.shipped import resolve_checkpoint

    try:
        model = resolve_checkpoint(checkpoint or RIG_MODELS[rig])
        print(f"[2/4] model: {model}")
    except FileNotFoundError as exc:
        if checkpoint:
            raise
        print(f"[2/4] {exc}\n      training a tiny stand-in on the demo's train split (scores are not meaningful)")
        model = _stand_in_model(data, out, rig)
    return model


def _play(
    out: Path, data: Path, bag: Path, model: Path, *, device: str, split: str, rate: float, timeout: float
) -> dict[str, Any]:
    """detector_node and the player in lockstep over ``split``, recorded into ``bag`` (replaced); the player's
    summary.

    Raises:
        RuntimeError: the player failed (its log is named).
    """
    summary_path = out / "player.json"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    env = child_env()
    # the mountings come from the player's /tf_static alone (no mounting parameters); the sensors' names from the data
    params, cameras, radars = rig_parameters(data, out / "rig_params.yaml")
    node_cmd = node_command(
        model, params, device=device, use_sim_time=True, score_threshold=0.0, extrinsics_source="tf",
        cameras=cameras, radars=radars,
    )  # fmt: skip
    player_cmd = [sys.executable, "-m", "imkd_ros.nodes.player", "--data", str(data), "--split", split]
    player_cmd += ["--bag", str(bag), "--summary", str(summary_path), "--lockstep", "--rate", str(rate)]
    player_cmd += ["--wait", str(timeout), "--answer-timeout", str(timeout)]
    node_log, player_log = out / "detector_node.log", out / "player.log"
    with node_log.open("w") as nlog, player_log.open("w") as plog:
        node = subprocess.Popen(node_cmd, env=env, stdout=nlog, stderr=subprocess.STDOUT)
        try:
            player = subprocess.run(player_cmd, env=env, stdout=plog, stderr=subprocess.STDOUT, timeout=30 * timeout)
        finally:
            stop_process(node)
    if player.returncode != 0:
        raise RuntimeError(f"the player failed (rc {player.returncode}); see {player_log} and {node_log}")
    return json.loads(summary_path.read_text())


def _score_played(
    out: Path, data: Path, split: str, model: Path, played: Mapping[str, Any], bag: Path
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any], list[str]]:
    """The detections recorded in ``bag`` scored with the devkit on the grid and the coverage region (results in
    ``out``): the figures, the split's frames and detections by sample token, the samples without an answer."""
    from imkd_ros.core.types import Boxes
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.evaluation.coverage import dataset_coverage
    from imkd_ros.evaluation.eval_detector import headline, model_region
    from imkd_ros.evaluation.evaluate import CAMERA_RADAR_META, boxes_to_results, evaluate_regions, write_results
    from imkd_ros.inference.detector import Detector

    reader = NuScenesReader(data, _VERSION)
    tokens = reader.split_samples(split)
    stamp_of = {f["sample_token"]: f["stamp_ns"] for f in played["frames"] if f["sample_token"]}
    recorded = read_detections(bag)
    config = Detector.from_checkpoint(model).config
    frames = {t: reader.frame(t) for t in tokens}
    dets = {t: recorded.get(stamp_of.get(t, -1), Boxes.empty()) for t in tokens}
    missing = [t for t in tokens if stamp_of.get(t, -1) not in recorded]
    results = {t: boxes_to_results(frames[t], dets[t]) for t in tokens}
    write_results(out / "results.json", results, CAMERA_RADAR_META)
    figures: dict[str, float] = {"frames": float(len(tokens)), "frames_without_answer": float(len(missing))}
    if any(len(b) for b in dets.values()):
        coverage = dataset_coverage(config, reader, tokens[0], cameras=frames[tokens[0]].cameras)
        regions = [(out / "eval", model_region(config)), (out / "eval" / "coverage", coverage)]
        grid, cov = evaluate_regions(data, _VERSION, split, out / "results.json", regions)
        figures.update(headline(grid.summary))
        figures.update({f"coverage_{k}": v for k, v in headline(cov.summary).items()})
    else:
        figures.update(nds=0.0, map=0.0, coverage_nds=0.0, coverage_map=0.0)
        print("      no detections at all: NDS/mAP 0 (devkit not run)")
    return figures, frames, dets, missing
