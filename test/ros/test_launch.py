"""launch/detector.launch.py cannot run here (no launch wheels), so what can be checked without it is: every
executable it starts from this package is a console script of setup.py (and the others' packages are exec_depends in
package.xml), every file it names is installed into the share folder by setup.py, and every launch argument is
documented in the README. (test_colcon.py checks the real install.)"""

from __future__ import annotations

import ast
import importlib
import re
import runpy
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "detector.launch.py"


def _setup_kwargs() -> dict[str, Any]:
    captured: dict[str, Any] = {}
    with mock.patch("setuptools.setup", lambda **kw: captured.update(kw)):
        runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    return captured


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text())


def _const(node: ast.AST) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def launch_executables() -> set[tuple[str, str]]:
    """(package, executable) of every node the launch file can start (a call without ``package=`` takes it from
    the shared ``common`` dict, this package)."""
    out = set()
    for call in ast.walk(_launch_tree()):
        if isinstance(call, ast.Call):
            kw = {k.arg: _const(k.value) for k in call.keywords if k.arg}
            if kw.get("executable"):
                out.add((kw.get("package") or "imkd_ros", kw["executable"]))
    return out


def launch_share_files() -> set[str]:
    """Files named as ``os.path.join(share, "<const>", ...)`` and the rigs' parameter files and RViz layouts
    (``RIG_PARAMS``, ``RIG_RVIZ``)."""
    out = set()
    for node in ast.walk(_launch_tree()):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.path.join" and node.args:
            parts = [_const(a) for a in node.args[1:]]
            if ast.unparse(node.args[0]) == "share" and None not in parts:
                out.add("/".join(parts))
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] in (["RIG_PARAMS"], ["RIG_RVIZ"]):
            out |= {_const(v) for v in node.value.values}
    return out


def launch_arguments() -> list[str]:
    return [
        _const(call.args[0])
        for call in ast.walk(_launch_tree())
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "DeclareLaunchArgument"
    ]


def test_executables_are_console_scripts_or_declared_dependencies() -> None:
    scripts = {}
    for entry in _setup_kwargs()["entry_points"]["console_scripts"]:
        name, target = (s.strip() for s in entry.split("="))
        scripts[name] = target
    exes = launch_executables()
    ours = {exe for pkg, exe in exes if pkg == "imkd_ros"}
    assert ours == {"detector_node", "detector_lifecycle_node"}
    for exe in ours:
        assert exe in scripts, exe
        module, func = scripts[exe].split(":")
        assert callable(getattr(importlib.import_module(module), func)), scripts[exe]
    depends = {e.text for e in ET.parse(REPO / "package.xml").getroot().iter("exec_depend")}
    assert {pkg for pkg, _ in exes if pkg != "imkd_ros"} <= depends
    assert {"launch", "launch_ros", "lifecycle_msgs"} <= depends


def test_named_files_are_installed_into_share() -> None:
    installed = set()
    for dest, files in _setup_kwargs()["data_files"]:
        prefix = "share/imkd_ros/"
        if dest.startswith(prefix) or dest == prefix[:-1]:
            sub = dest[len(prefix) :] if dest.startswith(prefix) else ""
            installed |= {f"{sub}/{Path(f).name}".lstrip("/") for f in files}
    named = launch_share_files()
    assert {"config/detector.yaml", "config/detector_nuscenes.yaml", "config/fastdds.xml", "config/imkd.rviz"} <= named
    assert "config/imkd_nuscenes.rviz" in named
    for rel in named:
        assert (REPO / rel).is_file(), rel
        assert rel in installed, rel
    assert "config/detector.schema.json" in installed  # the node checks its parameters against it


def test_launch_arguments_are_documented_in_the_readme() -> None:
    readme = REPO.joinpath("README.md").read_text()
    section = readme.split("## The detector as a ROS 2 node", 1)[1].split("\n## ", 1)[0]
    args = launch_arguments()
    assert {"lifecycle", "autostart", "extrinsics_source", "params_file", "sensor_tf"} <= set(args)
    for name in args:
        assert re.search(rf"`{re.escape(name)}(:=[^`]*)?`", section), f"launch argument {name} not in the README"


def test_each_rigs_rviz_layout_shows_the_topics_the_players_publish_for_it() -> None:
    """config/imkd.rviz (front) and config/imkd_nuscenes.rviz: one image display per camera and one point cloud per
    radar, on the topics the players publish for that rig (imkd_ros.pipeline.topics), plus the detector's outputs."""
    import yaml

    from imkd_ros.data.synth.rig import RIGS
    from imkd_ros.pipeline.topics import camera_topic, radar_topic, sensor_name

    for rig, layout in (("front", "imkd.rviz"), ("nuscenes", "imkd_nuscenes.rviz")):
        doc = yaml.safe_load((REPO / "config" / layout).read_text())
        shown = {(d["Class"].rsplit("/", 1)[1], d["Topic"]["Value"]) for d in doc["Visualization Manager"]["Displays"]
                 if "Topic" in d}  # fmt: skip
        cams, radars = RIGS[rig].cameras, RIGS[rig].radars
        want = {("Image", camera_topic("image", sensor_name(c), len(cams))) for c in cams}
        want |= {("PointCloud2", radar_topic(sensor_name(r), len(radars))) for r in radars}
        want |= {("MarkerArray", "/detector_node/output/markers")}
        assert want <= shown and len([k for k, _ in shown if k == "Image"]) == len(cams), (rig, shown)
