"""Point-cloud files as nuScenes stores them: radar ``.pcd`` (PCD v0.7, binary) and LiDAR ``.pcd.bin``.

Both directions, vectorised with numpy (no Python loop per point), byte-compatible with the nuscenes-devkit readers
(``RadarPointCloud.from_file`` and ``LidarPointCloud.from_file``).

Radar PCD layout, as nuScenes writes it: an 11-line ASCII header in this exact order (the devkit reads the header
lines by position)::

    # .PCD v0.7 - Point Cloud Data file format
    VERSION 0.7
    FIELDS x y z dyn_prop id rcs vx vy vx_comp vy_comp is_quality_valid ambig_state x_rms y_rms invalid_state pdh0 ...
    SIZE 4 4 4 1 2 4 4 4 4 4 1 1 1 1 1 1 1 1
    TYPE F F F I I F F F F F I I I I I I I I
    COUNT 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1
    WIDTH <N>
    HEIGHT 1
    VIEWPOINT 0 0 0 1 0 0 0
    POINTS <N>
    DATA binary

followed by ``N`` packed little-endian records of 43 bytes and one padding byte (``\\n``): the devkit's decoder
asserts that every field ends strictly before the end of the data, so a file without the extra byte fails there.

Empty sweeps: the devkit asserts ``WIDTH > 0`` and treats a NaN in the *first* point as "this cloud is empty"
(it then returns no points, whatever the filters). :func:`write_radar_pcd` therefore writes an empty cloud as
``WIDTH 1`` with one placeholder point whose float fields are all NaN and whose states are invalid as well
(``invalid_state 1``, ``dyn_prop 7``, ``ambig_state 0``), so it is dropped both by the NaN rule and by the default
filters. :func:`read_radar_pcd` applies the same NaN rule and so returns zero points for it.

LiDAR ``.pcd.bin``: ``N x 5`` little-endian float32, row-major, columns x, y, z (metres, sensor frame),
intensity (0-255), ring index; no header.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import numpy as np

from imkd_ros.data.errors import PointCloudError

__all__ = [
    "RADAR_PCD_FIELDS",
    "RADAR_PCD_DTYPE",
    "RADAR_INVALID_STATES",
    "RADAR_DYNPROP_STATES",
    "RADAR_AMBIG_STATES",
    "radar_default_mask",
    "write_radar_pcd",
    "read_radar_pcd",
    "check_radar_pcd",
    "write_lidar_bin",
    "read_lidar_bin",
    "check_lidar_bin",
]

#: The 18 nuScenes radar fields in file order with their (little-endian) numpy dtypes.
RADAR_PCD_FIELDS: tuple[tuple[str, str], ...] = (
    ("x", "<f4"),
    ("y", "<f4"),
    ("z", "<f4"),
    ("dyn_prop", "i1"),
    ("id", "<i2"),
    ("rcs", "<f4"),
    ("vx", "<f4"),
    ("vy", "<f4"),
    ("vx_comp", "<f4"),
    ("vy_comp", "<f4"),
    ("is_quality_valid", "i1"),
    ("ambig_state", "i1"),
    ("x_rms", "i1"),
    ("y_rms", "i1"),
    ("invalid_state", "i1"),
    ("pdh0", "i1"),
    ("vx_rms", "i1"),
    ("vy_rms", "i1"),
)

#: Packed structured dtype of one radar point (43 bytes), field order as in the file.
RADAR_PCD_DTYPE = np.dtype(list(RADAR_PCD_FIELDS))

#: States kept by the devkit's default radar filters (``RadarPointCloud.default_filters``).
RADAR_INVALID_STATES: tuple[int, ...] = (0,)
RADAR_DYNPROP_STATES: tuple[int, ...] = tuple(range(7))
RADAR_AMBIG_STATES: tuple[int, ...] = (3,)

_PCD_TYPE_CODE = {"f": "F", "i": "I", "u": "U"}
_HEADER_BYTES = 4096  # a PCD header (32 lines at most) fits
_LIDAR_COLUMNS = 5


def _radar_header(n: int) -> bytes:
    names = " ".join(name for name, _ in RADAR_PCD_FIELDS)
    sizes = " ".join(str(np.dtype(dt).itemsize) for _, dt in RADAR_PCD_FIELDS)
    types = " ".join(_PCD_TYPE_CODE[np.dtype(dt).kind] for _, dt in RADAR_PCD_FIELDS)
    counts = " ".join("1" for _ in RADAR_PCD_FIELDS)
    lines = [
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        f"FIELDS {names}",
        f"SIZE {sizes}",
        f"TYPE {types}",
        f"COUNT {counts}",
        f"WIDTH {n}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {n}",
        "DATA binary",
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def _empty_placeholder() -> np.ndarray:
    """The one-point cloud written for an empty sweep (see module docstring)."""
    out = np.zeros(1, dtype=RADAR_PCD_DTYPE)
    for name, dt in RADAR_PCD_FIELDS:
        if np.dtype(dt).kind == "f":
            out[name] = np.nan
    out["invalid_state"] = 1
    out["dyn_prop"] = 7
    out["ambig_state"] = 0
    return out


def _as_radar_records(points: np.ndarray, path: Path) -> np.ndarray:
    """Copy ``points`` (structured, every radar field present) into a packed :data:`RADAR_PCD_DTYPE` array,
    checking that integer fields hold integral values in range."""
    names = points.dtype.names if isinstance(points, np.ndarray) else None
    if names is None or points.ndim != 1:
        raise PointCloudError(f"write_radar_pcd({path}): points must be a 1-D structured array with RADAR_PCD_FIELDS")
    missing = [name for name, _ in RADAR_PCD_FIELDS if name not in names]
    extra = [name for name in names if name not in RADAR_PCD_DTYPE.names]
    if missing or extra:
        raise PointCloudError(f"write_radar_pcd({path}): fields missing {missing}, unexpected {extra}")
    out = np.empty(len(points), dtype=RADAR_PCD_DTYPE)
    for name, dt in RADAR_PCD_FIELDS:
        col = points[name]
        if np.dtype(dt).kind == "i":
            info = np.iinfo(dt)
            colf = np.asarray(col, dtype=np.float64)
            bad = ~np.isfinite(colf) | (colf != np.round(colf)) | (colf < info.min) | (colf > info.max)
            if bad.any():
                raise PointCloudError(
                    f"write_radar_pcd({path}): field {name!r} needs integers in {info.min}..{info.max}, "
                    f"got {colf[bad][0]!r}"
                )
        out[name] = col
    return out


def write_radar_pcd(path: str | PathLike[str], points: np.ndarray) -> None:
    """Write radar points as a nuScenes PCD v0.7 binary file that the devkit reads back exactly.

    Args:
        path: output file (its folder must exist); overwritten if present.
        points: ``(N,)`` structured array with every field of :data:`RADAR_PCD_FIELDS` (any field order, any
            numeric dtypes; integer fields must hold integral in-range values). Positions in the radar's own
            frame (x forward, y left, metres), velocities in m/s. ``N == 0`` writes the empty-cloud placeholder
            described in the module docstring.

    Raises:
        PointCloudError: wrong array layout or out-of-range integer fields.
    """
    path = Path(path)
    records = _as_radar_records(points, path)
    if len(records) == 0:
        records = _empty_placeholder()
    with open(path, "wb") as f:
        f.write(_radar_header(len(records)))
        f.write(records.tobytes())
        f.write(b"\n")  # padding byte the devkit's decoder needs after the last point


def _parse_pcd_header(blob: bytes, path: Path) -> tuple[dict[str, list[str]], int]:
    """Header keys -> values, and the byte offset where the binary data starts."""
    header: dict[str, list[str]] = {}
    pos = 0
    for _ in range(32):
        end = blob.find(b"\n", pos)
        if end < 0:
            raise PointCloudError(f"{path}: not a PCD file (header has no 'DATA' line)")
        try:
            line = blob[pos:end].decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise PointCloudError(f"{path}: not a PCD file (binary bytes in the header)") from exc
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key] = values
        if key == "DATA":
            return header, pos
    raise PointCloudError(f"{path}: not a PCD file (header has no 'DATA' line)")


def _pcd_dtype(header: dict[str, list[str]], path: Path) -> np.dtype:
    try:
        fields, sizes, types = header["FIELDS"], header["SIZE"], header["TYPE"]
    except KeyError as exc:
        raise PointCloudError(f"{path}: PCD header lacks {exc.args[0]}") from exc
    counts = header.get("COUNT", ["1"] * len(fields))
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise PointCloudError(f"{path}: PCD header FIELDS/SIZE/TYPE/COUNT lengths differ")
    if any(c != "1" for c in counts):
        raise PointCloudError(f"{path}: PCD COUNT other than 1 is not supported")
    kinds = {"F": "f", "I": "i", "U": "u"}
    try:
        return np.dtype([(n, f"<{kinds[t]}{int(s)}") for n, s, t in zip(fields, sizes, types, strict=True)])
    except (KeyError, ValueError, TypeError) as exc:
        raise PointCloudError(f"{path}: unsupported PCD SIZE/TYPE {sizes} / {types}") from exc


def radar_default_mask(points: np.ndarray) -> np.ndarray:
    """Boolean ``(N,)``: which radar points pass the devkit's default filters (invalid_state in
    :data:`RADAR_INVALID_STATES`, dyn_prop in :data:`RADAR_DYNPROP_STATES`, ambig_state in
    :data:`RADAR_AMBIG_STATES`)."""
    return (
        np.isin(points["invalid_state"], RADAR_INVALID_STATES)
        & np.isin(points["dyn_prop"], RADAR_DYNPROP_STATES)
        & np.isin(points["ambig_state"], RADAR_AMBIG_STATES)
    )


def _radar_layout(head: bytes, size: int, path: Path) -> tuple[np.dtype, int, int]:
    """Validate a radar PCD from its first bytes ``head`` (at least the header) and its size in bytes ``size``:
    returns the point dtype, the point count and the data offset.

    Raises:
        PointCloudError: see :func:`read_radar_pcd`.
    """
    header, start = _parse_pcd_header(head, path)
    if header["DATA"] != ["binary"]:
        raise PointCloudError(f"{path}: PCD DATA {' '.join(header['DATA'])!r} not supported (only 'binary')")
    dtype = _pcd_dtype(header, path)
    if dtype.names != RADAR_PCD_DTYPE.names:
        raise PointCloudError(f"{path}: not a nuScenes radar PCD (FIELDS {' '.join(dtype.names or ())})")
    try:
        width = int(header["WIDTH"][0])
        height = int(header.get("HEIGHT", ["1"])[0])
        n_points = int(header.get("POINTS", [str(width * height)])[0])
    except (KeyError, IndexError, ValueError) as exc:
        raise PointCloudError(f"{path}: bad PCD WIDTH/HEIGHT/POINTS") from exc
    if height != 1 or n_points != width or width < 0:
        raise PointCloudError(f"{path}: PCD WIDTH {width} HEIGHT {height} POINTS {n_points}; expected HEIGHT 1")
    need = width * dtype.itemsize
    if size - start < need:
        raise PointCloudError(
            f"{path}: truncated radar PCD: {width} points need {need} bytes of data, found {size - start}"
        )
    return dtype, width, start


def check_radar_pcd(path: str | PathLike[str]) -> None:
    """Check a radar PCD as :func:`read_radar_pcd` would, from its header and size alone (no point is read): the
    cheap up-front check of long runs (:mod:`imkd_ros.data.check`).

    Raises:
        PointCloudError: what :func:`read_radar_pcd` would raise.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise PointCloudError(f"{path}: cannot read radar PCD ({exc.strerror or exc})") from exc
    _radar_layout(head, size, path)


