"""The detector node's benchmark (``imkd bench --only node``): end-to-end vs model-only latency, where the node's
time goes, CPU use, and behaviour at 3x the sensor rate. Core module: the ROS parts run as child processes
(detector_node with ``debug_timing`` on, the player).

The comparison is kept honest: the model-only figure is the node's own model call, ``Detector.detect`` on the
same keyframes (the reader's frames: same image, same radar sweeps), with the same score threshold and backend,
the same number of intra-op threads (the node's ``threads`` parameter is passed explicitly, and
:func:`~imkd_ros.inference.detector.inference_threads` resolves it here as in the node) and from a worker thread as in
the node (glibc's main arena and a thread's arena treat the large tensors differently: interleaved on 2 CPUs the
main thread's calls touched 2-6k fresh pages each where the worker's touched none, and ran 4-6 ms slower). Image
pre-processing (float conversion, resize, crop) happens inside ``detect``, so it is counted on both sides.

Figures (one run, one machine):

* ``node_e2e_ms_median``: the player publishes a camera keyframe (after its radar sweeps and poses) and waits for
  the detections with its stamp (lockstep, 1x): image handed to the middleware -> detections received, median;
* ``node_model_ms_median``: ``Detector.detect`` on the same frames in this process right after each lockstep run
  (the node idles then, so the two never share the CPU); ``node_latency_ratio`` = e2e / model (goal <= 1.10);
* ``node_model_fresh_main_ms_median``: the honest reference of the speed issue: ``Detector.detect`` on the same
  frames, same backend and threads, in a fresh process from its main thread (no node, no worker thread, no second
  thread pool); ``node_latency_ratio_fresh_main`` = e2e / that; ``node_model_fresh_main_paced_ms_median`` and
  ``node_latency_ratio_fresh_main_paced``: the same process calling ``detect`` at the node's cadence (idle between
  calls as long as the node's model idles between lockstep keyframes, ~0.5 s): on 2 idle cores OpenVINO's bf16
  detect took 10.4 ms back to back and 18-21 ms after 0.1-0.3 s idle (cold caches and clocks), which the node
  pays at every keyframe and the back-to-back reference does not;
* ``node_backend``: the model backend of both sides (the node's ``backend`` parameter);
* ``node_processing_ms_median``: the node's own ``~/debug/processing_time_ms``;
* ``node_span_<name>_ms_median``: the node's ``debug_timing`` spans of the lockstep frames: ``transport`` (image
  written by the player -> image callback entered: middleware, executor wake-up, deserialisation), ``callback``
  (conversion, pairing, frame assembly), ``handoff`` (mailbox -> worker), ``model`` (``detect`` inside the node),
  ``detections`` (``Detection3DArray`` built and published), ``markers`` (after the detections: not in e2e);
  ``node_span_rest_ms_median`` = e2e - (transport + callback + handoff + model + detections) (the detections'
  way back to the player); ``node_model_page_faults_median``: minor page faults of the node process during its
  model call (fresh memory pages, ~2 us each);
* ``node_overhead_ms_median`` and ``node_overhead_ratio_median``: per frame, e2e minus / over the node's own model
  call (its ``model`` span): the node's cost outside the model, independent of the model-only reference;
* ``node_cpu_percent``: CPU time of the node process over the lockstep playback's wall time (100 = one core;
  keyframes at 2 Hz, so the node idles part of the time), and ``node_cpu_ms_per_frame``;
* ``node_threads``: the intra-op threads of both sides;
* ``node_overload_*``: every camera frame (12 Hz) and radar sweep played free-running at 3x real time, the scene
  repeated back to back (player ``--repeat``, time shifted to go on) for about ``overload_seconds`` (default 60 s)
  of wall time: the input rate achieved (``input_hz``), the answered fraction and rate (``answered_fraction``,
  ``output_hz``), latency p50/p95, ``node_overload_latency_growth`` = median latency of the last third of the
  answered frames / of the first third (about 1 when latency is bounded and no queue grows), the node's CPU use
  (``cpu_percent``), and its memory: ``node_overload_rss_growth_mb`` = the node's resident memory (VmRSS, sampled
  every 0.5 s) over the last fifth of the run minus that over the first fifth (medians; about 0 when nothing
  accumulates under sustained overload), ``node_overload_rss_mb_max``, ``node_overload_seconds``.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.pipeline.env import stop_process

__all__ = ["bench_node", "SPANS", "parse_timing", "rss_mb", "RssSampler", "rss_growth_mb", "fresh_main_thread_ms"]

#: The node's ``debug_timing`` spans on the path from image to detections, in order.
SPANS: tuple[str, ...] = ("transport", "callback", "handoff", "model", "detections")
_TIMING = re.compile(r"\btiming (\{.*\})")


def parse_timing(lines: Sequence[str]) -> list[dict[str, float]]:
    """The ``debug_timing`` records (``timing {json}``, one per processed frame) in detector_node log lines."""
    return [json.loads(m.group(1)) for line in lines if (m := _TIMING.search(line))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_checkpoint(workdir: Path) -> Path:
    """The shipped model, else a randomly initialised default-size student (latency does not depend on weights)."""
    from imkd_ros.core.shipped import resolve_checkpoint

    try:
        return resolve_checkpoint("")
    except FileNotFoundError:
        from imkd_ros.model.checkpoint import build_model, save_checkpoint
        from imkd_ros.training.train import model_config_for

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


def _log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), MB; NaN when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


class RssSampler:
    """Samples a process's :func:`rss_mb` every ``period`` seconds in a thread, between ``start()`` and
    ``stop()`` (which returns the samples, MB, in time order)."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid, self.period = pid, period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            v = rss_mb(self.pid)
            if v == v:  # not NaN
                self.samples.append(v)
            self._stop.wait(self.period)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=5.0)
        return list(self.samples)


