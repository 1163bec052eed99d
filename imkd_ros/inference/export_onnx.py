"""ONNX export of a :class:`~imkd_ros.model.Student` (``imkd export-onnx``): the whole network, standard ops only.

The graph (batch 1, float32 unless said) holds the image backbone, the depth net, the lift-splat pooling, the radar
pillar encoder, the fusion, the BEV network and the head. Box decoding and circle NMS stay in Python after the graph
(:func:`imkd_ros.model.decode.decode`, the same code as the PyTorch path).

Inputs (only those of the student's modalities), see :func:`graph_inputs`:

* ``images`` ``(1, N, 3, H, W)``: the normalised model-input images of the rig's N cameras, i.e. the output of
  :func:`~imkd_ros.model.preprocess.prepare_camera_images` (resize / crop / normalise stays in PyTorch before the
  graph). N is fixed at export (``cameras``, recorded in the metadata :data:`METADATA_CAMERAS`).
* ``camera`` ``(1, N, 16)``: the depth net's camera vectors, and ``cell_index`` ``(1, N * D * fH * fW)`` int64: the
  BEV cell of every frustum sample of every camera. Both depend only on the calibration (intrinsics of the
  model-input image and camera -> ego); :func:`~imkd_ros.model.camera.camera_geometry` computes them, once per
  calibration (the ONNX Runtime backend caches them), so the data-dependent geometry is not in the graph. Samples
  outside the grid carry the dump index ``NY * NX``, whose row the graph drops.
* ``radar`` ``(1, R, 7)`` ego-frame points (:data:`imkd_ros.core.types.RADAR_FEATURES`) and ``radar_mask`` ``(1, R)``
  bool; ``R >= 1`` is a dynamic axis (any point count, zero padding with mask False allowed).

Outputs: ``heatmap`` ``(1, K, h, w)`` logits and ``regression`` ``(1, 10, h, w)`` on the head grid
(:class:`~imkd_ros.model.head.HeadOutput`).

Fixed at export time: the weights, the model config (BEV grid, model-input image size, depth bins, classes), the
number of cameras and the batch size 1. The images at their original resolution, the calibrations and the radar
points stay inputs.

Pooling: both the lift-splat and the pillar scatters add (or max) rows of features into BEV cells by one index per
row. PyTorch's exporter writes these as element-wise ``ScatterElements`` (one index per value; about 16 ms for the
default lift-splat in ONNX Runtime here, the max reductions behind ``If`` nodes). During export the symbolics of
``scatter_add`` / ``scatter_reduce`` are replaced (the model code is unchanged). With ``scatter="nd"`` (default),
wherever the index is a row index broadcast over the channels, they become row-wise ``ScatterND`` with
``reduction`` ``add`` / ``max`` (opset >= 18; 0.3 ms for the same lift-splat), which is exact (the same sums, only
the summation order may differ). TensorRT's ONNX parser (10.x) takes no ``ScatterND`` reduction, so
``scatter="elements"`` writes plain ``ScatterElements`` with ``reduction`` (and no ``If``) instead.

The ONNX file carries the model config, the graph interface version and, when exported from a checkpoint, the
checkpoint's SHA-256 in its metadata (:data:`METADATA_CONFIG` ...), so a runtime needs nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from imkd_ros.core.atomic import atomic_write_bytes
from imkd_ros.core.errors import ImkdError
from imkd_ros.model.camera import camera_geometry
from imkd_ros.model.checkpoint import load_checkpoint
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.inputs import StudentInputs
from imkd_ros.model.preprocess import prepare_camera_images
from imkd_ros.model.profile import example_inputs
from imkd_ros.model.student import Student

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ExportError",
    "StudentGraph",
    "graph_input_names",
    "graph_inputs",
    "Geometry",
    "export_student",
    "export_checkpoint",
    "cached_export",
    "default_cache_dir",
    "weights_digest",
    "OUTPUT_NAMES",
    "GRAPH_VERSION",
    "DEFAULT_OPSET",
    "METADATA_GRAPH",
    "METADATA_CONFIG",
    "METADATA_CHECKPOINT",
    "METADATA_WEIGHTS",
    "METADATA_SCATTER",
    "SCATTER_MODES",
]

#: ``(intrinsics (B, N, 3, 3), cam_to_ego (B, N, 4, 4)) -> (camera (B, N, 16), cell_index (B, N * P))``, see
#: :func:`graph_inputs`.
Geometry = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: Interface version of the exported graph (inputs, outputs, their meaning); runtimes refuse other versions.
GRAPH_VERSION = "imkd-student-graph-2"
#: Opset of the export; ``ScatterND`` with ``max`` reduction needs 18.
DEFAULT_OPSET = 18
#: Graph outputs.
OUTPUT_NAMES: tuple[str, str] = ("heatmap", "regression")
#: Scatter forms of :func:`export_student`: ``"nd"`` row-wise ``ScatterND`` (fast in ONNX Runtime), ``"elements"``
#: ``ScatterElements`` (what TensorRT's parser takes).
SCATTER_MODES: tuple[str, ...] = ("nd", "elements")
#: ONNX metadata keys.
METADATA_GRAPH = "imkd.graph"
METADATA_CONFIG = "imkd.model_config"
METADATA_CHECKPOINT = "imkd.checkpoint_sha256"
METADATA_WEIGHTS = "imkd.weights_sha256"
METADATA_SCATTER = "imkd.scatter"
METADATA_CAMERAS = "imkd.cameras"


class ExportError(ImkdError):
    """The model cannot be exported (a teacher, a bad opset) or the export failed its checks."""


def graph_input_names(config: ModelConfig) -> tuple[str, ...]:
    """Names of the graph inputs for a student of ``config``, in graph order."""
    names: tuple[str, ...] = ()
    if "camera" in config.modalities:
        names += ("images", "camera", "cell_index")
    if "radar" in config.modalities:
        names += ("radar", "radar_mask")
    return names


def graph_inputs(config: ModelConfig, x: StudentInputs, geometry: Geometry | None = None) -> dict[str, torch.Tensor]:
    """The graph's input tensors (CPU) from a student's inputs (:class:`~imkd_ros.model.inputs.StudentInputs`).

    Args:
        config: the student's config.
        x: the inputs (those of the student's modalities; a missing ``radar_mask`` means all points are real).
        geometry: ``(intrinsics (B, N, 3, 3) of the model-input images, cam_to_ego (B, N, 4, 4)) -> (camera
            (B, N, 16), cell_index (B, N * D * fH * fW))``, e.g. a cache (default:
            :func:`~imkd_ros.model.camera.camera_geometry`).

    Returns:
        name -> tensor for :func:`graph_input_names` (batch B; the graph takes one sample at a time).

    Raises:
        ModelInputError: a missing input or a wrong shape, naming it.
    """
    x.check(config.modalities)
    out: dict[str, torch.Tensor] = {}
    if "camera" in config.modalities:
        imgs, k = prepare_camera_images(
            x.images.detach().float().cpu(), x.intrinsics.detach().float().cpu(), config.image
        )
        c2e = x.cam_to_ego.detach().float().cpu()
        camera, cell_index = camera_geometry(k, c2e, config) if geometry is None else geometry(k, c2e)
        out.update(images=imgs.contiguous(), camera=camera.float(), cell_index=cell_index.long())
    if "radar" in config.modalities:
        mask = torch.ones(x.radar.shape[:2], dtype=torch.bool) if x.radar_mask is None else x.radar_mask
        out.update(radar=x.radar.detach().float().cpu().contiguous(), radar_mask=mask.detach().bool().cpu())
    return out


class StudentGraph(nn.Module):
    """The exported function: graph inputs (:func:`graph_input_names`, in that order) -> ``(heatmap, regression)``.

    Runs the student's own modules (``camera_bev.lift``, ``radar_bev``, ``combine``), so in PyTorch it computes
    exactly what :meth:`Student.features` computes from the same inputs.
    """

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student
        self.input_names = graph_input_names(student.config)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = dict(zip(self.input_names, inputs, strict=True))
        s = self.student
        cam = rad = None
        if s.camera_bev is not None:
            cam = s.camera_bev.lift(x["images"], x["camera"], x["cell_index"])
        if s.radar_bev is not None:
            rad = s.radar_bev(x["radar"], x["radar_mask"])
        head = s.combine(cam, rad).head
        return head.heatmap, head.regression


# ------------------------------------------------------------------------------------------- row-wise scatters
def _row_column(index: torch._C.Value) -> torch._C.Value | None:
    """The ``(N, 1)`` column when ``index`` is ``Expand(Reshape(i, [-1, 1]), ...)``: one index per row broadcast
    over the columns (how :mod:`imkd_ros.model.bev_scatter` builds it); else None."""
    node = index.node()
    if node.kind() != "onnx::Expand":
        return None
    column = node.inputsAt(0)
    reshape = column.node()
    if reshape.kind() != "onnx::Reshape":
        return None
    shape = reshape.inputsAt(1).node()
    if shape.kind() != "onnx::Constant":
        return None
    value = shape.t("value")
    if value.numel() != 2 or int(value[1]) != 1:
        return None
    return column


_REDUCTIONS = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min"}


def _scatter(g, data, dim: int, index, src, reduction: str, row_wise: bool):  # TorchScript graph values, untyped
    column = _row_column(index) if dim == 0 and row_wise else None
    if column is None:  # element-wise, as torch's own symbolic writes it for equal index and src shapes (no If)
        return g.op("ScatterElements", data, index, src, axis_i=dim, reduction_s=reduction)
    return g.op("ScatterND", data, column, src, reduction_s=reduction)


@contextlib.contextmanager
def _scatter_symbolics(opset: int, scatter: str) -> Iterator[None]:
    """Within the block, ``aten::scatter_add`` / ``aten::scatter_reduce`` export as row-wise ``ScatterND`` where
    possible (``scatter="nd"``) or as ``ScatterElements`` (``"elements"``)."""
    row_wise = scatter == "nd"
    from torch.onnx import register_custom_op_symbolic, symbolic_helper, unregister_custom_op_symbolic

    @symbolic_helper.parse_args("v", "i", "v", "v")
    def scatter_add(g, data, dim, index, src):
        return _scatter(g, data, dim, index, src, "add", row_wise)

    @symbolic_helper.parse_args("v", "i", "v", "v", "s", "b")
    def scatter_reduce(g, data, dim, index, src, reduce, include_self):
        if reduce not in _REDUCTIONS or not include_self:
            raise ExportError(f"scatter_reduce({reduce!r}, include_self={include_self}) has no ONNX equivalent")
        return _scatter(g, data, dim, index, src, _REDUCTIONS[reduce], row_wise)

    register_custom_op_symbolic("aten::scatter_add", scatter_add, opset)
    register_custom_op_symbolic("aten::scatter_reduce", scatter_reduce, opset)
    try:
        yield
    finally:
        unregister_custom_op_symbolic("aten::scatter_add", opset)
        unregister_custom_op_symbolic("aten::scatter_reduce", opset)


# ---------------------------------------------------------------------------------------------------- export
def weights_digest(model: nn.Module, config: ModelConfig) -> str:
    """SHA-256 (hex) of the config and every state-dict tensor: identifies an exportable model."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_student(
    student: Student,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    scatter: str = "nd",
    metadata: dict[str, str] | None = None,
    cameras: int = 1,
) -> Path:
    """Export ``student`` to ``out`` (written atomically) and check it with ``onnx.checker`` (full check).

    Args:
        student: any :class:`Student` (camera + radar, camera only, radar only); exported in eval mode, its mode
            restored after.
        out: the ``.onnx`` file.
        opset: ONNX opset (>= 18).
        scatter: one of :data:`SCATTER_MODES` (see the module docstring).
        metadata: extra ``metadata_props`` (string values).
        cameras: N, the cameras of the rig the graph runs on (>= 1; camera-less students ignore it).

    Returns:
        ``out`` as a Path.

    Raises:
        ExportError: not a student, opset below 18, an unknown scatter mode, or the checker rejects the graph.
    """
    import onnx

    _check_exportable(student, opset, scatter, cameras)
    out = Path(out)
    cfg = student.config
    was_training = student.training
    student.eval()
    try:
        model = _trace(student, opset, scatter, cameras)
        props = {
            METADATA_GRAPH: GRAPH_VERSION,
            METADATA_CONFIG: json.dumps(cfg.to_dict(), sort_keys=True),
            METADATA_WEIGHTS: weights_digest(student, cfg),
            METADATA_SCATTER: scatter,
            METADATA_CAMERAS: str(cameras),
            **(metadata or {}),
        }
        onnx.helper.set_model_props(model, props)
        names = graph_input_names(cfg)
        model.doc_string = f"imkd_ros student {cfg.name}: inputs {', '.join(names)} -> {', '.join(OUTPUT_NAMES)}"
        try:
            onnx.checker.check_model(model, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"the exported graph of {cfg.name} fails onnx.checker: {exc}") from exc
        atomic_write_bytes(out, model.SerializeToString())
    finally:
        student.train(was_training)
    return out


