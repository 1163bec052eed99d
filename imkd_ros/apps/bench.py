"""``imkd bench``: benchmarks written as flat JSON (name -> number). Medians over repeats; never used in tests.

Each benchmark is a function ``(repeats, workdir) -> dict[str, float]`` listed in :data:`BENCHMARKS`; later
issues add theirs to the same tuple. Absolute times hold only for the machine they were taken on, so the JSON
also records the machine (CPU count, torch threads).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "BENCHMARKS",
    "run_benchmarks",
    "bench_synth",
    "bench_reader",
    "bench_distill",
    "bench_train",
    "bench_node",
    "bench_onnx",
    "bench_bag",
    "bench_cuda",
    "bench_detect",
    "DETECT_RUNTIMES",
]

Benchmark = Callable[[int, Path], dict[str, float]]


def bench_synth(repeats: int, workdir: Path) -> dict[str, float]:
    """``synth_samples_per_s``: keyframes per second written with all their sweeps (2 scenes x 4 samples, all
    sensors and camera sweeps, at 1600x900), median over repeats; the same with camera sweeps off; and
    ``synth_samples_per_s_nuscenes_rig``, the surround rig's (6 cameras, 5 radars) with camera sweeps off."""
    from imkd_ros.data.synth import write_dataset

    out: dict[str, float] = {}
    runs = (
        ("synth_samples_per_s", True, "front"),
        ("synth_samples_per_s_no_camera_sweeps", False, "front"),
        ("synth_samples_per_s_nuscenes_rig", False, "nuscenes"),
    )
    for key, cam_sweeps, rig in runs:
        rates = []
        for r in range(repeats):
            root = workdir / f"synth-{key}-{r}"
            t0 = time.perf_counter()
            write_dataset(root, scenes=2, samples_per_scene=4, seed=r, weathers=("clear",), camera_sweeps=cam_sweeps,
                          rig=rig)  # fmt: skip
            rates.append(8 / (time.perf_counter() - t0))
        out[key] = statistics.median(rates)
    return out


def bench_reader(repeats: int, workdir: Path) -> dict[str, float]:
    """``reader_frames_per_s``: Frames per second read (image, 6 radar sweeps, LiDAR, GT) from a small dataset; the
    training frame cache's miss and hit times (:func:`_bench_frame_cache`)."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset

    root = workdir / "reader-data"
    write_dataset(root, scenes=2, samples_per_scene=6, seed=0, weathers=("clear",), camera_sweeps=False)
    reader = NuScenesReader(root, "v1.0-synth")
    tokens = reader.split_samples("synth_train") + reader.split_samples("synth_val")
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for tok in tokens:
            reader.frame(tok)
        rates.append(len(tokens) / (time.perf_counter() - t0))
    return {"reader_frames_per_s": statistics.median(rates), **_bench_frame_cache(workdir)}


def _bench_frame_cache(workdir: Path) -> dict[str, float]:
    """A surround keyframe (``--rig nuscenes``, LiDAR too) through ``imkd train --stream --frame-cache``'s cache, for
    the 352x128 surround student: ``frame_cache_miss_ms_median`` (read from the dataset, shrunk, written),
    ``frame_cache_hit_ms_median`` (read back), ``frame_cache_mb_per_frame``."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.model.preprocess import shrink_frame
    from imkd_ros.training.frame_cache import FrameCache
    from imkd_ros.training.train import model_config_for

    root = workdir / "frame-cache-data"
    write_dataset(root, scenes=1, samples_per_scene=5, seed=3, weathers=("clear",), camera_sweeps=False, rig="nuscenes")
    options = {"dataroot": root, "version": "v1.0-synth", "load_lidar": True}
    reader = NuScenesReader(**options)
    config = model_config_for("fusion", grid="surround", image_size=(352, 128))
    cache = FrameCache(workdir / "frame-cache", options, config)
    times: dict[str, list[float]] = {"miss": [], "hit": []}
    for kind in ("miss", "hit"):
        for tok in reader.sample_tokens:
            t0 = time.perf_counter()
            cache.get(tok, lambda tok=tok: shrink_frame(reader.frame(tok), config))
            times[kind].append((time.perf_counter() - t0) * 1e3)
    sizes = [cache.path(t).stat().st_size / 1e6 for t in reader.sample_tokens]
    return {
        "frame_cache_miss_ms_median": statistics.median(times["miss"]),
        "frame_cache_hit_ms_median": statistics.median(times["hit"]),
        "frame_cache_mb_per_frame": statistics.median(sizes),
    }


