"""Rigid transforms between the nuScenes coordinate frames: sensor <-> ego <-> global.

Conventions (nuScenes): right-handed frames, ego x forward, y left, z up. Quaternions are ``(w, x, y, z)``
(pyquaternion order, as stored in ``calibrated_sensor.json`` and ``ego_pose.json``). A :class:`Pose` maps points
from its *child* frame into its *parent* frame: ``p_parent = R @ p_child + t``. ``ego_pose`` records are
ego -> global, ``calibrated_sensor`` records are sensor -> ego. Yaw is the rotation about +z of the box's
x axis (its length axis), measured counter-clockwise from the parent's +x.

This is the only module that converts between frames; everything else calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Pose",
    "quat_to_matrix",
    "matrix_to_quat",
    "yaw_to_quat",
    "quat_to_yaw",
    "wrap_angle",
]


def quat_to_matrix(q: np.ndarray | list[float]) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a unit quaternion ``(w, x, y, z)`` (normalised here)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix ``(3, 3)``."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def yaw_to_quat(yaw: float) -> np.ndarray:
    """Quaternion ``(w, x, y, z)`` of a rotation by ``yaw`` radians about +z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def quat_to_yaw(q: np.ndarray | list[float]) -> float:
    """Yaw (rad, in ``(-pi, pi]``) of the rotated x axis projected on the xy plane, as the devkit's
    ``quaternion_yaw`` computes it."""
    v = quat_to_matrix(q)[:, 0]
    return float(np.arctan2(v[1], v[0]))


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Angles wrapped into ``[-pi, pi)``."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


@dataclass(frozen=True)
class Pose:
    """Rigid transform child -> parent: ``p_parent = rotation @ p_child + translation``.

    Attributes:
        rotation: ``(3, 3)`` float64 rotation matrix.
        translation: ``(3,)`` float64 translation in metres.
    """

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError("Pose.rotation is not a proper rotation matrix")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls) -> Pose:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_quat(cls, quat: np.ndarray | list[float], translation: np.ndarray | list[float]) -> Pose:
        """From a nuScenes record's ``rotation`` (w, x, y, z) and ``translation``."""
        return cls(quat_to_matrix(quat), np.asarray(translation, dtype=np.float64))

    @classmethod
    def from_yaw(cls, yaw: float, translation: np.ndarray | list[float]) -> Pose:
        return cls(quat_to_matrix(yaw_to_quat(yaw)), np.asarray(translation, dtype=np.float64))

    @classmethod
    def from_matrix(cls, m: np.ndarray) -> Pose:
        m = np.asarray(m, dtype=np.float64)
        return cls(m[:3, :3], m[:3, 3])

    @property
    def quat(self) -> np.ndarray:
        """Rotation as a quaternion ``(w, x, y, z)``."""
        return matrix_to_quat(self.rotation)

    @property
    def yaw(self) -> float:
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    def matrix(self) -> np.ndarray:
        """Homogeneous ``(4, 4)`` matrix."""
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> Pose:
        """Parent -> child."""
        return Pose(self.rotation.T, -self.rotation.T @ self.translation)

    def __matmul__(self, other: Pose) -> Pose:
        """Composition: ``(a @ b)`` applies ``b`` first, then ``a`` (``a``: mid -> parent, ``b``: child -> mid)."""
        return Pose(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points ``(N, 3+)`` child -> parent; columns beyond 3 are passed through unchanged."""
        pts = np.asarray(points)
        out = pts.astype(np.result_type(pts.dtype, np.float32), copy=True)
        out[:, :3] = pts[:, :3] @ self.rotation.T + self.translation
        return out

    def rotate(self, vectors: np.ndarray) -> np.ndarray:
        """Direction vectors ``(N, 3)`` or ``(N, 2)`` (xy, z taken as 0) rotated child -> parent, same width."""
        v = np.asarray(vectors, dtype=np.float64)
        if v.shape[-1] == 2:
            v3 = np.concatenate([v, np.zeros(v.shape[:-1] + (1,))], axis=-1)
            return (v3 @ self.rotation.T)[..., :2]
        return v @ self.rotation.T