def rss_growth_mb(samples: Sequence[float]) -> float:
    """Median of the last fifth of ``samples`` minus median of the first fifth (NaN with fewer than 5 samples)."""
    if len(samples) < 5:
        return float("nan")
    fifth = len(samples) // 5
    return statistics.median(samples[-fifth:]) - statistics.median(samples[:fifth])


def bench_node(
    repeats: int,
    workdir: Path,
    threads: int = 0,
    overload_seconds: float = 60.0,
    backend: str | None = None,
    precision: str | None = None,
) -> dict[str, float | str]:
    """See the module docstring; ``repeats`` lockstep plays of the synth_val scene (12 keyframes each);
    ``threads``: the node's ``threads`` parameter (0: :func:`~imkd_ros.inference.detector.inference_threads`' default);
    ``overload_seconds``: about how long the 3x overload run lasts (the scene is repeated to fill it); ``backend``:
    the node's ``backend`` parameter, ``precision`` its ``precision`` (None: config/detector.yaml's), used by the
    references too (``node_backend`` / ``node_precision``: what ``"auto"`` resolved to)."""
    bench = _setup(workdir, threads, backend, precision)
    out: dict[str, float | str] = {"node_threads": float(bench.threads), "node_backend": bench.detector.backend}
    out["node_precision"] = bench.detector.precision
    lock, fresh, over = _run_node(bench, workdir, repeats, overload_seconds, out)
    _lockstep_stats(out, lock)
    _fresh_stats(out, fresh)
    _overload_stats(out, over)
    return out


@dataclass(frozen=True)
class _Bench:
    """What the node and the model-only references run on: the scene (``data``, its synth_val ``frames``), the
    checkpoint, the node's parameter file and environment, the in-process detector (its backend and precision
    resolved from ``"auto"`` as the node resolves them) and the intra-op threads of both sides."""

    data: Path
    model: Path
    params: Path
    env: dict[str, str]
    frames: list[Any]
    detector: Any
    threads: int

    @property
    def runtime(self) -> str:
        """``BACKEND:PRECISION`` of the detector."""
        return f"{self.detector.backend}:{self.detector.precision}"


