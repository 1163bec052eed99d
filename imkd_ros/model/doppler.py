"""Velocity from the radar's Doppler: each detected box's velocity refined by the radial velocities of its returns.

A radar return measures one component of its object's velocity over ground: the ego-motion-compensated radial
velocity ``d = u . v`` along the line of sight ``u`` (nuScenes stores it as the vector ``w = d u``, columns
``vx_comp, vy_comp`` of :data:`imkd_ros.core.types.RADAR_FEATURES`, ego frame). The network predicts the full velocity
``v_net`` of each box from the BEV; the returns inside the box pin its radial part down much more precisely (the
ARS 408's velocity noise is ~0.1 m/s). The refined velocity is the regularised least-squares solution

    v* = argmin_v  lambda |v - v_net|^2 + sum_i (u_i . v - d_i)^2
       = (lambda I + sum_i u_i u_i^T)^-1 (lambda v_net + sum_i d_i u_i)

over the returns ``i`` whose BEV position lies in the box grown by ``margin``: returns seen from one direction fix
the radial component and leave the tangential one to the network (the matrix is then rank one plus ``lambda I``);
returns spread in azimuth (a near, wide object) fix both. ``u_i = w_i / |w_i|`` and ``d_i = |w_i|`` where the
return moves (``|w_i| > still_mps``; the sign of ``d`` is carried by ``u``), else the direction from the ego origin
to the return and ``d_i = 0``. A return whose radial velocity disagrees with the network's by more than
``max_residual_mps`` is dropped (a ghost, or a neighbour's return in the grown box) unless every return of the box
disagrees (then the network is the one that is wrong: all are kept). Boxes without returns keep ``v_net``.

Applied by :class:`imkd_ros.inference.detector.Detector` after decoding, for every backend, to models with the radar
modality (the LiDAR teacher has no Doppler).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from imkd_ros.core.types import Boxes

__all__ = ["DOPPLER", "DopplerConfig", "refine_velocity", "returns_in_boxes"]

_VX, _VY = 4, 5  # columns of Frame.radar


@dataclass(frozen=True)
class DopplerConfig:
    """Settings of :func:`refine_velocity` (see the module docstring).

    Attributes:
        prior_weight: ``lambda``, the network velocity's weight in units of one return.
        margin: metres by which a box's footprint is grown to collect its returns.
        still_mps: returns slower than this (compensated radial speed) count as not moving.
        max_residual_mps: returns farther than this from the network's radial velocity are outliers.
    """

    prior_weight: float = 0.3
    margin: float = 0.8
    still_mps: float = 0.05
    max_residual_mps: float = 2.0


#: The settings the detector uses (chosen on synth60's validation split: ``prior_weight`` 0.3, ``margin`` 0.8 m and
#: ``max_residual_mps`` 2.0 gave the lowest coverage mAVE of a 2 x 2 x 3 grid).
DOPPLER = DopplerConfig()


def _directions(radar: np.ndarray, still_mps: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit line-of-sight vectors ``(N, 2)`` and radial velocities ``(N,)`` of radar returns."""
    w = radar[:, [_VX, _VY]].astype(np.float64)
    speed = np.hypot(w[:, 0], w[:, 1])
    pos = radar[:, :2].astype(np.float64)
    rng = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-6)
    moving = speed > still_mps
    u = np.where(moving[:, None], w / np.maximum(speed, 1e-9)[:, None], pos / rng[:, None])
    return u, np.where(moving, speed, 0.0)


def _inside(boxes: Boxes, radar: np.ndarray, margin: float) -> np.ndarray:
    """``(B, N)`` bool: return ``j``'s BEV position lies in box ``i``'s footprint grown by ``margin``."""
    pos = radar[:, :2].astype(np.float64)
    rel = pos[None, :, :] - boxes.center[:, None, :2]  # (B, N, 2)
    c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
    along = np.abs(c * rel[..., 0] + s * rel[..., 1])
    across = np.abs(-s * rel[..., 0] + c * rel[..., 1])
    return (along <= boxes.size[:, 1:2] / 2 + margin) & (across <= boxes.size[:, 0:1] / 2 + margin)


def returns_in_boxes(boxes: Boxes, radar: np.ndarray | None, config: DopplerConfig = DOPPLER) -> np.ndarray:
    """``(B,)`` int: how many radar returns :func:`refine_velocity` would look at for each box."""
    if radar is None or len(radar) == 0 or len(boxes) == 0:
        return np.zeros(len(boxes), dtype=np.int64)
    return _inside(boxes, radar, config.margin).sum(axis=1)


def refine_velocity(boxes: Boxes, radar: np.ndarray | None, config: DopplerConfig = DOPPLER) -> Boxes:
    """``boxes`` with each velocity refined by the Doppler of the radar returns in it (module docstring).

    Args:
        boxes: detections in the ego frame of the frame whose radar is given.
        radar: ``(N, 7)`` :data:`~imkd_ros.core.types.RADAR_FEATURES` of that frame (None or empty: nothing to refine).
    """
    if radar is None or len(radar) == 0 or len(boxes) == 0:
        return boxes
    u, d = _directions(radar, config.still_mps)
    inside = _inside(boxes, radar, config.margin)  # (B, N)
    velocity = boxes.velocity.copy()
    todo = np.flatnonzero(inside.any(axis=1) & np.all(np.isfinite(velocity), axis=1))
    if len(todo) == 0:
        return boxes
    v_net, seen = velocity[todo], inside[todo]  # all boxes at once (one batched 2 x 2 solve, no Python loop)
    agree = seen & (np.abs(v_net @ u.T - d[None, :]) <= config.max_residual_mps)
    use = np.where(agree.any(axis=1, keepdims=True), agree, seen).astype(np.float64)  # (T, N)
    a = config.prior_weight * np.eye(2) + np.einsum("tn,ni,nj->tij", use, u, u)
    rhs = config.prior_weight * v_net + (use * d[None, :]) @ u
    velocity[todo] = np.linalg.solve(a, rhs[..., None])[..., 0]
    return replace(boxes, velocity=velocity)
