"""The surround rig through real processes: the player publishes six cameras (exposed one after the other, each
with its own ego pose) and five radars of a synthetic nuScenes-rig drive; detector_node, configured with the rig's
camera and radar names only (mountings from /tf_static), pairs each camera set with the radars' sweeps and answers.

The hard case: every keyframe's cameras span ~42 ms while the ego drives, radar sweeps of all five radars arrive
before, between and after the cameras, and the node must rebuild the reader's frame (each camera's mounting moved
into the reference camera's ego frame, radar sweeps selected causally at the reference stamp). Its detections are
compared box for box with Detector.detect on the reader's frames (same checkpoint, same runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

TIMEOUT_S = 180.0


def test_the_node_detects_on_six_staggered_cameras_and_five_radars_as_offline(
    surround_drive: tuple[Path, Path], tmp_path: Path
) -> None:
    from imkd_ros.apps.demo import rig_parameters
    from imkd_ros.bag.interfaces import read_detections
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.inference.detector import Detector
    from imkd_ros.nodes.player import timeline
    from imkd_ros.pipeline.env import child_env, node_command, stop_process

    data, model = surround_drive  # conftest: 2 scenes x 3 keyframes, a radar sweep of no points among them
    params, cameras, radars = rig_parameters(data, tmp_path / "rig.yaml")
    assert len(cameras) == 6 and len(radars) == 5 and cameras[0] == "front"
    doc = yaml.safe_load(params.read_text())
    doc["/**"]["ros__parameters"].update({"backend": "torch", "precision": "fp32", "threads": 1})
    params.write_text(yaml.safe_dump(doc))
    reader = NuScenesReader(data, load_lidar=False, load_image=False)
    scene = reader.split_scenes("synth_val")[0]
    events = timeline(reader, [scene])
    # the hard case is there: views after their reference frame, radar sweeps stamped inside camera sets
    refs = [e.stamp for e in events if e.kind == "camera"]
    assert sum(e.kind == "view" for e in events) == 5 * len(refs)
    assert any(r < e.stamp < r + 50_000_000 for e in events if e.kind == "radar" for r in refs)

    bag, summary = tmp_path / "bag", tmp_path / "player.json"
    node_cmd = node_command(model, params, use_sim_time=True, score_threshold=0.0, extrinsics_source="tf",
                            cameras=cameras, radars=radars)  # fmt: skip
    player_cmd = [sys.executable, "-m", "imkd_ros.nodes.player", "--data", str(data), "--split", "synth_val"]
    player_cmd += ["--bag", str(bag), "--summary", str(summary), "--lockstep", "--rate", "0"]
    player_cmd += ["--wait", str(TIMEOUT_S), "--answer-timeout", "60"]
    env = child_env()
    node_log = tmp_path / "node.log"
    with node_log.open("w") as log:
        node = subprocess.Popen(node_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            played = subprocess.run(player_cmd, env=env, capture_output=True, text=True, timeout=4 * TIMEOUT_S)
        finally:
            stop_process(node)
    report = f"player:\n{played.stdout[-3000:]}{played.stderr[-3000:]}\nnode:\n{node_log.read_text()[-4000:]}"
    assert played.returncode == 0, report
    frames = json.loads(summary.read_text())["frames"]
    assert [f["stamp_ns"] for f in frames] == refs, report
    assert all(f["latency_ms"] is not None for f in frames), report
    assert "missing_camera" not in node_log.read_text(), report

    recorded = read_detections(bag)
    detector = Detector.from_checkpoint(model, "cpu", 0.0, backend="torch", precision="fp32", threads=1)
    stamp_of = {f["sample_token"]: f["stamp_ns"] for f in frames}
    with_images = NuScenesReader(data, load_lidar=False)
    compared = 0
    for token in reader.scene_samples(scene):
        want = detector.detect(with_images.frame(token))
        got = recorded[stamp_of[token]]
        assert len(got) == len(want) > 0, (token, len(got), len(want))
        order_w, order_g = np.lexsort(want.center.T[::-1]), np.lexsort(got.center.T[::-1])
        np.testing.assert_allclose(got.center[order_g], want.center[order_w], atol=2e-3)
        np.testing.assert_allclose(got.size[order_g], want.size[order_w], atol=2e-3)
        np.testing.assert_array_equal(got.label[order_g], want.label[order_w])
        compared += len(want)
    assert compared > 0
