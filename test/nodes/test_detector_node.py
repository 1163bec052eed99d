"""detector_node for real: a driver process (publisher + subscriber) -> detector_node process -> back.

Checks (one run of the node and node_driver.py, several tests): the node is started with wrong mounting parameters
and the rig only on /tf_static, yet its detections land on the true boxes; output stamps are the input images'
stamps (never now()), frame ids, DetectedObjects beside every Detection3DArray with the Detector's own velocities;
a burst of malformed messages gives named warnings and no output, a fuzz of 1,000 malformed messages over every
input (tf included) crashes nothing, and the next good frame still gives detections; /diagnostics says OK, then WARN
once the processing threshold is set low at run time, then ERROR when the inputs stop; read-only and out-of-range
parameter changes are refused; the node shuts down cleanly on SIGINT.
Also: parameters come from config/detector.yaml, and the checkpoint parameter resolves the shipped model.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.pipeline.env import ros_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TIMEOUT_S = 120.0
EPOCHS = 16  # enough for a tiny model to learn the training scenes it is then tested on (~50 steps)


def _env() -> dict[str, str]:
    env = ros_env(domain_id=random.SystemRandom().randint(1, 101))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def known_scene_model(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny student trained on synth_train; the node is tested on a training scene (a "known scene"), so that
    a small, quickly trained model still finds the right objects."""
    from imkd_ros.training.train import TrainConfig, model_config_for, train

    out = tmp_path_factory.mktemp("node_model") / "known.pt"
    cfg = TrainConfig(epochs=EPOCHS, batch_size=4, lr=5e-3, seed=0, val_every=10**6)
    train(synth_root, out, model_config_for("fusion", "tiny"), cfg, progress=False)
    return out


#: Deliberately wrong mountings: the node must take the rig from /tf_static instead.
WRONG_EXTRINSICS = (
    "-p", "camera_to_base.front.translation:=[0.0, 0.0, 0.0]",
    "-p", "camera_to_base.front.rotation:=[1.0, 0.0, 0.0, 0.0]",
    "-p", "radar_to_base.front.translation:=[-20.0, 5.0, 0.0]",
    "-p", "radar_to_base.front.rotation:=[0.0, 0.0, 0.0, 1.0]",
)  # fmt: skip


def node_command(checkpoint: Path, *extra: str, module: str = "imkd_ros.nodes.detector_node") -> list[str]:
    return [
        sys.executable, "-m", module, "--ros-args",
        "--params-file", str(REPO / "config" / "detector.yaml"),
        "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p", "warn_period:=0.0",
        "-r", "~/input/image:=/camera/image", "-r", "~/input/camera_info:=/camera/camera_info",
        "-r", "~/input/radar:=/radar/front", "-r", "~/input/ego_pose:=/ego_pose",
        *extra,
    ]  # fmt: skip


@dataclass
class NodeRun:
    summary: dict
    node_text: str
    driver_text: str
    driver_rc: int
    alive: bool
    node_rc: int

    @property
    def report(self) -> str:
        return f"--- node:\n{self.node_text}\n--- driver:\n{self.driver_text}"


@pytest.fixture(scope="module")
def node_run(synth_root: Path, known_scene_model: Path, tmp_path_factory: pytest.TempPathFactory) -> NodeRun:
    """detector_node (wrong mounting parameters, extrinsics only on /tf_static) and node_driver.py (known scene,
    burst, 1,000-message fuzz, last frame, diagnostics), once for the tests below."""
    tmp = tmp_path_factory.mktemp("node_run")
    env = _env()
    node_log, driver_log = tmp / "node.log", tmp / "driver.log"
    procs: list[subprocess.Popen] = []
    diag = ("-p", "diagnostics.processing_warn_ms:=5000.0", "-p", "diagnostics.processing_error_ms:=10000.0")
    try:
        with node_log.open("w") as nlog, driver_log.open("w") as dlog:
            cmd = node_command(known_scene_model, *WRONG_EXTRINSICS, *diag)
            node = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=nlog, stderr=nlog)
            procs.append(node)
            driver = subprocess.Popen(
                [sys.executable, str(HERE / "node_driver.py"), "--data", str(synth_root), "--split", "synth_train"]
                + ["--timeout", str(TIMEOUT_S), "--fuzz", "1000"],
                env=env,
                cwd=REPO,
                stdout=dlog,
                stderr=subprocess.STDOUT,
            )
            procs.append(driver)
            driver_rc = driver.wait(timeout=TIMEOUT_S * 4)
            alive = node.poll() is None
            node.send_signal(signal.SIGINT)
            node_rc = node.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    node_text, driver_text = node_log.read_text(), driver_log.read_text()
    summary = json.loads(driver_text.split("SUMMARY ", 1)[1].splitlines()[0]) if "SUMMARY " in driver_text else {}
    return NodeRun(summary, node_text, driver_text, driver_rc, alive, node_rc)


