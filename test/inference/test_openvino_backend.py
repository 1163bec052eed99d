"""The OpenVINO backend and the precision option: OpenVINO in fp32 gives PyTorch's boxes on synthetic frames, bf16
(OpenVINO's hint, PyTorch's autocast) really runs in bf16 yet finds the same confident objects, and a precision a
backend does not run, a wrong file or device is named. ``imkd compare`` compares a checkpoint with itself in
another precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.core.errors import InputError
from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.dataset import collate_frames
from imkd_ros.evaluation.compare import _model_names
from imkd_ros.inference.detector import PRECISIONS, Detector, model_inputs, parse_runtime
from imkd_ros.inference.openvino_backend import OpenVinoStudent, cpu_runs_bf16
from imkd_ros.inference.ort_backend import box_difference, torch_parity
from imkd_ros.model import ModelConfig, Student

#: OpenVINO fp32 vs PyTorch, heatmap logits (measured: about 3e-5).
HEATMAP_ATOL = 1e-3
BOX_ATOL = 1e-3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


needs_bf16 = pytest.mark.skipif(not cpu_runs_bf16(), reason="this CPU has no bf16 support (AVX512-BF16 / AMX)")


def _matched_share(want: Boxes, got: Boxes, score: float = 0.3, radius: float = 0.5) -> float:
    """Share of ``want``'s boxes of score >= ``score`` that ``got`` has within ``radius`` m with the same label."""
    w = want[want.score >= score]
    if len(w) == 0:
        return 1.0
    hits = 0
    for c, lab in zip(w.center, w.label, strict=True):
        d = np.hypot(*(got.center[:, :2] - c[:2]).T)
        hits += bool(np.any((d <= radius) & (got.label == lab)))
    return hits / len(w)


def test_openvino_fp32_gives_pytorchs_boxes(shipped: Path, shipped_onnx: Path, frames: list[Frame]) -> None:
    ref = Detector.from_checkpoint(shipped)
    det = Detector.from_checkpoint(shipped, backend="openvino", onnx_path=shipped_onnx, threads=1)
    assert det.backend == "openvino" and det.precision == "fp32" and isinstance(det.runtime, OpenVinoStudent)
    inputs = model_inputs(ref.model, collate_frames(frames[:3]))
    diff = torch_parity(ref.model, det.runtime, inputs)
    assert diff["heatmap"] < HEATMAP_ATOL and diff["regression"] < HEATMAP_ATOL, diff
    want, got = ref.detect_batch(frames), det.detect_batch(frames)
    assert sum(len(b) for b in want) > 20
    for w, g, f in zip(want, got, frames, strict=True):
        assert box_difference(w, g) < BOX_ATOL, f.token
    assert det.runtime.providers == ["OpenVINO CPU (fp32)"]


@needs_bf16
def test_bf16_runs_in_bf16_and_finds_the_same_objects(shipped: Path, shipped_onnx: Path, frames: list[Frame]) -> None:
    ref = Detector.from_checkpoint(shipped)
    inputs = model_inputs(ref.model, collate_frames(frames[:2]))
    want = ref.detect_batch(frames)
    for backend in ("openvino", "torch"):
        det = Detector.from_checkpoint(shipped, backend=backend, precision="bf16", onnx_path=shipped_onnx, threads=1)
        if backend == "openvino":
            diff = torch_parity(ref.model, det.runtime, inputs)["heatmap"]
        else:
            with torch.inference_mode():
                fp32 = ref.model.features(inputs).head.heatmap
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    bf16 = det.model.features(inputs).head.heatmap.float()
            diff = float((bf16 - fp32).abs().max())
        assert diff > 1e-2, f"{backend} bf16 gives fp32's logits: not running in bf16"
        got = det.detect_batch(frames)
        shares = [_matched_share(w, g) for w, g in zip(want, got, strict=True)]
        assert np.mean(shares) >= 0.9, (backend, shares)
        assert all(
            np.isfinite(g.center).all() and g.score.dtype == w.score.dtype for w, g in zip(want, got, strict=True)
        )


def test_precisions_a_backend_does_not_run_are_named(shipped_onnx: Path) -> None:
    """(Bad files and foreign graphs: test_ort_backend.test_bad_files_and_models_are_named, for both runtimes.)"""
    student = Student(config=ModelConfig.tiny())
    with pytest.raises(InputError, match="backend 'onnxruntime' runs fp32"):
        Detector(student, backend="onnxruntime", precision="bf16")
    with pytest.raises(InputError, match="backend 'torch' runs fp32, bf16"):
        Detector(student, precision="int8")
    with pytest.raises(InputError, match="openvino backend runs fp32, bf16"):
        OpenVinoStudent(shipped_onnx, precision="fp16")
    with pytest.raises(InputError, match="runs on the CPU"):
        OpenVinoStudent(shipped_onnx, device="cuda")
    with pytest.raises(InputError, match="threads"):
        OpenVinoStudent(shipped_onnx, threads=0)
    assert set(PRECISIONS) == {"torch", "onnxruntime", "openvino"}


def test_runtimes_parse_and_name_compared_models() -> None:
    assert parse_runtime("openvino:bf16") == ("openvino", "bf16")
    assert parse_runtime("onnxruntime") == ("onnxruntime", "fp32")
    with pytest.raises(InputError, match="backend 'tensorrt' is not one of"):
        parse_runtime("tensorrt:int8")
    ckpt = Path("models/student_imkd.pt")
    names = _model_names([ckpt, ckpt, ckpt], [("torch", "fp32"), ("openvino", "bf16"), ("torch", "fp32")])
    assert names == ["student_imkd", "student_imkd.openvino-bf16", "student_imkd-2"]


def test_masked_radar_padding_changes_no_output(shipped: Path, shipped_onnx: Path, frames: list[Frame]) -> None:
    """OpenVINO pads the radar points to a bucket with masked rows: the graph's outputs on a frame are those of
    the unpadded points (fp32, to the bit), and the padding is what it says."""
    from imkd_ros.inference.export_onnx import graph_inputs
    from imkd_ros.inference.openvino_backend import RADAR_BUCKET, pad_radar

    runtime = OpenVinoStudent(shipped_onnx, threads=1, precision="fp32")
    student = Detector.from_checkpoint(shipped).model
    g = graph_inputs(runtime.config, model_inputs(student, collate_frames(frames[:1])), runtime.geometry)
    feed = {n: g[n][0:1].numpy() for n in runtime.input_names}
    n = feed["radar"].shape[1]
    padded = pad_radar(feed, RADAR_BUCKET)
    assert padded["radar"].shape[1] % RADAR_BUCKET == 0 and padded["radar"].shape[1] > n
    assert np.array_equal(padded["radar"][0, :n], feed["radar"][0]) and not padded["radar_mask"][0, n:].any()
    raw = runtime._request.infer(feed)  # the graph on the raw points, without run_graph's padding
    for port, got in zip(runtime._outputs, runtime.run_graph(feed), strict=True):
        assert np.array_equal(np.array(raw[port]), got)
