"""What the rig can see: the coverage region a detector is scored on beside its whole BEV grid.

Ground truth covers the whole BEV grid (x 0..51.2 m, y +-25.6 m), but the front camera sees about +-32 deg and the
front radar +-60 deg: a third of the in-grid objects are outside the camera's view and about a sixth outside both
sensors. The LiDAR teacher sees them all, a camera + radar student never can, so a student-teacher comparison on
the grid is biased by objects the student has no data of. The coverage region of a model is

    its grid rectangle  ∩  ∪ over the sensors of its modalities (``ModelConfig.modalities``) of their sectors

and for the LiDAR teacher (360 deg) the grid itself.

A :class:`Sector` lives on the ground plane of the ego frame (x forward, y left): an apex, a heading, a half-angle
to the left and one to the right of it, and a range band. Sectors are built from calibration, not from assumed
angles:

- camera (:func:`camera_sector`): apex = the optical centre, heading = the optical axis (camera z) projected on the
  ground plane, half-angles = the azimuths of the rays through the extreme pixel columns (``u = 0`` and ``u = W``)
  at the principal row, so an off-centre principal point gives an asymmetric sector; the range band is the camera
  model's depth range (:attr:`imkd_ros.model.config.CameraConfig.depth_range`), measured along the axis as the
  lift-splat frustum measures depth;
- radar (:func:`radar_sector`): apex and heading from the mounting; field of view and range are properties of the
  sensor, not of calibration, and live in :class:`imkd_ros.model.config.RadarConfig` (``fov_deg``, ``max_range``).

Where a rig's calibration comes from: a nuScenes-format dataset (:func:`dataset_coverage`: the camera
:class:`~imkd_ros.core.types.Calibration` of a sample's frame, the radar mountings of its keyframes) or a bag
(``imkd_ros.apps.replay``: ``camera_info`` + ``tf_static``). Both call :func:`rig_coverage`.

Not modelled: occlusion, the vertical field of view (objects right in front of the bumper below the image), sensor
ranges that shrink at the edges of the field of view, calibration that changes between scenes (the rig of one sample
is used for a whole split), the model's horizontal image crop (none for the shipped configs: they keep the full
image width). Boxes are in or out by their centre, as for :class:`imkd_ros.evaluation.evaluate.Region`.

numpy only (no torch): the evaluation, the bag tools and the tests use it without building a model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from imkd_ros.core.errors import ImkdError
from imkd_ros.evaluation.evaluate import Region

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from imkd_ros.core.transforms import Pose
    from imkd_ros.core.types import Calibration
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.model.config import GridConfig, ModelConfig

__all__ = [
    "CoverageError",
    "Sector",
    "Coverage",
    "grid_region",
    "camera_sector",
    "radar_sector",
    "rig_coverage",
    "dataset_coverage",
]


class CoverageError(ImkdError):
    """A coverage region cannot be built: a sensor of the model's modalities is missing, or a camera has no
    intrinsics or image size."""


@dataclass(frozen=True)
class Sector:
    """A sensor's field of view on the ground plane of the ego frame.

    A point ``p`` is inside when its azimuth seen from ``apex``, relative to ``yaw`` (counter-clockwise positive),
    lies in ``[-right, left]`` and its range lies in ``[min_range, max_range]``. The range is the distance from the
    apex, or with ``along_axis`` the distance along the heading (a camera's depth).

    Attributes:
        name: the sensor, e.g. ``"CAM_FRONT"``.
        apex: ``(x, y)`` of the sensor in the ego frame (m).
        yaw: heading about +z (rad).
        left: half-angle to the left of the heading (rad, in ``(0, pi]``).
        right: half-angle to the right (rad, in ``(0, pi]``); ``left = right = pi`` sees all around.
        max_range: outer range limit (m).
        min_range: inner range limit (m).
        along_axis: range measured along the heading; then both half-angles must be below pi / 2.
    """

    name: str
    apex: tuple[float, float]
    yaw: float
    left: float
    right: float
    max_range: float
    min_range: float = 0.0
    along_axis: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "apex", (float(self.apex[0]), float(self.apex[1])))
        for name in ("yaw", "left", "right", "max_range", "min_range"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ValueError(f"Sector {self.name!r}: {name} must be finite, got {v}")
            object.__setattr__(self, name, v)
        limit = math.pi / 2 if self.along_axis else math.pi
        for name in ("left", "right"):
            v = getattr(self, name)
            if not (0.0 < v <= limit) or (self.along_axis and v >= limit):
                raise ValueError(
                    f"Sector {self.name!r}: {name} half-angle {math.degrees(v):.2f} deg must be in (0, "
                    f"{math.degrees(limit):.0f}{')' if self.along_axis else ']'} deg"
                )
        if not 0.0 <= self.min_range < self.max_range:
            raise ValueError(f"Sector {self.name!r}: needs 0 <= min_range < max_range, got {self.min_range}, "
                             f"{self.max_range}")  # fmt: skip

    @classmethod
    def symmetric(
        cls, name: str, apex: tuple[float, float], yaw: float, half_fov: float, max_range: float, min_range: float = 0.0
    ) -> Sector:
        """A sector of ``+-half_fov`` about ``yaw``, range measured from the apex."""
        return cls(name, apex, yaw, half_fov, half_fov, max_range, min_range)

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which ego-frame points ``(N, 2+)`` are inside."""
        p = np.asarray(xy, dtype=np.float64)
        dx, dy = p[:, 0] - self.apex[0], p[:, 1] - self.apex[1]
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        fwd, lat = c * dx + s * dy, -s * dx + c * dy
        azimuth = np.arctan2(lat, fwd)  # (-pi, pi], left positive
        dist = fwd if self.along_axis else np.hypot(dx, dy)
        return (azimuth <= self.left) & (azimuth >= -self.right) & (dist >= self.min_range) & (dist <= self.max_range)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (angles in radians, as the fields)."""
        d = asdict(self)
        d["apex"] = list(self.apex)
        return d

    def describe(self) -> str:
        band = "depth" if self.along_axis else "range"
        if math.isclose(self.left, self.right):
            fov = f"+-{math.degrees(self.left):.1f} deg"
        else:
            fov = f"+{math.degrees(self.left):.1f}/-{math.degrees(self.right):.1f} deg"
        return (
            f"{self.name} {fov} about {math.degrees(self.yaw):.1f} deg, {band} {self.min_range:g}-{self.max_range:g} m"
        )


@dataclass(frozen=True)
class Coverage:
    """What a model's rig can see: ``grid`` intersected with the union of ``sectors``.

    Same interface as :class:`imkd_ros.evaluation.evaluate.Region` (:meth:`contains`, :meth:`to_dict`), so it can be
    passed as the ``region`` of any evaluation.

    Attributes:
        grid: the model's BEV grid rectangle (:func:`grid_region`).
        sectors: the fields of view of the model's sensors; None for sensors that see all around (the LiDAR
            teacher): the coverage is then the grid itself.
    """

    grid: Region
    sectors: tuple[Sector, ...] | None = None

    def __post_init__(self) -> None:
        if self.sectors is not None:
            object.__setattr__(self, "sectors", tuple(self.sectors))
            if not self.sectors:
                raise ValueError("Coverage needs at least one sector (None: the whole grid)")

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which ego-frame points ``(N, 2+)`` are inside."""
        inside = self.grid.contains(xy)
        if self.sectors is None:
            return inside
        seen = np.zeros(len(inside), dtype=bool)
        for s in self.sectors:
            seen |= s.contains(xy)
        return inside & seen

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for a summary's ``eval_scope``: ``kind``, ``grid``, ``sectors`` (None: all around)."""
        return {
            "kind": "coverage",
            "grid": self.grid.to_dict(),
            "sectors": None if self.sectors is None else [s.to_dict() for s in self.sectors],
            "description": self.describe(),
        }

    def describe(self) -> str:
        g = self.grid
        grid = f"grid x {g.x_min:g}..{g.x_max:g} m, y {g.y_min:g}..{g.y_max:g} m"
        if self.sectors is None:
            return grid + " (all around)"
        return grid + " seen by " + " or ".join(s.describe() for s in self.sectors)