def _median_ms(
    fn: Callable[[], object], repeats: int, warmup: int = 3, sync: Callable[[], None] | None = None
) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_models(repeats: int, workdir: Path) -> dict[str, float | str]:
    """Detector latency, batch 1, default configs, full eval forward including decoding, on 2 CPU threads (and on
    CUDA when available): ``student_forward_ms_median``, the same student exported to ONNX and run in ONNX Runtime
    on 2 threads with the same pre-processing and decoding (``student_ort_ms_median``, ``student_ort_speedup`` =
    PyTorch / ONNX Runtime), ``student_params``, ``student_gflops``, the lift-splat
    pooling (``student_lift_splat_ms_median``) and the fusion (``student_fusion_ms_median``) timed on their own,
    and the camera-only, radar-only and teacher models' medians; the surround rig's full detect
    (:func:`bench_surround`: ``surround_detect_ms_median``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from imkd_ros.model import ModelConfig, Student, Teacher
    from imkd_ros.model.lift_splat import frustum_cell_index, splat
    from imkd_ros.model.profile import count_parameters, example_inputs

    reps = max(10, repeats * 7)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    out: dict[str, float] = {"torch_threads": 2.0}
    try:
        cfg = ModelConfig.default()
        student = Student(config=cfg).eval()
        inputs = example_inputs(cfg)
        with torch.inference_mode():
            out["student_forward_ms_median"] = _median_ms(lambda: student(inputs), reps)
            runtime = _ort_runtime(student, workdir / "models-student.onnx", threads=2)
            out["student_ort_ms_median"] = _median_ms(lambda: runtime(inputs), reps)
            out["student_ort_speedup"] = out["student_forward_ms_median"] / out["student_ort_ms_median"]
            out["student_params"] = float(count_parameters(student))
            with FlopCounterMode(display=False) as fc:
                student.features(inputs)
            out["student_gflops"] = fc.get_total_flops() / 1e9
            feats = student.features(inputs)
            cam = student.camera_bev
            img_feats = cam.backbone(inputs.images.flatten(0, 1))
            from imkd_ros.model.depth import camera_parameters

            k, c2e = feats.intrinsics, feats.cam_to_ego
            camera = camera_parameters(k.flatten(0, 1), c2e.flatten(0, 1), cfg.image.input_size)
            depth_logits, context = cam.depth_net(img_feats, camera)

            def lift_splat() -> object:
                index = frustum_cell_index(k, c2e, cfg.image, cfg.camera, cfg.grid)
                return splat(depth_logits.softmax(dim=1), context, index, cfg.grid)

            out["student_lift_splat_ms_median"] = _median_ms(lift_splat, reps)
            out["student_fusion_ms_median"] = _median_ms(
                lambda: student.fuser(feats.camera_bev, feats.radar_bev, feats.radar_intensity), reps
            )
            for name, mc in (
                ("camera_only", ModelConfig.default(("camera",))),
                ("radar_only", ModelConfig.default(("radar",))),
                ("teacher", ModelConfig.default(("lidar",))),
            ):
                m = (Teacher(config=mc) if mc.is_teacher else Student(config=mc)).eval()
                x = example_inputs(mc)
                out[f"{name}_forward_ms_median"] = _median_ms(lambda m=m, x=x: m(x), reps)
                out[f"{name}_params"] = float(count_parameters(m))
            if torch.cuda.is_available():
                dev = torch.device("cuda")
                s_gpu = Student(config=cfg).to(dev).eval()
                x_gpu = example_inputs(cfg, device=dev)
                out["student_forward_ms_median_cuda"] = _median_ms(
                    lambda: s_gpu(x_gpu), reps, warmup=10, sync=torch.cuda.synchronize
                )
    finally:
        torch.set_num_threads(threads)
    return {**out, **bench_surround(repeats, workdir)}


def _ort_runtime(student: object, path: Path, threads: int) -> object:
    """``student`` exported to ``path`` and loaded in an :class:`~imkd_ros.inference.ort_backend.OrtStudent`."""
    from imkd_ros.inference.export_onnx import export_student
    from imkd_ros.inference.ort_backend import OrtStudent

    return OrtStudent(export_student(student, path), student.config, threads=threads)


def bench_onnx(repeats: int, workdir: Path) -> dict[str, float]:
    """The shipped default student (``models/student_imkd.pt``; a random default-size one where none is shipped)
    in eager PyTorch and in ONNX Runtime, batch 1, 2 threads each, example inputs at the model-input size (300 radar
    points), each call with pre-processing and decoding; the two alternate call by call so that load on the machine hits
    both alike. ``shipped_student_forward_ms_median`` (PyTorch), ``shipped_student_ort_ms_median``,
    ``shipped_student_ort_speedup`` (PyTorch / ONNX Runtime), ``shipped_student_ort_graph_ms_median``
    (``session.run`` alone), ``onnx_export_s``; parity on synthetic frames (1 scene x 3 keyframes at 1600x900, the
    ``Detector`` with either backend): ``onnx_parity_max_box_diff`` (largest difference of any box field, ``inf``
    when a count or label differs) and ``onnx_parity_max_heatmap_diff`` (logits, on the example inputs)."""
    import torch

    from imkd_ros.apps.node_bench import bench_checkpoint
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.inference.detector import Detector
    from imkd_ros.inference.export_onnx import graph_inputs
    from imkd_ros.inference.ort_backend import box_difference, torch_parity
    from imkd_ros.model.profile import example_inputs

    reps = max(10, repeats * 7)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    out: dict[str, float] = {}
    try:
        ckpt = bench_checkpoint(workdir)
        torch_det = Detector.from_checkpoint(ckpt)
        student = torch_det.model
        t0 = time.perf_counter()
        runtime = _ort_runtime(student, workdir / "shipped-student.onnx", threads=2)
        out["onnx_export_s"] = time.perf_counter() - t0
        inputs = example_inputs(student.config, num_radar=300)
        feed = {k: v.numpy() for k, v in graph_inputs(student.config, inputs).items()}
        with torch.inference_mode():
            for _ in range(3):
                student(inputs)
                runtime(inputs)
            times: dict[str, list[float]] = {"forward": [], "ort": [], "ort_graph": []}
            calls = {"forward": lambda: student(inputs), "ort": lambda: runtime(inputs)}
            calls["ort_graph"] = lambda: runtime.session.run(None, feed)
            for _ in range(reps):
                for key, fn in calls.items():
                    t0 = time.perf_counter()
                    fn()
                    times[key].append((time.perf_counter() - t0) * 1e3)
        for key, values in times.items():
            out[f"shipped_student_{key}_ms_median"] = statistics.median(values)
        out["shipped_student_ort_speedup"] = (
            out["shipped_student_forward_ms_median"] / out["shipped_student_ort_ms_median"]
        )
        out["onnx_parity_max_heatmap_diff"] = torch_parity(student, runtime, inputs)["heatmap"]
        root = workdir / "onnx-data"
        write_dataset(root, scenes=1, samples_per_scene=3, seed=1, weathers=("clear",), camera_sweeps=False)
        reader = NuScenesReader(root, load_lidar=False)
        frames = [reader.frame(t) for t in reader.sample_tokens]
        ort_det = Detector.from_checkpoint(ckpt, backend="onnxruntime", onnx_path=runtime.path, threads=2)
        pairs = zip(torch_det.detect_batch(frames), ort_det.detect_batch(frames), strict=True)
        diffs = [box_difference(a, b) for a, b in pairs]
        out["onnx_parity_max_box_diff"] = max(diffs)
    finally:
        torch.set_num_threads(threads)
    return out


#: (backend, precision) pairs ``imkd bench --only detect`` times; the fastest one that keeps NDS within 0.005 of fp32
#: is the node's default (README, deployment).
DETECT_RUNTIMES: tuple[tuple[str, str], ...] = (
    ("torch", "fp32"),
    ("torch", "bf16"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
)


def _detect_spans(det: object, frame: object, reps: int) -> dict[str, float]:
    """Medians of a graph runtime's detect parts on ``frame``: pre-processing (image fit, collate, graph inputs),
    the graph, post-processing (decoding, boxes, Doppler refinement)."""
    from imkd_ros.inference.detector import model_inputs
    from imkd_ros.inference.export_onnx import graph_inputs
    from imkd_ros.model.decode import decode
    from imkd_ros.model.doppler import refine_velocity

    rt = det.runtime

    def pre() -> dict:
        g = graph_inputs(rt.config, model_inputs(det.model, det._collate([frame])), rt.geometry)
        return {n: g[n][0:1].numpy() for n in rt.input_names}

    feed = pre()
    head = rt.head(model_inputs(det.model, det._collate([frame])))

    def post() -> object:
        return refine_velocity(decode(head, det.config)[0].to_boxes(), frame.radar, det.doppler)

    return {
        "preprocess": _median_ms(pre, reps),
        "graph": _median_ms(lambda: rt.run_graph(feed), reps),
        "postprocess": _median_ms(post, reps),
    }


def bench_detect(repeats: int, workdir: Path) -> dict[str, float | str]:
    """Full ``Detector.detect`` of the shipped default student on synthetic 1600x900 frames (the 4 keyframes of a
    synth_val scene), batch 1, 2 threads, for each backend x precision of :data:`DETECT_RUNTIMES` (where the CPU runs
    it), each in a fresh process from its main thread (:func:`~imkd_ros.apps.node_bench.fresh_main_thread_ms`: one
    runtime per process, as in the node; in one process an idle PyTorch pool spinning after its turn slows the next
    runtime), the runtimes in turns over two rounds so that load on the machine hits all alike:
    ``detect_<backend>_<precision>_ms_median``; ``student_detect_ms_median`` with the default settings
    (``backend="auto"``, ``precision="auto"``: the node's), the fastest as ``student_fastest_detect_ms_median`` /
    ``student_fastest_backend`` / ``student_fastest_precision`` and its spans
    ``student_fastest_{preprocess,graph,postprocess}_ms_median`` (:func:`_detect_spans`, in this process)."""
    import torch

    from imkd_ros.apps.node_bench import bench_checkpoint, fresh_main_thread_ms
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.inference.detector import Detector, resolve_backend, resolve_precision
    from imkd_ros.inference.openvino_backend import cpu_runs_bf16
    from imkd_ros.model.checkpoint import load_checkpoint

    root = workdir / "detect-data"
    write_dataset(root, scenes=2, samples_per_scene=4, seed=1, weathers=("clear",), camera_sweeps=False)
    ckpt = bench_checkpoint(workdir)
    model = load_checkpoint(ckpt).build("cpu")
    auto = resolve_backend("auto", model, "cpu")
    runtimes = [(b, p) for b, p in DETECT_RUNTIMES if p == "fp32" or b == "torch" or cpu_runs_bf16()]
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runtimes}
    for _ in range(2):
        for backend, precision in runtimes:
            times[(backend, precision)] += fresh_main_thread_ms(root, ckpt, 2, f"{backend}:{precision}", repeats)
    medians = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, float | str] = {f"detect_{b}_{p}_ms_median": v for (b, p), v in medians.items()}
    out["student_detect_ms_median"] = medians[(auto, resolve_precision(auto, "auto"))]
    fastest = min(medians, key=medians.__getitem__)
    out["student_fastest_detect_ms_median"] = medians[fastest]
    out["student_fastest_backend"], out["student_fastest_precision"] = fastest
    if fastest[0] != "torch":
        saved = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            det = Detector.from_checkpoint(ckpt, backend=fastest[0], precision=fastest[1], threads=2)
            reader = NuScenesReader(root, load_lidar=False)
            frame = reader.frame(reader.split_samples("synth_val")[0])
            with torch.inference_mode():
                spans = _detect_spans(det, frame, max(10, repeats * 5))
        finally:
            torch.set_num_threads(saved)
        out.update({f"student_fastest_{k}_ms_median": v for k, v in spans.items()})
    return out


def bench_surround(repeats: int, workdir: Path) -> dict[str, float | str]:
    """The surround rig's full detect (six 1600x900 cameras, five radars; ``imkd synth --rig nuscenes``, 1 scene x 3
    keyframes): ``surround_detect_ms_median`` with the default runtime (``auto:auto``, the CPU's fastest:
    ``surround_backend`` / ``surround_precision``) and
    ``surround_detect_torch_ms_median`` with PyTorch, 2 intra-op threads, the default-size student on the surround
    grid (+-51.2 m, ``imkd train --grid surround``). ``models/student_nuscenes.pt`` when shipped, else random weights
    of the same architecture (``surround_model``): latency does not depend on the weights."""
    import torch

    from imkd_ros.core.shipped import shipped_file
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.inference.detector import Detector, torch_threads_for
    from imkd_ros.model import Student
    from imkd_ros.training.train import model_config_for

    root = workdir / "surround-data"
    write_dataset(root, scenes=1, samples_per_scene=3, seed=2, weathers=("clear",), camera_sweeps=False, rig="nuscenes")
    reader = NuScenesReader(root, load_lidar=False)
    frames = [reader.frame(t) for t in reader.sample_tokens]
    try:
        path = shipped_file("models/student_nuscenes.pt")
        model, name = None, str(path)
    except FileNotFoundError:
        torch.manual_seed(0)
        model, name = Student(config=model_config_for("fusion", "default", "surround")).eval(), "random weights"
    saved = torch.get_num_threads()
    out: dict[str, float | str] = {"surround_model": name, "surround_cameras": float(len(frames[0].cameras))}
    reps = max(5, repeats * 3)
    try:
        for backend, key in (
            ("auto", "surround_detect_ms_median"),
            ("torch", "surround_detect_torch_ms_median"),
        ):
            opts = {"backend": backend, "threads": 2, "precision": "auto"}
            det = Detector(model, **opts) if model is not None else Detector.from_checkpoint(path, **opts)
            torch.set_num_threads(torch_threads_for(det.backend, 2))
            if backend == "auto":
                out["surround_backend"], out["surround_precision"] = det.backend, det.precision
            det.detect(frames[0])  # warm-up (and the six-camera export)
            out[key] = _median_ms(lambda det=det: [det.detect(f) for f in frames], reps) / len(frames)
    finally:
        torch.set_num_threads(saved)
    return out


def bench_cuda(repeats: int, workdir: Path) -> dict[str, float | str]:
    """The shipped default student on CUDA, batch 1 (``{"cuda_available": 0.0}`` where there is no GPU): full
    ``Detector.detect`` on synthetic 1600x900 frames (1 scene x 3 keyframes; pre-processing on the CPU, the network
    and decoding on the GPU) in fp32 (``cuda_detect_ms_median``, ``cuda_detect_fps``) and under bf16 autocast
    (``cuda_detect_bf16_ms_median``), the network alone on the model-input tensors already on the GPU
    (``cuda_graph_ms_median``, ``cuda_graph_bf16_ms_median``), the boxes' largest difference to the CPU's
    (``cuda_parity_max_box_diff``, ``cuda_bf16_parity_max_box_diff``: see
    :func:`~imkd_ros.inference.ort_backend.box_difference`) and the surround student's full six-camera detect
    (``cuda_surround_detect_ms_median``; random weights until ``models/student_nuscenes.pt`` is shipped)."""
    import torch

    if not torch.cuda.is_available():
        return {"cuda_available": 0.0}
    from imkd_ros.apps.node_bench import bench_checkpoint
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.inference.detector import Detector
    from imkd_ros.inference.ort_backend import box_difference
    from imkd_ros.model import Student
    from imkd_ros.model.profile import example_inputs
    from imkd_ros.training.train import model_config_for

    reps, sync = max(20, repeats * 10), torch.cuda.synchronize
    out: dict[str, float | str] = {"cuda_available": 1.0, "cuda_device": torch.cuda.get_device_name()}
    root = workdir / "cuda-data"
    write_dataset(root, scenes=1, samples_per_scene=3, seed=1, weathers=("clear",), camera_sweeps=False)
    reader = NuScenesReader(root, load_lidar=False)
    frames = [reader.frame(t) for t in reader.sample_tokens]
    ckpt = bench_checkpoint(workdir)
    cpu_boxes = Detector.from_checkpoint(ckpt, backend="torch").detect_batch(frames)
    det = Detector.from_checkpoint(ckpt, device="cuda", backend="torch")
    inputs = example_inputs(det.config, num_radar=300, device=torch.device("cuda"))
    bf16 = torch.autocast("cuda", dtype=torch.bfloat16)
    with torch.inference_mode():
        for key, ctx in (("", contextlib.nullcontext()), ("_bf16", bf16)):
            with ctx:
                out[f"cuda_detect{key}_ms_median"] = _median_ms(
                    lambda: [det.detect(f) for f in frames], reps, warmup=3, sync=sync
                ) / len(frames)
                out[f"cuda_graph{key}_ms_median"] = _median_ms(lambda: det.model(inputs), reps, warmup=10, sync=sync)
                pairs = zip(cpu_boxes, [det.detect(f) for f in frames], strict=True)
                out[f"cuda{key}_parity_max_box_diff"] = max(box_difference(a, b) for a, b in pairs)
    out["cuda_detect_fps"] = 1e3 / float(out["cuda_detect_ms_median"])
    surround_root = workdir / "cuda-surround"
    write_dataset(surround_root, scenes=1, samples_per_scene=2, seed=2, weathers=("clear",), camera_sweeps=False,
                  rig="nuscenes")  # fmt: skip
    sr = NuScenesReader(surround_root, load_lidar=False)
    surround = [sr.frame(t) for t in sr.sample_tokens]
    torch.manual_seed(0)
    sdet = Detector(Student(config=model_config_for("fusion", "default", "surround")), device="cuda", backend="torch")
    out["cuda_surround_detect_ms_median"] = _median_ms(
        lambda: [sdet.detect(f) for f in surround], reps, warmup=3, sync=sync
    ) / len(surround)
    return out


def _train_step(cfg: object, batch: object, precision: str) -> Callable[[], None]:
    """One training step of a fresh default student (seed 0) on ``batch``, in ``precision``."""
    import torch

    from imkd_ros.model.student import Student
    from imkd_ros.training.train import step_losses

    torch.manual_seed(0)
    model = Student(config=cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        losses = step_losses(model, batch, model, precision=precision)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()

    return step


def bench_train(repeats: int, workdir: Path) -> dict[str, float]:
    """Training step of the default fusion student (forward, losses, backward, AdamW; batch 4 of real synthetic
    frames, 1 thread): ``train_step_fp32_ms_median`` and ``train_step_bf16_ms_median`` (``--precision bf16``:
    :mod:`imkd_ros.model.precision`), ``train_step_bf16_speedup`` = fp32 / bf16 (below 1 on a CPU without
    bfloat16 instructions: keep fp32 there)."""
    import torch

    from imkd_ros.data.dataset import collate_frames
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.model.preprocess import shrink_frame
    from imkd_ros.training.train import model_config_for

    root = workdir / "train-frames"
    write_dataset(root, scenes=1, samples_per_scene=4, seed=0, weathers=("clear",), camera_sweeps=False)
    cfg = model_config_for("fusion")
    reader = NuScenesReader(dataroot=root, version="v1.0-synth", lidar_sweeps=1, load_lidar=True)
    batch = collate_frames([shrink_frame(reader.frame(t), cfg) for t in reader.split_samples("synth_all")[:4]])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, float] = {}
    try:
        for precision in ("fp32", "bf16"):
            out[f"train_step_{precision}_ms_median"] = _median_ms(
                _train_step(cfg, batch, precision), max(5, repeats * 2), warmup=2
            )
    finally:
        torch.set_num_threads(threads)
    out["train_step_bf16_speedup"] = out["train_step_fp32_ms_median"] / out["train_step_bf16_ms_median"]
    return out


def bench_distill(repeats: int, workdir: Path) -> dict[str, float]:
    """Distillation overheads at the default size (C = 48, 64 x 64 head grid, 10 classes, batch 4):
    ``distill_losses_ms_median``, forward + backward of all three stages' losses and adapters on random maps (what
    distillation adds to a training step besides the student); ``target_cache_write_mb_per_s`` and
    ``target_cache_read_mb_per_s``, a 32-sample cache (float16, about 0.5 MB per sample; reads check sha256)."""
    import torch

    from imkd_ros.distill.adapters import DistillHeads
    from imkd_ros.distill.config import DistillConfig
    from imkd_ros.distill.intensity import combine_intensity
    from imkd_ros.distill.losses import (
        channel_kl,
        gate_kl,
        heatmap_kl,
        radar_feature_loss,
        response_cells,
        teacher_foreground,
        teacher_object_count,
    )

    cfg = DistillConfig()
    b, c, h, w, k = 4, 48, 64, 64, 10
    heads = DistillHeads(c, c, cfg)
    g = torch.Generator().manual_seed(0)
    radar, bev, gates = (torch.rand(b, c, h, w, generator=g, requires_grad=True) for _ in range(3))
    logits = torch.randn(b, k, h, w, generator=g, requires_grad=True)
    teacher, inten, heat = torch.rand(b, c, h, w, generator=g), torch.rand(b, 3, h, w), torch.rand(b, k, h, w) * 0.3

    occupied = (torch.rand(b, 1, h, w, generator=g) < 0.03).float()

    def step() -> None:
        i = combine_intensity(inten, cfg.intensity_mix)
        fg = teacher_foreground(heat, cfg.foreground_threshold)
        n = teacher_object_count(heat, cfg.foreground_threshold)
        cells = response_cells(logits, heat, cfg.confidence_threshold)
        loss = (
            radar_feature_loss(heads.adapt_radar(radar), teacher, i, fg, occupied, n, cfg.object_radius)
            + channel_kl(heads.adapt_fused(bev), teacher, i * fg, cfg.temperature, n)
            + heatmap_kl(logits, heat, cells, n)
            + gate_kl(torch.sigmoid(gates), inten[:, 0:1] * occupied)
        )
        loss.backward()

    out = {"distill_losses_ms_median": _median_ms(step, max(repeats, 1))}
    out.update(_bench_target_cache(repeats, workdir, c, h, w, k))
    return out


def _bench_target_cache(repeats: int, workdir: Path, c: int, h: int, w: int, k: int) -> dict[str, float]:
    """``target_cache_write_mb_per_s`` and ``target_cache_read_mb_per_s`` of :func:`bench_distill`: 32 random
    samples of ``c`` feature channels, 3 intensity maps, ``k`` heatmaps on an ``h`` x ``w`` grid."""
    import numpy as np

    from imkd_ros.distill.cache import CacheHeader, TargetCache, TargetCacheWriter, TargetGrid, TeacherTargets
    from imkd_ros.model import ModelConfig

    grid = TargetGrid.from_model_config(ModelConfig.default())
    rng = np.random.default_rng(0)
    samples = [
        TeacherTargets(
            f"s{j:03d}",
            j,
            rng.random((c, h, w), dtype=np.float32),
            rng.random((3, h, w), dtype=np.float32),
            rng.random((k, h, w), dtype=np.float32),
            np.zeros((5, 9), np.float32),
            np.zeros(5, np.int32),
            np.ones(5, np.float32),
        )
        for j in range(32)
    ]
    header = CacheHeader(grid, c, tuple(ModelConfig.default().classes))
    plan = [[s.sample_token for s in samples[q : q + 8]] for q in range(0, 32, 8)]
    writes, reads = [], []
    for r in range(max(repeats, 1)):
        root = workdir / f"targets-{r}"
        t0 = time.perf_counter()
        writer = TargetCacheWriter(root, header, plan, 8)
        for q in writer.pending():
            writer.write_shard(q, samples[q * 8 : (q + 1) * 8])
        writer.finish()
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cache = TargetCache(root)
        cache.load_all(verify=True)
        reads.append(time.perf_counter() - t0)
    mb = cache.nbytes() / 1e6
    return {
        "target_cache_write_mb_per_s": mb / statistics.median(writes),
        "target_cache_read_mb_per_s": mb / statistics.median(reads),
    }


def bench_node(repeats: int, workdir: Path) -> dict[str, float]:
    """The detector node: ``node_e2e_ms_median``, ``node_model_ms_median``, ``node_latency_ratio``, CPU use and
    behaviour at 3x the sensor rate over about a minute, resident memory growth included
    (``node_overload_rss_growth_mb``; see :mod:`imkd_ros.apps.node_bench`)."""
    from imkd_ros.apps.node_bench import bench_node as run

    return run(repeats, workdir)


def bench_bag(repeats: int, workdir: Path) -> dict[str, float]:
    """The bag pipelines: ``bag_export_*``, ``bag_teacher_targets_*`` (:func:`imkd_ros.apps.bag_bench.bench_bag_io`) and
    ``bag_replay_eval_*`` (:func:`imkd_ros.apps.replay_bench.bench_replay_eval`, 1 torch thread)."""
    from imkd_ros.apps.bag_bench import bench_bag_io
    from imkd_ros.apps.replay_bench import bench_replay_eval

    out = bench_bag_io(repeats, workdir)
    out.update(bench_replay_eval(repeats, workdir, threads=1))
    return out


BENCHMARKS: tuple[tuple[str, Benchmark], ...] = (
    ("synth", bench_synth),
    ("reader", bench_reader),
    ("models", bench_models),
    ("onnx", bench_onnx),
    ("detect", bench_detect),
    ("cuda", bench_cuda),
    ("train", bench_train),
    ("distill", bench_distill),
    ("node", bench_node),
    ("bag", bench_bag),
)


def run_benchmarks(only: str | None = None, repeats: int = 3) -> dict[str, float | str]:
    """Run the benchmarks named in ``only`` (comma list; default all) and return one flat dict."""
    names = [n for n, _ in BENCHMARKS]
    wanted = names if only is None else [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        from imkd_ros.core.errors import InputError

        raise InputError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    results: dict[str, float | str] = {
        "machine": platform.machine(),
        "cpu_count": float(os.cpu_count() or 0),
    }
    with tempfile.TemporaryDirectory(prefix="imkd-bench-") as tmp:
        for name, fn in BENCHMARKS:
            if name in wanted:
                results.update(fn(repeats, Path(tmp)))
    return results