def _setup(workdir: Path, threads: int, backend: str | None, precision: str | None) -> _Bench:
    """Write the two-scene synthetic dataset and the node's parameters under ``workdir``, load the frames and the
    detector (see :func:`bench_node` for the arguments)."""
    from imkd_ros.apps.demo import node_parameters
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.inference.detector import Detector, inference_threads
    from imkd_ros.pipeline.env import child_env

    n_threads = inference_threads(threads)
    backend = backend or _default_parameter("backend")
    precision = precision or _default_parameter("precision")
    data = workdir / "node-data"
    write_dataset(data, scenes=2, samples_per_scene=12, seed=0, weathers=("clear",))
    model = bench_checkpoint(workdir)
    params = node_parameters(data, workdir / "node_params.yaml")
    env = child_env()
    reader = NuScenesReader(data, load_lidar=False)
    frames = [reader.frame(t) for t in reader.split_samples("synth_val")]
    det = Detector.from_checkpoint(model, "cpu", 0.3, backend=backend, threads=n_threads, precision=precision)
    return _Bench(data, model, params, env, frames, det, n_threads)


@dataclass(frozen=True)
class _Fresh:
    """The fresh-process references (:func:`fresh_main_thread_ms`): back to back (``times``, with the medians of
    the detector's ``spans``) and at the node's cadence (``paced``), ms per frame."""

    times: list[float]
    spans: dict[str, float]
    paced: list[float]


def _run_node(
    bench: _Bench, workdir: Path, repeats: int, overload_seconds: float, out: dict[str, float | str]
) -> tuple[_Lockstep, _Fresh, dict[str, Any]]:
    """Start detector_node and warm it; then the lockstep plays (the in-process model alone after each, from a worker
    thread as in the node), the fresh-process references while the node idles, and the overload run. The node's CPU
    use goes into ``out``."""
    import torch

    from imkd_ros.inference.detector import torch_threads_for
    from imkd_ros.pipeline.env import node_command

    det = bench.detector
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-only")  # as the node's worker thread

    def model_ms(frame: object) -> float:
        t = time.perf_counter()
        det.detect(frame)
        return (time.perf_counter() - t) * 1e3

    def model_pass() -> list[float]:
        return [worker.submit(model_ms, f).result() for f in bench.frames]

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads_for(det.backend, bench.threads))  # as the node does
    node_log = workdir / "node_bench_node.log"
    cmd = node_command(bench.model, bench.params, device="cpu")
    cmd += ["-p", f"threads:={bench.threads}", "-p", "debug_timing:=true"]
    cmd += ["-p", f"backend:={det.backend}", "-p", f"precision:={det.precision}"]
    try:
        worker.submit(model_ms, bench.frames[0]).result()
        with node_log.open("w") as nlog:
            node = subprocess.Popen(cmd, env=bench.env, stdout=nlog, stderr=nlog)
            try:
                # after the first answers the model is loaded and warm
                _player(bench.data, workdir / "warm.json", workdir / "warm.log", bench.env, "--lockstep", "--rate", "0")
                cpu0 = _cpu_seconds(node.pid)
                # the model alone, right after each play (the node idles): the same machine load
                lock = _lockstep_runs(bench.data, workdir, bench.env, node_log, repeats, model_pass)
                cpu = _cpu_seconds(node.pid) - cpu0  # the node idles while the player starts: count playback time
                fresh = _fresh_references(bench, repeats, lock)  # the node idles meanwhile
                out["node_cpu_percent"] = 100.0 * cpu / lock.played_s
                out["node_cpu_ms_per_frame"] = 1e3 * cpu / max(len(lock.e2e), 1)
                over = _overload_run(bench.data, workdir, bench.env, node.pid, bench.frames, overload_seconds, out)
            finally:
                stop_process(node)
    finally:
        worker.shutdown()
        torch.set_num_threads(saved_threads)
    return lock, fresh, over


def _fresh_references(bench: _Bench, repeats: int, lock: _Lockstep) -> _Fresh:
    """The model in a fresh process, back to back and then at the node's cadence: idle between frames as long as
    the node's model was in the lockstep plays ``lock``."""
    spans: dict[str, float] = {}
    times = fresh_main_thread_ms(bench.data, bench.model, bench.threads, bench.runtime, repeats, spans)
    gap = max(0.0, lock.played_s / max(len(lock.e2e), 1) - _median(lock.e2e) / 1e3)
    paced = fresh_main_thread_ms(bench.data, bench.model, bench.threads, bench.runtime, repeats, gap_s=gap)
    return _Fresh(times, spans, paced)


def _default_parameter(name: str) -> str:
    """The detector node's parameter ``name`` in config/detector.yaml."""
    import yaml

    from imkd_ros.core.shipped import shipped_file

    doc = yaml.safe_load(shipped_file("config/detector.yaml").read_text())
    return str(doc["/**"]["ros__parameters"][name])


