"""The onnxruntime backend: the Detector's tests pass on both backends, the shipped student gives the same boxes
after NMS in onnxruntime as in PyTorch on synthetic frames, the calibration geometry is cached, and a wrong file,
model, backend or device gives a clear error; detector_node takes the backend as a parameter."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.dataset import collate_frames
from imkd_ros.inference.detector import BACKENDS, Detector, model_inputs
from imkd_ros.inference.export_onnx import export_student
from imkd_ros.inference.openvino_backend import OpenVinoStudent
from imkd_ros.inference.ort_backend import OrtBackendError, OrtStudent, box_difference, providers_for, torch_parity
from imkd_ros.model import ModelConfig, Student, StudentInputs, Teacher
from imkd_ros.model.checkpoint import save_checkpoint
from imkd_ros.model.profile import example_inputs

REPO = Path(__file__).resolve().parents[2]
#: onnxruntime vs PyTorch, default-size student, heatmap logits (measured: about 1e-5).
HEATMAP_ATOL = 1e-4
#: largest difference of any decoded box field (m, rad, m/s, score) for boxes to count as identical.
BOX_ATOL = 1e-3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def detectors(shipped: Path, shipped_onnx: Path) -> dict[str, Detector]:
    return {
        "torch": Detector.from_checkpoint(shipped),
        "onnxruntime": Detector.from_checkpoint(shipped, backend="onnxruntime", onnx_path=shipped_onnx, threads=1),
    }


@pytest.mark.parametrize("backend", ("torch", "onnxruntime"))  # "auto" is one of them (test below)
def test_detector_detects_in_ego_frame(backend: str, detectors: dict[str, Detector], frames: list[Frame]) -> None:
    det = detectors[backend]
    assert det.backend == backend and (det.runtime is None) == (backend == "torch")
    one = det.detect(frames[0])
    batch = det.detect_batch(frames[:2])
    assert isinstance(one, Boxes) and one.frame == "ego" and len(batch) == 2
    assert len(one) > 0 and np.isfinite(one.center).all() and np.isfinite(one.velocity).all()
    assert box_difference(one, batch[0]) < 1e-4  # batching does not change a frame's boxes
    assert np.all(np.diff(one.score) <= 1e-6) and one.score.min() >= det.config.decode.score_threshold
    assert set(one.label.tolist()) <= set(range(10))
    g = det.config.grid
    inside = (one.center[:, 0] >= g.x_range[0] - 1) & (one.center[:, 0] <= g.x_range[1] + 1)
    assert inside.all()
    assert det.detect_batch([]) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_detector_score_threshold(backend: str, shipped: Path, shipped_onnx: Path, frames: list[Frame]) -> None:
    kw = {"backend": backend, "onnx_path": shipped_onnx, "threads": 1} if backend == "onnxruntime" else {}
    det = Detector.from_checkpoint(shipped, score_threshold=0.5, **kw)
    boxes = det.detect(frames[1])
    assert len(boxes) > 0 and boxes.score.min() >= 0.5


def test_backends_give_the_same_boxes_after_nms(detectors: dict[str, Detector], frames: list[Frame]) -> None:
    want = detectors["torch"].detect_batch(frames)
    got = detectors["onnxruntime"].detect_batch(frames)
    assert sum(len(b) for b in want) > 20  # a trained model on real frames: something to compare
    for w, g, f in zip(want, got, frames, strict=True):
        assert box_difference(w, g) < BOX_ATOL, f.token


def test_heatmaps_match_on_synthetic_frames(detectors: dict[str, Detector], frames: list[Frame]) -> None:
    student, runtime = detectors["torch"].model, detectors["onnxruntime"].runtime
    inputs = model_inputs(student, collate_frames(frames[:3]))
    diff = torch_parity(student, runtime, inputs)
    assert diff["heatmap"] < HEATMAP_ATOL and diff["regression"] < HEATMAP_ATOL, diff


def test_geometry_is_cached_per_calibration(shipped_onnx: Path) -> None:
    runtime = OrtStudent(shipped_onnx, threads=1)
    x = example_inputs(runtime.config, num_radar=20)
    first = runtime.head(x)
    runtime.head(x)
    assert len(runtime._geometry) == 1
    moved = x.cam_to_ego.clone()
    moved[0, 0, 0, 3] += 0.5  # camera 0.5 m further forward: other frustum cells
    second = runtime.head(dataclasses.replace(x, cam_to_ego=moved))
    assert len(runtime._geometry) == 2
    assert not torch.equal(first.heatmap, second.heatmap)


def test_a_batch_runs_sample_by_sample(tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = Student(config=ModelConfig.tiny()).eval()
    runtime = OrtStudent(export_student(student, tmp_path / "tiny.onnx"), student.config, threads=1)
    x = example_inputs(student.config, batch_size=2, num_radar=30, seed=4)
    both = runtime.head(x)
    for b in range(2):
        one = runtime.head(StudentInputs(**{k: v[b : b + 1] for k, v in x.tensors().items()}))
        assert torch.equal(one.heatmap[0], both.heatmap[b]) and torch.equal(one.regression[0], both.regression[b])
    assert len(runtime(x)) == 2


def test_without_a_path_the_export_goes_to_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    torch.manual_seed(0)
    student = Student(config=ModelConfig.tiny(("radar",)))
    det = Detector(student, backend="onnxruntime", threads=1)
    cached = list((tmp_path / "imkd_ros" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and det.runtime.path == cached[0]
    assert Detector(student, backend="onnxruntime", threads=1).runtime.path == cached[0]


@pytest.mark.parametrize("runtime", [OrtStudent, OpenVinoStudent])
def test_bad_files_and_models_are_named(runtime: type, tmp_path: Path, shipped_onnx: Path) -> None:
    with pytest.raises(OrtBackendError, match="does not exist"):
        runtime(tmp_path / "nope.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(OrtBackendError, match="cannot be loaded"):
        runtime(garbage)
    foreign = tmp_path / "identity.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(foreign))
    with pytest.raises(OrtBackendError, match="not an imkd student graph"):
        runtime(foreign)
    with pytest.raises(OrtBackendError, match="another config"):
        runtime(shipped_onnx, ModelConfig.tiny())


def test_bad_backends_and_devices_are_named(shipped_onnx: Path) -> None:
    with pytest.raises(ValueError, match="students only"):
        Detector(Teacher(config=ModelConfig.tiny(("lidar",))), backend="onnxruntime")
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        Detector(Student(config=ModelConfig.tiny()), backend="tensorrt")
    with pytest.raises(ValueError, match="threads"):
        OrtStudent(shipped_onnx, threads=0)


def test_cuda_falls_back_to_the_cpu_with_a_warning() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert providers_for("cuda")[0] == "CUDAExecutionProvider"
        return
    with pytest.warns(RuntimeWarning, match="no CUDA execution provider"):
        assert providers_for("cuda") == ["CPUExecutionProvider"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert providers_for("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        providers_for("mps")


def test_box_difference() -> None:
    def boxes(yaw: float, label: int = 0, n: int = 1) -> Boxes:
        z = np.zeros((n, 3))
        return Boxes(z, z + 1, np.full(n, yaw), np.zeros((n, 2)), np.full(n, label), np.ones(n), "ego")

    assert box_difference(boxes(np.pi - 1e-4), boxes(-np.pi + 1e-4)) == pytest.approx(2e-4)  # yaw wraps
    assert box_difference(boxes(0.0), boxes(0.0, label=1)) == float("inf")
    assert box_difference(boxes(0.0), boxes(0.0, n=2)) == float("inf")
    assert box_difference(boxes(0.0, n=0), boxes(1.0, n=0)) == 0.0


def _node(checkpoint: Path, backend: str, cache: Path, precision: str = "fp32") -> subprocess.Popen:
    from imkd_ros.pipeline.env import ros_env

    env = ros_env(domain_id=random.SystemRandom().randint(1, 101))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["XDG_CACHE_HOME"] = str(cache)
    cmd = [sys.executable, "-m", "imkd_ros.nodes.detector_node", "--ros-args"]
    cmd += ["--params-file", str(REPO / "config" / "detector.yaml")]
    cmd += ["-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p", f"backend:={backend}"]
    cmd += ["-p", f"precision:={precision}"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """The process's output until a line matches ``pattern`` (regex), it exits, or ``timeout`` s pass."""
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if re.search(pattern, line):
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return "".join(lines)


