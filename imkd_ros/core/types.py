"""Core data types: :class:`Calibration`, :class:`Boxes`, :class:`Frame`.

Plain numpy containers; no torch, no ROS. Frames are named by strings: ``"global"``, ``"ego"`` (the vehicle's
``base_link`` at the keyframe timestamp) or a sensor channel such as ``"CAM_FRONT"``. Conversions between frames
go through :mod:`imkd_ros.core.transforms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose, wrap_angle

__all__ = ["Calibration", "Boxes", "Frame", "RADAR_FEATURES", "LIDAR_FEATURES"]

#: Columns of ``Frame.radar`` (ego frame of the keyframe): position, RCS (dBsm), ego-motion-compensated radial
#: velocity (m/s, ego frame), time lag of the sweep behind the keyframe (s, >= 0).
RADAR_FEATURES: tuple[str, ...] = ("x", "y", "z", "rcs", "vx_comp", "vy_comp", "time_lag")

#: Columns of ``Frame.lidar`` (ego frame of the keyframe): position, reflectance intensity (0-255), ring index,
#: time lag (s).
LIDAR_FEATURES: tuple[str, ...] = ("x", "y", "z", "intensity", "ring", "time_lag")


@dataclass(frozen=True)
class Calibration:
    """A sensor's mounting (sensor -> ego) and, for cameras, its pinhole intrinsics.

    Attributes:
        channel: sensor channel name, e.g. ``"CAM_FRONT"``.
        sensor_to_ego: mounting pose.
        intrinsic: ``(3, 3)`` camera matrix, or None for non-camera sensors.
        image_size: ``(width, height)`` in pixels for cameras, else None.
    """

    channel: str
    sensor_to_ego: Pose
    intrinsic: np.ndarray | None = None
    image_size: tuple[int, int] | None = None

    def project(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project ego-frame points ``(N, 3)`` into the image.

        Returns:
            uv: ``(N, 2)`` pixel coordinates (u right, v down).
            depth: ``(N,)`` depth along the optical axis (camera z) in metres; <= 0 means behind the camera.
        """
        if self.intrinsic is None:
            raise ValueError(f"{self.channel} has no intrinsics: it is not a camera")
        cam = self.sensor_to_ego.inverse().apply(np.asarray(points_ego, dtype=np.float64)[:, :3])
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uvw = cam @ np.asarray(self.intrinsic, dtype=np.float64).T
            uv = uvw[:, :2] / uvw[:, 2:3]
        return uv, depth