def read_radar_pcd(path: str | PathLike[str], *, filtered: bool = True) -> np.ndarray:
    """Read a nuScenes radar PCD file.

    Agrees with ``RadarPointCloud.from_file`` point for point: if the first point holds a NaN the cloud is empty
    (the devkit's empty-cloud rule, applied whether or not ``filtered``); with ``filtered`` the devkit's default
    filters (:func:`radar_default_mask`) drop points. Unlike the devkit this reader also accepts ``WIDTH 0`` and
    files without the trailing padding byte.

    Args:
        path: the ``.pcd`` file.
        filtered: apply the devkit default filters.

    Returns:
        ``(N,)`` structured array of dtype :data:`RADAR_PCD_DTYPE` (radar frame, metres, m/s).

    Raises:
        PointCloudError: missing, truncated or malformed file, or fields other than the nuScenes radar fields.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise PointCloudError(f"{path}: cannot read radar PCD ({exc.strerror or exc})") from exc
    dtype, width, start = _radar_layout(blob, len(blob), path)
    raw = np.frombuffer(blob, dtype=dtype, count=width, offset=start)
    points = raw.astype(RADAR_PCD_DTYPE)  # same names, cast to the canonical sizes
    if width == 0:
        return points
    first = np.array([points[name][0] for name, dt in RADAR_PCD_FIELDS if np.dtype(dt).kind == "f"])
    if np.isnan(first).any():
        return points[:0]
    if filtered:
        points = points[radar_default_mask(points)]
    return points


def write_lidar_bin(path: str | PathLike[str], points: np.ndarray) -> None:
    """Write a nuScenes LiDAR sweep ``.pcd.bin``.

    Args:
        path: output file (its folder must exist); overwritten if present.
        points: ``(N, 5)`` x, y, z (metres, LiDAR frame), intensity (0-255), ring index; cast to float32.

    Raises:
        PointCloudError: ``points`` is not ``(N, 5)``.
    """
    path = Path(path)
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != _LIDAR_COLUMNS:
        raise PointCloudError(f"write_lidar_bin({path}): points must be (N, 5), got {arr.shape}")
    np.ascontiguousarray(arr, dtype="<f4").tofile(path)


def read_lidar_bin(path: str | PathLike[str]) -> np.ndarray:
    """Read a nuScenes LiDAR sweep ``.pcd.bin``.

    Returns:
        ``(N, 5)`` float32: x, y, z (metres, LiDAR frame), intensity, ring index.

    Raises:
        PointCloudError: missing file, or a size that is not a whole number of 20-byte points.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise PointCloudError(f"{path}: cannot read LiDAR sweep ({exc.strerror or exc})") from exc
    _check_lidar_size(len(blob), path)
    return np.frombuffer(blob, dtype="<f4").reshape(-1, _LIDAR_COLUMNS).astype(np.float32)


def _check_lidar_size(size: int, path: Path) -> None:
    if size % (4 * _LIDAR_COLUMNS):
        raise PointCloudError(
            f"{path}: truncated or corrupt LiDAR .pcd.bin: {size} bytes is not a multiple of 20 (5 float32)"
        )


def check_lidar_bin(path: str | PathLike[str]) -> None:
    """Check a LiDAR ``.pcd.bin`` as :func:`read_lidar_bin` would, from its size alone.

    Raises:
        PointCloudError: what :func:`read_lidar_bin` would raise.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PointCloudError(f"{path}: cannot read LiDAR sweep ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise PointCloudError(f"{path}: cannot read LiDAR sweep (not a file)")
    _check_lidar_size(size, path)