def test_detector_node_backend_parameter(tmp_path: Path) -> None:
    cfg = ModelConfig.tiny()
    ckpt = save_checkpoint(tmp_path / "tiny.pt", Student(config=cfg), cfg)
    node = _node(ckpt, "onnxruntime", tmp_path / "cache")
    try:
        text = _read_until(node, r"model .*\(onnxruntime\b", timeout=120)  # logged once the model is loaded
        node.send_signal(signal.SIGINT)
        rc = node.wait(timeout=30)
        text += node.stdout.read()  # what it said while stopping (a traceback if it did not stop cleanly)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert re.search(r"model .*\(onnxruntime\b", text) and rc == 0, text
    assert len(list((tmp_path / "cache" / "imkd_ros" / "onnx").glob("*.onnx"))) == 1

    bad = _node(ckpt, "tensorrt", tmp_path / "cache")
    out, _ = bad.communicate(timeout=120)
    assert bad.returncode == 2 and "parameter backend: 'tensorrt' is not one of" in out, out
    bad = _node(ckpt, "onnxruntime", tmp_path / "cache", precision="bf16")
    out, _ = bad.communicate(timeout=120)
    assert bad.returncode != 0 and "precision 'bf16': backend 'onnxruntime' runs fp32" in out, out


def test_detector_node_runs_openvino_in_bf16(tmp_path: Path) -> None:
    from imkd_ros.inference.openvino_backend import cpu_runs_bf16

    precision = "bf16" if cpu_runs_bf16() else "fp32"
    cfg = ModelConfig.tiny()
    ckpt = save_checkpoint(tmp_path / "tiny.pt", Student(config=cfg), cfg)
    node = _node(ckpt, "openvino", tmp_path / "cache", precision=precision)
    try:
        text = _read_until(node, r"model .*\(openvino, ", timeout=120)
        node.send_signal(signal.SIGINT)
        rc = node.wait(timeout=30)
        text += node.stdout.read()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert re.search(rf"model .*\(openvino, {precision}, ", text) and rc == 0, text


