"""ONNX Runtime inference of an exported student (:mod:`imkd_ros.inference.export_onnx`), decoded by the same code as
PyTorch.

``OrtStudent(path)(StudentInputs(images, intrinsics, cam_to_ego, radar, radar_mask)) -> list[Detections]``
takes the inputs of :meth:`imkd_ros.model.Student.forward` (any batch size; the graph runs one sample at a time)
and returns what the student returns in eval mode. Before the graph, in PyTorch: image resize / crop /
normalisation and the camera geometry (cached per calibration, :func:`imkd_ros.model.camera.camera_geometry`);
after it: decoding and circle NMS (:func:`imkd_ros.model.decode.decode`).

Session: graph optimisation ``ORT_ENABLE_ALL``, ``intra_op_num_threads`` from the caller (None: ONNX Runtime's
default, one per physical core), sequential execution. ``device="cuda"`` uses the CUDA execution provider where the
installed onnxruntime has it and falls back to the CPU with a warning otherwise (like
:func:`imkd_ros.inference.detector.resolve_device`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from imkd_ros.core.errors import ImkdError, InputError
from imkd_ros.core.types import Boxes
from imkd_ros.inference.export_onnx import (
    GRAPH_VERSION,
    METADATA_CAMERAS,
    METADATA_CONFIG,
    METADATA_GRAPH,
    OUTPUT_NAMES,
    graph_input_names,
    graph_inputs,
)
from imkd_ros.model.camera import camera_geometry
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.decode import Detections, decode
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.inputs import StudentInputs
from imkd_ros.model.profile import example_inputs
from imkd_ros.model.student import Student

__all__ = [
    "OrtStudent",
    "OrtBackendError",
    "check_graph_metadata",
    "session_options",
    "providers_for",
    "torch_parity",
    "box_difference",
]

#: Calibrations whose geometry is kept (a car has a handful of cameras).
_GEOMETRY_CACHE = 16


class OrtBackendError(ImkdError):
    """An ONNX file that is missing, not an imkd student graph, or exported for another model."""


def session_options(threads: int | None = None):  # -> onnxruntime.SessionOptions (imported lazily)
    """ONNX Runtime session options: ``ORT_ENABLE_ALL``, sequential, ``threads`` intra-op threads (None: default)
    that do not spin while idle, warnings of the runtime not logged."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        so.intra_op_num_threads = int(threads)
    # idle pool threads sleep instead of spinning: the pre-processing and decoding around each run are PyTorch ops
    # whose own threads would otherwise compete with spinning ones for the same cores
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def providers_for(device: str | torch.device) -> list[str]:
    """Execution providers for ``device``: ``"cpu"`` -> CPU; ``"cuda"`` -> CUDA then CPU, or CPU with a
    ``RuntimeWarning`` when the installed onnxruntime has no CUDA provider."""
    import onnxruntime as ort

    kind = torch.device(device).type
    if kind == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        warnings.warn(
            "CUDA requested but this onnxruntime has no CUDA execution provider: running on the CPU",
            RuntimeWarning,
            stacklevel=2,
        )
    elif kind != "cpu":
        raise InputError(f"device {device!r}: the onnxruntime backend runs on 'cpu' or 'cuda'")
    return ["CPUExecutionProvider"]


def check_graph_metadata(path: Path, meta: dict[str, str], config: ModelConfig | None) -> tuple[ModelConfig, int]:
    """The model config and camera count an exported student graph's metadata ``meta`` records, checked.

    Raises:
        OrtBackendError: not an imkd student graph of :data:`GRAPH_VERSION`, or exported from another config than
            ``config`` (None: any).
    """
    if meta.get(METADATA_GRAPH) != GRAPH_VERSION:
        raise OrtBackendError(
            f"ONNX model {path} is not an imkd student graph of version {GRAPH_VERSION} "
            f"(metadata {METADATA_GRAPH}={meta.get(METADATA_GRAPH)!r}); export it again with imkd export-onnx"
        )
    got = ModelConfig.from_dict(json.loads(meta[METADATA_CONFIG]))
    if config is not None and config != got:
        raise OrtBackendError(
            f"ONNX model {path} was exported from model {got.name!r} with another config than the "
            f"checkpoint's ({config.name!r}); export the checkpoint again"
        )
    return got, int(meta.get(METADATA_CAMERAS, "1"))


