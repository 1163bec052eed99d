"""OpenVINO inference of an exported student (:mod:`imkd_ros.inference.export_onnx`): the same ONNX file, pre-processing
and decoding as :class:`~imkd_ros.inference.ort_backend.OrtStudent`, the graph compiled by OpenVINO's CPU plugin.

Why a second runtime: on CPUs with bf16 matrix units (AVX512-BF16, AMX) OpenVINO runs the student's graph in bf16
(``precision="bf16"``: the ``INFERENCE_PRECISION_HINT``; weights and activations rounded to bf16, accumulation in
fp32), which ONNX Runtime's CPU provider does not: on the 2-core development machine (Xeon with AMX, idle, 2 threads)
the full detect took 10.8 ms against ONNX Runtime's 24.5 ms in fp32 (``imkd bench --only detect``); in fp32
OpenVINO took 20.2 ms. The accuracy cost of bf16 (-0.0023 NDS) is measured with ``imkd compare`` (README,
deployment).

Compilation: ``PERFORMANCE_HINT=LATENCY`` (one stream), ``INFERENCE_NUM_THREADS`` from the caller (None: OpenVINO's
default), CPU pinning off (the node's executor and PyTorch's thread share the cores). One infer request, reused: a
runtime serves one calling thread at a time (the node's model thread, a replay or an evaluation loop).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from imkd_ros.core.errors import InputError
from imkd_ros.inference.export_onnx import OUTPUT_NAMES
from imkd_ros.inference.ort_backend import OrtStudent
from imkd_ros.model.config import ModelConfig

__all__ = ["OpenVinoStudent", "OPENVINO_PRECISIONS", "cpu_runs_bf16", "pad_radar", "RADAR_BUCKET"]

#: ``precision`` -> OpenVINO's ``INFERENCE_PRECISION_HINT``.
OPENVINO_PRECISIONS: dict[str, str] = {"fp32": "f32", "bf16": "bf16"}


@functools.cache
def cpu_runs_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 here (AVX512-BF16 or AMX); False where OpenVINO cannot load."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no OpenVINO, no plugin: no bf16
        return False


#: Radar point counts are padded up to a multiple of this (a frame has ~200-300 points on the front rig).
RADAR_BUCKET = 256


def pad_radar(feed: dict[str, np.ndarray], bucket: int) -> dict[str, np.ndarray]:
    """``feed`` with ``radar (1, N, 7)`` / ``radar_mask (1, N)`` padded with zero, masked rows up to the next multiple
    of ``bucket`` (at least one bucket)."""
    n = feed["radar"].shape[1]
    size = max(bucket, -(-n // bucket) * bucket)
    if size == n:
        return feed
    radar = np.zeros((1, size, feed["radar"].shape[2]), dtype=feed["radar"].dtype)
    mask = np.zeros((1, size), dtype=feed["radar_mask"].dtype)
    radar[:, :n], mask[:, :n] = feed["radar"], feed["radar_mask"]
    return {**feed, "radar": radar, "radar_mask": mask}


class OpenVinoStudent(OrtStudent):
    """An exported student compiled by OpenVINO for the CPU (same calls as :class:`OrtStudent`).

    Args:
        path: the ``.onnx`` file from :func:`imkd_ros.inference.export_onnx.export_student`.
        config: the model config it must have been exported from (None: take the file's).
        threads: inference threads (None: OpenVINO's default).
        precision: ``"fp32"`` or ``"bf16"`` (:data:`OPENVINO_PRECISIONS`); ``"bf16"`` on a CPU without bf16 support
            raises rather than run something else than asked.
        device: ``"cpu"`` only.

    Raises:
        OrtBackendError: missing or unreadable file, not an imkd student graph of this version, another config.
        InputError: an unknown precision, a device other than the CPU, bf16 on a CPU without it.
    """

    def __init__(
        self,
        path: str | Path,
        config: ModelConfig | None = None,
        threads: int | None = None,
        precision: str = "bf16",
        device: str | torch.device = "cpu",
    ) -> None:
        if precision not in OPENVINO_PRECISIONS:
            raise InputError(f"precision {precision!r}: the openvino backend runs {', '.join(OPENVINO_PRECISIONS)}")
        if torch.device(device).type != "cpu":
            raise InputError(f"device {device!r}: the openvino backend runs on the CPU")
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        if precision == "bf16" and not cpu_runs_bf16():
            raise InputError("precision 'bf16': this CPU has no bf16 support (AVX512-BF16 or AMX); use 'fp32'")
        self.precision = precision
        super().__init__(path, config, threads, device)

    def _open(self, threads: int | None, device: str | torch.device) -> tuple[dict[str, str], tuple[str, ...]]:
        """Read :attr:`path` (the metadata from the ONNX file); compiled by :meth:`_prepare` once checked."""
        import onnx
        import openvino as ov

        meta = {p.key: p.value for p in onnx.load(str(self.path), load_external_data=False).metadata_props}
        self._core = ov.Core()
        self._model = self._core.read_model(str(self.path))
        self._threads = threads
        self.session = None
        return meta, tuple(i.get_any_name() for i in self._model.inputs)

    def _prepare(self) -> None:
        """Compile the checked graph for the CPU (module docstring) and make its one infer request."""
        options: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[self.precision],
            "ENABLE_CPU_PINNING": False,
        }
        if self._threads is not None:
            options["INFERENCE_NUM_THREADS"] = int(self._threads)
        self.compiled = self._core.compile_model(self._model, "CPU", options)
        self._model = None  # the compiled model is all that runs
        self._request = self.compiled.create_infer_request()
        self._outputs = [self.compiled.output(name) for name in OUTPUT_NAMES]

    @property
    def providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.precision})"]

    def run_graph(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs for one sample's ``feed`` (copied out of the request's buffers, which the next
        call overwrites). The radar points are padded with masked rows to a multiple of :data:`RADAR_BUCKET`, so
        that a few input shapes recur instead of a new one per frame (masked points change no output: tested)."""
        if "radar" in feed:
            feed = pad_radar(feed, RADAR_BUCKET)
        result = self._request.infer(feed, share_inputs=True)  # no copy of the inputs (alive for the call)
        return [np.array(result[port], copy=True) for port in self._outputs]
