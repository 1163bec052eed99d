"""The detector node's benchmark (``imkd bench --only node``): end-to-end vs model-only latency, CPU use, and
behaviour at 3x the sensor rate. Core module: the ROS parts run as child processes (detector_node, the player).

Figures (one run, one machine):

* ``node_e2e_ms_median``: the player publishes a camera keyframe (after its radar sweeps and poses) and waits for
  the detections with its stamp (lockstep): image handed to the middleware -> detections received, median;
* ``node_model_ms_median``: ``Detector.detect`` on the same frames in this process, right after each node run
  (the node idles then, so the two never share the CPU); ``node_latency_ratio`` = e2e / model (goal <= 1.10);
* ``node_processing_ms_median``: the node's own ``~/debug/processing_time_ms``;
* ``node_cpu_percent``: CPU time of the node process over the lockstep playback's wall time (100 = one core;
  keyframes at 2 Hz, so the node idles part of the time), and ``node_cpu_ms_per_frame``;
* ``node_overload_*``: every camera frame (12 Hz) and radar sweep played free-running at 3x real time (36 images
  per second): the answered fraction, latency p50/p95 and ``node_overload_latency_growth`` = median latency of the
  last third of the frames / of the first third (about 1 when latency is bounded and no queue grows).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["bench_node"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _model(workdir: Path) -> Path:
    """The shipped model, else a randomly initialised default-size student (latency does not depend on weights)."""
    from imkd_ros.shipped import resolve_checkpoint

    try:
        return resolve_checkpoint("")
    except FileNotFoundError:
        from imkd_ros.checkpoint import build_model, save_checkpoint
        from imkd_ros.train import model_config_for

        cfg = model_config_for("fusion", "default")
        return save_checkpoint(workdir / "random_default.pt", build_model(cfg), cfg, {"note": "random weights"})


def _player(data: Path, summary: Path, log: Path, env: dict[str, str], *args: str) -> dict:
    cmd = [sys.executable, "-m", "imkd_ros.nodes.player", "--data", str(data), "--split", "synth_val"]
    cmd += ["--summary", str(summary), "--wait", "180", *args]
    with log.open("w") as f:
        res = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=1800, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"player failed (rc {res.returncode}); see {log}")
    return json.loads(summary.read_text())


def bench_node(repeats: int, workdir: Path) -> dict[str, float]:
    """See the module docstring; ``repeats`` scales the lockstep frames (the synth_val scene is played
    ``repeats`` times)."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.demo import child_env, node_command, node_parameters
    from imkd_ros.detector import Detector

    data = workdir / "node-data"
    write_dataset(data, scenes=4, samples_per_scene=6, seed=0, weathers=("clear",))
    model = _model(workdir)
    params = node_parameters(data, workdir / "node_params.yaml")
    env = child_env()
    out: dict[str, float] = {}
    reader = NuScenesReader(data, load_lidar=False)
    frames = [reader.frame(t) for t in reader.split_samples("synth_val")]
    det = Detector.from_checkpoint(model, "cpu", 0.3)
    det.detect(frames[0])
    model_ms: list[float] = []
    node_log = workdir / "node_bench_node.log"
    with node_log.open("w") as nlog:
        node = subprocess.Popen(node_command(model, params, device="cpu"), env=env, stdout=nlog, stderr=nlog)
        try:
            e2e, proc, played_s = [], [], 0.0
            cpu0 = None
            for r in range(max(1, repeats)):
                if cpu0 is None:  # after the first answer the model is loaded and warm
                    warm = _player(data, workdir / "warm.json", workdir / "warm.log", env, "--lockstep", "--rate", "0")
                    del warm
                    cpu0 = _cpu_seconds(node.pid)
                run = _player(
                    data, workdir / f"lock{r}.json", workdir / f"lock{r}.log", env, "--lockstep", "--rate", "1"
                )
                e2e += [f["latency_ms"] for f in run["frames"] if f["latency_ms"] is not None]
                proc += [f["processing_ms"] for f in run["frames"] if f["processing_ms"] is not None]
                played_s += run["wall_s"]
                for f in frames:  # the model alone, right after (the node idles): the same machine load
                    t = time.perf_counter()
                    det.detect(f)
                    model_ms.append((time.perf_counter() - t) * 1e3)
            cpu = _cpu_seconds(node.pid) - cpu0  # the node idles while the player starts: count playback time
            out["node_cpu_percent"] = 100.0 * cpu / played_s
            out["node_cpu_ms_per_frame"] = 1e3 * cpu / max(len(e2e), 1)
            over = _player(data, workdir / "over.json", workdir / "over.log", env, "--rate", "3", "--all-camera-frames")
        finally:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
    out["node_e2e_ms_median"] = statistics.median(e2e)
    out["node_processing_ms_median"] = statistics.median(proc) if proc else float("nan")

    out["node_model_ms_median"] = statistics.median(model_ms)
    out["node_latency_ratio"] = out["node_e2e_ms_median"] / out["node_model_ms_median"]

    lat = [f["latency_ms"] for f in over["frames"]]
    answered = [v for v in lat if v is not None]
    out["node_overload_input_hz"] = len(lat) / max(over["wall_s"], 1e-9)
    out["node_overload_answered_fraction"] = len(answered) / max(len(lat), 1)
    if len(answered) >= 6:
        third = len(answered) // 3
        out["node_overload_latency_ms_p50"] = float(np.percentile(answered, 50))
        out["node_overload_latency_ms_p95"] = float(np.percentile(answered, 95))
        out["node_overload_latency_growth"] = statistics.median(answered[-third:]) / statistics.median(answered[:third])
    return out