def fresh_main_thread_ms(
    data: Path,
    model: Path,
    threads: int,
    runtime: str,
    repeats: int,
    spans: dict[str, float] | None = None,
    gap_s: float = 0.0,
) -> list[float]:
    """``Detector.detect`` times (ms) of the synth_val frames of ``data``, ``repeats`` passes after one warm-up
    pass, measured in a fresh Python process from its main thread (:func:`_fresh_main`); ``runtime``:
    ``BACKEND[:PRECISION]``; ``spans`` (when given) receives the medians of :attr:`Detector.last_timing`'s spans
    (``collate_ms``, ``run_ms``, ``graph_ms``, ``boxes_ms``); ``gap_s``: idle seconds before each call (0: back to
    back; the node's cadence: an idle core's caches and clocks are cold at the next frame)."""
    from imkd_ros.pipeline.env import child_env

    cmd = [
        sys.executable,
        "-c",
        "import sys; from imkd_ros.apps.node_bench import _fresh_main; _fresh_main(sys.argv[1:])",
    ]
    cmd += [str(data), str(model), str(threads), runtime, str(repeats), str(gap_s)]
    done = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=True, timeout=900)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if spans is not None:
        spans.update(result["spans"])
    return [float(v) for v in result["times"]]


def _fresh_main(argv: Sequence[str]) -> None:
    """The child of :func:`fresh_main_thread_ms`: prints a JSON list of per-frame detect times (ms)."""
    import torch

    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.inference.detector import Detector, parse_runtime, torch_threads_for

    data, model, threads, repeats, gap_s = argv[0], argv[1], int(argv[2]), int(argv[4]), float(argv[5])
    backend, precision = parse_runtime(argv[3])
    torch.set_num_threads(torch_threads_for(backend, threads))
    reader = NuScenesReader(data, load_lidar=False)
    frames = [reader.frame(t) for t in reader.split_samples("synth_val")]
    det = Detector.from_checkpoint(model, "cpu", 0.3, backend=backend, threads=threads, precision=precision)
    times, spans = [], []
    for r in range(max(1, repeats) + 1):
        for f in frames:
            if gap_s:
                time.sleep(gap_s)
            t = time.perf_counter()
            det.detect(f)
            if r:  # the first pass warms up
                times.append((time.perf_counter() - t) * 1e3)
                spans.append(det.last_timing)
    medians = {k: statistics.median(s[k] for s in spans) for k in spans[0]}
    print(json.dumps({"times": times, "spans": medians}))


@dataclass
class _Lockstep:
    """What the lockstep plays measured: end-to-end and processing latencies (ms), the node's timing spans, per
    frame (e2e - model call, e2e / model call), the model alone (ms) and the seconds played."""

    e2e: list[float] = field(default_factory=list)
    proc: list[float] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    overhead: list[tuple[float, float]] = field(default_factory=list)
    model_only: list[float] = field(default_factory=list)
    played_s: float = 0.0


def _lockstep_runs(
    data: Path, workdir: Path, env: dict[str, str], node_log: Path, repeats: int, model_pass: Callable[[], list[float]]
) -> _Lockstep:
    """``repeats`` lockstep plays at rate 1, the node's timing lines of each, and ``model_pass()`` after each."""
    lock = _Lockstep()
    for r in range(max(1, repeats)):
        n0 = len(_log_lines(node_log))
        run = _player(data, workdir / f"lock{r}.json", workdir / f"lock{r}.log", env, "--lockstep", "--rate", "1")
        lock.e2e += [f["latency_ms"] for f in run["frames"] if f["latency_ms"] is not None]
        lock.proc += [f["processing_ms"] for f in run["frames"] if f["processing_ms"] is not None]
        lock.played_s += run["wall_s"]
        time.sleep(0.5)  # the node logs its timing after publishing
        new = {int(t["stamp"]): t for t in parse_timing(_log_lines(node_log)[n0:])}
        lock.spans += new.values()
        lock.overhead += [  # per frame: e2e - the node's own model call, and e2e / that call
            (
                f["latency_ms"] - new[f["stamp_ns"]]["model_ms"],
                f["latency_ms"] / new[f["stamp_ns"]]["model_ms"],
            )
            for f in run["frames"]
            if f["latency_ms"] is not None and f["stamp_ns"] in new
        ]
        lock.model_only += model_pass()
    return lock


