"""ONNX export of the student: every variant passes onnx.checker with standard ops and row-wise ScatterND pooling
(or ScatterElements for TensorRT), the exported function equals the student's own forward, onnxruntime matches
PyTorch for any radar point count,
the export cache keys on the weights, and `imkd export-onnx` writes a file or fails with one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import pytest
import torch

from imkd_ros.cli import main as cli_main
from imkd_ros.inference.export_onnx import (
    GRAPH_VERSION,
    METADATA_CONFIG,
    METADATA_GRAPH,
    METADATA_WEIGHTS,
    ExportError,
    StudentGraph,
    cached_export,
    export_student,
    graph_input_names,
    graph_inputs,
    weights_digest,
)
from imkd_ros.inference.ort_backend import OrtStudent, torch_parity
from imkd_ros.model import ModelConfig, Student, Teacher
from imkd_ros.model.checkpoint import save_checkpoint
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.profile import example_inputs

VARIANTS = [("camera", "radar"), ("camera",), ("radar",)]
#: onnxruntime vs PyTorch on the heatmap logits of the tiny students (float32, a different summation order).
HEATMAP_ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_student(mods: tuple[str, ...] = ("camera", "radar"), seed: int = 0) -> Student:
    torch.manual_seed(seed)
    student = Student(config=ModelConfig.tiny(mods)).eval()
    # non-trivial BatchNorm statistics, so that folding them (or not) in the export shows
    for m in student.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return student


@pytest.mark.parametrize("mods", VARIANTS)
def test_every_variant_exports_standard_ops_and_passes_the_checker(mods: tuple[str, ...], tmp_path: Path) -> None:
    student = tiny_student(mods)
    path = export_student(student, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == list(graph_input_names(student.config))
    assert [o.name for o in model.graph.output] == ["heatmap", "regression"]
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}  # standard ops only, no custom domain
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    ops = {n.op_type for n in model.graph.node}
    assert "ScatterElements" not in ops and "If" not in ops  # every BEV scatter became a row-wise ScatterND
    reductions = {a.s.decode() for n in model.graph.node if n.op_type == "ScatterND" for a in n.attribute}
    assert reductions == ({"add", "max"} if "radar" in mods else {"add"})
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[METADATA_GRAPH] == GRAPH_VERSION
    assert ModelConfig.from_dict(json.loads(meta[METADATA_CONFIG])) == student.config
    assert meta[METADATA_WEIGHTS] == weights_digest(student, student.config)
    assert not (tmp_path / "m.onnx.tmp").exists()


@pytest.mark.parametrize("mods", VARIANTS)
def test_exported_function_is_the_students_forward(mods: tuple[str, ...]) -> None:
    student = tiny_student(mods)
    inputs = example_inputs(student.config, num_radar=40, image_size=(320, 180), seed=2)  # resize inside
    x = graph_inputs(student.config, inputs)
    with torch.no_grad():
        heat, reg = StudentGraph(student)(*(x[n] for n in graph_input_names(student.config)))
        want = student.features(inputs).head
    assert torch.equal(heat, want.heatmap) and torch.equal(reg, want.regression)


@pytest.mark.parametrize("mods", VARIANTS)
def test_onnxruntime_matches_pytorch_for_any_radar_count(mods: tuple[str, ...], tmp_path: Path) -> None:
    student = tiny_student(mods, seed=1)
    runtime = OrtStudent(export_student(student, tmp_path / "m.onnx"), student.config, threads=1)
    for n, seed in ((1, 0), (7, 1), (500, 2)):  # the export traced 32 points
        inputs = example_inputs(student.config, num_radar=n, seed=seed)
        if "radar" in mods and n == 7:
            inputs.radar_mask[0, 4:] = False  # padding
            inputs.radar[0, 4:] = 0.0
        diff = torch_parity(student, runtime, inputs)
        assert diff["heatmap"] < HEATMAP_ATOL and diff["regression"] < HEATMAP_ATOL, (n, diff)


def test_onnxruntime_matches_pytorch_on_a_surround_rig(tmp_path: Path) -> None:
    """A graph exported for 6 cameras (a ring around the ego) runs them all and pools them as PyTorch does; it
    refuses inputs of another camera count, naming both."""
    student = tiny_student(seed=2)
    path = export_student(student, tmp_path / "six.onnx", cameras=6)
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["imkd.cameras"] == "6"
    runtime = OrtStudent(path, student.config, threads=1)
    inputs = example_inputs(student.config, num_radar=50, seed=3, cameras=6)
    assert tuple(runtime.session.get_inputs()[0].shape) == (1, 6, 3, *reversed(student.config.image.input_size))
    diff = torch_parity(student, runtime, inputs)
    assert diff["heatmap"] < HEATMAP_ATOL and diff["regression"] < HEATMAP_ATOL, diff
    with pytest.raises(ModelInputError, match="exported for 6 camera.*inputs have 1"):
        runtime.head(example_inputs(student.config, num_radar=50))
    with pytest.raises(ExportError, match="cameras must be"):
        export_student(student, tmp_path / "none.onnx", cameras=0)


def test_scatter_elements_mode_for_tensorrt(tmp_path: Path) -> None:
    student = tiny_student(seed=3)
    path = export_student(student, tmp_path / "m.onnx", scatter="elements")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert "ScatterND" not in ops and "If" not in ops
    reductions = {a.s.decode() for n in model.graph.node if n.op_type == "ScatterElements" for a in n.attribute}
    assert {"add", "max"} <= reductions
    assert {p.key: p.value for p in model.metadata_props}["imkd.scatter"] == "elements"
    runtime = OrtStudent(path, student.config, threads=1)
    for n in (1, 100):
        diff = torch_parity(student, runtime, example_inputs(student.config, num_radar=n, seed=n))
        assert diff["heatmap"] < HEATMAP_ATOL and diff["regression"] < HEATMAP_ATOL, (n, diff)


def test_export_refuses_teachers_and_old_opsets(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="only students"):
        export_student(Teacher(config=ModelConfig.tiny(("lidar",))), tmp_path / "t.onnx")
    with pytest.raises(ExportError, match="opset 17"):
        export_student(tiny_student(), tmp_path / "s.onnx", opset=17)
    with pytest.raises(ExportError, match="scatter mode 'dense'"):
        export_student(tiny_student(), tmp_path / "s.onnx", scatter="dense")
    assert not list(tmp_path.iterdir())


def test_export_leaves_torch_exporter_symbolics_as_they_were(tmp_path: Path) -> None:
    class Scatter(torch.nn.Module):
        def forward(self, v: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
            return v.new_zeros(9, v.shape[1]).scatter_add_(0, i.reshape(-1, 1).expand(-1, v.shape[1]), v)

    export_student(tiny_student(("radar",)), tmp_path / "s.onnx")
    path = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notice for the TorchScript exporter
        torch.onnx.export(Scatter(), (torch.rand(5, 3), torch.tensor([0, 1, 1, 8, 0])), str(path), dynamo=False)
    assert "ScatterElements" in {n.op_type for n in onnx.load(str(path)).graph.node}


def test_cached_export_is_keyed_by_the_weights(tmp_path: Path) -> None:
    student = tiny_student(("radar",))
    first = cached_export(student, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_export(student, tmp_path) == first and first.stat().st_mtime_ns == stamp  # reused
    with torch.no_grad():
        student.head.heatmap[-1].bias.add_(1.0)
    second = cached_export(student, tmp_path)
    assert second != first and second.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])
    third = cached_export(student, tmp_path, cameras=2)  # another rig: another file
    assert third not in (first, second) and "-cam2-" in third.name


def test_cli_export_onnx_writes_a_checked_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    student = tiny_student()
    ckpt = save_checkpoint(tmp_path / "tiny.pt", student, student.config)
    out = tmp_path / "out" / "tiny.onnx"
    assert cli_main(["export-onnx", "--checkpoint", str(ckpt), "--out", str(out), "--threads", "1"]) == 0
    line = capsys.readouterr().out
    assert str(out) in line and "max |heatmap diff|" in line
    runtime = OrtStudent(out, student.config, threads=1)
    assert torch_parity(student, runtime)["heatmap"] < HEATMAP_ATOL
    meta = runtime.session.get_modelmeta().custom_metadata_map
    assert len(meta["imkd.checkpoint_sha256"]) == 64

    before = out.read_bytes()
    assert cli_main(["export-onnx", "--checkpoint", str(ckpt), "--out", str(out)]) == 2  # exists: refused
    err = capsys.readouterr().err.strip()
    assert err.startswith("imkd export-onnx: error:") and "--overwrite" in err and "\n" not in err
    assert out.read_bytes() == before
    assert cli_main(["export-onnx", "--checkpoint", str(ckpt), "--out", str(out), "--overwrite"]) == 0


def test_cli_export_onnx_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pt"
    assert cli_main(["export-onnx", "--checkpoint", str(missing), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"imkd export-onnx: error: checkpoint {missing} does not exist"
    teacher_cfg = ModelConfig.tiny(("lidar",))
    teacher = save_checkpoint(tmp_path / "teacher.pt", Teacher(config=teacher_cfg), teacher_cfg)
    assert cli_main(["export-onnx", "--checkpoint", str(teacher), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a teacher" in err and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()
