"""Radar PCD and LiDAR .pcd.bin files: write, read back, and agree with the nuscenes-devkit readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud

from imkd_ros.data.errors import PointCloudError
from imkd_ros.data.pcd import (
    RADAR_PCD_DTYPE,
    RADAR_PCD_FIELDS,
    radar_default_mask,
    read_lidar_bin,
    read_radar_pcd,
    write_lidar_bin,
    write_radar_pcd,
)


def _random_radar(n: int, seed: int = 0) -> np.ndarray:
    """Radar points with every state value represented, so that the filters have something to drop."""
    rng = np.random.default_rng(seed)
    pts = np.zeros(n, dtype=RADAR_PCD_DTYPE)
    for name, dt in RADAR_PCD_FIELDS:
        if np.dtype(dt).kind == "f":
            pts[name] = rng.normal(0.0, 20.0, n)
    pts["id"] = rng.integers(0, 300, n)
    pts["dyn_prop"] = rng.integers(0, 8, n)
    pts["ambig_state"] = rng.choice([0, 1, 2, 3, 3, 3, 4], n)
    pts["invalid_state"] = rng.choice([0, 0, 0, 1, 2, 16], n)
    pts["is_quality_valid"] = 1
    pts["pdh0"] = rng.integers(0, 8, n)
    for name in ("x_rms", "y_rms", "vx_rms", "vy_rms"):
        pts[name] = rng.integers(0, 20, n)
    return pts


def _devkit_radar(path: Path, filtered: bool) -> np.ndarray:
    """The devkit's reading, ``(18, N)`` float64."""
    if filtered:
        return RadarPointCloud.from_file(str(path)).points
    states = {"invalid_states": list(range(18)), "dynprop_states": list(range(8)), "ambig_states": list(range(5))}
    return RadarPointCloud.from_file(str(path), **states).points


def _as_matrix(points: np.ndarray) -> np.ndarray:
    return np.stack([points[name].astype(np.float64) for name, _ in RADAR_PCD_FIELDS])


def test_radar_field_layout_matches_nuscenes() -> None:
    names = [name for name, _ in RADAR_PCD_FIELDS]
    assert (
        names
        == (
            "x y z dyn_prop id rcs vx vy vx_comp vy_comp is_quality_valid ambig_state x_rms y_rms invalid_state pdh0 "
            "vx_rms vy_rms"
        ).split()
    )
    assert [RADAR_PCD_DTYPE[n].itemsize for n in names] == [4, 4, 4, 1, 2, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1]
    assert RADAR_PCD_DTYPE.itemsize == 43


@pytest.mark.parametrize("filtered", [True, False])
def test_radar_roundtrip_agrees_with_devkit(tmp_path: Path, filtered: bool) -> None:
    pts = _random_radar(200)
    path = tmp_path / "radar.pcd"
    write_radar_pcd(path, pts)

    ours = read_radar_pcd(path, filtered=filtered)
    expected = pts[radar_default_mask(pts)] if filtered else pts
    assert ours.dtype == RADAR_PCD_DTYPE
    np.testing.assert_array_equal(ours, expected)
    if filtered:
        assert 0 < len(ours) < len(pts)  # the filters dropped some, kept some

    devkit = _devkit_radar(path, filtered)
    assert devkit.shape == (18, len(ours))
    np.testing.assert_allclose(_as_matrix(ours), devkit, rtol=0, atol=0)


def test_radar_header_is_in_devkit_order(tmp_path: Path) -> None:
    path = tmp_path / "radar.pcd"
    write_radar_pcd(path, _random_radar(3))
    lines = path.read_bytes().split(b"\n")[:11]
    keys = [line.split(b" ")[0] for line in lines]
    assert keys == [b"#", b"VERSION", b"FIELDS", b"SIZE", b"TYPE", b"COUNT", b"WIDTH", b"HEIGHT", b"VIEWPOINT",
                    b"POINTS", b"DATA"]  # fmt: skip
    assert lines[6] == b"WIDTH 3" and lines[9] == b"POINTS 3"


