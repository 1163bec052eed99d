"""Inference API: ``Detector.from_checkpoint(path, device).detect(frame) -> Boxes`` (no ROS import).

The detector takes :class:`~imkd_ros.core.types.Frame` objects (what the reader, the bag pipelines and the ROS node
produce), batches them with :func:`imkd_ros.data.dataset.collate_frames`, runs the network and returns boxes in the
ego frame of each frame (``Boxes.frame == "ego"``) with labels, scores and velocity (m/s, ego frame).

Backends (:data:`BACKENDS`): ``"auto"`` picks one (:func:`resolve_backend`); ``"torch"`` runs the PyTorch model;
``"onnxruntime"`` and ``"openvino"`` (students only) run the student's ONNX export
(:mod:`imkd_ros.inference.export_onnx`) in ONNX Runtime (:mod:`imkd_ros.inference.ort_backend`) or OpenVINO
(:mod:`imkd_ros.inference.openvino_backend`) with the same pre-processing and decoding, so ``detect`` /
``detect_batch`` take and return the same things. Each runs the numeric precisions of :data:`PRECISIONS`
(``precision=``; fp32 by default). Without an explicit ``onnx_path`` the model is exported once into a cache file
named by its weights (:func:`imkd_ros.inference.export_onnx.cached_export`, under ``$XDG_CACHE_HOME/imkd_ros/onnx``).

The decoded velocities are refined by the Doppler of the frame's radar returns in each box
(:mod:`imkd_ros.model.doppler`, every backend, every model: the LiDAR teacher's collection car records radar too;
a frame without radar returns keeps the network's velocities; ``doppler=None`` turns it off).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from imkd_ros.core.errors import InputError
from imkd_ros.core.types import Boxes, Frame
from imkd_ros.data.dataset import Batch, collate_frames
from imkd_ros.model import ModelConfig, ModelInputs, Student, StudentInputs, Teacher, TeacherInputs
from imkd_ros.model.checkpoint import Checkpoint, load_checkpoint
from imkd_ros.model.decode import Detections, decode
from imkd_ros.model.doppler import DOPPLER, DopplerConfig, refine_velocity
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.head import HeadOutput
from imkd_ros.model.preprocess import fit_frame

if TYPE_CHECKING:
    from imkd_ros.inference.ort_backend import OrtStudent

__all__ = [
    "Detector",
    "BACKENDS",
    "resolve_backend",
    "resolve_device",
    "inference_threads",
    "torch_threads_for",
    "model_inputs",
    "check_lidar_sweeps",
    "PRECISIONS",
    "resolve_precision",
    "parse_runtime",
]

#: Inference backends of :class:`Detector`.
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino", "auto")

#: The numeric precisions each backend runs, its default first: ``"bf16"`` is PyTorch's autocast (the network in
#: bf16, decoding in fp32) or OpenVINO's inference precision hint (:mod:`imkd_ros.inference.openvino_backend`).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "bf16"),
}


def resolve_precision(backend: str, precision: str) -> str:
    """``precision`` when ``backend`` (resolved, not ``"auto"``) runs it; ``"auto"``: the fastest precision of the
    backend whose NDS stays within 0.005 of fp32 (README, deployment): bf16 for OpenVINO on a CPU that runs it
    (-0.002 NDS on the large validation set), fp32 otherwise (PyTorch's bf16 autocast is slower than OpenVINO).

    Raises:
        InputError: naming the precisions the backend runs.
    """
    if precision == "auto":
        from imkd_ros.inference.openvino_backend import cpu_runs_bf16

        return "bf16" if backend == "openvino" and cpu_runs_bf16() else "fp32"
    allowed = PRECISIONS[backend]
    if precision not in allowed:
        raise InputError(f"precision {precision!r}: backend {backend!r} runs {', '.join(allowed)} (or auto)")
    return precision


def resolve_backend(backend: str, model: Student | Teacher, device: str | torch.device) -> str:
    """``"auto"`` -> ``"torch"`` for a teacher or where CUDA is asked for and available (the pinned ONNX Runtime and
    OpenVINO are CPU builds); for a student on the CPU ``"openvino"`` where the CPU runs bf16 (its fastest path, with
    precision ``"auto"``: README, deployment), else ``"onnxruntime"``; any other backend as it is.

    Raises:
        ValueError: not one of :data:`BACKENDS`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
    if isinstance(model, Teacher) or cuda:
        return "torch"
    from imkd_ros.inference.openvino_backend import cpu_runs_bf16

    return "openvino" if cpu_runs_bf16() else "onnxruntime"


def parse_runtime(text: str) -> tuple[str, str]:
    """``"BACKEND[:PRECISION]"`` (e.g. ``"openvino:bf16"``, ``"onnxruntime"``) -> ``(backend, precision)``, the
    precision ``"fp32"`` when not given (checked against the backend by :class:`Detector`).

    Raises:
        InputError: an unknown backend, naming the known ones.
    """
    backend, _, precision = text.strip().partition(":")
    if backend not in BACKENDS:
        raise InputError(f"runtime {text!r}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    return backend, precision or "fp32"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` falls back to the CPU with a warning when CUDA is not available."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("CUDA requested but not available: running on the CPU", RuntimeWarning, stacklevel=2)
        return torch.device("cpu")
    return dev


def inference_threads(requested: int = 0) -> int:
    """Intra-op threads for inference: ``requested`` when > 0; 0 (auto): the CPUs this process may run on (its
    affinity mask, as OpenMP counts them by default). Measured on 2 CPUs with the detector node
    (``imkd bench --only node``): 2 threads beat 1 at the sensor rate (e2e 60 vs 87 ms) and at 3x it (p50 80-94
    vs 110 ms), the executor thread's short callbacks notwithstanding.

    Raises:
        ValueError: ``requested`` < 0.
    """
    if requested < 0:
        raise ValueError(f"threads must be >= 0 (0: automatic), got {requested}")
    if requested:
        return int(requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def torch_threads_for(backend: str, threads: int) -> int:
    """Intra-op threads for PyTorch in a process whose model runs on ``backend`` with ``threads`` threads: all of
    them for ``"torch"``; one for ``"onnxruntime"`` and ``"openvino"``, whose own pool runs the network while
    PyTorch only normalises the image and decodes the head, so that a second pool of spinning OpenMP threads does not
    compete with the runtime's for the same cores."""
    return int(threads) if backend == "torch" else 1


def check_lidar_sweeps(frames: Sequence[Frame], sweeps: int) -> None:
    """Refuse frames whose LiDAR holds a single sweep (one ``time_lag`` value) when the teacher was trained on
    ``sweeps`` > 1: it would run motion-blind and predict near-zero velocities without a word. Fewer sweeps than
    ``sweeps`` but more than one (the first frames of a drive) only warn.

    Raises:
        ModelInputError: naming the frame, the sweeps it has and the reader setting that gives the right count.
    """
    for f in frames:
        if f.lidar is None or len(f.lidar) == 0 or sweeps <= 1:
            continue
        n = len(np.unique(f.lidar[:, 5]))
        if n == 1:
            raise ModelInputError(
                f"frame {f.token or f.timestamp}: its LiDAR is one sweep but the teacher was trained on {sweeps} "
                f"accumulated sweeps (time_lag column); read it with NuScenesReader(..., lidar_sweeps={sweeps})"
            )
        if n < sweeps:
            warnings.warn(f"a frame has {n} LiDAR sweeps, the teacher was trained on {sweeps}", stacklevel=3)


def model_inputs(model: Student | Teacher, batch: Batch) -> ModelInputs:
    """The inputs of ``model`` (``features`` / ``forward``) from a :class:`Batch` (on the batch's device)."""
    if isinstance(model, Teacher):
        return TeacherInputs(batch.lidar, batch.lidar_mask)
    return StudentInputs(batch.images, batch.intrinsics, batch.cam_to_ego, batch.radar, batch.radar_mask)


class Detector:
    """A trained Student (or Teacher) ready for inference.

    Args:
        model: the network (moved to ``device`` and put in eval mode here).
        device: ``"cpu"`` or ``"cuda"`` (falls back to the CPU with a warning). With ``"onnxruntime"`` it picks the
            execution provider; the PyTorch model and the decoding then stay on the CPU.
        score_threshold: boxes below are dropped (None: the model config's decode threshold).
        backend: one of :data:`BACKENDS` (``"auto"``: :func:`resolve_backend`); :attr:`backend` is the one used.
        onnx_path: ``"onnxruntime"`` / ``"openvino"`` only: the student's ONNX export (checked against
            ``model.config``); None: exported on first use into the cache (see the module docstring).
        threads: ``"onnxruntime"`` / ``"openvino"`` only: inference threads (None: the runtime's default).
        doppler: velocity refinement from the Doppler of the frame's radar returns (:mod:`imkd_ros.model.doppler`),
            applied to the decoded boxes; None: the network's velocities as they are.
        precision: one of the backend's :data:`PRECISIONS`, or ``"auto"`` (:func:`resolve_precision`); default
            ``"fp32"``; :attr:`precision` is the one used.
    """

    def __init__(
        self,
        model: Student | Teacher,
        device: str | torch.device = "cpu",
        score_threshold: float | None = None,
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        doppler: DopplerConfig | None = DOPPLER,
        precision: str = "fp32",
    ) -> None:
        backend = resolve_backend(backend, model, device)
        self.backend = backend
        self.precision = resolve_precision(backend, precision)
        self.runtime: OrtStudent | None = None
        if backend != "torch":
            if isinstance(model, Teacher):
                raise ValueError(f"backend {backend!r} runs students only; use backend 'torch' for the teacher")
            from imkd_ros.inference.export_onnx import cached_export

            model = model.cpu().eval()
            self._runtime_options = {"threads": threads, "device": device, "exported_here": onnx_path is None}
            self.runtime = self._load_runtime(cached_export(model) if onnx_path is None else onnx_path, model.config)
            device = "cpu"
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config: ModelConfig = model.config
        self.score_threshold = score_threshold
        self.doppler = doppler
        self.checkpoint: Checkpoint | None = None
        self._buffers = threading.local()  # per calling thread: the float image buffer of _collate
        #: where the last ``detect_batch`` spent its time (ms): ``collate`` (image fit, batching), ``run`` (graph
        #: inputs, the network, decoding), ``graph`` (of ``run``: the ONNX Runtime / OpenVINO call alone),
        #: ``boxes`` (boxes, score threshold, Doppler refinement); the node's ``debug_timing`` logs them.
        self.last_timing: dict[str, float] = {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", score_threshold: float | None = None, **options: Any
    ) -> Detector:
        """Load a checkpoint (``weights_only=True``); raises :class:`~imkd_ros.model.checkpoint.CheckpointError` with
        the path when it is missing or corrupt. ``device``, ``score_threshold`` and ``options`` (``backend``,
        ``onnx_path``, ``threads``, ``doppler``, ``precision``): as for :class:`Detector`."""
        ckpt = load_checkpoint(path)
        det = cls(ckpt.build("cpu"), device, score_threshold, **options)
        det.checkpoint = ckpt
        return det

    @property
    def is_teacher(self) -> bool:
        return isinstance(self.model, Teacher)

    @torch.inference_mode()
    def detect_batch(self, frames: Sequence[Frame]) -> list[Boxes]:
        """Boxes (ego frame of each frame) for a batch of frames (same image size)."""
        if not frames:
            return []
        if self.is_teacher:
            check_lidar_sweeps(frames, self.config.lidar.sweeps)
        t0 = time.perf_counter()
        batch = self._collate(frames).to(self.device)
        if self.runtime is not None and batch.images is not None:
            self._fit_runtime(int(batch.images.shape[1]))
        t1 = time.perf_counter()
        detections = self._run(model_inputs(self.model, batch))
        t2 = time.perf_counter()
        out = []
        for frame, det in zip(frames, detections, strict=True):
            boxes = det.to_boxes()
            if self.score_threshold is not None:
                boxes = boxes[boxes.score >= self.score_threshold]
            if self.doppler is not None:
                boxes = refine_velocity(boxes, frame.radar, self.doppler)
            out.append(boxes)
        spans = {"collate": t1 - t0, "run": t2 - t1, "boxes": time.perf_counter() - t2}
        if self.runtime is not None:
            spans["graph"] = self.runtime.last_graph_s
        self.last_timing = {f"{k}_ms": v * 1e3 for k, v in spans.items()}
        return out

    def _run(self, inputs: ModelInputs) -> list[Detections]:
        """The network on ``inputs`` and its decoding, on the backend in the precision asked for."""
        if self.runtime is not None:
            return self.runtime(inputs)
        if self.precision == "fp32":
            return self.model(inputs)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            head = self.model.features(inputs).head
        return decode(HeadOutput(head.heatmap.float(), head.regression.float()), self.config)

    def _load_runtime(self, path: str | Path, config: ModelConfig) -> OrtStudent:
        """The ONNX Runtime or OpenVINO runtime of the exported graph ``path``."""
        opts = self._runtime_options
        if self.backend == "openvino":
            from imkd_ros.inference.openvino_backend import OpenVinoStudent

            return OpenVinoStudent(path, config, opts["threads"], self.precision, opts["device"])
        from imkd_ros.inference.ort_backend import OrtStudent

        return OrtStudent(path, config, threads=opts["threads"], device=opts["device"])

    def _fit_runtime(self, cameras: int) -> None:
        """Swap the graph runtime for one exported for ``cameras`` cameras when the frames' rig has another count
        (graphs are exported for a fixed N); a file given as ``onnx_path`` is kept (its runtime then names the
        mismatch)."""
        from imkd_ros.inference.export_onnx import cached_export

        assert self.runtime is not None
        if self.runtime.cameras == cameras or not self._runtime_options["exported_here"]:
            return
        self.runtime = self._load_runtime(cached_export(self.model, cameras=cameras), self.config)

    def _collate(self, frames: Sequence[Frame]) -> Batch:
        """:func:`collate_frames` of the frames fitted to the model input by
        :func:`~imkd_ros.model.preprocess.fit_frame` (the one image path training uses too), with the uint8 images
        converted into a float32 buffer that the calling thread keeps from call to call (same values:
        ``image / 255``, ``(B, N, 3, H, W)``; a fresh float image per call costs page faults)."""
        frames = list(frames)
        if not self.is_teacher and "camera" in self.config.modalities:
            frames = [fit_frame(f, self.config.image) for f in frames]
        kinds = {None if f.images is None else tuple((im.shape, im.dtype) for im in f.images) for f in frames}
        kind = next(iter(kinds))
        if len(kinds) != 1 or not kind or len(set(kind)) != 1 or len(kind[0][0]) != 3 or kind[0][1] != np.uint8:
            return collate_frames(frames)  # no images (teacher), or what collate_frames itself rejects
        batch = collate_frames([dataclasses.replace(f, images=None) for f in frames])
        n, (h, w, c) = len(kind), kind[0][0]
        images = getattr(self._buffers, "images", None)
        if images is None or images.shape != (len(frames), n, c, h, w):
            images = self._buffers.images = torch.empty((len(frames), n, c, h, w), dtype=torch.float32)
        pixels = images.numpy()
        for i, f in enumerate(frames):
            for j, image in enumerate(f.images):
                np.copyto(pixels[i, j], image.transpose(2, 0, 1), casting="unsafe")  # uint8 -> float32 is exact
        images.div_(255.0)
        return dataclasses.replace(batch, images=images)

    def detect(self, frame: Frame) -> Boxes:
        """Boxes in the ego frame of ``frame``."""
        return self.detect_batch([frame])[0]
