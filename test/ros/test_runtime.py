"""The ROS 2 runtime is real: two OS processes exchange full-size images and radar clouds through rclpy.

Also: the Fast DDS profile is what the brief says and Fast DDS parses it without complaint, :func:`ros_env` builds
the child environment, and the subscriber's checks reject wrong content (the negative controls).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from imkd_ros.pipeline.env import fastdds_profile_path, ros_env
from imkd_ros.ros.convert import array_to_image, array_to_pointcloud2

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:  # the peer scripts import peer_common as a top-level module, so do we
    sys.path.insert(0, str(HERE))

import peer_common as pc  # noqa: E402
import peer_sub  # noqa: E402

NS = "{http://www.eprosima.com}"
COUNT = 20  # good images and good clouds the subscriber must receive
TIMEOUT_S = 60.0


def _child_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    env = ros_env(base, domain_id=domain_id)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _domain_id() -> int:
    """A random domain per run (1-101: clear of 0 and of Linux's ephemeral ports), against crosstalk."""
    return random.SystemRandom().randint(1, 101)


# ----------------------------------------------------------------------------------------------- profile and env


def test_fastdds_profile_content() -> None:
    root = ET.parse(fastdds_profile_path()).getroot()
    participants = root.findall(f"{NS}profiles/{NS}participant")
    default = [p for p in participants if p.get("is_default_profile") == "true"]
    assert len(default) == 1
    rtps = default[0].find(f"{NS}rtps")
    assert rtps.findtext(f"{NS}useBuiltinTransports") == "false"
    used = [e.text for e in rtps.findall(f"{NS}userTransports/{NS}transport_id")]
    descriptors = {
        d.findtext(f"{NS}transport_id"): d for d in root.findall(f"{NS}profiles/{NS}transport_descriptors/{NS}*")
    }
    kinds = {descriptors[t].findtext(f"{NS}type"): descriptors[t] for t in used}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"].findtext(f"{NS}segment_size")) == 32 * 1024 * 1024
    allowed = [i.get("name") for i in kinds["UDPv4"].findall(f"{NS}interfaces/{NS}allowlist/{NS}interface")]
    assert allowed == ["127.0.0.1"]


def _create_node_output(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import rclpy; rclpy.init(); n = rclpy.create_node('imkd_profile_probe'); n.destroy_node(); rclpy.shutdown()"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_fastdds_accepts_profile(tmp_path: Path) -> None:
    env = _child_env(_domain_id())
    good = _create_node_output(env)
    assert good.returncode == 0, good.stderr
    assert "XMLPARSER" not in good.stdout + good.stderr
    # control: the same check sees Fast DDS's complaint about a profile with a misspelt element
    broken = tmp_path / "broken.xml"
    broken.write_text(fastdds_profile_path().read_text().replace("segment_size>", "segment_sizes>"))
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(broken)
    bad = _create_node_output(env)
    assert "XMLPARSER" in bad.stdout + bad.stderr


def test_ros_env() -> None:
    base = {"PATH": "/bin", "AMENT_PREFIX_PATH": os.pathsep.join(["/opt/other", sys.prefix])}
    env = ros_env(base)
    assert base == {"PATH": "/bin", "AMENT_PREFIX_PATH": os.pathsep.join(["/opt/other", sys.prefix])}
    assert env["PATH"] == "/bin"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(REPO / "config" / "fastdds.xml")
    assert env["AMENT_PREFIX_PATH"].split(os.pathsep) == [sys.prefix, "/opt/other"]
    assert "ROS_DOMAIN_ID" not in env
    assert ros_env({}, domain_id=42)["ROS_DOMAIN_ID"] == "42"
    assert ros_env({})["AMENT_PREFIX_PATH"] == sys.prefix
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID must be in 0-232, got 233"):
        ros_env({}, domain_id=233)


# -------------------------------------------------------------------------- the subscriber's checks (controls)


def test_subscriber_accepts_true_content_and_rejects_wrong_content() -> None:
    tally = peer_sub.Tally()
    image = array_to_image(pc.expected_image(3))
    image.header.frame_id = pc.frame_id("CAM_FRONT", 3)
    tally.on_image(image)
    cloud = array_to_pointcloud2(pc.expected_cloud(3))
    cloud.header.frame_id = pc.frame_id("RADAR_FRONT", 3)
    tally.on_cloud(cloud)
    assert (tally.images, tally.clouds, tally.bad) == ([3], [3], [])

    image.header.frame_id = pc.frame_id("CAM_FRONT", 4)  # right pixels, wrong sequence number
    tally.on_image(image)
    assert tally.bad == ["image 4: checksum mismatch"]

    pixels = pc.expected_image(5)
    pixels[899, 1599, 2] ^= 1  # one bit of one pixel
    wrong = array_to_image(pixels)
    wrong.header.frame_id = pc.frame_id("CAM_FRONT", 5)
    tally.on_image(wrong)
    assert tally.bad[-1] == "image 5: checksum mismatch"

    points = pc.expected_cloud(6)
    points["id"][17] += 1
    wrong_cloud = array_to_pointcloud2(points)
    wrong_cloud.header.frame_id = pc.frame_id("RADAR_FRONT", 6)
    tally.on_cloud(wrong_cloud)
    assert tally.bad[-1] == "cloud 6: field 'id' values differ"

    tally.on_cloud(array_to_pointcloud2(points[["x", "y"]]))  # no sequence number, missing fields
    assert tally.bad[-1].startswith("cloud: frame_id ''")
    assert tally.images == [3] and tally.clouds == [3]
    summary = tally.summary(1)
    assert summary["ok"] is False and summary["images"] == 1


def test_check_cloud_names_missing_field_and_dtype() -> None:
    want = pc.expected_cloud(0)
    assert pc.check_cloud(want, 0) is None
    assert pc.check_cloud(want[1:], 0) == "cloud 0: (199,) points, expected (200,)"
    as_float = want.astype([(n, "<f4" if n == "id" else want.dtype[n]) for n in want.dtype.names])
    assert pc.check_cloud(as_float, 0) == "cloud 0: field 'id' has dtype float32, expected int16"
    assert np.array_equal(pc.expected_image(1), pc.expected_image(257))  # seq enters mod 256, by design


# ---------------------------------------------------------------------------------------- two real processes


def test_two_processes_exchange_images_and_radar(tmp_path: Path) -> None:
    env = _child_env(_domain_id())
    sub_log, pub_log = tmp_path / "sub.log", tmp_path / "pub.log"
    procs: list[subprocess.Popen] = []
    try:
        with sub_log.open("w") as sub_out, pub_log.open("w") as pub_out:
            sub = subprocess.Popen(
                [sys.executable, str(HERE / "peer_sub.py"), "--count", str(COUNT), "--timeout", str(TIMEOUT_S)],
                env=env,
                cwd=REPO,
                stdout=sub_out,
                stderr=subprocess.STDOUT,
            )
            procs.append(sub)
            pub = subprocess.Popen(
                [sys.executable, str(HERE / "peer_pub.py"), "--rate", "10", "--timeout", str(TIMEOUT_S + 10)],
                env=env,
                cwd=REPO,
                stdout=pub_out,
                stderr=subprocess.STDOUT,
            )
            procs.append(pub)
            sub_rc = sub.wait(timeout=TIMEOUT_S + 30)
            pub_rc = pub.wait(timeout=30)  # it stops once the subscriber has left
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    sub_text, pub_text = sub_log.read_text(), pub_log.read_text()
    report = f"--- subscriber:\n{sub_text}\n--- publisher:\n{pub_text}"
    assert sub_rc == 0, report
    assert pub_rc == 0, report
    summary = pc.parse_summary(sub_text)
    assert summary["ok"] is True and summary["bad"] == [], report
    assert summary["images"] >= COUNT and summary["clouds"] >= COUNT, report
    # BEST_EFFORT 4.3 MB images: over plain UDP a few percent arrive, through the SHM profile all of them;
    # half is a wide margin that still fails without the profile.
    assert summary["image_delivered_fraction"] >= 0.5, report
    assert "MATCHED" in pub_text and "PUBLISHED" in pub_text, report
    published = int(pub_text.split("PUBLISHED")[-1].split()[0])
    assert published >= COUNT, report
    print(
        f"image delivery {summary['image_delivered_fraction']:.0%}, median latency "
        f"{summary['image_latency_ms_median']} ms (max {summary['image_latency_ms_max']} ms), "
        f"{summary['images']} images / {summary['clouds']} clouds, publisher sent {published}"
    )
