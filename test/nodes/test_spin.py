"""run_node's exit codes wherever a Ctrl-C lands (real rclpy in a child process per scenario)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from imkd_ros.pipeline.env import ros_env

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("spin_driver.py")


def _run(scenario: str) -> subprocess.CompletedProcess:
    env = ros_env(domain_id=random.SystemRandom().randint(1, 101))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, str(DRIVER), scenario], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "scenario",
    [
        "build_fails_as_context_goes_down",  # an rcl error before rclpy.ok() turns False
        "build_interrupted",
        "build_interrupted_after_node_exists",  # the CI failure: DetectorCore.release on a thread never started
        "interrupt_while_spinning",
        "interrupt_in_teardown",
        "teardown_fails_after_interrupt",
    ],
)
def test_ctrl_c_anywhere_is_a_clean_stop(scenario: str) -> None:
    res = _run(scenario)
    assert res.returncode == 0 and "RC 0" in res.stdout, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr


def test_a_genuine_error_still_raises() -> None:
    res = _run("genuine_bug")
    assert res.returncode == 1 and "a genuine bug while building the node" in res.stderr, res.stderr


def test_a_user_error_is_one_line() -> None:
    res = _run("bad_parameter")
    assert res.returncode == 2 and "spin_probe: error: parameter backend" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