def test_auto_runs_a_student_on_the_cpus_fastest_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imkd_ros.inference.detector import resolve_backend, resolve_precision, torch_threads_for
    from imkd_ros.inference.openvino_backend import cpu_runs_bf16

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = ModelConfig.tiny()
    student = Student(config=cfg)
    teacher = Teacher(config=ModelConfig.tiny(("lidar",)))
    cpu = "openvino" if cpu_runs_bf16() else "onnxruntime"  # OpenVINO only where it can run bf16
    det = Detector(student, backend="auto", precision="auto", threads=1)
    assert (det.backend, det.precision) == (cpu, "bf16" if cpu_runs_bf16() else "fp32")
    assert Detector(teacher, backend="auto", precision="auto").precision == "fp32"
    assert Detector(teacher, backend="auto").backend == "torch"
    assert resolve_precision("onnxruntime", "auto") == "fp32" and resolve_precision("torch", "auto") == "fp32"
    assert resolve_precision("openvino", "fp32") == "fp32"
    cuda = "torch" if torch.cuda.is_available() else cpu
    assert resolve_backend("auto", student, "cuda") == cuda
    assert resolve_backend("torch", student, "cpu") == "torch"
    with pytest.raises(ValueError, match="'tvm' is not one of"):
        resolve_backend("tvm", student, "cpu")
    # beside ONNX Runtime's or OpenVINO's pool PyTorch keeps one thread (it only normalises and decodes)
    assert torch_threads_for("onnxruntime", 2) == 1 and torch_threads_for("torch", 2) == 2
    assert torch_threads_for("openvino", 2) == 1
