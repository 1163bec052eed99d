"""detector_node for real: a driver process (publisher + subscriber) -> detector_node process -> back.

Checks: output stamps are the input images' stamps (never now()), frame ids, detections of the right classes near
the true boxes of a known scene, well-formed markers; then a burst of malformed messages gives named warnings and
no output, and a good frame afterwards still gives detections; the node shuts down cleanly on SIGINT.
Also: parameters come from config/detector.yaml, and the checkpoint parameter resolves the shipped model.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.ros.env import ros_env

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
    from imkd_ros.train import TrainConfig, model_config_for, train

    out = tmp_path_factory.mktemp("node_model") / "known.pt"
    cfg = TrainConfig(epochs=EPOCHS, batch_size=4, lr=5e-3, seed=0, val_every=10**6)
    train(synth_root, out, model_config_for("fusion", "tiny"), cfg, progress=False)
    return out


def node_command(checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "imkd_ros.nodes.detector_node", "--ros-args",
        "--params-file", str(REPO / "config" / "detector.yaml"),
        "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p", "warn_period:=0.0",
        "-r", "~/input/image:=/camera/image", "-r", "~/input/camera_info:=/camera/camera_info",
        "-r", "~/input/radar:=/radar/front", "-r", "~/input/ego_pose:=/ego_pose",
        *extra,
    ]  # fmt: skip


def test_node_end_to_end_with_malformed_burst(synth_root: Path, known_scene_model: Path, tmp_path: Path) -> None:
    from imkd_ros.classes import CLASSES
    from imkd_ros.data.reader import NuScenesReader

    env = _env()
    node_log, driver_log = tmp_path / "node.log", tmp_path / "driver.log"
    procs: list[subprocess.Popen] = []
    try:
        with node_log.open("w") as nlog, driver_log.open("w") as dlog:
            node = subprocess.Popen(node_command(known_scene_model), env=env, cwd=REPO, stdout=nlog, stderr=nlog)
            procs.append(node)
            driver = subprocess.Popen(
                [sys.executable, str(HERE / "node_driver.py"), "--data", str(synth_root), "--split", "synth_train"]
                + ["--timeout", str(TIMEOUT_S)],
                env=env,
                cwd=REPO,
                stdout=dlog,
                stderr=subprocess.STDOUT,
            )
            procs.append(driver)
            driver_rc = driver.wait(timeout=TIMEOUT_S * 3)
            alive = node.poll() is None
            node.send_signal(signal.SIGINT)
            node_rc = node.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    node_text, driver_text = node_log.read_text(), driver_log.read_text()
    report = f"--- node:\n{node_text}\n--- driver:\n{driver_text}"
    assert driver_rc == 0, report
    assert alive and node_rc == 0, report
    summary = json.loads(driver_text.split("SUMMARY ", 1)[1].splitlines()[0])

    frames = summary["frames"]
    assert len(frames) == 4, report
    # every good frame answered, with its own stamp; nothing for the early or malformed ones
    assert sorted(f["stamp_ns"] for f in frames) == summary["answered_stamps"], report
    assert not set(summary["bad_stamps"] + [summary["early_stamp"]]) & set(summary["answered_stamps"]), report
    assert all(f["frame_id"] == "base_link" for f in frames)

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

    for text in (
        "no CameraInfo received yet",
        "unsupported encoding 'yuv422'",
        "image size 800x450 does not match CameraInfo 1600x900",
        "unusable camera matrix",
        "radar PointCloud2 is empty",
        "with NaN/inf values",
        "has no field 'rcs'",
        "more than max_radar_points 5000",
        "not newer than the last one processed",
        "time went backwards",
    ):
        assert text in node_text, f"missing warning {text!r}\n{report}"


def test_parameters_come_from_the_yaml_and_the_shipped_model_resolves(tmp_path: Path) -> None:
    from imkd_ros.nodes.detector_node import DEFAULT_MODEL, default_parameters, resolve_checkpoint

    params = default_parameters()
    assert params["output_frame"] == "base_link" and params["radars"] == ["front"]
    assert params["camera_to_base.rotation"] == [0.5, -0.5, 0.5, -0.5]
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