def _check_exportable(student: Student, opset: int, scatter: str, cameras: int) -> None:
    """Raise :class:`ExportError` for what :func:`export_student` cannot export (see there)."""
    if not isinstance(student, Student):
        raise ExportError(f"only students export to ONNX, got {type(student).__name__}")
    if scatter not in SCATTER_MODES:
        raise ExportError(f"scatter mode {scatter!r} is not one of {', '.join(SCATTER_MODES)}")
    if opset < 18:
        raise ExportError(f"opset {opset} is too old: row-wise ScatterND with max reduction needs opset >= 18")
    if isinstance(cameras, bool) or not isinstance(cameras, int) or cameras < 1:
        raise ExportError(f"cameras must be a whole number >= 1, got {cameras!r}")


def _trace(student: Student, opset: int, scatter: str, cameras: int) -> onnx.ModelProto:
    """The student (in eval mode) traced into an ONNX model on example inputs of ``cameras`` cameras and 32 radar
    points, the radar inputs dynamic in their point count, the scatters written as ``scatter`` says."""
    import onnx

    cfg = student.config
    graph = StudentGraph(student)
    names = graph.input_names
    example = graph_inputs(cfg, example_inputs(cfg, num_radar=32, cameras=cameras))
    dynamic = {"radar": {1: "num_radar"}, "radar_mask": {1: "num_radar"}} if "radar" in names else None
    buffer = io.BytesIO()
    with torch.no_grad(), _scatter_symbolics(opset, scatter), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks, the exporter's deprecation notice
        torch.onnx.export(
            graph,
            tuple(example[n] for n in names),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(names),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET, scatter: str = "nd", cameras: int = 1
) -> Path:
    """Export a student checkpoint's model to ``out`` (see :func:`export_student`); the metadata records the
    checkpoint's SHA-256.

    Raises:
        CheckpointError: missing or corrupt checkpoint. ExportError: a teacher checkpoint.
    """
    ckpt = load_checkpoint(checkpoint)
    if ckpt.kind != "student" or ckpt.config.is_teacher:
        raise ExportError(f"checkpoint {checkpoint} holds a {ckpt.kind}; only students export to ONNX")
    student = ckpt.build("cpu")
    meta = {METADATA_CHECKPOINT: _file_sha256(Path(checkpoint))}
    return export_student(student, out, opset=opset, scatter=scatter, metadata=meta, cameras=cameras)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/imkd_ros/onnx`` (default ``~/.cache/imkd_ros/onnx``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imkd_ros" / "onnx"


def cached_export(
    student: Student, cache_dir: str | Path | None = None, *, opset: int = DEFAULT_OPSET, cameras: int = 1
) -> Path:
    """The ONNX file of ``student`` for ``cameras`` cameras in ``cache_dir`` (default :func:`default_cache_dir`),
    exported on first use.

    The file name is ``<config name>-<weights digest[:16]>-<graph version>-cam<cameras>-opset<N>.onnx`` (see
    :func:`weights_digest`), so changed weights, config, camera count or exporter interface never reuse a stale file.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = weights_digest(student, student.config)[:16]
    path = cache / f"{student.config.name}-{digest}-{GRAPH_VERSION}-cam{cameras}-opset{opset}.onnx"
    if not path.is_file():
        export_student(student, path, opset=opset, cameras=cameras)
    return path
