"""/diagnostics contents without ROS (imkd_ros.pipeline.diagnostics): processing-time thresholds, input staleness,
extrinsics sources, model, dropped frames."""

from __future__ import annotations

from imkd_ros.core.transforms import Pose
from imkd_ros.pipeline.diagnostics import ERROR, OK, STALE, WARN, DiagnosticsMonitor
from imkd_ros.pipeline.extrinsics import SensorExtrinsics


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _by(statuses: list) -> dict:  # noqa: ANN001
    return {s.name.split(": ", 1)[1]: s for s in statuses}


def test_levels_follow_the_thresholds_and_inputs() -> None:
    clock = _Clock()
    m = DiagnosticsMonitor("detector_node", clock=clock, processing_warn_ms=100, processing_error_ms=500)
    m.input_timeout = 1.0
    m.watch("/camera/image")
    m.watch("/ego_pose", optional=True)
    s = _by(m.statuses())
    assert s["input /camera/image"].level == STALE and s["input /ego_pose"].level == OK
    assert s["model"].level == ERROR and s["processing"].level == OK
    assert all(x.hardware_id == "detector_node" and x.name.startswith("detector_node: ") for x in s.values())

    m.set_model(True, backend="torch", device="cpu", checkpoint="/m.pt")
    m.received("/camera/image")
    m.received("/ego_pose")
    m.processed(40.0)
    s = _by(m.statuses())
    assert s["input /camera/image"].level == OK and s["model"].level == OK and s["processing"].level == OK
    assert s["processing"].value("max_ms") == "40.0" and s["model"].value("backend") == "torch"

    m.processed(120.0)
    m.processed(30.0)
    assert _by(m.statuses())["processing"].level == WARN  # the worst frame of the period counts
    assert _by(m.statuses())["processing"].level == OK  # none since: the last frame's 30 ms
    m.processing_warn_ms = 20.0  # changed at run time
    assert _by(m.statuses())["processing"].level == WARN
    m.processed(800.0)
    assert _by(m.statuses())["processing"].level == ERROR

    clock.t += 1.5  # inputs stop
    s = _by(m.statuses())
    assert s["input /camera/image"].level == ERROR and "no message for 1.5 s" in s["input /camera/image"].message
    assert s["input /ego_pose"].level == WARN  # optional


def test_frames_and_extrinsics() -> None:
    m = DiagnosticsMonitor("detector_node")
    m.sync_dropped("superseded")
    m.bad("image")
    m.bad("image")
    s = _by(m.statuses())
    assert s["frames"].level == WARN and s["frames"].value("bad_input image") == "2"
    assert s["frames"].value("sync_dropped superseded") == "1"
    assert _by(m.statuses())["frames"].level == OK  # no new bad input since the last report
    ex = {
        "camera": SensorExtrinsics("camera", "cam_front", "tf", Pose.identity(), "tf base_link <- cam_front"),
        "radar front": SensorExtrinsics("radar front", "radar_front", "tf", Pose.identity(), ""),
    }
    s = _by(m.statuses(ex, "auto"))["extrinsics"]
    assert s.level == OK and s.message == "camera: tf, radar front: tf" and s.value("camera frame") == "cam_front"
    ex["camera"] = SensorExtrinsics("camera", "cam_front", "parameters", Pose.identity(), "no transform")
    assert _by(m.statuses(ex, "auto"))["extrinsics"].level == WARN
    assert _by(m.statuses(ex, "parameters"))["extrinsics"].level == OK
    ex["camera"] = SensorExtrinsics("camera", "cam_front", "waiting", None, "waiting for tf")
    assert _by(m.statuses(ex, "tf"))["extrinsics"].level == WARN