def test_node_end_to_end_with_tf_extrinsics_burst_and_fuzz(synth_root: Path, node_run: NodeRun) -> None:
    from imkd_ros.core.classes import CLASSES
    from imkd_ros.data.reader import NuScenesReader

    report = node_run.report
    assert node_run.driver_rc == 0, report
    assert node_run.alive and node_run.node_rc == 0, report
    summary = node_run.summary

    frames = summary["frames"]
    assert len(frames) == 4, report
    # every good frame answered, with its own stamp; nothing for the early or malformed ones
    assert sorted(f["stamp_ns"] for f in frames) == summary["answered_stamps"], report
    assert not set(summary["bad_stamps"] + [summary["early_stamp"]]) & set(summary["answered_stamps"]), report
    assert all(f["frame_id"] == "base_link" for f in frames)
    assert sum(summary["fuzz"].values()) == 1000 and set(summary["fuzz"]) == {
        "image", "camera_info", "radar", "ego_pose", "tf", "tf_static"
    }  # fmt: skip

    # the mounting parameters are wrong: detections land on the true boxes only with the rig from /tf_static
    reader = NuScenesReader(synth_root, load_lidar=False, load_image=False)
    for f in frames:
        dets = f["detections"]
        assert dets, f"no detections for {f['sample_token']}\n{report}"
        gt = reader.frame(f["sample_token"]).gt
        matched = 0
        for d in dets:
            dist = np.hypot(*(gt.center[:, :2] - np.array(d["center"][:2])).T)
            same = [CLASSES[int(label)] == d["label"] for label in gt.label]
            matched += bool(np.any((dist < 2.0) & np.array(same)))
        assert matched >= max(1, len(dets) // 2), (f["sample_token"], matched, dets)
        m = f["markers"]
        assert m["first_action"] == 3 and m["frame_ids"] == ["base_link"]  # DELETEALL first
        assert m["by_ns"]["boxes"] == m["by_ns"]["labels"] == len(dets) and m["line_points"] == [10]
        objs = f["objects"]  # DetectedObjects: one per detection, same order
        assert objs is not None and len(objs) == len(dets), report
        for d, o in zip(dets, objs, strict=True):
            np.testing.assert_allclose(o["center"], d["center"], atol=1e-5)
            assert o["existence_probability"] == pytest.approx(d["score"], abs=1e-6)
    assert "extrinsics of radar front (frame 'radar_front'): tf" in node_run.node_text, report
    assert "extrinsics of camera front (frame 'cam_front'): tf" in node_run.node_text, report
    assert "parameters" not in node_run.node_text.split("extrinsics of", 1)[1].split("\n")[0]

    for text in (
        "no CameraInfo received yet",
        "unsupported encoding 'yuv422'",
        "image size 800x450 does not match CameraInfo 1600x900",
        "unusable camera matrix",
        "with NaN/inf values",
        "has no field 'rcs'",
        "more than max_radar_points 5000",
        "not newer than the last one processed",
        "time went backwards",
        "/tf: transform",  # the fuzz's tf messages are named
        "/tf_static: transform",
        "waiting for extrinsics",  # unknown frames
    ):
        assert text in node_run.node_text, f"missing warning {text!r}\n{report}"


def _offline_frames(reader, events):  # noqa: ANN001, ANN202 - the node's assembly of the played events, offline
    """The frames detector_node assembles from the player's messages of ``events`` (same functions, same order),
    by camera stamp."""
    from PIL import Image as PILImage

    from imkd_ros.data.pcd import read_radar_pcd
    from imkd_ros.pipeline.assemble import FrameAssembler
    from imkd_ros.pipeline.detector_params import DetectorNodeConfig

    asm = FrameAssembler.from_config(DetectorNodeConfig.defaults(), {"front": None})
    out = {}
    for ev in events:
        asm.add_pose(ev.stamp, reader.ego_pose_of(ev.token))
        rec = reader.sample_data(ev.token)
        if ev.kind == "radar":
            cloud = read_radar_pcd(reader.dataroot / rec["filename"], filtered=False)
            done, _ = asm.add_radar("front", ev.stamp, cloud, reader.sensor_to_ego(ev.token))
        else:
            asm.set_calibration(reader.frame(ev.sample).camera)
            with PILImage.open(reader.dataroot / rec["filename"]) as im:
                pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
            done, _ = asm.add_camera(ev.stamp, pixels)
        if done is not None:
            out[done.stamp] = done.frame
    return out


def test_detected_objects_velocities_are_the_detectors(
    synth_root: Path, known_scene_model: Path, node_run: NodeRun
) -> None:
    """The DetectedObjects' velocities (object-frame twists turned back) equal Detector.detect's for the same frames
    (the node's assembly redone offline: phase 1 from the scene's start, the last frame after the node's reset)."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.inference.detector import Detector, inference_threads
    from imkd_ros.nodes.player import timeline

    assert node_run.driver_rc == 0, node_run.report
    reader = NuScenesReader(synth_root, load_lidar=False, load_image=False)
    events = timeline(reader, [node_run.summary["scene"]])
    cams = [i for i, e in enumerate(events) if e.kind == "camera"]
    frames = _offline_frames(reader, events[: cams[-2] + 1])
    frames.update(_offline_frames(reader, events[cams[-2] + 1 : cams[-1] + 1]))  # after the hour-ago reset
    # the node's runtime: its defaults (backend and precision auto: OpenVINO bf16 where the CPU runs it), its threads
    detector = Detector.from_checkpoint(
        known_scene_model, "cpu", 0.3, backend="auto", precision="auto", threads=inference_threads(0)
    )
    compared = 0
    for f in node_run.summary["frames"]:
        boxes = detector.detect(frames[f["stamp_ns"]])
        objs = f["objects"]
        assert len(objs) == len(boxes), (f["stamp_ns"], len(objs), len(boxes))
        for o in objs:
            i = int(np.argmin(np.hypot(*(boxes.center[:, :2] - np.array(o["center"][:2])).T)))
            np.testing.assert_allclose(o["center"], boxes.center[i], atol=1e-3)
            want = boxes.velocity[i]
            if np.isfinite(want).all():
                assert o["has_twist"]
                np.testing.assert_allclose(o["velocity"], want, atol=1e-3)
                compared += 1
            else:
                assert not o["has_twist"]
    assert compared > 0


def test_diagnostics_ok_then_warn_then_inputs_stopped(node_run: NodeRun) -> None:
    s = node_run.summary
    assert node_run.driver_rc == 0, node_run.report
    assert s["diag_all_ok_seen"], node_run.report
    assert {"processing", "extrinsics", "model", "frames"} <= set(s["diag_components"])
    assert {"input /camera/image", "input /camera/camera_info", "input /radar/front", "input /ego_pose"} <= set(
        s["diag_components"]
    )
    assert s["set_warn"] == [True, ""], s["set_warn"]
    assert s["diag_processing_warn"] is not None and s["diag_processing_warn"][0] == 1, node_run.report
    assert s["set_readonly"][0] is False and "read-only" in s["set_readonly"][1]
    assert s["set_out_of_range"][0] is False and "score_threshold" in s["set_out_of_range"][1]
    stopped = s["diag_inputs_stopped"]
    assert stopped["input /camera/image"][0] in (2, 3) and "no message" in stopped["input /camera/image"][1]
    assert "diagnostics.processing_warn_ms=0.001" in node_run.node_text


def test_parameters_come_from_the_yaml_and_the_shipped_model_resolves(tmp_path: Path) -> None:
    from imkd_ros.nodes.detector_node import DEFAULT_MODEL, default_parameters, resolve_checkpoint

    params = default_parameters()
    assert params["output_frame"] == "base_link" and params["radars"] == ["front"]
    assert params["camera_to_base.front.rotation"] == [0.5, -0.5, 0.5, -0.5] and params["cameras"] == ["front"]
    assert params["radar_to_base.front.translation"] == [3.41, 0.0, 0.50]
    assert params["checkpoint"] == "" and params["device"] == "cuda"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        resolve_checkpoint("nope.pt")
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"")
    assert resolve_checkpoint(str(ckpt)) == ckpt
    if (REPO / "models" / DEFAULT_MODEL).is_file():
        assert resolve_checkpoint("") == REPO / "models" / DEFAULT_MODEL
    else:
        with pytest.raises(FileNotFoundError, match=DEFAULT_MODEL):
            resolve_checkpoint("")


def test_node_exits_with_a_clear_error_for_a_missing_checkpoint(tmp_path: Path) -> None:
    res = subprocess.run(
        node_command(tmp_path / "missing.pt"), env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "detector_node: error:" in res.stderr and "missing.pt" in res.stderr


def test_lifecycle_transitions_driven_from_another_process(tmp_path: Path) -> None:
    """detector_lifecycle_node starts unconfigured; configure loads the model, activate creates the subscriptions
    and publishers (incl. /diagnostics), deactivate and cleanup release them, shutdown finalises; all through
    lifecycle_msgs services called by another process."""
    import torch

    from imkd_ros.model import ModelConfig
    from imkd_ros.model.checkpoint import build_model, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig.tiny(("camera", "radar"))
    ckpt = save_checkpoint(tmp_path / "tiny.pt", build_model(cfg), cfg)
    env = _env()
    node_log = tmp_path / "node.log"
    with node_log.open("w") as nlog:
        node = subprocess.Popen(
            node_command(ckpt, module="imkd_ros.nodes.detector_lifecycle_node"), env=env, cwd=REPO, stdout=nlog,
            stderr=nlog,
        )  # fmt: skip
        try:
            res = subprocess.run(
                [sys.executable, str(HERE / "lifecycle_driver.py"), "--timeout", str(TIMEOUT_S)],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S * 3,
            )  # fmt: skip
            alive = node.poll() is None
            node.send_signal(signal.SIGUSR1)  # a live node dumps its threads' stacks and goes on
            time.sleep(1.0)
            alive = alive and node.poll() is None
        finally:
            node.send_signal(signal.SIGINT)
            try:
                node_rc = node.wait(timeout=30)
            except subprocess.TimeoutExpired:  # stuck: its threads' stacks into the log (spin.run_node), then kill
                node.send_signal(signal.SIGUSR1)
                time.sleep(2.0)
                node.kill()
                node_rc = node.wait()
    report = f"--- node:\n{node_log.read_text()}\n--- driver:\n{res.stdout}{res.stderr}"
    assert res.returncode == 0 and alive and node_rc == 0, report
    s = json.loads(res.stdout.split("SUMMARY ", 1)[1].splitlines()[0])
    assert s["initial"]["state"] == "unconfigured" and s["initial"]["image_subscribers"] == 0, report
    steps = s["steps"]
    assert [st["transition"] for st in steps] == [
        "configure", "activate", "deactivate", "cleanup", "configure", "activate", "shutdown"
    ]  # fmt: skip
    assert all(st["success"] for st in steps), report
    assert [st["state"] for st in steps] == [
        "inactive", "active", "inactive", "unconfigured", "inactive", "active", "finalized"
    ], report  # fmt: skip
    configured, active, inactive = steps[0], steps[1], steps[2]
    assert configured["image_subscribers"] == 0 and configured["objects_publishers"] == 0, report
    assert active["image_subscribers"] == 1 and active["objects_publishers"] == 1, report
    assert active["detected_objects_publishers"] == 1 and active["diagnostics_publishers"] >= 1, report
    assert inactive["image_subscribers"] == 0 and inactive["objects_publishers"] == 0, report
    assert steps[5]["image_subscribers"] == 1 and steps[6]["image_subscribers"] == 0, report
    assert "model " in node_log.read_text()  # loaded at configure
    assert "(most recent call first)" in node_log.read_text(), report  # the SIGUSR1 stack dump
