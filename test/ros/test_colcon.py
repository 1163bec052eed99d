"""``colcon build`` of the package and its interfaces in a temporary workspace, with the PyPI ROS wheels:
imkd_msgs and the stand-ins of vision_msgs, autoware_perception_msgs and tf2_msgs (ament_cmake, rosidl) and imkd_ros
(ament_python) build, everything the launch file names is installed, and the installed ``detector_node`` runs."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

from imkd_ros.pipeline.env import ros_env

REPO = Path(__file__).resolve().parents[2]
# The development venv holds imkd_ros as an editable install, whose import hook wins over PYTHONPATH; a plain ROS
# install has no such hook, so the probes below drop it to see the colcon install space alone.
_NO_EDITABLE = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(type(f)).lower()]"
STANDINS = ("vision_msgs", "autoware_perception_msgs", "tf2_msgs")
_COPY = ("imkd_ros", "msg", "config", "launch", "resource", "setup.py", "setup.cfg", "package.xml", "README.md")


def test_colcon_builds_the_package_and_its_interfaces(tmp_path: Path) -> None:
    src = tmp_path / "ws" / "src" / "imkd_ros"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in _COPY:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    ws = tmp_path / "ws"
    env = ros_env()
    env.pop("PYTHONPATH", None)
    colcon = Path(sys.executable).parent / "colcon"
    cmd = [
        str(colcon), "build", "--base-paths", str(src), str(src / "msg"), *(str(src / "msg" / s) for s in STANDINS),
        "--build-base", str(ws / "build"), "--install-base", str(ws / "install"),
        "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600, check=False)
    log = f"{res.stdout}\n{res.stderr}"
    assert res.returncode == 0, log
    for pkg in ("imkd_msgs", "imkd_ros", *STANDINS):
        assert f"Finished <<< {pkg}" in log, log

    inst = ws / "install"
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    assert (inst / "imkd_msgs" / site / "imkd_msgs" / "msg" / "_teacher_targets.py").is_file()
    assert (inst / "imkd_msgs" / "share" / "imkd_msgs" / "msg" / "TeacherTargets.msg").is_file()
    share = inst / "imkd_ros" / "share" / "imkd_ros"
    for rel in ("package.xml", "config/detector.yaml", "config/detector.schema.json", "config/imkd.rviz",
                "launch/detector.launch.py", "msg/TeacherTargets.msg", "msg/vision_msgs/msg/Detection3DArray.msg",
                "msg/autoware_perception_msgs/msg/DetectedObjects.msg", "msg/tf2_msgs/msg/TFMessage.msg"):  # fmt: skip
        assert (share / rel).is_file(), rel
    launch = runpy.run_path(str(Path(__file__).with_name("test_launch.py")))  # its AST readers of the launch file
    for rel in launch["launch_share_files"]():  # every file the launch file names
        assert (share / rel).is_file(), rel
    for pkg, exe in launch["launch_executables"]():
        if pkg == "imkd_ros":
            assert (inst / "imkd_ros" / "lib" / "imkd_ros" / exe).is_file(), exe
    for pkg in STANDINS:
        assert (inst / pkg / "share" / pkg / "IMKD_STANDIN").is_file(), pkg
    assert (inst / "autoware_perception_msgs" / site / "autoware_perception_msgs" / "msg").is_dir()
    node = inst / "imkd_ros" / "lib" / "imkd_ros" / "detector_node"
    assert node.is_file()

    # the installed console script runs from the install space (ros2 run's way), with the colcon-built imkd_msgs
    run_env = ros_env()
    packages = ("imkd_ros", "imkd_msgs", *STANDINS)
    run_env["PYTHONPATH"] = os.pathsep.join(str(inst / p / site) for p in packages)
    run_env["AMENT_PREFIX_PATH"] = os.pathsep.join([*(str(inst / p) for p in packages), run_env["AMENT_PREFIX_PATH"]])
    probe = (
        f"{_NO_EDITABLE}; import imkd_ros, imkd_msgs.msg, autoware_perception_msgs.msg; "
        "from imkd_ros.core.shipped import shipped_file; print(imkd_ros.__file__); print(imkd_msgs.msg.__file__); "
        "print(autoware_perception_msgs.msg.__file__); print(shipped_file('config/detector.schema.json'))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=run_env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert all(str(inst) in line for line in lines), lines
    argv = [str(node), "--ros-args", "-p", f"checkpoint:={tmp_path / 'missing.pt'}"]
    run = f"{_NO_EDITABLE}; import runpy; sys.argv = {argv!r}; runpy.run_path({str(node)!r}, run_name='__main__')"
    res = subprocess.run(
        [sys.executable, "-c", run], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 2 and "missing.pt" in res.stderr, res.stdout + res.stderr
    assert f"{inst / 'imkd_ros' / site}/models/missing.pt" not in res.stderr  # an absolute path: used as given
    assert str(share) in res.stderr or "missing.pt" in res.stderr