def grid_region(grid: GridConfig) -> Region:
    """The ego-frame rectangle of a BEV grid."""
    return Region(grid.x_range[0], grid.x_range[1], grid.y_range[0], grid.y_range[1])


def camera_sector(calibration: Calibration, max_range: float, min_range: float = 0.0) -> Sector:
    """A camera's sector from its calibration (see the module docstring).

    Args:
        calibration: mounting, ``(3, 3)`` intrinsics and ``(width, height)`` of the image the model gets.
        max_range, min_range: depth band (m) along the optical axis.

    Raises:
        CoverageError: no intrinsics or image size, an optical axis that does not point along the ground, or an
            image edge at or beyond 90 deg from the axis.
    """
    if calibration.intrinsic is None or calibration.image_size is None:
        raise CoverageError(f"{calibration.channel}: a camera sector needs intrinsics and an image size")
    k = np.asarray(calibration.intrinsic, dtype=np.float64)
    fx, cx = float(k[0, 0]), float(k[0, 2])
    width = float(calibration.image_size[0])
    rot = calibration.sensor_to_ego.rotation
    axis = rot[:2, 2]
    if np.hypot(*axis) < 1e-6:
        raise CoverageError(f"{calibration.channel}: the optical axis points straight up or down")
    yaw = math.atan2(axis[1], axis[0])

    def azimuth(u: float) -> float:  # of the ray through column u at the principal row, relative to the heading
        ray = rot @ np.array([(u - cx) / fx, 0.0, 1.0])
        return float(np.arctan2(ray[1], ray[0]) - yaw + np.pi) % (2 * np.pi) - np.pi

    left, right = azimuth(0.0), -azimuth(width)
    if not (0.0 < left < math.pi / 2 and 0.0 < right < math.pi / 2):
        raise CoverageError(
            f"{calibration.channel}: image edges at {math.degrees(left):.1f} / {-math.degrees(right):.1f} deg from "
            "the optical axis; expected a principal point inside the image and a field of view below 180 deg"
        )
    t = calibration.sensor_to_ego.translation
    return Sector(calibration.channel, (t[0], t[1]), yaw, left, right, max_range, min_range, along_axis=True)


