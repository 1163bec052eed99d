"""Environment for child processes that run ROS 2 (tests, tools that start nodes).

Pure Python, no rclpy: it builds a dict for ``subprocess.Popen(..., env=ros_env())`` and stops such children.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from imkd_ros.pipeline.topics import detector_remaps

__all__ = ["stop_process", "fastdds_profile_path", "ros_env", "child_env", "node_command", "DETECTOR_REMAPS"]

_PROFILE = Path("config") / "fastdds.xml"
#: detector_node's inputs remapped to the player's topics (:data:`imkd_ros.pipeline.topics.PLAYER_TOPICS`) for the
#: front rig (one camera, one radar; :func:`imkd_ros.pipeline.topics.detector_remaps` for any rig).
DETECTOR_REMAPS = detector_remaps(["front"], ["front"])


def fastdds_profile_path() -> Path:
    """Absolute path of the project's Fast DDS profile: ``<repo>/config/fastdds.xml`` when running from the
    source tree, else the installed ``<sys.prefix>/share/imkd_ros/config/fastdds.xml``.

    Raises:
        FileNotFoundError: neither exists.
    """
    candidates = [
        Path(__file__).resolve().parents[2] / _PROFILE,
        Path(sys.prefix) / "share" / "imkd_ros" / _PROFILE,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"Fast DDS profile not found; looked at {', '.join(str(p) for p in candidates)}")


def ros_env(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) set up for ROS 2 on this machine only.

    Sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, ``RMW_IMPLEMENTATION=rmw_fastrtps_cpp``,
    ``FASTDDS_DEFAULT_PROFILES_FILE`` (:func:`fastdds_profile_path`), puts ``sys.prefix`` first on
    ``AMENT_PREFIX_PATH`` (needed by ament_index_python), and ``ROS_DOMAIN_ID`` only when ``domain_id`` is given
    (0-232, Fast DDS's range; use a random one per test run to keep parallel runs apart).

    Raises:
        ValueError: ``domain_id`` outside 0-232.
    """
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(fastdds_profile_path())
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p and p != sys.prefix]
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    if domain_id is not None:
        if not 0 <= int(domain_id) <= 232:
            raise ValueError(f"ROS_DOMAIN_ID must be in 0-232, got {domain_id}")
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    return env


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop a ROS child process as Ctrl-C would (SIGINT: a clean node shutdown), killing it after ``timeout`` s;
    nothing when it has already exited."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_env() -> dict[str, str]:
    """Environment of the ROS child processes: :func:`ros_env` with a random domain id (apart
    from other runs), this source tree first on ``PYTHONPATH``, unbuffered output."""
    env = ros_env(domain_id=random.SystemRandom().randint(1, 101))
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_command(
    model: Path,
    params: Path | None,
    *,
    device: str = "cpu",
    use_sim_time: bool = False,
    score_threshold: float | None = None,
    extrinsics_source: str | None = None,
    cameras: tuple[str, ...] = ("front",),
    radars: tuple[str, ...] = ("front",),
) -> list[str]:
    """``detector_node`` with config/detector.yaml, then ``params`` (overrides), the model and the player's topics
    for a rig of ``cameras`` and ``radars`` (the names in ``params``); ``score_threshold`` overrides the file's (0:
    every box the model decodes, as ``imkd eval`` scores), ``extrinsics_source`` the file's ``auto``."""
    from imkd_ros.core.shipped import shipped_file

    cmd = [sys.executable, "-m", "imkd_ros.nodes.detector_node", "--ros-args"]
    cmd += ["--params-file", str(shipped_file("config/detector.yaml"))]
    if params is not None:
        cmd += ["--params-file", str(params)]
    cmd += ["-p", f"checkpoint:={model}", "-p", f"device:={device}", "-p", f"use_sim_time:={str(use_sim_time).lower()}"]
    if score_threshold is not None:
        cmd += ["-p", f"score_threshold:={float(score_threshold)}"]
    if extrinsics_source is not None:
        cmd += ["-p", f"extrinsics_source:={extrinsics_source}"]
    for r in detector_remaps(cameras, radars):
        cmd += ["-r", r]
    return cmd