def _overload_run(
    data: Path,
    workdir: Path,
    env: dict[str, str],
    pid: int,
    frames: Sequence[Any],
    overload_seconds: float,
    out: dict[str, float],
) -> dict[str, Any]:
    """The scene played at 3x its rate with every camera frame, repeated to last about ``overload_seconds``; the
    node's CPU and memory into ``out``; the player's summary back."""
    cpu0 = _cpu_seconds(pid)
    stamps = [f.timestamp for f in frames]  # camera keyframes, us
    scene_s = (max(stamps) - min(stamps)) / 1e6 + 0.5
    passes = max(1, math.ceil(overload_seconds * 3.0 / scene_s))
    sampler = RssSampler(pid).start()
    try:
        over = _player(
            data,
            workdir / "over.json",
            workdir / "over.log",
            env,
            "--rate",
            "3",
            "--all-camera-frames",
            "--repeat",
            str(passes),
        )
    finally:
        rss = sampler.stop()
    out["node_overload_cpu_percent"] = 100.0 * (_cpu_seconds(pid) - cpu0) / over["wall_s"]
    out["node_overload_seconds"] = over["wall_s"]
    out["node_overload_rss_growth_mb"] = rss_growth_mb(rss)
    out["node_overload_rss_mb_max"] = max(rss) if rss else float("nan")
    return over


def _lockstep_stats(out: dict[str, float], lock: _Lockstep) -> None:
    out["node_e2e_ms_median"] = _median(lock.e2e)
    out["node_processing_ms_median"] = _median(lock.proc)
    out["node_model_ms_median"] = _median(lock.model_only)
    out["node_latency_ratio"] = out["node_e2e_ms_median"] / out["node_model_ms_median"]
    spans = lock.spans
    for name in (*SPANS, "markers"):
        out[f"node_span_{name}_ms_median"] = _median([s[f"{name}_ms"] for s in spans if f"{name}_ms" in s])
    for key in sorted({k for s in spans for k in s if k.startswith("detect_")}):  # inside the model span
        out[f"node_span_model_{key[len('detect_') :]}_median"] = _median([s[key] for s in spans if key in s])
    out["node_span_rest_ms_median"] = out["node_e2e_ms_median"] - sum(
        out[f"node_span_{name}_ms_median"] for name in SPANS
    )
    out["node_overhead_ms_median"] = _median([o[0] for o in lock.overhead])
    out["node_overhead_ratio_median"] = _median([o[1] for o in lock.overhead])
    out["node_model_page_faults_median"] = _median([s["model_page_faults"] for s in spans if "model_page_faults" in s])


def _fresh_stats(out: dict[str, float], fresh: _Fresh) -> None:
    out["node_model_fresh_main_ms_median"] = _median(fresh.times)
    out.update({f"node_model_fresh_main_{k}_median": v for k, v in fresh.spans.items()})
    out["node_model_fresh_main_paced_ms_median"] = _median(fresh.paced)
    out["node_latency_ratio_fresh_main_paced"] = (
        out["node_e2e_ms_median"] / out["node_model_fresh_main_paced_ms_median"]
    )
    out["node_latency_ratio_fresh_main"] = out["node_e2e_ms_median"] / out["node_model_fresh_main_ms_median"]


def _overload_stats(out: dict[str, float], over: Mapping[str, Any]) -> None:
    lat = [f["latency_ms"] for f in over["frames"]]
    answered = [v for v in lat if v is not None]
    out["node_overload_input_hz"] = len(lat) / max(over["wall_s"], 1e-9)
    out["node_overload_output_hz"] = len(answered) / max(over["wall_s"], 1e-9)
    out["node_overload_answered_fraction"] = len(answered) / max(len(lat), 1)
    if len(answered) >= 6:
        third = len(answered) // 3
        out["node_overload_latency_ms_p50"] = float(np.percentile(answered, 50))
        out["node_overload_latency_ms_p95"] = float(np.percentile(answered, 95))
        out["node_overload_latency_growth"] = statistics.median(answered[-third:]) / statistics.median(answered[:third])
