"""Learning from unlabelled drives: synth writes scenes without annotations that the reader and the devkit load; an
unlabelled scene goes through a bag and ``imkd bag teacher-targets`` into a cache, and a tiny student trains on
labelled + unlabelled frames in one run (pseudo-labels with masked velocity, KD on both); with no unlabelled frame
the run equals a labelled-only run bit for bit; it resumes exactly; a threshold above every teacher score gives no
pseudo-box and still trains; misuse fails with a clear message.

Data: ``synth_unlabelled_root`` (test/conftest.py: 3 scenes x 2 samples, scene-0001 unlabelled) and the same world
written fully labelled (module fixture), the untrained tiny teacher of test/distill/conftest.py."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import stop_after, torch_threads

from imkd_ros.cli import main as cli_main
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.data.synth import write_dataset
from imkd_ros.distill import DistillConfig, DistillConfigError, TargetBank, TargetCache, TargetCacheError
from imkd_ros.distill.cache import FORMAT_VERSION, INDEX_NAME
from imkd_ros.distill.pseudo import PseudoLabelConfig, pseudo_labels
from imkd_ros.distill.targets import build_target_cache
from imkd_ros.inference.detector import Detector
from imkd_ros.model import Teacher
from imkd_ros.model.checkpoint import load_checkpoint, save_checkpoint
from imkd_ros.model.targets import build_targets
from imkd_ros.training.train import TrainConfig, model_config_for, train

VERSION = "v1.0-synth"
UNLABELLED = "scene-0001"
KD = DistillConfig(stages=("stage1", "stage2"))


def _files(root: Path, folder: str) -> list[Path]:
    return sorted(p.relative_to(root) for p in (root / folder).rglob("*") if p.is_file())


def _log(ckpt: Path) -> list[dict]:
    return json.loads(Path(f"{ckpt.with_suffix('')}_log.json").read_text())


@pytest.fixture(scope="module")
def labelled_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world of ``synth_unlabelled_root`` written fully labelled (``synth_unlabelled`` is empty)."""
    root = tmp_path_factory.mktemp("labelled")
    write_dataset(
        root, scenes=3, samples_per_scene=2, seed=0, weathers=("clear", "rain", "fog"), camera_sweeps=False, workers=1
    )
    return root


@dataclass(frozen=True)
class Caches:
    labelled: Path  # synth_train, from the dataset (imkd teacher-targets)
    unlabelled: Path  # the unlabelled scene, from its bag (imkd bag teacher-targets)
    bag: Path
    threshold: float  # a pseudo-label threshold that keeps about half of the teacher's boxes


