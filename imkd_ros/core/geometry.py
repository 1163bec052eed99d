"""Poses over time and from parameters: the ONE implementation of pose interpolation, of the ego-pose lookup at a
stamp (the node's :class:`~imkd_ros.pipeline.sync.PoseBuffer`, the bag source's ``ego_pose_at``) and of a sensor
mounting given as parameters (the detector and teacher nodes, the bag replay).

Its siblings in the core: :mod:`imkd_ros.core.transforms` (frames, :class:`~imkd_ros.core.transforms.Pose`, quaternions
``(w, x, y, z)`` and yaw), :mod:`imkd_ros.core.sweeps` (which sweeps make a frame and sweep -> ego). The intrinsics
after a resize are :func:`imkd_ros.model.preprocess.fit_intrinsics` (the one image path), a ``CameraInfo`` ->
:class:`~imkd_ros.core.types.Calibration` is :func:`imkd_ros.pipeline.arrays.camera_info_to_calibration`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from imkd_ros.core.errors import InputError
from imkd_ros.core.transforms import Pose, matrix_to_quat, quat_to_matrix

__all__ = ["slerp", "interpolate_pose", "pose_at", "pose_parameter"]


def slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions ``(4,)`` (w, x, y, z) at fraction ``a``, the short way round."""
    d = float(np.dot(q0, q1))
    if d < 0.0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + a * (q1 - q0)
    else:
        theta = np.arccos(d)
        q = (np.sin((1 - a) * theta) * q0 + np.sin(a * theta) * q1) / np.sin(theta)
    return q / np.linalg.norm(q)


def interpolate_pose(p0: Pose, p1: Pose, a: float) -> Pose:
    """Pose at fraction ``a`` (0: ``p0``, 1: ``p1``): translation linear, rotation slerped."""
    q = slerp(matrix_to_quat(p0.rotation), matrix_to_quat(p1.rotation), float(a))
    return Pose(quat_to_matrix(q), (1 - a) * p0.translation + a * p1.translation)


def pose_at(
    stamps: Sequence[int], poses: Sequence[Pose], stamp: int, *, max_gap_ns: int, end_tolerance_ns: int = 0
) -> Pose | None:
    """The pose at ``stamp`` (ns) of poses recorded at ``stamps`` (ascending, ns).

    A pose recorded at exactly ``stamp`` is returned as it is; between two poses no further apart than
    ``max_gap_ns`` it is interpolated (:func:`interpolate_pose`); before the first or after the last pose, the end
    pose when it is within ``end_tolerance_ns`` (0: only an exact stamp). None otherwise, and without poses.
    """
    if not stamps:
        return None
    stamp = int(stamp)
    i = bisect.bisect_left(stamps, stamp)
    if i < len(stamps) and stamps[i] == stamp:
        return poses[i]
    if i == 0:
        return poses[0] if stamps[0] - stamp <= end_tolerance_ns else None
    if i == len(stamps):
        return poses[-1] if stamp - stamps[-1] <= end_tolerance_ns else None
    if stamps[i] - stamps[i - 1] > max_gap_ns:
        return None
    return interpolate_pose(poses[i - 1], poses[i], (stamp - stamps[i - 1]) / (stamps[i] - stamps[i - 1]))


def pose_parameter(translation: Sequence[float], rotation: Sequence[float], name: str) -> Pose:
    """A mounting parameter (``translation`` [x, y, z] m, ``rotation`` [w, x, y, z]) -> :class:`Pose`.

    Raises:
        InputError: wrong lengths, non-finite values or a zero quaternion (naming ``name``; a ``ValueError``).
    """
    t, q = np.asarray(translation, dtype=np.float64), np.asarray(rotation, dtype=np.float64)
    if t.shape != (3,) or q.shape != (4,) or not np.isfinite(t).all() or not np.isfinite(q).all():
        raise InputError(f"parameter {name}: need translation [x, y, z] and rotation [w, x, y, z], got {t} / {q}")
    if np.linalg.norm(q) < 1e-9:
        raise InputError(f"parameter {name}.rotation is a zero quaternion")
    return Pose(quat_to_matrix(q), t)