def test_empty_radar_sweep_reads_empty_in_both_readers(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcd"
    write_radar_pcd(path, np.zeros(0, dtype=RADAR_PCD_DTYPE))
    assert b"WIDTH 1\n" in path.read_bytes()  # the devkit refuses WIDTH 0
    for filtered in (True, False):
        assert len(read_radar_pcd(path, filtered=filtered)) == 0
        assert _devkit_radar(path, filtered).shape == (18, 0)


def test_radar_writer_accepts_other_field_order_and_dtypes(tmp_path: Path) -> None:
    pts = _random_radar(10)
    reordered = np.zeros(10, dtype=[(name, "f8") for name, _ in reversed(RADAR_PCD_FIELDS)])
    for name, _ in RADAR_PCD_FIELDS:
        reordered[name] = pts[name]
    path = tmp_path / "r.pcd"
    write_radar_pcd(path, reordered)
    np.testing.assert_array_equal(read_radar_pcd(path, filtered=False), pts)


def test_radar_writer_rejects_bad_points(tmp_path: Path) -> None:
    with pytest.raises(PointCloudError, match="structured"):
        write_radar_pcd(tmp_path / "a.pcd", np.zeros((4, 18), dtype=np.float32))
    bad = np.zeros(2, dtype=[(name, dt) for name, dt in RADAR_PCD_FIELDS if name != "pdh0"])
    with pytest.raises(PointCloudError, match="pdh0"):
        write_radar_pcd(tmp_path / "b.pcd", bad)
    pts = _random_radar(2).astype([(name, "f8") for name, _ in RADAR_PCD_FIELDS])
    pts["dyn_prop"][1] = 300.0
    with pytest.raises(PointCloudError, match="dyn_prop"):
        write_radar_pcd(tmp_path / "c.pcd", pts)


def test_radar_reader_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "radar.pcd"
    write_radar_pcd(path, _random_radar(20))
    blob = path.read_bytes()

    truncated = tmp_path / "truncated.pcd"
    truncated.write_bytes(blob[:-100])
    with pytest.raises(PointCloudError, match=r"truncated\.pcd: truncated"):
        read_radar_pcd(truncated)

    garbage = tmp_path / "garbage.pcd"
    garbage.write_bytes(b"\x00\xff" * 50)
    with pytest.raises(PointCloudError, match="garbage.pcd"):
        read_radar_pcd(garbage)

    ascii_pcd = tmp_path / "ascii.pcd"
    ascii_pcd.write_bytes(blob.replace(b"DATA binary", b"DATA ascii"))
    with pytest.raises(PointCloudError, match="ascii.pcd.*only 'binary'"):
        read_radar_pcd(ascii_pcd)

    with pytest.raises(PointCloudError, match="missing.pcd"):
        read_radar_pcd(tmp_path / "missing.pcd")


def test_lidar_roundtrip_agrees_with_devkit(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.normal(0, 30, (500, 3)), rng.uniform(0, 255, (500, 1)), rng.integers(0, 32, (500, 1))],
                         axis=1)  # fmt: skip
    path = tmp_path / "lidar.pcd.bin"
    write_lidar_bin(path, pts)
    ours = read_lidar_bin(path)
    assert ours.dtype == np.float32 and ours.shape == (500, 5)
    np.testing.assert_array_equal(ours, pts.astype(np.float32))
    np.testing.assert_array_equal(LidarPointCloud.from_file(str(path)).points, ours[:, :4].T)

    write_lidar_bin(tmp_path / "empty.pcd.bin", np.zeros((0, 5)))
    assert read_lidar_bin(tmp_path / "empty.pcd.bin").shape == (0, 5)


def test_lidar_errors(tmp_path: Path) -> None:
    with pytest.raises(PointCloudError, match=r"\(N, 5\)"):
        write_lidar_bin(tmp_path / "a.pcd.bin", np.zeros((3, 4)))
    path = tmp_path / "cut.pcd.bin"
    path.write_bytes(np.zeros((3, 5), np.float32).tobytes()[:-3])
    with pytest.raises(PointCloudError, match=r"cut\.pcd\.bin: truncated"):
        read_lidar_bin(path)
    with pytest.raises(PointCloudError, match="nothing.pcd.bin"):
        read_lidar_bin(tmp_path / "nothing.pcd.bin")
