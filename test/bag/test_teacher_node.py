"""teacher_node for real: a driver process plays LiDAR sweeps of an exported bag into a teacher_node process and
records the TeacherTargets it publishes.

Checks: one message per sweep with the sweep's stamp (never now()), frame base_link, sample_token = the stamp,
the teacher's grid and classes, and maps, boxes and scores equal to what ``imkd bag teacher-targets`` computes for the
same sweep offline (same code path; the node runs torch on one thread like this test); a malformed cloud gives a
named warning and no output; SIGINT stops the node cleanly. A missing checkpoint is a one-line error, exit 2.
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

from imkd_ros.pipeline.env import ros_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TIMEOUT_S = 120.0
COUNT = 3


def _env() -> dict[str, str]:
    env = ros_env(domain_id=random.SystemRandom().randint(1, 101))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["OMP_NUM_THREADS"] = "1"  # torch on one thread, as in this process: same sums, same bits
    return env


def node_command(checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "imkd_ros.nodes.teacher_node", "--ros-args",
        "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p", "warn_period:=0.0",
        "-r", "~/input/lidar:=/lidar/top", "-r", "~/output/targets:=/teacher/targets",
        *extra,
    ]  # fmt: skip


def _offline(bag: Path, teacher: Path, stamps: list[int]) -> dict[int, object]:
    """The targets of the bag's first sweeps computed in this process, keyed by stamp (one sweep, ego frame at it)."""
    from imkd_ros.apps.bag_targets import lidar_frame
    from imkd_ros.bag.source import BagSource
    from imkd_ros.bag.topics import BagTopics
    from imkd_ros.data.dataset import collate_frames
    from imkd_ros.distill.targets import compute_teacher_targets, load_teacher

    t = load_teacher(teacher)  # on one torch thread: test/bag/conftest.py
    src = BagSource(bag, BagTopics(sample_token="/not/there"))  # no sample tokens: frames are LiDAR sweeps
    out = {}
    for key, stamp, pts in src.lidar_frames(1, keys={str(s) for s in stamps}):
        out[stamp] = compute_teacher_targets(t, collate_frames([lidar_frame(key, stamp, pts, t.config)]))[0]
    return out


def test_teacher_node_end_to_end(exported_bag: Path, bag_teacher: Path, tmp_path: Path) -> None:
    env = _env()
    node_log, driver_log, npz = tmp_path / "node.log", tmp_path / "driver.log", tmp_path / "received.npz"
    procs: list[subprocess.Popen] = []
    try:
        with node_log.open("w") as nlog, driver_log.open("w") as dlog:
            node = subprocess.Popen(node_command(bag_teacher), env=env, cwd=REPO, stdout=nlog, stderr=nlog)
            procs.append(node)
            driver = subprocess.Popen(
                [sys.executable, str(HERE / "teacher_driver.py"), "--bag", str(exported_bag), "--out", str(npz)]
                + ["--count", str(COUNT), "--timeout", str(TIMEOUT_S)],
                env=env,
                cwd=REPO,
                stdout=dlog,
                stderr=subprocess.STDOUT,
            )
            procs.append(driver)
            driver_rc = driver.wait(timeout=TIMEOUT_S * 2)
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
    stamps = summary["stamps"]
    assert len(stamps) == COUNT and summary["answered"] == stamps, report  # every sweep, nothing for the bad ones
    assert len(summary["bad_stamps"]) == 2 and not set(summary["bad_stamps"]) & set(summary["answered"])
    assert "has no field 'intensity'" in node_text and "cloud dropped" in node_text, report

    from imkd_ros.core.classes import CLASSES
    from imkd_ros.distill.cache import FORMAT_VERSION
    from imkd_ros.distill.intensity import INTENSITY_NAMES

    expected = _offline(exported_bag, bag_teacher, stamps)
    received = np.load(npz)
    for stamp in stamps:
        meta, want = summary[str(stamp)], expected[stamp]
        assert meta["frame_id"] == "base_link" and meta["sample_token"] == str(stamp)
        assert meta["format_version"] == FORMAT_VERSION and meta["class_names"] == list(CLASSES)
        assert meta["intensity_names"] == list(INTENSITY_NAMES)
        c, h, w = want.features.shape
        assert meta["grid"][5:] == [h, w, c]
        for name, arr in (("features", want.features), ("intensity", want.intensity), ("heatmap", want.heatmap)):
            np.testing.assert_allclose(received[f"{stamp}_{name}"].reshape(arr.shape), arr, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(received[f"{stamp}_boxes"].reshape(-1, 9), want.boxes, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(received[f"{stamp}_box_labels"], want.labels)
        np.testing.assert_allclose(received[f"{stamp}_box_scores"], want.scores, rtol=1e-5, atol=1e-6)


def test_node_exits_with_a_clear_error_for_a_missing_checkpoint(tmp_path: Path) -> None:
    res = subprocess.run(
        node_command(tmp_path / "missing.pt"), env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "teacher_node: error:" in res.stderr and "missing.pt" in res.stderr


def test_node_exits_naming_a_bad_parameter(bag_teacher: Path) -> None:
    res = subprocess.run(
        node_command(bag_teacher, "-p", "max_points:=0"), env=_env(), cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "teacher_node: error: parameter max_points: 0 is below the minimum of 1" in res.stderr