def radar_sector(
    sensor_to_ego: Pose, half_fov: float, max_range: float, min_range: float = 0.0, name: str = "RADAR"
) -> Sector:
    """A radar's sector: apex and heading (its x axis on the ground plane) from the mounting, ``+-half_fov`` (rad)
    and range (m) from the sensor's specification (:class:`imkd_ros.model.config.RadarConfig`)."""
    t = sensor_to_ego.translation
    x_axis = sensor_to_ego.rotation[:2, 0]
    return Sector.symmetric(name, (t[0], t[1]), math.atan2(x_axis[1], x_axis[0]), half_fov, max_range, min_range)


def rig_coverage(config: ModelConfig, cameras: Sequence[Calibration], radars: Mapping[str, Pose]) -> Coverage:
    """The coverage of a model on a rig: its grid seen by the sensors of its modalities.

    Args:
        config: the model (``grid``, ``modalities``, ``camera.depth_range``, ``radar.fov_deg`` / ``max_range``).
        cameras: the calibration of each camera of the rig (ignored unless the model takes the camera).
        radars: radar name -> mounting (ignored unless the model takes radar).

    Returns:
        The teacher (LiDAR, 360 deg): the grid. Otherwise the grid intersected with the union of one sector per
        camera (range band = the depth range) and/or one sector per radar.

    Raises:
        CoverageError: the model takes a modality the rig does not have.
    """
    grid = grid_region(config.grid)
    if config.is_teacher:
        return Coverage(grid, None)
    sectors: list[Sector] = []
    if "camera" in config.modalities:
        if not cameras:
            raise CoverageError(f"model {config.name} takes the camera, but the rig has no camera calibration")
        lo, hi = config.camera.depth_range
        sectors.extend(camera_sector(c, hi, lo) for c in cameras)
    if "radar" in config.modalities:
        if not radars:
            raise CoverageError(f"model {config.name} takes radar, but the rig has no radar mounting")
        half = math.radians(config.radar.fov_deg) / 2.0
        for name, pose in radars.items():
            sectors.append(radar_sector(pose, half, config.radar.max_range, name=name))
    return Coverage(grid, tuple(sectors))


def dataset_coverage(
    config: ModelConfig,
    reader: NuScenesReader | None,
    sample_token: str,
    cameras: Sequence[Calibration] | None = None,
) -> Coverage:
    """:func:`rig_coverage` with the rig of one sample of a nuScenes-format dataset: the camera calibrations of its
    frame (``reader.frame(token).cameras``, or ``cameras`` when given) and the mountings of the reader's radar
    channels' keyframes. ``reader`` may be None for the teacher, or for a camera-only model when ``cameras`` are
    given."""
    if config.is_teacher:
        return rig_coverage(config, (), {})
    mods = config.modalities
    if reader is None and ("radar" in mods or cameras is None):
        raise CoverageError(f"the coverage of model {config.name} needs the dataset's calibration (a reader)")
    if "camera" in mods and cameras is None:
        assert reader is not None
        cameras = reader.frame(sample_token).cameras
    radars: dict[str, Pose] = {}
    if "radar" in mods:
        assert reader is not None
        radars = {ch: reader.sensor_to_ego(reader.keyframe_token(sample_token, ch)) for ch in reader.radars}
    return rig_coverage(config, cameras, radars)