@pytest.fixture(scope="module")
def caches(synth_unlabelled_root: Path, tiny_teacher_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Caches:
    """dataset -> ``imkd bag export`` (the unlabelled split) -> ``imkd bag teacher-targets``; and ``imkd
    teacher-targets`` of the labelled training split."""
    work = tmp_path_factory.mktemp("unlabelled_caches")
    data = str(synth_unlabelled_root)
    with torch_threads(1):  # the CLI leaves torch's thread count alone without --threads
        bag = work / "drive_bag"
        assert cli_main(["bag", "export", "--data", data, "--out", str(bag), "--split", "synth_unlabelled",
                         "--all-camera-frames"]) == 0  # fmt: skip
        cu, cl = work / "unlabelled_cache", work / "labelled_cache"
        teacher = str(tiny_teacher_ckpt)
        assert cli_main(["bag", "teacher-targets", "--bag", str(bag), "--teacher", teacher, "--out", str(cu),
                         "--shard-size", "1", "--debug-pngs", "0"]) == 0  # fmt: skip
        assert cli_main(["teacher-targets", "--data", data, "--teacher", teacher, "--out", str(cl),
                         "--split", "synth_train", "--debug-pngs", "0"]) == 0  # fmt: skip
    scores = np.concatenate([t.scores for t in TargetCache(cu).load_all().values()])
    return Caches(cl, cu, bag, float(np.median(scores)))


# -- (a) the dataset ------------------------------------------------------------------------------------------------


def test_synth_writes_unlabelled_scenes_that_reader_and_devkit_load(
    synth_unlabelled_root: Path, labelled_root: Path, tmp_path: Path
) -> None:
    from nuscenes import NuScenes

    root = synth_unlabelled_root
    splits = json.loads((root / VERSION / "splits.json").read_text())
    assert splits == {
        "synth_train": ["scene-0000"],
        "synth_val": ["scene-0002"],
        "synth_all": ["scene-0000", "scene-0001", "scene-0002"],
        "synth_unlabelled": [UNLABELLED],
    }
    reader = NuScenesReader(root, VERSION)
    assert [reader.is_labelled(n) for n in reader.scene_names] == [True, False, True]
    unl = reader.split_samples("synth_unlabelled")
    assert len(unl) == 2
    for tok in unl:
        f = reader.frame(tok)
        assert reader.annotations(tok) == [] and len(f.gt) == 0
        assert f.image is not None and len(f.radar) > 0 and f.lidar is not None and len(f.lidar) > 0
    anns = json.loads((root / VERSION / "sample_annotation.json").read_text())
    assert anns and not {a["sample_token"] for a in anns} & set(unl)  # zero annotations on the unlabelled scene
    nusc = NuScenes(version=VERSION, dataroot=str(root), verbose=False)
    assert len(nusc.sample) == 6 and len(nusc.sample_annotation) == len(anns)
    for tok in unl:
        sample = nusc.get("sample", tok)
        assert sample["anns"] == []
        _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        assert boxes == []
    labelled_instances = {a["instance_token"] for a in anns}
    assert {i["token"] for i in nusc.instance} == labelled_instances
    # the same world fully labelled: the same files, the same validation scene, only annotations added
    full = NuScenesReader(labelled_root, VERSION)
    assert full.split_scenes("synth_val") == ["scene-0002"] and full.split_samples("synth_unlabelled") == []
    assert all(full.is_labelled(n) for n in full.scene_names) and full.annotations(unl[0])
    files = _files(root, "samples") + _files(root, "sweeps")
    assert files and files == _files(labelled_root, "samples") + _files(labelled_root, "sweeps")
    assert all((root / f).read_bytes() == (labelled_root / f).read_bytes() for f in files)
    for table in ("sample", "sample_data", "ego_pose", "calibrated_sensor"):
        assert (root / VERSION / f"{table}.json").read_bytes() == (
            labelled_root / VERSION / f"{table}.json"
        ).read_bytes()
    with pytest.raises(ValueError, match=r"unlabelled scenes must be an integer in 0\.\.2"):
        write_dataset(tmp_path / "x", scenes=3, samples_per_scene=1, seed=0, workers=1, unlabelled_scenes=3)
    assert not (tmp_path / "x").exists()  # refused before anything was written


# -- (b) end to end: bag -> cache -> one training run of labelled + unlabelled frames ------------------------------


def test_bag_cache_of_an_unlabelled_scene(caches: Caches, synth_unlabelled_root: Path) -> None:
    index = json.loads((caches.unlabelled / INDEX_NAME).read_text())
    reader = NuScenesReader(synth_unlabelled_root, VERSION)
    assert index["complete"] and index["format_version"] == FORMAT_VERSION == 2
    assert list(index["samples"]) == reader.split_samples("synth_unlabelled")
    boxes = index["header"]["boxes"]
    assert boxes["frame"] == "ego" and boxes["score_threshold"] == 0.1 and boxes["columns"][-2:] == ["vx", "vy"]
    t = TargetCache(caches.unlabelled).get(index["shards"][0]["tokens"][0])
    confident = t.confident_boxes(caches.threshold)
    assert 0 < len(confident) < len(t.boxes) and confident.frame == "ego"
    assert np.all(confident.score >= caches.threshold)
    pl = pseudo_labels(t, caches.threshold)
    np.testing.assert_array_equal(pl.center, confident.center)
    assert np.isnan(pl.velocity).all()  # pseudo-label velocities are never learnt
    head = build_targets([pl], model_config_for("fusion", "tiny"))
    assert head.mask.any() and not head.velocity_mask.any()


def test_student_learns_from_labelled_and_unlabelled_frames(
    caches: Caches, synth_unlabelled_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "student.pt"
    data = str(synth_unlabelled_root)
    args = ["train", "student", "--data", data, "--size", "tiny", "--epochs", "2", "--max-steps", "3",
            "--batch-size", "2", "--out", str(out), "--targets", str(caches.labelled), "--targets",
            str(caches.unlabelled), "--kd", "stage1,stage2,stage3", "--unlabelled-split", "synth_unlabelled",
            "--pseudo-label-threshold", str(caches.threshold), "--pseudo-label-soft", "--threads", "1",
            "--precision", "bf16"]  # fmt: skip
    assert cli_main(args) == 0
    det = Detector.from_checkpoint(out)
    assert det.config == model_config_for("fusion", "tiny")
    meta = load_checkpoint(out).meta
    u = meta["unlabelled"]
    assert (u["split"], u["threshold"], u["weight"], u["frames"], u["scenes"]) == (
        "synth_unlabelled",
        caches.threshold,
        1.0,
        2,
        1,
    )
    assert u["pseudo_boxes"] > 0 and meta["train_frames"] == 2 and u["soft"]
    assert meta["train"]["precision"] == "bf16"  # the cache's float16 targets meet bfloat16 autocast
    assert meta["targets"]["path"] == [str(caches.labelled), str(caches.unlabelled)]
    log = _log(out)
    assert sum(r["frames_unlabelled"] for r in log) > 0 and sum(r["frames_labelled"] for r in log) > 0
    assert sum(r["pseudo_boxes"] for r in log) > 0
    assert any("pl_total" in r for r in log) and any("det_total" in r for r in log)
    assert all(r["pl_velocity"] == 0.0 for r in log if "pl_velocity" in r)  # velocity masked on pseudo-labels
    assert all(r["kd_total"] > 0 for r in log)
    # imkd eval on synth_val works on this dataset
    ev = tmp_path / "eval"
    assert cli_main(["eval", "--data", data, "--checkpoint", str(out), "--out", str(ev), "--bev-pngs", "0"]) == 0
    assert json.loads((ev / "metrics_summary.json").read_text())["eval_scope"]["gt_boxes"] > 0


def test_no_unlabelled_frame_equals_a_labelled_only_run(
    labelled_root: Path, tiny_teacher_ckpt: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    build_target_cache(labelled_root, tiny_teacher_ckpt, cache, progress=False, debug_pngs=0)
    mc = model_config_for("fusion", "tiny")
    cfg = TrainConfig(epochs=2, batch_size=2, seed=1, max_steps=3)
    kw = {"progress": False, "distill": KD, "targets": cache}
    plain = train(labelled_root, tmp_path / "a" / "s.pt", mc, cfg, **kw)
    empty = train(
        labelled_root, tmp_path / "b" / "s.pt", mc, cfg, **kw, unlabelled=PseudoLabelConfig("synth_unlabelled")
    )
    for k, v in plain.model.state_dict().items():
        torch.testing.assert_close(empty.model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    la, lb = _log(plain.checkpoint), _log(empty.checkpoint)
    assert [r["frames_unlabelled"] for r in lb] == [0, 0] and sum(r["frames_labelled"] for r in lb) == 6
    counters = ("frames_labelled", "frames_unlabelled", "pseudo_boxes")
    assert [{k: v for k, v in r.items() if k not in counters} for r in lb] == la
    assert load_checkpoint(empty.checkpoint).meta["unlabelled"]["frames"] == 0


def test_mixed_run_resumes_exactly(caches: Caches, synth_unlabelled_root: Path, tmp_path: Path) -> None:
    mc = model_config_for("fusion", "tiny")
    cfg = TrainConfig(epochs=3, batch_size=2, seed=2, max_steps=5)
    unl = PseudoLabelConfig("synth_unlabelled", caches.threshold, weight=0.5)
    kw = {"progress": False, "distill": KD, "targets": [caches.labelled, caches.unlabelled], "unlabelled": unl}
    full = train(synth_unlabelled_root, tmp_path / "full" / "s.pt", mc, cfg, **kw)
    cut = tmp_path / "cut" / "s.pt"
    with pytest.raises(KeyboardInterrupt):
        train(synth_unlabelled_root, cut, mc, cfg, **kw, on_epoch=stop_after(1))
    other = dict(kw, unlabelled=PseudoLabelConfig("synth_unlabelled", caches.threshold))
    with pytest.raises(DistillConfigError, match="--resume: .* unlabelled frames"):
        train(synth_unlabelled_root, cut, mc, cfg, resume=True, **other)
    resumed = train(synth_unlabelled_root, cut, mc, cfg, resume=True, **kw)
    assert resumed.steps == full.steps == 5
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert _log(cut) == _log(full.checkpoint)


# -- (c) a threshold above every teacher score ----------------------------------------------------------------------


def test_threshold_above_every_score_gives_no_pseudo_box(
    caches: Caches, synth_unlabelled_root: Path, tmp_path: Path
) -> None:
    top = max(float(t.scores.max()) for t in TargetCache(caches.unlabelled).load_all().values())
    assert top < 1.0
    unl = PseudoLabelConfig("synth_unlabelled", threshold=1.0)
    res = train(
        synth_unlabelled_root,
        tmp_path / "s.pt",
        model_config_for("fusion", "tiny"),
        TrainConfig(epochs=2, batch_size=2, seed=0, max_steps=3),
        progress=False,
        distill=KD,
        targets=[caches.labelled, caches.unlabelled],
        unlabelled=unl,
    )
    log = _log(res.checkpoint)
    assert sum(r["frames_unlabelled"] for r in log) > 0 and sum(r["pseudo_boxes"] for r in log) == 0
    assert all(np.isfinite(r["loss"]) for r in log) and any("pl_heatmap" in r for r in log)
    assert load_checkpoint(res.checkpoint).meta["unlabelled"]["pseudo_boxes"] == 0
    Detector.from_checkpoint(res.checkpoint)


def test_pseudo_labels_without_distillation(caches: Caches, synth_unlabelled_root: Path, tmp_path: Path) -> None:
    """``--kd none``: pseudo-label self-training alone (no adapters, no KD term)."""
    res = train(
        synth_unlabelled_root,
        tmp_path / "s.pt",
        model_config_for("fusion", "tiny"),
        TrainConfig(epochs=1, batch_size=4, seed=0, max_steps=1),
        progress=False,
        targets=[caches.labelled, caches.unlabelled],
        unlabelled=PseudoLabelConfig("synth_unlabelled", caches.threshold),
    )
    (row,) = _log(res.checkpoint)
    assert "pl_total" in row and not any(k.startswith("kd_") for k in row)
    assert "distill_heads" not in load_checkpoint(Path(f"{res.checkpoint}.train.pt")).training_state


def test_soft_pseudo_targets_raise_the_heatmap_to_the_teacher() -> None:
    from imkd_ros.core.types import Boxes
    from imkd_ros.distill.bank import TargetsBatch
    from imkd_ros.distill.pseudo import SemiSupervisedStudent
    from imkd_ros.model import Student

    cfg = model_config_for("fusion", "tiny")
    box = Boxes([[10.0, 2.0, 0.8]], [[1.9, 4.5, 1.6]], [0.3], [[np.nan, np.nan]], [0], [0.9])
    empty = Boxes.empty()
    ref = build_targets([box, empty], cfg, torch.device("cpu"))
    teacher = torch.rand(ref.heatmap.shape, generator=torch.Generator().manual_seed(0)) * 0.9
    batch = TargetsBatch(torch.zeros(2, 1, 1, 1), torch.zeros(2, 3, 1, 1), teacher, ["a", "b"])
    soft = SemiSupervisedStudent(Student(config=cfg), None, None, soft=True)
    got = soft._pseudo_targets([box, empty], batch, [0, 1])
    assert torch.equal(got.heatmap, torch.maximum(ref.heatmap, teacher))
    assert torch.equal(got.heatmap == 1.0, ref.heatmap == 1.0)  # positives: the pseudo-labels' centres only
    assert torch.equal(got.regression, ref.regression) and torch.equal(got.mask, ref.mask)
    hard = SemiSupervisedStudent(Student(config=cfg), None, None)
    assert hard._pseudo_targets([box, empty], None, [0, 1]) == [box, empty]
    wrong = TargetsBatch(batch.features, batch.intensity, teacher[:, :3], ["a", "b"])
    with pytest.raises(DistillConfigError, match="teacher heatmap"):
        soft._pseudo_targets([box, empty], wrong, [0, 1])


def test_pseudo_label_velocity_from_the_radar_where_the_box_has_returns() -> None:
    from imkd_ros.distill.cache import TeacherTargets

    boxes = np.array([[20, 0, 0.8, 1.9, 4.5, 1.6, 0, 3.0, 1.0], [30, 10, 0.8, 1.9, 4.5, 1.6, 0, 2.0, 2.0]], np.float32)
    maps = np.zeros((1, 1, 1), np.float32)
    t = TeacherTargets("tok", 0, maps, np.zeros((3, 1, 1), np.float32), maps, boxes, np.zeros(2, np.int32),
                       np.array([0.9, 0.8], np.float32))  # fmt: skip
    radar = np.zeros((4, 7), np.float32)
    radar[:, 0], radar[:, 4] = 20.0, 5.0  # four returns straight ahead in box 0, radial velocity +5 m/s
    masked = pseudo_labels(t, 0.5)
    assert np.isnan(masked.velocity).all()
    got = pseudo_labels(t, 0.5, radar)
    assert got.velocity[0, 0] == pytest.approx((0.3 * 3.0 + 4 * 5.0) / (0.3 + 4))  # refined toward the Doppler
    assert got.velocity[0, 1] == pytest.approx(1.0)  # tangential part: the teacher's
    assert np.isnan(got.velocity[1]).all()  # no return in box 1: masked


def test_pseudo_labels_without_rotation_teach_no_yaw() -> None:
    from imkd_ros.distill.cache import TeacherTargets
    from imkd_ros.model.losses import detection_losses

    boxes = np.array(
        [[20, 0, 0.8, 1.9, 4.5, 1.6, 0.7, 3.0, 1.0], [30, 10, 0.8, 1.9, 4.5, 1.6, -2, 2.0, 2.0]], np.float32
    )
    maps = np.zeros((1, 1, 1), np.float32)
    t = TeacherTargets("tok", 0, maps, np.zeros((3, 1, 1), np.float32), maps, boxes, np.zeros(2, np.int32),
                       np.array([0.9, 0.8], np.float32))  # fmt: skip
    kept, blind = pseudo_labels(t, 0.5), pseudo_labels(t, 0.5, rotation=False)
    np.testing.assert_allclose(kept.yaw, [0.7, -2.0], atol=1e-6)
    assert np.isnan(blind.yaw).all() and np.array_equal(blind.center, kept.center)
    cfg = model_config_for("fusion", "tiny")
    tk, tb = build_targets([kept], cfg), build_targets([blind], cfg)
    assert tk.rotation_mask.sum() == 2 and tb.rotation_mask.sum() == 0 and tb.mask.sum() == 2
    assert torch.equal(tk.regression[..., :6], tb.regression[..., :6]) and (tb.regression[..., 6:8] == 0).all()
    k, h, w = len(cfg.classes), cfg.grid.out_ny, cfg.grid.out_nx
    from imkd_ros.model.head import HeadOutput

    reg = torch.randn(1, 10, h, w, requires_grad=True)
    head = HeadOutput(torch.zeros(1, k, h, w), reg)
    lb, lk = detection_losses(head, tb, cfg.head), detection_losses(head, tk, cfg.head)
    assert float(lb.rotation.detach()) == 0.0 and float(lk.rotation.detach()) > 0.0
    assert float(lb.size.detach()) == float(lk.size.detach())
    lb.total.backward()
    assert (reg.grad[:, 6:8] == 0).all() and reg.grad[:, 3:6].abs().sum() > 0


def test_soft_pseudo_labels_train_and_change_the_loss(
    caches: Caches, synth_unlabelled_root: Path, tmp_path: Path
) -> None:
    rows = {}
    for soft in (False, True):
        res = train(
            synth_unlabelled_root,
            tmp_path / f"s{soft}.pt",
            model_config_for("fusion", "tiny"),
            TrainConfig(epochs=1, batch_size=4, seed=0, max_steps=1),
            progress=False,
            targets=[caches.labelled, caches.unlabelled],
            unlabelled=PseudoLabelConfig("synth_unlabelled", caches.threshold, soft=soft),
        )
        (rows[soft],) = _log(res.checkpoint)
        assert load_checkpoint(res.checkpoint).meta["unlabelled"]["soft"] is soft
    assert rows[True]["pl_heatmap"] != rows[False]["pl_heatmap"]  # the teacher's heatmap reached the focal loss
    assert rows[True]["det_total"] == rows[False]["det_total"]  # labelled frames untouched


# -- misuse -----------------------------------------------------------------------------------------------------------


def test_misuse_is_reported(
    caches: Caches,
    synth_unlabelled_root: Path,
    tiny_teacher_ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = synth_unlabelled_root
    mc = model_config_for("fusion", "tiny")
    cfg = TrainConfig(epochs=1, max_steps=1)
    both = [caches.labelled, caches.unlabelled]
    unl = PseudoLabelConfig("synth_unlabelled")
    with pytest.raises(DistillConfigError, match="needs the teacher-target cache"):
        train(root, tmp_path / "a.pt", mc, cfg, progress=False, unlabelled=unl)
    with pytest.raises(DistillConfigError, match="below the scores"):
        train(
            root,
            tmp_path / "b.pt",
            mc,
            cfg,
            progress=False,
            targets=both,
            unlabelled=PseudoLabelConfig("synth_unlabelled", 0.05),
        )
    with pytest.raises(DistillConfigError, match="shares 2 samples with the training split"):
        train(root, tmp_path / "c.pt", mc, cfg, progress=False, targets=both, unlabelled=PseudoLabelConfig("synth_all"))
    with pytest.raises(TargetCacheError, match="2 of 4 samples are not in the teacher-target cache"):
        train(root, tmp_path / "d.pt", mc, cfg, progress=False, distill=KD, targets=caches.labelled, unlabelled=unl)
    with pytest.raises(DistillConfigError, match="threshold must be in"):
        PseudoLabelConfig("synth_unlabelled", 1.5)
    base = [
        "train",
        "student",
        "--data",
        str(root),
        "--size",
        "tiny",
        "--max-steps",
        "1",
        "--out",
        str(tmp_path / "e.pt"),
    ]
    assert cli_main([*base, "--pseudo-label-threshold", "0.5"]) == 2
    assert "need --unlabelled-split" in capsys.readouterr().err
    # caches of another teacher are not mixed
    torch.manual_seed(1)
    tcfg = model_config_for("lidar", "tiny")
    other_teacher = tmp_path / "other_teacher.pt"
    save_checkpoint(other_teacher, Teacher(config=tcfg), tcfg, {})
    other = tmp_path / "other_cache"
    build_target_cache(root, other_teacher, other, split="synth_unlabelled", progress=False, debug_pngs=0)
    with pytest.raises(TargetCacheError, match="differ in teacher"):
        TargetBank.from_caches([caches.labelled, other])
    # a cache of format version 1 (before the boxes record) is refused with a clear message
    old = tmp_path / "v1"
    shutil.copytree(caches.unlabelled, old)
    index = json.loads((old / INDEX_NAME).read_text())
    index["format_version"] = 1
    (old / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(TargetCacheError, match="format version 1; this code reads version 2 .rebuild"):
        TargetCache(old)