@dataclass
class Boxes:
    """N oriented 3D boxes in one named frame.

    Attributes (all length N):
        center: ``(N, 3)`` float64, box centre (x, y, z) in metres.
        size: ``(N, 3)`` float64, (w, l, h) in metres (nuScenes order: width across, length along yaw).
        yaw: ``(N,)`` float64, rotation about +z in radians.
        velocity: ``(N, 2)`` float64, (vx, vy) in m/s in the same frame (NaN when unknown).
        label: ``(N,)`` int64, index into :data:`imkd_ros.core.classes.CLASSES`.
        score: ``(N,)`` float64 (1.0 for ground truth).
        frame: name of the frame the boxes are expressed in.
        tokens: optional per-box identifiers (e.g. nuScenes annotation tokens).
    """

    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    label: np.ndarray
    score: np.ndarray
    frame: str = "ego"
    tokens: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(-1, 3)
        n = len(self.center)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(n, 3)
        self.yaw = np.asarray(self.yaw, dtype=np.float64).reshape(n)
        self.velocity = np.asarray(self.velocity, dtype=np.float64).reshape(n, 2)
        self.label = np.asarray(self.label, dtype=np.int64).reshape(n)
        self.score = np.asarray(self.score, dtype=np.float64).reshape(n)
        if n and (self.label.min() < 0 or self.label.max() >= len(CLASSES)):
            raise ValueError(f"Boxes.label out of range 0..{len(CLASSES) - 1}: {self.label.min()}..{self.label.max()}")
        if self.tokens is not None and len(self.tokens) != n:
            raise ValueError(f"Boxes.tokens has {len(self.tokens)} entries for {n} boxes")

    @classmethod
    def empty(cls, frame: str = "ego") -> Boxes:
        z = np.zeros((0,))
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), z, np.zeros((0, 2)), z.astype(np.int64), z, frame)

    def __len__(self) -> int:
        return len(self.center)

    def __getitem__(self, idx: np.ndarray | slice) -> Boxes:
        """Subset by boolean mask, index array or slice."""
        toks = None
        if self.tokens is not None:
            toks = list(np.asarray(self.tokens, dtype=object)[idx])
        return Boxes(
            self.center[idx],
            self.size[idx],
            self.yaw[idx],
            self.velocity[idx],
            self.label[idx],
            self.score[idx],
            self.frame,
            toks,
        )

    @property
    def class_names(self) -> list[str]:
        return [CLASSES[i] for i in self.label]

    def transform(self, pose: Pose, to_frame: str) -> Boxes:
        """Boxes moved by ``pose`` (which maps ``self.frame`` -> ``to_frame``): centres transformed, yaw and
        velocity rotated. Rotations are assumed to be (close to) about z, as between nuScenes' ego and global
        frames."""
        vel3 = np.concatenate([self.velocity, np.zeros((len(self), 1))], axis=1)
        return Boxes(
            pose.apply(self.center),
            self.size.copy(),
            np.asarray(wrap_angle(self.yaw + pose.yaw)),
            (vel3 @ pose.rotation.T)[:, :2],
            self.label.copy(),
            self.score.copy(),
            to_frame,
            None if self.tokens is None else list(self.tokens),
        )

    def corners(self) -> np.ndarray:
        """Box corners ``(N, 8, 3)``: first the 4 bottom corners counter-clockwise from front-left, then the top 4
        in the same order. "Front" is +x of the box (its length axis)."""
        w, l, h = self.size[:, 0], self.size[:, 1], self.size[:, 2]
        sx = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
        sy = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
        sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * 0.5
        local = np.stack([l[:, None] * sx, w[:, None] * sy, h[:, None] * sz], axis=-1)  # (N, 8, 3)
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        x = c * local[..., 0] - s * local[..., 1]
        y = s * local[..., 0] + c * local[..., 1]
        return np.stack([x, y, local[..., 2]], axis=-1) + self.center[:, None, :]

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean ``(N_boxes, N_points)``: is point ``j`` inside box ``i`` (faces inclusive, grown by ``margin``)."""
        p = np.asarray(points, dtype=np.float64)[:, :3]
        d = p[None, :, :] - self.center[:, None, :]
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        lx = c * d[..., 0] + s * d[..., 1]
        ly = -s * d[..., 0] + c * d[..., 1]
        half = self.size / 2.0 + margin
        return (np.abs(lx) <= half[:, 1:2]) & (np.abs(ly) <= half[:, 0:1]) & (np.abs(d[..., 2]) <= half[:, 2:3])


@dataclass
class Frame:
    """One keyframe as the models see it; everything in the ego frame of the keyframe except where noted.

    Cameras: a rig has N >= 1 cameras (the front rig one, nuScenes' surround rig six). The first is the reference:
    its timestamp is the keyframe's and its ego pose the keyframe's ego frame. Every camera's calibration maps its
    sensor frame into that one ego frame (cameras exposed at other times include the ego's motion in between, as
    the reader computes it).

    Attributes:
        token: the sample token.
        timestamp: keyframe time in microseconds (the reference camera's timestamp).
        scene: scene name.
        images: one ``(H, W, 3)`` uint8 RGB image per camera, in :attr:`cameras` order (None if not loaded).
        cameras: the calibration of each camera (sensor -> keyframe ego); empty for a frame without cameras.
        radar: ``(N, 7)`` float32, columns :data:`RADAR_FEATURES`, multi-sweep accumulated.
        lidar: ``(M, 6)`` float32, columns :data:`LIDAR_FEATURES` (teacher input; None at inference).
        ego_pose: ego -> global at the keyframe timestamp.
        gt: ground-truth boxes in the ego frame (None when not annotated).
        weather: weather tag of the scene (``"clear"``, ``"rain"``, ``"fog"``, ``"night"``, or ``"unknown"``).

    Raises:
        ValueError: ``images`` given with another count than ``cameras``.
    """

    token: str
    timestamp: int
    scene: str
    images: tuple[np.ndarray, ...] | None
    cameras: tuple[Calibration, ...]
    radar: np.ndarray
    lidar: np.ndarray | None
    ego_pose: Pose
    gt: Boxes | None = None
    weather: str = "unknown"

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        if self.images is not None:
            self.images = tuple(self.images)
            if len(self.images) != len(self.cameras):
                raise ValueError(
                    f"frame {self.token}: {len(self.images)} images for {len(self.cameras)} camera calibrations"
                )

    @property
    def image(self) -> np.ndarray | None:
        """The reference (first) camera's image, None when images are not loaded or there is no camera."""
        return self.images[0] if self.images else None

    @property
    def camera(self) -> Calibration | None:
        """The reference (first) camera's calibration, None for a frame without cameras."""
        return self.cameras[0] if self.cameras else None