class OrtStudent:
    """An exported student in an ONNX Runtime session.

    Args:
        path: the ``.onnx`` file from :func:`imkd_ros.inference.export_onnx.export_student`.
        config: the model config it must have been exported from (checked against the file's metadata; None:
            take the file's).
        threads: intra-op threads (None: ONNX Runtime's default).
        device: ``"cpu"`` or ``"cuda"`` (see :func:`providers_for`).

    Raises:
        OrtBackendError: missing file, not an imkd student graph of this version, or another model config.
    """

    def __init__(
        self,
        path: str | Path,
        config: ModelConfig | None = None,
        threads: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise OrtBackendError(f"ONNX model {self.path} does not exist")
        try:
            meta, got = self._open(threads, device)
        except ImkdError:  # our own checks (threads, device), as they are
            raise
        except Exception as exc:  # the runtimes raise their own exception types for unreadable or invalid files
            raise OrtBackendError(f"ONNX model {self.path} cannot be loaded: {exc}") from exc
        self.config, self.cameras = check_graph_metadata(self.path, meta, config)
        self.input_names = graph_input_names(self.config)
        if got != self.input_names:
            raise OrtBackendError(f"ONNX model {self.path} has inputs {got}, expected {self.input_names}")
        self._prepare()
        self._geometry: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.last_graph_s = 0.0  # the graph calls of the last head() (s)

    def _open(self, threads: int | None, device: str | torch.device) -> tuple[dict[str, str], tuple[str, ...]]:
        """Load :attr:`path` into the runtime (here an ONNX Runtime session); return the file's metadata and the
        graph's input names (:meth:`__init__` checks both)."""
        import onnxruntime as ort

        options, providers = session_options(threads), providers_for(device)
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        return self.session.get_modelmeta().custom_metadata_map, tuple(i.name for i in self.session.get_inputs())

    def _prepare(self) -> None:
        """Whatever the runtime does once the file is known to be an imkd student graph (ONNX Runtime: nothing)."""

    @property
    def providers(self) -> list[str]:
        """The session's execution providers."""
        return self.session.get_providers()

    def geometry(self, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~imkd_ros.model.camera.camera_geometry` per sample, cached per calibration of its N cameras:
        ``intrinsics`` ``(B, N, 3, 3)`` of the model-input images and ``cam_to_ego`` ``(B, N, 4, 4)`` ->
        ``(B, N, 16)``, ``(B, N * P)``."""
        cams, idxs = [], []
        for b in range(intrinsics.shape[0]):
            key = intrinsics[b].numpy().tobytes() + cam_to_ego[b].numpy().tobytes()
            hit = self._geometry.get(key)
            if hit is None:
                hit = camera_geometry(intrinsics[b : b + 1], cam_to_ego[b : b + 1], self.config)
                self._geometry[key] = hit
                if len(self._geometry) > _GEOMETRY_CACHE:
                    self._geometry.popitem(last=False)
            else:
                self._geometry.move_to_end(key)
            cams.append(hit[0])
            idxs.append(hit[1])
        return torch.cat(cams), torch.cat(idxs)

    def head(self, x: StudentInputs) -> HeadOutput:
        """Head outputs (heatmap logits ``(B, K, h, w)``, regression ``(B, 10, h, w)``, CPU) for a batch of
        student inputs (those of a modality the model lacks are ignored).

        Raises:
            ModelInputError: a missing input or a wrong shape, naming it; images of another number of cameras
                than the graph was exported for.
        """
        if "camera" in self.config.modalities and x.images is not None and x.images.dim() == 5:
            if x.images.shape[1] != self.cameras:
                raise ModelInputError(
                    f"ONNX model {self.path} was exported for {self.cameras} camera(s), the inputs have "
                    f"{x.images.shape[1]}; export it with cameras={x.images.shape[1]}"
                )
        g = graph_inputs(self.config, x, self.geometry)
        batch = next(iter(g.values())).shape[0]
        outs: list[list[np.ndarray]] = [[] for _ in OUTPUT_NAMES]
        self.last_graph_s = 0.0
        for b in range(batch):
            feed = {name: g[name][b : b + 1].numpy() for name in self.input_names}
            t0 = time.perf_counter()
            graph_out = self.run_graph(feed)
            self.last_graph_s += time.perf_counter() - t0
            for lst, arr in zip(outs, graph_out, strict=True):
                lst.append(arr)
        heat, reg = (torch.from_numpy(lst[0] if len(lst) == 1 else np.concatenate(lst)) for lst in outs)
        return HeadOutput(heat, reg)

    def run_graph(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs (:data:`~imkd_ros.inference.export_onnx.OUTPUT_NAMES` order) for one sample's
        ``feed`` (input name -> array)."""
        return self.session.run(list(OUTPUT_NAMES), feed)

    def __call__(self, x: StudentInputs) -> list[Detections]:
        """One :class:`Detections` per sample (CPU tensors), as :meth:`Student.forward` in eval mode."""
        return decode(self.head(x), self.config)


def torch_parity(student: Student, runtime: OrtStudent, inputs: StudentInputs | None = None) -> dict[str, float]:
    """Largest absolute differences between ``runtime``'s head outputs and ``student.features`` on ``inputs``
    (default: :func:`~imkd_ros.model.profile.example_inputs`, batch 1, 300 radar points):
    ``{"heatmap": ..., "regression": ...}`` (logits; regression in its own units)."""
    if inputs is None:
        inputs = example_inputs(student.config, num_radar=300)
    with torch.inference_mode():
        want = student.eval().features(inputs).head
        got = runtime.head(inputs)
    return {
        "heatmap": float((want.heatmap.cpu() - got.heatmap).abs().max()),
        "regression": float((want.regression.cpu() - got.regression).abs().max()),
    }


def box_difference(a: Boxes, b: Boxes) -> float:
    """Largest absolute difference between two box sets' centre, size, yaw, velocity and score, or ``inf`` when the
    number of boxes or any label differs (0.0 for two empty sets)."""
    if len(a) != len(b) or not np.array_equal(a.label, b.label):
        return float("inf")
    if len(a) == 0:
        return 0.0
    diffs = [np.abs(getattr(a, f) - getattr(b, f)).max() for f in ("center", "size", "velocity", "score")]
    diffs.append(np.abs(np.angle(np.exp(1j * (a.yaw - b.yaw)))).max())  # yaw wrapped to [-pi, pi]
    return float(max(diffs))
