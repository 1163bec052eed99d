"""Doppler velocity refinement: the radial part from the returns, the tangential part from the network."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.core.types import Boxes
from imkd_ros.model.doppler import DopplerConfig, refine_velocity


def _boxes(centers, velocities, yaw=0.0, size=(2.0, 4.5, 1.6)) -> Boxes:
    n = len(centers)
    return Boxes(
        np.c_[np.asarray(centers, float), np.zeros(n)],
        np.tile(size, (n, 1)),
        np.full(n, yaw),
        np.asarray(velocities, float),
        np.zeros(n, np.int64),
        np.full(n, 0.9),
    )


def _returns(points, v_true) -> np.ndarray:
    """Radar rows (x, y, z, rcs, vx_comp, vy_comp, lag) of returns from an object moving at ``v_true``: the
    compensated radial velocity vector ``(u . v) u``, ``u`` from the ego origin."""
    p = np.asarray(points, float)
    u = p / np.linalg.norm(p, axis=1, keepdims=True)
    w = (u @ np.asarray(v_true, float))[:, None] * u
    out = np.zeros((len(p), 7), np.float32)
    out[:, :2], out[:, 4:6] = p, w
    return out


def test_one_direction_fixes_the_radial_part_only() -> None:
    boxes = _boxes([(20.0, 0.0)], [(3.0, 1.0)])
    radar = _returns([(20.0, 0.0)] * 9, (5.0, 0.0))  # nine returns straight ahead: radial = x
    v = refine_velocity(boxes, radar, DopplerConfig(prior_weight=1.0)).velocity[0]
    assert v[0] == pytest.approx((3.0 + 9 * 5.0) / 10)  # (lambda v_net + sum d u) / (lambda + n)
    assert v[1] == pytest.approx(1.0)  # tangential: the network's


def test_returns_spread_in_azimuth_fix_both_components() -> None:
    v_true = np.array([4.0, -2.0])
    boxes = _boxes([(5.0, 0.0)], [(0.0, 0.0)], size=(3.0, 6.0, 2.0))
    pts = [(4.0, -2.5), (4.0, 2.5), (6.0, -2.0), (6.0, 2.0)] * 10  # seen at +-30 deg
    v = refine_velocity(boxes, _returns(pts, v_true), DopplerConfig(prior_weight=0.01)).velocity[0]
    np.testing.assert_allclose(v, v_true, atol=0.05)


def test_still_returns_pin_the_radial_part_to_zero() -> None:
    boxes = _boxes([(0.0, 20.0)], [(5.0, 2.0)], yaw=0.0)  # crossing left of the ego along x: radial is y
    radar = _returns([(0.0, 20.0)] * 4, (5.0, 0.0))  # zero compensated radial velocity
    v = refine_velocity(boxes, radar, DopplerConfig(prior_weight=1.0)).velocity[0]
    assert v[0] == pytest.approx(5.0) and v[1] == pytest.approx(2.0 / 5)


def test_outlier_dropped_unless_all_disagree() -> None:
    boxes = _boxes([(20.0, 0.0)], [(5.0, 0.0)])
    good = _returns([(20.0, 0.3)] * 3, (5.2, 0.0))
    ghost = _returns([(20.5, 0.0)], (-15.0, 0.0))
    v = refine_velocity(boxes, np.r_[good, ghost], DopplerConfig(prior_weight=1.0)).velocity[0]
    assert v[0] == pytest.approx(5.15, abs=0.01)  # the ghost's -15 m/s is ignored
    lonely = refine_velocity(boxes, ghost, DopplerConfig(prior_weight=1.0)).velocity[0]
    assert lonely[0] == pytest.approx(-5.0, abs=0.01)  # the only evidence, kept: (5 - 15) / 2


def test_returns_outside_the_grown_rotated_box_are_ignored() -> None:
    boxes = _boxes([(20.0, 0.0), (30.0, 10.0)], [(5.0, 0.0), (1.0, 1.0)], yaw=np.pi / 2)  # length along y
    radar = _returns([(20.0, 2.5), (22.0, 0.0)], (0.0, 0.0))  # inside along the length; 2 m across: outside
    out = refine_velocity(boxes, radar, DopplerConfig(prior_weight=1.0, margin=0.5, max_residual_mps=100.0))
    u = np.array([20.0, 2.5]) / np.hypot(20.0, 2.5)
    expected = np.linalg.solve(np.eye(2) + np.outer(u, u), np.array([5.0, 0.0]))
    np.testing.assert_allclose(out.velocity[0], expected)
    np.testing.assert_array_equal(out.velocity[1], [1.0, 1.0])  # no return: the network's velocity


def test_nothing_to_refine_returns_the_boxes() -> None:
    boxes = _boxes([(20.0, 0.0)], [(3.0, 1.0)])
    assert refine_velocity(boxes, None) is boxes
    assert refine_velocity(boxes, np.zeros((0, 7), np.float32)) is boxes
    empty = Boxes.empty()
    assert refine_velocity(empty, _returns([(1.0, 1.0)], (0.0, 0.0))) is empty


def _refine_one_by_one(boxes: Boxes, radar: np.ndarray, config: DopplerConfig) -> np.ndarray:
    """The refinement written box by box (the module docstring's equations), as a reference."""
    from imkd_ros.model.doppler import _directions, _inside

    u, d = _directions(radar, config.still_mps)
    inside = _inside(boxes, radar, config.margin)
    velocity = boxes.velocity.copy()
    for b in np.flatnonzero(inside.any(axis=1)):
        v = velocity[b]
        if not np.all(np.isfinite(v)):
            continue
        ub, db = u[inside[b]], d[inside[b]]
        agree = np.abs(ub @ v - db) <= config.max_residual_mps
        if agree.any():
            ub, db = ub[agree], db[agree]
        a = config.prior_weight * np.eye(2) + ub.T @ ub
        velocity[b] = np.linalg.solve(a, config.prior_weight * v + ub.T @ db)
    return velocity


def test_all_boxes_at_once_equal_box_by_box() -> None:
    """Crowded frames: overlapping boxes sharing returns, boxes without returns, a NaN velocity, boxes whose
    returns all disagree (residual > max) and still returns: one batched solve gives the per-box answers."""
    rng = np.random.default_rng(3)
    config = DopplerConfig()
    for _ in range(20):
        n = 40
        centers = rng.uniform([5, -15], [45, 15], (n, 2))
        velocities = rng.normal(0, 6, (n, 2))
        velocities[rng.integers(n)] = np.nan
        boxes = _boxes(centers, velocities)
        boxes = Boxes(boxes.center, boxes.size, rng.uniform(-np.pi, np.pi, n), boxes.velocity, boxes.label, boxes.score)
        radar = _returns(rng.uniform([3, -20], [50, 20], (300, 2)), (0.0, 0.0))
        radar[:, 4:6] += rng.normal(0, 5, (300, 2)).astype(np.float32) * (rng.random((300, 1)) < 0.7)
        got = refine_velocity(boxes, radar, config).velocity
        want = _refine_one_by_one(boxes, radar, config)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-9)
        assert not np.allclose(got[np.isfinite(got)], boxes.velocity[np.isfinite(got)])  # something was refined
